"""Face-crop video features: detect faces, track them, pick the speaker's face, describe it.

Steps for one utterance:

1. read at most ``max_frames`` frames spread over the clip (:func:`read_video`), scaled
   down so that the longer side is at most ``detect_max_side`` pixels;
2. detect faces in every ``detect_every``-th frame with a :class:`FaceDetector` (default:
   OpenCV's Haar cascade, and skin-colour blobs in the frames where Haar finds nothing);
3. link detections into tracks (nearest box centre) and fill gaps by interpolation;
4. pick one track with a ``select_track(tracks, audio, frames) -> index`` hook (default
   :func:`select_by_mouth_motion`, a cheap active-speaker guess);
5. crop that face in every frame, resize to a small grey square, and describe it
   (:func:`frame_descriptor`). frames = per-frame descriptors, pooled = concat(mean, std).

When no face is found in any frame the whole frame is used, and the utterance is counted
in ``extractor.counts["no_face"]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from ..corpus import Utterance
from ..errors import ConfigError, MediaError
from ..interfaces import ExtractedItem, FeatureExtractor
from .media import read_audio, read_video

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x, y, w, h in pixels

# Regions of the face crop, as (row from, row to, col from, col to) fractions of its size.
BROW_EYE_REGION = (0.12, 0.50, 0.10, 0.90)
MOUTH_REGION = (0.60, 0.95, 0.20, 0.80)


# -- detectors ---------------------------------------------------------------------------


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(frame_rgb) -> [(x, y, w, h), ...]`` (uint8 RGB frame in, pixel boxes out)."""

    def detect(self, frame_rgb: np.ndarray) -> list[Box]: ...


