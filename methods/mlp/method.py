"""Pooled-feature MLP baseline with early fusion over any modality subset."""

from __future__ import annotations

from pathlib import Path

from merbench.interfaces import MethodMetadata
from merbench.trainer import TorchMethod

from .model import EarlyFusionMLP


class MLPMethod(TorchMethod):
    name = "mlp"
    modalities = ("t", "a", "v")
    unit = "utterance"
    config_dir = Path(__file__).parent
    metadata = MethodMetadata(
        title="Early-fusion MLP over pooled utterance features",
        description="Concatenates the pooled features of the chosen modalities (standardised with "
                    "training statistics) and classifies them with a small MLP.",
    )

    def build_model(self, input_dims, num_classes):
        m = self.config.get("model", {})
        return EarlyFusionMLP(input_dims, num_classes, hidden=m.get("hidden", [256]),
                              dropout=m.get("dropout", 0.3), modality_dropout=m.get("modality_dropout", 0.0))
