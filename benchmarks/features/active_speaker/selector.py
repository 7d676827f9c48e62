"""Active-speaker selection hooks for :class:`merbench.features.video.FaceCropExtractor`.

    FaceCropExtractor(select_track=LipSyncSelector(checkpoint))   # e.g. <MERBENCH_HOME>/models/lipsync/lipsync.pt
    FaceCropExtractor(select_track=RandomSelector(seed=0))   # the "without lip-sync" ablation

Both are called as ``selector(tracks, audio, frames) -> index`` and only when the clip has
two or more face tracks.
"""

from __future__ import annotations

import logging
import math
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .lipsync import (LipSyncConfig, LipSyncNet, SAMPLE_RATE, face_crops, load_checkpoint, log_mel,
                      pad_to_window, state_fingerprint, window_distances)

log = logging.getLogger(__name__)


class LipSyncSelector:
    """Pick the face track whose crops are closest to the audio under LipSyncNet: the
    smallest mean audio-visual distance over all aligned windows of the clip.

    ``model``: a checkpoint path (from ``train_lipsync``; its default output,
    ``<MERBENCH_HOME>/models/lipsync/lipsync.pt``, is what ``select_track: lipsync`` loads) or a :class:`LipSyncNet`
    (``config`` then gives the crop settings; default :class:`LipSyncConfig`).
    ``fps``: the frame rate of the frames the hook receives. None (default) infers it from
    the audio length (``len(audio) / n_frames`` samples per frame), which is what the
    extractor's evenly sub-sampled frames need; give it when the frames are known to be at
    a fixed rate (12.5 for the synthetic corpus) to avoid the up-to-one-frame drift of the
    inference when a clip ends on a partial frame. Without audio (unreadable file) the
    selector falls back to the suite's mouth-motion guess and counts it in ``counts``.
    """

    needs_audio = True

    def __init__(self, model: str | Path | LipSyncNet, config: LipSyncConfig | None = None, fps: float | None = None,
                 stride: int = 1, device: str = "cpu"):
        if isinstance(model, LipSyncNet):
            self.model, self.config, self.checkpoint = model, config or LipSyncConfig(), None
        else:
            self.model, self.config = load_checkpoint(model, map_location=device)
            self.checkpoint = str(model)
        self.model.to(device).eval()
        self.fps = fps
        self.stride = max(1, int(stride))
        self._fingerprint: str | None = None
        self.counts = {"calls": 0, "no_audio": 0}

    def settings(self) -> dict[str, Any]:
        """What changes the choice (the extractor puts it in its cache key)."""
        if self._fingerprint is None:
            self._fingerprint = state_fingerprint(self.model)
        return {"weights_sha256": self._fingerprint, "crop_size": self.config.crop_size,
                "crop_margin": self.config.crop_margin, "crop_region": self.config.crop_region,
                "center_window": self.config.center_window, "window_frames": self.config.window_frames,
                "fps": self.fps, "stride": self.stride}

    def track_distances(self, tracks: Sequence, audio: np.ndarray, frames: np.ndarray) -> list[float]:
        """Mean audio-visual distance of every track (smaller = more likely the speaker)."""
        n = len(frames)
        spf = SAMPLE_RATE / self.fps if self.fps else len(audio) / max(1, n)
        mel = log_mel(audio, samples_per_frame=spf, n_frames=n)
        out = []
        for tr in tracks:
            crops = face_crops(frames, tr.filled(), self.config.crop_size, self.config.crop_margin,
                               self.config.crop_region)
            crops, m = pad_to_window(crops, mel, self.config.window_frames)
            d = window_distances(self.model, crops, m, stride=self.stride, window=self.config.window_frames,
                                 center=self.config.center_window)
            out.append(float(d.mean()) if len(d) else math.inf)
        return out

    def __call__(self, tracks: Sequence, audio: np.ndarray | None, frames: np.ndarray) -> int:
        self.counts["calls"] += 1
        if len(tracks) < 2:
            return 0
        if audio is None or len(audio) == 0:
            from merbench.features.video import select_by_mouth_motion

            self.counts["no_audio"] += 1
            log.debug("LipSyncSelector: no audio, falling back to mouth motion")
            return int(select_by_mouth_motion(tracks, None, frames))
        with torch.no_grad():
            d = self.track_distances(tracks, np.asarray(audio, dtype=np.float32), frames)
        return int(np.argmin(d))


class RandomSelector:
    """A random track, for the "without lip-sync selection" ablation. Deterministic per clip
    (seeded from ``seed`` and the frames' bytes), so cached features do not depend on the
    order in which utterances are processed."""

    needs_audio = False

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def settings(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def __call__(self, tracks: Sequence, audio: np.ndarray | None, frames: np.ndarray) -> int:
        if len(tracks) < 2:
            return 0
        key = zlib.crc32(np.ascontiguousarray(frames).tobytes())
        return int(np.random.default_rng([self.seed, key]).integers(len(tracks)))
