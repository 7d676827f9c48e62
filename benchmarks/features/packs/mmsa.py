"""``mmsa``: MMSA's ``aligned_50.pkl`` / ``unaligned_50.pkl`` (CMU-MOSI / MOSEI / SIMS).

``{train, valid, test}`` dicts of arrays over utterances: ``id`` (``video$_$clip``), ``text``
(N, T, 768 BERT or 300 GloVe), ``audio``, ``vision`` (N, T, D, zero-padded), ``audio_lengths`` /
``vision_lengths``, ``text_bert`` (token ids, mask, segments: not features), ``regression_labels``
(sentiment in [-3, 3]) or ``classification_labels``. ``key`` picks the field (default: the only
feature field; ``video`` and ``visual`` mean ``vision``). Frames are cut to their lengths: the
field's ``<key>_lengths``, for ``text`` the token mask of ``text_bert``, else all T.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...safe_pickle import safe_load
from .pack import Pack, PackError, write_pickle

FEATURES = ("text", "audio", "vision")
ALIASES = {"video": "vision", "visual": "vision", "acoustic": "audio"}
NOT_FEATURES = {"text_bert": "BERT input ids, mask and segment ids, not vectors; use key: text"}


def _lengths(part: dict, key: str, n: int, t: int) -> np.ndarray:
    if f"{key}_lengths" in part:
        return np.asarray(part[f"{key}_lengths"]).astype(int).reshape(-1)
    if key == "text" and "text_bert" in part:
        return np.asarray(part["text_bert"])[:, 1, :].sum(1).astype(int)
    return np.full(n, t, dtype=int)


def read(path: Path, key: str | None = None) -> Pack:
    obj = safe_load(path)
    # MMSA's train / valid / test, and any other part of the same shape (an export's "unassigned")
    parts = {s: p for s, p in obj.items() if isinstance(p, dict) and "id" in p} if isinstance(obj, dict) else {}
    if not parts:
        raise PackError(f"{path}: expected MMSA's dict of train / valid / test parts"
                        + (f", found keys {list(obj)[:8]}" if isinstance(obj, dict) else f", found a {type(obj).__name__}"),
                        fix="use MMSA's aligned_50.pkl / unaligned_50.pkl, or another format")
    fields = [f for f in FEATURES if all(f in p for p in parts.values())]
    if key is None:
        if len(fields) != 1:
            raise PackError(f"{path}: several feature fields ({', '.join(fields)})" if fields else f"{path}: no feature field",
                            fix="set key to text, audio or vision")
        key = fields[0]
    key = ALIASES.get(str(key), str(key))
    if key in NOT_FEATURES:
        raise PackError(f"{path}: field {key} holds {NOT_FEATURES[key]}", fix="set key to text, audio or vision")
    pack = Pack(source=str(path), format="mmsa")
    for split, part in parts.items():
        if key not in part or "id" not in part:
            raise PackError(f"{path}[{split}]: no field {key!r} or 'id' (fields: {', '.join(part)})",
                            fix="set key to one of its fields: " + ", ".join(f for f in part if f in FEATURES))
        values = np.asarray(part[key], dtype=np.float32)
        ids = [str(i) for i in np.asarray(part["id"]).reshape(-1)]
        if len(values) != len(ids):
            raise PackError(f"{path}[{split}]: {len(ids)} ids but {len(values)} rows of {key}",
                            fix="the pack is damaged; download it again")
        lengths = _lengths(part, key, len(ids), values.shape[1]) if values.ndim == 3 else None
        labels = part.get("regression_labels", part.get("classification_labels"))
        for i, k in enumerate(ids):
            vec = values[i] if lengths is None else values[i, :max(int(lengths[i]), 0)]
            pack.add(k, vec, f"{path}[{split}]")
            pack.files.pop(k, None)
            pack.split[k] = split
            if labels is not None:
                lab = np.asarray(labels[i]).reshape(-1)
                pack.labels[k] = lab[0].item() if lab.size == 1 else lab
    return pack


def write(out: Path, rows, key: str | None = None) -> Path:
    """Frames zero-padded to the longest with ``<key>_lengths``; pooled as (N, D); utterances in no
    split of the protocol's first fold go to a part ``unassigned``. Labels: the
    corpus's label names (``classification_labels``), its sentiment scores where it has them."""
    name = ALIASES.get(key or "audio", key or "audio")
    obj = {}
    for split in ("train", "valid", "test", "unassigned"):  # unassigned: in no split of the protocol's first fold
        part = [r for r in rows if (r.split or "unassigned") == split]
        if not part:
            continue
        if part[0].vector.ndim == 2:
            t = max(len(r.vector) for r in part)
            values = np.zeros((len(part), t, part[0].vector.shape[1]), dtype=np.float32)
            for i, r in enumerate(part):
                values[i, :len(r.vector)] = r.vector
            lengths = {f"{name}_lengths": [len(r.vector) for r in part]}
        else:
            values, lengths = np.stack([r.vector for r in part]).astype(np.float32), {}
        obj[split] = {"id": np.array([r.uid for r in part]), name: values, **lengths,
                      "classification_labels": np.array([r.label for r in part])}
    return write_pickle(out / f"{name}.pkl", obj)
