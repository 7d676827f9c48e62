"""Cross-modal attention framework (BLANK-2340/Emotional-analysis-neural-net): a fine-tuned text
encoder queries audio and visual features through multi-head attention; focal loss; AdamW with
gradient accumulation and ReduceLROnPlateau.

Written as build / forward / loss plus the trainer's hooks: the text is read at the engine's
``raw`` level, gradient accumulation is ``train.accumulation_steps``, oversampling is
``train_units``, the focal weights come from the training labels in ``on_fit_start``, and
ReduceLROnPlateau steps in ``on_validation_end`` with the validation metrics.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from merbench.errors import ConfigError
from merbench.interfaces import SplitData
from merbench.metadata import method_metadata_file
from merbench.metrics import METRICS
from merbench.text_encoder import encoder_from_config
from merbench.trainer import Trainer, TorchMethod

from .model import CrossModalAttentionNet, focal_loss


LOSS_KEYS = {"focal_gamma", "class_weights"}
PLATEAU_DEFAULT = {"monitor": "valid_loss", "factor": 0.5, "patience": 2}


def class_weights(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """The original's focal ``alpha``: inverse class frequency normalised to sum 1, from the
    labels given (the training split only). A class absent from them gets weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)
    return (inv / inv.sum()).astype(np.float32)


def oversample_rows(labels: Sequence[int], seed: int) -> list[int]:
    """Random oversampling (as imblearn's RandomOverSampler): every row once, plus rows drawn
    with replacement from each smaller class until it has as many as the largest class."""
    labels = np.asarray(labels)
    rng = random.Random(f"{seed}-oversample")
    classes, counts = np.unique(labels, return_counts=True)
    rows = list(range(len(labels)))
    for c, n in zip(classes, counts):
        members = np.flatnonzero(labels == c).tolist()
        rows += rng.choices(members, k=int(counts.max() - n))
    return rows


class CrossModalAttentionMethod(TorchMethod):
    name = "cross_modal_attention"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit
    raw_capable = ("t",)
    conformance_overrides = {"encoder": {"name": "tiny-random-bert"}}  # as text_transformer's

    @classmethod
    def modality_subsets(cls):
        # The text encoder is the query of every attention block: no subset without text.
        return [s for s in super().modality_subsets() if "t" in s]

    @classmethod
    def feature_requests(cls, config, modalities):
        if "t" not in modalities:
            raise ConfigError(f"method {cls.name} needs text: it is the query of the cross-modal attention",
                              fix="run with --modalities t, t,a, t,v or t,a,v")
        return super().feature_requests(config, modalities)

    def extra_train_keys(self):
        return ("oversample", "plateau")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # features.t: raw fine-tunes the encoder (the original); an extractor name gives cached
        # features of a frozen encoder instead (variant frozen_text, for CPU budgets).
        self.frozen_text = self.levels["t"] != "raw"
        loss = self.config.get("loss") or {}
        unknown = set(loss) - LOSS_KEYS
        if unknown:
            raise ConfigError(f"method {self.name}: unknown loss keys {sorted(unknown)}", fix=f"known: {sorted(LOSS_KEYS)}")
        self.gamma = float(loss.get("focal_gamma", 2.0))
        self.use_class_weights = bool(loss.get("class_weights", False))
        t = self.train_cfg
        sched = t.get("scheduler")
        if sched not in (None, "none", "plateau", "cosine"):
            raise ConfigError(f"method {self.name}: unknown train.scheduler {sched!r}", fix="use plateau, cosine or none")
        self.plateau_cfg = {**PLATEAU_DEFAULT, **(t.get("plateau") or {})}
        if set(self.plateau_cfg) - set(PLATEAU_DEFAULT):
            raise ConfigError(f"method {self.name}: unknown train.plateau keys {sorted(set(self.plateau_cfg) - set(PLATEAU_DEFAULT))}",
                              fix=f"known: {sorted(PLATEAU_DEFAULT)}")
        if self.plateau_cfg["monitor"] not in ("valid_loss", *METRICS):
            raise ConfigError(f"method {self.name}: train.plateau.monitor {self.plateau_cfg['monitor']!r} is unknown",
                              fix="use valid_loss, accuracy, ua, weighted_f1 or macro_f1")
        self.alpha: torch.Tensor | None = None

    # -- model and loss ----------------------------------------------------------------------
    def build_model(self, input_dims, num_classes):
        m = self.config.get("model") or {}
        groups = m.get("audio_groups")
        if groups and "a" in input_dims:
            widths = [int(g[0]) for g in groups]
            if sum(widths) != input_dims["a"]:
                raise ConfigError(f"method {self.name}: model.audio_groups input widths {widths} sum to {sum(widths)}, "
                                  f"but the audio features have {input_dims['a']} columns",
                                  fix="give the audio feature columns in the groups' order (paper: V1 512 | V3 25, V4 25)")
        encoder = None if self.frozen_text else encoder_from_config(self.config.get("encoder"))
        return CrossModalAttentionNet(
            encoder, {k: input_dims[k] for k in self.modalities if k in input_dims},
            num_classes, text_dim=int(m.get("text_dim", 512)), audio_dim=int(m.get("audio_dim", 256)),
            visual_dim=int(m.get("visual_dim", 256)), heads=int(m.get("heads", 8)),
            dropout=float(m.get("dropout", 0.3)), attention=str(m.get("attention", "utterance")),
            kv_input=str(m.get("kv_input", "pad")), audio_groups=m.get("audio_groups"))

    def loss(self, outputs, batch):
        return focal_loss(self.logits(outputs), batch["labels"], gamma=self.gamma, alpha=self.alpha)

    # -- training: balancing inside the training split, plateau schedule -------------------
    def train_units(self, train: SplitData, units: list) -> list:
        if not self.train_cfg.get("oversample"):
            return units
        return oversample_rows(train.labels, self.seed)

    def on_fit_start(self, trainer: Trainer) -> None:
        # Focal weights from the rows actually trained on: after oversampling they are uniform, as in the original.
        rows = self.train_units(trainer.train, list(range(len(trainer.train))))
        self.alpha = torch.from_numpy(class_weights(trainer.train.labels[rows], self.num_classes)) \
            if self.use_class_weights else None
        if self.train_cfg.get("scheduler") == "plateau":
            p = self.plateau_cfg
            trainer.stateful["plateau"] = torch.optim.lr_scheduler.ReduceLROnPlateau(
                trainer.optimizer, mode="min" if p["monitor"] == "valid_loss" else "max",
                factor=float(p["factor"]), patience=int(p["patience"]))

    def on_validation_end(self, trainer: Trainer, metrics: dict) -> None:
        plateau = trainer.stateful.get("plateau")
        if plateau is not None:
            monitor = self.plateau_cfg["monitor"]
            plateau.step(metrics[monitor if monitor == "valid_loss" else f"valid_{monitor}"])
