"""The trainer that owns the loop, so a neural method writes only build, forward and loss, plus hooks.

A :class:`TorchMethod` subclass writes :meth:`~TorchMethod.build_model` (and usually
:meth:`~TorchMethod.forward` / :meth:`~TorchMethod.loss`). Everything else is the engine's:
seeding, batching with padding masks (per utterance or per dialogue), feature standardisation
with training statistics, gradient accumulation and clipping, early stopping and model
selection on the validation split, per-epoch checkpoints written atomically, and resume.

One call of ``fit`` is one :class:`Trainer` run (a multi-stage method runs several, each with its
own modalities, train settings, model builder and checkpoint folder). The hooks a method may
override, in the order a run calls them (``docs/adding-a-method.md`` walks through them):

- :meth:`~TorchMethod.configure_optimizer` ``(model, train_cfg)`` -> a torch optimizer.
- :meth:`~TorchMethod.configure_scheduler` ``(optimizer, epochs, updates_per_epoch)`` -> a
  scheduler stepped once per epoch after the training batches, or None.
- :meth:`~TorchMethod.train_units` ``(train, units)`` -> the units one epoch trains on
  (oversampling, subsampling); computed once per run.
- :meth:`~TorchMethod.on_fit_start` ``(trainer)``: after the model, optimizer and scheduler exist
  and before a checkpoint is resumed. Objects put in ``trainer.stateful`` (anything with
  ``state_dict`` / ``load_state_dict``: a per-update schedule, a plateau schedule) are saved in
  every checkpoint and restored on resume.
- :meth:`~TorchMethod.on_update` ``(trainer)``: after every optimizer update (per-update LR
  schedules, an EMA of the weights). With ``train.accumulation_steps: k`` one update applies the
  mean gradient of ``k`` batches (the last update of an epoch may average fewer); ``grad_clip``
  clips that accumulated gradient.
- :meth:`~TorchMethod.on_validation_end` ``(trainer, metrics)``: after each validation pass, with
  the epoch's history row (``valid_loss``, ``valid_accuracy``, ``valid_ua``,
  ``valid_weighted_f1``, ``valid_macro_f1``, ``train_loss``). Step a plateau schedule here;
  return a number to select epochs by it instead of ``train.select_metric``.

Feature levels (``features: {m: {extractor, level}}``): ``pooled`` (one vector per utterance),
``frames`` (a sequence), and ``raw``: no extractor; the method reads the modality from the
utterances itself through :meth:`~TorchMethod.raw_inputs` (the engine's default for text
tokenizes ``Utterance.text`` for a fine-tuned encoder, see :mod:`merbench.text_encoder`).

Batch layout handed to ``forward``:

- per utterance: ``x[m]`` is (B, D) for pooled features or (B, T, D) for frames, with
  ``mask[m]`` (B, T) True on real frames; ``labels`` (B,); raw text as ``text`` (``input_ids``,
  ``attention_mask``).
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
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_write
from .config import config_hash
from .errors import ConfigError, DamagedFileError, FeatureShapeError
from .interfaces import RAW, FitReport, Method, OnEpoch, SplitData
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
    # One optimizer update per this many batches, with the mean of their gradients.
    "accumulation_steps": 1,
    "standardize": True, "bucket_by_length": True, "max_frames": 0,
    # Keep pooled features of a split as one standardised tensor on the device and gather batches
    # from it (no per-batch host->device copies, no per-row standardising in Python every epoch).
    # "auto": on for CUDA devices, and on the CPU where the features are float32 (then the values
    # are bitwise those of the per-row path).
    "resident_features": "auto",
    # Optimizer kernels: torch's default on the CPU loops over the parameters in Python, one small
    # kernel (and thread barrier) per operation and tensor; "foreach" groups the same arithmetic into
    # a few kernels (bitwise the same weights); "fused" is one kernel per tensor, fastest, but it
    # rounds differently (about 1e-8 per step), so results move by seed noise: opt-in.
    "optimizer_impl": "foreach",
}
VALID_KEYS = ("valid_accuracy", "valid_ua", "valid_weighted_f1", "valid_macro_f1")


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


class Batcher:
    """Turns splits into device batches for one trainer run: which modalities it reads (each
    pooled, frames or raw), the standardisation statistics fitted on the training split, and
    length bucketing. Build it with :meth:`TorchMethod.make_batcher`."""

    def __init__(self, method: "TorchMethod", train: SplitData | None, modalities: Sequence[str] | None = None,
                 train_cfg: dict | None = None, norm: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
        self.method = method
        self.modalities = tuple(modalities if modalities is not None else method.modalities)
        self.cfg = train_cfg if train_cfg is not None else method.train_cfg
        self.levels = {m: method.levels[m] for m in self.modalities}
        self.feature_modalities = tuple(m for m in self.modalities if self.levels[m] != RAW)
        self.raw = tuple(m for m in self.modalities if self.levels[m] == RAW)
        # A kept model brings its training statistics (``norm``) and has no training split.
        self.norm: dict[str, tuple[np.ndarray, np.ndarray]] = dict(norm or {})
        self.dims: dict[str, int] | None = None  # the input sizes the model was built for (set by the Trainer)
        if norm is None and self.cfg["standardize"]:
            for m in self.feature_modalities:
                if method.standardizes(m):
                    self.norm[m] = self._statistics(train, m)

    def _statistics(self, train: SplitData, m: str) -> tuple[np.ndarray, np.ndarray]:
        t = train.features[m]
        if self.levels[m] == "frames":
            data = np.concatenate([f for f, ok in zip(t.frames, t.valid) if ok]) if t.valid.any() else np.concatenate(t.frames)
        else:
            data = t.pooled[t.valid] if t.valid.any() else t.pooled
        mean, std = data.mean(0), data.std(0)
        return mean.astype(np.float32), np.where(std < 1e-6, 1.0, std).astype(np.float32)

    def input_dims(self, split: SplitData) -> dict[str, int]:
        """modality -> feature size (per frame for frames); raw modalities are absent (the model
        knows their size from its own encoder)."""
        name = self.method.name
        dims = {}
        for m in self.feature_modalities:
            table = split.features.get(m)
            if table is None:
                raise FeatureShapeError(f"method {name} needs {m!r} features, but the split has only {sorted(split.features)}")
            if self.levels[m] == "frames":
                if table.frames is None:
                    raise FeatureShapeError(f"extractor {table.extractor} has no frame-level output, but method {name} asks for frames",
                                            fix=f"set features.{m}.level: pooled or choose a frame-level extractor")
                dims[m] = table.frame_dim
            else:
                dims[m] = table.dim
        return dims

    # -- one utterance's features -----------------------------------------------------------
    def _feature(self, split: SplitData, m: str, row: int) -> np.ndarray:
        t = split.features[m]
        x = t.frames[row] if self.levels[m] == "frames" else t.pooled[row]
        if m in self.norm:
            mean, std = self.norm[m]
            x = (x - mean) / std
            if not t.valid[row]:  # unreadable media: zeros after normalisation = "no information"
                x = np.zeros_like(x)
        cap = self.cfg["max_frames"]
        if self.levels[m] == "frames" and cap and len(x) > cap:
            x = x[np.linspace(0, len(x) - 1, cap).round().astype(int)]
        return np.asarray(x, dtype=np.float32)

    def _resident(self, split: SplitData, m: str) -> torch.Tensor | None:
        """The split's standardised pooled features of ``m`` as one device tensor, or None."""
        flag = self.cfg["resident_features"]
        device = self.method.device
        if self.levels[m] != "pooled":
            return None
        on = (str(device).startswith("cuda") or split.features[m].pooled.dtype == np.float32) if flag == "auto" \
            else bool(flag)
        if not on:
            return None
        cache = split.__dict__.setdefault("_resident", {})
        key = (id(self), m, str(device))
        if key not in cache:
            t = split.features[m]
            x = t.pooled.astype(np.float32)
            if m in self.norm:
                mean, std = self.norm[m]
                x = (x - mean) / std
                x[~t.valid] = 0.0
            cache[key] = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        return cache[key]

    # -- batches --------------------------------------------------------------------------------
    def collate(self, split: SplitData, units: list) -> dict:
        """One batch (on the CPU) of ``units``: row indices, or row lists of dialogues."""
        if self.method.unit == "dialogue":
            if self.raw:
                raise ConfigError(f"method {self.method.name}: raw modalities are batched per utterance only")
            return self._collate_dialogues(split, units)
        batch: dict[str, Any] = {"x": {}, "mask": {}, "index": torch.tensor(units)}
        for m in self.feature_modalities:
            resident = self._resident(split, m)
            if resident is not None:
                batch["x"][m] = resident[torch.as_tensor(units, device=resident.device)]
                continue
            feats = [self._feature(split, m, r) for r in units]
            if self.levels[m] == "frames":
                T = max(len(f) for f in feats)
                x = np.zeros((len(units), T, feats[0].shape[1]), dtype=np.float32)
                mask = np.zeros((len(units), T), dtype=bool)
                for i, f in enumerate(feats):
                    x[i, :len(f)] = f
                    mask[i, :len(f)] = True
                batch["x"][m] = torch.from_numpy(x)
                batch["mask"][m] = torch.from_numpy(mask)
            else:
                batch["x"][m] = torch.from_numpy(np.stack(feats))
        for m in self.raw:
            batch.update(self.method.raw_inputs(split, units, m))
        if split.labels is not None:
            batch["labels"] = torch.as_tensor(split.labels[units], dtype=torch.long)
        return batch

    def _collate_dialogues(self, split: SplitData, dialogues: list[list[int]]) -> dict:
        B, U = len(dialogues), max(len(d) for d in dialogues)
        batch: dict[str, Any] = {"x": {}, "utt_mask": torch.zeros(B, U, dtype=torch.bool),
                                 "speaker": torch.zeros(B, U, dtype=torch.long), "index": dialogues}
        for m in self.feature_modalities:
            if self.levels[m] == "frames":
                raise ConfigError(f"method {self.method.name} works per dialogue and takes pooled features only")
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

    def units(self, split: SplitData) -> list:
        """Every unit of ``split`` once: row indices, or the rows of each dialogue."""
        return split.dialogues() if self.method.unit == "dialogue" else list(range(len(split)))

    def sorts_by_length(self) -> bool:
        """Whether batches have a length to pad to (frames, raw text, or dialogues of turns)."""
        return self.method.unit == "dialogue" or bool(self.raw) or any(
            self.levels[m] == "frames" for m in self.feature_modalities)

    def length(self, split: SplitData, unit) -> int:
        """What length bucketing sorts by: turns of a dialogue, or the longest input of an utterance."""
        if self.method.unit == "dialogue":
            return len(unit)
        n = max((len(split.features[m].frames[unit]) for m in self.feature_modalities if self.levels[m] == "frames"),
                default=0)
        return max([n] + [self.method.raw_length(split, unit, m) for m in self.raw])

    def batches(self, split: SplitData, batch_size: int, shuffle: bool, epoch: int = 0,
                units: list | None = None, by_length: bool = False) -> Iterator[dict]:
        """Device batches of ``units`` (default: every unit once); shuffled per (seed, epoch).
        ``by_length`` (unshuffled only): batches of neighbours in length, shortest first, so that
        evaluation pads each batch to about its own length instead of to a random long one."""
        units = self.units(split) if units is None else units
        seed = self.method.seed
        order = list(range(len(units)))
        if by_length and not shuffle and self.sorts_by_length():
            order.sort(key=lambda i: self.length(split, units[i]))
        if shuffle:
            random.Random(f"{seed}-{epoch}").shuffle(order)
        if self.cfg["bucket_by_length"] and shuffle:
            # Sort by length inside windows of 50 batches: little padding, still random batches.
            window = batch_size * 50
            order = [i for k in range(0, len(order), window)
                     for i in sorted(order[k:k + window], key=lambda i: self.length(split, units[i]))]
            chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
            random.Random(f"{seed}-{epoch}-b").shuffle(chunks)
        else:
            chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
        for chunk in chunks:
            yield to_device(self.collate(split, [units[i] for i in chunk]), self.method.device)


