"""Bad input, damaged state and planted files: each gives one clear message (exit 2, no traceback)
or is named in a warning and healed; nothing read from disk runs code; no result is reused for a
run with other inputs.

Every bad input tried here, with the message expected (``error:`` line; ``fix:`` follows):

| input | expected |
|---|---|
| ``--epochs 0`` / ``--epochs -1`` | ``--epochs 0: a run needs at least one epoch`` |
| ``--seeds 0`` | ``--seeds 0: no seed to run`` |
| ``--seed -1`` | ``--seed -1: seeds are whole numbers >= 0`` |
| ``--set train.lr=abc`` | ``--set train.lr='abc': train.lr must be a number`` (the config has a number there) |
| ``--set train.lr=.nan`` | ``train.lr = nan: a learning rate must be a finite number > 0`` |
| ``--set train.lr=0`` | ``train.lr = 0: a learning rate must be a finite number > 0`` |
| ``--set model.hidden=abc`` | ``--set model.hidden='abc': model.hidden must be a number`` |
| ``--set train.batch_size=0`` | ``train.batch_size = 0: must be a whole number >= 1`` |
| ``--set train.select_metric=foo`` | ``train.select_metric = 'foo': not a selection metric`` |
| ``--set model.dropout=2`` | ``model.dropout = 2: dropout must be a number in [0, 1)`` |
| ``--set train.patience=0`` | ``train.patience = 0: must be a whole number >= 1`` |
| method ``mlp[dev]`` (rich markup) | ``unknown method 'mlp[dev]'`` printed literally |
| ``--results-dir`` under a file / read-only | ``cannot write results to ...`` before the corpus is read |
| ``leaderboard --output`` into an unwritable folder | ``cannot write the leaderboard to ...`` |
| planted ``checkpoint.pt`` (``__reduce__`` -> shell command) | warning ``.../checkpoint.pt: cannot be loaded as weights only (nothing in it was run)``; fold restarts; the command never runs |
| ``checkpoint.pt`` cut in half | same warning; fold restarts |
| ``fold.json`` cut in half | warning ``.../fold.json: damaged finished-fold file``; fold restarts |
| same corpus name, 20 labels changed | retrained into ``...-m<manifest>.json``; the first result kept |
| same ids and labels, one text edited | warning ``... was made from other inputs (... corpus fingerprint ...)``; not shown as this run's result until ``--force`` |
| result files: a top-level list / missing fields / not JSON | ``skipped: result file ... holds a JSON list`` / ``is not a complete result`` / ``cannot read result file``; ``--strict``: ``3 result file(s) cannot be read`` |
| feature cache part cut in half | warning ``feature cache .../part-00000.npz is damaged (...); it is extracted again`` (run and ``bench features extract``) |
| feature cache part with flipped bytes inside (CRC) | the same warning when the table is loaded; extracted again |
| stale ``.part-*.tmp`` of a killed extraction | removed by the next extraction |
| ``kill -9`` of a process with extraction workers | the workers die with it (``PR_SET_PDEATHSIG``) |
| files written atomically | mode ``0666 & ~umask``, not ``0600`` |
| corpus and ``$MERBENCH_HOME`` copied elsewhere | the same cache entry: nothing extracted again |
| ``bench run ... synthetic --root <typo>`` | ``<typo> holds no generated synthetic corpus``; fix ``bench data prepare synthetic --root NEW_FOLDER``; nothing created |
| ``--root`` / ``data prepare --root`` of a non-empty foreign folder | ``... is not empty and holds no ... synthetic corpus``; the folder untouched |
| descriptor media path ``../../../../etc/passwd`` | ``... audio path '../../../../etc/passwd' points outside the media root``; allowed by ``media_outside_root: true`` |
| a 200,000-character CSV cell | ``.../annotations.csv, line 7: cannot be read as CSV (field larger than field limit (131072))`` |
| bad audio and bad video files, two extractors | one message: ``2 unreadable media file(s): 1 for toy-bad-a: ...; 1 for toy-bad-v: ...`` |
| a video in which no face is found (whole frames stand in) | warning ``no face found in N of M utterances``; result ``bad_media_by_kind: {"video_no_face": N}`` (kept by the cache); leaderboard note ``no face found in up to N video(s) per run`` |
| a CSV cut mid-row | ``.../annotations.csv, line N: 3 of the header's 10 fields (the last line: the file looks cut short)`` |
| a wav cut in half | ``cannot read media file ...: truncated: the header promises N bytes of audio, the file holds M`` |

``--set train.lr=3e-4`` (YAML 1.1 reads it as a string) is read as the number it means.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import toy
from merbench.cli import main
from merbench.registry import load_builtins
from merbench.results import read_result
from merbench.runner import Reporter, RunRequest, run

load_builtins()
toy.register()
MLP = dict(method="mlp", dataset="toy", overrides=["features.t=toy-bow", "train.epochs=6", "train.patience=100"])
CLI_MLP = ["run", "mlp", "toy", "--set", "features.t=toy-bow", "--set", "train.epochs=2"]


class Recorder(Reporter):
    def __init__(self, interrupt_at: int | None = None):
        self.stages, self.warnings, self.epochs = [], [], []
        self.interrupt_at = interrupt_at

    def stage(self, message):
        self.stages.append(message)

    def warn(self, message):
        self.warnings.append(message)

    def epoch(self, label, epoch, total, row):
        self.epochs.append(epoch)
        if epoch == self.interrupt_at:
            raise KeyboardInterrupt


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def no_corpus_work(monkeypatch):
    """Fails the test if the corpus is read: bad arguments must be refused before any corpus work."""
    def load(self):
        raise AssertionError("the corpus was read before the arguments were checked")

    monkeypatch.setattr(toy.ToyDataset, "load", load)


def assert_one_clear_error(rc, out, err, *expected):
    assert rc == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("fix: "))
    for text in expected:
        assert text in lines[0], (text, lines[0])


# -- run arguments and config values ----------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (["--epochs", "0"], ["--epochs 0", "at least one epoch"]),
    (["--epochs", "-1"], ["--epochs -1", "at least one epoch"]),
    (["--seeds", "0"], ["--seeds 0", "no seed"]),
    (["--seed", "-1"], ["--seed -1", ">= 0"]),
    (["--set", "train.lr=abc"], ["train.lr", "'abc'", "must be a number"]),
    (["--set", "train.lr=.nan"], ["train.lr", "nan", "finite number > 0"]),
    (["--set", "train.lr=0"], ["train.lr", "finite number > 0"]),
    (["--set", "model.hidden=abc"], ["model.hidden", "'abc'", "must be a number"]),
    (["--set", "train.batch_size=0"], ["train.batch_size", ">= 1"]),
    (["--set", "train.select_metric=foo"], ["train.select_metric", "'foo'", "not a selection metric"]),
    (["--set", "model.dropout=2"], ["model.dropout", "[0, 1)"]),
    (["--set", "train.patience=0"], ["train.patience", ">= 1"]),
])
def test_bad_run_values_are_refused_before_the_corpus_is_read(merbench_home, tmp_path, capsys, no_corpus_work,
                                                              args, expected):
    rc, out, err = run_cli(capsys, *CLI_MLP, "--results-dir", tmp_path / "r", *args)
    assert_one_clear_error(rc, out, err, *expected)
    assert "fix: " in err  # and says what to write instead
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("*.json"))


def test_a_number_written_without_a_dot_is_a_number(merbench_home):
    from merbench.config import apply_overrides

    assert apply_overrides({"train": {"lr": 0.1}}, ["train.lr=3e-4"]) == {"train": {"lr": 3e-4}}
    assert apply_overrides({"model": {"hidden": [256]}}, ["model.hidden=[512, 128]"])["model"]["hidden"] == [512, 128]


def test_square_brackets_in_names_and_fixes_print_literally(merbench_home, capsys):
    rc, out, err = run_cli(capsys, "run", "mlp[dev]", "toy")
    assert_one_clear_error(rc, out, err, "unknown method 'mlp[dev]'")
    # a fix text with brackets (here the dropout range) is printed as written, not eaten as markup
    rc, out, err = run_cli(capsys, *CLI_MLP, "--set", "model.dropout=1.5")
    assert_one_clear_error(rc, out, err, "[0, 1)")


def test_an_unwritable_results_folder_is_refused_before_training(merbench_home, tmp_path, capsys, no_corpus_work):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc, out, err = run_cli(capsys, *CLI_MLP, "--results-dir", blocker / "results")
    assert_one_clear_error(rc, out, err, "cannot write results to", str(blocker / "results"))
    assert "--results-dir" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the folder-under-a-file case "
                                             "covers the same check")
def test_a_read_only_results_folder_is_refused_before_training(merbench_home, tmp_path, capsys, no_corpus_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, out, err = run_cli(capsys, *CLI_MLP, "--results-dir", ro)
        assert_one_clear_error(rc, out, err, "cannot write results to", str(ro))
    finally:
        ro.chmod(0o700)


def test_leaderboard_output_into_an_unwritable_folder_is_a_clear_error(merbench_home, tmp_path, capsys):
    (tmp_path / "results").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rc, out, err = run_cli(capsys, "leaderboard", "--results-dir", tmp_path / "results", "--output",
                           blocker / "LB.md")
    assert_one_clear_error(rc, out, err, "cannot write the leaderboard to", str(blocker))


# -- checkpoints and finished folds -------------------------------------------------------------


class Planted:
    """Pickles to "call os.system(...)": what a hostile checkpoint holds."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _interrupted_checkpoint(tmp_path, seed=1) -> Path:
    with pytest.raises(KeyboardInterrupt):
        run(RunRequest(**MLP, seeds=[seed], results_dir=tmp_path / "res"), Recorder(interrupt_at=3))
    (ckpt,) = list(Path(os.environ["MERBENCH_HOME"]).rglob("checkpoint.pt"))
    return ckpt


