"""Multi-focus BLSTM (ViraAkshat/CS772-Project): unimodal BiLSTMs with last / mean / context-attention
pooling, fused by a gated multimodal unit (GMU, Arevalo et al. 2017) or, for the B-MM baseline, by
concatenating the pooled vectors.

- Encoder: 2-layer BiLSTM, hidden 128 (-> 256), then pooling:
  ``last`` = the BiLSTM output at the last real step, ``mean`` = the mean over real steps,
  ``attention`` = ``e_t = tanh(W h_t + b) . v`` (W 256 -> 64), ``a = softmax_t(e)``, ``z = sum_t a_t h_t``.
- Unimodal model: encoder -> Linear(256, C).
- GMU fusion: ``h_a = tanh(W_a z_a)``, ``h_l = tanh(W_l z_l)``, ``z = sigmoid(W_z [z_a; z_l])``,
  ``h = z h_a + (1 - z) h_l`` (128) -> Linear(128, C).
- Concat fusion (B-MM): ``[z_a; z_l]`` -> Linear(512, C).

Every sequence is packed by its real length and every pooling is masked, so padding never changes
a prediction (the original averaged and attended over the padding of the batch).
"""

from __future__ import annotations

import torch
from torch import nn

from merbench.rnn import masked_lstm

POOLINGS = ("last", "mean", "attention")
FUSIONS = ("gmu", "concat")


def safe_mask(mask: torch.Tensor) -> torch.Tensor:
    """The batch mask with at least one real step per row (a zero-length row would make softmax NaN)."""
    mask = mask.bool().clone()
    mask[:, 0] |= ~mask.any(1)
    return mask


class ContextAttention(nn.Module):
    """``e_t = tanh(W h_t + b) . v``, softmax over the real steps, ``z = sum_t a_t h_t``."""

    def __init__(self, dim: int = 256, size: int = 64):
        super().__init__()
        self.proj = nn.Linear(dim, size)
        self.v = nn.Parameter(torch.rand(size))  # U[0, 1) as in the original

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = torch.tanh(self.proj(h)) @ self.v
        e = e.masked_fill(~mask, torch.finfo(e.dtype).min)
        return (torch.softmax(e, dim=1).unsqueeze(-1) * h).sum(1)


class Encoder(nn.Module):
    """BiLSTM over the real steps of one modality, then pooling to a 2*hidden vector."""

    def __init__(self, input_dim: int, hidden: int = 128, layers: int = 2, pooling: str = "attention",
                 attention_dim: int = 64):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.settings = {"hidden": hidden, "layers": layers, "pooling": pooling, "attention_dim": attention_dim}
        self.rnn = nn.LSTM(input_dim, hidden, layers, batch_first=True, bidirectional=True)
        self.attention = ContextAttention(2 * hidden, attention_dim) if pooling == "attention" else None
        self.out_dim = 2 * hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = safe_mask(mask)
        lengths = mask.sum(1)
        h = masked_lstm(self.rnn, x, mask)  # = packing, without its slow backward (merbench.rnn)
        if self.pooling == "last":
            return h[torch.arange(h.shape[0], device=h.device), lengths - 1]
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1)
        return self.attention(h, mask)


class UnimodalBLSTM(nn.Module):
    """One modality: encoder -> Linear(2*hidden, C)."""

    def __init__(self, modality: str, input_dim: int, num_classes: int, **encoder_kw):
        super().__init__()
        self.modality = modality
        self.encoder = Encoder(input_dim, **encoder_kw)
        self.fc = nn.Linear(self.encoder.out_dim, num_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        m = self.modality
        return self.fc(self.encoder(batch["x"][m], batch["mask"][m]))


class GMU(nn.Module):
    """Bimodal gated multimodal unit: ``h = z tanh(W_a z_a) + (1 - z) tanh(W_l z_l)``, ``z = sigmoid(W_z [z_a; z_l])``."""

    def __init__(self, dim_a: int, dim_l: int, out_dim: int = 128):
        super().__init__()
        self.fc_a = nn.Linear(dim_a, out_dim)
        self.fc_l = nn.Linear(dim_l, out_dim)
        self.fc_gate = nn.Linear(dim_a + dim_l, out_dim)

    def forward(self, z_a: torch.Tensor, z_l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self.fc_gate(torch.cat([z_a, z_l], dim=-1)))
        return gate * torch.tanh(self.fc_a(z_a)) + (1 - gate) * torch.tanh(self.fc_l(z_l)), gate


class FusedBLSTM(nn.Module):
    """Audio and text encoders fused by a GMU (``fusion="gmu"``) or by concatenation (``"concat"``, B-MM)."""

    def __init__(self, input_dims: dict[str, int], num_classes: int, fusion: str = "gmu", gmu_dim: int = 128,
                 **encoder_kw):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.fusion = fusion
        self.encoder_a = Encoder(input_dims["a"], **encoder_kw)
        self.encoder_t = Encoder(input_dims["t"], **encoder_kw)
        da, dt = self.encoder_a.out_dim, self.encoder_t.out_dim
        if fusion == "gmu":
            self.gmu = GMU(da, dt, gmu_dim)
            self.fc = nn.Linear(gmu_dim, num_classes)
        else:
            self.gmu = None
            self.fc = nn.Linear(da + dt, num_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        x, mask = batch["x"], batch["mask"]
        z_a, z_t = self.encoder_a(x["a"], mask["a"]), self.encoder_t(x["t"], mask["t"])
        if self.gmu is None:
            return self.fc(torch.cat([z_a, z_t], dim=-1))
        h, _ = self.gmu(z_a, z_t)
        return self.fc(h)

    @classmethod
    def from_unimodal(cls, audio: UnimodalBLSTM, text: UnimodalBLSTM, num_classes: int, fusion: str = "gmu",
                      gmu_dim: int = 128) -> "FusedBLSTM":
        """The fused model starting from trained unimodal models: both encoders (BiLSTM and pooling,
        attention included) are copied. GMU and its classifier start fresh, as in the original; the
        concat classifier starts as ``[W_a | W_t]`` with bias ``b_a + b_t``, so that its first logits
        are the sum of the two unimodal logits (the original's B-MM initialisation)."""
        dims = {"a": audio.encoder.rnn.input_size, "t": text.encoder.rnn.input_size}
        if audio.encoder.settings != text.encoder.settings:
            raise ValueError("the audio and text encoders differ in size or pooling; they cannot be fused")
        model = cls(dims, num_classes, fusion=fusion, gmu_dim=gmu_dim, **audio.encoder.settings)
        model.encoder_a.load_state_dict(audio.encoder.state_dict())
        model.encoder_t.load_state_dict(text.encoder.state_dict())
        if fusion == "concat":
            with torch.no_grad():
                model.fc.weight.copy_(torch.cat([audio.fc.weight, text.fc.weight], dim=1))
                model.fc.bias.copy_(audio.fc.bias + text.fc.bias)
        return model.to(next(audio.parameters()).device)
