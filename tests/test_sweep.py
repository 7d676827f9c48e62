"""Sweeps: suite expansion and include, skip-existing, failures, restart, local and Ray executors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

import toy
from merbench import runner
from merbench.errors import ConfigError
from merbench.registry import load_builtins
from merbench.results import iter_results, read_result
from merbench.sweep import expand_suite, iter_failures, load_suite, run_sweep

load_builtins()
toy.register()

TOY_MLP_SET = ["features.t=toy-bow", "train.epochs=3", "train.patience=100"]


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def toy_suite(tmp_path: Path, **extra_runs) -> Path:
    runs = {"spy": {"methods": ["spy"], "datasets": ["toy"], "seeds": 2},
            "floor": {"methods": ["majority"], "protocols": ["toy-4"], "modalities": ["t"], "seeds": [0, 1]}}
    runs.update(extra_runs)
    return write(tmp_path / "suite.yaml", {"runs": runs})


@pytest.fixture
def count_runs(monkeypatch):
    """Instrument the runner: every run it starts is recorded as (method, seed)."""
    started: list[tuple[str, int]] = []
    real = runner.run

    def counting(req, reporter=None):
        started.append((req.method, req.seeds[0]))
        return real(req, reporter)

    monkeypatch.setattr(runner, "run", counting)
    return started


# -- expansion ------------------------------------------------------------------------------------


def test_default_suite_has_every_method_on_the_synthetic_corpus_and_a_real_protocol(tmp_path):
    from merbench.registry import METHODS, get_dataset

    plan = expand_suite("default", tmp_path / "res")
    where: dict[str, set[str]] = {}
    for j in plan.jobs:
        where.setdefault(j.request.method, set()).add(j.request.dataset)
    builtin = {n for n in METHODS.names() if get_method_module(n).startswith("merbench.methods.")}
    assert builtin and builtin <= set(where), f"missing from the default suite: {sorted(builtin - set(where))}"
    for method, datasets in where.items():
        assert "synthetic" in datasets, method
        assert datasets - {"synthetic"}, f"{method}: no real protocol in the default suite"
    assert all(get_dataset(d) for ds in where.values() for d in ds)
    # Nothing there is a GPU run, and fine-tuning on a real corpus is only in the full-budget variant's gpu suite.
    assert all(j.request.device == "cpu" for j in plan.jobs)
    assert not [j for j in plan.jobs if j.request.method == "text_transformer" and j.request.variant == "default"]


def get_method_module(name: str) -> str:
    from merbench.registry import get_method

    return get_method(name).__module__


def test_gpu_suite_holds_the_fine_tuning_runs_on_cuda(tmp_path):
    plan = expand_suite("gpu", tmp_path / "res")
    got = {(j.request.method, j.request.variant, j.request.protocol) for j in plan.jobs}
    assert ("text_transformer", "default", "meld-7") in got and ("text_transformer", "default", "iemocap-6") in got
    assert all(j.request.device == "cuda" for j in plan.jobs)


def test_full_suite_expands_to_the_agreed_runs(tmp_path):
    plan = expand_suite("full", tmp_path / "res")
    got = {}
    for j in plan.jobs:
        r = j.request
        assert r.seeds and len(r.seeds) == 1 and j.result_path.parent == tmp_path.resolve() / "res" / r.dataset / r.protocol / r.method
        got.setdefault((r.protocol, r.method), set()).add((r.modalities.replace(",", ""), r.seeds[0]))
    seeds = {0, 1, 2}
    mlp_subsets = {"t", "a", "v", "ta", "tv", "av", "tav"}
    assert got[("synthetic-4", "mlp")] == {(m, s) for m in mlp_subsets for s in seeds}
    assert got[("synthetic-4", "majority")] == {("t", s) for s in seeds}  # majority declares only the t subset
    real = ("meld-7", "meld-3", "iemocap-6", "iemocap-4-loso", "mosi-2", "mosi-7")
    as_published = ("meld-oversampled-leaky", "iemocap-4-random8020")
    for proto in real + as_published:
        assert got[(proto, "majority")] == {("t", s) for s in seeds}
        # mosi-2 also has text + real audio (the soujanyaporia feature pack)
        assert got[(proto, "mlp")] == {(m, s) for m in (("t", "ta") if proto == "mosi-2" else ("t",)) for s in seeds}
    assert got[("synthetic-4", "text_transformer")] == {("t", s) for s in seeds}
    # The paper methods (CPU-budget variants where named), on their papers' protocols.
    by_variant = {}
    for j in plan.jobs:
        r = j.request
        by_variant.setdefault((r.protocol, r.method, r.variant), set()).add((r.modalities.replace(",", ""), r.seeds[0]))
    paper = [("synthetic-4", "miust", "cpu", "ta"), ("meld-7", "miust", "cpu", "t"),
             ("iemocap-4-loso", "miust", "cpu", "t"), ("iemocap-6", "miust", "cpu", "t"),
             ("synthetic-4", "multifocus_blstm", "cpu", "ta"), ("iemocap-4-loso", "multifocus_blstm", "cpu", "t"),
             ("iemocap-4-random8020", "multifocus_blstm", "cpu", "t"), ("meld-7", "multifocus_blstm", "cpu", "t"),
             ("iemocap-6", "multifocus_blstm", "cpu", "t"),
             ("synthetic-4", "cross_modal_attention", "frozen_text", "tav"),
             ("meld-7", "cross_modal_attention", "frozen_text", "t"),
             ("meld-oversampled-leaky", "cross_modal_attention", "frozen_text", "t"),
             ("iemocap-6", "cross_modal_attention", "frozen_text", "t"),
             ("synthetic-4", "lipsync_graph_erc", "no_graph", "tav"),
             ("synthetic-4", "lipsync_graph_erc", "no_distillation", "tav"),
             ("synthetic-4", "lipsync_graph_erc", "random_face", "tav"),
             ("meld-7", "lipsync_graph_erc", "default", "t"), ("iemocap-6", "lipsync_graph_erc", "default", "t")]
    for proto, method, name, mods in paper:
        assert by_variant[(proto, method, name)] == {(mods, s) for s in seeds}, (proto, method, name)
    for method in ("miust", "multifocus_blstm"):  # MOSI text, and text + the real audio pack
        assert by_variant[("mosi-2", method, "cpu")] == {(m, s) for m in ("t", "ta") for s in seeds}
    assert by_variant[("synthetic-4", "lipsync_graph_erc", "default")] == {(m, s) for m in ("t", "ta", "tav")
                                                                            for s in seeds}
    for method, variant in (("cross_modal_attention", "frozen_text"), ("lipsync_graph_erc", "default")):
        assert by_variant[("mosi-2", method, variant)] == {(m, s) for m in ("t", "ta") for s in seeds}
    # mlp t,a; miust and multi-focus cpu, t and t,a; cross-modal attention (frozen text) and LipSync, t and t,a
    mosi_audio = 3 + 2 * 2 * 3 + 2 * 2 * 3
    assert len(plan.jobs) == 3 * 7 + 3 + 3 * 2 * (len(real) + len(as_published)) + 3 + 3 * len(paper) + 9 + mosi_audio
    assert len({j.result_path for j in plan.jobs}) == len(plan.jobs)


def test_include_overrides_drops_and_adds_entries(tmp_path):
    base = write(tmp_path / "base.yaml", {
        "defaults": {"seeds": 3, "set": TOY_MLP_SET},
        "runs": {
            "mlp-subsets": {"methods": ["mlp"], "datasets": ["toy"], "modalities": "all-declared"},
            "spy": {"methods": ["spy"], "protocols": ["toy-4"], "set": None},
            "floor": {"methods": ["majority"], "protocols": ["toy-4"], "set": None},
        }})
    child = write(tmp_path / "child.yaml", {
        "include": "base.yaml",
        "defaults": {"seeds": 1},
        "runs": {"spy": None,  # switched off
                 "floor": {"seeds": [4, 5]},  # one field changed
                 "extra": {"methods": ["majority"], "protocols": ["toy-4"], "modalities": ["t"], "set": None,
                           "variants": ["default"]}}})
    plan = expand_suite(child, tmp_path / "r")
    entries = {}
    for j in plan.jobs:
        entries.setdefault(j.entry, []).append((j.request.method, j.request.modalities, j.request.seeds[0]))
    # toy declares only text, so "all-declared" leaves mlp with its text-only subset
    assert entries["mlp-subsets"] == [("mlp", "t", 0)]
    assert "spy" not in entries
    assert entries["floor"] == [("majority", "t", 4), ("majority", "t", 5)]
    # "extra" asks for majority/t seed 0, which no earlier entry asked for
    assert entries["extra"] == [("majority", "t", 0)]
    mlp_job = next(j for j in plan.jobs if j.request.method == "mlp")
    assert mlp_job.request.overrides == TOY_MLP_SET

    # explicit modalities the corpus or method lacks are reported, not run
    odd = write(tmp_path / "odd.yaml", {"runs": {"x": {"methods": ["spy"], "protocols": ["toy-4"],
                                                       "modalities": ["t", "ta"], "seeds": 1}}})
    plan = expand_suite(odd, tmp_path / "r")
    assert [j.request.modalities for j in plan.jobs] == ["t"]
    assert any("ta" in n and "spy" in n for n in plan.notes)


def test_duplicate_runs_are_planned_once(tmp_path):
    path = write(tmp_path / "dup.yaml", {"runs": [
        {"methods": ["spy"], "protocols": ["toy-4"], "seeds": 2},
        {"methods": ["spy"], "datasets": ["toy"], "modalities": "default", "seeds": [1, 2]}]})
    plan = expand_suite(path, tmp_path / "r")
    assert [(j.entry, j.request.seeds[0]) for j in plan.jobs] == [("runs[0]", 0), ("runs[0]", 1), ("runs[1]", 2)]


@pytest.mark.parametrize("runs, needle", [
    ({"a": {"methods": ["spy"], "protocol": ["toy-4"]}}, "unknown key(s) 'protocol'"),
    ({"a": {"methods": ["nosuchmethod"], "protocols": ["toy-4"]}}, "unknown method 'nosuchmethod'"),
    ({"a": {"methods": ["spy"], "protocols": ["toy-5"]}}, "did you mean 'toy-4'"),
    ({"a": {"methods": ["spy"], "protocols": ["toy-4"], "seeds": 0}}, "seeds: 0"),
    ({"a": {"methods": ["majority"], "protocols": ["toy-4"], "variants": ["nope"]}}, "variant(s) 'nope'"),
    ({"a": {"methods": ["mlp"], "protocols": ["toy-4"], "set": ["train.nosuchkey=1"]}}, "train.nosuchkey"),
])
def test_bad_suites_name_file_entry_and_problem(tmp_path, runs, needle):
    path = write(tmp_path / "bad.yaml", {"runs": runs})
    with pytest.raises(ConfigError) as e:
        expand_suite(path, tmp_path / "r")
    assert needle in e.value.message and "bad.yaml" in e.value.message and "entry a" in e.value.message


def test_unknown_top_level_key_and_missing_suite(tmp_path):
    with pytest.raises(ConfigError, match="unknown top-level"):
        load_suite(write(tmp_path / "s.yaml", {"run": []}))
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "nope.yaml")


def test_a_suite_names_its_own_number_of_local_workers(tmp_path):
    # default.yaml runs one run per core (its budget is measured that way); other suites keep 1
    default = expand_suite("default", tmp_path / "res")
    assert default.workers == "auto" and default.default_workers(cpu_count=2) == 2
    assert expand_suite("full", tmp_path / "res").default_workers(cpu_count=2) == 1
    suite = yaml.safe_load(toy_suite(tmp_path).read_text())
    assert expand_suite(write(tmp_path / "three.yaml", {**suite, "workers": 3}), tmp_path / "r").default_workers() == 3
    for bad in (0, -1, "many", True, 1.5):
        with pytest.raises(ConfigError, match="workers") as e:
            expand_suite(write(tmp_path / "bad.yaml", {**suite, "workers": bad}), tmp_path / "r")
        assert "bad.yaml" in e.value.message and "auto" in e.value.fix


@pytest.mark.parametrize("argv, expected", [([], 2), (["--workers", "1"], 1)])
def test_sweep_cli_takes_the_suite_workers_unless_given(tmp_path, monkeypatch, argv, expected):
    import merbench.sweep as sweep_pkg
    from merbench.cli_sweep import main
    from merbench.sweep.executors import SweepSummary

    seen = {}

    def fake_run_sweep(plan, **kw):
        seen.update(kw)
        return SweepSummary([], 0.0, kw["executor"], kw["workers"])

    monkeypatch.setattr(sweep_pkg, "run_sweep", fake_run_sweep)
    import merbench.machine

    monkeypatch.setattr(merbench.machine, "usable_cores", lambda: 2)  # the affinity mask, not os.cpu_count
    suite = write(tmp_path / "s.yaml", {**yaml.safe_load(toy_suite(tmp_path).read_text()), "workers": "auto"})
    assert main([str(suite), "--results-dir", str(tmp_path / "res"), *argv]) == 0
    assert seen["workers"] == expected and seen["executor"] == "local"


# -- running ----------------------------------------------------------------------------------------


def test_skip_existing_and_restart_reruns_only_the_missing_run(merbench_home, tmp_path, count_runs):
    plan = expand_suite(toy_suite(tmp_path), tmp_path / "res")
    assert len(plan.jobs) == 4
    first = run_sweep(plan, executor="inline")
    assert sorted(count_runs) == [("majority", 0), ("majority", 1), ("spy", 0), ("spy", 1)]
    assert len(first.done) == 4 and not first.failed and not first.skipped
    # planned paths are exactly where the runner wrote
    written = sorted(p for p, _ in iter_results(tmp_path / "res"))
    assert written == sorted(j.result_path for j in plan.jobs)

    count_runs.clear()
    again = run_sweep(expand_suite(toy_suite(tmp_path), tmp_path / "res"), executor="inline")
    assert count_runs == [] and len(again.skipped) == 4

    # "kill" midway: one result is missing; the re-run runs that one only
    victim = next(j for j in plan.jobs if j.request.method == "majority" and j.request.seeds[0] == 1)
    victim.result_path.unlink()
    third = run_sweep(expand_suite(toy_suite(tmp_path), tmp_path / "res"), executor="inline")
    assert count_runs == [("majority", 1)]
    assert [o.job.result_path for o in third.done] == [victim.result_path] and len(third.skipped) == 3
    assert victim.result_path.exists()

    count_runs.clear()
    forced = run_sweep(plan, executor="inline", force=True)
    assert len(count_runs) == 4 and len(forced.done) == 4


def test_a_relabelled_corpus_of_the_same_name_is_run_again_by_the_sweep(merbench_home, tmp_path, count_runs,
                                                                        monkeypatch):
    """The sweep skips a run only when a result exists for the corpus's current split manifest."""
    import dataclasses

    suite = toy_suite(tmp_path)
    run_sweep(expand_suite(suite, tmp_path / "res"), executor="inline")
    count_runs.clear()
    original_load = toy.ToyDataset.load

    def relabelled(self):
        corpus = original_load(self)
        for i in range(20):  # same ids, 20 labels changed: another split manifest
            u = corpus.utterances[i]
            corpus.utterances[i] = dataclasses.replace(u, label=toy.LABELS[(toy.LABELS.index(u.label) + 1) % 4])
        return corpus

    monkeypatch.setattr(toy.ToyDataset, "load", relabelled)
    second = run_sweep(expand_suite(suite, tmp_path / "res"), executor="inline")
    assert len(count_runs) == 4 and len(second.done) == 4 and not second.skipped
    manifests = {read_result(p).manifest_hash for p, _ in iter_results(tmp_path / "res")}
    assert len(manifests) == 2 and len(list(iter_results(tmp_path / "res"))) == 8  # both corpora's results kept
    count_runs.clear()
    third = run_sweep(expand_suite(suite, tmp_path / "res"), executor="inline")  # now each has its own result
    assert count_runs == [] and len(third.skipped) == 4


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(merbench_home, tmp_path, count_runs):
    suite = toy_suite(tmp_path, broken={"methods": ["majority"], "protocols": ["meld-7"], "modalities": ["t"],
                                        "seeds": 1, "root": "no-such-corpus"})
    plan = expand_suite(suite, tmp_path / "res")
    summary = run_sweep(plan, executor="inline")
    assert len(summary.done) == 4 and len(summary.failed) == 1
    (fail,) = summary.failed
    assert fail.job.request.dataset == "meld" and fail.failure_file.name.startswith(".")
    record = json.loads(fail.failure_file.read_text())
    assert "no-such-corpus" in record["error"] and "Traceback" in record["traceback"]
    assert record["request"]["method"] == "majority" and record["request"]["protocol"] == "meld-7"
    assert record["entry"] == "broken"
    # the leaderboard's reader does not trip over the record; the sweep lists it
    assert len(list(iter_results(tmp_path / "res"))) == 4
    assert [p for p, _ in iter_failures(tmp_path / "res")] == [fail.failure_file]
    # the failure is not a result: the next sweep retries it (and only it)
    count_runs.clear()
    run_sweep(expand_suite(suite, tmp_path / "res"), executor="inline")
    assert count_runs == [("majority", 0)]


