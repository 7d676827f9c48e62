"""The worked example of docs/adding-a-method.md, written from the guide with the trainer's public
hooks only: gradient accumulation (a train setting), a plateau LR schedule stepped with the
validation loss, and an exponential moving average (EMA) of the weights that answers in eval mode.
``tests/test_trainer.py`` trains it briefly."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from merbench.interfaces import MethodMetadata
from merbench.trainer import Trainer, TorchMethod


class EMAClassifier(nn.Module):
    """Pooled features of every modality, concatenated -> MLP; ``ema`` averages ``net``."""

    def __init__(self, input_dims: dict[str, int], num_classes: int, hidden: int, decay: float):
        super().__init__()
        self.order = sorted(input_dims)
        self.net = nn.Sequential(nn.Linear(sum(input_dims.values()), hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        for p in self.ema.parameters():
            p.requires_grad_(False)  # averaged, not trained: the optimizer never sees them

    def forward(self, batch: dict) -> torch.Tensor:
        x = torch.cat([batch["x"][m] for m in self.order], dim=-1)
        if not self.training and int(self.ema.n_averaged) > 0:
            return self.ema(x)  # validation, selection and prediction use the averaged weights
        return self.net(x)


class GuideMethod(TorchMethod):
    name = "guide_example"
    modalities = ("t", "a", "v")
    metadata = MethodMetadata(title="Guide example: accumulation, plateau schedule and EMA")

    def extra_train_keys(self):
        return ("plateau_factor", "plateau_patience", "ema_decay")

    def build_model(self, input_dims, num_classes):
        hidden = int((self.config.get("model") or {}).get("hidden", 32))
        return EMAClassifier(input_dims, num_classes, hidden, float(self.train_cfg.get("ema_decay", 0.9)))

    def on_fit_start(self, trainer: Trainer) -> None:
        # Registered in trainer.stateful: saved in every checkpoint and restored on resume.
        trainer.stateful["plateau"] = torch.optim.lr_scheduler.ReduceLROnPlateau(
            trainer.optimizer, mode="min", factor=float(self.train_cfg.get("plateau_factor", 0.5)),
            patience=int(self.train_cfg.get("plateau_patience", 1)))

    def on_update(self, trainer: Trainer) -> None:
        trainer.model.ema.update_parameters(trainer.model.net)

    def on_validation_end(self, trainer: Trainer, metrics: dict) -> None:
        trainer.stateful["plateau"].step(metrics["valid_loss"])
