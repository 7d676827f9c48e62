"""What every pack reader returns: vectors by pack key, with what the pack says about each key.

A reader does not know our utterance ids; :mod:`.ids` maps pack keys onto them. Keys are the
pack's own: a file stem, a JSON key, an id column's value, or, for dialogue-ordered packs
without utterance ids, ``<dialogue>#<position>`` (then ``dialogue`` names the pair).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MerbenchError


class PackError(MerbenchError):
    """A feature pack that cannot be read, or does not fit the corpus."""


@dataclass
class Pack:
    source: str  # the file or folder read, for messages
    format: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (D,) or (T, D), pack order
    labels: dict[str, Any] = field(default_factory=dict)  # key -> the pack's label, as it spells it
    files: dict[str, str] = field(default_factory=dict)  # key -> the file holding it, where not `source`
    split: dict[str, str] = field(default_factory=dict)  # key -> split as the pack names it (folder, part)
    dialogue: dict[str, tuple[Any, int]] = field(default_factory=dict)  # key -> (dialogue key, position)
    # Dialogue-ordered packs: dialogue key -> split name, from the pack's own train / valid / test lists.
    dialogue_split: dict[Any, str] = field(default_factory=dict)

    @property
    def positional(self) -> bool:
        """True when keys are positions in dialogues, not utterance ids."""
        return bool(self.dialogue)

    def file_of(self, key: str) -> str:
        return self.files.get(key, self.source)

    def add(self, key: str, vector: Any, where: str | None = None) -> None:
        if key in self.vectors:
            raise PackError(f"{where or self.source}: key {key!r} appears twice in the pack"
                            + (f" (also in {self.file_of(key)})" if key in self.files else ""),
                            fix="remove the duplicate, or point `path` at one copy")
        self.vectors[key] = as_array(vector, f"{where or self.source}: entry {key!r}")
        if where and where != self.source:
            self.files[key] = where


def as_array(value: Any, where: str) -> np.ndarray:
    """A numeric vector (D,) or sequence (T, D) as float32; anything else is an error naming ``where``."""
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise PackError(f"{where} is not a numeric vector or sequence of vectors ({type(value).__name__}: {e})",
                        fix="each entry must be a list of numbers (D) or a list of such lists (T x D)") from None
    if arr.ndim not in (1, 2):
        raise PackError(f"{where} has shape {arr.shape}; expected (D,) or (T, D)",
                        fix="store one pooled vector or one (frames x dims) array per utterance")
    return arr


SPLIT_NAMES = {"train": "train", "training": "train", "dev": "dev", "val": "dev", "valid": "dev",
               "validation": "dev", "test": "test", "testing": "test"}


def split_name(name: str | None) -> str | None:
    """A folder or list name -> train / dev / test, when it says which (``train_splits`` -> train)."""
    if not name:
        return None
    low = str(name).lower()
    if low in SPLIT_NAMES:
        return SPLIT_NAMES[low]
    hits = {v for k, v in SPLIT_NAMES.items() if k in low.replace("-", "_").split("_")}
    return hits.pop() if len(hits) == 1 else None


def write_pickle(target: Path, obj: Any) -> Path:
    """Atomically pickle a pack of arrays and plain containers (what the restricted unpickler reads)."""
    import pickle

    from ...atomic import atomic_write

    def dump(p: Path) -> None:
        with open(p, "wb") as fh:
            pickle.dump(obj, fh, protocol=4)

    return atomic_write(target, dump)


# -- fingerprints: an edited pack must re-extract ------------------------------------------

_WHOLE = 64 << 20  # files up to this size are hashed whole; larger ones by samples and size
_SAMPLE = 4 << 20


def _file_digest(path: Path, h) -> None:
    size = path.stat().st_size
    h.update(f"{size}|".encode())
    with open(path, "rb") as fh:
        if size <= _WHOLE:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:  # first, middle and last 4 MiB: fast, and any usual edit (append, rewrite) shows
            for offset in (0, size // 2, size - _SAMPLE):
                fh.seek(offset)
                h.update(fh.read(_SAMPLE))


def fingerprint(path: Path) -> str:
    """Size and a hash of a file's content, or of every file under a folder (names included)."""
    h = hashlib.blake2b(digest_size=10)
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                h.update(str(p.relative_to(path)).encode() + b"\0")
                _file_digest(p, h)
    else:
        _file_digest(path, h)
    return h.hexdigest()