def test_a_run_that_fails_once_then_succeeds_clears_its_record(merbench_home, tmp_path, monkeypatch):
    real = runner.run
    flaky = {"left": 1}

    def once_broken(req, reporter=None):
        if req.method == "spy" and req.seeds == [1] and flaky["left"]:
            flaky["left"] -= 1
            raise RuntimeError("out of memory (simulated)")
        return real(req, reporter)

    monkeypatch.setattr(runner, "run", once_broken)
    plan = expand_suite(toy_suite(tmp_path), tmp_path / "res")
    first = run_sweep(plan, executor="inline")
    (fail,) = first.failed
    assert fail.error == "RuntimeError: out of memory (simulated)" and fail.failure_file.exists()
    second = run_sweep(plan, executor="inline")
    assert [o.job.key for o in second.done] == [fail.job.key] and not second.failed
    assert not fail.failure_file.exists() and list(iter_failures(tmp_path / "res")) == []


def test_local_executor_with_two_workers(merbench_home, tmp_path):
    suite = write(tmp_path / "mix.yaml", {"runs": {
        "mlp": {"methods": ["mlp"], "protocols": ["toy-4"], "seeds": [0], "set": TOY_MLP_SET},
        "spy": {"methods": ["spy"], "protocols": ["toy-4"], "seeds": [0]},
        "broken": {"methods": ["majority"], "protocols": ["meld-7"], "modalities": ["t"], "seeds": 1,
                   "root": "no-such-corpus"}}})
    plan = expand_suite(suite, tmp_path / "res")
    seen = []
    # spawned workers know only the built-in plugins: toy.register adds the toy corpus there too
    summary = run_sweep(plan, executor="local", workers=2, worker_init=toy.register, on_outcome=seen.append)
    assert summary.workers == 2 and len(seen) == 3
    assert [o.job.entry for o in summary.done] == ["mlp", "spy"], [o.error for o in summary.failed]
    assert [o.job.entry for o in summary.failed] == ["broken"]
    assert "no-such-corpus" in json.loads(summary.failed[0].failure_file.read_text())["error"]
    mlp = read_result(plan.jobs[0].result_path)
    assert mlp.method == "mlp" and mlp.test.accuracy > 0.4  # the text carries the label: the MLP learns
    # both workers used the one toy-bow cache entry in MERBENCH_HOME (extracted once, under its lock)
    entries = list((merbench_home / "features").glob("toy-*/toy-bow/v*"))
    assert len(entries) == 1 and (entries[0] / "meta.json").exists()


