"""The trainer that owns the loop, so a neural method writes only build, forward and loss.

:class:`TorchMethod` implements ``fit`` / ``predict`` of :class:`~merbench.interfaces.Method`:
seeding, batching with padding masks (per utterance or per dialogue), feature
standardisation with training statistics, early stopping on a validation metric,
per-epoch checkpoints written atomically, and resume from the last checkpoint.

Batch layout handed to ``forward``:

- per utterance: ``x[m]`` is (B, D) for pooled features or (B, T, D) for frames, with
  ``mask[m]`` (B, T) True on real frames; ``labels`` (B,).
- per dialogue: ``x[m]`` is (B, U, D) (pooled features of each turn), ``utt_mask`` (B, U),
  ``speaker`` (B, U) speaker index within the dialogue, ``labels`` (B, U) with -100 on padding.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_write
from .config import config_hash
from .errors import ConfigError, DamagedFileError, FeatureShapeError
from .interfaces import FitReport, Method, SplitData
from .metrics import classification_metrics
from .weights import load_weights

log = logging.getLogger(__name__)
IGNORE = -100

# select_metric "headline": the protocol's headline metric (the runner writes it in; a method
# built outside a run, with no protocol, falls back to weighted F1, the usual headline).
HEADLINE = "headline"
DEFAULT_TRAIN = {
    "epochs": 30, "batch_size": 32, "eval_batch_size": 256, "lr": 1e-3, "weight_decay": 0.0,
    "optimizer": "adam", "patience": 8, "select_metric": HEADLINE, "grad_clip": 0.0,
    "standardize": True, "bucket_by_length": True, "max_frames": 0,
    # Keep pooled features of a split as one tensor on the device and gather batches from it
    # (no per-batch host->device copies). "auto": on for CUDA devices.
    "resident_features": "auto",
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict:
    """The random generators' states as tensors and plain values, so that a checkpoint loads with
    ``weights_only=True`` (no pickled numpy objects)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state()}


def _set_rng_state(s: dict) -> None:
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(s["torch"].cpu())


