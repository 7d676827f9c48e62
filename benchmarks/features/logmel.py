"""Log-mel spectrogram features (librosa), on 16 kHz mono audio read with :func:`read_audio`.

frames = log-mel frames ``(T, n_mels)`` with 25 ms windows every 10 ms;
pooled = their mean and standard deviation over time, concatenated ``(2 * n_mels,)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..corpus import Utterance
from ..errors import ConfigError
from ..interfaces import ExtractedItem, FeatureExtractor
from .audio import SAMPLE_RATE, media_path
from .media import read_audio

WIN_MS, HOP_MS = 25, 10
# The log floor: log(power + EPS) keeps silent bins finite (about -13.8) instead of -inf.
EPS = 1e-6


class LogMelExtractor(FeatureExtractor):
    """Log-mel filterbank energies: ``n_mels`` (64 or 80) bands over 0 to ``fmax`` Hz."""

    name = "audio-logmel"
    version = "1"
    modality = "a"
    levels = ("pooled", "frames")
    batch_size = 32

    def __init__(self, n_mels: int = 64, fmin: float = 0.0, fmax: float | None = None):
        if int(n_mels) not in (64, 80):
            raise ConfigError(f"audio-logmel: n_mels must be 64 or 80, not {n_mels!r}",
                              fix="set n_mels: 64 (the default) or n_mels: 80")
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = float(fmax) if fmax else SAMPLE_RATE / 2
        self.win = SAMPLE_RATE * WIN_MS // 1000  # 400 samples
        self.hop = SAMPLE_RATE * HOP_MS // 1000  # 160 samples
        self.n_fft = 512  # the next power of two above the window, as Kaldi-style front ends do

    def settings(self) -> dict[str, Any]:
        import librosa

        return {"n_mels": self.n_mels, "sample_rate": SAMPLE_RATE, "win_length": self.win, "hop_length": self.hop,
                "n_fft": self.n_fft, "window": "hann", "center": True, "fmin": self.fmin, "fmax": self.fmax,
                "power": 2.0, "log": f"ln(x + {EPS})", "pooled": "mean+std", "librosa": librosa.__version__}

    def output_dim(self, level: str = "pooled") -> int:
        return 2 * self.n_mels if level == "pooled" else self.n_mels

    def _basis(self) -> np.ndarray:
        # The filterbank is fixed by the settings: build it once (librosa rebuilds it every call).
        if getattr(self, "_mel_basis", None) is None:
            import librosa

            self._mel_basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=self.n_fft, n_mels=self.n_mels,
                                                  fmin=self.fmin, fmax=self.fmax).astype(np.float32)
        return self._mel_basis

    def features(self, signal: np.ndarray) -> ExtractedItem:
        import warnings

        import librosa

        with warnings.catch_warnings():
            # Clips shorter than n_fft are fine here: centring pads them with zeros.
            warnings.filterwarnings("ignore", message="n_fft=.* is too large")
            spec = librosa.stft(np.asarray(signal, dtype=np.float32), n_fft=self.n_fft, hop_length=self.hop,
                                win_length=self.win, window="hann", center=True, pad_mode="constant")
        mel = self._basis() @ (spec.real ** 2 + spec.imag ** 2)  # power spectrum -> mel bands, (n_mels, T)
        frames = np.log(mel + EPS).T.astype(np.float32)  # (T, n_mels)
        pooled = np.concatenate([frames.mean(0), frames.std(0)]).astype(np.float32)
        return ExtractedItem(pooled=pooled, frames=np.ascontiguousarray(frames))

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        return [self.features(read_audio(media_path(u), SAMPLE_RATE)) for u in utterances]
