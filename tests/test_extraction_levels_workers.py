"""openSMILE levels computed only when read, both levels from one openSMILE run, and extraction in
a process pool (same arrays as in one process; a failing worker names its file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from merbench.corpus import Corpus
from merbench.errors import FeatureExtractionError
from merbench.interfaces import ExtractedItem, FeatureExtractor, FeatureRequest

SR = 16000


def _speechlike(path: Path, seconds: float, f0: float, seed: int) -> Path:
    """A voiced-like signal (harmonics with a moving pitch, noise, an amplitude envelope): openSMILE
    finds pitch and formant-ish energy in it, so every LLD moves."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(np.pi * t / seconds))
    x = 0.1 * x + 0.005 * rng.standard_normal(len(t))
    sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")
    return path


def _corpus(root: Path, n: int, corrupt: set[int] = frozenset()) -> Corpus:
    from test_features import _audio_corpus  # n tones of 0.3 s, u0..u{n-1}

    return _audio_corpus(root, n, corrupt)


@pytest.mark.parametrize("name", ["eGeMAPSv02", "ComParE_2016"])
def test_one_opensmile_run_gives_the_arrays_of_one_smile_per_level(tmp_path, name):
    import opensmile

    from merbench.features.audio import ComParE2016Extractor, EGeMAPSExtractor

    cls = EGeMAPSExtractor if name == "eGeMAPSv02" else ComParE2016Extractor
    ex = cls()
    fs = getattr(opensmile.FeatureSet, name)
    per_level = {lvl: opensmile.Smile(feature_set=fs, feature_level=lvl)
                 for lvl in (opensmile.FeatureLevel.Functionals, opensmile.FeatureLevel.LowLevelDescriptors)}
    for i, seconds in enumerate((1.3, 0.35) if cls is EGeMAPSExtractor else (0.5,)):
        x = sf.read(_speechlike(tmp_path / f"{i}.wav", seconds, 140 + 40 * i, i), dtype="float32")[0]
        got = ex.features(x)
        func = per_level[opensmile.FeatureLevel.Functionals].process_signal(x, SR).to_numpy(np.float32)[0]
        lld = per_level[opensmile.FeatureLevel.LowLevelDescriptors].process_signal(x, SR).to_numpy(np.float32)
        assert got.frames.shape == lld.shape and len(lld) > 10
        np.testing.assert_array_equal(got.pooled, func)
        np.testing.assert_array_equal(got.frames, lld)
        pooled_only = cls(with_frames=False).features(x)
        assert pooled_only.frames is None
        np.testing.assert_array_equal(pooled_only.pooled, func)


def test_pooled_request_computes_no_llds_and_has_its_own_cache_entry(tmp_path, monkeypatch):
    from merbench.features import audio, store
    from merbench.features.factory import make_extractor
    from merbench.runner import Reporter, load_features

    def no_llds(*a, **k):
        raise AssertionError("LLDs computed for a pooled-only request")

    monkeypatch.setenv("MERBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(audio, "_functionals_and_llds", no_llds)
    corpus = _corpus(tmp_path / "wavs", 3)  # under 2 chunks: extracted in this process, where the patch is
    tables, _, _, settings = load_features(corpus, {"a": FeatureRequest("audio-egemaps", level="pooled")},
                                           Reporter(), "error")
    assert tables["a"].pooled.shape == (3, 88) and tables["a"].frames is None
    assert settings["a"]["settings"]["levels"] == "pooled"

    pooled = make_extractor(FeatureRequest("audio-egemaps", level="pooled"), only_requested_level=True)
    both = make_extractor(FeatureRequest("audio-egemaps", level="frames"), only_requested_level=True)
    assert (pooled.with_frames, both.with_frames) == (False, True)
    assert make_extractor(FeatureRequest("audio-egemaps", level="pooled")).with_frames  # bench features extract
    cache = tmp_path / "cache"
    assert store.entry_dir(corpus, pooled, cache) != store.entry_dir(corpus, both, cache)
    monkeypatch.undo()
    # The entry that holds frames keeps the settings (and so the cache key) it had before levels could be chosen.
    assert set(both.settings()) == {"feature_set", "sample_rate", "min_samples", "opensmile"}
    with pytest.raises(Exception, match="no option 'with_frames'"):  # a config cannot set it
        make_extractor(FeatureRequest("audio-egemaps", options={"with_frames": False}))


def test_pool_gives_the_arrays_of_one_process(tmp_path, monkeypatch):
    from merbench.features import store
    from merbench.features.audio import EGeMAPSExtractor

    monkeypatch.setattr(store, "PART_SIZE", 5)  # parts split across chunks and chunks across parts
    corpus = _corpus(tmp_path / "wavs", 12, corrupt={7})
    one = store.extract_corpus(corpus, EGeMAPSExtractor(), cache=tmp_path / "one", workers=1)
    progress = []
    two = store.extract_corpus(corpus, EGeMAPSExtractor(), cache=tmp_path / "two", workers=2,
                               progress=lambda d, t: progress.append((d, t)))
    a, b = store.load_table(one), store.load_table(two)
    assert a.uids == b.uids == [u.uid for u in corpus.utterances]
    np.testing.assert_array_equal(a.pooled, b.pooled)
    np.testing.assert_array_equal(a.valid, b.valid)
    assert a.valid.tolist() == [i != 7 for i in range(12)]
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa, fb)
    assert store.bad_media(one) == store.bad_media(two) and store.bad_media(two)[0]["uid"] == "u7"
    assert progress[-1] == (12, 12) and len(progress) > 2  # moves chunk by chunk


