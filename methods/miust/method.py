"""MIUST (Han, Chen, Jia, Bao): BiLSTMs, attention pooling, two-way cross-attention and CMD
alignment over unaligned word-level text and frame-level speech features."""

from __future__ import annotations

from pathlib import Path

from merbench.errors import ConfigError
from merbench.metadata import method_metadata_file
from merbench.trainer import TorchMethod

from .model import MIUST, miust_loss


DEFAULT_LOSS = {"main": 0.1, "cmd": 0.3, "text": 0.15, "audio": 0.15, "cmd_order": 5,
                "cmd_first_moment": True, "cmd_squared": True}


class MIUSTMethod(TorchMethod):
    name = "miust"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        loss = self.config.get("loss") or {}
        unknown = set(loss) - set(DEFAULT_LOSS)
        if unknown:
            raise ConfigError(f"method {self.name}: unknown loss keys {sorted(unknown)}", fix=f"known: {sorted(DEFAULT_LOSS)}")
        self.loss_cfg = {**DEFAULT_LOSS, **loss}

    def build_model(self, input_dims, num_classes):
        m = self.config.get("model") or {}
        return MIUST({k: input_dims[k] for k in self.modalities}, num_classes,
                     hidden=m.get("hidden", 128), layers=m.get("layers", 2),
                     attention_size=m.get("attention_size", 4), attention_init=m.get("attention_init", 0.001),
                     heads=m.get("heads", 2), fusion_hidden=m.get("fusion_hidden", 64),
                     cross_attention=m.get("cross_attention", True))

    def loss(self, outputs, batch):
        c = self.loss_cfg
        return miust_loss(outputs, batch["labels"], c, cmd_k=int(c["cmd_order"]),
                          first_moment=bool(c["cmd_first_moment"]), squared=bool(c["cmd_squared"]))