def test_a_planted_checkpoint_runs_nothing_and_the_fold_restarts(merbench_home, tmp_path, monkeypatch):
    ref = read_result(run(RunRequest(**MLP, seeds=[1], results_dir=tmp_path / "ref"))[0])
    import shutil

    shutil.rmtree(merbench_home / "runs")
    ckpt = _interrupted_checkpoint(tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({"model": Planted(marker)}, ckpt)
    # in a merbench process even a library's plain torch.load reads weights only ...
    with pytest.raises(Exception, match="eights"):
        torch.load(ckpt)
    assert not marker.exists()
    # ... while outside one the file really is hostile: a non weights-only load runs the command
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0")
    torch.load(ckpt, weights_only=False)
    assert marker.exists()
    marker.unlink()
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")

    rec = Recorder()
    got = read_result(run(RunRequest(**MLP, seeds=[1], results_dir=tmp_path / "res"), rec)[0])
    assert not marker.exists()
    assert any(str(ckpt) in w and "weights only" in w and "restarts" in w for w in rec.warnings), rec.warnings
    assert rec.epochs == [1, 2, 3, 4, 5, 6]  # from scratch, not from the planted epoch
    assert got.test == ref.test  # and the same result as an uninterrupted run
    assert ckpt.with_name("checkpoint.pt.damaged").exists() and not ckpt.exists()


def test_a_checkpoint_cut_in_half_is_named_and_the_fold_restarts(merbench_home, tmp_path):
    ckpt = _interrupted_checkpoint(tmp_path)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:len(data) // 2])
    rec = Recorder()
    run(RunRequest(**MLP, seeds=[1], results_dir=tmp_path / "res"), rec)
    assert any(str(ckpt) in w and "restarts" in w for w in rec.warnings), rec.warnings
    assert rec.epochs == [1, 2, 3, 4, 5, 6]


def test_a_good_checkpoint_still_resumes_with_weights_only(merbench_home, tmp_path):
    ckpt = _interrupted_checkpoint(tmp_path)
    assert isinstance(torch.load(ckpt, weights_only=True)["rng"]["numpy"][1], torch.Tensor)
    rec = Recorder()
    run(RunRequest(**MLP, seeds=[1], results_dir=tmp_path / "res"), rec)
    assert rec.epochs == [4, 5, 6] and not rec.warnings


def test_a_damaged_finished_fold_is_named_and_retrained(merbench_home, tmp_path):
    first = read_result(run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"))[0])
    (done,) = list(merbench_home.rglob("fold.json"))
    done.write_text(done.read_text()[:100])
    rec = Recorder()
    again = read_result(run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "b"), rec)[0])
    assert any(str(done) in w and "restarts" in w for w in rec.warnings), rec.warnings
    assert len(rec.epochs) == 6 and again.test == first.test
    # a finished-fold file of the wrong shape (a list) is damaged too, not a crash
    done.write_text("[1, 2]")
    rec = Recorder()
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "c"), rec)
    assert len(rec.epochs) == 6 and any(str(done) in w for w in rec.warnings)


