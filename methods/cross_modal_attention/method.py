"""Cross-modal attention framework (BLANK-2340/Emotional-analysis-neural-net): a fine-tuned text
encoder queries audio and visual features through multi-head attention; focal loss; AdamW with
gradient accumulation and ReduceLROnPlateau.

Gradient accumulation is the engine's :class:`merbench.optim.AccumulatingOptimizer`; the
scheduler stepped with the validation metric (:class:`EpochEndScheduler`) computes the
validation pass itself and hands it to the trainer's own validation step, so it runs once per
epoch.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from merbench.errors import ConfigError
from merbench.interfaces import FitReport, SplitData
from merbench.metadata import method_metadata_file
from merbench.metrics import METRICS, classification_metrics
from merbench.optim import AccumulatingOptimizer
from merbench.methods.text_transformer.method import RawTextMixin
from merbench.text_encoder import encoder_from_config
from merbench.trainer import TorchMethod

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


class EpochEndScheduler:
    """What the trainer steps once per epoch, after the training batches and before validation:
    flushes pending accumulated gradients, then steps the LR schedule. ReduceLROnPlateau needs
    the validation score, which the trainer does not pass, so it is computed here and the
    method hands the same pass to the trainer's validation step (no second pass)."""

    def __init__(self, method: "CrossModalAttentionMethod", optimizer, kind: str | None, epochs: int):
        self.method, self.optimizer = method, optimizer
        inner = optimizer.inner if isinstance(optimizer, AccumulatingOptimizer) else optimizer
        self.plateau = self.schedule = None
        if kind == "plateau":
            p = {**PLATEAU_DEFAULT, **(method.train_cfg.get("plateau") or {})}
            mode = "min" if p["monitor"] == "valid_loss" else "max"
            self.monitor = p["monitor"]
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(inner, mode=mode, factor=float(p["factor"]),
                                                                      patience=int(p["patience"]))
        elif kind == "cosine":
            self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(inner, T_max=max(1, epochs))

    def step(self) -> None:
        if isinstance(self.optimizer, AccumulatingOptimizer):
            self.optimizer.flush()
        if self.schedule is not None:
            self.schedule.step()
        if self.plateau is not None:
            self.plateau.step(self.method.validation_score(self.monitor))

    def state_dict(self) -> dict:
        s = self.plateau or self.schedule
        return {"inner": s.state_dict() if s is not None else None}

    def load_state_dict(self, state: dict) -> None:
        s = self.plateau or self.schedule
        if s is not None and state.get("inner") is not None:
            s.load_state_dict(state["inner"])


