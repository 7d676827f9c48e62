"""MIUST: multi-level interaction between unaligned speech and text (Han, Chen, Jia, Bao).

Layout of the paper's model (names of the original code in brackets):

- four 2-layer BiLSTMs, hidden 128: text ``lstm_t`` [L1] and ``lstm_t2`` [L11], audio ``lstm_a`` [L2]
  and ``lstm_a2`` [L22];
- six attention poolings ``alpha = softmax_t(tanh(H W) u)``, W 256x4 and u 4 initialised to 0.001;
- two cross-attentions (MultiheadAttention 256, 2 heads): text states of L1 query the audio states of
  L22, audio states of L2 query the text states of L11;
- con1 = [pool L1; pool L2], con2 = [pool L11; pool L22], con3 = [pool cross_t; pool cross_a]
  -> Linear(1536, 64 | 128) -> ReLU -> Linear(C);
- auxiliary heads Linear(256, C) on pool L1 and pool L2.

Padding: every sequence is packed by its real length before the LSTMs, attention pools and the
cross-attention keys are masked with the batch mask, so a prediction never depends on padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from merbench.rnn import masked_lstm


def safe_mask(mask: torch.Tensor) -> torch.Tensor:
    """The batch mask with at least one real step per row (a zero-length row would make softmax NaN)."""
    mask = mask.bool().clone()
    mask[:, 0] |= ~mask.any(1)
    return mask


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A batch-first LSTM over the real steps only (the batch mask is a prefix mask).

    As packing would, so that the backward direction does not start in the padding and outputs do
    not depend on how long the other sequences of the batch are; padded positions come back as
    zeros. :func:`merbench.rnn.masked_lstm` does it without packing (same outputs, much faster
    backward on the CPU)."""
    return masked_lstm(lstm, x, mask)


class AttentionPool(nn.Module):
    """``alpha_t = softmax_t(tanh(h_t W) u)`` over the real steps, output ``sum_t alpha_t h_t``.

    W (dim x size) and u (size) start at a constant (0.001 in the paper's code). With a constant
    start the ``size`` columns of W receive identical gradients and stay equal; kept as published."""

    def __init__(self, dim: int = 256, size: int = 4, init: float = 0.001):
        super().__init__()
        self.w = nn.Parameter(torch.full((dim, size), float(init)))
        self.u = nn.Parameter(torch.full((size,), float(init)))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.tanh(h @ self.w) @ self.u  # (B, T)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        alpha = torch.softmax(scores, dim=1)
        return (alpha.unsqueeze(-1) * h).sum(1)


