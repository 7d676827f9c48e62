#!/usr/bin/env bash
# One prepared GPU check: install, run the GPU suite, record times, GPU memory and utilisation,
# and the results, all under one folder.
#
#   benchmarks/perf/gpu_check.sh [OUT_DIR]          (default OUT_DIR: gpu-check)
#
# Environment:
#   SUITE=gpu            the suite to run (a built-in name or a YAML path); a tiny one tests the script on CPU
#   SKIP_INSTALL=1       use the python / bench already on PATH (no virtual environment, no pip)
#   WHEELHOUSE=DIR       install from local wheels only (a machine without a package index)
#   MERBENCH_HOME        caches and run folders (default OUT_DIR/home)
#
# Writes OUT_DIR/env.json (torch, CUDA, device), gpu_samples.csv (nvidia-smi every second, when
# present), sweep.log, results/, LEADERBOARD.md and summary.json / summary.md (wall time per run
# and in all, peak GPU memory, mean utilisation).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="$(mkdir -p "${1:-gpu-check}" && cd "${1:-gpu-check}" && pwd)"
SUITE="${SUITE:-gpu}"
export MERBENCH_HOME="${MERBENCH_HOME:-$OUT/home}"

if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m venv .venv-gpu && . .venv-gpu/bin/activate
    pip_args=(-q)
    if [ -n "${WHEELHOUSE:-}" ]; then pip_args+=(--no-index --find-links "$WHEELHOUSE"); fi
    pip install "${pip_args[@]}" torch && pip install "${pip_args[@]}" -e ".[test]"
fi

python - "$OUT/env.json" <<'PY'
import json, platform, sys
import torch
cuda = torch.cuda.is_available()
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda_available": cuda,
        "cuda_version": torch.version.cuda, "device": torch.cuda.get_device_name(0) if cuda else "cpu"}
json.dump(info, open(sys.argv[1], "w"), indent=2)
print("environment:", info)
PY

sampler=""
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits \
        -l 1 > "$OUT/gpu_samples.csv" &
    sampler=$!
fi
trap '[ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true' EXIT

start=$(date +%s)
set +e
bench sweep "$SUITE" --results-dir "$OUT/results" --workers 1 2>&1 | tee "$OUT/sweep.log"
status=${PIPESTATUS[0]}
set -e
end=$(date +%s)
bench leaderboard --results-dir "$OUT/results" --output "$OUT/LEADERBOARD.md" || true

python -m merbench.perf.gpu_summary "$OUT" --suite "$SUITE" --wall-s $((end - start)) --sweep-status "$status"
exit "$status"
