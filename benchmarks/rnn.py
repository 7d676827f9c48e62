"""Recurrent layers over padded batches, shared by the frame-level methods.

:func:`masked_lstm` runs an ``nn.LSTM`` over the real steps of a batch whose mask is a prefix
mask, and gives exactly what packing gives (``pack_padded_sequence`` -> LSTM ->
``pad_packed_sequence``): outputs that do not depend on how long the other rows of the batch
are, zeros at padded positions. It gets there without packing, which on the CPU is slow to
differentiate: PyTorch's packed LSTM backward runs step by step through autograd, several times
slower than the fused unpacked kernel, and more so as the batch grows (measured in
``benchmarks/perf/training_throughput.py``, ``--lstm packed`` against ``--lstm fused``).
:func:`packed_lstm` is the packing reference (tests compare the two; ``IMPLEMENTATION =
"packed"`` makes :func:`masked_lstm` use it).

How: a forward direction never sees the padding that follows a row's last real step, so the
plain kernel over the padded batch gives the packed outputs at every real step. The reverse
direction would start in the padding, so each row's real prefix is reversed in place (padding
stays at the end), run forward with the reverse weights, and reversed back. Layers are run one
at a time so that the next layer reads both directions; inter-layer dropout is applied as
``nn.LSTM`` applies it. The parameters are the module's own, so checkpoints and parameter counts
do not change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

IMPLEMENTATION = "fused"  # or "packed": the reference, for benchmarks and tests


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, ...) with each row's first ``lengths[b]`` steps in reverse order; the steps
    after them stay where they are. Applying it twice gives ``x`` back."""
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).unsqueeze(0).expand(B, T)
    L = lengths.to(x.device).unsqueeze(1)
    idx = torch.where(t < L, L - 1 - t, t)
    idx = idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


def _direction(lstm: nn.LSTM, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
    params = [getattr(lstm, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh")]
    if lstm.bias:
        params += [getattr(lstm, f"{name}_l{layer}{suffix}") for name in ("bias_ih", "bias_hh")]
    if lstm.proj_size:
        raise NotImplementedError("masked_lstm does not support LSTMs with proj_size")
    h0 = x.new_zeros(1, x.shape[0], lstm.hidden_size)
    out, _, _ = torch.lstm(x, (h0, h0.clone()), params, lstm.bias, 1, 0.0, lstm.training, False, True)
    return out


def masked_lstm(lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Outputs (B, T, hidden * directions) of a batch-first ``lstm`` over the real steps of ``x``
    (B, T, D); ``mask`` (B, T) is True at real steps and a prefix per row. Rows without a real
    step are run over their first step (as packing with length 1 would); padded positions are 0."""
    if not lstm.batch_first:
        raise ValueError("masked_lstm expects a batch_first LSTM")
    if IMPLEMENTATION == "packed":
        return packed_lstm(lstm, x, mask)
    mask = mask.bool()
    lengths = mask.sum(1).clamp(min=1)
    keep = (torch.arange(x.shape[1], device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1))
    keep = keep.unsqueeze(-1).to(x.dtype)
    h = x
    for layer in range(lstm.num_layers):
        if layer and lstm.dropout and lstm.training:
            h = F.dropout(h, lstm.dropout, training=True)
        fwd = _direction(lstm, h, layer, "")
        if lstm.bidirectional:
            bwd = reverse_within_length(_direction(lstm, reverse_within_length(h, lengths), layer, "_reverse"), lengths)
            h = torch.cat([fwd, bwd], dim=-1)
        else:
            h = fwd
    # Real steps never read padding (it stays after them in both directions); zero it as packing does.
    return h * keep


def packed_lstm(lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same outputs by packing (the reference :func:`masked_lstm` is tested against)."""
    lengths = mask.bool().sum(1).clamp(min=1).cpu()
    out, _ = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out