# -- results keyed by what made them ------------------------------------------------------------


def test_a_relabelled_corpus_of_the_same_name_is_retrained_not_skipped(merbench_home, tmp_path, monkeypatch):
    results = tmp_path / "results"
    (first,) = run(RunRequest(**MLP, seeds=[0], results_dir=results))
    original = read_result(first)
    original_load = toy.ToyDataset.load

    def relabelled(self):
        corpus = original_load(self)
        for i in range(20):  # 20 labels changed, ids and texts as before
            u = corpus.utterances[i]
            corpus.utterances[i] = dataclasses.replace(u, label=toy.LABELS[(toy.LABELS.index(u.label) + 1) % 4])
        return corpus

    monkeypatch.setattr(toy.ToyDataset, "load", relabelled)
    rec = Recorder()
    (second,) = run(RunRequest(**MLP, seeds=[0], results_dir=results), rec)
    assert len(rec.epochs) == 6 and not any("skipped" in s for s in rec.stages)
    relabelled_result = read_result(second)
    assert relabelled_result.manifest_hash != original.manifest_hash
    assert second != first and second.name == f"{first.stem}-m{relabelled_result.manifest_hash[:12]}.json"
    assert read_result(first) == original  # the first result is kept as it was
    # each corpus now finds its own result
    rec = Recorder()
    assert run(RunRequest(**MLP, seeds=[0], results_dir=results), rec) == [second]
    assert not rec.epochs and any("skipped" in s for s in rec.stages)
    monkeypatch.setattr(toy.ToyDataset, "load", original_load)
    rec = Recorder()
    assert run(RunRequest(**MLP, seeds=[0], results_dir=results), rec) == [first]
    assert not rec.epochs and any("same config, seed, split manifest, features and corpus" in s for s in rec.stages)


