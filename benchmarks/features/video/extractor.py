"""The face-crop video extractor (``video-facecrop``): detect faces (:mod:`.detect`), track them
(:mod:`.track`), pick the speaker's face (:mod:`.select`), describe it.

Steps for one utterance:

1. read at most ``max_frames`` frames spread over the clip (:func:`read_video`), scaled
   down so that the longer side is at most ``detect_max_side`` pixels (by the decoder);
2. detect faces with a :class:`FaceDetector` (default: OpenCV's Haar cascade, and skin-colour
   blobs in the frames where Haar finds nothing) on the first frame and on any frame where a
   followed face is lost, and on every ``detect_every``-th frame (default 16) with the
   followed faces painted out, to find faces that came in; in between, follow each face by
   template matching (``face_tracking: template``, :func:`track_faces_sparse`);
3. link detections into tracks (nearest box centre);
4. pick one track with a ``select_track(tracks, audio, frames) -> index`` hook (default
   :func:`select_by_mouth_motion`, a cheap active-speaker guess);
5. crop that face in every frame, resize to a small grey square, and describe it
   (:func:`frame_descriptor`). frames = per-frame descriptors, pooled = concat(mean, std).

When no face is found in any frame the whole frame is used, and the utterance is counted
in ``extractor.counts["no_face"]``.

``face_tracking: interpolate`` is the pipeline before template tracking (version 1's crops,
cache key and speed): full-size decoding, then resizing; detection on every
``detect_every``-th frame (default 3) and linear interpolation of the boxes in between.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...corpus import Utterance
from ...errors import ConfigError, MediaError
from ...interfaces import ExtractedItem, FeatureExtractor
from ..media import read_audio, read_video
from .detect import FaceDetector, default_detector, describe_detector
from .select import BROW_EYE_REGION, MOUTH_REGION, TrackSelector, crop_region, mouth_motion, resolve_track_selector, selector_id
from .track import TEMPLATE_SIDE, grey_crops, track_faces, track_faces_sparse

log = logging.getLogger(__name__)

# Template tracking between detections: search window (box sizes around the last box) and the
# normalised cross-correlation below which a face counts as lost (then the frame is detected).
TRACK_SEARCH = 0.35
TRACK_MIN_SCORE = 0.5
DEFAULT_SCALE_FACTOR = {"template": 1.2, "interpolate": 1.1}  # the default detector's Haar scale step


# -- descriptors -------------------------------------------------------------------------------


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
        r = crop_region(crops, reg)
        grad = np.abs(np.diff(r, axis=1)).mean(axis=(1, 2)) if r.shape[1] > 1 else np.zeros(T)
        stats += [r.mean(axis=(1, 2)), r.std(axis=(1, 2)), grad]
    mouth = crop_region(crops, MOUTH_REGION).reshape(T, -1)
    stats.append((mouth < (mu - 0.15)).mean(1))
    stats.append(mouth_motion(crops))
    H, W = frame_shape[:2]
    b = np.asarray(boxes, dtype=np.float64)
    stats += [(b[:, 0] + b[:, 2] / 2) / W, (b[:, 1] + b[:, 3] / 2) / H, b[:, 2] / W, b[:, 3] / H]
    return np.concatenate([pix, np.stack(stats, axis=1)], axis=1).astype(np.float32)


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
    # Decoding and detection run on one core per clip and each clip's features are its own (the
    # random selector is seeded per clip): extract_corpus runs a process per core by default.
    parallel = True
    # What a method config may set (features.v.options); the detector is code, not config.
    config_options = ("select_track", "lipsync_checkpoint", "random_seed", "max_frames", "crop_size", "margin",
                      "detect_max_side", "detect_every", "face_tracking")
    FACE_TRACKING = ("template", "interpolate")
    # Detection every k-th sampled frame: template tracking follows faces in between, so it
    # needs far fewer detections than interpolation did.
    DEFAULT_DETECT_EVERY = {"template": 16, "interpolate": 3}

    def __init__(self, detector: FaceDetector | None = None, select_track: "str | TrackSelector | None" = None,
                 max_frames: int = 32, crop_size: int = 24, margin: float = 0.1, detect_max_side: int = 320,
                 detect_every: int | None = None, lipsync_checkpoint: str | Path | None = None, random_seed: int = 0,
                 face_tracking: str = "template"):
        if face_tracking not in self.FACE_TRACKING:
            raise ConfigError(f"{self.name}: option face_tracking: {face_tracking!r} is unknown",
                              fix=f"use one of {', '.join(self.FACE_TRACKING)}")
        # Template tracking scans window sizes 1.2x apart (not 1.1x): half the detector's time, and
        # the same faces found in every first frame of a 30-dialogue synthetic corpus.
        self.detector = detector if detector is not None else default_detector(
            DEFAULT_SCALE_FACTOR[face_tracking])
        # select_track: a callable, or mouth-motion (default) / random / lipsync (see resolve_track_selector).
        self.select_track = resolve_track_selector(select_track, lipsync_checkpoint, random_seed, self.name)
        self.max_frames = int(max_frames)
        self.crop_size = int(crop_size)
        self.margin = float(margin)
        self.detect_max_side = int(detect_max_side)
        self.face_tracking = face_tracking
        every = self.DEFAULT_DETECT_EVERY[face_tracking] if detect_every is None else detect_every
        self.detect_every = max(1, int(every))
        self.counts = {"utterances": 0, "no_face": 0, "several_faces": 0, "detected_frames": 0, "frames": 0}

    @property
    def decode_max_side(self) -> int:
        """Frames are scaled down by the decoder (template tracking) or after it (interpolate, as in version 1)."""
        return self.detect_max_side if self.face_tracking == "template" else 0

    @property
    def frame_dim(self) -> int:
        return self.crop_size ** 2 + 12

    def output_dim(self, level: str = "pooled") -> int:
        return 2 * self.frame_dim if level == "pooled" else self.frame_dim

    def settings(self) -> dict[str, Any]:
        sel = self.select_track
        out = {"max_frames": self.max_frames, "crop_size": self.crop_size, "margin": self.margin,
               "detect_max_side": self.detect_max_side, "detect_every": self.detect_every,
               "detector": describe_detector(self.detector), "select_track": selector_id(sel),
               "descriptor": "zpixels+brow/mouth stats+box"}
        if hasattr(sel, "settings"):  # a configurable selector (e.g. a lip-sync model) says what changes it
            out["select_track_settings"] = sel.settings()
        if self.face_tracking != "interpolate":  # interpolate keeps version 1's settings, so its cache key
            out["face_tracking"] = {"method": self.face_tracking, "decoder_scaling": "area",
                                    "template_side": TEMPLATE_SIDE, "search": TRACK_SEARCH, "min_score": TRACK_MIN_SCORE,
                                    "refresh": "primary detector, followed faces painted out"}
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
        self.counts["frames"] += len(frames)
        if self.face_tracking == "template":
            tracks, n_detect = track_faces_sparse(frames, self.detector, self.detect_every, search=TRACK_SEARCH,
                                                  min_score=TRACK_MIN_SCORE)
        else:
            # Detection is the slow step; faces move little between sampled frames, so detect on
            # every k-th frame (and the last) and let the tracks interpolate in between.
            last = len(frames) - 1
            keyframes = [i % self.detect_every == 0 or i == last for i in range(len(frames))]
            tracks = track_faces([self.detector.detect(f) if key else [] for key, f in zip(keyframes, frames)])
            n_detect = sum(keyframes)
        self.counts["detected_frames"] += n_detect
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
        return ExtractedItem(pooled=pooled, frames=desc, notes=() if tracks else ("no_face",))

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        return extract_face_clips(self, utterances)


def read_clip(u: Utterance, max_frames: int, select_track, max_side: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """An utterance's frames (scaled down to ``max_side`` when > 0), plus its audio when the
    track selector asks for it."""
    if not u.video_path:
        raise MediaError(u.uid, f"utterance {u.uid} has no video_path",
                         fix="the corpus adapter must set video_path, or drop the video modality (--modalities t,a)")
    frames, _ = read_video(u.video_path, max_frames=max_frames, max_side=max_side)
    audio = None
    if getattr(select_track, "needs_audio", False):
        try:
            audio = read_audio(u.audio_path or u.video_path)
        except MediaError as e:  # unreadable audio must not cost the video features
            log.debug("%s: no audio for track selection: %s", u.uid, e)
    return frames, audio


def extract_face_clips(extractor, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
    """The ``extract`` of face-track extractors: read each clip, then ``extractor.features``."""
    max_side = getattr(extractor, "decode_max_side", 0)
    out = [extractor.features(*read_clip(u, extractor.max_frames, extractor.select_track, max_side))
           for u in utterances]
    if extractor.counts["no_face"]:
        log.info("%s: no face found in %d of %d utterances so far (whole frames used)",
                 extractor.name, extractor.counts["no_face"], extractor.counts["utterances"])
    return out
