"""Dialogue-context prompt features for emotion recognition in conversation.

Each utterance is encoded inside its dialogue, in the prompt form of prompt-based ERC
encoders (used by the LipSync graph ERC paper)::

    <speaker 0>: <text 0> <sep> ... <speaker t>: <text t> <sep> Now <speaker t> feels <mask>

(the earlier turns of the same dialogue, the utterance itself, then the prompt; ``<sep>`` and
``<mask>`` are the tokenizer's own separator and mask tokens, ``</s>`` and ``<mask>`` for
RoBERTa). Only texts and speakers are used, never labels, and only turns EARLIER than the
utterance in the same dialogue. The tokenizer cuts long prompts from the left, so the most
recent context and the prompt itself always stay.

Outputs: pooled = the hidden state at the read-out position, frames = all token states
(padding removed). Read-out ``"mask"`` takes the ``<mask>`` token's state, which is the
paper's choice with a masked-LM encoder such as ``roberta-large``. The offline default is
all-MiniLM-L6-v2, which is not a masked LM (its ``[MASK]`` state was never trained to be
predictive) but a sentence encoder trained with mean pooling, so its default read-out is
``"utterance"``: the mean of the states of the utterance's own tokens, read inside the prompt
(so they have attended to the earlier turns and to the prompt). ``"last"`` takes the state of
the last real token, the ``[SEP]`` that closes the prompt; with MiniLM it gave a much lower
validation score (see the LipSync graph ERC README).

Context comes from the utterances this extractor has been given so far: the feature store
hands a corpus over in dialogue order (dialogue, then turn) in consecutive batches, so the
earlier turns of a dialogue have always been seen before its later ones. Call
:meth:`TextContextExtractor.prime` with the whole corpus first when that is not so (e.g. a
resumed extraction whose first parts came from the cache).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..corpus import Utterance
from ..errors import ConfigError, MerbenchError
from ..interfaces import ExtractedItem, FeatureExtractor
from .speech_hf import hidden_size, resolve_device
from .text import MINILM_NAME, _cached, _offline, minilm_path

READOUTS = ("mask", "last", "utterance")


def build_prompt(history: Sequence[tuple[str, str]], speaker: str, text: str, sep: str, mask: str) -> str:
    """The prompt for one utterance: ``history`` = (speaker, text) of the earlier turns, oldest first."""
    return prompt_and_span(history, speaker, text, sep, mask)[0]


def prompt_and_span(history: Sequence[tuple[str, str]], speaker: str, text: str, sep: str, mask: str
                    ) -> tuple[str, tuple[int, int]]:
    """:func:`build_prompt` and the character span of the utterance's own text in it."""
    turns = [f"{s}: {t}".strip() for s, t in history]
    current = f"{speaker}: {text}".strip()
    head = f" {sep} ".join(turns) + (f" {sep} " if turns else "")
    start = len(head) + current.rfind(text) if text else len(head) + len(current)
    return head + current + f" {sep} Now {speaker} feels {mask}", (start, start + len(text))