def test_an_edited_corpus_does_not_pass_off_the_old_result(merbench_home, tmp_path, monkeypatch):
    results = tmp_path / "results"
    (first,) = run(RunRequest(**MLP, seeds=[0], results_dir=results))
    original_load = toy.ToyDataset.load

    def edited(self):  # same ids and labels (same manifest), one text changed
        corpus = original_load(self)
        corpus.utterances[0] = dataclasses.replace(corpus.utterances[0], text="i am edited today")
        return corpus

    monkeypatch.setattr(toy.ToyDataset, "load", edited)
    rec = Recorder()
    assert run(RunRequest(**MLP, seeds=[0], results_dir=results), rec) == []  # not shown as this run's result
    assert any(str(first) in w and "corpus fingerprint" in w and "--force" in w for w in rec.warnings), rec.warnings
    forced = run(RunRequest(**MLP, seeds=[0], results_dir=results, force=True), Recorder())
    assert forced == [first] and read_result(first).corpus_fingerprint != ""


# -- the leaderboard and files it cannot read -----------------------------------------------------


def test_the_leaderboard_skips_and_lists_unreadable_result_files(merbench_home, tmp_path, capsys):
    results = tmp_path / "results"
    (good,) = run(RunRequest(**MLP, seeds=[0], results_dir=results))
    folder = good.parent
    (folder / "a-list.json").write_text("[1, 2, 3]")
    incomplete = json.loads(good.read_text())
    del incomplete["test"], incomplete["folds"]
    (folder / "missing-fields.json").write_text(json.dumps(incomplete))
    (folder / "not-json.json").write_text("{ cut sh")
    rc, out, err = run_cli(capsys, "leaderboard", "--results-dir", results, "--no-extras")
    assert rc == 0 and "Traceback" not in out + err
    assert "| mlp" in out  # the good result is still shown
    for name, why in (("a-list.json", "holds a JSON list"), ("missing-fields.json", "not a complete result"),
                      ("not-json.json", "cannot read result file")):
        assert any(name in line and why in line and line.startswith("skipped:") for line in err.splitlines()), err
    rc, out, err = run_cli(capsys, "leaderboard", "--results-dir", results, "--no-extras", "--strict")
    assert_one_clear_error(rc, out, err, "3 result file(s) cannot be read")