class TorchMethod(Method):
    """Base for neural methods. Subclasses implement :meth:`build_model` (and usually
    :meth:`forward`); the default loss is cross-entropy on ``outputs`` (or ``outputs['logits']``)."""

    # -- what a method writes ------------------------------------------------------
    @abstractmethod
    def build_model(self, input_dims: dict[str, int], num_classes: int) -> nn.Module:
        """``input_dims``: modality -> feature dim (per frame for frame-level inputs)."""

    def forward(self, model: nn.Module, batch: dict) -> torch.Tensor | dict:
        return model(batch)

    def loss(self, outputs, batch: dict) -> torch.Tensor:
        logits = self.logits(outputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE)

    @staticmethod
    def logits(outputs) -> torch.Tensor:
        return outputs["logits"] if isinstance(outputs, dict) else outputs

    def configure_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        t = self.train_cfg
        params = [p for p in model.parameters() if p.requires_grad]
        name = str(t["optimizer"]).lower()
        if name == "adam":
            return torch.optim.Adam(params, lr=t["lr"], weight_decay=t["weight_decay"])
        if name == "adamw":
            return torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"])
        if name == "rmsprop":
            return torch.optim.RMSprop(params, lr=t["lr"], weight_decay=t["weight_decay"])
        if name == "sgd":
            return torch.optim.SGD(params, lr=t["lr"], weight_decay=t["weight_decay"], momentum=0.9)
        raise ConfigError(f"method {self.name}: unknown optimizer {t['optimizer']!r}", fix="use adam, adamw, rmsprop or sgd")

    def configure_scheduler(self, optimizer, epochs: int, steps_per_epoch: int):
        """Return a scheduler stepped once per epoch, or None."""
        if self.train_cfg.get("scheduler") == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
        return None

    # -- engine side ------------------------------------------------------------------
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_cfg = {**DEFAULT_TRAIN, **(self.config.get("train") or {})}
        unknown = set(self.config.get("train") or {}) - set(DEFAULT_TRAIN) - {"scheduler"} - set(self.extra_train_keys())
        if unknown:
            raise ConfigError(f"method {self.name}: unknown train keys {sorted(unknown)}", fix=f"known: {sorted(DEFAULT_TRAIN)}")
        self.model: nn.Module | None = None
        self.norm: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.levels = {m: r.level for m, r in self.feature_requests(self.config, self.modalities).items()}

    def extra_train_keys(self) -> tuple[str, ...]:
        return ()

    @classmethod
    def accepted_config_keys(cls) -> dict[str, set[str]]:
        return {"train": set(DEFAULT_TRAIN) | {"scheduler"}}

    def input_dims(self, split: SplitData) -> dict[str, int]:
        dims = {}
        for m in self.modalities:
            table = split.features.get(m)
            if table is None:
                raise FeatureShapeError(f"method {self.name} needs {m!r} features, but the split has only {sorted(split.features)}")
            if self.levels[m] == "frames":
                if table.frames is None:
                    raise FeatureShapeError(f"extractor {table.extractor} has no frame-level output, but method {self.name} asks for frames",
                                            fix=f"set features.{m}.level: pooled or choose a frame-level extractor")
                dims[m] = table.frame_dim
            else:
                dims[m] = table.dim
        return dims

    def num_parameters(self, input_dims: dict[str, int] | None = None) -> int | None:
        model = self.model if input_dims is None and self.model is not None else self.build_model(input_dims, self.num_classes)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    # batching ---------------------------------------------------------------------
    def _fit_normaliser(self, train: SplitData) -> None:
        self.norm = {}
        if not self.train_cfg["standardize"]:
            return
        for m in self.modalities:
            t = train.features[m]
            if self.levels[m] == "frames":
                data = np.concatenate([f for f, ok in zip(t.frames, t.valid) if ok]) if t.valid.any() else np.concatenate(t.frames)
            else:
                data = t.pooled[t.valid] if t.valid.any() else t.pooled
            mean, std = data.mean(0), data.std(0)
            self.norm[m] = (mean.astype(np.float32), np.where(std < 1e-6, 1.0, std).astype(np.float32))

    def _feature(self, split: SplitData, m: str, row: int) -> np.ndarray:
        t = split.features[m]
        x = t.frames[row] if self.levels[m] == "frames" else t.pooled[row]
        if m in self.norm:
            mean, std = self.norm[m]
            x = (x - mean) / std
            if not t.valid[row]:  # unreadable media: zeros after normalisation = "no information"
                x = np.zeros_like(x)
        cap = self.train_cfg["max_frames"]
        if self.levels[m] == "frames" and cap and len(x) > cap:
            x = x[np.linspace(0, len(x) - 1, cap).round().astype(int)]
        return np.asarray(x, dtype=np.float32)

    def _resident(self, split: SplitData, m: str) -> torch.Tensor | None:
        """The split's standardised pooled features of ``m`` as one device tensor, or None."""
        flag = self.train_cfg["resident_features"]
        on = str(self.device).startswith("cuda") if flag == "auto" else bool(flag)
        if not on or self.levels[m] != "pooled":
            return None
        cache = split.__dict__.setdefault("_resident", {})
        key = (id(self), m, str(self.device))
        if key not in cache:
            t = split.features[m]
            x = t.pooled.astype(np.float32)
            if m in self.norm:
                mean, std = self.norm[m]
                x = (x - mean) / std
                x[~t.valid] = 0.0
            cache[key] = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        return cache[key]

    def collate(self, split: SplitData, rows: list[int] | list[list[int]]) -> dict:
        if self.unit == "dialogue":
            return self._collate_dialogues(split, rows)  # type: ignore[arg-type]
        batch: dict[str, Any] = {"x": {}, "mask": {}, "index": torch.tensor(rows)}
        for m in self.modalities:
            resident = self._resident(split, m)
            if resident is not None:
                batch["x"][m] = resident[torch.as_tensor(rows, device=resident.device)]
                continue
            feats = [self._feature(split, m, r) for r in rows]
            if self.levels[m] == "frames":
                T = max(len(f) for f in feats)
                x = np.zeros((len(rows), T, feats[0].shape[1]), dtype=np.float32)
                mask = np.zeros((len(rows), T), dtype=bool)
                for i, f in enumerate(feats):
                    x[i, :len(f)] = f
                    mask[i, :len(f)] = True
                batch["x"][m] = torch.from_numpy(x)
                batch["mask"][m] = torch.from_numpy(mask)
            else:
                batch["x"][m] = torch.from_numpy(np.stack(feats))
        if split.labels is not None:
            batch["labels"] = torch.as_tensor(split.labels[rows], dtype=torch.long)
        return batch

    def _collate_dialogues(self, split: SplitData, dialogues: list[list[int]]) -> dict:
        B, U = len(dialogues), max(len(d) for d in dialogues)
        batch: dict[str, Any] = {"x": {}, "utt_mask": torch.zeros(B, U, dtype=torch.bool),
                                 "speaker": torch.zeros(B, U, dtype=torch.long), "index": dialogues}
        for m in self.modalities:
            if self.levels[m] == "frames":
                raise ConfigError(f"method {self.name} works per dialogue and takes pooled features only")
            D = split.features[m].dim
            x = torch.zeros(B, U, D)
            for i, d in enumerate(dialogues):
                x[i, :len(d)] = torch.from_numpy(np.stack([self._feature(split, m, r) for r in d]))
            batch["x"][m] = x
        labels = torch.full((B, U), IGNORE, dtype=torch.long)
        for i, d in enumerate(dialogues):
            batch["utt_mask"][i, :len(d)] = True
            speakers: dict[str, int] = {}
            for j, r in enumerate(d):
                batch["speaker"][i, j] = speakers.setdefault(split.utterances[r].speaker, len(speakers))
            if split.labels is not None:
                labels[i, :len(d)] = torch.as_tensor(split.labels[d])
        if split.labels is not None:
            batch["labels"] = labels
        return batch

    def _units(self, split: SplitData) -> list:
        return split.dialogues() if self.unit == "dialogue" else list(range(len(split)))

    def _length(self, split: SplitData, unit) -> int:
        if self.unit == "dialogue":
            return len(unit)
        frame_mods = [m for m in self.modalities if self.levels[m] == "frames"]
        return max((len(split.features[m].frames[unit]) for m in frame_mods), default=0)

    def batches(self, split: SplitData, batch_size: int, shuffle: bool, epoch: int = 0) -> Iterator[dict]:
        units = self._units(split)
        order = list(range(len(units)))
        if shuffle:
            random.Random(f"{self.seed}-{epoch}").shuffle(order)
        if self.train_cfg["bucket_by_length"] and shuffle:
            # Sort by length inside windows of 50 batches: little padding, still random batches.
            window = batch_size * 50
            order = [i for k in range(0, len(order), window)
                     for i in sorted(order[k:k + window], key=lambda i: self._length(split, units[i]))]
            chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
            random.Random(f"{self.seed}-{epoch}-b").shuffle(chunks)
        else:
            chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
        for chunk in chunks:
            yield self._to_device(self.collate(split, [units[i] for i in chunk]))

    def _to_device(self, batch: dict) -> dict:
        def move(v):
            if isinstance(v, torch.Tensor):
                return v.to(self.device)
            if isinstance(v, dict):
                return {k: move(x) for k, x in v.items()}
            return v

        return move(batch)

    # evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def _probabilities(self, split: SplitData) -> tuple[np.ndarray, float | None]:
        assert self.model is not None
        self.model.eval()
        probs = np.zeros((len(split), self.num_classes), dtype=np.float32)
        total, count = 0.0, 0
        for batch in self.batches(split, self.train_cfg["eval_batch_size"], shuffle=False):
            out = self.forward(self.model, batch)
            logits = self.logits(out)
            if "labels" in batch:
                n = int((batch["labels"] != IGNORE).sum())
                total += float(self.loss(out, batch)) * n
                count += n
            p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            if self.unit == "dialogue":
                for i, d in enumerate(batch["index"]):
                    probs[d] = p[i, :len(d)]
            else:
                probs[batch["index"].cpu().numpy()] = p
        return probs, (total / count if count else None)

    def predict(self, split: SplitData) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"method {self.name}: predict() before fit()")
        return self._probabilities(split)[0]

    # the loop ----------------------------------------------------------------------------
    def fit(self, train: SplitData, valid: SplitData,
            on_epoch: Callable[[int, int, dict], None] | None = None) -> FitReport:
        t = self.train_cfg
        seed_everything(self.seed)
        self._fit_normaliser(train)
        self.model = self.build_model(self.input_dims(train), self.num_classes).to(self.device)
        optimizer = self.configure_optimizer(self.model)
        steps = math.ceil(len(self._units(train)) / t["batch_size"])
        scheduler = self.configure_scheduler(optimizer, t["epochs"], steps)
        metric = "weighted_f1" if t["select_metric"] == HEADLINE else t["select_metric"]
        state = {"epoch": 0, "best": -math.inf, "best_epoch": None, "bad": 0, "history": [], "best_state": None}
        ckpt_path = Path(self.workdir) / "checkpoint.pt" if self.workdir else None
        chash = config_hash({"config": self.config, "modalities": self.modalities, "seed": self.seed})
        ckpt = None
        if ckpt_path and ckpt_path.exists():
            try:
                ckpt = load_weights(ckpt_path, map_location=self.device)  # tensors and plain values only
            except DamagedFileError as e:  # never run, never resumed from: set aside, start afresh
                ckpt_path.replace(ckpt_path.with_name(ckpt_path.name + ".damaged"))
                log.warning("%s; moved to %s.damaged, training restarts from the first epoch", e.message, ckpt_path.name)
        if ckpt is not None:
            if isinstance(ckpt, dict) and ckpt.get("config_hash") == chash:
                self.model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
                if scheduler is not None and ckpt.get("scheduler"):
                    scheduler.load_state_dict(ckpt["scheduler"])
                state = ckpt["state"]
                _set_rng_state(ckpt["rng"])
                log.info("resumed %s from epoch %d", ckpt_path, state["epoch"])
            else:
                log.warning("ignoring checkpoint %s: made with another config", ckpt_path)
        while state["epoch"] < t["epochs"] and state["bad"] < t["patience"]:
            epoch = state["epoch"]
            self.model.train()
            losses = []
            for batch in self.batches(train, t["batch_size"], shuffle=True, epoch=epoch):
                optimizer.zero_grad(set_to_none=True)
                loss = self.loss(self.forward(self.model, batch), batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"method {self.name}: loss became {float(loss)} at epoch {epoch}")
                loss.backward()
                if t["grad_clip"]:
                    nn.utils.clip_grad_norm_(self.model.parameters(), t["grad_clip"])
                optimizer.step()
                losses.append(float(loss.detach()))
            if scheduler is not None:
                scheduler.step()
            probs, valid_loss = self._probabilities(valid)
            vm = classification_metrics(valid.labels, probs.argmax(1), self.label_names)
            score = float(getattr(vm, metric))
            row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                   "valid_loss": valid_loss if valid_loss is not None else float("nan"),
                   "valid_accuracy": vm.accuracy, "valid_ua": vm.ua, "valid_weighted_f1": vm.weighted_f1,
                   "valid_macro_f1": vm.macro_f1}
            state["history"].append(row)
            if score > state["best"]:
                state.update(best=score, best_epoch=epoch + 1, bad=0,
                             best_state=copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()}))
            else:
                state["bad"] += 1
            state["epoch"] = epoch + 1
            if ckpt_path:
                ckpt = {"config_hash": chash, "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "state": state, "rng": _rng_state()}
                atomic_write(ckpt_path, lambda p: torch.save(ckpt, p))
            if on_epoch:
                on_epoch(epoch + 1, t["epochs"], row)
        if state["best_state"] is not None:
            self.model.load_state_dict(state["best_state"])
        return FitReport(epochs_run=state["epoch"], best_epoch=state["best_epoch"],
                         best_valid_score=None if state["best"] == -math.inf else state["best"],
                         select_metric=metric, history=state["history"])
