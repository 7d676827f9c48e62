"""LipSync graph ERC (Li, Funakoshi, Okumura, Findings of EACL 2026): per-dialogue utterance
graphs per modality (a text GAT teacher distilled into audio and visual students) whose node
states feed a hierarchical attention fusion; trained with focal-poly + label-smoothed CE,
AdamW with warm-up and a 2-cycle cosine schedule, gradient accumulation, clipping of the
accumulated gradient, and an exponential moving average of the weights that is evaluated,
selected and used for prediction.

Written as build / loss plus the trainer's hooks: the trainer accumulates ``accumulation_steps``
batches per update and clips the accumulated gradient (``train.clip``); after each update,
``on_update`` steps the per-update LR schedule and then the EMA of the weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from merbench.errors import ConfigError
from merbench.metadata import method_metadata_file
from merbench.trainer import Trainer, TorchMethod, optimizer_impl

from .model import EMAModel, LipSyncGraphERC, total_loss


DEFAULT_LOSS = {"focal_weight": 0.8, "smooth_weight": 0.2, "label_smoothing": 0.1, "poly_alpha": 1.9508,
                "poly_gamma": 1.4025, "class_weights": True, "aux_weight": 1.0, "graph_weight": 1.0,
                "distillation": True, "kd_temperature": 1.8246, "kd_alpha": 0.5773}
DEFAULT_EXTRA_TRAIN = {"accumulation_steps": 2, "clip": 1.0, "warmup": 0.2, "cosine_cycles": 2, "ema_decay": 0.999,
                       "ema_warmup": True, "lr_scales": {}, "graph_weight_decay": {}}
LR_SCALE_KEYS = {"proj", "classifiers", "transformer", "other", "graph_t", "graph_a", "graph_v"}


def balanced_class_weights(labels, num_classes: int) -> np.ndarray:
    """sklearn's ``compute_class_weight("balanced")``: n / (C * count), from the training labels.
    A class absent from them gets weight 1 (it never is a target)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1.0)), 1.0)
    return w.astype(np.float32)


def warmup_cosine(total_updates: int, warmup: float, cycles: float) -> Callable[[int], float]:
    """LR factor per update: linear warm-up over ``warmup`` of the updates (from 0, as the
    original), then ``0.5 (1 + cos(pi * cycles * progress))``: 2 cycles = down to 0 at the
    middle of the rest, back up, and down again at the end."""
    warm = int(warmup * total_updates)

    def f(step: int) -> float:
        if step < warm:
            return step / max(1, warm)
        progress = (step - warm) / max(1, total_updates - warm)
        return 0.5 * (1.0 + math.cos(math.pi * cycles * progress))

    return f


