"""``dialogue-pickle``: the DialogueRNN / DialogueGCN / COSMIC / MMGCN family.

A tuple (or a dict of named items) of per-dialogue mappings ``{dialogue: [one value per turn]}``
(utterance ids, speakers, labels, sentences, text / audio / visual vectors) and lists of the
train / test / valid dialogue ids (in that order in tuples, as the family writes them). Items are
told apart by what they hold: vectors per turn are features (``key``: the item's position or name
picks one when there are several), the first item of one number per turn is the labels, strings
without spaces unique over the pack are utterance ids, one-hot rows are speakers, the rest
(sentences, speaker letters) is not read. Without an item of utterance ids, keys are
``<dialogue>#<turn position>`` and :mod:`.ids` maps dialogues (checked by the labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...safe_pickle import safe_load
from .pack import Pack, PackError, as_array, write_pickle

SPLIT_ORDER = ("train", "test", "dev")  # unnamed id lists of the family: trainVid, testVid, validVid


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _kind(values: list, name: str) -> str:
    """What one item holds per turn: ids, strings, labels, speakers, vectors or other. Only a named
    item (dict packs: ``videoLabels``) can hold labels spelled as strings."""
    flat = [v for turns in values for v in turns]
    if not flat:
        return "other"
    if "speaker" in name.lower():
        return "speakers"
    if "label" in name.lower() and all(isinstance(v, str) or _is_number(v) for v in flat):
        return "labels"
    if all(isinstance(v, str) for v in flat):
        unique = len(set(flat)) == len(flat)
        return "ids" if unique and not any(any(c.isspace() for c in v) for v in flat) else "strings"
    if all(_is_number(v) or (isinstance(v, np.ndarray) and v.ndim == 0) for v in flat):
        return "labels"
    try:
        arrays = [np.asarray(v, dtype=np.float32) for v in flat[:200]]
    except (TypeError, ValueError):
        return "other"
    if not all(a.ndim in (1, 2) for a in arrays):
        return "other"
    if all(a.ndim == 1 and set(np.unique(a)) <= {0.0, 1.0} and a.sum() == 1 for a in arrays):
        return "speakers"
    return "vectors"


def _split_of_name(name: str) -> str | None:
    low = name.lower()
    for word, split in (("train", "train"), ("test", "test"), ("val", "dev"), ("dev", "dev")):
        if word in low:
            return split
    return None


def read(path: Path, key: str | int | None = None) -> Pack:
    obj = safe_load(path)
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:
        raise PackError(f"{path}: expected a tuple or dict of per-dialogue items, found a {type(obj).__name__}",
                        fix="use the DialogueRNN / COSMIC layout, or another format")
    per_dialogue = [(n, v) for n, v in items if isinstance(v, dict) and v]
    if not per_dialogue:
        raise PackError(f"{path}: no per-dialogue mapping {{dialogue: [...per turn]}} in the pack",
                        fix="use the DialogueRNN / COSMIC layout, or another format")
    dialogues = list(per_dialogue[0][1])
    kinds = {}
    for n, v in per_dialogue:
        if set(v) != set(dialogues):
            continue
        kinds[n] = (_kind([list(v[d]) for d in dialogues], n if isinstance(obj, dict) else ""), v)
    split_lists = [(n, v) for n, v in items
                   if isinstance(v, (list, tuple, set, np.ndarray)) and len(v) and not isinstance(v, dict)
                   and all(not isinstance(x, (list, tuple, np.ndarray)) and x in kinds[per_dialogue[0][0]][1]
                           for x in v)]
    features = [n for n, (k, _) in kinds.items() if k == "vectors"]
    if key is not None:
        name = str(key)
        if name not in kinds:
            raise PackError(f"{path}: no per-dialogue item {name!r}; its items: "
                            + ", ".join(f"{n} ({k})" for n, (k, _) in kinds.items()),
                            fix="set key to the position or name of a feature item")
        if kinds[name][0] != "vectors":
            raise PackError(f"{path}: item {name} holds {kinds[name][0]}, not feature vectors "
                            "(packs of this family often carry sentences only)",
                            fix="features items here: " + (", ".join(features) or "none"))
    elif len(features) == 1:
        name = features[0]
    else:
        raise PackError(f"{path}: " + (f"several feature items ({', '.join(features)})" if features
                                       else "no item holds feature vectors (sentences, labels and speakers only?)"),
                        fix="set key to the position or name of the modality's item" if features
                        else "use a pack with features, or extract them here")
    pack = Pack(source=str(path), format="dialogue-pickle")
    for i, (n, ids) in enumerate(split_lists):
        split = _split_of_name(n) if isinstance(obj, dict) else (SPLIT_ORDER[i] if i < len(SPLIT_ORDER) else None)
        for d in ids:
            pack.dialogue_split[d] = split
    uid_items = [v for k, v in kinds.values() if k == "ids"]
    label_items = [v for k, v in kinds.values() if k == "labels"]
    feats = kinds[name][1]
    for d in dialogues:
        turns = feats[d]
        for pos in range(len(turns)):
            if uid_items:
                k = str(uid_items[0][d][pos])
                if d in pack.dialogue_split:
                    pack.split[k] = pack.dialogue_split[d]
            else:
                k = f"{d}#{pos}"
                pack.dialogue[k] = (d, pos)
            pack.add(k, as_array(turns[pos], f"{path}: item {name}, dialogue {d!r}, turn {pos}"))
            if label_items:
                lab = label_items[0][d][pos]
                pack.labels[k] = lab.item() if isinstance(lab, np.generic) else lab
    return pack


def write(out: Path, rows, key: str | None = None) -> Path:
    """A dict pack: ``videoIDs``, ``videoSpeakers``, ``videoLabels``, ``<key>`` per dialogue, and
    ``trainVid`` / ``validVid`` / ``testVid`` (a dialogue goes where its first utterance is)."""
    name = key or "features"
    ids: dict[str, list] = {}
    obj: dict[str, Any] = {"videoIDs": ids, "videoSpeakers": {}, "videoLabels": {}, name: {}}
    for r in rows:
        ids.setdefault(r.dialogue_id, []).append(r.uid)
        obj["videoSpeakers"].setdefault(r.dialogue_id, []).append(r.speaker)
        obj["videoLabels"].setdefault(r.dialogue_id, []).append(r.label)
        obj[name].setdefault(r.dialogue_id, []).append(r.vector)
    first_split = {}
    for r in rows:
        first_split.setdefault(r.dialogue_id, r.split)
    for split, list_name in (("train", "trainVid"), ("valid", "validVid"), ("test", "testVid")):
        obj[list_name] = [d for d, s in first_split.items() if s == split]
    return write_pickle(out / f"{name}.pkl", obj)
