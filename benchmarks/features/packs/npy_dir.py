"""``npy-dir``: one ``.npy`` per utterance, ``(D,)`` pooled or ``(T, D)`` frames, found recursively.

Flat (``<dir>/<id>.npy``) or nested by session or split (MIUST: ``bert_iemocap/Session1/<id>.npy``;
MELD per split). The key is the file stem; where two files share a stem (``train/dia0_utt0.npy`` and
``dev/dia0_utt0.npy``) every key is its path below the folder (``train/dia0_utt0``). The option
``key`` names a subfolder (a feature name in MERBench-style ``<dir>/<feature>/<id>.npy`` folders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...atomic import atomic_write
from ...safe_pickle import safe_load_npy
from .pack import Pack, PackError


def _root(path: Path, key: str | None) -> Path:
    root = path / key if key else path
    if not root.is_dir():
        subs = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
        raise PackError(f"{root} is not a folder" + (f" (subfolders of {path}: {', '.join(subs[:10])})" if subs else ""),
                        fix="point path at the folder of .npy files, and key at a subfolder of it if any")
    return root


def read(path: Path, key: str | None = None) -> Pack:
    root = _root(path, key)
    files = sorted(root.rglob("*.npy"))
    if not files:
        raise PackError(f"{root}: no .npy files below this folder", fix="point path at the folder of .npy files")
    rel = [f.relative_to(root).with_suffix("") for f in files]
    stems = [r.name for r in rel]
    by_path = len(set(stems)) < len(stems)  # a stem in two folders: keys are paths
    pack = Pack(source=str(root), format="npy-dir")
    for f, r in zip(files, rel):
        k = r.as_posix() if by_path else r.name
        pack.add(k, safe_load_npy(f), str(f))
        if len(r.parts) > 1:
            pack.split[k] = r.parts[0]
    return pack


def write(out: Path, rows, key: str | None = None) -> Path:
    """One ``<uid>.npy`` per row in ``out/<key>/`` (a uid with ``/`` makes subfolders, e.g. MELD's
    ``train/...``). Returns ``out``: read it back with ``path: out, key: <key>``."""
    root = out / key if key else out
    for r in rows:
        target = root / f"{r.uid}.npy"
        if root.resolve() not in target.resolve().parents:
            raise PackError(f"utterance id {r.uid!r} does not name a file below {root}",
                            fix="export to json or table instead")
        atomic_write(target, lambda p, v=r.vector: _save(p, v))
    return out


def _save(path: Path, vector: np.ndarray) -> None:
    with open(path, "wb") as fh:  # np.save on a path would append .npy to the temporary name
        np.save(fh, np.asarray(vector, dtype=np.float32), allow_pickle=False)