class LipSyncGraphERCMethod(TorchMethod):
    name = "lipsync_graph_erc"
    config_dir = Path(__file__).parent
    metadata = method_metadata_file(__file__)  # metadata.yaml: title, links, the paper's numbers
    modalities = metadata.modalities
    unit = metadata.unit

    @classmethod
    def modality_subsets(cls):
        # Text is the distillation teacher; the paper's ablations are text, text+audio, text+visual, all.
        return [("t",), ("t", "a"), ("t", "v"), ("t", "a", "v")]

    @classmethod
    def accepted_config_keys(cls):
        keys = super().accepted_config_keys()
        keys["train"] = keys["train"] | set(DEFAULT_EXTRA_TRAIN)
        keys["loss"] = set(DEFAULT_LOSS)
        keys["model"] = keys.get("model", set()) | {"align_order"}  # default ALIGN_ORDER (model.py)
        return keys

    def extra_train_keys(self):
        return tuple(DEFAULT_EXTRA_TRAIN)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        loss = self.config.get("loss") or {}
        unknown = set(loss) - set(DEFAULT_LOSS)
        if unknown:
            raise ConfigError(f"method {self.name}: unknown loss keys {sorted(unknown)}", fix=f"known: {sorted(DEFAULT_LOSS)}")
        self.loss_cfg = {**DEFAULT_LOSS, **loss}
        given = self.config.get("train") or {}
        self.extra = {k: given.get(k, v) for k, v in DEFAULT_EXTRA_TRAIN.items()}
        if self.train_cfg["grad_clip"]:
            raise ConfigError(f"method {self.name}: train.grad_clip is this method's train.clip",
                              fix="set train.grad_clip: 0 and use train.clip (the max norm of the accumulated gradient)")
        # The trainer accumulates and clips (train.accumulation_steps, train.grad_clip on the
        # accumulated gradient); this method's defaults and its name for the clip norm feed them.
        self.train_cfg = {**self.train_cfg, "grad_clip": float(self.extra["clip"]),
                          "accumulation_steps": int(self.extra["accumulation_steps"])}
        sched = self.train_cfg.get("scheduler", "warmup_cosine")
        if sched not in ("warmup_cosine", "none", None):
            raise ConfigError(f"method {self.name}: unknown train.scheduler {sched!r}", fix="use warmup_cosine (the paper's) or none")
        if not 0.0 <= float(self.extra["ema_decay"]) < 1.0:
            raise ConfigError(f"method {self.name}: train.ema_decay must be in [0, 1)", fix="0 turns the EMA off; the paper uses 0.999")
        bad = set(self.extra["lr_scales"] or {}) - LR_SCALE_KEYS
        if bad:
            raise ConfigError(f"method {self.name}: unknown train.lr_scales keys {sorted(bad)}", fix=f"known: {sorted(LR_SCALE_KEYS)}")
        self.class_weight: torch.Tensor | None = None

    # -- model and loss ------------------------------------------------------------------------
    def build_model(self, input_dims, num_classes):
        net = LipSyncGraphERC({m: input_dims[m] for m in self.modalities}, num_classes, self.modalities,
                              self.config.get("model") or {})
        decay = float(self.extra["ema_decay"])
        return EMAModel(net, decay, bool(self.extra["ema_warmup"])) if decay > 0 else net

    def loss(self, outputs, batch, parts: dict | None = None):
        return total_loss(outputs, batch["labels"], self.loss_cfg, self.class_weight, parts)

    # -- optimisation ----------------------------------------------------------------------------
    def _param_groups(self, net: LipSyncGraphERC) -> list[dict]:
        """AdamW groups as in the original: fusion projections lr x0.5, classifier heads x2, the
        rest of the fusion x1 (weight decay train.weight_decay); each graph encoder its own
        lr scale and weight decay (the original trains them separately with their own AdamW)."""
        t, scales = self.train_cfg, {"proj": 0.5, "classifiers": 2.0, "transformer": 1.0, "other": 1.0,
                                     **(self.extra["lr_scales"] or {})}
        wd_graph = self.extra["graph_weight_decay"] or {}
        groups: dict[str, list] = {}
        for name, p in net.named_parameters():
            if not p.requires_grad:
                continue
            parts = name.split(".")
            key = f"graph_{parts[1]}" if parts[0] == "graphs" else (
                parts[1] if parts[1] in ("proj", "classifiers", "transformer") else "other")
            groups.setdefault(key, []).append(p)
        out = []
        for key, params in groups.items():
            wd = float(wd_graph.get(key[-1], t["weight_decay"])) if key.startswith("graph_") else float(t["weight_decay"])
            out.append({"params": params, "lr": float(t["lr"]) * float(scales.get(key, 1.0)), "weight_decay": wd})
        return out

    def configure_optimizer(self, model, train_cfg=None):
        net = model.net if isinstance(model, EMAModel) else model
        name = str(self.train_cfg["optimizer"]).lower()
        if name != "adamw":
            raise ConfigError(f"method {self.name}: only adamw is implemented (the paper's optimizer), not {name!r}",
                              fix="set train.optimizer: adamw")
        return torch.optim.AdamW(self._param_groups(net), lr=float(self.train_cfg["lr"]), betas=(0.9, 0.999), eps=1e-8,
                                 **optimizer_impl(self.name, self.train_cfg))

    def configure_scheduler(self, optimizer, epochs, updates_per_epoch):
        return None  # the LR schedule steps per update (on_update), not per epoch

    def on_fit_start(self, trainer: Trainer) -> None:
        # Class weights from the training labels only (the original: sklearn "balanced").
        self.class_weight = torch.from_numpy(balanced_class_weights(trainer.train.labels, self.num_classes)) \
            if self.loss_cfg["class_weights"] else None
        if self.train_cfg.get("scheduler", "warmup_cosine") in ("warmup_cosine", None):
            total = max(1, int(trainer.cfg["epochs"]) * trainer.updates_per_epoch)
            f = warmup_cosine(total, float(self.extra["warmup"]), float(self.extra["cosine_cycles"]))
            trainer.stateful["schedule"] = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, f)

    def on_update(self, trainer: Trainer) -> None:
        schedule = trainer.stateful.get("schedule")
        if schedule is not None:
            schedule.step()
        if isinstance(trainer.model, EMAModel):
            trainer.model.update()
