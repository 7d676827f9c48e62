"""Runs that need the same feature cache entry at once share its parts (one lock per part): each part
is extracted once, by whichever run claims it first, and the entry is the one a single run writes.
A part held by another run is waited for: taken as written, or extracted here when its holder left
it unwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from merbench.atomic import HeldLock
from merbench.corpus import Corpus, Utterance
from merbench.errors import MediaError
from merbench.interfaces import ExtractedItem, FeatureExtractor

TESTS = Path(__file__).resolve().parent
PART = 4  # utterances per part in these tests (the store's default is 256)


class SlowStamp(FeatureExtractor):
    """Slow on purpose (``delay`` s per utterance); appends "<run> <uid>" to ``log_path`` for each
    utterance it extracts (``run`` names the run, whichever of its processes extracts), so a test sees
    which run extracted what. u5 is unreadable."""

    name = "test-slow-stamp"
    modality = "t"
    batch_size = 2

    def __init__(self, log_path: str = "", delay: float = 0.0, run: str = "-"):
        self.log_path, self.delay, self.run = log_path, delay, run

    def output_dim(self, level: str = "pooled") -> int:
        return 3

    def extract(self, utterances):
        out = []
        for u in utterances:
            time.sleep(self.delay)
            with open(self.log_path, "a") as fh:
                fh.write(f"{self.run} {u.uid}\n")
            if u.uid == "u5":
                raise MediaError(f"/media/{u.uid}.wav", "not a wav file")
            i = int(u.uid[1:])
            out.append(ExtractedItem(pooled=np.array([i, 2 * i, 1], np.float32), notes=("odd",) if i % 2 else ()))
        return out


def _corpus(n: int) -> Corpus:
    return Corpus("stamps", [Utterance(f"u{i}", "d0", i, "A", text=f"text {i}") for i in range(n)])


def _extracted(log: Path) -> list[tuple[str, str]]:
    return [(run, uid) for run, uid in (line.split() for line in log.read_text().splitlines())]


def _child(cache: str, log: str, n: int, workers: int, delay: float, ready: str, go: str) -> None:
    """One run, in its own process: waits for the test's go, then extracts."""
    from merbench.features import store

    store.PART_SIZE = PART
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.01)
    store.extract_corpus(_corpus(n), SlowStamp(log, delay, f"run{Path(ready).name}"), cache=Path(cache),
                         workers=workers)


def _start_child(tmp: Path, k: int, n: int, workers: int, delay: float) -> subprocess.Popen:
    args = (str(tmp / "cache"), str(tmp / "log"), n, workers, delay, str(tmp / f"ready-{k}"), str(tmp / "go"))
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_shared_extraction as t; t._child(*{args!r})"
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_runs_at_once_share_the_parts_and_write_the_entry_one_run_writes(tmp_path, monkeypatch):
    from merbench.features import store

    n = 32  # 8 parts of 4
    children = [_start_child(tmp_path, 0, n, 1, 0.1), _start_child(tmp_path, 1, n, 2, 0.1)]  # serial, and a pool
    deadline = time.time() + 120
    while not all((tmp_path / f"ready-{k}").exists() for k in range(2)):
        assert time.time() < deadline and all(c.poll() is None for c in children), "a run did not start"
        time.sleep(0.05)
    (tmp_path / "go").touch()
    assert [c.wait(timeout=300) for c in children] == [0, 0]

    log = _extracted(tmp_path / "log")
    runs_per_uid: dict[str, set[str]] = {}
    for run, uid in log:
        runs_per_uid.setdefault(uid, set()).add(run)
    assert sorted(runs_per_uid) == sorted(f"u{i}" for i in range(n))
    assert all(len(runs) == 1 for runs in runs_per_uid.values()), runs_per_uid  # each by one run only
    assert {run for run, _ in log} == {"runready-0", "runready-1"}, "one run extracted everything, the other waited"

    monkeypatch.setattr(store, "PART_SIZE", PART)
    alone = store.extract_corpus(_corpus(n), SlowStamp(str(tmp_path / "log-alone")), cache=tmp_path / "alone")
    shared = store.entry_dir(_corpus(n), SlowStamp(), tmp_path / "cache")
    assert json.loads((shared / "meta.json").read_text()) == json.loads((alone / "meta.json").read_text())
    a, b = store.load_table(alone), store.load_table(shared)
    assert a.uids == b.uids
    np.testing.assert_array_equal(a.pooled, b.pooled)
    np.testing.assert_array_equal(a.valid, b.valid)
    assert store.bad_media(shared) == [{"uid": "u5", "path": "/media/u5.wav", "reason": "not a wav file"}]
    assert store.media_notes(shared)["odd"] == sorted(f"u{i}" for i in range(1, n, 2) if i != 5)