# -- the feature cache -------------------------------------------------------------------------------


def _cache_parts(home: Path) -> list[Path]:
    return sorted((home / "features").rglob("part-*.npz"))


def test_a_cache_part_cut_in_half_is_named_and_extracted_again(merbench_home, tmp_path, capsys):
    first = read_result(run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"))[0])
    part = _cache_parts(merbench_home)[0]
    good = part.read_bytes()
    # a sound cache passes the check untouched
    stamps = [p.stat().st_mtime_ns for p in _cache_parts(merbench_home)]
    rc, out, err = run_cli(capsys, "features", "extract", "toy", "-e", "toy-bow")
    assert rc == 0 and "warning" not in out + err
    assert [p.stat().st_mtime_ns for p in _cache_parts(merbench_home)] == stamps
    part.write_bytes(good[:len(good) // 2])
    rc, out, err = run_cli(capsys, "features", "extract", "toy", "-e", "toy-bow")
    assert rc == 0 and "Traceback" not in out + err
    assert f"warning: feature cache {part} is damaged" in out + err and "extracted again" in out + err
    assert part.read_bytes() == good  # healed: the same features as before
    # cut again: a run names it too and gets the same features and result
    part.write_bytes(good[:len(good) // 2])
    rec = Recorder()
    again = read_result(run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "b", force=True), rec)[0])
    assert any(str(part) in w and "damaged" in w for w in rec.warnings), rec.warnings
    assert again.test == first.test and part.read_bytes() == good


def test_a_cache_part_damaged_inside_is_healed_when_loaded(merbench_home, tmp_path):
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"))
    part = _cache_parts(merbench_home)[0]
    good = part.read_bytes()
    # flip bytes inside the pooled array, keeping the size: only the CRC check on loading sees it
    import zipfile

    with zipfile.ZipFile(part) as z:
        info = z.getinfo("pooled.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    part.write_bytes(good[:start] + bytes(b ^ 0xFF for b in good[start:start + 16]) + good[start + 16:])
    rec = Recorder()
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "b", force=True), rec)
    assert any(str(part) in w and "damaged" in w for w in rec.warnings), rec.warnings
    assert part.read_bytes() == good


def test_stale_tmp_parts_are_removed_and_files_follow_the_umask(merbench_home, tmp_path):
    run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "a"))
    part = _cache_parts(merbench_home)[0]
    stale = part.parent / ".part-00000.npz.x1y2z3.tmp"
    stale.write_bytes(b"half a part")
    (result,) = run(RunRequest(**MLP, seeds=[0], results_dir=tmp_path / "b", force=True))
    assert not stale.exists()
    mask = os.umask(0o022)
    os.umask(mask)
    for f in (part, part.parent / "meta.json", result, result.with_suffix(".predictions.csv")):
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f


