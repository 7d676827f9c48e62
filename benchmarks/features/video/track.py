"""Face tracking: detections linked into tracks over the sampled frames (nearest box centre,
gaps filled by interpolation), and crops of a track's boxes."""

from __future__ import annotations

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
    x, y, w, h = box
    x0, y0 = x - margin * w, y - margin * h
    x1, y1 = x + (1 + margin) * w, y + (1 + margin) * h
    H, W = shape[:2]
    x0, y0 = int(np.clip(np.floor(x0), 0, W - 1)), int(np.clip(np.floor(y0), 0, H - 1))
    x1, y1 = int(np.clip(np.ceil(x1), x0 + 1, W)), int(np.clip(np.ceil(y1), y0 + 1, H))
    return x0, y0, x1, y1


def grey_crops(frames: np.ndarray, boxes: np.ndarray, size: int, margin: float = 0.1) -> np.ndarray:
    """(T, size, size) float32 grey crops in [0, 1] of ``boxes`` (T, 4) in ``frames`` (T, H, W, 3)."""
    import cv2

    out = np.empty((len(frames), size, size), dtype=np.float32)
    for i, (fr, b) in enumerate(zip(frames, boxes)):
        x0, y0, x1, y1 = clip_box(b, fr.shape, margin)
        grey = cv2.cvtColor(np.ascontiguousarray(fr[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        out[i] = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return out
