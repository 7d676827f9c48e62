"""Sparse face detection with template tracking (``video-facecrop``'s default ``face_tracking:
template``): faces stay on their tracks, lost faces trigger a full detection, faces that come in
are found, and active-speaker accuracy on a small synthetic corpus is not lower than the
interpolating pipeline's (version 1)."""

from __future__ import annotations

import numpy as np
import pytest

from merbench.corpus import Utterance
from merbench.errors import ConfigError

W, H = 192, 96
NEUTRAL = {"curve": 0.0, "brow_angle": 0.0, "brow_raise": 0.0, "eye_open": 1.0, "mouth_width": 1.0}


def draw(positions: list[list[tuple[float, float] | None]], seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) RGB frames; ``positions[t]`` holds each face's centre (None: not in the frame)."""
    from merbench.datasets.synthetic.generator import _draw_face, speaker_identity

    rng = np.random.default_rng(seed)
    ids = [speaker_identity(0, k) for k in (1, 4)]
    out = []
    for t, faces in enumerate(positions):
        img = np.full((H, W, 3), 50, np.uint8)
        for k, p in enumerate(faces):
            if p is not None:
                opening = (0.5 + 0.5 * np.sin(t)) * ids[k]["mouth_open_max"] if k == 0 else 0.0
                _draw_face(img, ids[k], p[0], p[1], 1.0, NEUTRAL, float(opening), False)
        out.append(np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)[..., ::-1].copy())
    return np.stack(out)


class SpyDetector:
    """The default detector, recording the frames it ran on and whether they were painted out."""

    name = "spy"

    def __init__(self):
        from merbench.features.video import default_detector

        self.inner = default_detector(1.2)
        self.calls: list[np.ndarray] = []

    def detect(self, frame):
        self.calls.append(frame)
        return self.inner.detect(frame)


def centres(track) -> np.ndarray:
    b = track.filled()
    return np.stack([b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], axis=1)


def test_tracked_faces_stay_on_their_face_across_frames():
    from merbench.features.video import track_faces_sparse

    T = 24
    truth = [[(45 + 1.0 * t, 48.0), (150 - 0.75 * t, 49.0)] for t in range(T)]  # moving towards each other
    frames = draw(truth)
    spy = SpyDetector()
    tracks, n_detect = track_faces_sparse(frames, spy, detect_every=16)
    assert len(tracks) == 2 and n_detect == len(spy.calls) <= 3  # detected sparsely
    for tr in tracks:
        assert tr.hits == T
        c = centres(tr)
        k = int(np.argmin([abs(c[0, 0] - truth[0][j][0]) for j in range(2)]))  # the face it starts on
        err = np.abs(c[:, 0] - np.array([truth[t][k][0] for t in range(T)]))
        assert err.max() < 5, (k, err.round(1))  # follows that face's motion, never the other face


def test_lost_face_gets_a_full_detection_at_once():
    from merbench.features.video import track_faces_sparse

    T, cut = 20, 7
    truth = [[(50.0, 48.0)] if t < cut else [(140.0, 48.0)] for t in range(T)]  # a cut: the face jumps
    frames = draw(truth)
    spy = SpyDetector()
    tracks, _ = track_faces_sparse(frames, spy, detect_every=16)
    # frames the detector saw whole (a refresh detection sees one with the followed face painted out)
    whole = [next((t for t in range(T) if np.array_equal(frames[t], f)), None) for f in spy.calls]
    assert whole[:2] == [0, cut]  # the first frame, then the cut, where the template lost the face
    assert len(spy.calls) <= 3
    best = tracks[0]
    c = centres(best)
    assert best.hits == T - cut and abs(c[-1, 0] - 140) < 6
    assert all(b is None for b in best.boxes[:cut])


