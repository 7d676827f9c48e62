"""Track selection: which face track is the speaker's. ``select_by_mouth_motion`` (default,
a cheap guess), or a selector named in a config (``random``, ``lipsync``: see
:mod:`merbench.features.active_speaker`, imported only when used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import ConfigError
from .track import FaceTrack, grey_crops

# Regions of the face crop, as (row from, row to, col from, col to) fractions of its size.
BROW_EYE_REGION = (0.12, 0.50, 0.10, 0.90)
MOUTH_REGION = (0.60, 0.95, 0.20, 0.80)


def crop_region(crops: np.ndarray, reg) -> np.ndarray:
    """The part of square crops (..., s, s) inside ``reg`` (row from, row to, col from, col to fractions)."""
    s = crops.shape[-1]
    r0, r1, c0, c1 = (int(round(v * s)) for v in reg)
    return crops[..., r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)]


def mouth_motion(crops: np.ndarray) -> np.ndarray:
    """(T,) mean absolute change of the mouth region from the previous frame (0 for the first)."""
    m = crop_region(crops, MOUTH_REGION)
    d = np.abs(np.diff(m, axis=0)).mean(axis=(1, 2)) if len(m) > 1 else np.zeros(0, np.float32)
    return np.concatenate([[0.0], d]).astype(np.float32)


# -- track selection -------------------------------------------------------------------------


def mouth_activity(crops: np.ndarray) -> float:
    """How much the mouth opens and closes: the std over time of the mouth region's mean
    brightness. (Averaging over the region first keeps pixel noise and small head jitter
    out; frame-to-frame pixel differences picked those up and chose worse on the synthetic
    corpus: 80% vs 85% right when the listener's mouth moves too, 98% vs 100% when it does not.)"""
    return float(crop_region(crops, MOUTH_REGION).mean(axis=(1, 2)).std()) if len(crops) > 1 else 0.0


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
    from ...paths import home

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
            from ..active_speaker import selector as mod  # torch and LipSyncNet: only when used

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


# How a selector is named in an extractor's settings (and so its cache key). The built-in ones
# keep the names they had when they lived in merbench.features.video, so that splitting that
# module changed no cache key.
_STABLE_IDS = {"select_by_mouth_motion": "merbench.features.video:select_by_mouth_motion",
               "NamedTrackSelector": "merbench.features.video:NamedTrackSelector"}


def selector_id(sel: Any) -> str:
    """``module:name`` of a track selector (a function or an instance of a class)."""
    qualname = getattr(sel, "__qualname__", type(sel).__qualname__)
    if getattr(sel, "__module__", "") == __name__ and qualname in _STABLE_IDS:
        return _STABLE_IDS[qualname]
    return f"{getattr(sel, '__module__', '')}:{qualname}"
