"""The real release layouts, proven end to end on real-shaped media (tests/realshaped_media.py):
MELD.Raw (H.264 + AAC in one mp4, 25 fps, several faces, a clip with no face, one shorter than
0.1 s, one with a variable frame rate) and the IEMOCAP release (wav per utterance, side-by-side
avi per dialogue cut by the EmoEvaluation times) through the adapters, `bench data check`, every
offline extractor, `bench run mlp` with t,a,v and the active-speaker choice. Decoding needs no
ffmpeg program: PyAV carries FFmpeg in its wheel."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV (the `av` package, a merbench dependency) is not installed")

import realshaped_media as rs  # noqa: E402
from merbench.cli import main  # noqa: E402
from merbench.datasets.iemocap.adapter import IEMOCAPDataset  # noqa: E402
from merbench.datasets.meld.adapter import MELDDataset  # noqa: E402
from merbench.features.media import read_audio, read_video  # noqa: E402


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("realshaped")
    meld = rs.write_meld_raw(root / "meld")
    iemocap = rs.write_iemocap_release(root / "iemocap")
    return root, meld, iemocap


@pytest.fixture
def no_ffmpeg(monkeypatch, tmp_path):
    """A PATH without any ffmpeg program, as on a fresh machine."""
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("ffmpeg") is None


def test_mp4_audio_and_video_decode_without_an_ffmpeg_program(trees, no_ffmpeg):
    _, meld, _ = trees
    for uid, m in meld.items():
        x = read_audio(m["clip"])  # AAC at 48 kHz stereo -> 16 kHz mono
        assert x.dtype == np.float32 and x.ndim == 1
        # AAC pads the stream to whole 1024-sample frames (plus its priming delay): allow 2 frames
        assert abs(len(x) - m["seconds"] * 16000) <= 2 * 1024 / 3 + 16, (uid, len(x))
        frames, fps = read_video(m["clip"], max_frames=0)
        assert frames.shape[1:] == (rs.HEIGHT, rs.WIDTH, 3)
        n = len(rs.speech(np.random.default_rng(0), m["seconds"], 48000, 100.0)[1])  # frames written
        assert len(frames) == n, uid
        if m["kind"] == "vfr":
            assert 25 <= fps <= 34  # the average rate of 20 / 60 ms frames as the container states it
        else:
            assert fps == pytest.approx(25.0)
    short = next(m for m in meld.values() if m["kind"] == "short")
    assert len(read_video(short["clip"], max_frames=0)[0]) == 2  # 0.08 s: two frames at 25 fps


def test_meld_raw_layout_through_the_adapter_and_data_check(trees, capsys):
    root, meld, _ = trees
    corpus = MELDDataset(root / "meld").load()
    assert len(corpus) == len(meld) and corpus.modalities == ("t", "a", "v")
    u = corpus["train/dia1_utt2"]
    assert u.video_path == str(meld["train/dia1_utt2"]["clip"]) and u.audio_path == u.video_path  # audio in the mp4
    assert u.label == meld["train/dia1_utt2"]["label"] and u.meta["split"] == "train"
    assert main(["data", "check", "meld", "--root", str(root / "meld")]) == 0
    out = capsys.readouterr().out
    for kind in ("audio", "video"):
        row = next(ln for ln in out.splitlines() if re.match(rf"\W*{kind}\b", ln))
        present, missing, unreadable = (int(x) for x in re.findall(r"\d+", row)[:3])
        assert (present, missing, unreadable) == (len(meld), 0, 0), row
    assert re.search(r"0\.0[89] / 1\.0|/ 0\.0[89] /", out)  # the shortest clip's duration is shown


def test_iemocap_release_layout_prepare_cuts_utterance_clips(trees, capsys):
    root, _, iemocap = trees
    adapter = IEMOCAPDataset(root / "iemocap")
    before = adapter.load()
    assert len(before) == len(iemocap) and before.modalities == ("t", "a")  # one avi per dialogue only
    u = before["Ses01F_impro02_M001"]
    m = iemocap[u.uid]
    assert u.audio_path == str(m["wav"]) and u.text == f"turn 3 of Ses01F_impro02 said with {m['code']}."
    assert u.meta["start"] == pytest.approx(m["start"], abs=1e-3) and u.meta["split6"] == "train"
    assert before["Ses01M_impro01_M000"].meta["split6"] == "valid" and before["Ses05F_impro01_F000"].meta["split6"] == "test"
    assert main(["data", "prepare", "iemocap", "--root", str(root / "iemocap")]) == 0
    after = adapter.load()
    assert after.modalities == ("t", "a", "v")
    for x in after.utterances:
        frames, fps = read_video(x.video_path, max_frames=0)
        expected = round((iemocap[x.uid]["end"] - iemocap[x.uid]["start"]) * rs.FPS)
        assert abs(len(frames) - expected) <= 1 and fps == pytest.approx(25.0), x.uid
        assert frames.shape[2] == rs.WIDTH  # both actors, side by side


def _offline_extractors(tmp_path):
    """Every extractor that runs here without a network: built-in models, or tiny random ones."""
    from test_features_more import _speech_model, build_tiny_mlm, build_tiny_vit

    from merbench.cli import build_extractor

    mlm, vit = build_tiny_mlm(tmp_path / "mlm", max_positions=512), build_tiny_vit(tmp_path / "vit")
    return {
        "text-minilm": build_extractor("text-minilm"),
        "text-hf": build_extractor("text-hf", options={"model_name": str(mlm)}),
        "text-context": build_extractor("text-context", options={"model_name": str(mlm)}),
        "audio-egemaps": build_extractor("audio-egemaps"),
        "audio-compare": build_extractor("audio-compare"),
        "audio-logmel": build_extractor("audio-logmel"),
        "audio-hf": build_extractor("audio-hf", options={"model_name": str(_speech_model(tmp_path, "wav2vec2"))}),
        "video-facecrop": build_extractor("video-facecrop"),
        "video-hf": build_extractor("video-hf", options={"model_name": str(vit)}),
    }


@pytest.mark.slow
def test_every_offline_extractor_on_both_layouts(trees, tmp_path, merbench_home, no_ffmpeg):
    from merbench.features.store import bad_media, extract_corpus

    root, _, _ = trees
    meld = MELDDataset(root / "meld").load()
    adapter = IEMOCAPDataset(root / "iemocap")
    adapter.prepare(progress=False)
    iemocap = adapter.load()
    for name, ext in _offline_extractors(tmp_path).items():
        for corpus in (meld, iemocap):
            entry = extract_corpus(corpus, ext)
            assert bad_media(entry) == [], (name, corpus.name, bad_media(entry))
            items = ext.extract(corpus.utterances[:3])
            assert all(np.isfinite(it.pooled).all() and it.pooled.size for it in items), (name, corpus.name)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["meld", "iemocap"])
def test_mlp_with_text_audio_video_runs_and_reaches_the_leaderboard(trees, dataset, tmp_path, merbench_home,
                                                                    no_ffmpeg, capsys):
    root, _, _ = trees
    corpus_root = root / dataset
    if dataset == "iemocap":
        IEMOCAPDataset(corpus_root).prepare(progress=False)
    results = tmp_path / "results"
    rc = main(["run", "mlp", dataset, "--root", str(corpus_root), "--modalities", "t,a,v", "--seed", "0",
               "--epochs", "1", "--results-dir", str(results)])
    assert rc == 0, capsys.readouterr().err
    (path,) = results.rglob("*.json")
    import json

    r = json.loads(path.read_text())
    assert r["modalities"] == "tav" and r["dataset"] == dataset
    assert sum(f["n_test"] for f in r["folds"]) == (5 if dataset == "meld" else 4)
    capsys.readouterr()
    assert main(["leaderboard", "--results-dir", str(results), "--no-extras"]) == 0
    assert any(ln.startswith("| mlp") for ln in capsys.readouterr().out.splitlines())


def _choices(corpus, manifest, selector):
    """(chosen face centre x, the fixture's speaker x) per clip with two or more faces."""
    from merbench.features.video import FaceCropExtractor

    picked = []

    def spy(tracks, audio, frames):
        k = selector(tracks, audio, frames)
        picked.append(float(np.median(tracks[k].filled()[:, 0] + tracks[k].filled()[:, 2] / 2)))
        return k

    spy.needs_audio = getattr(selector, "needs_audio", False)
    out = []
    for u in corpus.utterances:
        m = manifest[u.uid]
        if (m.get("n_faces") or 2) < 2:
            continue
        picked.clear()
        FaceCropExtractor(select_track=spy, max_frames=0).extract([u])
        if picked:
            out.append((picked[0], m["speaker_x"]))
    return out


def test_active_speaker_choice_on_25fps_clips(trees):
    """The face-track choice runs on the 25 fps clips (every frame kept) and is checked against the
    face the fixture made speak: the mouth-motion selector in every clip with two or three faces."""
    from merbench.features.video import select_by_mouth_motion

    root, meld_manifest, _ = trees
    meld = MELDDataset(root / "meld").load()
    choices = _choices(meld, meld_manifest, select_by_mouth_motion)
    assert len(choices) >= 12  # every clip with faces but the two-frame one has two or three tracks
    wrong = [(x, want) for x, want in choices if abs(x - want) > 20]
    assert not wrong, wrong


@pytest.mark.slow
def test_lipsync_choice_on_25fps_clips_after_training_on_the_train_clips(trees):
    """LipSync's selector at 25 fps (640 audio samples per video frame). No trained LipSyncNet ships
    (`train_lipsync` makes one), so a fresh one is trained here for a few steps on the fixture's
    TRAIN clips (speaker track + its audio: in sync; a listener track + the same audio: not), then
    its choice on the dev and test clips, never trained on, must be the face the fixture made speak."""
    import torch

    from merbench.features.active_speaker.selector import LipSyncSelector
    from merbench.features.active_speaker.lipsync import (AVSyncLoss, LipSyncConfig, LipSyncNet, face_crops, log_mel,
                                                          utterance_windows)
    from merbench.features.video import default_detector, track_faces

    root, manifest, _ = trees
    cfg = LipSyncConfig(crop_size=32)

    def centre(track) -> float:
        b = track.filled()
        return float(np.median(b[:, 0] + b[:, 2] / 2))

    def clip(m):
        frames, fps = read_video(m["clip"], max_frames=0)
        assert fps == pytest.approx(25.0) or m["kind"] == "vfr"
        return frames, track_faces([default_detector().detect(f) for f in frames]), read_audio(m["clip"])

    usable = {uid: m for uid, m in manifest.items() if m["n_faces"] >= 2 and m["kind"] != "short"}
    sync, off = [], []
    for uid, m in usable.items():
        if not uid.startswith("train/"):
            continue
        frames, tracks, audio = clip(m)
        mel = log_mel(audio, samples_per_frame=16000 / rs.FPS, n_frames=len(frames))
        speaker = min(tracks, key=lambda t: abs(centre(t) - m["speaker_x"]))
        for tr in tracks:
            crops = face_crops(frames, tr.filled(), cfg.crop_size, cfg.crop_margin, cfg.crop_region)
            (sync if tr is speaker else off).append(utterance_windows(crops, mel, cfg.window_frames, cfg.center_window))
    v, a = (torch.from_numpy(np.concatenate([w[i] for w in sync])) for i in (0, 1))
    nv, na = (torch.from_numpy(np.concatenate([w[i] for w in off])) for i in (0, 1))
    torch.manual_seed(0)
    model, loss_fn = LipSyncNet(), AVSyncLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        model.train()
        i, j = torch.randint(len(v), (16,), generator=g), torch.randint(len(nv), (16,), generator=g)
        loss = loss_fn(model.distance(v[i], a[i]), model.distance(nv[j], na[j]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    selector = LipSyncSelector(model.eval(), cfg, fps=rs.FPS)
    held_out = {uid: m for uid, m in usable.items() if not uid.startswith("train/")}
    assert len(held_out) == 8 and any(m["n_faces"] == 3 for m in held_out.values())
    for uid, m in held_out.items():
        frames, tracks, audio = clip(m)
        k = selector(tracks, audio, frames)
        assert abs(centre(tracks[k]) - m["speaker_x"]) < 20, (uid, selector.track_distances(tracks, audio, frames))