def test_extraction_workers_die_with_their_parent(tmp_path):
    """``kill -9`` of the process that extracts leaves no worker behind."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time, multiprocessing as mp\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from merbench.features.store import _die_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(2, mp_context=mp.get_context('spawn'), initializer=_die_with_parent,\n"
        "                               initargs=(os.getpid(),))\n"
        "    pids = [pool.submit(os.getpid).result() for _ in range(4)]\n"
        "    pool.submit(time.sleep, 60)\n"
        "    print(' '.join(map(str, sorted(set(pids)))), flush=True)\n"
        "    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert workers and all(Path(f"/proc/{p}").exists() for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status  # a zombie waiting for init to reap it is dead


class MediaToy(toy.ToyDataset):
    """The toy corpus with a small wav-like file per utterance under its root."""

    name = "toy"

    def load(self):
        corpus = toy.ToyDataset.load(self)
        for i, u in enumerate(corpus.utterances):
            corpus.utterances[i] = dataclasses.replace(u, audio_path=str(self.root / "audio" / f"{u.uid}.wav"))
        return corpus


def _media_corpus(root: Path) -> Path:
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for u in toy.ToyDataset(None).load().utterances:
        (root / "audio" / f"{u.uid}.wav").write_bytes(rng.bytes(2000))
    return root


def test_a_copied_corpus_and_cache_are_not_extracted_again(tmp_path, monkeypatch):
    import shutil

    from merbench.features import store

    monkeypatch.setenv("MERBENCH_HOME", str(tmp_path / "home-a"))
    a = _media_corpus(tmp_path / "corpus-a")
    corpus_a = MediaToy(a).load()
    assert corpus_a.root == a and corpus_a.utterances[0].audio_path.startswith(str(a))
    entry_a = store.extract_corpus(corpus_a, toy.ToyBagOfWords())
    # corpus and home (its feature cache) copied elsewhere, file times not kept
    b = tmp_path / "elsewhere" / "corpus-b"
    shutil.copytree(a, b, copy_function=shutil.copy)
    shutil.copytree(tmp_path / "home-a", tmp_path / "home-b", copy_function=shutil.copy)
    monkeypatch.setenv("MERBENCH_HOME", str(tmp_path / "home-b"))
    calls = []
    monkeypatch.setattr(toy.ToyBagOfWords, "extract", lambda self, utts: calls.append(len(utts)) or [])
    reads = []
    digest = store._content_digest
    monkeypatch.setattr(store, "_content_digest", lambda p, n: reads.append(p) or digest(p, n))
    corpus_b = MediaToy(b).load()
    entry_b = store.extract_corpus(corpus_b, toy.ToyBagOfWords())
    assert entry_b.relative_to(tmp_path / "home-b") == entry_a.relative_to(tmp_path / "home-a")
    assert calls == []  # nothing extracted again
    assert len(reads) == len(corpus_b)  # each media file of the moved copy read once ...
    reads.clear()
    assert store.corpus_fingerprint(corpus_b) == store.corpus_fingerprint(corpus_a)
    assert reads == []  # ... and remembered (corpus a's digests were remembered in home-a, copied too)
    # same size, other content: another corpus, other features
    first = Path(corpus_b.utterances[0].audio_path)
    first.write_bytes(bytes(reversed(first.read_bytes())))
    assert store.corpus_fingerprint(MediaToy(b).load()) != store.corpus_fingerprint(corpus_a)


# -- --root of a generated corpus ---------------------------------------------------------------------


def test_root_of_a_generated_corpus_is_never_filled_by_a_run(merbench_home, tmp_path, capsys):
    typo = tmp_path / "synthtic"
    rc, out, err = run_cli(capsys, "run", "mlp", "synthetic", "--root", typo, "--results-dir", tmp_path / "r")
    assert_one_clear_error(rc, out, err, str(typo), "no generated synthetic corpus")
    assert "bench data prepare synthetic --root" in err and not typo.exists()
    mine = tmp_path / "my-data"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    rc, out, err = run_cli(capsys, "run", "mlp", "synthetic", "--root", mine, "--results-dir", tmp_path / "r")
    assert_one_clear_error(rc, out, err, str(mine), "is not empty")
    rc, out, err = run_cli(capsys, "data", "prepare", "synthetic", "--root", mine)
    assert_one_clear_error(rc, out, err, str(mine), "is not empty")
    assert "bench data prepare synthetic --root NEW_FOLDER" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


# -- YAML descriptors: media outside the corpus, broken CSV cells ----------------------------------------


@pytest.fixture
def isolated_datasets(monkeypatch):
    """YAML corpora registered by a test vanish after it (their name is reused by other tests)."""
    from merbench.registry import DATASETS

    DATASETS.names()
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))


def test_media_paths_outside_the_media_root_are_refused_unless_allowed(tmp_path, isolated_datasets):
    from test_yaml_corpus import make_rows, write_corpus

    from merbench.datasets.yaml_corpus import open_yaml_corpus
    from merbench.errors import MerbenchError

    rows = make_rows()
    rows[3]["wav"] = "../../../../etc/passwd"
    (tmp_path / "c1").mkdir()
    desc = write_corpus(tmp_path / "c1", rows=rows, wavs=False)
    with pytest.raises(MerbenchError) as e:
        open_yaml_corpus(desc).load()
    assert "'../../../../etc/passwd' points outside the media root" in e.value.message
    assert str(desc) in e.value.message and "media_outside_root: true" in e.value.fix
    (tmp_path / "c2").mkdir()
    allowed = write_corpus(tmp_path / "c2", rows=rows, wavs=False, media_outside_root=True)
    corpus = open_yaml_corpus(allowed).load()
    assert corpus[rows[3]["id"]].audio_path.endswith("etc/passwd")  # allowed explicitly


def test_a_huge_csv_cell_names_the_file_and_line(tmp_path, capsys, isolated_datasets):
    from test_yaml_corpus import make_rows, write_corpus

    rows = make_rows()
    rows[5]["utterance"] = "x" * 200_000
    desc = write_corpus(tmp_path, rows=rows, wavs=False)
    rc, out, err = run_cli(capsys, "data", "check", desc)
    assert_one_clear_error(rc, out, err, str(tmp_path / "annotations.csv"), "line 7", "field larger than field limit")


def test_a_csv_cut_mid_row_names_the_file_and_line(tmp_path, capsys, isolated_datasets):
    from test_yaml_corpus import make_rows, write_corpus

    desc = write_corpus(tmp_path, rows=make_rows(), wavs=False)
    table = tmp_path / "annotations.csv"
    text = table.read_text(encoding="utf-8").rstrip("\n")
    lines = text.split("\n")
    last = lines[-1]
    table.write_text("\n".join(lines[:-1] + [",".join(last.split(",")[:3])]) + "\n", encoding="utf-8")  # cut mid-row
    rc, out, err = run_cli(capsys, "data", "check", desc)
    assert_one_clear_error(rc, out, err, str(table), f"line {len(lines)}", "3 of the header's",
                           "the file looks cut short")


# -- bad media: every extractor's files in one message ----------------------------------------------------


def test_bad_media_of_every_extractor_are_listed_in_one_message(merbench_home, tmp_path, monkeypatch):
    from merbench.corpus import Corpus
    from merbench.errors import MediaError
    from merbench.interfaces import ExtractedItem, FeatureExtractor
    from merbench.registry import DATASETS, FEATURES

    class AV(toy.ToyDataset):
        name = "toy-av"
        modalities = ("t", "a", "v")

        def load(self):
            utts = [dataclasses.replace(u, audio_path=f"/m/{u.uid}.wav", video_path=f"/m/{u.uid}.mp4")
                    for u in toy.ToyDataset.load(self).utterances]
            return Corpus("toy-av", utts, root=self.root, modalities=("t", "a", "v"))

    def fake(modality, bad_uid, suffix):
        class Fake(FeatureExtractor):
            name = f"toy-bad-{modality}"
            levels = ("pooled",)

            def output_dim(self, level="pooled"):
                return 4

            def extract(self, utts):
                if any(u.uid == bad_uid for u in utts):
                    raise MediaError(f"/m/{bad_uid}.{suffix}", "truncated")
                return [ExtractedItem(np.ones(4, dtype=np.float32), None) for _ in utts]

        Fake.modality = modality
        return Fake

    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))
    monkeypatch.setattr(FEATURES, "_entries", dict(FEATURES._entries))
    DATASETS.add("toy-av", AV)
    FEATURES.add("toy-bad-a", fake("a", "d0_1", "wav"))
    FEATURES.add("toy-bad-v", fake("v", "d2_3", "mp4"))
    req = RunRequest(method="mlp", dataset="toy-av", modalities="a,v", seeds=[0], results_dir=tmp_path / "r",
                     overrides=["features.a=toy-bad-a", "features.v=toy-bad-v", "train.epochs=1"])
    with pytest.raises(MediaError) as e:
        run(req)
    msg = e.value.message
    assert "2 unreadable media file(s)" in msg and "/m/d0_1.wav" in msg and "/m/d2_3.mp4" in msg
    assert "toy-bad-a" in msg and "toy-bad-v" in msg and "--on-bad-media zero" in e.value.fix
    # with zero features for them, the result records how many of each kind
    (out,) = run(dataclasses.replace(req, on_bad_media="zero"))
    result = read_result(out)
    assert result.bad_media == 2 and result.bad_media_by_kind == {"audio": 1, "video": 1}


def test_a_truncated_wav_is_bad_media_not_silently_short(tmp_path):
    import soundfile as sf

    from merbench.errors import MediaError
    from merbench.features.media import read_audio

    wav = tmp_path / "a.wav"
    t = np.arange(16000) / 16000
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, subtype="PCM_16")
    assert len(read_audio(wav)) == 16000
    data = wav.read_bytes()
    wav.write_bytes(data[:len(data) // 2])
    with pytest.raises(MediaError) as e:
        read_audio(wav)
    assert e.value.path == str(wav) and "truncated" in e.value.reason and "32000 bytes" in e.value.reason


class ToyNoFace(toy.ToyBagOfWords):
    """Marks the first turn of every dialogue as an utterance where no face was found (as the video
    extractors do when whole frames stand in for a face crop)."""

    name = "toy-noface"

    def extract(self, utterances):
        items = super().extract(utterances)
        for u, item in zip(utterances, items):
            if u.turn == 0:
                item.notes = ("no_face",)
        return items


def test_media_without_a_face_are_counted_in_the_result_and_the_leaderboard(merbench_home, tmp_path):
    from merbench.registry import FEATURES

    if "toy-noface" not in FEATURES:
        FEATURES.add("toy-noface", ToyNoFace)
    req = dict(MLP, overrides=["features.t=toy-noface", "train.epochs=1"], results_dir=tmp_path / "results")
    rec = Recorder()
    (path,) = run(RunRequest(**req, seeds=[0]), rec)
    n_dialogues = len({u.dialogue_id for u in toy.ToyDataset().load().utterances})
    assert read_result(path).bad_media_by_kind == {"text_no_face": n_dialogues}
    assert any(f"no face found in {n_dialogues} of" in w for w in rec.warnings), rec.warnings
    # A second seed reuses the cache: the extractor never runs, the count still comes from the cache.
    (second,) = run(RunRequest(**req, seeds=[1]), Recorder())
    assert read_result(second).bad_media_by_kind == {"text_no_face": n_dialogues}
    out = tmp_path / "LEADERBOARD.md"
    assert main(["leaderboard", "--results-dir", str(tmp_path / "results"), "--output", str(out)]) == 0
    assert f"no face found in up to {n_dialogues} video(s) per run" in out.read_text()
