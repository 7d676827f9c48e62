"""Audio features from openSMILE: eGeMAPSv02 (88 functionals, 25 LLDs) and ComParE 2016
(6373 functionals, 65 LLDs), computed on 16 kHz mono audio read with :func:`read_audio`.

pooled = the feature set's functionals over the whole utterance; frames = its low-level
descriptors (10 ms hop). The audio comes from ``audio_path``, else from ``video_path``
(decoded by PyAV, see :mod:`merbench.features.media`).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Sequence

import numpy as np

from ..corpus import Utterance
from ..errors import MediaError
from ..interfaces import ExtractedItem, FeatureExtractor
from .media import read_audio

SAMPLE_RATE = 16000
# openSMILE returns NaN functionals below about 0.1 s; such clips are padded with silence to it.
MIN_SAMPLES = SAMPLE_RATE // 10


def media_path(u: Utterance, modality: str = "a") -> str:
    path = u.audio_path or u.video_path
    if not path:
        raise MediaError(u.uid, f"utterance {u.uid} has no audio_path or video_path",
                         fix="the corpus adapter must set audio_path, or drop the audio modality (--modalities t,v)")
    return path


class OpenSmileExtractor(FeatureExtractor):
    """Base class: set ``feature_set`` to an ``opensmile.FeatureSet`` member name."""

    modality = "a"
    levels = ("pooled", "frames")
    batch_size = 16
    feature_set: ClassVar[str]

    def __init__(self) -> None:
        import opensmile

        fs = getattr(opensmile.FeatureSet, self.feature_set)
        # Building a Smile object parses its config; do it once per extractor instance.
        self._functionals = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.Functionals)
        self._lld = opensmile.Smile(feature_set=fs, feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        self._opensmile_version = opensmile.__version__

    def settings(self) -> dict[str, Any]:
        return {"feature_set": self.feature_set, "sample_rate": SAMPLE_RATE, "min_samples": MIN_SAMPLES,
                "opensmile": self._opensmile_version}

    def output_dim(self, level: str = "pooled") -> int:
        names = self._functionals.feature_names if level == "pooled" else self._lld.feature_names
        return len(names)

    @property
    def feature_names(self) -> tuple[list[str], list[str]]:
        """(functional names, LLD names), in the column order of pooled and frames."""
        return list(self._functionals.feature_names), list(self._lld.feature_names)

    def features(self, signal: np.ndarray) -> ExtractedItem:
        x = np.asarray(signal, dtype=np.float32)
        if len(x) < MIN_SAMPLES:
            x = np.pad(x, (0, MIN_SAMPLES - len(x)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Segment too short" on tiny clips
            pooled = self._functionals.process_signal(x, SAMPLE_RATE).to_numpy(dtype=np.float32)[0]
            frames = self._lld.process_signal(x, SAMPLE_RATE).to_numpy(dtype=np.float32)
        if len(frames) == 0:
            frames = np.zeros((1, len(self._lld.feature_names)), dtype=np.float32)
        return ExtractedItem(pooled=np.nan_to_num(pooled, nan=0.0, posinf=0.0, neginf=0.0),
                             frames=np.ascontiguousarray(np.nan_to_num(frames, nan=0.0, posinf=0.0, neginf=0.0)))

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        out = []
        for u in utterances:
            path = media_path(u)
            x = read_audio(path, SAMPLE_RATE)
            try:
                out.append(self.features(x))
            except Exception as e:  # openSMILE raises plain RuntimeError / OSError on bad input
                raise MediaError(path, f"openSMILE failed on it ({type(e).__name__}: {e})",
                                 fix="re-create the file as 16 kHz mono PCM wav") from None
        return out


class EGeMAPSExtractor(OpenSmileExtractor):
    """eGeMAPSv02: 88 functionals (pooled), 25 low-level descriptors per 10 ms (frames)."""

    name = "audio-egemaps"
    version = "1"
    feature_set = "eGeMAPSv02"


class ComParE2016Extractor(OpenSmileExtractor):
    """ComParE 2016: 6373 functionals (pooled), 65 low-level descriptors per 10 ms (frames)."""

    name = "audio-compare"
    version = "1"
    feature_set = "ComParE_2016"
