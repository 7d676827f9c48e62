"""Speech features from any Hugging Face speech encoder (wav2vec 2.0, HuBERT, WavLM, ...).

The model is loaded by name or local folder through ``AutoFeatureExtractor`` + ``AutoModel``
(offline by default: a hub name only works when it is in the local Hugging Face cache).

- ``layer``: an index into the model's hidden states (0 = the CNN features after the
  input projection, 1..L = the transformer layers, negative counts from the end; default
  -1, the last layer), or ``"mean"``: the plain average of all L + 1 hidden states (a
  weighted sum with equal, not learned, weights).
- frames = that layer's states ``(T, D)`` (50 per second for these models), padding removed;
  pooled = their mean over time ``(D,)``.

Clips are sorted by length and batched with an attention mask when the model's feature
extractor asks for one (``return_attention_mask``). Models without it (wav2vec2-base and
HuBERT-base use group norm over time in the CNN, so padding changes every output) get one
clip per forward pass: padding must never change a clip's features.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np

from ..corpus import Utterance
from ..errors import ConfigError, MerbenchError
from ..interfaces import ExtractedItem, FeatureExtractor
from .audio import SAMPLE_RATE, media_path
from .media import read_audio
from .text import _cached, _offline

DEFAULT_MODEL = "facebook/wav2vec2-base"
# Hidden sizes of common checkpoints, so that output_dim needs neither the weights nor the hub.
KNOWN_DIMS = {
    "facebook/wav2vec2-base": 768, "facebook/wav2vec2-base-960h": 768, "facebook/wav2vec2-large": 1024,
    "facebook/wav2vec2-large-960h": 1024, "facebook/wav2vec2-large-robust": 1024, "facebook/wav2vec2-large-lv60": 1024,
    "facebook/wav2vec2-large-xlsr-53": 1024, "facebook/hubert-base-ls960": 768, "facebook/hubert-large-ll60k": 1024,
    "facebook/hubert-xlarge-ll60k": 1280, "microsoft/wavlm-base": 768, "microsoft/wavlm-base-plus": 768,
    "microsoft/wavlm-large": 1024,
}


def resolve_device(device: str) -> str:
    """``device`` checked against what torch sees ("cuda" on a machine without one is an error, not CPU)."""
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise MerbenchError(f"device {device!r} was asked for, but torch sees no CUDA GPU here",
                            fix="run with device cpu, or install a CUDA build of torch on a machine with a GPU")
    return str(device)


def load_hf_pretrained(processor: str, model_name: str, kind: str):
    """(``transformers.<processor>``, ``AutoModel``) from a name or local folder, offline, with one
    clear error naming the model when either cannot be loaded."""
    _offline()
    import transformers

    try:
        proc = getattr(transformers, processor).from_pretrained(model_name)
        mod = transformers.AutoModel.from_pretrained(model_name)
    except (OSError, ValueError) as e:
        raise MerbenchError(f"cannot load the Hugging Face {kind} model {model_name!r}: {e}",
                            fix="give a local folder holding config.json, the weights and "
                                "preprocessor_config.json (model hubs are offline: HF_HUB_OFFLINE=1)") from None
    return proc, mod


def hidden_size(model_name: str, known: dict[str, int] | None = None) -> int:
    """The model's hidden size from a table of known names, else from its config (no weights loaded)."""
    if known and model_name in known:
        return known[model_name]
    _offline()
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(model_name)
    except (OSError, ValueError) as e:
        raise MerbenchError(f"cannot read the config of the Hugging Face model {model_name!r}: {e}",
                            fix="give a local folder holding config.json (model hubs are offline: HF_HUB_OFFLINE=1)") from None
    dim = getattr(cfg, "hidden_size", None) or getattr(getattr(cfg, "vision_config", None), "hidden_size", None)
    if not dim and getattr(cfg, "hidden_sizes", None):  # convolutional vision models: the last stage's width
        dim = cfg.hidden_sizes[-1]
    if not dim:
        raise MerbenchError(f"the config of {model_name!r} names no hidden_size",
                            fix="use an encoder model whose config states its hidden size")
    return int(dim)


