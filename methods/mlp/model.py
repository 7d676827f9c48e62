"""Early-fusion MLP over pooled utterance features of any modality subset."""

from __future__ import annotations

import torch
from torch import nn


class EarlyFusionMLP(nn.Module):
    def __init__(self, input_dims: dict[str, int], num_classes: int, hidden: list[int] | int = 256,
                 dropout: float = 0.3, modality_dropout: float = 0.0):
        super().__init__()
        self.modalities = sorted(input_dims)
        self.modality_dropout = modality_dropout
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        width = sum(input_dims.values())
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        xs = [batch["x"][m] for m in self.modalities]
        if self.training and self.modality_dropout and len(xs) > 1:
            # Drop whole modalities per sample so fusion does not lean on one of them.
            keep = (torch.rand(xs[0].shape[0], len(xs), device=xs[0].device) > self.modality_dropout).float()
            keep[keep.sum(1) == 0, 0] = 1.0
            xs = [x * keep[:, i:i + 1] for i, x in enumerate(xs)]
        return self.head(self.body(torch.cat(xs, dim=-1)))
