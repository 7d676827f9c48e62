"""Audio features from openSMILE: eGeMAPSv02 (88 functionals, 25 LLDs) and ComParE 2016
(6373 functionals, 65 LLDs), computed on 16 kHz mono audio read with :func:`read_audio`.

pooled = the feature set's functionals over the whole utterance; frames = its low-level
descriptors (10 ms hop). The audio comes from ``audio_path``, else from ``video_path``
(decoded by PyAV, see :mod:`merbench.features.media`).
"""

from __future__ import annotations

import os
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


def _functionals_and_llds(func_smile, x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Functionals (D,) and LLDs (T, D_lld) of mono ``x`` from one openSMILE run: the config of
    ``func_smile`` (a ``Smile`` at the functionals level) with openSMILE's two-sink output, fed as
    ``Smile`` feeds it (16-bit samples). Uses the ``Smile``'s option set, so it follows the installed
    openSMILE's; the test suite checks the arrays against one ``Smile`` per level."""
    from opensmile.core.config import config as smile_config
    from opensmile.core.lib import OpenSMILE

    options = func_smile._options()
    options.pop("sinkLevel", None)
    options.update(sink=os.path.join(func_smile.default_config_root, smile_config.EXTERNAL_OUTPUT_MULTI_CONFIG),
                   sinkLevelLLD="lld", sinkLevelFunc="func", sampleRate=sr, nBits=16,
                   source=os.path.join(func_smile.default_config_root, smile_config.EXTERNAL_INPUT_CONFIG))
    pcm = (x * 32768).astype(np.int16)  # as Smile._extract converts
    lld: list[np.ndarray] = []
    func: list[np.ndarray] = []
    smile = OpenSMILE()
    try:
        smile.initialize(config_file=func_smile.config_path, options=options, loglevel=func_smile.loglevel,
                         log_file=func_smile.logfile, debug=func_smile.verbose)
        smile.external_sink_set_callback_ex("extsinklld", lambda data, meta: lld.append(data.copy()))
        smile.external_sink_set_callback_ex("extsinkfunc", lambda data, meta: func.append(data.copy()))
        smile.external_audio_source_write_data("extsource", bytes(pcm))
        smile.external_audio_source_set_eoi("extsource")
        smile.run()
    finally:
        smile.free()
    n_func = len(func_smile.feature_names)
    pooled = np.vstack(func)[0].astype(np.float32) if func else np.full(n_func, np.nan, np.float32)
    frames = np.vstack(lld).astype(np.float32) if lld else np.zeros((0, 0), np.float32)
    return pooled, frames


class OpenSmileExtractor(FeatureExtractor):
    """Base class: set ``feature_set`` to an ``opensmile.FeatureSet`` member name.

    Both levels come from ONE openSMILE run: the feature set's config with the two external sinks
    openSMILE ships for that (``standard_external_data_output_multi.conf.inc``: LLDs and functionals),
    instead of one ``Smile`` per level, each computing the LLDs again; the arrays are the same (tested).
    ``with_frames=False`` runs the functionals only (``Smile`` at the functionals level): the engine
    asks for that when a method reads pooled features only; it is a cache entry of its own (its
    settings say ``levels: pooled``), never taken for one that holds frames."""

    modality = "a"
    levels = ("pooled", "frames")
    batch_size = 16
    parallel = True  # one core per utterance: extract_corpus runs a process per core
    config_options = ()  # with_frames is set by the engine from the request's level, never by a config
    feature_set: ClassVar[str]

    def __init__(self, with_frames: bool = True) -> None:
        import opensmile

        self.with_frames = bool(with_frames)
        self._opensmile_version = opensmile.__version__
        self._smiles: dict = {}

    def __getstate__(self) -> dict:  # to a worker process without the openSMILE objects (built there)
        return {**self.__dict__, "_smiles": {}}

    def _smile(self, level: str = "func"):
        """The ``Smile`` of ``level`` (func or lld), built once per process on first use (building one
        parses its config; the LLD one only gives names: extraction runs from the functionals')."""
        if level not in self._smiles:
            import opensmile

            fs = getattr(opensmile.FeatureSet, self.feature_set)
            lvl = opensmile.FeatureLevel.Functionals if level == "func" else opensmile.FeatureLevel.LowLevelDescriptors
            self._smiles[level] = opensmile.Smile(feature_set=fs, feature_level=lvl)
        return self._smiles[level]

    def settings(self) -> dict[str, Any]:
        out = {"feature_set": self.feature_set, "sample_rate": SAMPLE_RATE, "min_samples": MIN_SAMPLES,
               "opensmile": self._opensmile_version}
        if not self.with_frames:  # both levels keep the key they had before levels could be chosen
            out["levels"] = "pooled"
        return out

    def pooled_from(self) -> "OpenSmileExtractor | None":
        """The extractor of both levels whose finished cache entry holds this one's pooled features
        (the same functionals, from one openSMILE run: tested), so that they are copied, not
        computed again; None when this one computes both levels itself."""
        return None if self.with_frames else type(self)(with_frames=True)

    def output_dim(self, level: str = "pooled") -> int:
        return len(self._smile("func" if level == "pooled" else "lld").feature_names)

    @property
    def feature_names(self) -> tuple[list[str], list[str]]:
        """(functional names, LLD names), in the column order of pooled and frames."""
        return list(self._smile("func").feature_names), list(self._smile("lld").feature_names)

    def features(self, signal: np.ndarray) -> ExtractedItem:
        x = np.asarray(signal, dtype=np.float32)
        if len(x) < MIN_SAMPLES:
            x = np.pad(x, (0, MIN_SAMPLES - len(x)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Segment too short" on tiny clips
            if self.with_frames:
                pooled, frames = _functionals_and_llds(self._smile(), x, SAMPLE_RATE)
            else:
                pooled, frames = self._smile()(x, SAMPLE_RATE)[0, :, 0].astype(np.float32), None
        if frames is not None and len(frames) == 0:
            frames = np.zeros((1, self.output_dim("frames")), dtype=np.float32)
        clean = lambda a: np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)  # noqa: E731
        return ExtractedItem(pooled=clean(pooled),
                             frames=None if frames is None else np.ascontiguousarray(clean(frames)))

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
