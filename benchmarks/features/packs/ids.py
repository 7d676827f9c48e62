"""Pack keys -> our utterance ids. Never a guess: a scheme either spells our id or says nothing.

Our ids (the adapters'): MELD ``train/dia0_utt3`` (split ``train`` / ``dev`` / ``test``), IEMOCAP
``Ses01F_impro01_F000``, MOSI / MOSEI ``<video>_<clip>``, synthetic ``d0000_t00`` style.

Schemes (option ``ids``):

- ``identity``: the pack key is our id.
- ``meld``: ``dia{d}_utt{u}`` with the split from the key (``dev/dia0_utt0``) or the pack's folder
  or part (``train``, ``dev`` / ``val`` / ``valid``, ``test``); dialogue-ordered packs: the integer
  dialogue ids of the DialogueRNN / COSMIC family, ``id - min(ids of its split list)`` = MELD's
  ``Dialogue_ID``, turns in our turn order.
- ``iemocap``: ``Ses01F_impro01_F000`` (also as the last part of a path); dialogue-ordered packs:
  the dialogue key is ours (``Ses01F_impro01``), turns in our turn order.
- ``mosi`` / ``mosei``: ``video$_$clip`` (MMSA) or ``video[clip]`` (CMU SDK) -> ``video_clip``.
- a template: ``"{split}/{key}"`` builds our id from the fields ``key``, ``stem`` (the key's last
  path part), ``split`` (train / dev / test), ``dialogue`` and ``position`` (dialogue-ordered packs);
  ``"<pattern> -> <template>"`` first parses the key with ``{name}`` fields, e.g.
  ``"{video}$_${clip} -> {video}_{clip}"``.
- a table: ``{table: ids.csv, key: "dia{Dialogue_ID}_utt{Utterance_ID}", uid: "{Name}"}`` maps pack
  keys to our ids through a CSV's rows (templates over its columns), e.g. the numeric ids of the
  LipSync IEMOCAP CSVs; ``~``, ``$VARS``, ``{data}`` and ``{dataset}`` are expanded in ``table``.
- ``auto`` (default): every built-in scheme is tried; the one matching the most keys is used, and
  two schemes that match as many keys differently are an error (say which with ``ids``).

A dialogue-ordered pack maps a dialogue onto ours only when both have the same number of turns;
the turn order itself can only be checked through the pack's labels (see :mod:`.labels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...corpus import Utterance
from .pack import Pack, PackError, split_name

BUILTIN = ("identity", "meld", "iemocap", "mosi", "mosei")


@dataclass
class IdMap:
    scheme: str
    to_uid: dict[str, str]  # pack key -> our uid
    extra: list[str]  # pack keys that name no utterance of ours
    missing: list[str]  # our uids the pack has no entry for
    notes: list[str] = field(default_factory=list)  # e.g. dialogues whose turn counts differ


# -- keyed packs: key (+ split) -> uid -------------------------------------------------------

_MELD = re.compile(r"^(?:(?P<split>[^/\\]+)[/\\])?dia(?P<d>\d+)_utt(?P<u>\d+)$")
_IEMOCAP = re.compile(r"(?:^|[/\\])(?P<uid>Ses\d\d[MF]_[^/\\]+_[MF]\d{3})$")
_MMSA = re.compile(r"^(?P<v>.+?)\$_\$(?P<c>\d+)$")
_SDK = re.compile(r"^(?P<v>.+)\[(?P<c>\d+)\]$")


def _meld_key(key: str, split: str | None) -> str | None:
    m = _MELD.match(key)
    if not m:
        return None
    s = split_name(m.group("split")) if m.group("split") else split_name(split)
    return f"{s}/dia{int(m.group('d'))}_utt{int(m.group('u'))}" if s else None


def _iemocap_key(key: str, split: str | None) -> str | None:
    m = _IEMOCAP.search(key)
    return m.group("uid") if m else None


def _mosi_key(key: str, split: str | None) -> str | None:
    m = _MMSA.match(key) or _SDK.match(key)
    return f"{m.group('v')}_{int(m.group('c'))}" if m else key


KEY_SCHEMES: dict[str, Callable[[str, str | None], str | None]] = {
    "identity": lambda key, split: key,
    "meld": _meld_key,
    "iemocap": _iemocap_key,
    "mosi": _mosi_key,
    "mosei": _mosi_key,
}


# -- dialogue-ordered packs: dialogue key (+ split) -> our dialogue id ------------------------

def _meld_dialogue(pack: Pack) -> Callable[[Any], str | None]:
    offsets: dict[str, int] = {}
    for d, s in pack.dialogue_split.items():
        if isinstance(d, int) or str(d).isdigit():
            offsets[s] = min(offsets.get(s, int(d)), int(d))

    def to_dialogue(d: Any) -> str | None:
        s = split_name(pack.dialogue_split.get(d))
        raw = pack.dialogue_split.get(d)
        if isinstance(d, int) or str(d).isdigit():
            return f"{s}/dia{int(d) - offsets[raw]}" if s else None
        m = re.match(r"^(?:(?P<split>[^/\\]+)[/\\])?dia(?P<d>\d+)$", str(d))
        if not m:
            return None
        s = split_name(m.group("split")) or s
        return f"{s}/dia{int(m.group('d'))}" if s else None

    return to_dialogue


def _dialogue_scheme(name: str, pack: Pack) -> Callable[[Any], str | None]:
    if name == "meld":
        return _meld_dialogue(pack)
    return lambda d: str(d)  # identity, iemocap, mosi, mosei: the pack's dialogue key is ours


# -- templates ---------------------------------------------------------------------------------

def _template(spec: str) -> Callable[[dict], str | None]:
    pattern, arrow, fmt = spec.partition("->")
    if not arrow:
        pattern, fmt = "", spec
    pattern, fmt = pattern.strip(), fmt.strip()
    regex = None
    if pattern:
        parts = re.split(r"\{(\w+)\}", pattern)
        regex = re.compile("^" + "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)"
                                         for i, p in enumerate(parts)) + "$")

    def build(fields: dict) -> str | None:
        values = dict(fields)
        if regex is not None:
            m = regex.match(str(fields["key"]))
            if not m:
                return None
            values.update(m.groupdict())
        try:
            return fmt.format(**values)
        except (KeyError, IndexError, ValueError) as e:
            raise PackError(f"ids template {spec!r}: cannot fill {e} for pack key {fields['key']!r}",
                            fix="use the fields key, stem, split, dialogue, position or ones the pattern names") from None

    return build


# -- matching ----------------------------------------------------------------------------------

def _by_dialogue(utterances: Sequence[Utterance]) -> dict[str, list[str]]:
    out: dict[str, list[Utterance]] = {}
    for u in utterances:
        out.setdefault(u.dialogue_id, []).append(u)
    return {d: [u.uid for u in sorted(us, key=lambda u: u.turn)] for d, us in out.items()}


def _positional(pack: Pack, to_dialogue: Callable[[Any], str | None], ours: dict[str, list[str]],
                notes: list[str]) -> dict[str, str]:
    turns: dict[Any, list[tuple[int, str]]] = {}
    for key, (d, pos) in pack.dialogue.items():
        turns.setdefault(d, []).append((pos, key))
    out = {}
    for d, items in turns.items():
        dia = to_dialogue(d)
        if dia is None or dia not in ours:
            continue
        if len(items) != len(ours[dia]):
            notes.append(f"dialogue {d!r} -> {dia}: the pack has {len(items)} turns, the corpus {len(ours[dia])}")
            continue
        for (pos, key), uid in zip(sorted(items), ours[dia]):
            out[key] = uid
    return out


TABLE_KEYS = ("table", "key", "uid")


def read_id_table(spec: dict, table_path) -> dict[str, str]:
    """pack key -> our uid from the rows of a CSV, through the templates ``spec['key']`` / ``spec['uid']``."""
    import csv

    if sorted(spec) != sorted(TABLE_KEYS):
        raise PackError(f"ids table {spec!r}: expected the keys {', '.join(TABLE_KEYS)}",
                        fix="e.g. ids: {table: ids.csv, key: 'dia{Dialogue_ID}_utt{Utterance_ID}', uid: '{Name}'}")
    out: dict[str, str] = {}
    try:
        with open(table_path, newline="", encoding="utf-8-sig") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    k, u = spec["key"].format(**row), spec["uid"].format(**row)
                except KeyError as e:
                    raise PackError(f"{table_path}: no column {e} (columns: {', '.join(row)})",
                                    fix="name columns of the table in the key and uid templates") from None
                if out.get(k, u) != u:
                    raise PackError(f"{table_path}, line {line}: pack key {k!r} maps to both {out[k]} and {u}",
                                    fix="each pack key must map to one utterance")
                out[k] = u
    except OSError as e:
        raise PackError(f"ids table {table_path}: {e.strerror}", fix="check the ids option's table path") from None
    return out


def _apply(name, pack: Pack, utterances: Sequence[Utterance], uids: set[str],
           table: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """pack key -> uid under one scheme (only keys that name an utterance of ours), and notes."""
    notes: list[str] = []
    if table is not None:
        mapping = {k: table.get(k) for k in pack.vectors}
    elif name in KEY_SCHEMES or "{" not in name:
        if name not in KEY_SCHEMES:
            raise PackError(f"unknown ids scheme {name!r}",
                            fix=f"use auto, {', '.join(BUILTIN)}, or a template such as '{{split}}/{{key}}'")
        if pack.positional:
            mapping = _positional(pack, _dialogue_scheme(name, pack), _by_dialogue(utterances), notes)
        else:
            f = KEY_SCHEMES[name]
            mapping = {k: f(k, pack.split.get(k)) for k in pack.vectors}
    else:
        build = _template(name)
        mapping = {}
        for k in pack.vectors:
            d, pos = pack.dialogue.get(k, (None, None))
            split = pack.dialogue_split.get(d) if d is not None else pack.split.get(k)
            mapping[k] = build({"key": k, "stem": re.split(r"[/\\]", k)[-1], "split": split_name(split) or split,
                                "dialogue": d, "position": pos})
    mapping = {k: v for k, v in mapping.items() if v is not None and v in uids}
    seen: dict[str, str] = {}
    for k, v in mapping.items():
        if v in seen:
            raise PackError(f"{pack.file_of(k)}: pack keys {seen[v]!r} and {k!r} both map to utterance {v} "
                            f"(ids: {name})", fix="remove one of them, or choose another ids scheme or template")
        seen[v] = k
    return mapping, notes


def map_ids(pack: Pack, utterances: Sequence[Utterance], ids: str = "auto",
            table: dict[str, str] | None = None) -> IdMap:
    """``table``: pack key -> uid read by :func:`read_id_table` (then ``ids`` only names it)."""
    uids = {u.uid for u in utterances}
    if table is not None:
        mapping, notes = _apply(ids, pack, utterances, uids, table)
    elif ids == "auto":
        tried = {}
        for name in BUILTIN:
            try:
                tried[name] = _apply(name, pack, utterances, uids)
            except PackError:
                continue  # a scheme that maps two keys onto one id is not this pack's scheme
        best = max((len(m) for m, _ in tried.values()), default=0)
        winners = [n for n, (m, _) in tried.items() if len(m) == best]
        if best == 0:
            ours = [u.uid for u in utterances[:3]]
            theirs = list(pack.vectors)[:3]
            raise PackError(f"{pack.source}: no pack key matches an utterance id of the corpus under any "
                            f"built-in scheme ({', '.join(BUILTIN)}); pack keys look like {theirs}, ours like {ours}",
                            fix="set the option ids to a template that builds our ids, e.g. ids: '{split}/{key}' or "
                                "'{video}$_${clip} -> {video}_{clip}'")
        distinct = {tuple(sorted(tried[n][0].items())) for n in winners}
        if len(distinct) > 1:
            raise PackError(f"{pack.source}: the id schemes {', '.join(winners)} each match {best} keys, differently",
                            fix=f"say which with the option ids (one of {', '.join(winners)})")
        ids = winners[0]
        mapping, notes = tried[ids]
    else:
        mapping, notes = _apply(ids, pack, utterances, uids)
    matched = set(mapping.values())
    return IdMap(scheme=ids, to_uid=mapping, extra=[k for k in pack.vectors if k not in mapping],
                 missing=[u.uid for u in utterances if u.uid not in matched], notes=notes)
