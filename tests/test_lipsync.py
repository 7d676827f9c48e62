"""LipSyncNet, its windows, training entry point and the active-speaker selector hooks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from merbench.methods.lipsync_graph_erc.active_speaker import LipSyncSelector, RandomSelector
from merbench.methods.lipsync_graph_erc.lipsync import (
    AVSyncLoss, LipSyncConfig, LipSyncNet, MEL_PER_FRAME, audio_window, count_parameters, load_checkpoint, log_mel,
    mel_frame_span_seconds, pad_to_window, save_checkpoint, video_window, window_distances, window_span_seconds,
    window_starts)


@pytest.fixture(autouse=True)
def _few_threads():
    # One thread: on a shared, busy machine OpenMP threads waiting for each other cost
    # far more than they gain on these small tensors.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# -- the network --------------------------------------------------------------------------------


def test_parameter_count_of_the_faithful_configuration():
    # Counted by hand from the spec (weights + biases; BatchNorm: weight + bias):
    # video tower
    #   Conv3d 3->64, k 3x7x7:     3*64*147 + 64     =    28,288
    #   BatchNorm3d 64:            2*64              =       128
    #   Conv3d 64->128, k 3x5x5:   64*128*75 + 128   =   614,528
    #   BatchNorm3d 128:           2*128             =       256
    #   Conv3d 128->256, k 3x3x3:  128*256*27 + 256  =   884,992
    #   BatchNorm3d 256:           2*256             =       512
    #   Linear 1024->512:          1024*512 + 512    =   524,800
    #   BatchNorm1d 512:           2*512             =     1,024
    #   Linear 512->256:           512*256 + 256     =   131,328
    #                                          sum   = 2,185,856
    # audio tower
    #   Conv2d 1->64, k 5x5:       1*64*25 + 64      =     1,664
    #   BatchNorm2d 64:                              =       128
    #   Conv2d 64->128, k 5x5:     64*128*25 + 128   =   204,928
    #   BatchNorm2d 128:                             =       256
    #   Conv2d 128->256, k 3x3:    128*256*9 + 256   =   295,168
    #   BatchNorm2d 256:                             =       512
    #   Linear 256->512:           256*512 + 512     =   131,584
    #   BatchNorm1d 512:                             =     1,024
    #   Linear 512->256:                             =   131,328
    #                                          sum   =   766,592
    # total 2,185,856 + 766,592 = 2,952,448 (independent of the crop size: adaptive pools)
    model = LipSyncNet()
    assert count_parameters(model) == 2_952_448
    assert count_parameters(model.video_net) + count_parameters(model.video_fc) == 2_185_856
    assert count_parameters(model.audio_net) + count_parameters(model.audio_fc) == 766_592


@pytest.mark.parametrize("size", [48, 64])
def test_shapes_and_unit_norm_embeddings(size):
    torch.manual_seed(0)
    model = LipSyncNet().eval()
    v = model.encode_video(torch.randn(3, 3, 5, size, size))
    a = model.encode_audio(torch.randn(3, 1, 64, 20))
    assert v.shape == (3, 256) and a.shape == (3, 256)
    assert torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    d = model.distance(torch.randn(3, 3, 5, size, size), torch.randn(3, 1, 64, 20))
    assert d.shape == (3,) and bool(((d >= 0) & (d <= 2 + 1e-5)).all())
    with pytest.raises(ValueError, match="batch, 3, frames"):
        model.encode_video(torch.randn(3, 5, size, size))


def test_loss_formula():
    loss = AVSyncLoss(margin=1.5, alpha=0.7)
    d_pos, d_neg = torch.tensor([0.2, 0.4]), torch.tensor([1.0, 2.0])
    # ranking terms max(0, -(d_neg - d_pos) + 1.5): 0.7 and 0.0 -> mean 0.35; mean d_pos 0.3
    assert float(loss(d_pos, d_neg)) == pytest.approx(0.7 * 0.35 + 0.3 * 0.3)


def _toy_pairs(rng, n, size=32, frames=5):
    """Faces whose 'mouth' brightness follows an envelope; the audio's mel energy follows it
    (in sync) or follows another envelope (off sync)."""
    env = rng.random((n, frames))
    other = rng.random((n, frames))
    video = np.full((n, 3, frames, size, size), -0.5, np.float32)
    for i in range(n):
        for t in range(frames):
            video[i, :, t, size * 2 // 3:size * 5 // 6, size // 3:size * 2 // 3] = 2 * env[i, t] - 1
    def audio(e):
        a = np.full((n, 1, 64, 4 * frames), -1.0, np.float32)
        a += np.repeat(e, 4, axis=1)[:, None, None, :] * 1.5
        return a + rng.normal(0, 0.05, a.shape).astype(np.float32)
    return torch.from_numpy(video), torch.from_numpy(audio(env)), torch.from_numpy(audio(other))


def test_training_makes_in_sync_pairs_closer_than_off_sync():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = LipSyncNet()
    loss_fn = AVSyncLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    v, a, a_off = _toy_pairs(rng, 12, size=16)
    first = None
    for _ in range(30):
        model.train()
        ev = model.encode_video(v)
        ea = model.encode_audio(torch.cat([a, a_off]))
        d_pos, d_neg = (ev - ea[:12]).norm(dim=1), (ev - ea[12:]).norm(dim=1)
        loss = loss_fn(d_pos, d_neg)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        d_pos, d_neg = model.distance(v, a), model.distance(v, a_off)
        l_sync = float(loss_fn(d_pos, d_pos + 2.0))  # the pull term alone, margin satisfied
        l_off = float(loss_fn(d_neg, d_neg + 2.0))
    assert float(loss.detach()) < first
    assert float(d_pos.mean()) < float(d_neg.mean()) - 0.2
    assert l_sync < l_off


# -- windows and alignment --------------------------------------------------------------------


def test_audio_and_video_windows_cover_the_same_time_span():
    spf = 1280  # 16 kHz audio, 12.5 fps video
    for k in (0, 3, 11):
        t0, t1 = window_span_seconds(k, 5, fps=12.5)
        a0 = mel_frame_span_seconds(MEL_PER_FRAME * k, spf)[0]
        a1 = mel_frame_span_seconds(MEL_PER_FRAME * (k + 5) - 1, spf)[1]
        assert (a0, a1) == pytest.approx((t0, t1))
    # A noise burst only during video frame 7 shows up in mel frames 28..31 (and leaks at
    # most into the next mel frame on each side), so in the audio windows of exactly the
    # video windows that contain frame 7.
    n_frames = 15
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1e-4, n_frames * spf).astype(np.float32)
    x[7 * spf:8 * spf] += rng.normal(0, 0.3, spf).astype(np.float32)
    mel = log_mel(x, samples_per_frame=spf, n_frames=n_frames)
    assert mel.shape == (64, 4 * n_frames)
    energy = mel.mean(axis=0)
    loud = set(np.flatnonzero(energy > energy.min() + 0.5 * (energy.max() - energy.min())).tolist())
    assert {28, 29, 30, 31} <= loud <= {27, 28, 29, 30, 31, 32}
    # The audio window of video window k is mel frames 4k .. 4k+19: the burst's four mel
    # frames are inside it exactly when frame 7 is one of the window's video frames.
    coded = np.tile(np.arange(mel.shape[1], dtype=np.float32), (64, 1))
    for k in window_starts(n_frames, 5):
        cols = audio_window(coded, k)[0, 0]
        assert cols.tolist() == list(range(4 * k, 4 * k + 20))
        assert set(range(28, 32)) <= set(cols.tolist()) if k <= 7 <= k + 4 else not set(range(28, 32)) & set(cols.tolist())
    crops = np.zeros((n_frames, 8, 8, 3), np.uint8)
    crops[7] = 255
    for k in window_starts(n_frames, 5):
        assert (video_window(crops, k).max() > 0) == (k <= 7 <= k + 4)


def test_short_clips_are_padded_to_one_window():
    crops = np.zeros((3, 8, 8, 3), np.uint8)
    mel = np.zeros((64, 12), np.float32)
    c2, m2 = pad_to_window(crops, mel, 5)
    assert len(c2) == 5 and m2.shape == (64, 20)
    assert window_starts(3, 5).size == 0 and window_starts(7, 5, stride=2).tolist() == [0, 2]


def test_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(1)
    model = LipSyncNet().eval()
    cfg = LipSyncConfig(crop_size=40)
    path = save_checkpoint(tmp_path / "m" / "lipsync.pt", model, cfg, extra={"epochs": 0})
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    loaded, cfg2 = load_checkpoint(path)
    assert cfg2 == cfg
    v, a = torch.randn(2, 3, 5, 40, 40), torch.randn(2, 1, 64, 20)
    assert torch.allclose(loaded.distance(v, a), model.distance(v, a), atol=1e-6)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    from merbench.errors import MerbenchError

    with pytest.raises(MerbenchError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


# -- on a tiny generated corpus ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from merbench.datasets.synthetic.generator import generate

    root = generate(tmp_path_factory.mktemp("synth") / "synthetic", n_dialogues=4, seed=0, workers=1)
    with open(root / "cues.csv", newline="", encoding="utf-8") as fh:
        cues = {r["uid"]: r for r in csv.DictReader(fh)}
    from merbench.datasets.synthetic.adapter import SyntheticDataset

    return root, SyntheticDataset(root=root).load(), cues


def test_selectors_plug_into_the_face_crop_extractor(tiny_corpus):
    from merbench.features.media import read_audio, read_video
    from merbench.features.video import FaceCropExtractor, default_detector, track_faces

    root, corpus, cues = tiny_corpus
    two = [u for u in corpus.utterances if cues[u.uid]["n_faces"] == "2"]
    assert two, "the tiny corpus should hold utterances with a listener in frame"
    u = two[0]
    torch.manual_seed(0)
    selector = LipSyncSelector(LipSyncNet().eval(), LipSyncConfig(crop_size=32))
    seen = []

    def spy(tracks, audio, frames):
        seen.append((len(tracks), audio is not None and len(audio) > 0))
        k = selector(tracks, audio, frames)
        assert 0 <= k < len(tracks)
        return k

    spy.needs_audio = True
    ext = FaceCropExtractor(select_track=spy)
    items = ext.extract(two[:2])
    assert len(items) == 2 and all(np.isfinite(it.pooled).all() for it in items)
    assert seen and all(n >= 2 and has_audio for n, has_audio in seen)
    assert ext.counts["several_faces"] == len(seen)

    # Directly: distances per track, and the index of the smallest.
    frames, _ = read_video(u.video_path, max_frames=32)
    audio = read_audio(u.audio_path)
    tracks = track_faces([default_detector().detect(f) for f in frames])
    assert len(tracks) >= 2
    d = selector.track_distances(tracks, audio, frames)
    assert len(d) == len(tracks) and all(np.isfinite(d))
    assert selector(tracks, audio, frames) == int(np.argmin(d))
    assert selector(tracks, None, frames) in range(len(tracks)) and selector.counts["no_audio"] == 1
    assert LipSyncSelector.needs_audio is True and "weights_sha256" in selector.settings()

    rnd = RandomSelector(seed=3)
    assert rnd.needs_audio is False
    picks = {rnd(tracks, None, frames) for _ in range(3)}
    assert len(picks) == 1 and picks.pop() in range(len(tracks))  # deterministic per clip
    ext_r = FaceCropExtractor(select_track=RandomSelector(seed=0))
    assert len(ext_r.extract([u])) == 1 and ext_r.settings()["select_track_settings"] == {"seed": 0}


def test_train_entry_point_end_to_end(tiny_corpus, tmp_path):
    from merbench.methods.lipsync_graph_erc.train_lipsync import main

    root, _, _ = tiny_corpus
    out = tmp_path / "run"
    assert main(["--out", str(out), "--epochs", "1", "--corpus-root", str(root), "--crop-size", "32",
                 "--windows-per-utt", "1", "--workers", "1", "--threads", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_parameters"] == 2_952_448
    assert 0.0 <= metrics["sync"]["test_accuracy"] <= 1.0 and metrics["sync"]["n_test_pairs"] > 0
    assert metrics["active_speaker_test"]["n_utterances"] >= 0
    model, cfg = load_checkpoint(out / "lipsync.pt")
    assert cfg.crop_size == 32
    sel = LipSyncSelector(out / "lipsync.pt")
    assert sel.config.crop_size == 32
    d = window_distances(model, np.zeros((6, 32, 32, 3), np.uint8), np.zeros((64, 24), np.float32))
    assert d.shape == (2,)
