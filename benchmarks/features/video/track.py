"""Face tracking: detections linked into tracks over the sampled frames (nearest box centre,
gaps filled by interpolation), and crops of a track's boxes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .detect import Box


# -- tracking ----------------------------------------------------------------------------


@dataclass
class FaceTrack:
    """One face over the sampled frames: a box per frame, None where it was not detected."""

    boxes: list[Box | None] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return sum(b is not None for b in self.boxes)

    def last(self) -> Box | None:
        return next((b for b in reversed(self.boxes) if b is not None), None)

    def filled(self) -> np.ndarray:
        """(T, 4) float boxes, gaps filled by linear interpolation (ends: the nearest box)."""
        t = np.arange(len(self.boxes))
        known = np.array([i for i, b in enumerate(self.boxes) if b is not None])
        vals = np.array([self.boxes[i] for i in known], dtype=np.float64)
        return np.stack([np.interp(t, known, vals[:, k]) for k in range(4)], axis=1)


def _centre(b) -> np.ndarray:
    return np.array([b[0] + b[2] / 2.0, b[1] + b[3] / 2.0])


def track_faces(detections: Sequence[Sequence[Box]], max_jump: float = 0.75,
                min_hits_frac: float = 0.3) -> list[FaceTrack]:
    """Link per-frame boxes into tracks: each box joins the track whose last box has the
    nearest centre, if closer than ``max_jump`` times that box's size; otherwise it starts
    a track. Tracks seen in fewer than ``min_hits_frac`` of the best track's frames are
    dropped (spurious detections). Sorted by hits, most first."""
    n = len(detections)
    tracks: list[FaceTrack] = []
    for t, boxes in enumerate(detections):
        pairs = []
        for ti, tr in enumerate(tracks):
            last = tr.last()
            for bi, b in enumerate(boxes):
                d = float(np.linalg.norm(_centre(last) - _centre(b)))
                if d <= max_jump * max(last[2], last[3]):
                    pairs.append((d, ti, bi))
        used_t, used_b = set(), set()
        for _, ti, bi in sorted(pairs):
            if ti in used_t or bi in used_b:
                continue
            tracks[ti].boxes.append(tuple(boxes[bi]))
            used_t.add(ti)
            used_b.add(bi)
        for ti, tr in enumerate(tracks):
            if ti not in used_t:
                tr.boxes.append(None)
        for bi, b in enumerate(boxes):
            if bi not in used_b:
                tracks.append(FaceTrack([None] * t + [tuple(b)]))
    if not tracks:
        return []
    best = max(tr.hits for tr in tracks)
    keep = [tr for tr in tracks if tr.hits >= max(1.0, min_hits_frac * best)]
    assert all(len(tr.boxes) == n for tr in keep)
    return sorted(keep, key=lambda tr: -tr.hits)


# -- crops ------------------------------------------------------------------------------------


def clip_box(box, shape, margin: float) -> tuple[int, int, int, int]:
    """``box`` (x, y, w, h) grown by ``margin`` of its size, clipped to the frame: (x0, y0, x1, y1)."""
    x, y, w, h = (float(v) for v in box)
    H, W = shape[:2]
    # plain floats, not np.clip: this runs for every crop and numpy's per-call cost dominated it
    x0 = min(max(math.floor(x - margin * w), 0), W - 1)
    y0 = min(max(math.floor(y - margin * h), 0), H - 1)
    x1 = min(max(math.ceil(x + (1 + margin) * w), x0 + 1), W)
    y1 = min(max(math.ceil(y + (1 + margin) * h), y0 + 1), H)
    return int(x0), int(y0), int(x1), int(y1)


def grey_crops(frames: np.ndarray, boxes: np.ndarray, size: int, margin: float = 0.1) -> np.ndarray:
    """(T, size, size) float32 grey crops in [0, 1] of ``boxes`` (T, 4) in ``frames`` (T, H, W, 3)."""
    import cv2

    out = np.empty((len(frames), size, size), dtype=np.float32)
    for i, (fr, b) in enumerate(zip(frames, boxes)):
        x0, y0, x1, y1 = clip_box(b, fr.shape, margin)
        grey = cv2.cvtColor(np.ascontiguousarray(fr[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        out[i] = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return out


# -- sparse detection, template tracking in between ---------------------------------------------

TEMPLATE_SIDE = 32  # template matching runs on frames scaled so that a face is about this wide


@dataclass
class _Live:
    """A track being followed: its grey template (from its last detection) at ``scale``."""

    track: FaceTrack
    template: np.ndarray | None = None
    scale: float = 1.0
    detections: int = 0
    dormant: bool = False  # lost by the template and not re-found: only a detection revives it


def _greys(frames: np.ndarray) -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]


def _template(grey: np.ndarray, box: Box) -> tuple[np.ndarray | None, float]:
    import cv2

    x0, y0, x1, y1 = clip_box(box, grey.shape, 0.0)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None, 1.0
    scale = min(1.0, TEMPLATE_SIDE / max(1, x1 - x0))
    patch = grey[y0:y1, x0:x1]
    if scale < 1.0:
        patch = cv2.resize(patch, (max(4, round((x1 - x0) * scale)), max(4, round((y1 - y0) * scale))),
                           interpolation=cv2.INTER_AREA)
    return patch, scale


def _follow(grey: np.ndarray, live: _Live, search: float, min_score: float) -> Box | None:
    """The track's box in this frame by normalised cross-correlation of its template within
    ``search`` box sizes around its last box (at the template's scale); None below ``min_score``."""
    import cv2

    last = live.track.last()
    if last is None or live.template is None:
        return None
    x0, y0, x1, y1 = clip_box(last, grey.shape, search)
    s = live.scale
    region = grey[y0:y1, x0:x1]
    if s < 1.0:
        region = cv2.resize(region, (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                            interpolation=cv2.INTER_AREA)
    th, tw = live.template.shape
    if region.shape[0] < th or region.shape[1] < tw:
        return None
    scores = cv2.matchTemplate(region, live.template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    if not np.isfinite(best) or best < min_score:
        return None
    return (int(round(x0 + bx / s)), int(round(y0 + by / s)), int(last[2]), int(last[3]))


def _link(boxes: Sequence[Box], anchors: list[Box | None], max_jump: float) -> dict[int, int]:
    """Detection index for each anchor index: nearest centres first, within ``max_jump`` box sizes."""
    pairs = []
    for ti, a in enumerate(anchors):
        if a is None:
            continue
        for bi, b in enumerate(boxes):
            d = float(np.linalg.norm(_centre(a) - _centre(b)))
            if d <= max_jump * max(a[2], a[3]):
                pairs.append((d, ti, bi))
    out, used_b = {}, set()
    for _, ti, bi in sorted(pairs):
        if ti not in out and bi not in used_b:
            out[ti] = bi
            used_b.add(bi)
    return out


def _masked(frame: np.ndarray, boxes: Sequence[Box], margin: float = 0.15) -> np.ndarray:
    """A copy of ``frame`` with the given faces painted flat grey: a detector finds only the others
    (and rejects the flat patches at its first stage, where faces cost it most)."""
    out = frame.copy()
    for b in boxes:
        x0, y0, x1, y1 = clip_box(b, frame.shape, margin)
        out[y0:y1, x0:x1] = 128
    return out


def track_faces_sparse(frames: np.ndarray, detector, detect_every: int = 16, max_jump: float = 0.75,
                       min_hits_frac: float = 0.3, search: float = 0.35, min_score: float = 0.5,
                       refresh_detector=None) -> tuple[list[FaceTrack], int]:
    """Face tracks over ``frames`` (T, H, W, 3), the detector run on few frames:

    - the first frame, and any frame where a followed face is lost (template match score below
      ``min_score``): a full detection, whose boxes join tracks as in :func:`track_faces`
      (nearest centre within ``max_jump`` box sizes) and refresh their templates; so a cut or a
      fast move costs one detection, not the track;
    - every ``detect_every``-th frame otherwise: a detection with the followed faces painted
      out (:func:`_masked`), which only looks for faces that came in, by ``refresh_detector``
      (default: ``detector``'s primary detector when it is a :class:`FallbackDetector`: finding
      nothing there is the usual answer, not a reason to try skin blobs);
    - in between, each face is followed by template matching (:func:`_follow`).

    Tracks with a box in fewer than ``min_hits_frac`` of the best track's frames are dropped.
    Returns (tracks sorted by frames with a box, most first; number of frames the detector ran on)."""
    n = len(frames)
    greys = _greys(frames)
    every = max(1, int(detect_every))
    refresh = refresh_detector or getattr(detector, "primary", detector)
    lives: list[_Live] = []
    n_detect = 0
    for t in range(n):
        grey = greys[t]
        followed = [None if lv.dormant else _follow(grey, lv, search, min_score) for lv in lives]
        lost = any(f is None and not lv.dormant for f, lv in zip(followed, lives))
        boxes: list[Box] = []
        if t == 0 or lost:
            boxes = [tuple(int(v) for v in b) for b in detector.detect(frames[t])]
            n_detect += 1
        elif t % every == 0:
            boxes = [tuple(int(v) for v in b)
                     for b in refresh.detect(_masked(frames[t], [f for f in followed if f is not None]))]
            n_detect += 1
        matched = _link(boxes, [f if f is not None else lv.track.last() for f, lv in zip(followed, lives)], max_jump)
        for ti, lv in enumerate(lives):
            if ti in matched:
                box = boxes[matched[ti]]
                lv.track.boxes.append(box)
                lv.template, lv.scale = _template(grey, box)
                lv.detections += 1
                lv.dormant = False
            else:
                lv.track.boxes.append(followed[ti])
                lv.dormant = followed[ti] is None
        for bi, box in enumerate(boxes):
            if bi not in matched.values():
                template, scale = _template(grey, box)
                lives.append(_Live(FaceTrack([None] * t + [box]), template, scale, detections=1))
    if not lives:
        return [], n_detect
    best = max(lv.track.hits for lv in lives)
    keep = [lv.track for lv in lives if lv.track.hits >= max(1.0, min_hits_frac * best)]
    return sorted(keep, key=lambda tr: -tr.hits), n_detect
