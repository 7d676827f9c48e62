"""The kept model of a run: one folder per fold that is enough to use the model alone.

``<result stem>.model/fold-<fold>/`` beside the result file holds

- ``weights.safetensors``: the selected weights and the standardisation statistics (never a
  pickle: safetensors holds tensors only, so loading it runs nothing);
- ``model.yaml``: plain data: method, variant, the resolved config, modalities, label names, per
  modality the feature request with the extractor's version, settings and cache key, what the
  method needs to rebuild its model (input sizes, batching), protocol, split manifest hash,
  corpus fingerprint, parameter count, the weights' SHA-256 and where the model came from.

A run writes each fold's model in its run folder when the fold finishes (so a resumed run still
has it), and moves them beside the result just before the result file is written. Only the model
(no optimizer state, no second copy of a fine-tuned encoder) is kept.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from .atomic import atomic_write, atomic_write_text
from .download import sha256_file
from .errors import DamagedFileError, MerbenchError

FORMAT = 1
WEIGHTS = "weights.safetensors"
INFO = "model.yaml"
SUFFIX = ".model"


def fold_dirname(fold: str) -> str:
    return "fold-" + re.sub(r"[^A-Za-z0-9_.=-]+", "_", fold)


def model_folder_of(result_file: Path) -> Path:
    """Where the kept model of ``result_file`` lives: ``<stem>.model`` beside it."""
    return Path(result_file).with_suffix(SUFFIX)


def _plain(x: Any) -> Any:
    """YAML-safe plain data (tuples -> lists, numpy scalars -> numbers)."""
    import json

    return json.loads(json.dumps(x, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def save_fold_model(method, folder: Path, info: dict[str, Any]) -> str | None:
    """Write ``method``'s fitted model into ``folder`` (replaced as a whole); the SHA-256 of its
    weights, or None when the method cannot keep its model (nothing written)."""
    state = method.model_state()
    if state is None:
        return None
    tensors, method_info = state
    import numpy as np
    import torch
    from safetensors.torch import save_file

    tensors = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v).contiguous()
               for k, v in tensors.items()}
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    atomic_write(tmp / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": f"merbench-model-{FORMAT}"}))
    digest = sha256_file(tmp / WEIGHTS)
    meta = {"format": FORMAT, **_plain(info), "state": _plain(method_info),
            "weights": {"file": WEIGHTS, "sha256": digest}}
    atomic_write_text(tmp / INFO, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    replace_folder(tmp, folder)
    return digest


def replace_folder(src: Path, dst: Path) -> None:
    """Put folder ``src`` at ``dst``, replacing what was there; ``dst`` is never half-written."""
    dst = Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        dst.rename(old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def collect_model(target: Path, fold_models: list[tuple[str, Path]]) -> dict[str, str]:
    """Copy each fold's model folder into ``target/fold-<name>/`` (``target`` replaced as a whole);
    fold name -> weights SHA-256."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hashes = {}
    for fold, src in fold_models:
        shutil.copytree(src, tmp / fold_dirname(fold))
        hashes[fold] = read_info(tmp / fold_dirname(fold))["weights"]["sha256"]
    replace_folder(tmp, target)
    return hashes


# -- reading -----------------------------------------------------------------------------------


def read_info(folder: Path) -> dict[str, Any]:
    path = Path(folder) / INFO
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MerbenchError(f"{folder} is not a kept model: it has no {INFO}",
                            fix="give a result file, its <stem>.model folder, or a folder made by `bench export`") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DamagedFileError(path, f"cannot be read as YAML ({type(e).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise DamagedFileError(path, f"not a merbench model description of format {FORMAT}",
                               fix="export the model again with this version of merbench")
    return info


def read_weights(folder: Path, info: dict[str, Any]) -> dict[str, Any]:
    """The tensors of a kept model. Only a safetensors file that matches the recorded SHA-256 is read;
    anything else (a pickle put in its place, a cut-short file) is refused and nothing in it is run."""
    path = Path(folder) / WEIGHTS
    if not path.exists():
        raise MerbenchError(f"kept model {folder} has no {WEIGHTS}", fix="export the model again (bench export)")
    with open(path, "rb") as f:
        head = f.read(8)
    # A safetensors file starts with the little-endian length of its JSON header, then "{".
    size = int.from_bytes(head, "little") if len(head) == 8 else -1
    if size <= 0 or size > path.stat().st_size - 8:
        kind = "a pickle" if head[:1] == b"\x80" or head[:2] == b"PK" else "not safetensors"
        raise DamagedFileError(path, f"is {kind}, not a safetensors weights file; it is refused and nothing in it "
                                     f"was run", fix="use the model folder as `bench run` or `bench export` wrote it")
    digest = sha256_file(path)
    if digest != (info.get("weights") or {}).get("sha256"):
        raise DamagedFileError(path, f"SHA-256 {digest[:12]} differs from the {(info.get('weights') or {}).get('sha256', '')[:12]} "
                                     f"recorded in {INFO}: the weights were replaced or damaged",
                               fix="use the model folder as `bench run` or `bench export` wrote it")
    from .weights import load_weights

    return load_weights(path)


def fold_folders(path: Path) -> list[Path]:
    """The fold model folders of a result file, a ``.model`` folder, or one fold's folder."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        folder = model_folder_of(path)
        if not folder.is_dir():
            raise MerbenchError(f"result {path} has no kept model (no {folder.name} beside it)",
                                fix="the run was made with --no-keep-model or before models were kept; run it "
                                    "again (bench run ... --force) to keep its model")
        path = folder
    if not path.exists():
        raise MerbenchError(f"{path} does not exist", fix="give a result file or a model folder")
    if (path / INFO).exists():
        return [path]
    folds = sorted(p for p in path.glob("fold-*") if (p / INFO).exists())
    if not folds:
        raise MerbenchError(f"{path} holds no kept model (no {INFO} in it or in fold-* folders)",
                            fix="give a result file, its <stem>.model folder, or a folder made by `bench export`")
    return folds