def _extract_in_thread(entry_cache: Path, log: Path, n: int, progress: list) -> tuple[threading.Thread, list]:
    from merbench.features import store

    errors: list = []

    def run():
        try:
            store.extract_corpus(_corpus(n), SlowStamp(str(log)), cache=entry_cache,
                                 progress=lambda d, t: progress.append((d, t)))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, errors


def _wait_for_lines(log: Path, n: int, extracting: threading.Thread, timeout: float = 60) -> None:
    """Until ``log`` names ``n`` extracted utterances; the extraction must still be running meanwhile."""
    deadline = time.time() + timeout
    while len(_extracted(log) if log.exists() else []) < n:
        assert time.time() < deadline and extracting.is_alive()
        time.sleep(0.02)


def test_a_part_held_by_a_run_that_dies_is_waited_for_then_extracted(tmp_path, monkeypatch):
    from merbench.features import store

    monkeypatch.setattr(store, "PART_SIZE", PART)
    n = 16
    entry = store.entry_dir(_corpus(n), SlowStamp(), tmp_path / "cache")
    entry.mkdir(parents=True)
    stale = entry / ".part-00001.npz.x1y2.tmp"  # half written by a run that was killed
    stale.write_bytes(b"half")
    holder = HeldLock(entry / ".part-00001.lock")
    assert holder.take(wait=False)  # "another run" is extracting part 1
    progress: list = []
    t, errors = _extract_in_thread(tmp_path / "cache", tmp_path / "log", n, progress)
    _wait_for_lines(tmp_path / "log", 12, t)
    time.sleep(0.2)
    assert t.is_alive(), "finished without part 1"  # the other three parts are done; part 1 is awaited
    assert {uid for _, uid in _extracted(tmp_path / "log")} == {f"u{i}" for i in range(n)} - {"u4", "u5", "u6", "u7"}
    assert stale.exists()  # only the part's holder (or whoever takes the lock after it) may clean it
    holder.release()  # the holder dies without writing part 1
    t.join(timeout=60)
    assert not t.is_alive() and not errors
    assert {uid for _, uid in _extracted(tmp_path / "log")} == {f"u{i}" for i in range(n)}
    assert not stale.exists()
    assert progress[-1] == (n, n)
    assert store.load_table(entry).uids == [f"u{i}" for i in range(n)]


def test_a_part_its_holder_writes_meanwhile_is_taken_as_written(tmp_path, monkeypatch):
    from merbench.features import store

    monkeypatch.setattr(store, "PART_SIZE", PART)
    n = 12
    corpus = _corpus(n)
    entry = store.entry_dir(corpus, SlowStamp(), tmp_path / "cache")
    holder = HeldLock(entry / ".part-00002.lock")
    assert holder.take(wait=False)
    progress: list = []
    t, errors = _extract_in_thread(tmp_path / "cache", tmp_path / "log", n, progress)
    _wait_for_lines(tmp_path / "log", 8, t)
    utts = [u.for_extraction() for u in corpus.utterances][8:]
    store._extract_and_save(SlowStamp(str(tmp_path / "holder-log")), utts, entry / "part-00002.npz")
    holder.release()
    t.join(timeout=60)
    assert not t.is_alive() and not errors
    assert {uid for _, uid in _extracted(tmp_path / "log")} == {f"u{i}" for i in range(8)}  # not u8..u11
    assert progress[-1] == (n, n)
    table = store.load_table(entry)
    assert table.uids == [f"u{i}" for i in range(n)]
    np.testing.assert_array_equal(table.pooled[9], [9, 18, 1])
