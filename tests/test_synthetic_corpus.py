"""The synthetic corpus: determinism, real readable files, splits, planted cues, adapter."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
sf = pytest.importorskip("soundfile")

from merbench.corpus import Corpus  # noqa: E402
from merbench.datasets.synthetic import generator as gen  # noqa: E402
from merbench.datasets.synthetic.adapter import SyntheticDataset  # noqa: E402
from merbench.errors import CorpusNotFoundError, MerbenchError  # noqa: E402

N_DIALOGUES = 12


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    return gen.generate(tmp_path_factory.mktemp("syn") / "synthetic", n_dialogues=N_DIALOGUES, seed=0, workers=1)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_frames(path: Path, gray: bool = True) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame)
    cap.release()
    return out


def test_layout_and_columns(corpus_root):
    for name in ("annotations.csv", "cues.csv", "generator.json", "audio", "video"):
        assert (corpus_root / name).exists(), name
    rows = read_csv(corpus_root / "annotations.csv")
    assert list(rows[0]) == list(gen.ANNOTATION_COLUMNS)
    assert len({r["dialogue_id"] for r in rows}) == N_DIALOGUES
    assert len({r["uid"] for r in rows}) == len(rows)
    info = json.loads((corpus_root / "generator.json").read_text())
    assert info["version"] == gen.GENERATOR_VERSION and info["seed"] == 0
    assert info["parameters"]["n_dialogues"] == N_DIALOGUES
    assert info["summary"]["n_utterances"] == len(rows)
    # No temporary folder is left next to the corpus.
    assert [p.name for p in corpus_root.parent.iterdir()] == ["synthetic"]
    per_dialogue = {}
    for r in rows:
        per_dialogue.setdefault(r["dialogue_id"], []).append(r)
    for d in per_dialogue.values():
        assert gen.SynthConfig().min_turns <= len(d) <= gen.SynthConfig().max_turns
        assert 2 <= len({r["speaker"] for r in d}) <= 3
        assert [int(r["turn"]) for r in d] == list(range(len(d)))


def test_deterministic_and_independent_of_workers(corpus_root, tmp_path):
    again = gen.generate(tmp_path / "again", n_dialogues=N_DIALOGUES, seed=0, workers=2)
    for name in ("annotations.csv", "cues.csv", "generator.json"):
        assert (again / name).read_bytes() == (corpus_root / name).read_bytes(), name
    rows = read_csv(corpus_root / "annotations.csv")
    for r in rows:
        assert (again / r["audio"]).read_bytes() == (corpus_root / r["audio"]).read_bytes(), r["audio"]
    # Video: same decoded frames (container bytes may depend on the FFmpeg build).
    v = rows[0]["video"]
    a_frames, b_frames = read_frames(again / v, gray=False), read_frames(corpus_root / v, gray=False)
    assert len(a_frames) == len(b_frames) and all(np.array_equal(x, y) for x, y in zip(a_frames, b_frames))


def test_different_seed_differs(corpus_root, tmp_path):
    other = gen.generate(tmp_path / "seed1", n_dialogues=3, seed=1, workers=1)
    a = [r for r in read_csv(corpus_root / "annotations.csv") if r["dialogue_id"] == "d0000"]
    b = [r for r in read_csv(other / "annotations.csv") if r["dialogue_id"] == "d0000"]
    assert [(r["text"], r["label"], r["speaker"]) for r in a] != [(r["text"], r["label"], r["speaker"]) for r in b]
    assert (corpus_root / a[0]["audio"]).read_bytes() != (other / b[0]["audio"]).read_bytes()


def test_media_files_readable(corpus_root):
    cfg = gen.SynthConfig()
    for r in read_csv(corpus_root / "annotations.csv"):
        info = sf.info(str(corpus_root / r["audio"]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert cfg.min_duration_s - 1e-3 <= info.duration <= cfg.max_duration_s + 1e-3
        cap = cv2.VideoCapture(str(corpus_root / r["video"]))
        assert cap.isOpened(), r["video"]
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5, abs=0.01)
        cap.release()
        frames = read_frames(corpus_root / r["video"], gray=False)
        # One frame per 80 ms of audio, 128x96 colour.
        assert len(frames) == math.ceil(info.frames / cfg.hop)
        assert frames[0].shape == (96, 128, 3)


def test_split_by_dialogue_and_labels(corpus_root):
    rows = read_csv(corpus_root / "annotations.csv")
    split_of: dict[str, set] = {}
    for r in rows:
        split_of.setdefault(r["dialogue_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values()), "a dialogue crosses splits"
    counts = {s: sum(next(iter(v)) == s for v in split_of.values()) for s in ("train", "valid", "test")}
    assert counts == {"train": 8, "valid": 1, "test": 3}  # 70/10/20 of 12 dialogues
    assert {r["label"] for r in rows} == set(gen.EMOTIONS)


def test_text_cue_matches_lexicon(corpus_root):
    cues = read_csv(corpus_root / "cues.csv")
    text = {r["uid"]: r["text"] for r in read_csv(corpus_root / "annotations.csv")}
    kinds = {c["text_cue"] for c in cues}
    assert kinds <= {"own", "other", "absent"} and "absent" in kinds and "own" in kinds
    for c in cues:
        if c["text_cue"] == "absent":
            assert not any(w in text[c["uid"]].split() for ws in gen.LEXICON.values() for w in ws)
        else:
            assert c["text_word"] in gen.LEXICON[c["text_word_emotion"]]
            assert c["text_word"] in text[c["uid"]]
            assert (c["text_word_emotion"] == c["label"]) == (c["text_cue"] == "own")


def _mouth_darkness(frames: list[np.ndarray], cx: float, cy: float, face_h: float) -> np.ndarray:
    """Dark (open-mouth) pixels in a box around where the face's mouth is drawn."""
    my = cy + 0.24 * face_h
    x0, x1 = int(round(cx - 9)), int(round(cx + 9))
    y0, y1 = int(round(my - 6)), int(round(my + 9))
    return np.array([(f[y0:y1, x0:x1] < 70).sum() for f in frames], float)


