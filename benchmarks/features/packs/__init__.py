"""Feature packs: features computed elsewhere, read from files (``text-pack``, ``audio-pack``,
``video-pack``), and the suite's own features written in the same formats (``bench features export``).

One module per format (``read(path, key) -> Pack`` and ``write(out, rows, key)``), :mod:`.ids` for
pack keys -> our utterance ids, :mod:`.labels` for the misalignment check against the corpus's
labels, :mod:`.extractor` for the extractors and the report printed before any training.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .pack import Pack, PackError

# format name -> module (imported on use: pandas only for the formats that need it)
FORMATS = {
    "npy-dir": "npy_dir",
    "json": "json_pack",
    "dialogue-pickle": "dialogue_pickle",
    "mmsa": "mmsa",
    "table": "table",
    "dataframe-pickle": "dataframe",
}


def format_module(name: str):
    if name not in FORMATS:
        raise PackError(f"unknown pack format {name!r}", fix=f"use one of: {', '.join(FORMATS)}")
    return importlib.import_module(f"{__name__}.{FORMATS[name]}")


def infer_format(path: Path) -> str:
    """The format a path's shape says, or an error asking for ``format``."""
    name = path.name.lower()
    if path.is_dir():
        if any(path.rglob("*.npy")):
            return "npy-dir"
        if any(path.rglob("*.json")):
            return "json"
    elif name.endswith(".json"):
        return "json"
    elif name.endswith((".csv", ".tsv", ".xlsx", ".xls")):
        return "table"
    elif name in ("aligned_50.pkl", "unaligned_50.pkl", "aligned_39.pkl", "unaligned_39.pkl"):
        return "mmsa"
    raise PackError(f"{path}: cannot tell the pack format from the path",
                    fix=f"set the option format to one of: {', '.join(FORMATS)}")


def read_pack(path: Path, fmt: str | None = None, key: str | None = None) -> Pack:
    if not path.exists():
        raise PackError(f"feature pack {path} does not exist", fix="check the option path (~, $VARS, {data} and "
                                                                     "{dataset} are expanded)")
    fmt = fmt or infer_format(path)
    return format_module(fmt).read(path, key)


__all__ = ["FORMATS", "Pack", "PackError", "format_module", "infer_format", "read_pack"]
