"""Plain-YAML method configs with ``include:`` for variants and ``--set key=value`` overrides.

A method folder holds ``config.yaml``; a variant ``variants/<name>.yaml`` starts with
``include: ../config.yaml`` and overrides keys. ``per_dataset: {<dataset>: {...}}`` and
``per_protocol: {<protocol>: {...}}`` blocks apply when that dataset / protocol is run.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Iterable

import yaml

from .errors import ConfigError
from .validate import check_override_type, numbers_as_numbers


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def merge_config(base: dict, over: dict) -> dict:
    """``deep_merge``, except that a modality's feature spec naming another extractor replaces the
    inherited spec whole: one extractor's options mean nothing to another."""
    out = deep_merge(base, over)
    inherited = base.get("features") if isinstance(base.get("features"), dict) else {}
    for m, spec in (over.get("features") or {}).items() if isinstance(over.get("features"), dict) else ():
        old = inherited.get(m)
        if isinstance(spec, dict) and isinstance(old, dict) and spec.get("extractor") != old.get("extractor"):
            out["features"][m] = copy.deepcopy(spec)
    return out


def load_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"config {path}: include cycle through {' -> '.join(map(str, _seen))}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    includes = data.pop("include", None)
    merged: dict = {}
    for inc in [includes] if isinstance(includes, str) else (includes or []):
        merged = merge_config(merged, load_yaml(path.parent / inc, _seen + (path,)))
    return merge_config(merged, data)


def variants(config_dir: Path | None) -> list[str]:
    if not config_dir or not (Path(config_dir) / "variants").is_dir():
        return []
    return sorted(p.stem for p in (Path(config_dir) / "variants").glob("*.yaml"))


def method_config(method_cls, variant: str = "default", dataset: str | None = None,
                  protocol: str | None = None, overrides: Iterable[str] = ()) -> dict:
    """The effective config of a method for a run: file, variant, dataset/protocol blocks, overrides."""
    cdir = Path(method_cls.config_dir) if method_cls.config_dir else None
    if variant in (None, "", "default"):
        cfg = load_yaml(cdir / "config.yaml") if cdir and (cdir / "config.yaml").exists() else {}
    else:
        path = cdir / "variants" / f"{variant}.yaml" if cdir else None
        if not path or not path.exists():
            known = ", ".join(["default", *variants(cdir)])
            raise ConfigError(f"method {method_cls.name} has no variant {variant!r}", fix=f"its variants are: {known}")
        cfg = load_yaml(path)
    per_ds = cfg.pop("per_dataset", {}) or {}
    per_proto = cfg.pop("per_protocol", {}) or {}
    if dataset and dataset in per_ds:
        cfg = merge_config(cfg, per_ds[dataset])
    if protocol and protocol in per_proto:
        cfg = merge_config(cfg, per_proto[protocol])
    accepted = method_cls.accepted_config_keys() if hasattr(method_cls, "accepted_config_keys") else {}
    return apply_overrides(cfg, overrides, accepted)


def apply_overrides(cfg: dict, overrides: Iterable[str], accepted: dict[str, set[str]] | None = None) -> dict:
    """``["train.lr=0.001", "hidden=[256,128]"]``: dotted keys, values parsed as YAML.

    A key must exist in the config (typos fail loudly), or be one of ``accepted[block]``: keys a
    method takes with defaults of its own (e.g. the trainer's ``train.*`` settings)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --set {item!r}", fix="write --set key=value, e.g. --set lr=0.001 or --set model.hidden=256")
        try:
            value = numbers_as_numbers(yaml.safe_load(raw))
        except yaml.YAMLError:
            value = raw
        node = cfg
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.setdefault(p, {}), dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a mapping in the config")
            node = node[p]
        extra = (accepted or {}).get(".".join(parts[:-1]), set())
        if parts[-1] not in node and parts[-1] not in extra:
            known = ", ".join(sorted(set(node) | extra)) or "(none)"
            raise ConfigError(f"--set {item!r}: the config has no key {key.strip()!r}", fix=f"keys at that level: {known}")
        check_override_type(key.strip(), node.get(parts[-1]), value)
        node[parts[-1]] = value
    return cfg


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def _flatten(cfg: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= _flatten(v, key + ".")
        else:
            out[key] = v
    return out


def _short(value: object) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def config_changes(config: dict, base: dict) -> list[str]:
    """``key=value`` for every setting of ``config`` that differs from ``base`` (e.g. a variant's
    defaults), sorted; a key is named by its last part (``epochs=1``) unless that part is ambiguous
    among the changes, then by its dotted path. A key ``base`` has and ``config`` lacks is ``-key``."""
    a, b = _flatten(config), _flatten(base)
    changed = sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))
    leaves = [k.rsplit(".", 1)[-1] for k in changed]
    out = []
    for key, leaf in zip(changed, leaves):
        name = leaf if leaves.count(leaf) == 1 else key
        out.append(f"-{name}" if key not in a else f"{name}={_short(a[key])}")
    return out


_MISSING = object()


def resolve_select_metric(method_cls, config: dict, headline_metric: str) -> dict:
    """The one selection rule: validation selection uses the protocol's headline metric unless the
    method's config names another (``train.select_metric``). Written into the config, so the result
    (and its config hash) says which metric selected."""
    from .trainer import HEADLINE, TorchMethod  # torch only when asked

    if isinstance(method_cls, type) and issubclass(method_cls, TorchMethod):
        train = config.setdefault("train", {})
        if train.get("select_metric", HEADLINE) == HEADLINE:
            train["select_metric"] = headline_metric
    return config