def to_device(batch: dict, device) -> dict:
    def move(v):
        if isinstance(v, torch.Tensor):
            return v.to(device)
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        return v

    return move(batch)


@torch.no_grad()
def evaluate(method: "TorchMethod", model: nn.Module, batcher: Batcher, split: SplitData,
             batch_size: int) -> tuple[np.ndarray, float | None]:
    """Class probabilities (N, C) of ``split`` and, where it has labels, the mean loss per labelled utterance."""
    model.eval()
    probs = np.zeros((len(split), method.num_classes), dtype=np.float32)
    total, count = 0.0, 0
    # Probabilities go back to their rows by batch["index"], so the batch order is free: sorted by
    # length, a batch pads to its own longest input (the padding is masked, so only the time changes).
    for batch in batcher.batches(split, batch_size, shuffle=False, by_length=True):
        out = method.forward(model, batch)
        logits = method.logits(out)
        if "labels" in batch:
            n = int((batch["labels"] != IGNORE).sum())
            total += float(method.loss(out, batch)) * n
            count += n
        p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        if method.unit == "dialogue":
            for i, d in enumerate(batch["index"]):
                probs[d] = p[i, :len(d)]
        else:
            probs[batch["index"].cpu().numpy()] = p
    return probs, (total / count if count else None)


