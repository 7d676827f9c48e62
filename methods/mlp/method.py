"""Pooled-feature MLP baseline with early fusion over any modality subset."""

from __future__ import annotations

from pathlib import Path

from merbench.metadata import method_metadata_file
from merbench.trainer import TorchMethod

from .model import EarlyFusionMLP


class MLPMethod(TorchMethod):
    name = "mlp"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit

    def build_model(self, input_dims, num_classes):
        m = self.config.get("model", {})
        return EarlyFusionMLP(input_dims, num_classes, hidden=m.get("hidden", [256]),
                              dropout=m.get("dropout", 0.3), modality_dropout=m.get("modality_dropout", 0.0))