class CrossModalAttentionMethod(RawTextMixin, TorchMethod):
    name = "cross_modal_attention"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit

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
        return ("accumulation_steps", "oversample", "plateau")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # features.t: raw fine-tunes the encoder (the original); an extractor name gives cached
        # features of a frozen encoder instead (variant frozen_text, for CPU budgets).
        self.frozen_text = "t" not in self.raw
        loss = self.config.get("loss") or {}
        unknown = set(loss) - LOSS_KEYS
        if unknown:
            raise ConfigError(f"method {self.name}: unknown loss keys {sorted(unknown)}", fix=f"known: {sorted(LOSS_KEYS)}")
        self.gamma = float(loss.get("focal_gamma", 2.0))
        self.use_class_weights = bool(loss.get("class_weights", False))
        t = self.train_cfg
        self.accumulation = int(t.get("accumulation_steps", 1))
        if self.accumulation < 1:
            raise ConfigError(f"method {self.name}: train.accumulation_steps must be >= 1")
        if self.accumulation > 1 and t["grad_clip"]:
            raise ConfigError(f"method {self.name}: train.grad_clip would clip each partial sum of accumulated "
                              f"gradients", fix="set train.grad_clip: 0 or train.accumulation_steps: 1")
        sched = t.get("scheduler")
        if sched not in (None, "none", "plateau", "cosine"):
            raise ConfigError(f"method {self.name}: unknown train.scheduler {sched!r}", fix="use plateau, cosine or none")
        plateau = {**PLATEAU_DEFAULT, **(t.get("plateau") or {})}
        if set(plateau) - set(PLATEAU_DEFAULT):
            raise ConfigError(f"method {self.name}: unknown train.plateau keys {sorted(set(plateau) - set(PLATEAU_DEFAULT))}",
                              fix=f"known: {sorted(PLATEAU_DEFAULT)}")
        if plateau["monitor"] not in ("valid_loss", *METRICS):
            raise ConfigError(f"method {self.name}: train.plateau.monitor {plateau['monitor']!r} is unknown",
                              fix="use valid_loss, accuracy, ua, weighted_f1 or macro_f1")
        self.alpha: torch.Tensor | None = None
        self._train_units: tuple[SplitData, list[int]] | None = None
        self._fit_valid: SplitData | None = None
        self._valid_cache: tuple[SplitData, np.ndarray, float | None] | None = None

    # -- model and loss ----------------------------------------------------------------------
    def build_model(self, input_dims, num_classes):
        m = self.config.get("model") or {}
        groups = m.get("audio_groups")
        if groups and "a" in self.feature_modalities:
            widths = [int(g[0]) for g in groups]
            if sum(widths) != input_dims["a"]:
                raise ConfigError(f"method {self.name}: model.audio_groups input widths {widths} sum to {sum(widths)}, "
                                  f"but the audio features have {input_dims['a']} columns",
                                  fix="give the audio feature columns in the groups' order (paper: V1 512 | V3 25, V4 25)")
        encoder = None if self.frozen_text else encoder_from_config(self.config.get("encoder"))
        return CrossModalAttentionNet(
            encoder, {k: input_dims[k] for k in self.feature_modalities},
            num_classes, text_dim=int(m.get("text_dim", 512)), audio_dim=int(m.get("audio_dim", 256)),
            visual_dim=int(m.get("visual_dim", 256)), heads=int(m.get("heads", 8)),
            dropout=float(m.get("dropout", 0.3)), attention=str(m.get("attention", "utterance")),
            kv_input=str(m.get("kv_input", "pad")), audio_groups=m.get("audio_groups"))

    def loss(self, outputs, batch):
        return focal_loss(self.logits(outputs), batch["labels"], gamma=self.gamma, alpha=self.alpha)

    # -- training: balancing inside the training split, accumulation, plateau schedule -------
    def fit(self, train: SplitData, valid: SplitData,
            on_epoch: Callable[[int, int, dict], None] | None = None) -> FitReport:
        rows = oversample_rows(train.labels, self.seed) if self.train_cfg.get("oversample") else list(range(len(train)))
        # Weights from the rows actually trained on: after oversampling they are uniform, as in the original.
        self.alpha = torch.from_numpy(class_weights(train.labels[rows], self.num_classes)) if self.use_class_weights else None
        self._train_units, self._fit_valid = (train, rows), valid
        try:
            return super().fit(train, valid, on_epoch=on_epoch)
        finally:
            self._train_units = self._fit_valid = self._valid_cache = None

    def _units(self, split: SplitData) -> list:
        if self._train_units is not None and split is self._train_units[0]:
            return self._train_units[1]
        return super()._units(split)

    def configure_optimizer(self, model):
        opt = super().configure_optimizer(model)
        return AccumulatingOptimizer(opt, self.accumulation) if self.accumulation > 1 else opt

    def configure_scheduler(self, optimizer, epochs, steps_per_epoch):
        kind = self.train_cfg.get("scheduler")
        kind = None if kind in (None, "none") else kind
        if kind is None and not isinstance(optimizer, AccumulatingOptimizer):
            return None
        return EpochEndScheduler(self, optimizer, kind, epochs)

    def validation_score(self, monitor: str) -> float:
        """One validation pass (kept for the trainer's validation step of this epoch)."""
        valid = self._fit_valid
        if valid is None:
            raise RuntimeError(f"method {self.name}: the plateau schedule steps only inside fit()")
        probs, loss = super()._probabilities(valid)
        self._valid_cache = (valid, probs, loss)
        if monitor == "valid_loss":
            return float(loss) if loss is not None else float("nan")
        return float(getattr(classification_metrics(valid.labels, probs.argmax(1), self.label_names), monitor))

    def _probabilities(self, split: SplitData):
        cache = self._valid_cache
        if cache is not None and cache[0] is split:
            self._valid_cache = None  # the model has not changed since validation_score()
            return cache[1], cache[2]
        return super()._probabilities(split)