def test_pooled_only_entry_is_copied_from_a_finished_entry_of_both_levels(tmp_path, monkeypatch):
    """A pooled-only request whose both-levels entry is finished copies its functionals (the same
    numbers: one openSMILE run gives both levels) instead of running openSMILE again; the entry is
    the one extracting would write, and says where it came from."""
    import json

    from merbench.features import audio, store
    from merbench.features.audio import EGeMAPSExtractor

    monkeypatch.setattr(store, "PART_SIZE", 3)
    corpus = _corpus(tmp_path / "wavs", 7, corrupt={4})
    store.extract_corpus(corpus, EGeMAPSExtractor(), cache=tmp_path / "cache")
    extracted = store.extract_corpus(corpus, EGeMAPSExtractor(with_frames=False), cache=tmp_path / "fresh")

    def no_opensmile(*a, **k):
        raise AssertionError("openSMILE ran for features a finished entry holds")

    monkeypatch.setattr(audio.OpenSmileExtractor, "features", no_opensmile)
    copied = store.extract_corpus(corpus, EGeMAPSExtractor(with_frames=False), cache=tmp_path / "cache", workers=2)
    meta_copied, meta_extracted = (json.loads((e / "meta.json").read_text()) for e in (copied, extracted))
    both_levels = store.entry_dir(corpus, EGeMAPSExtractor(), tmp_path / "cache")
    assert meta_copied.pop("pooled_from") == f"{both_levels.parent.name}/{both_levels.name}"
    assert meta_copied == meta_extracted
    a, b = store.load_table(copied), store.load_table(extracted)
    assert a.uids == b.uids and a.frames is None and b.frames is None
    np.testing.assert_array_equal(a.pooled, b.pooled)
    np.testing.assert_array_equal(a.valid, b.valid)
    assert store.bad_media(copied)[0]["uid"] == "u4"


def _rewrite_parts(entry, change):
    """Rewrite every part of a cache entry with ``change(name, bytes_of_member)`` applied (None drops it),
    and the part sizes meta.json records with them (as the entry was written then)."""
    import json
    import zipfile

    for part in sorted(entry.glob("part-*.npz")):
        with zipfile.ZipFile(part) as z:
            members = {i.filename: z.read(i.filename) for i in z.infolist()}
        with zipfile.ZipFile(part, "w") as z:
            for name, data in members.items():
                data = change(name, data)
                if data is not None:
                    z.writestr(name, data)
    meta = json.loads((entry / "meta.json").read_text())
    meta["part_sizes"] = [p.stat().st_size for p in sorted(entry.glob("part-*.npz"))]
    (entry / "meta.json").write_text(json.dumps(meta))


def test_pooled_copy_takes_parts_of_an_entry_made_before_notes_were_kept(tmp_path, monkeypatch):
    """Both-levels parts without the bad / notes arrays (written before they existed) are copied too."""
    from merbench.features import audio, store
    from merbench.features.audio import EGeMAPSExtractor

    monkeypatch.setattr(store, "PART_SIZE", 3)
    corpus = _corpus(tmp_path / "wavs", 5)
    both = store.extract_corpus(corpus, EGeMAPSExtractor(), cache=tmp_path / "cache")
    _rewrite_parts(both, lambda name, data: None if name in ("notes.npy", "bad.npy") else data)
    monkeypatch.setattr(audio.OpenSmileExtractor, "features", lambda *a, **k: pytest.fail("openSMILE ran"))
    copied = store.extract_corpus(corpus, EGeMAPSExtractor(with_frames=False), cache=tmp_path / "cache")
    table = store.load_table(copied)
    np.testing.assert_array_equal(table.pooled, store.load_table(both, frames=False).pooled)
    assert store.media_notes(copied) == {} and store.bad_media(copied) == []