def test_mouth_opening_follows_audio_envelope(corpus_root):
    """Measured from the rendered frames and the wav: the speaker's mouth tracks the
    speech RMS frame by frame; a listener's moving mouth does not."""
    hop = gen.SynthConfig().hop
    speaker_r, listener_r = [], []
    for c in read_csv(corpus_root / "cues.csv"):
        frames = read_frames(corpus_root / "video" / f"{c['uid']}.mp4")
        wav, _ = sf.read(str(corpus_root / "audio" / f"{c['uid']}.wav"))
        n = len(frames)
        padded = np.zeros(n * hop)
        padded[: min(len(wav), n * hop)] = wav[: n * hop]
        rms = np.sqrt((padded.reshape(n, hop) ** 2).mean(axis=1))
        mouth = _mouth_darkness(frames, float(c["speaker_face_x"]), float(c["speaker_face_y"]), float(c["speaker_face_h"]))
        speaker_r.append(np.corrcoef(mouth, rms)[0, 1])
        if c["listener_mouth"] == "moving":
            other = _mouth_darkness(frames, float(c["listener_face_x"]), float(c["listener_face_y"]),
                                    float(c["listener_face_h"]))
            listener_r.append(np.corrcoef(other, rms)[0, 1])
    assert np.median(speaker_r) > 0.8
    assert np.percentile(speaker_r, 10) > 0.5
    assert listener_r, "expected some listeners with moving mouths in 12 dialogues"
    assert np.median(np.abs(listener_r)) < 0.4


def test_listener_faces_and_sides(corpus_root):
    cues = read_csv(corpus_root / "cues.csv")
    two = [c for c in cues if c["n_faces"] == "2"]
    assert 0.1 < len(two) / len(cues) < 0.5
    assert {c["speaker_side"] for c in two} == {"left", "right"}
    assert all(float(c["speaker_face_h"]) >= 60 for c in cues)


