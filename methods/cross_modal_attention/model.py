"""Cross-modal attention network (BLANK-2340/Emotional-analysis-neural-net), written from its
README and training scripts.

Text (fine-tuned encoder) -> Linear 512 (ReLU, dropout 0.3); audio -> Linear 256, ReLU, BatchNorm,
then Linear 256, ReLU, dropout; visual -> Linear 256, ReLU, BatchNorm, dropout. Text is the query
of two MultiheadAttention(512, 8 heads) blocks, over audio and over visual (256-d keys / values
zero-padded to 512, as in the original, or projected by a linear layer). Fusion
[text + att_a + att_v (512); audio (256); visual (256)] -> 512 -> 256 -> C.

``audio_groups`` (variant paper): the audio vector is the original's columns side by side
(V1 512 | V3 25, V4 25); each group gets its own Linear -> ReLU -> BatchNorm (512 -> 256,
50 -> 128), then Linear(384, 256) -> ReLU -> dropout, exactly the original's audio branch.

``attention="utterance"`` (the original): one pooled vector per modality, so each attention has a
single key and its softmax weight is identically 1; the block reduces to a linear map of the
audio (visual) vector. ``attention="sequence"``: every text token attends over the audio frames
and the video frames (key padding masks), and the attended tokens are mean-pooled.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from merbench.text_encoder import TextEncoder

IGNORE = -100


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
               alpha: torch.Tensor | None = None, ignore_index: int = IGNORE) -> torch.Tensor:
    """Mean of ``alpha[y] * (1 - p_y)^gamma * CE``; with ``gamma = 0`` and no ``alpha`` it is
    plain cross-entropy. ``p_y = exp(-CE)`` as in the original."""
    logits, targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    keep = targets != ignore_index
    logits, targets = logits[keep], targets[keep]
    ce = F.cross_entropy(logits.float(), targets, reduction="none")
    loss = ce if gamma == 0 else (1.0 - torch.exp(-ce)).pow(gamma) * ce
    if alpha is not None:
        loss = alpha.to(loss.device, loss.dtype)[targets] * loss
    return loss.mean() if len(loss) else logits.sum() * 0.0


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, T, D) where ``mask`` (B, T) is True."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class FrameBranch(nn.Module):
    """Linear -> ReLU -> BatchNorm (-> more layers) for pooled (B, D) or frame (B, T, D) inputs.
    For frames, BatchNorm sees only the real frames, so padding never enters its statistics."""

    def __init__(self, in_dim: int, out_dim: int, tail: nn.Module):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.tail = tail

    def _norm(self, h: torch.Tensor) -> torch.Tensor:
        if self.training and h.shape[0] < 2:
            # Batch statistics of one value are undefined (a last batch of one utterance):
            # normalise it with the running statistics instead of failing.
            bn = self.bn
            return F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return self.bn(h)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.fc(x))
        if h.dim() == 2:
            return self.tail(self._norm(h))
        out = h.new_zeros(h.shape)
        out[mask] = self._norm(h[mask])
        return self.tail(out)


class GroupedBranch(nn.Module):
    """The original's audio branch over one vector that concatenates feature groups (V1 | V3;V4):
    each group Linear -> ReLU -> BatchNorm to its own width, the results concatenated, then
    Linear -> ReLU -> Dropout. ``groups``: (input width, output width) per group, in column order."""

    def __init__(self, groups: Sequence[Sequence[int]], out_dim: int, dropout: float):
        super().__init__()
        self.widths = [int(g[0]) for g in groups]
        self.parts = nn.ModuleList(FrameBranch(int(w), int(o), nn.Identity()) for w, o in groups)
        self.combine = nn.Sequential(nn.Linear(sum(int(o) for _, o in groups), out_dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError("grouped audio features are pooled vectors; attention 'sequence' needs frames")
        chunks = torch.split(x, self.widths, dim=-1)
        return self.combine(torch.cat([part(c) for part, c in zip(self.parts, chunks)], dim=-1))


class CrossModalAttentionNet(nn.Module):
    def __init__(self, encoder: TextEncoder | None, input_dims: dict[str, int], num_classes: int,
                 text_dim: int = 512, audio_dim: int = 256, visual_dim: int = 256, heads: int = 8,
                 dropout: float = 0.3, attention: str = "utterance", kv_input: str = "pad",
                 audio_groups: Sequence[Sequence[int]] | None = None):
        super().__init__()
        if attention not in ("utterance", "sequence"):
            raise ValueError(f"attention must be 'utterance' or 'sequence', not {attention!r}")
        if audio_groups and "a" in input_dims:
            if attention != "utterance":
                raise ValueError("model.audio_groups splits pooled audio vectors; it needs attention 'utterance'")
            if sum(int(g[0]) for g in audio_groups) != input_dims["a"]:
                raise ValueError(f"model.audio_groups widths do not sum to the audio width {input_dims['a']}")
        if kv_input not in ("pad", "linear"):
            raise ValueError(f"kv_input must be 'pad' or 'linear', not {kv_input!r}")
        unknown = set(input_dims) - ({"a", "v"} if encoder is not None else {"t", "a", "v"})
        if unknown:
            raise ValueError(f"cross-modal attention takes audio 'a' / visual 'v' features, not {sorted(unknown)}"
                             " (text features only without an encoder)")
        if encoder is None and "t" not in input_dims:
            raise ValueError("without a text encoder the model needs text features 't'")
        self.attention, self.kv_input, self.text_dim = attention, kv_input, text_dim
        self.modalities = tuple(m for m in ("a", "v") if m in input_dims)
        self.text = encoder
        text_in = encoder.hidden_size if encoder is not None else input_dims["t"]
        self.text_fc = nn.Sequential(nn.Linear(text_in, text_dim), nn.ReLU(), nn.Dropout(dropout))
        self.branch = nn.ModuleDict()
        self.attend = nn.ModuleDict()
        self.kv = nn.ModuleDict()
        width = text_dim
        for m in self.modalities:
            out = audio_dim if m == "a" else visual_dim
            # Audio: the original's V1 sub-branch (Linear, ReLU, BN) then its combining layer
            # (Linear, ReLU, dropout); visual: Linear, ReLU, BN, dropout.
            if m == "a" and audio_groups:
                self.branch[m] = GroupedBranch(audio_groups, out, dropout)
            else:
                tail = nn.Sequential(nn.Linear(out, out), nn.ReLU(), nn.Dropout(dropout)) if m == "a" else nn.Dropout(dropout)
                self.branch[m] = FrameBranch(input_dims[m], out, tail)
            self.attend[m] = nn.MultiheadAttention(text_dim, heads, batch_first=True)
            if kv_input == "linear":
                self.kv[m] = nn.Linear(out, text_dim)
            elif out > text_dim:
                raise ValueError(f"kv_input pad needs the {m} width ({out}) <= text_dim ({text_dim})")
            width += out
        self.fusion = nn.Sequential(nn.Linear(width, 512), nn.ReLU(), nn.Dropout(dropout))
        self.classifier = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Dropout(dropout), nn.Linear(256, num_classes))

    def _keys(self, m: str, h: torch.Tensor) -> torch.Tensor:
        if self.kv_input == "linear":
            return self.kv[m](h)
        return F.pad(h, (0, self.text_dim - h.shape[-1]))  # the original pads 256 -> 512 with zeros

    def _text(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Pooled text (B, H), token states (B, L, H) and their mask (B, L) (None: pooled features)."""
        if self.text is not None:
            pooled, tokens = self.text(batch["text"])
            return pooled, tokens, batch["text"]["attention_mask"].bool()
        x = batch["x"]["t"]
        if x.dim() == 2:
            return x, None, None
        mask = batch["mask"]["t"]
        return masked_mean(x, mask), x, mask

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        pooled, tokens, qmask = self._text(batch)
        text = self.text_fc(pooled)  # (B, 512)
        attended, parts, weights = text, [], {}
        seq = self.attention == "sequence"
        if seq:
            if tokens is None:
                raise ValueError("attention 'sequence' needs token states: text features at level 'frames'")
            queries = self.text_fc(tokens)  # (B, L, 512): every token is a query
        for m in self.modalities:
            x = batch["x"][m]
            if seq:
                mask = batch["mask"][m].clone()
                mask[~mask.any(1), 0] = True  # no frame at all: attend to one zero frame, not to nothing
                h = self.branch[m](x, mask)  # (B, T, 256)
                att, w = self.attend[m](queries, self._keys(m, h), self._keys(m, h), key_padding_mask=~mask)
                attended = attended + masked_mean(att, qmask)
                parts.append(masked_mean(h, mask))
            else:
                h = self.branch[m](x)  # (B, 256)
                kv = self._keys(m, h).unsqueeze(1)  # one key per utterance
                att, w = self.attend[m](text.unsqueeze(1), kv, kv)
                attended = attended + att.squeeze(1)
                parts.append(h)
            weights[m] = w
        logits = self.classifier(self.fusion(torch.cat([attended, *parts], dim=-1)))
        return {"logits": logits, **{f"attention_{m}": w for m, w in weights.items()}}