def test_a_both_levels_part_that_cannot_be_copied_is_extracted_instead(tmp_path, monkeypatch):
    """A part of the finished entry that fails to copy (a CRC error inside an array whose headers read
    fine, or a part removed since the check) does not stop the run: it is named and that part
    extracted, the others copied; the arrays are those of extracting."""
    import zipfile

    from merbench.features import store
    from merbench.features.audio import EGeMAPSExtractor

    monkeypatch.setattr(store, "PART_SIZE", 3)
    corpus = _corpus(tmp_path / "wavs", 6)
    store.extract_corpus(corpus, EGeMAPSExtractor(), cache=tmp_path / "cache")
    fresh = store.extract_corpus(corpus, EGeMAPSExtractor(with_frames=False), cache=tmp_path / "fresh")
    copy = store._save_pooled_part

    def damaged_inside(source, path):
        if source.name == "part-00001.npz":
            raise zipfile.BadZipFile("Bad CRC-32 for file 'pooled.npy'")
        return copy(source, path)

    monkeypatch.setattr(store, "_save_pooled_part", damaged_inside)
    warnings = []
    copied = store.extract_corpus(corpus, EGeMAPSExtractor(with_frames=False), cache=tmp_path / "cache",
                                  warn=warnings.append)
    assert len(warnings) == 1 and "part-00001.npz could not be copied (BadZipFile" in warnings[0], warnings
    np.testing.assert_array_equal(store.load_table(copied).pooled, store.load_table(fresh).pooled)


def test_a_progress_callback_that_raises_leaves_no_part_locked(tmp_path, monkeypatch):
    from merbench.atomic import HeldLock
    from merbench.features import store
    from merbench.features.audio import EGeMAPSExtractor

    monkeypatch.setattr(store, "PART_SIZE", 3)
    corpus = _corpus(tmp_path / "wavs", 9)

    def progress(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    # The exception is kept (as a caller that logs or retries keeps it, with its traceback and so the
    # extraction's frames): the locks must be let go all the same, not when those frames are freed.
    with pytest.raises(KeyboardInterrupt) as kept:
        store.extract_corpus(corpus, EGeMAPSExtractor(), cache=tmp_path / "cache", workers=2, progress=progress)
    assert kept.tb is not None
    entry = store.entry_dir(corpus, EGeMAPSExtractor(), tmp_path / "cache")
    for k in range(3):
        lock = HeldLock(entry / f".part-{k:05d}.lock")
        assert lock.take(wait=False), f"part {k} still locked"
        lock.release()


def test_face_crops_from_the_pool_are_those_of_one_process(tmp_path):
    from merbench.datasets.synthetic.generator import generate
    from merbench.datasets.synthetic.adapter import SyntheticDataset
    from merbench.features import store
    from merbench.features.store import default_workers
    from merbench.features.video import FaceCropExtractor

    root = generate(tmp_path / "syn", n_dialogues=3, seed=0, workers=1)
    full = SyntheticDataset(root).load()
    corpus = Corpus("syn-head", full.utterances[:10], root=full.root)
    assert default_workers(FaceCropExtractor()) == default_workers(type("P", (), {"parallel": True})())
    one = store.load_table(store.extract_corpus(corpus, FaceCropExtractor(), cache=tmp_path / "one", workers=1))
    two = store.load_table(store.extract_corpus(corpus, FaceCropExtractor(), cache=tmp_path / "two", workers=2))
    np.testing.assert_array_equal(one.pooled, two.pooled)
    for fa, fb in zip(one.frames, two.frames):
        np.testing.assert_array_equal(fa, fb)


class FailsOnU5(FeatureExtractor):
    """Raises a plain error (not an unreadable-file error) on utterance u5."""

    name = "test-fails-on-u5"
    modality = "a"
    batch_size = 4

    def extract(self, utterances):
        if any(u.uid == "u5" for u in utterances):
            raise RuntimeError("boom inside the extractor")
        return [ExtractedItem(pooled=np.ones(2, np.float32)) for _ in utterances]


def test_a_failing_worker_names_the_file(tmp_path):
    from merbench.features import store

    corpus = _corpus(tmp_path / "wavs", 12)
    with pytest.raises(FeatureExtractionError) as err:
        store.extract_corpus(corpus, FailsOnU5(), cache=tmp_path / "cache", workers=2)
    assert str(tmp_path / "wavs" / "u5.wav") in err.value.message and "boom inside the extractor" in err.value.message


def test_every_core_for_one_core_extractors_only(monkeypatch):
    import os

    from merbench.features.audio import EGeMAPSExtractor
    from merbench.features.store import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert default_workers(EGeMAPSExtractor()) == 3
    assert default_workers(FailsOnU5()) == 1  # not marked parallel (e.g. a torch model, threaded already)
