"""The runner on a toy corpus: label hiding, determinism, resume, result files."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import toy
from merbench.registry import load_builtins
from merbench.results import read_result
from merbench.runner import Reporter, RunRequest, run

load_builtins()
toy.register()
MLP = dict(method="mlp", dataset="toy", overrides=["features.t=toy-bow", "train.epochs=6", "train.patience=100"])


def test_test_labels_never_reach_the_method(merbench_home, tmp_path):
    toy.SpyMethod.seen.clear()
    run(RunRequest(method="spy", dataset="toy", seeds=[0], results_dir=tmp_path / "r"))
    (kind1, train_ids, valid_ids, _), (kind2, test_ids, test_labels, test_utts) = toy.SpyMethod.seen
    assert (kind1, kind2) == ("fit", "predict")
    assert not set(test_ids) & (set(train_ids) | set(valid_ids))
    assert test_labels is None
    assert all(label is None and meta == {} for label, meta in test_utts)


def test_mlp_writes_result_and_is_deterministic(merbench_home, tmp_path):
    a = run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"))
    b = run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "b"))
    ra, rb = read_result(a[0]), read_result(b[0])
    assert ra.test == rb.test and ra.folds[0].history == rb.folds[0].history
    assert a[0].with_suffix(".predictions.csv").read_text() == b[0].with_suffix(".predictions.csv").read_text()
    assert ra.test.accuracy > 0.5  # text carries the label 70% of the time: the MLP must find it
    assert ra.manifest_hash and ra.config_hash and ra.provenance.packages.get("torch")
    assert a[0].with_suffix(".confusion.png").stat().st_size > 0
    # a second run with the same key is skipped, not repeated
    mtime = a[0].stat().st_mtime_ns
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"))
    assert a[0].stat().st_mtime_ns == mtime


class InterruptAt(Reporter):
    def __init__(self, epoch):
        self.at = epoch

    def epoch(self, label, epoch, total, row):
        if epoch == self.at:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_to_the_same_result(merbench_home, tmp_path, monkeypatch):
    ref = read_result(run(RunRequest(**MLP, seeds=[1], results_dir=tmp_path / "ref"))[0])
    # same request in a fresh home: interrupt after epoch 3, then run again
    monkeypatch.setenv("MERBENCH_HOME", str(tmp_path / "home2"))
    with pytest.raises(KeyboardInterrupt):
        run(RunRequest(**MLP, seeds=[1], results_dir=tmp_path / "res"), InterruptAt(3))
    assert not list((tmp_path / "res").rglob("*.json"))  # no result for an unfinished run
    ckpts = list((tmp_path / "home2").rglob("checkpoint.pt"))
    assert len(ckpts) == 1
    seen = []

    class Count(Reporter):
        def epoch(self, label, epoch, total, row):
            seen.append(epoch)

    got = read_result(run(RunRequest(**MLP, seeds=[1], results_dir=tmp_path / "res"), Count())[0])
    assert seen == [4, 5, 6]  # resumed after epoch 3
    assert got.test == ref.test and got.folds[0].history == ref.folds[0].history


def test_seeds_differ_and_result_schema(merbench_home, tmp_path):
    paths = run(RunRequest(**MLP, results_dir=tmp_path / "r"))  # protocol default: 2 seeds
    assert len(paths) == 2
    data = json.loads(paths[0].read_text())
    for key in ("method", "dataset", "protocol", "manifest_hash", "modalities", "seed", "config", "config_hash",
                "provenance", "test", "folds", "label_names"):
        assert key in data
    for key in ("accuracy", "ua", "weighted_f1", "macro_f1", "per_class", "confusion"):
        assert key in data["test"]
    assert data["provenance"]["git_commit"] is None or len(data["provenance"]["git_commit"]) == 40
    # Which features exactly: each modality's extractor settings and the cache entry they name.
    assert set(data["feature_settings"]) == set(data["modalities"])
    for m, fs in data["feature_settings"].items():
        assert re.fullmatch(r"v\w+-[0-9a-f]{10}", fs["cache_key"]) and isinstance(fs["settings"], dict)
        assert data["features"][m].endswith("@" + fs["cache_key"].split("-")[0])


def test_resident_features_give_the_same_result(merbench_home, tmp_path):
    """Device-resident pooled features (the default on CUDA, and on the CPU for float32 features)
    change speed, not results: the same run with them off gives the same scores and history."""
    off = dict(MLP, overrides=MLP["overrides"] + ["train.resident_features=false"])
    base = read_result(run(RunRequest(**off, seeds=[0], results_dir=tmp_path / "a"))[0])
    req = dict(MLP, overrides=MLP["overrides"] + ["train.resident_features=true"])
    resident = read_result(run(RunRequest(**req, seeds=[0], results_dir=tmp_path / "b"))[0])
    assert resident.config["train"]["resident_features"] is True
    assert resident.test == base.test and resident.folds[0].history == base.folds[0].history


def test_finished_folds_are_reused_only_for_the_same_features_and_not_under_force(merbench_home, tmp_path,
                                                                                  monkeypatch):
    class Stages(Reporter):
        def __init__(self):
            self.stages, self.warnings, self.epochs = [], [], 0

        def stage(self, message):
            self.stages.append(message)

        def warn(self, message):
            self.warnings.append(message)

        def epoch(self, label, epoch, total, row):
            self.epochs += 1

    first = Stages()
    out = run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"), first)[0]
    assert first.epochs == 6
    # Same request into a new results folder: the finished fold is reused, nothing is trained.
    again = Stages()
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "b"), again)
    assert again.epochs == 0 and any("reusing finished fold" in s for s in again.stages)
    # ... and its kept model comes along from beside the first result (not "no model kept")
    again_out = next((tmp_path / "b").rglob("*seed0*.json"))
    first_r, again_r = (json.loads(p.read_text()) for p in (out, again_out))
    assert again_r["model"] and again_r["model"]["weights_sha256"] == first_r["model"]["weights_sha256"]
    assert not any("no model kept" in w for w in again.warnings)
    assert list(again_out.with_suffix(".model").glob("*/model.yaml"))
    # A copy that is no longer this fold's model (weights changed on disk, or a link) is not taken.
    import shutil

    shutil.rmtree(again_out.with_suffix(".model"))
    weights = next(out.with_suffix(".model").glob("*/weights.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"x")
    third = Stages()
    third_out = run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "tampered"), third)[0]
    assert third.epochs == 0 and any("no model kept" in w for w in third.warnings)
    assert not json.loads(third_out.read_text())["model"] and not third_out.with_suffix(".model").exists()
    # --force trains again instead of re-emitting the finished fold.
    forced = Stages()
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "b", force=True), forced)
    assert forced.epochs == 6 and not any("reusing" in s for s in forced.stages)
    # A new extractor version gives other features: the old fold must not stand in for them, and an
    # existing result made from the old features is named as such rather than silently kept.
    version = toy.ToyBagOfWords.version
    monkeypatch.setattr(toy.ToyBagOfWords, "version", str(version) + "-next")
    newer = Stages()
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "c"), newer)
    assert newer.epochs == 6 and not any("reusing" in s for s in newer.stages)
    stale = Stages()
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"), stale)
    assert stale.epochs == 0 and any("other features" in w and str(out) in w for w in stale.warnings)

    # Same ids and labels (so the same split manifest) but an edited text: other features again.
    monkeypatch.setattr(toy.ToyBagOfWords, "version", version)
    original_load = toy.ToyDataset.load

    def edited_load(self):
        corpus = original_load(self)
        corpus.utterances[0] = dataclasses.replace(corpus.utterances[0], text="i am edited today")
        return corpus

    monkeypatch.setattr(toy.ToyDataset, "load", edited_load)
    edited = Stages()
    got = read_result(run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "d"), edited)[0])
    assert edited.epochs == 6 and not any("reusing" in s for s in edited.stages)
    assert got.manifest_hash == read_result(out).manifest_hash


def test_resumed_run_wall_time_is_the_sum_of_its_pieces(merbench_home, tmp_path, monkeypatch):
    """Killed after epoch 3 and resumed: wall_time_s adds both processes' time, and each
    process is one piece in the provenance (a run clock that advances 10 s per reading)."""
    import merbench.runner as runner

    ticks = iter(range(0, 10_000, 10))
    monkeypatch.setattr(runner, "_now", lambda: float(next(ticks)))
    with pytest.raises(KeyboardInterrupt):
        run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "r"), InterruptAt(3))
    got = read_result(run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "r"))[0])
    pieces = got.provenance.pieces
    assert len(pieces) == 2
    # first process: clock read at start, then after epochs 1, 2, 3 -> 30 s; the second one
    # reads at start, after epochs 4-6, at the fold's end and before the result -> 50 s
    assert [p["wall_time_s"] for p in pieces] == [30.0, 50.0]
    assert got.provenance.wall_time_s == 80.0
    assert all(p["started_at"] and p["hostname"] for p in pieces)


def test_result_files_do_not_make_the_tree_dirty(tmp_path, monkeypatch):
    """A run writing seed 0 into the committed results folder must not mark seeds 1.. as dirty;
    a changed source file must."""
    import subprocess

    from merbench import provenance

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "leaderboard" / "results").mkdir(parents=True)
    (tmp_path / "leaderboard" / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)
    assert provenance.git_state()[1] is False
    (tmp_path / "leaderboard" / "results" / "r.json").write_text('{"seed": 0}')
    assert provenance.git_state()[1] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_state()[1] is True


def test_a_reused_folds_model_is_copied_only_as_plain_files_with_the_recorded_hash(tmp_path):
    import yaml

    from merbench.download import sha256_file
    from merbench.model_store import FORMAT
    from merbench.runner import _model_of_reused_fold

    info = {"method": "mlp", "variant": "default", "config_hash": "c0", "seed": 0, "manifest_hash": "m0"}
    real = tmp_path / "real.safetensors"
    real.write_bytes(b"weights")
    sha = sha256_file(real)

    def place(name, link):
        src = tmp_path / name / "fold-official"
        src.mkdir(parents=True)
        (src / "model.yaml").write_text(yaml.safe_dump({"format": FORMAT, **info, "fold": "official",
                                                        "weights": {"file": "weights.safetensors", "sha256": sha}}))
        if link:
            (src / "weights.safetensors").symlink_to(real)
        else:
            (src / "weights.safetensors").write_bytes(real.read_bytes())
        return src

    def workdir(places):
        w = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
        w.mkdir()
        (w / "fold.json").write_text(json.dumps({"model_sha256": sha, "model_kept_at": [str(p) for p in places]}))
        return w

    linked = workdir([place("linked", link=True)])
    _model_of_reused_fold(linked, "official", info)
    assert not (linked / "model").exists()  # a link could bring in any file's content
    other = workdir([place("plain", link=False)])
    _model_of_reused_fold(other, "official", {**info, "seed": 1})  # another seed's run: not its model
    assert not (other / "model").exists()
    _model_of_reused_fold(other, "official", info)
    assert sha256_file(other / "model" / "weights.safetensors") == sha
    assert sorted(p.name for p in (other / "model").iterdir()) == ["model.yaml", "weights.safetensors"]
