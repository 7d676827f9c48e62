"""``json``: one JSON object per modality, ``{id: vector}`` or ``{id: [vector, ...]}`` (frames).

``path`` is the file, or a folder holding one such file per split (LipSync graph ERC:
``{train,dev,test}/audio_features.json``); then ``key`` names the file (``audio_features``).
Where one id appears in two files (MELD's ``dia0_utt0`` in train and dev) every key is prefixed
with its file's folder (``dev/dia0_utt0``); the folder is also the key's split.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...atomic import atomic_write_text
from .pack import Pack, PackError


def _files(path: Path, key: str | None) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise PackError(f"{path} does not exist", fix="point path at the JSON file or the folder of per-split files")
    if key:
        name = key if key.endswith(".json") else f"{key}.json"
        files = sorted(path.rglob(name))
        if not files:
            raise PackError(f"{path}: no file named {name} below this folder",
                            fix=f"JSON files here: {', '.join(sorted({p.name for p in path.rglob('*.json')})) or 'none'}")
        return files
    names = sorted({p.name for p in path.rglob("*.json")})
    if len(names) != 1:
        raise PackError(f"{path}: " + (f"several JSON files ({', '.join(names)})" if names else "no JSON file"),
                        fix="set the option key to the file name of the modality, e.g. key: audio_features")
    return sorted(path.rglob(names[0]))


def read(path: Path, key: str | None = None) -> Pack:
    files = _files(path, key)
    root = path if path.is_dir() else path.parent
    loaded = []
    for f in files:
        try:
            obj = json.loads(f.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PackError(f"{f} is not valid JSON: {e}", fix="write the file again") from None
        if not isinstance(obj, dict):
            raise PackError(f"{f}: expected an object {{id: vector}}, found a {type(obj).__name__}",
                            fix="store one object per modality mapping each utterance id to its vector(s)")
        loaded.append((f, f.parent.relative_to(root).as_posix() if f.parent != root else "", obj))
    keys = [k for _, _, obj in loaded for k in obj]
    prefixed = len(set(keys)) < len(keys)
    pack = Pack(source=str(path), format="json")
    for f, folder, obj in loaded:
        for k, v in obj.items():
            k2 = f"{folder}/{k}" if prefixed and folder else str(k)
            pack.add(k2, v, str(f))
            if folder:
                pack.split[k2] = folder.split("/")[0]
    return pack


def write(out: Path, rows, key: str | None = None) -> Path:
    target = out / f"{key or 'features'}.json"
    atomic_write_text(target, json.dumps({r.uid: r.vector.tolist() for r in rows}))
    return target