def test_ray_executor_on_a_local_instance(merbench_home, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'merbench[ray]')")
    plan = expand_suite(toy_suite(tmp_path), tmp_path / "res")
    tests_dir = str(Path(__file__).parent)
    path = os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        summary = run_sweep(plan, executor="ray", worker_init=toy.register,
                            ray_init_kwargs={"num_cpus": 2, "runtime_env": {"env_vars": {"PYTHONPATH": path}}})
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert not summary.failed, [o.error for o in summary.failed]
    assert len(summary.done) == 4
    assert all(j.result_path.exists() for j in plan.jobs)


def test_cli_mounts_with_one_line_and_reports(merbench_home, tmp_path):
    import typer
    from typer.testing import CliRunner

    from merbench.cli_sweep import sweep

    app = typer.Typer()

    @app.command()
    def other():  # a second command, so that "sweep" must be named as on the real CLI
        pass

    app.command("sweep")(sweep)
    suite = toy_suite(tmp_path, broken={"methods": ["majority"], "protocols": ["meld-7"], "modalities": ["t"],
                                        "seeds": 1, "root": "no-such-corpus"})
    cli = CliRunner()
    res = cli.invoke(app, ["sweep", str(suite), "--results-dir", str(tmp_path / "res"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "5 runs, 5 to run" in res.output and not (tmp_path / "res").exists()
    res = cli.invoke(app, ["sweep", str(suite), "--results-dir", str(tmp_path / "res"), "--executor", "inline"])
    assert res.exit_code == 1, res.output  # one run failed
    assert "4 done, 0 skipped" in res.output and "1 failed" in res.output and ".failure.json" in res.output
    # a log keeps each progress line whole (the suite's path alone is longer than 80 columns here)
    assert any(ln.startswith("sweep ") and ln.endswith("executor inline") for ln in res.output.splitlines())
    # the stand-alone entry point keeps the exit code (typer returns it without standalone mode)
    from merbench.cli_sweep import main

    assert main([str(suite), "--results-dir", str(tmp_path / "res"), "--executor", "inline"]) == 1
    assert main([str(tmp_path / "missing.yaml")]) == 2


def test_sweep_from_command_line_lists(tmp_path, merbench_home, capsys):
    """`bench sweep --method mlp --protocol toy-4 -m t --seeds 2`: a suite without a file."""
    import toy
    from merbench.cli import main as bench

    toy.register()
    results = tmp_path / "r"
    args = ["sweep", "--method", "mlp", "--protocol", "toy-4", "-m", "t", "--seeds", "2", "--set", "features.t=toy-bow",
            "--set", "train.epochs=2", "--results-dir", str(results), "--executor", "inline"]
    assert bench(args) == 0, capsys.readouterr().err
    assert len(list(results.rglob("*.json"))) == 2
    assert bench(["sweep", "default", "--method", "mlp"]) == 2
    assert "not both" in capsys.readouterr().err