def cmd(x: torch.Tensor, y: torch.Tensor, k: int = 5, first_moment: bool = True, squared: bool = True) -> torch.Tensor:
    """Central moment discrepancy between two batches of vectors (rows are samples).

    Order 1 compares the means, orders 2..k the element-wise central moments. The published code
    loops k = 1..K over *central* moments, whose order 1 is always zero, so it never compares the
    means; ``first_moment=False`` reproduces that. ``squared`` sums squared L2 norms (the
    IEMOCAP code) instead of plain norms (the MELD code). Unlike Zellinger et al.'s CMD there is
    no division by the value range, as in both published scripts."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = x - mx, y - my
    diffs = [mx - my] if first_moment else []
    diffs += [(cx ** order).mean(0) - (cy ** order).mean(0) for order in range(2, k + 1)]
    if not diffs:
        return x.new_zeros(())
    sq = torch.stack([(d ** 2).sum() for d in diffs])
    if squared:
        return sq.sum()
    # sqrt with a floor: the gradient of a norm at exactly zero would be NaN.
    return torch.sqrt(sq + 1e-12).sum()


class MIUST(nn.Module):
    """The full model for ``input_dims`` with both "t" and "a"; for a single modality the
    ablation is that modality's own branch: its first BiLSTM, its attention pool and its
    auxiliary head (the other three LSTMs, the cross-attention and CMD need both modalities)."""

    def __init__(self, input_dims: dict[str, int], num_classes: int, hidden: int = 128, layers: int = 2,
                 attention_size: int = 4, attention_init: float = 0.001, heads: int = 2,
                 fusion_hidden: int = 64, cross_attention: bool = True):
        super().__init__()
        unknown = set(input_dims) - {"t", "a"}
        if unknown or not input_dims:
            raise ValueError(f"MIUST takes text 't' and/or audio 'a', got {sorted(input_dims)}")
        self.modalities = tuple(m for m in ("t", "a") if m in input_dims)
        self.multimodal = len(self.modalities) == 2
        self.cross_attention = bool(cross_attention) and self.multimodal
        dim = 2 * hidden

        def lstm(m):
            return nn.LSTM(input_dims[m], hidden, layers, batch_first=True, bidirectional=True)

        def pool():
            return AttentionPool(dim, attention_size, attention_init)

        if "t" in input_dims:
            self.lstm_t, self.pool_t, self.head_t = lstm("t"), pool(), nn.Linear(dim, num_classes)
        if "a" in input_dims:
            self.lstm_a, self.pool_a, self.head_a = lstm("a"), pool(), nn.Linear(dim, num_classes)
        if self.multimodal:
            self.lstm_t2, self.pool_t2 = lstm("t"), pool()
            self.lstm_a2, self.pool_a2 = lstm("a"), pool()
            if self.cross_attention:
                self.cross_t = nn.MultiheadAttention(dim, heads, batch_first=True)  # query text, key/value audio
                self.cross_a = nn.MultiheadAttention(dim, heads, batch_first=True)  # query audio, key/value text
                self.pool_cross_t, self.pool_cross_a = pool(), pool()
            width = dim * (6 if self.cross_attention else 4)
            self.fusion = nn.Sequential(nn.Linear(width, fusion_hidden), nn.ReLU(), nn.Linear(fusion_hidden, num_classes))

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        x, masks = batch["x"], {m: safe_mask(batch["mask"][m]) for m in self.modalities}
        out: dict[str, torch.Tensor] = {}
        if not self.multimodal:
            m = self.modalities[0]
            h = run_lstm(getattr(self, f"lstm_{m}"), x[m], masks[m])
            z = getattr(self, f"pool_{m}")(h, masks[m])
            out["logits"] = getattr(self, f"head_{m}")(z)
            return out
        mt, ma = masks["t"], masks["a"]
        h_t, h_a = run_lstm(self.lstm_t, x["t"], mt), run_lstm(self.lstm_a, x["a"], ma)
        h_t2, h_a2 = run_lstm(self.lstm_t2, x["t"], mt), run_lstm(self.lstm_a2, x["a"], ma)
        z_t, z_a = self.pool_t(h_t, mt), self.pool_a(h_a, ma)
        z_t2, z_a2 = self.pool_t2(h_t2, mt), self.pool_a2(h_a2, ma)
        parts = [z_t, z_a, z_t2, z_a2]
        if self.cross_attention:
            # key_padding_mask is True where a key is padding.
            c_t, _ = self.cross_t(h_t, h_a2, h_a2, key_padding_mask=~ma, need_weights=False)
            c_a, _ = self.cross_a(h_a, h_t2, h_t2, key_padding_mask=~mt, need_weights=False)
            parts += [self.pool_cross_t(c_t, mt), self.pool_cross_a(c_a, ma)]
        out["logits"] = self.fusion(torch.cat(parts, dim=-1))
        out["logits_t"], out["logits_a"] = self.head_t(z_t), self.head_a(z_a)
        out.update(z_t=z_t, z_a=z_a, z_t2=z_t2, z_a2=z_a2)
        return out


def miust_loss(out: dict, labels: torch.Tensor, weights: dict, cmd_k: int = 5, first_moment: bool = True,
               squared: bool = True) -> torch.Tensor:
    """0.1 CE(main) + 0.3 CMD(pool L1, pool L22) + 0.3 CMD(pool L2, pool L11) + 0.15 CE(text) + 0.15 CE(audio)
    with the weights from the config; a single-modality model has only its CE."""
    loss = F.cross_entropy(out["logits"], labels)
    if "logits_t" not in out:
        return loss
    loss = weights["main"] * loss
    loss = loss + weights["text"] * F.cross_entropy(out["logits_t"], labels) \
        + weights["audio"] * F.cross_entropy(out["logits_a"], labels)
    if weights["cmd"]:
        loss = loss + weights["cmd"] * (cmd(out["z_t"], out["z_a2"], cmd_k, first_moment, squared)
                                        + cmd(out["z_a"], out["z_t2"], cmd_k, first_moment, squared))
    return loss
