"""Aligning soujanyaporia's id-less MOSI audio features to our clip ids (datasets/mosi/soujanyaporia_audio.py)."""

import pickle

import numpy as np
import pytest
from conftest import shared_data_or_skip

from merbench.datasets.mosi import soujanyaporia_audio as sa
from merbench.errors import MerbenchError, UnsafePickleError


def _write_pack(path, videos_train, videos_test, max_len=4):
    """videos_*: lists of (features (n, 73), labels) -> the 7-tuple layout of the original pickle."""
    def pad(videos):
        feats = np.zeros((len(videos), max_len, sa.FEATURE_DIM))
        labels = np.zeros((len(videos), max_len))
        for i, (f, lab) in enumerate(videos):
            feats[i, :len(lab)] = f
            labels[i, :len(lab)] = lab
        return feats, labels, [len(lab) for _, lab in videos]
    tr, trl, trn = pad(videos_train)
    te, tel, ten = pad(videos_test)
    path.write_bytes(pickle.dumps((tr, trl, te, tel, max_len, trn, ten), protocol=2))
    return path


def _write_labels(root, scores: dict[str, float]):
    """A MERTools-style label file: every clip in train_corpus."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = {uid: {"emo": 0, "val": s} for uid, s in scores.items()}
    empty = np.array({}, dtype=object)
    np.savez(root / "merbench_label.npz", train_corpus=np.array(corpus, dtype=object),
             val_corpus=empty, test_corpus=empty)
    return root


def _rows(n, start):
    return np.arange(start, start + n, dtype=float)[:, None] * np.ones((1, sa.FEATURE_DIM))


def test_prepare_writes_features_under_clip_ids_and_never_the_labels(tmp_path):
    # video A: clips 1..3 (scores -1, 2, 0 -> labels 0, 1, 1); video B: clips 1..2 (0.5, -2 -> 1, 0)
    # B clip 10 sorts before clip 2 as text: the fingerprint must use the numeric clip index.
    root = _write_labels(tmp_path / "mosi", {"A_1": -1.0, "A_2": 2.0, "A_3": 0.0,
                                             "B_1": 0.5, "B_2": -2.0, "B_10": -1.0})
    pack = _write_pack(tmp_path / "audio.pickle", [(_rows(3, 10), [0, 1, 1])], [(_rows(3, 20), [1, 0, 0])])
    out = tmp_path / "pack"
    manifest = sa.prepare(pack, out, root, order_check=False)
    assert manifest["videos"] == {"A": {"pack": "train[0]", "clips": 3}, "B": {"pack": "test[0]", "clips": 3}}
    got = {p.stem: np.load(p) for p in out.glob("*.npy")}
    assert sorted(got) == ["A_1", "A_2", "A_3", "B_1", "B_10", "B_2"]
    assert [got[f"A_{i}"][0] for i in (1, 2, 3)] == [10, 11, 12]
    assert [got[f"B_{i}"][0] for i in (1, 2, 10)] == [20, 21, 22]
    assert all(a.shape == (sa.FEATURE_DIM,) and a.dtype == np.float32 for a in got.values())


def test_ambiguous_fingerprint_is_refused_and_nothing_is_written(tmp_path):
    # two of our videos with the same (count, label sequence): the pack's video could be either
    root = _write_labels(tmp_path / "mosi", {"A_1": -1.0, "A_2": 1.0, "B_1": -0.4, "B_2": 3.0})
    pack = _write_pack(tmp_path / "audio.pickle", [(_rows(2, 0), [0, 1])], [(_rows(2, 5), [0, 1])])
    out = tmp_path / "pack"
    with pytest.raises(MerbenchError, match=r"train\[0\] .* matches 2 videos \(A, B\)"):
        sa.prepare(pack, out, root, order_check=False)
    assert not out.exists()


def test_unmatched_video_is_refused(tmp_path):
    root = _write_labels(tmp_path / "mosi", {"A_1": -1.0, "A_2": 1.0, "B_1": 1.0})
    pack = _write_pack(tmp_path / "audio.pickle", [(_rows(2, 0), [1, 0])], [(_rows(1, 5), [1])])
    with pytest.raises(MerbenchError, match=r"train\[0\] \(2 utterances, 1 positive\) matches no video"):
        sa.prepare(pack, tmp_path / "pack", root, order_check=False)


def test_bad_padding_and_unsafe_pickles_are_refused(tmp_path):
    pack = _write_pack(tmp_path / "audio.pickle", [(_rows(2, 1), [1, 0])], [(_rows(1, 1), [1])])
    data = list(pickle.loads(pack.read_bytes()))
    data[0][0, 3, 0] = 7.0  # a value after the video's 2 utterances
    pack.write_bytes(pickle.dumps(tuple(data)))
    with pytest.raises(MerbenchError, match=r"train\[0\]: non-zero padding after its 2 utterances"):
        sa.read_pack(pack)

    class Boom:
        def __reduce__(self):
            return (print, ("executed",))
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps((Boom(),)))
    with pytest.raises(UnsafePickleError, match="builtins.print"):
        sa.read_pack(evil)


def test_real_pack_aligns_uniquely_and_in_clip_order():
    data = shared_data_or_skip()
    videos = sa.read_pack(data / "mosi" / "audio_features_soujanyaporia.pickle")
    prints = sa.corpus_fingerprints(data / "mosi")
    assert len(videos) == 93 and sum(len(v.labels) for v in videos) == 2199
    aligned = sa.align(videos, prints)
    assert len(aligned) == 93 and len({v.where for v in aligned.values()}) == 93
    # the label sequences alone pin the order across labels to a chance of 1e-471
    assert sa.chance_log10(videos) < -400
    # clips ordered as text ("_1", "_10", "_11", "_2") no longer align: the order is the numeric one
    as_text = {v: (sorted(u, key=lambda x: x.rpartition("_")[2]),
                   tuple(lab for _, lab in sorted(zip(u, labs), key=lambda p: p[0].rpartition("_")[2])))
               for v, (u, labs) in prints.items()}
    with pytest.raises(MerbenchError, match="without guessing"):
        sa.align(videos, as_text)


def test_real_pack_order_among_same_label_clips_follows_the_transcripts():
    from merbench.datasets.mosi.adapter import MOSIDataset

    data = shared_data_or_skip()
    videos = sa.read_pack(data / "mosi" / "audio_features_soujanyaporia.pickle")
    prints = sa.corpus_fingerprints(data / "mosi")
    aligned = sa.align(videos, prints)
    check = sa.word_count_order_check(aligned, prints, MOSIDataset(data / "mosi")._texts(), shuffles=20)
    assert check["z"] > 8 and check["observed"] > check["shuffled_max"]


def test_a_pack_supplies_a_modality_the_corpus_has_no_media_for():
    from types import SimpleNamespace

    from merbench.errors import ConfigError
    from merbench.interfaces import parse_feature_request
    from merbench.runner import _check_modalities

    corpus = SimpleNamespace(modalities=("t",), root="/mosi")  # annotations only, as the shared copy
    pack = parse_feature_request({"extractor": "audio-pack", "options": {"path": "/p", "format": "npy-dir"}}, "a")
    _check_modalities(corpus, {"t": parse_feature_request("text-minilm", "t"), "a": pack}, "mosi")
    with pytest.raises(ConfigError, match="corpus mosi at /mosi has no audio files"):
        _check_modalities(corpus, {"t": parse_feature_request("text-minilm", "t"),
                                   "a": parse_feature_request("audio-egemaps", "a")}, "mosi")
