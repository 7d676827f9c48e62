"""LipSyncNet, its windows, training entry point and the active-speaker selector hooks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from merbench.features.active_speaker.selector import LipSyncSelector, RandomSelector
from merbench.features.active_speaker.lipsync import (
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
    vx, ax = torch.randn(3, 3, 5, size, size), torch.randn(3, 1, 64, 20)
    d = model.distance(vx, ax)
    # The Euclidean distance of the two unit embeddings: 2 - 2 cos, so in sync (same direction) = 0.
    torch.testing.assert_close(d, (model.encode_video(vx) - model.encode_audio(ax)).norm(dim=1))
    torch.testing.assert_close(d ** 2, 2 - 2 * (model.encode_video(vx) * model.encode_audio(ax)).sum(1), atol=1e-5, rtol=1e-5)
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
    from merbench.features.active_speaker.train_lipsync import main

    root, _, _ = tiny_corpus
    out = tmp_path / "run"
    cache = tmp_path / "cache"
    assert main(["--out", str(out), "--epochs", "1", "--corpus-root", str(root), "--crop-size", "32",
                 "--windows-per-utt", "6", "--workers", "1", "--threads", "1", "--cache-dir", str(cache)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_parameters"] == 2_952_448
    assert metrics["training"]["negatives"] == "group" and metrics["training"]["history"][0]["loss"] > 0
    for key in ("sync", "sync_voiced", "sync_context2", "sync_voiced_context2"):
        m, n = metrics[key], metrics[key]["n_test_pairs"]
        assert n > 0 and m["test_accuracy"] * n == pytest.approx(round(m["test_accuracy"] * n)), key  # a count of pairs
        # The threshold is the best on VALID, so no worse there than calling every pair in sync or every one shifted.
        assert m["valid_accuracy"] >= 0.5, key
    assert metrics["sync_context2"]["clip_frames"] == 9
    # The voiced rule comes from TRAIN alone (recomputed here from the cached TRAIN items).
    assert metrics["sync_voiced"]["voiced_rule"]["n_train_frames"] > 0
    speaker = metrics["active_speaker_test"]
    assert speaker["n_utterances"] == sum(speaker["n_by_listener_mouth"].values())
    if speaker["n_utterances"]:
        n = speaker["n_utterances"]
        assert speaker["accuracy"] * n == pytest.approx(round(speaker["accuracy"] * n))
    assert sorted(p.name.split("-")[0] for p in cache.glob("*/*.npz")) == ["test", "train", "valid"]
    model, cfg = load_checkpoint(out / "lipsync.pt")
    assert cfg.crop_size == 32
    sel = LipSyncSelector(out / "lipsync.pt")
    assert sel.config.crop_size == 32
    d = window_distances(model, np.zeros((6, 32, 32, 3), np.uint8), np.zeros((64, 24), np.float32))
    assert d.shape == (2,)


# -- batched windows, grouped negatives, voiced windows, clip context ----------------------------


def test_utterance_windows_equal_the_single_window_helpers():
    from merbench.features.active_speaker.lipsync import utterance_windows

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (13, 8, 8, 3)).astype(np.uint8)
    mel = rng.normal(size=(64, 4 * 13)).astype(np.float32)
    for center in (True, False):
        v, a = utterance_windows(crops, mel, 5, center)
        assert v.shape == (9, 3, 5, 8, 8) and a.shape == (9, 1, 64, 20)
        for k in range(9):
            assert np.array_equal(v[k], video_window(crops, k, 5, center))
            assert np.array_equal(a[k], audio_window(mel, k, 5))
    v, a = utterance_windows(crops, mel, 5, True, starts=np.array([2, 7]))
    assert np.array_equal(v[1], video_window(crops, 7, 5, True))
    with pytest.raises(ValueError, match="do not fit"):
        utterance_windows(crops, mel, 5, True, starts=np.array([9]))


def test_loss_with_several_negatives_per_positive():
    loss = AVSyncLoss(margin=1.5, alpha=0.7)
    d_pos = torch.tensor([0.2, 0.4])
    d_neg = torch.tensor([1.0, 2.0, 0.5])
    idx = torch.tensor([0, 0, 1])
    # ranking terms: max(0, 1.5 - (1.0 - 0.2)) = 0.7, max(0, 1.5 - 1.8) = 0, max(0, 1.5 - 0.1) = 1.4
    expected = 0.7 * (0.7 + 0.0 + 1.4) / 3 + 0.3 * 0.3  # the pull term: mean over the 2 positives
    assert float(loss(d_pos, d_neg, pos_index=idx)) == pytest.approx(expected)


def test_group_step_ranks_only_far_windows_of_the_same_utterance(monkeypatch):
    from merbench.features.active_speaker import train as T

    torch.manual_seed(0)
    model = LipSyncNet()
    seen = {}

    class Spy(AVSyncLoss):
        def forward(self, d_pos, d_neg, pos_index=None):
            seen["n_pos"], seen["pos_index"] = len(d_pos), pos_index.tolist()
            return super().forward(d_pos, d_neg, pos_index)

    rng = np.random.default_rng(0)
    groups = []
    for starts in (np.array([0, 1, 4]), np.array([0, 2])):
        n = len(starts)
        groups.append((rng.normal(size=(n, 3, 5, 16, 16)).astype(np.float32),
                       rng.normal(size=(n, 1, 64, 20)).astype(np.float32), starts))
    loss = T.group_step(model, Spy(), groups, min_shift=2)
    assert torch.isfinite(loss)
    # utterance 1 (rows 0-2): pairs with |shift| >= 2: (0,4), (1,4) both ways; utterance 2 (rows 3-4): (0,2) both ways
    assert seen["n_pos"] == 5 and sorted(seen["pos_index"]) == [0, 1, 2, 2, 3, 4]


def _item(levels, n_frames=16, size=8, seed=0):
    """A single-face prepared utterance whose audio level per video frame is ``levels`` (dB)."""
    rng = np.random.default_rng(seed)
    db = np.repeat(np.asarray(levels, dtype=np.float64), MEL_PER_FRAME)[None, :].repeat(64, axis=0)
    mel = (np.maximum(db, -80.0) / 80.0 * 2.0 + 1.0).astype(np.float32)
    crops = rng.integers(0, 256, (n_frames, size, size, 3)).astype(np.uint8)
    return {"uid": f"u{seed}", "crops": [crops], "mel": mel, "n_frames": n_frames, "split": "train"}


def test_frame_levels_and_voiced_windows():
    from merbench.features.active_speaker.lipsync import frame_levels_db, window_voiced_fraction

    levels = [-60.0] * 6 + [0.0, -3.0, -6.0] * 3 + [-60.0]
    it = _item(levels)
    got = frame_levels_db(it["mel"])
    assert got.shape == (16,) and got.max() == pytest.approx(0.0)
    assert got[:6] == pytest.approx(np.full(6, -60.0), abs=1e-3) and got[6:9] == pytest.approx([0, -3, -6], abs=1e-3)
    frac = window_voiced_fraction(it["mel"], np.arange(12), 5, -20.0)
    assert frac[0] == 0.0 and frac[6] == 1.0 and frac[4] == pytest.approx(0.6)


def test_voiced_threshold_uses_train_statistics_only():
    from merbench.features.active_speaker.evaluate import voiced_threshold

    train = [_item([-50.0] * 4 + [0.0, -2.0, -4.0, -1.0] * 3, seed=i) for i in range(3)]
    rule = voiced_threshold(train)
    assert -50.0 < rule["frame_threshold_db"] <= -4.0
    assert rule["n_train_frames"] == 48 and rule["train_fraction_voiced_frames"] == pytest.approx(0.75)
    # Multi-face utterances do not count; the function is given TRAIN items only, so VALID/TEST cannot move it.
    noisy = dict(_item([-30.0] * 16, seed=9), crops=[np.zeros((16, 8, 8, 3), np.uint8)] * 2)
    assert voiced_threshold(train + [noisy]) == rule
    with pytest.raises(ValueError, match="TRAIN"):
        voiced_threshold([noisy])


def test_sync_pairs_voiced_anchors_and_context():
    from merbench.features.active_speaker.lipsync import utterance_windows
    from merbench.features.active_speaker.evaluate import sync_pairs

    torch.manual_seed(0)
    model = LipSyncNet().eval()
    items = [_item([-60.0] * 8 + [0.0, -4.0] * 4, size=16, seed=s) for s in range(3)]
    d0, y0 = sync_pairs(model, items, 5, 3, pairs_per_utt=3, seed=1)
    d0b, _ = sync_pairs(model, items, 5, 3, pairs_per_utt=3, seed=1)
    assert len(d0) == 18 and y0.tolist() == [1, 0] * 9 and np.array_equal(d0, d0b)
    # Context 2: a 9-frame clip scored by the mean distance of its 5 windows (in-sync: the diagonal).
    d2, y2 = sync_pairs(model, items[:1], 5, 3, pairs_per_utt=50, seed=1, context=2)
    v, a = utterance_windows(items[0]["crops"][0], items[0]["mel"], 5, True)
    with torch.no_grad():
        D = torch.cdist(model.encode_video(torch.from_numpy(v)), model.encode_audio(torch.from_numpy(a))).numpy()
    diag = {float(np.diag(D)[k:k + 5].mean()) for k in range(8)}
    assert all(min(abs(x - t) for t in diag) < 1e-5 for x in d2[y2 == 1])
    # Short utterance: 13 frames, clip 9, shift 3: the middle clip has no partner and must not be drawn.
    short = [_item([0.0, -5.0] * 6 + [0.0], n_frames=13, size=16, seed=7)]
    d, y = sync_pairs(model, short, 5, 3, pairs_per_utt=20, seed=0, context=2)
    assert len(d) == 40
    # Voiced anchors: the first 8 frames are silent, so every anchor clip starts at frame >= 6
    # (at least 3 of its 5 frames voiced); clips are identified by their in-sync distance.
    dv, yv = sync_pairs(model, items[:1], 5, 3, pairs_per_utt=40, seed=3, voiced_db=-20.0)
    allowed = {float(D[k, k]) for k in range(6, 12)}
    assert all(min(abs(x - t) for t in allowed) < 1e-5 for x in dv[yv == 1])


def test_prepare_cache_resumes_and_is_keyed_by_settings(tiny_corpus, tmp_path, monkeypatch):
    from merbench.features.active_speaker import data as T

    root, corpus, _ = tiny_corpus
    utts = [u for u in corpus.utterances if u.meta.get("split") == "test"][:7]
    monkeypatch.setattr(T, "CACHE_CHUNK", 3)  # 3 chunks: 3 + 3 + 1 utterances
    calls = []
    real = T.prepare_corpus

    def spy(us, *a, **k):
        calls.append([u.uid for u in us])
        return real(us, *a, **k)

    monkeypatch.setattr(T, "prepare_corpus", spy)
    settings = T.prep_settings(32, 0.1, "lower", 3, T.corpus_fingerprint(root))
    first = T.prepare_cached(utts, "test", settings, tmp_path, workers=1)
    assert len(calls) == 3 and len(first) == 7
    chunks = sorted((tmp_path / T.cache_key(settings)).glob("test-*.npz"))
    assert len(chunks) == 3 and not list(tmp_path.rglob("*.tmp"))
    # Interrupted run: one chunk missing -> only it is prepared again; the rest is read back equal.
    chunks[1].unlink()
    calls.clear()
    again = T.prepare_cached(utts, "test", settings, tmp_path, workers=1)
    assert calls == [[u.uid for u in utts[3:6]]]
    calls.clear()
    third = T.prepare_cached(utts, "test", settings, tmp_path, workers=1)
    assert calls == []
    for x, y in zip(first, third):
        assert x["uid"] == y["uid"] and x["n_frames"] == y["n_frames"] and x["track_x"] == y["track_x"]
        assert np.array_equal(x["mel"], y["mel"]) and len(x["crops"]) == len(y["crops"])
        assert all(np.array_equal(a, b) for a, b in zip(x["crops"], y["crops"]))
        assert (x["frames"] is None) == (y["frames"] is None)
        if x["frames"] is not None:
            assert np.array_equal(x["frames"], y["frames"]) and np.array_equal(x["audio"], y["audio"])
            assert all(np.allclose(t.filled(), u.filled()) for t, u in zip(x["tracks"], y["tracks"]))
    # A corrupt chunk is prepared again, not trusted.
    chunks[0].write_bytes(b"garbage")
    calls.clear()
    T.prepare_cached(utts, "test", settings, tmp_path, workers=1)
    assert calls == [[u.uid for u in utts[:3]]]
    # Other settings -> another key, another folder; a subset gets its own files.
    other = T.prep_settings(24, 0.1, "lower", 3, T.corpus_fingerprint(root))
    assert T.cache_key(other) != T.cache_key(settings)
    calls.clear()
    T.prepare_cached(utts[:2], "test", settings, tmp_path, workers=1)
    assert calls == [[u.uid for u in utts[:2]]]
    assert len(list((tmp_path / T.cache_key(settings)).glob("test-000-*.npz"))) == 2
    with np.load(next((tmp_path / T.cache_key(settings)).glob("test-002-*.npz")), allow_pickle=False) as z:
        assert z["crops"].dtype == np.uint8  # plain arrays: loadable without pickle