def describe_detector(det: Any) -> dict[str, Any]:
    """What identifies a detector in the cache key: its name and its settings()."""
    info: dict[str, Any] = {"name": getattr(det, "name", type(det).__qualname__)}
    if hasattr(det, "settings"):
        info.update(det.settings())
    return info


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade on the histogram-equalised grey frame."""

    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 4, min_size_frac: float = 0.1):
        import cv2

        self.cascade_name = cascade
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_frac = min_size_frac
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self._cascade.empty():
            raise MediaError(cv2.data.haarcascades + cascade, "OpenCV cannot load this Haar cascade",
                             fix="reinstall opencv-python-headless, which ships the cascade files")

    def __getstate__(self) -> dict:
        # The OpenCV classifier cannot be pickled; worker processes load it again from its name.
        return {k: v for k, v in self.__dict__.items() if k != "_cascade"}

    def __setstate__(self, state: dict) -> None:
        import cv2

        self.__dict__.update(state)
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + self.cascade_name)

    def settings(self) -> dict[str, Any]:
        return {"cascade": self.cascade_name, "scale_factor": self.scale_factor,
                "min_neighbors": self.min_neighbors, "min_size_frac": self.min_size_frac}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        import cv2

        grey = cv2.equalizeHist(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY))
        side = max(8, int(self.min_size_frac * min(grey.shape)))
        found = self._cascade.detectMultiScale(grey, scaleFactor=self.scale_factor,
                                               minNeighbors=self.min_neighbors, minSize=(side, side))
        return [tuple(int(v) for v in b) for b in (found if len(found) else [])]


class SkinBlobDetector:
    """Skin-coloured blobs: a fixed Cr/Cb box in YCrCb, cleaned by morphology, one box per
    large, roughly face-shaped contour. A generic fallback with no learned model."""

    name = "skin"

    def __init__(self, cr: tuple[int, int] = (135, 180), cb: tuple[int, int] = (77, 127), min_luma: int = 60,
                 min_area_frac: float = 0.01, max_area_frac: float = 0.9, aspect: tuple[float, float] = (0.35, 2.5)):
        self.cr, self.cb, self.min_luma = tuple(cr), tuple(cb), int(min_luma)
        self.min_area_frac, self.max_area_frac = min_area_frac, max_area_frac
        self.aspect = tuple(aspect)

    def settings(self) -> dict[str, Any]:
        return {"cr": list(self.cr), "cb": list(self.cb), "min_luma": self.min_luma, "min_area_frac": self.min_area_frac,
                "max_area_frac": self.max_area_frac, "aspect": list(self.aspect)}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        import cv2

        ycc = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2YCrCb)
        # Dark, nearly grey backgrounds have skin-like chroma; the luma floor keeps them out.
        mask = cv2.inRange(ycc, (self.min_luma, self.cr[0], self.cb[0]), (255, self.cr[1], self.cb[1]))
        k = max(3, (min(mask.shape) // 40) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        # Closing fills the eyes and mouth, which are not skin-coloured, into the face blob.
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        area = float(mask.shape[0] * mask.shape[1])
        boxes = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            a = cv2.contourArea(c)
            if not (self.min_area_frac * area <= a <= self.max_area_frac * area):
                continue
            if not (self.aspect[0] <= h / max(w, 1) <= self.aspect[1]):
                continue
            boxes.append((int(x), int(y), int(w), int(h)))
        return sorted(boxes, key=lambda b: -b[2] * b[3])


class FallbackDetector:
    """``primary``'s boxes, or ``fallback``'s where the primary finds nothing in a frame."""

    def __init__(self, primary: FaceDetector, fallback: FaceDetector):
        self.primary, self.fallback = primary, fallback
        self.name = f"{describe_detector(primary)['name']}|{describe_detector(fallback)['name']}"
        self.used = {"primary": 0, "fallback": 0, "none": 0}  # frames answered by each

    def settings(self) -> dict[str, Any]:
        return {"primary": describe_detector(self.primary), "fallback": describe_detector(self.fallback)}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        boxes = self.primary.detect(frame_rgb)
        if boxes:
            self.used["primary"] += 1
            return boxes
        boxes = self.fallback.detect(frame_rgb)
        self.used["fallback" if boxes else "none"] += 1
        return boxes


def default_detector() -> FallbackDetector:
    return FallbackDetector(HaarFaceDetector(), SkinBlobDetector())


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


# -- crops and descriptors -------------------------------------------------------------------


def _clip_box(box, shape, margin: float) -> tuple[int, int, int, int]:
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
        x0, y0, x1, y1 = _clip_box(b, fr.shape, margin)
        grey = cv2.cvtColor(np.ascontiguousarray(fr[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        out[i] = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return out


def _region(crops: np.ndarray, reg) -> np.ndarray:
    s = crops.shape[-1]
    r0, r1, c0, c1 = (int(round(v * s)) for v in reg)
    return crops[..., r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)]


def mouth_motion(crops: np.ndarray) -> np.ndarray:
    """(T,) mean absolute change of the mouth region from the previous frame (0 for the first)."""
    m = _region(crops, MOUTH_REGION)
    d = np.abs(np.diff(m, axis=0)).mean(axis=(1, 2)) if len(m) > 1 else np.zeros(0, np.float32)
    return np.concatenate([[0.0], d]).astype(np.float32)


def frame_descriptor(crops: np.ndarray, boxes: np.ndarray, frame_shape) -> np.ndarray:
    """(T, size*size + 12) per-frame descriptors of grey face crops (T, size, size) in [0, 1]:

    - the crop's pixels, standardised per frame (shape and expression, not lighting);
    - brow/eye band and mouth band: mean, std, mean |vertical gradient| (brow raise, mouth opening);
    - fraction of dark pixels in the mouth band (open mouth), mouth motion from the previous frame;
    - the box centre and size relative to the frame (head position and distance).
    """
    T = len(crops)
    flat = crops.reshape(T, -1)
    mu, sd = flat.mean(1, keepdims=True), flat.std(1, keepdims=True)
    pix = (flat - mu) / (sd + 0.05)
    stats = []
    for reg in (BROW_EYE_REGION, MOUTH_REGION):
        r = _region(crops, reg)
        grad = np.abs(np.diff(r, axis=1)).mean(axis=(1, 2)) if r.shape[1] > 1 else np.zeros(T)
        stats += [r.mean(axis=(1, 2)), r.std(axis=(1, 2)), grad]
    mouth = _region(crops, MOUTH_REGION).reshape(T, -1)
    stats.append((mouth < (mu - 0.15)).mean(1))
    stats.append(mouth_motion(crops))
    H, W = frame_shape[:2]
    b = np.asarray(boxes, dtype=np.float64)
    stats += [(b[:, 0] + b[:, 2] / 2) / W, (b[:, 1] + b[:, 3] / 2) / H, b[:, 2] / W, b[:, 3] / H]
    return np.concatenate([pix, np.stack(stats, axis=1)], axis=1).astype(np.float32)


# -- track selection -------------------------------------------------------------------------


def mouth_activity(crops: np.ndarray) -> float:
    """How much the mouth opens and closes: the std over time of the mouth region's mean
    brightness. (Averaging over the region first keeps pixel noise and small head jitter
    out; frame-to-frame pixel differences picked those up and chose worse on the synthetic
    corpus: 80% vs 85% right when the listener's mouth moves too, 98% vs 100% when it does not.)"""
    return float(_region(crops, MOUTH_REGION).mean(axis=(1, 2)).std()) if len(crops) > 1 else 0.0


def select_by_mouth_motion(tracks: Sequence[FaceTrack], audio: np.ndarray | None, frames: np.ndarray) -> int:
    """Active-speaker guess: the track whose mouth region varies most over time
    (:func:`mouth_activity`). Ignores ``audio``; a lip-sync selector would correlate the two."""
    scores = [mouth_activity(grey_crops(frames, tr.filled(), 24, margin=0.0)) for tr in tracks]
    return int(np.argmax(scores))


select_by_mouth_motion.needs_audio = False  # type: ignore[attr-defined]

TrackSelector = Callable[[Sequence[FaceTrack], "np.ndarray | None", np.ndarray], int]

# Track selectors a config can name (feature request option ``select_track``).
TRACK_SELECTORS = ("mouth-motion", "random", "lipsync")
LIPSYNC_TRAIN_MODULE = "merbench.features.active_speaker.train_lipsync"
# The selectors' identity in the cache key (and so in results' feature_settings). It names the
# module they lived in before moving under the feature extractors: the same code gives the same
# features, so every existing cache stays valid.
SELECTOR_IDS = {"random": "merbench.methods.lipsync_graph_erc.active_speaker:RandomSelector",
                "lipsync": "merbench.methods.lipsync_graph_erc.active_speaker:LipSyncSelector"}


def default_lipsync_checkpoint() -> Path:
    """Where ``select_track: lipsync`` looks for LipSyncNet: ``<MERBENCH_HOME>/models/lipsync/lipsync.pt``."""
    from ..paths import home

    return home() / "models" / "lipsync" / "lipsync.pt"


class NamedTrackSelector:
    """A track selector named in a config: ``random`` (``RandomSelector``, the "without
    lip-sync" ablation) or ``lipsync`` (``LipSyncSelector`` with a LipSyncNet checkpoint).

    The implementation (and with it torch and the lip-sync network) is imported on first use,
    so building an extractor (e.g. for ``bench info``) costs nothing; a missing checkpoint is
    reported when the cache key is first needed, i.e. before any extraction starts."""

    def __init__(self, name: str, lipsync_checkpoint: str | Path | None = None, seed: int = 0):
        self.name = name
        self.seed = int(seed)
        self.checkpoint = Path(lipsync_checkpoint).expanduser() if lipsync_checkpoint else default_lipsync_checkpoint()
        self._impl = None

    @property
    def needs_audio(self) -> bool:
        return self.name == "lipsync"

    def _load(self):
        if self._impl is None:
            from .active_speaker import selector as mod  # torch and LipSyncNet: only when used

            if self.name == "random":
                self._impl = mod.RandomSelector(self.seed)
            else:
                if not self.checkpoint.is_file():
                    raise ConfigError(
                        f"video feature option select_track: lipsync needs a LipSyncNet checkpoint, and "
                        f"{self.checkpoint} does not exist",
                        fix=f"train it: python -m {LIPSYNC_TRAIN_MODULE} --out {self.checkpoint.parent} "
                            f"(writes {self.checkpoint.name} there), or set options.lipsync_checkpoint to an existing "
                            f"file, or use select_track: mouth-motion")
                self._impl = mod.LipSyncSelector(self.checkpoint)
        return self._impl

    def settings(self) -> dict[str, Any]:
        if self.name == "random":  # known without importing anything
            return {"name": "random", "impl": SELECTOR_IDS["random"], "seed": self.seed}
        # The weights' hash (not the file's path) identifies a lip-sync model.
        return {"name": "lipsync", "impl": SELECTOR_IDS["lipsync"], **self._load().settings()}

    def __call__(self, tracks: Sequence[FaceTrack], audio: np.ndarray | None, frames: np.ndarray) -> int:
        return int(self._load()(tracks, audio, frames))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_impl": None}  # worker processes load the model again


def resolve_track_selector(select_track: "str | TrackSelector | None", lipsync_checkpoint: str | Path | None = None,
                           random_seed: int = 0, extractor: str = "video-facecrop") -> TrackSelector:
    """A ``select_track`` hook from a callable or from one of the names in :data:`TRACK_SELECTORS`.
    ``mouth-motion`` (and None) is :func:`select_by_mouth_motion` itself, so the cache key of an
    extractor without options is unchanged."""
    name = select_track if isinstance(select_track, str) else None
    if lipsync_checkpoint is not None and name != "lipsync":
        raise ConfigError(f"{extractor}: option lipsync_checkpoint is used only with select_track: lipsync "
                          f"(select_track is {select_track if name else 'not lipsync'})",
                          fix="remove lipsync_checkpoint or set select_track: lipsync")
    if select_track is None or name == "mouth-motion":
        return select_by_mouth_motion
    if name is None:
        if not callable(select_track):
            raise ConfigError(f"{extractor}: option select_track must be one of {', '.join(TRACK_SELECTORS)} "
                              f"(or a callable), not {select_track!r}", fix=f"use select_track: {TRACK_SELECTORS[0]}")
        return select_track
    if name not in TRACK_SELECTORS:
        raise ConfigError(f"{extractor}: option select_track: {name!r} is unknown",
                          fix=f"use one of {', '.join(TRACK_SELECTORS)}")
    return NamedTrackSelector(name, lipsync_checkpoint, random_seed)


# -- the extractor ----------------------------------------------------------------------------


class FaceCropExtractor(FeatureExtractor):
    """Per-frame descriptors of the speaker's face crop (frames, ``crop_size**2 + 12`` dims) and
    their mean and std over frames (pooled).

    ``detector``: any :class:`FaceDetector`. ``select_track``: ``(tracks, audio, frames) -> index``;
    if it has ``needs_audio = True`` it gets the utterance's 16 kHz audio, else None.
    """

    name = "video-facecrop"
    version = "1"
    modality = "v"
    levels = ("pooled", "frames")
    batch_size = 8
    # What a method config may set (features.v.options); the detector is code, not config.
    config_options = ("select_track", "lipsync_checkpoint", "random_seed", "max_frames", "crop_size", "margin",
                      "detect_max_side", "detect_every")

    def __init__(self, detector: FaceDetector | None = None, select_track: "str | TrackSelector | None" = None,
                 max_frames: int = 32, crop_size: int = 24, margin: float = 0.1, detect_max_side: int = 320,
                 detect_every: int = 3, lipsync_checkpoint: str | Path | None = None, random_seed: int = 0):
        self.detector = detector if detector is not None else default_detector()
        # select_track: a callable, or mouth-motion (default) / random / lipsync (see resolve_track_selector).
        self.select_track = resolve_track_selector(select_track, lipsync_checkpoint, random_seed, self.name)
        self.max_frames = int(max_frames)
        self.crop_size = int(crop_size)
        self.margin = float(margin)
        self.detect_max_side = int(detect_max_side)
        self.detect_every = max(1, int(detect_every))
        self.counts = {"utterances": 0, "no_face": 0, "several_faces": 0}

    @property
    def frame_dim(self) -> int:
        return self.crop_size ** 2 + 12

    def output_dim(self, level: str = "pooled") -> int:
        return 2 * self.frame_dim if level == "pooled" else self.frame_dim

    def settings(self) -> dict[str, Any]:
        sel = self.select_track
        sel_name = f"{getattr(sel, '__module__', '')}:{getattr(sel, '__qualname__', type(sel).__qualname__)}"
        out = {"max_frames": self.max_frames, "crop_size": self.crop_size, "margin": self.margin,
               "detect_max_side": self.detect_max_side, "detect_every": self.detect_every,
               "detector": describe_detector(self.detector), "select_track": sel_name,
               "descriptor": "zpixels+brow/mouth stats+box"}
        if hasattr(sel, "settings"):  # a configurable selector (e.g. a lip-sync model) says what changes it
            out["select_track_settings"] = sel.settings()
        return out

    def _downscale(self, frames: np.ndarray) -> np.ndarray:
        import cv2

        H, W = frames.shape[1:3]
        scale = self.detect_max_side / max(H, W)
        if scale >= 1:
            return frames
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])

    def features(self, frames: np.ndarray, audio: np.ndarray | None = None) -> ExtractedItem:
        """Features of RGB frames (T, H, W, 3) of one utterance."""
        frames = self._downscale(frames)
        self.counts["utterances"] += 1
        # Detection is the slow step; faces move little between sampled frames, so detect on
        # every k-th frame (and the last) and let the tracks interpolate in between.
        last = len(frames) - 1
        tracks = track_faces([self.detector.detect(f) if i % self.detect_every == 0 or i == last else []
                              for i, f in enumerate(frames)])
        if not tracks:
            self.counts["no_face"] += 1
            H, W = frames.shape[1:3]
            boxes = np.tile(np.array([0, 0, W, H], dtype=np.float64), (len(frames), 1))
            margin = 0.0
        else:
            k = 0
            if len(tracks) > 1:
                self.counts["several_faces"] += 1
                k = int(self.select_track(tracks, audio, frames))
                if not 0 <= k < len(tracks):
                    raise ValueError(f"select_track {self.settings()['select_track']} returned track {k} "
                                     f"of {len(tracks)}; it must return an index into the tracks it is given")
            boxes, margin = tracks[k].filled(), self.margin
        desc = frame_descriptor(grey_crops(frames, boxes, self.crop_size, margin), boxes, frames.shape[1:3])
        pooled = np.concatenate([desc.mean(0), desc.std(0)]).astype(np.float32)
        return ExtractedItem(pooled=pooled, frames=desc)

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        return extract_face_clips(self, utterances)


def read_clip(u: Utterance, max_frames: int, select_track) -> tuple[np.ndarray, np.ndarray | None]:
    """An utterance's frames, plus its audio when the track selector asks for it."""
    if not u.video_path:
        raise MediaError(u.uid, f"utterance {u.uid} has no video_path",
                         fix="the corpus adapter must set video_path, or drop the video modality (--modalities t,a)")
    frames, _ = read_video(u.video_path, max_frames=max_frames)
    audio = None
    if getattr(select_track, "needs_audio", False):
        try:
            audio = read_audio(u.audio_path or u.video_path)
        except MediaError as e:  # unreadable audio must not cost the video features
            log.debug("%s: no audio for track selection: %s", u.uid, e)
    return frames, audio


def extract_face_clips(extractor, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
    """The ``extract`` of face-track extractors: read each clip, then ``extractor.features``."""
    out = [extractor.features(*read_clip(u, extractor.max_frames, extractor.select_track)) for u in utterances]
    if extractor.counts["no_face"]:
        log.info("%s: no face found in %d of %d utterances so far (whole frames used)",
                 extractor.name, extractor.counts["no_face"], extractor.counts["utterances"])
    return out