class Trainer:
    """One training run of a :class:`TorchMethod`: builds the batcher, model, optimizer and
    scheduler, runs epochs with early stopping on the validation split, checkpoints every epoch
    and resumes from the last checkpoint. After :meth:`run`, ``model`` holds the selected
    weights and ``batcher`` the batching that goes with them.

    ``modalities``, ``train_cfg``, ``build_model``, ``workdir`` and ``name`` default to the
    method's; a multi-stage method passes its own per stage (``name`` is part of the checkpoint key).
    Hooks read ``trainer.model`` / ``optimizer`` / ``scheduler`` / ``cfg`` / ``epoch`` /
    ``updates`` / ``updates_per_epoch`` / ``train`` / ``valid`` / ``history``.
    """

    def __init__(self, method: "TorchMethod", train: SplitData, valid: SplitData, *,
                 modalities: Sequence[str] | None = None, train_cfg: dict | None = None,
                 build_model: Callable[[dict, int], nn.Module] | None = None,
                 workdir: Path | None | str = "method", name: str = "", on_epoch: OnEpoch | None = None):
        self.method, self.train, self.valid = method, train, valid
        self.modalities = tuple(modalities if modalities is not None else method.modalities)
        self.cfg = dict(train_cfg if train_cfg is not None else method.train_cfg)
        self.build = build_model or method.build_model
        self.workdir = method.workdir if workdir == "method" else workdir
        self.name, self.on_epoch = name, on_epoch
        k = self.cfg["accumulation_steps"]
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"method {method.name}: train.accumulation_steps must be an integer >= 1, not {k!r}")
        self.batcher: Batcher | None = None
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.stateful: dict[str, Any] = {}  # saved in checkpoints (state_dict / load_state_dict)
        self.epoch = 0  # epochs finished
        self.updates = 0  # optimizer updates made
        self.updates_per_epoch = 0
        self.history: list[dict] = []

    # -- pieces -----------------------------------------------------------------------------
    def _update(self, pending: int) -> None:
        """Apply the mean gradient of the ``pending`` batches accumulated since the last update."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if pending > 1:
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        p.grad.div_(pending)  # sum of batch means -> mean over the batches
        if self.cfg["grad_clip"]:
            nn.utils.clip_grad_norm_(params, self.cfg["grad_clip"], foreach=True)  # same norm, grouped kernels
        self.optimizer.step()
        self.updates += 1
        self.method.on_update(self)
        self.optimizer.zero_grad(set_to_none=True)

    def _train_epoch(self, units: list) -> list[float]:
        self.model.train()
        k, losses, pending = self.cfg["accumulation_steps"], [], 0
        for batch in self.batcher.batches(self.train, self.cfg["batch_size"], shuffle=True, epoch=self.epoch, units=units):
            if pending == 0:
                self.optimizer.zero_grad(set_to_none=True)
            loss = self.method.loss(self.method.forward(self.model, batch), batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"method {self.method.name}: loss became {float(loss)} at epoch {self.epoch}")
            loss.backward()
            losses.append(float(loss.detach()))
            pending += 1
            if pending == k:
                self._update(pending)
                pending = 0
        if pending:  # the batches left at the end of the epoch are applied, never dropped
            self._update(pending)
        return losses

    def _checkpoint(self, key: str, state: dict) -> dict:
        return {"config_hash": key, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "stateful": {n: s.state_dict() for n, s in self.stateful.items()},
                "updates": self.updates, "state": state, "rng": _rng_state()}

    def _resume(self, path: Path, key: str, state: dict) -> dict:
        try:
            ckpt = load_weights(path, map_location=self.method.device)  # tensors and plain values only
        except DamagedFileError as e:  # never run, never resumed from: set aside, start afresh
            path.replace(path.with_name(path.name + ".damaged"))
            log.warning("%s; moved to %s.damaged, training restarts from the first epoch", e.message, path.name)
            return state
        if not isinstance(ckpt, dict) or ckpt.get("config_hash") != key:
            log.warning("ignoring checkpoint %s: made with another config", path)
            return state
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        for n, s in self.stateful.items():
            if n in (ckpt.get("stateful") or {}):
                s.load_state_dict(ckpt["stateful"][n])
        self.updates = int(ckpt.get("updates", 0))
        _set_rng_state(ckpt["rng"])
        log.info("resumed %s from epoch %d", path, ckpt["state"]["epoch"])
        return ckpt["state"]

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> FitReport:
        m, t = self.method, self.cfg
        seed_everything(m.seed)
        self.batcher = m.make_batcher(self.train, self.modalities, t)
        self.batcher.dims = self.batcher.input_dims(self.train)
        self.model = self.build(self.batcher.dims, m.num_classes).to(m.device)
        self.optimizer = m.configure_optimizer(self.model, t)
        units = m.train_units(self.train, self.batcher.units(self.train))
        self.updates_per_epoch = math.ceil(math.ceil(len(units) / t["batch_size"]) / t["accumulation_steps"])
        self.scheduler = m.configure_scheduler(self.optimizer, t["epochs"], self.updates_per_epoch)
        m.on_fit_start(self)
        metric = "weighted_f1" if t["select_metric"] == HEADLINE else t["select_metric"]
        state = {"epoch": 0, "best": -math.inf, "best_epoch": None, "bad": 0, "history": [], "best_state": None}
        ckpt_path = Path(self.workdir) / "checkpoint.pt" if self.workdir else None
        key = config_hash({"config": m.config, "modalities": self.modalities, "seed": m.seed, "train": t,
                           "stage": self.name})
        if ckpt_path and ckpt_path.exists():
            state = self._resume(ckpt_path, key, state)
        self.history = state["history"]
        while state["epoch"] < t["epochs"] and state["bad"] < t["patience"]:
            self.epoch = state["epoch"]
            losses = self._train_epoch(units)
            if self.scheduler is not None:
                self.scheduler.step()
            probs, valid_loss = evaluate(m, self.model, self.batcher, self.valid, t["eval_batch_size"])
            vm = classification_metrics(self.valid.labels, probs.argmax(1), m.label_names)
            row = {"epoch": self.epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                   "valid_loss": valid_loss if valid_loss is not None else float("nan"),
                   "valid_accuracy": vm.accuracy, "valid_ua": vm.ua, "valid_weighted_f1": vm.weighted_f1,
                   "valid_macro_f1": vm.macro_f1}
            chosen = m.on_validation_end(self, dict(row))
            score = float(getattr(vm, metric)) if chosen is None else float(chosen)
            state["history"].append(row)
            if score > state["best"]:
                state.update(best=score, best_epoch=self.epoch + 1, bad=0,
                             best_state=copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()}))
            else:
                state["bad"] += 1
            state["epoch"] = self.epoch + 1
            if ckpt_path:
                ckpt = self._checkpoint(key, state)
                atomic_write(ckpt_path, lambda p: torch.save(ckpt, p))
            if self.on_epoch:
                self.on_epoch(self.epoch + 1, t["epochs"], row)
        self.epoch = state["epoch"]
        if state["best_state"] is not None:
            self.model.load_state_dict(state["best_state"])
        return FitReport(epochs_run=state["epoch"], best_epoch=state["best_epoch"],
                         best_valid_score=None if state["best"] == -math.inf else state["best"],
                         select_metric=metric, history=state["history"])


def optimizer_impl(method_name: str, train_cfg: dict, fused_ok: bool = True) -> dict:
    """Keyword arguments for a torch optimizer from ``train.optimizer_impl`` (see DEFAULT_TRAIN)."""
    impl = str(train_cfg.get("optimizer_impl", "foreach")).lower()
    if impl not in ("foreach", "fused", "loop"):
        raise ConfigError(f"method {method_name}: unknown train.optimizer_impl {impl!r}", fix="use foreach, fused or loop")
    if impl == "fused" and fused_ok:
        return {"fused": True}
    return {"foreach": impl != "loop"}  # rmsprop has no fused kernel: foreach


class TorchMethod(Method):
    """Base for neural methods. Subclasses implement :meth:`build_model` (and usually
    :meth:`forward`); the default loss is cross-entropy on ``outputs`` (or ``outputs['logits']``).
    The hooks below have defaults that do nothing special; see the module docstring."""

    # -- what a method writes ------------------------------------------------------
    @abstractmethod
    def build_model(self, input_dims: dict[str, int], num_classes: int) -> nn.Module:
        """``input_dims``: modality -> feature dim (per frame for frame-level inputs; raw modalities absent)."""

    def forward(self, model: nn.Module, batch: dict) -> torch.Tensor | dict:
        return model(batch)

    def loss(self, outputs, batch: dict) -> torch.Tensor:
        logits = self.logits(outputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=IGNORE)

    @staticmethod
    def logits(outputs) -> torch.Tensor:
        return outputs["logits"] if isinstance(outputs, dict) else outputs

    # -- hooks ------------------------------------------------------------------------------
    def configure_optimizer(self, model: nn.Module, train_cfg: dict | None = None) -> torch.optim.Optimizer:
        t = train_cfg if train_cfg is not None else self.train_cfg
        params = [p for p in model.parameters() if p.requires_grad]
        name = str(t["optimizer"]).lower()
        impl = optimizer_impl(self.name, t, fused_ok=name != "rmsprop")
        if name == "adam":
            return torch.optim.Adam(params, lr=t["lr"], weight_decay=t["weight_decay"], **impl)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"], **impl)
        if name == "rmsprop":
            return torch.optim.RMSprop(params, lr=t["lr"], weight_decay=t["weight_decay"], **impl)
        if name == "sgd":
            return torch.optim.SGD(params, lr=t["lr"], weight_decay=t["weight_decay"], momentum=0.9, **impl)
        raise ConfigError(f"method {self.name}: unknown optimizer {t['optimizer']!r}", fix="use adam, adamw, rmsprop or sgd")

    def configure_scheduler(self, optimizer, epochs: int, updates_per_epoch: int):
        """A scheduler stepped once per epoch (after the training batches), or None. Per-update
        schedules are stepped in :meth:`on_update` instead."""
        if self.train_cfg.get("scheduler") == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
        return None

    def train_units(self, train: SplitData, units: list) -> list:
        """The units one epoch trains on (default: each unit of ``train`` once). Oversampling
        returns some several times; only the training split is affected."""
        return units

    def on_fit_start(self, trainer: Trainer) -> None:
        """Model, optimizer and scheduler are built; register extra stateful objects here."""

    def on_update(self, trainer: Trainer) -> None:
        """After each optimizer update (``trainer.updates`` counts them)."""

    def on_validation_end(self, trainer: Trainer, metrics: dict) -> float | None:
        """After each validation pass; return a score to select epochs by (higher is better)."""
        return None

    def standardizes(self, modality: str) -> bool:
        """Whether ``modality``'s features are z-normalised with training statistics (when
        ``train.standardize`` is on)."""
        return True

    def raw_inputs(self, split: SplitData, rows: list[int], modality: str) -> dict:
        """Batch entries for a modality read raw (``features: {m: raw}``); the default reads
        text for a fine-tuned encoder: ``{"text": {"input_ids", "attention_mask"}}``."""
        if modality != "t":
            raise ConfigError(f"method {self.name}: no raw reader for modality {modality!r}")
        return {"text": self.raw_text.tokenize(split, rows)}

    def raw_length(self, split: SplitData, row: int, modality: str) -> int:
        """Length of a raw input for bucketing (default for text: its words)."""
        return len((split.utterances[row].text or "").split()) if modality == "t" else 0

    # -- engine side ------------------------------------------------------------------
    # Config overrides the conformance tests apply (e.g. a tiny random encoder); runs never use them.
    conformance_overrides: ClassVar[dict] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_cfg = {**DEFAULT_TRAIN, **(self.config.get("train") or {})}
        unknown = set(self.config.get("train") or {}) - set(DEFAULT_TRAIN) - {"scheduler"} - set(self.extra_train_keys())
        if unknown:
            raise ConfigError(f"method {self.name}: unknown train keys {sorted(unknown)}", fix=f"known: {sorted(DEFAULT_TRAIN)}")
        self.model: nn.Module | None = None
        self.batcher: Batcher | None = None
        requests = self.feature_requests(self.config, self.modalities)
        self.levels = {m: requests[m].level if m in requests else RAW for m in self.modalities}
        self.raw_text = None
        if self.levels.get("t") == RAW:
            from .text_encoder import RawText

            self.raw_text = RawText(self.config, self.name)

    def extra_train_keys(self) -> tuple[str, ...]:
        return ()

    @classmethod
    def accepted_config_keys(cls) -> dict[str, set[str]]:
        return {"train": set(DEFAULT_TRAIN) | {"scheduler"}}

    def make_batcher(self, train: SplitData, modalities: Sequence[str] | None = None,
                     train_cfg: dict | None = None) -> Batcher:
        """Batching for ``modalities`` (default: the method's) with statistics from ``train``."""
        return Batcher(self, train, modalities, train_cfg)

    def input_dims(self, split: SplitData) -> dict[str, int]:
        return self.make_batcher(split).input_dims(split)

    def num_parameters(self, input_dims: dict[str, int] | None = None) -> int | None:
        model = self.model if input_dims is None and self.model is not None else self.build_model(input_dims, self.num_classes)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def fit(self, train: SplitData, valid: SplitData, on_epoch: OnEpoch | None = None) -> FitReport:
        trainer = Trainer(self, train, valid, on_epoch=on_epoch)
        report = trainer.run()
        self.model, self.batcher = trainer.model, trainer.batcher
        return report

    def model_state(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The selected weights (``model.*``; a tensor shared by several names, e.g. tied embeddings,
        is stored once) and the training statistics of the standardisation (``norm.<m>.mean|std``);
        the plain part says how to rebuild the model and batch its inputs."""
        if self.model is None or self.batcher is None or self.batcher.dims is None:
            return None
        tensors: dict[str, Any] = {}
        aliases: dict[str, str] = {}
        seen: dict[tuple, str] = {}
        for name, t in self.model.state_dict().items():
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if t.numel() and key in seen:
                aliases[name] = seen[key]
                continue
            seen[key] = name
            tensors[f"model.{name}"] = t.detach().cpu().clone().contiguous()
        for m, (mean, std) in self.batcher.norm.items():
            tensors[f"norm.{m}.mean"] = torch.from_numpy(np.ascontiguousarray(mean))
            tensors[f"norm.{m}.std"] = torch.from_numpy(np.ascontiguousarray(std))
        info = {"input_dims": dict(self.batcher.dims), "batch_modalities": list(self.batcher.modalities),
                "batch_config": {k: self.batcher.cfg[k] for k in DEFAULT_TRAIN if k in self.batcher.cfg},
                "aliases": aliases}
        return tensors, info

    def load_model_state(self, tensors: dict[str, Any], info: dict[str, Any]) -> None:
        norm = {}
        for name in tensors:
            if name.startswith("norm.") and name.endswith(".mean"):
                m = name[len("norm."):-len(".mean")]
                norm[m] = (tensors[name].numpy(), tensors[f"norm.{m}.std"].numpy())
        cfg = {**self.train_cfg, **(info.get("batch_config") or {})}
        self.batcher = Batcher(self, None, info.get("batch_modalities"), cfg, norm=norm)
        self.batcher.dims = {m: int(d) for m, d in info["input_dims"].items()}
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        state.update({name: state[target] for name, target in (info.get("aliases") or {}).items()})
        model = self.build_model(self.batcher.dims, self.num_classes)
        model.load_state_dict(state, strict=True)
        self.model = model.to(self.device).eval()

    def probabilities(self, split: SplitData) -> tuple[np.ndarray, float | None]:
        """Probabilities of ``split`` from the fitted model, and its loss where it has labels."""
        if self.model is None or self.batcher is None:
            raise RuntimeError(f"method {self.name}: predict() before fit()")
        return evaluate(self, self.model, self.batcher, split, self.train_cfg["eval_batch_size"])

    def predict(self, split: SplitData) -> np.ndarray:
        return self.probabilities(split)[0]