def test_adapter_loads_and_protocol_builds(corpus_root):
    ds = SyntheticDataset(root=corpus_root)
    corpus = ds.load()
    assert isinstance(corpus, Corpus) and corpus.root == corpus_root
    rows = read_csv(corpus_root / "annotations.csv")
    assert len(corpus) == len(rows)
    keys = [(u.dialogue_id, u.turn) for u in corpus.utterances]
    assert keys == sorted(keys)
    u = corpus.utterances[0]
    assert Path(u.audio_path).is_absolute() and Path(u.audio_path).is_file()
    assert Path(u.video_path).is_absolute() and Path(u.video_path).is_file()
    assert set(u.meta) == {"split"}
    proto = SyntheticDataset.protocol()
    assert proto.name == "synthetic-4" and proto.label_names == ("neutral", "joy", "sadness", "anger")
    splits = proto.build(corpus)
    counts = splits.counts()[0]
    assert counts == {s: sum(r["split"] == s for r in rows) for s in ("train", "valid", "test")}
    assert len(splits.manifest_hash) == 64


def test_adapter_generates_when_missing_and_ignores_cues(tmp_path, monkeypatch):
    real = gen.generate
    calls = []

    def small(root, **kw):
        calls.append(kw)
        return real(root, n_dialogues=3, seed=0, workers=1)

    monkeypatch.setattr(gen, "generate", small)
    ds = SyntheticDataset(root=tmp_path / "data" / "synthetic")
    ds.prepare(progress=False)
    assert len(calls) == 1 and (ds.root / "annotations.csv").exists()
    (ds.root / "cues.csv").unlink()  # analysis only: loading must not need it
    assert len(ds.load()) > 0 and len(calls) == 1


def _copy_with(corpus_root: Path, dest: Path, edit) -> Path:
    dest.mkdir()
    shutil.copy(corpus_root / "generator.json", dest / "generator.json")
    os.symlink(corpus_root / "audio", dest / "audio")
    os.symlink(corpus_root / "video", dest / "video")
    rows = read_csv(corpus_root / "annotations.csv")
    cols, rows = edit(list(rows[0]), rows)
    with open(dest / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return dest


def test_malformed_csv_errors_name_file_and_row(corpus_root, tmp_path):
    no_label = _copy_with(corpus_root, tmp_path / "a", lambda cols, rows: ([c for c in cols if c != "label"], rows))
    with pytest.raises(CorpusNotFoundError) as e:
        SyntheticDataset(root=no_label).load()
    assert "label" in str(e.value) and "annotations.csv" in str(e.value) and e.value.fix

    def bad_label(cols, rows):
        rows[2]["label"] = "surprise"
        return cols, rows

    bad = _copy_with(corpus_root, tmp_path / "b", bad_label)
    with pytest.raises(MerbenchError) as e:
        SyntheticDataset(root=bad).load()
    assert "line 4" in str(e.value) and "surprise" in str(e.value) and e.value.fix

    def missing_media(cols, rows):
        rows[1]["audio"] = "audio/nope.wav"
        return cols, rows

    gone = _copy_with(corpus_root, tmp_path / "c", missing_media)
    with pytest.raises(CorpusNotFoundError, match="line 3"):
        SyntheticDataset(root=gone).load()


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    real = gen.render_dialogue

    def fail_on_second(cfg, out_dir, i, split):
        if i == 1:
            raise KeyboardInterrupt
        return real(cfg, out_dir, i, split)

    monkeypatch.setattr(gen, "render_dialogue", fail_on_second)
    with pytest.raises(KeyboardInterrupt):
        gen.generate(tmp_path / "synthetic", n_dialogues=3, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_foreign_folder(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(MerbenchError, match="generator.json"):
        gen.generate(target, n_dialogues=3, workers=1)
    assert (target / "notes.txt").read_text() == "keep me"
