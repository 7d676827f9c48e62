"""emotion2vec speech-emotion representations, through FunASR (optional extra ``.[emotion2vec]``).

frames = the model's frame features ``(T, D)`` (50 per second), pooled = their mean over time
(which is what emotion2vec's own ``granularity="utterance"`` output is). D is 768 for
``emotion2vec_base`` / ``emotion2vec_plus_base`` / ``emotion2vec_plus_seed`` and 1024 for
``emotion2vec_plus_large``.

The weights come from ModelScope (``iic/...`` names, ``hub="ms"``) or the Hugging Face hub
(``emotion2vec/...`` names, ``hub="hf"``) the first time they are used; FunASR caches them.
``model`` may also be a local FunASR model folder (``config.yaml`` naming ``model: Emotion2vec``
plus ``model.pt``): a downloaded copy for an offline machine, or the tiny random-weight model the
tests build; its width is read from ``config.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..corpus import Utterance
from ..errors import ConfigError, MerbenchError
from ..interfaces import ExtractedItem, FeatureExtractor
from .audio import SAMPLE_RATE, media_path
from .media import read_audio
from .speech_hf import resolve_device
from .text import _cached

DIMS = {"emotion2vec_base": 768, "emotion2vec_plus_base": 768, "emotion2vec_plus_seed": 768,
        "emotion2vec_plus_large": 1024}
EXTRA_HINT = "pip install -e '.[emotion2vec]' in a merbench checkout (or pip install 'funasr>=1.1')"


def _short(model: str) -> str:
    return model.rstrip("/").rsplit("/", 1)[-1]


class Emotion2VecExtractor(FeatureExtractor):
    """emotion2vec (base or plus) frame features and their mean."""

    name = "audio-emotion2vec"
    version = "1"
    modality = "a"
    levels = ("pooled", "frames")
    batch_size = 16

    def __init__(self, model: str = "iic/emotion2vec_base", hub: str | None = None, device: str = "cpu"):
        model = str(model)
        self.local_dim = local_model_dim(model) if Path(model).expanduser().is_dir() else None
        if self.local_dim is None:
            if "/" not in model:
                model = f"iic/{model}"
            if _short(model) not in DIMS:
                raise ConfigError(f"audio-emotion2vec: unknown model {model!r}",
                                  fix=f"use one of: {', '.join('iic/' + k for k in DIMS)}, or a local FunASR "
                                      f"model folder (config.yaml + model.pt)")
        else:
            model = str(Path(model).expanduser().resolve())
        self.model_name = model
        self.hub = hub or ("hf" if model.startswith("emotion2vec/") else "ms")
        self.device = device

    def settings(self) -> dict[str, Any]:
        return {"model": self.model_name, "sample_rate": SAMPLE_RATE, "granularity": "frame",
                "pooled": "mean over frames"}

    def output_dim(self, level: str = "pooled") -> int:
        return self.local_dim if self.local_dim is not None else DIMS[_short(self.model_name)]

    def model(self):
        try:
            import funasr  # noqa: F401
        except ImportError:
            raise MerbenchError(f"the audio extractor {self.name} needs FunASR, which is not installed",
                                fix=EXTRA_HINT) from None

        def load():
            import torch
            from funasr import AutoModel

            try:
                # ncpu: FunASR otherwise sets torch's thread count of the whole process to 4.
                return AutoModel(model=self.model_name, hub=self.hub, device=resolve_device(self.device),
                                 disable_update=True, ncpu=torch.get_num_threads())
            except Exception as e:  # FunASR raises plain exceptions for download and config failures
                raise MerbenchError(f"FunASR cannot load {self.model_name!r} from hub {self.hub!r} "
                                    f"({type(e).__name__}: {e})",
                                    fix="the first use downloads the weights: run once with network access "
                                        "(ModelScope for iic/ names, the Hugging Face hub for emotion2vec/ names)") from None

        return _cached(("funasr", self.model_name, self.device), load)

    def embed(self, signal: np.ndarray) -> ExtractedItem:
        model = self.model()
        res = model.generate(np.asarray(signal, dtype=np.float32), granularity="frame", extract_embedding=True,
                             disable_pbar=True)
        feats = np.asarray(res[0]["feats"], dtype=np.float32)
        frames = feats.reshape(-1, feats.shape[-1])
        return ExtractedItem(pooled=frames.mean(0).astype(np.float32), frames=np.ascontiguousarray(frames))

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        self.model()  # the missing-extra error comes before any file is read
        return [self.embed(read_audio(media_path(u), SAMPLE_RATE)) for u in utterances]


def local_model_dim(folder: str | Path) -> int:
    """Feature width of a local FunASR emotion2vec folder, from its ``config.yaml``."""
    import yaml

    cfg_path = Path(folder).expanduser() / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"audio-emotion2vec: {folder} is a folder without config.yaml, so it is not a FunASR model",
                          fix="point model at a FunASR model folder (config.yaml + model.pt), or use a model name")
    try:
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        if cfg.get("model") != "Emotion2vec":
            raise ValueError(f"model is {cfg.get('model')!r}, not 'Emotion2vec'")
        return int(cfg["model_conf"]["embed_dim"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"audio-emotion2vec: {cfg_path} is not an emotion2vec config ({e})",
                          fix="it needs 'model: Emotion2vec' and model_conf.embed_dim") from None