class HFSpeechExtractor(FeatureExtractor):
    """Hidden states of a Hugging Face speech encoder at one layer (or the mean of all layers)."""

    name = "audio-hf"
    version = "1"
    modality = "a"
    levels = ("pooled", "frames")
    batch_size = 32

    def __init__(self, model_name: str | os.PathLike = DEFAULT_MODEL, layer: int | str = -1, device: str = "cpu",
                 model_batch: int = 8, max_seconds: float | None = 30.0):
        if not (isinstance(layer, int) and not isinstance(layer, bool)) and layer != "mean":
            raise ConfigError(f"audio-hf: layer must be an integer or 'mean', not {layer!r}",
                              fix="e.g. layer: -1 (last), layer: 6, or layer: mean")
        self.model_name = str(model_name)
        self.layer = layer
        self.device = device
        self.model_batch = max(1, int(model_batch))
        # Self-attention memory grows with the square of the length; longer clips are cut.
        self.max_seconds = float(max_seconds) if max_seconds else None

    def settings(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "layer": self.layer, "sample_rate": SAMPLE_RATE,
                "max_seconds": self.max_seconds, "pooled": "mean over frames"}

    def output_dim(self, level: str = "pooled") -> int:
        return hidden_size(self.model_name, KNOWN_DIMS)

    def model(self):
        def load():
            fe, mod = load_hf_pretrained("AutoFeatureExtractor", self.model_name, "speech")
            mod = mod.to(resolve_device(self.device)).eval()
            if getattr(fe, "sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
                raise MerbenchError(f"{self.model_name!r} expects {fe.sampling_rate} Hz audio; audio-hf feeds {SAMPLE_RATE} Hz",
                                    fix="use a 16 kHz speech model (wav2vec2, HuBERT and WavLM checkpoints are)")
            return fe, mod

        return _cached(("hf-speech", self.model_name, self.device), load)

    def _pick(self, hidden_states) -> "Any":
        import torch

        if self.layer == "mean":
            return torch.stack(tuple(hidden_states)).mean(0)
        n = len(hidden_states)
        if not -n <= self.layer < n:
            raise ConfigError(f"audio-hf: {self.model_name!r} has {n} hidden states (0..{n - 1}), "
                              f"so layer {self.layer} does not exist", fix=f"pick a layer in -{n}..{n - 1} or 'mean'")
        return hidden_states[self.layer]

    def embed(self, signals: Sequence[np.ndarray]) -> list[ExtractedItem]:
        """Features of 16 kHz float signals, in order."""
        import torch

        fe, mod = self.model()
        if self.max_seconds:
            signals = [x[: int(self.max_seconds * SAMPLE_RATE)] for x in signals]
        # The CNN needs at least one receptive field (400 samples for these models); pad tiny clips.
        signals = [x if len(x) >= 400 else np.pad(x, (0, 400 - len(x))) for x in signals]
        masked = bool(getattr(fe, "return_attention_mask", False))
        size = self.model_batch if masked else 1
        order = sorted(range(len(signals)), key=lambda i: -len(signals[i]))
        out: list[ExtractedItem | None] = [None] * len(signals)
        for k in range(0, len(order), size):
            rows = order[k:k + size]
            enc = fe([signals[i] for i in rows], sampling_rate=SAMPLE_RATE, padding=True,
                     return_attention_mask=masked, return_tensors="pt")
            inputs = {"input_values": enc["input_values"].to(self.device)}
            if masked:
                inputs["attention_mask"] = enc["attention_mask"].to(self.device)
            with torch.inference_mode(), warnings.catch_warnings():
                # WavLM's relative-position bias meets a boolean padding mask: torch warns, the result is right.
                warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")
                res = mod(**inputs, output_hidden_states=True)
            states = self._pick(res.hidden_states).float()
            lengths = torch.tensor([len(signals[i]) for i in rows])
            n_frames = mod._get_feat_extract_output_lengths(lengths).tolist()
            states = states.cpu().numpy()
            for j, i in enumerate(rows):
                fr = np.ascontiguousarray(states[j, : max(1, int(n_frames[j]))], dtype=np.float32)
                out[i] = ExtractedItem(pooled=fr.mean(0).astype(np.float32), frames=fr)
        return out  # type: ignore[return-value]

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        return self.embed([read_audio(media_path(u), SAMPLE_RATE) for u in utterances])