def test_face_coming_in_is_found_by_the_masked_refresh():
    from merbench.features.video import track_faces_sparse

    T = 24
    truth = [[(50.0, 48.0), (140.0, 48.0) if t >= 10 else None] for t in range(T)]
    frames = draw(truth)
    spy = SpyDetector()
    tracks, n_detect = track_faces_sparse(frames, spy, detect_every=8)
    assert n_detect == 3  # frames 0, 8, 16: the first one full, the others with the followed face painted out
    assert not np.array_equal(spy.calls[1], frames[8]) and np.array_equal(spy.calls[0], frames[0])
    assert len(tracks) == 2
    newcomer = next(tr for tr in tracks if centres(tr)[-1, 0] > 100)
    assert all(b is None for b in newcomer.boxes[:16]) and newcomer.hits == T - 16


def test_face_tracking_option_and_cache_keys():
    from merbench.features.store import settings_hash
    from merbench.features.video import FaceCropExtractor

    tmpl, interp = FaceCropExtractor(), FaceCropExtractor(face_tracking="interpolate")
    assert tmpl.face_tracking == "template" and tmpl.detect_every == 16 and interp.detect_every == 3
    assert "face_tracking" in tmpl.settings() and "face_tracking" not in interp.settings()
    assert tmpl.settings()["detector"]["primary"]["scale_factor"] == 1.2
    assert settings_hash(tmpl) != settings_hash(interp)
    assert tmpl.decode_max_side == 320 and interp.decode_max_side == 0
    with pytest.raises(ConfigError, match="face_tracking"):
        FaceCropExtractor(face_tracking="optical-flow")


def test_read_video_scales_frames_in_the_decoder(tmp_path):
    import cv2

    from merbench.features.media import read_video, write_av_clip

    yy, xx = np.mgrid[0:360, 0:640]
    frames = [np.stack([(xx * 255 // 640), (yy * 255 // 360), np.full_like(xx, 80 + 10 * i)], -1).astype(np.uint8)
              for i in range(5)]
    write_av_clip(tmp_path / "c.mp4", frames, None, 16000)
    full, _ = read_video(tmp_path / "c.mp4", max_frames=0)
    small, _ = read_video(tmp_path / "c.mp4", max_frames=0, max_side=160)
    assert full.shape == (5, 360, 640, 3) and small.shape == (5, 90, 160, 3)
    ref = np.stack([cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA) for f in full])
    assert np.abs(small.astype(int) - ref).mean() < 3  # the same picture, scaled by FFmpeg
    assert read_video(tmp_path / "c.mp4", max_frames=0, max_side=1000)[0].shape == full.shape  # never enlarged


@pytest.mark.slow
def test_active_speaker_accuracy_not_lower_than_interpolation(tmp_path):
    import csv

    from merbench.datasets.synthetic.generator import generate
    from merbench.features.video import FaceCropExtractor

    root = generate(tmp_path / "synth", n_dialogues=12, seed=0, workers=1)
    with open(root / "cues.csv", newline="", encoding="utf-8") as f:
        cues = [r for r in csv.DictReader(f) if r["speaker_side"] in ("left", "right")]
    utts = [Utterance(uid=c["uid"], dialogue_id=c["dialogue_id"], turn=int(c["turn"]), speaker=c["speaker"],
                      video_path=str(root / "video" / f"{c['uid']}.mp4")) for c in cues]
    assert len(utts) >= 20

    def accuracy(ex) -> float:
        items = ex.extract(utts)
        D = ex.frame_dim
        right = 0
        for it, c in zip(items, cues):
            cx = float(it.frames[:, D - 4].mean()) * 128  # box centre x / frame width, 128 px wide
            right += abs(cx - float(c["speaker_face_x"])) < abs(cx - float(c["listener_face_x"]))
        return right / len(utts)

    template = FaceCropExtractor()
    acc_t, acc_i = accuracy(template), accuracy(FaceCropExtractor(face_tracking="interpolate"))
    assert acc_t >= acc_i and acc_t >= 0.8, (acc_t, acc_i)
    assert template.counts["detected_frames"] < 0.25 * template.counts["frames"]
