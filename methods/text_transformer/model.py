"""The text baseline's classifier: a fine-tuned encoder's pooled output -> dropout -> linear head.
The encoders themselves (names, loading, pooling) are the engine's: :mod:`merbench.text_encoder`."""

from __future__ import annotations

import torch
from torch import nn

from merbench.text_encoder import TextEncoder


class TextClassifier(nn.Module):
    """Encoder pooled output -> dropout -> linear head (a BertForSequenceClassification-style head)."""

    def __init__(self, encoder: TextEncoder, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.hidden_size, num_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        pooled, _ = self.encoder(batch["text"])
        return self.head(self.dropout(pooled))