class TextContextExtractor(FeatureExtractor):
    """A text encoder over ``previous turns + utterance + "Now <speaker> feels <mask>"``."""

    name = "text-context"
    version = "2"  # 2: MiniLM's default read-out is "utterance" (was "last")
    modality = "t"
    levels = ("pooled", "frames")
    batch_size = 256

    def __init__(self, model_name: str | os.PathLike | None = None, readout: str | None = None,
                 max_turns: int = 12, max_length: int = 256, device: str = "cpu", model_batch: int = 32):
        self.model_name = str(model_name) if model_name else None  # None: the offline MiniLM
        self.readout = readout or ("utterance" if self.model_name is None else "mask")
        if self.readout not in READOUTS:
            raise ConfigError(f"text-context: readout must be one of {READOUTS}, not {readout!r}",
                              fix="readout: mask (masked-LM encoders such as roberta-large), utterance (mean of the "
                                  "utterance's tokens in context) or last")
        self.max_turns = int(max_turns)  # earlier turns kept at most (the tokenizer may cut more)
        self.max_length = int(max_length)
        self.device = device
        self.model_batch = max(1, int(model_batch))
        self._history: dict[str, dict[int, tuple[str, str]]] = {}

    def settings(self) -> dict[str, Any]:
        return {"model_name": self.model_name or MINILM_NAME, "readout": self.readout, "max_turns": self.max_turns,
                "max_length": self.max_length, "truncation": "left",
                "prompt": "{turns, sep-joined} {sep} Now {speaker} feels {mask}", "context": "earlier turns, text+speaker"}

    def _path(self) -> str:
        return self.model_name or str(minilm_path())

    def output_dim(self, level: str = "pooled") -> int:
        return 384 if self.model_name is None else hidden_size(self.model_name)

    def model(self):
        def load():
            _offline()
            from transformers import AutoModel, AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(self._path())
                mod = AutoModel.from_pretrained(self._path()).to(resolve_device(self.device)).eval()
            except (OSError, ValueError) as e:
                raise MerbenchError(f"cannot load the Hugging Face model {self._path()!r}: {e}",
                                    fix="give a local folder holding config.json, the weights and the tokenizer "
                                        "(model hubs are offline: HF_HUB_OFFLINE=1)") from None
            tok.truncation_side = "left"  # keep the utterance and the prompt, drop the oldest context
            return tok, mod

        return _cached(("hf-context", self._path(), self.device), load)

    # -- context ------------------------------------------------------------------------------

    def prime(self, utterances: Sequence[Utterance]) -> None:
        """Remember the speakers and texts of these utterances as context (labels are not read)."""
        for u in utterances:
            self._history.setdefault(u.dialogue_id, {})[int(u.turn)] = (str(u.speaker or ""), (u.text or "").strip())

    def history(self, u: Utterance) -> list[tuple[str, str]]:
        """(speaker, text) of the turns before ``u`` in its dialogue that were seen, oldest first."""
        turns = self._history.get(u.dialogue_id, {})
        earlier = sorted(t for t in turns if t < int(u.turn))
        return [turns[t] for t in earlier[-self.max_turns:]] if self.max_turns > 0 else []

    def prompts(self, utterances: Sequence[Utterance]) -> list[str]:
        return [p for p, _ in self.prompts_and_spans(utterances)]

    def prompts_and_spans(self, utterances: Sequence[Utterance]) -> list[tuple[str, tuple[int, int]]]:
        tok, _ = self.model()
        sep = tok.sep_token or tok.eos_token or "</s>"
        mask = tok.mask_token or "<mask>"
        self.prime(utterances)
        return [prompt_and_span(self.history(u), str(u.speaker or ""), (u.text or "").strip(), sep, mask)
                for u in utterances]

    # -- encoding -----------------------------------------------------------------------------

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        import torch

        tok, mod = self.model()
        prompts, spans = zip(*self.prompts_and_spans(utterances)) if utterances else ((), ())
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[ExtractedItem | None] = [None] * len(prompts)
        offsets_needed = self.readout == "utterance"
        for k in range(0, len(order), self.model_batch):
            rows = order[k:k + self.model_batch]
            enc = tok([prompts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length,
                      return_tensors="pt", return_offsets_mapping=offsets_needed)
            offsets = enc.pop("offset_mapping").numpy() if offsets_needed else None
            enc = enc.to(self.device)
            with torch.inference_mode():
                hidden = mod(**enc).last_hidden_state.float().cpu().numpy()
            mask = enc["attention_mask"].bool().cpu().numpy()
            ids = enc["input_ids"].cpu().numpy()
            for j, i in enumerate(rows):
                last = hidden[j, int(np.flatnonzero(mask[j])[-1])]
                if offsets is not None:  # readout "utterance"
                    a, b = spans[i]
                    o = offsets[j]
                    # tokens overlapping the utterance's characters (special tokens have empty spans)
                    own = np.flatnonzero(mask[j] & (o[:, 1] > o[:, 0]) & (o[:, 0] < b) & (o[:, 1] > a))
                    vec = hidden[j, own].mean(0) if len(own) else last  # empty text: last token
                elif self.readout == "mask":
                    where = np.flatnonzero(ids[j] == tok.mask_token_id) if tok.mask_token_id is not None else []
                    if len(where) == 0:
                        raise MerbenchError(f"text-context: the prompt of utterance {utterances[i].uid} has no mask token "
                                            f"after tokenization by {self._path()!r}",
                                            fix="use readout: last with an encoder that has no mask token")
                    vec = hidden[j, int(where[-1])]
                else:
                    vec = last
                out[i] = ExtractedItem(pooled=vec.astype(np.float32),
                                       frames=np.ascontiguousarray(hidden[j][mask[j]], dtype=np.float32))
        return out  # type: ignore[return-value]
