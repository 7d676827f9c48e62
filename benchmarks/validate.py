"""Run arguments and config values checked before any corpus or feature work.

A value that would give an untrained, silently wrong or crashing run (``epochs: 0``, ``lr: .nan``,
``batch_size: 0``, ``dropout: 2``, an unknown selection metric, a word where a number belongs) is
refused with one message naming the key and a fix, so that nothing reaches the leaderboard from it.
Keys are recognised by name wherever they sit in the config (``train.lr``, ``stages.fusion.lr``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Iterator, Sequence

from .errors import ConfigError
from .metrics import METRICS

# Validation scores the trainer can select checkpoints on (fields of merbench.results.Metrics).
# what train.select_metric may name; "headline": the protocol's headline metric (the default)
SELECT_METRICS = ("headline", *METRICS)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return _is_number(v) and float(v).is_integer()


def check_device(device: str) -> None:
    """``--device`` of a command that runs a model: cpu, or cuda when torch sees a CUDA device."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} asked for, but torch sees no CUDA device", fix="use --device cpu")
    elif device != "cpu":
        raise ConfigError(f"unknown device {device!r}", fix="use cpu or cuda")


def check_run_args(epochs: int | None, seeds: Sequence[int] | None) -> None:
    """``--epochs`` and the seeds of a run (``--seed S`` / ``--seeds N`` already expanded)."""
    if epochs is not None and (not _is_int(epochs) or epochs < 1):
        raise ConfigError(f"--epochs {epochs}: a run needs at least one epoch", fix="use --epochs 1 or more")
    if seeds is not None:
        if len(seeds) == 0:
            raise ConfigError("--seeds 0: no seed to run", fix="use --seeds 1 or more (seeds 0..N-1), or --seed S")
        bad = [s for s in seeds if not _is_int(s) or s < 0]
        if bad:
            raise ConfigError(f"--seed {bad[0]}: seeds are whole numbers >= 0", fix="use e.g. --seed 0")


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted key, last key, value) of every leaf and list of ``node``."""
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                yield from _walk(v, key)
            else:
                yield key, str(k), v


def _values(v: Any) -> Iterable[Any]:
    return v if isinstance(v, (list, tuple)) else [v]


def check_config(config: dict) -> None:
    """Refuse values by key name: counts, learning rates, dropout, selection metric."""
    for key, name, value in _walk(config):
        example = f"--set {key}="
        if name == "epochs" or name == "patience":
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{key} = {value!r}: must be a whole number >= 1", fix=f"e.g. {example}10")
        elif name == "batch_size" or name.endswith("_batch_size"):
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{key} = {value!r}: must be a whole number >= 1", fix=f"e.g. {example}32")
        elif name == "lr" or name.endswith("_lr"):
            if any(not _is_number(x) or not math.isfinite(x) or x <= 0 for x in _values(value)):
                raise ConfigError(f"{key} = {value!r}: a learning rate must be a finite number > 0",
                                  fix=f"e.g. {example}0.001")
        elif name == "dropout" or name.endswith("_dropout"):
            if any(not _is_number(x) or not (0 <= x < 1) for x in _values(value)):
                raise ConfigError(f"{key} = {value!r}: dropout must be a number in [0, 1)", fix=f"e.g. {example}0.1")
        elif name in ("weight_decay", "grad_clip"):
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{key} = {value!r}: must be a finite number >= 0", fix=f"e.g. {example}0")
        elif name == "max_frames":
            if not _is_int(value) or value < 0:
                raise ConfigError(f"{key} = {value!r}: must be a whole number >= 0 (0: no cap)", fix=f"e.g. {example}0")
        elif name == "select_metric":
            if value not in SELECT_METRICS:
                raise ConfigError(f"{key} = {value!r}: not a selection metric",
                                  fix=f"use one of {', '.join(SELECT_METRICS)}, e.g. {example}weighted_f1")


def check_override_type(key: str, old: Any, new: Any) -> None:
    """An override keeps the kind of value the config had: a number stays a number, a flag a flag,
    a list of numbers a list of numbers (``model.hidden=abc`` is refused, ``model.hidden=[512]`` is not)."""
    if old is None or new is None:
        return
    if isinstance(old, bool):
        ok, kind, example = isinstance(new, bool), "true or false", "true"
    elif _is_number(old):  # a list of numbers too: e.g. hidden: 256 -> [512, 256]
        ok = _is_number(new) or (isinstance(new, list) and bool(new) and all(_is_number(x) for x in new))
        kind, example = "a number", str(old)
    elif isinstance(old, list) and old and all(_is_number(x) for x in old):
        ok = (isinstance(new, list) and all(_is_number(x) for x in new)) or _is_number(new)
        kind, example = "a number or a list of numbers", str(old).replace(" ", "")
    else:
        return
    if not ok:
        raise ConfigError(f"--set {key}={new!r}: {key} must be {kind}", fix=f"e.g. --set {key}={example}")


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def numbers_as_numbers(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; an override means the number."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [numbers_as_numbers(v) for v in value]
    return value
