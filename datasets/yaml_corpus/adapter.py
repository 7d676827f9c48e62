"""The adapter of a YAML-described corpus: reads the annotation table a :class:`Descriptor`
names, checks it row by row and builds the :class:`Corpus` (format: ``descriptor.py``)."""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from merbench.corpus import Corpus, Utterance, dialogues_across_splits, named_rows, repeated_turns
from merbench.errors import ConfigError, CorpusNotFoundError
from merbench.interfaces import DatasetAdapter, DatasetMetadata
from merbench.protocols import SPLITS, Protocol

from .descriptor import FORMATS, Descriptor, TableSpec, _close, _error, parse_descriptor

log = logging.getLogger(__name__)


# -- reading the table -------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # JSON 3.0 -> "3", as a CSV would hold it
    return str(value).strip()


def read_table(path: Path, fmt: str, delimiter: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line number, row)]) of one annotation table."""
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            if fmt == "jsonl":
                header: list[str] = []
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError as e:
                        raise ConfigError(f"{path}, line {n}: not valid JSON ({e})",
                                          fix="each line must hold one JSON object") from None
                    if not isinstance(obj, dict):
                        raise ConfigError(f"{path}, line {n}: a JSON {type(obj).__name__}, not an object",
                                          fix="each line must hold one JSON object")
                    header += [k for k in obj if k not in header]
                    rows.append((n, {k: _cell(v) for k, v in obj.items()}))
            else:
                delim = delimiter or ("\t" if fmt == "tsv" else ",")
                reader = csv.DictReader(fh, delimiter=delim)
                header = [h for h in (reader.fieldnames or [])]
                for row in named_rows(reader, path):
                    rows.append((reader.line_num, {k: _cell(v) for k, v in row.items() if k is not None}))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e})", fix="save the annotation file as UTF-8") from None
    return header, rows


@dataclass
class Source:
    """Rows from one annotation table or from the media file names, each with where it came from."""

    path: Path  # the table, or the folder the files were found in
    field: str  # the descriptor field that names it
    header: list[str]
    rows: list[tuple[str, dict[str, str]]]  # ("line 7 of /x/train.csv" | "file /x/a.wav", row)


def _table_paths(d: Descriptor, spec: TableSpec) -> list[Path]:
    base = d.path.parent
    if spec.is_glob:
        paths = sorted(p for p in base.glob(spec.pattern) if p.is_file())
        if not paths:
            raise _error(d.path, spec.field, f"no annotation file matches {spec.pattern!r} under {base}",
                         fix="check the pattern (it is relative to the descriptor's folder)", cls=CorpusNotFoundError)
        return paths
    path = (base / spec.pattern).resolve()
    if not path.is_file():
        raise _error(d.path, spec.field, f"the annotation file {path} does not exist",
                     fix="check the path (it is relative to the descriptor's folder)", cls=CorpusNotFoundError)
    return [path]


def read_sources(d: Descriptor, root: Path) -> list[Source]:
    """Every table of ``annotations`` (fixed values added as columns), or the rows made from the
    media file names under ``root``."""
    if d.files:
        return [_file_rows(d, root)]
    out = []
    for spec in d.tables:
        for path in _table_paths(d, spec):
            fmt = spec.format or FORMATS.get(path.suffix.lower())
            if fmt is None:
                raise _error(d.path, spec.field, f"cannot tell the format of {path} from its suffix",
                             fix="name the tables .csv, .tsv or .jsonl, or add format: csv|tsv|jsonl")
            header, rows = read_table(path, fmt, d.delimiter)
            names = {"stem": path.stem, "name": path.name, "parent": path.parent.name}
            fixed = {col: value.value(names) for col, value in spec.fixed}
            for col in fixed:
                if col in header:
                    raise _error(d.path, f"{spec.field}.{col}", f"{path} has a column {col!r} already",
                                 fix="rename the fixed value, or leave it out and use the column")
            where = f"of {path}"
            out.append(Source(path, spec.field, header + list(fixed),
                              [(f"line {n} {where}", {**row, **fixed}) for n, row in rows]))
    return out


def _file_rows(d: Descriptor, root: Path) -> Source:
    f = d.files
    by_path = "/" in f.pattern.pattern
    rows = []
    for p in sorted(root.glob(f.glob)):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        m = f.pattern.fullmatch(rel if by_path else p.name)
        if m is None:
            if f.unmatched == "skip":
                continue
            raise _error(d.path, "files.pattern", f"file {p} does not match {f.pattern.pattern!r}"
                         + (" (matched against its path under media_root)" if by_path else " (matched against its name)"),
                         fix="fix the pattern, narrow files.glob, or set files.unmatched: skip to leave such files out")
        row = {k: v or "" for k, v in m.groupdict().items()}
        row |= {"path": rel, "dir": p.parent.relative_to(root).as_posix(), "name": p.name, "stem": p.stem}
        rows.append((f"file {p}", row))
    if not rows:
        raise _error(d.path, "files.glob", f"no file under {root} matches {f.glob!r}"
                     + (f" and {f.pattern.pattern!r}" if f.unmatched == "skip" else ""),
                     fix="check media_root (or --root) and the glob", cls=CorpusNotFoundError)
    return Source(root, "files", list(f.columns), rows)


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies under ``root`` as written (``..`` and absolute paths count; a symlinked
    media folder inside the root is the corpus owner's choice and stays allowed)."""
    import os

    p, r = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


class YamlCorpus(DatasetAdapter):
    """Base of the adapters made from descriptors; use :func:`yaml_corpus_class` (one subclass per file).

    ``root`` (``--root``) replaces the descriptor's ``media_root``.
    """

    descriptor: ClassVar[Descriptor]
    name = "yaml-corpus"
    default_protocol = ""
    metadata = DatasetMetadata(title="corpus described by a YAML file")

    @classmethod
    def from_descriptor(cls, path: str | Path) -> type["YamlCorpus"]:
        return yaml_corpus_class(path)

    @classmethod
    def _descriptor(cls) -> Descriptor:
        d = cls.__dict__.get("descriptor")
        if d is None:
            raise ConfigError("YamlCorpus is a base class", fix="make an adapter class with yaml_corpus_class(path)")
        return d

    def default_root(self) -> Path:
        return self._descriptor().media_root

    @classmethod
    def protocols(cls) -> list[Protocol]:
        return [cls._descriptor().protocol()]

    def _media_path(self, rel: str) -> Path:
        """Where a media path of the table points (relative paths are under the media root)."""
        return self.root / rel

    def load(self) -> Corpus:
        d = self._descriptor()
        sources = read_sources(d, self.root)
        c = d.columns
        group_col = d.rule["column"] if d.rule and d.rule["rule"] == "leave_one_group_out" else None
        keep = [col for col in (d.split_column, group_col, *d.meta_columns) if col]
        plain = {"split_column": d.split_column, "protocol.column": group_col}
        plain |= {f"meta_columns[{i}]": col for i, col in enumerate(d.meta_columns)}
        for src in sources:
            def absent(col: str) -> str:
                return f"column {col!r} is not in {src.path}" + _close(col, src.header)

            fix = f"its columns are: {', '.join(src.header) or '(none: the file is empty)'}"
            for spec in c.values():
                for col in spec.columns:
                    if col not in src.header:
                        named = f"{spec.describe()} names a column that is missing: " if spec.template else ""
                        raise _error(d.path, spec.field, named + absent(col), fix=fix)
            for field_name, col in plain.items():
                if col and col not in src.header:
                    raise _error(d.path, field_name, absent(col), fix=fix)
            if not src.rows:
                raise _error(d.path, src.field, f"{src.path} has no rows", cls=CorpusNotFoundError)
        known = set(d.labels) | set(d.label_map) | set(d.ignore_labels)
        folded = {k.lower(): k for k in known} if d.case_insensitive_labels else {}
        seen: dict[str, str] = {}
        turns: dict[str, int] = {}
        utts: list[Utterance] = []
        found = {"audio": 0, "video": 0}
        missing: dict[str, list[str]] = {"audio": [], "video": []}
        members = 0
        for where, row in (r for src in sources for r in src.rows):
            def value(key: str) -> str:
                if key not in c:
                    return ""
                try:
                    return c[key].value(row)
                except ValueError as e:
                    raise _error(d.path, c[key].field, f"{where}: {e}") from None

            uid = value("uid")
            if not uid:
                raise _error(d.path, c["uid"].field, f"{where}: the id ({c['uid'].describe()}) is empty")
            if uid in seen:
                made = f" (made by {c['uid'].describe()})" if c["uid"].template else ""
                raise _error(d.path, c["uid"].field, f"duplicate id {uid!r}{made}: {seen[uid]} and {where}",
                             fix="ids must be unique in the corpus: point columns.uid at a unique column, add "
                                 "columns to its template (e.g. \"{session}_{dialogue}_{turn}\"), or fix the file")
            seen[uid] = where
            dialogue = value("dialogue_id") or uid
            if "turn" in c:
                raw_turn = value("turn")
                try:
                    turn = int(raw_turn)
                except ValueError:
                    raise _error(d.path, c["turn"].field, f"{where}: turn {raw_turn!r} is not an integer") from None
            else:
                turn = turns.get(dialogue, 0)  # row order within the dialogue
            turns[dialogue] = turn + 1
            label = value("label")
            label = folded.get(label.lower(), label) if folded else label
            if label not in known:
                what = f"label {label!r}" if label else f"the label ({c['label'].describe()}) is empty"
                raise _error(d.path, "labels", f"{where}: {what} is not in labels, label_map or ignore_labels"
                             + _close(label, d.labels),
                             fix=f"add it to labels, map it with label_map: {{{label or chr(39) * 2}: <label>}}, "
                                 f"or list it under ignore_labels to leave its rows out"
                                 + ("" if folded else " (case_insensitive_labels: true ignores case)"))
            member = label not in d.ignore_labels
            members += member
            meta = {col: row.get(col, "") for col in keep}
            if member and d.split_column and meta[d.split_column] not in d.split_values:
                value_ = meta[d.split_column]
                raise _error(d.path, "split_values", f"{where}: split value {value_!r} (column {d.split_column!r}) is "
                             f"not one of {', '.join(sorted(d.split_values))}" + _close(value_, d.split_values),
                             fix="map the file's values onto train / valid / test, e.g. "
                                 "split_values: {train: train, valid: [dev], test: test}")
            if member and group_col and not meta[group_col]:
                raise _error(d.path, "protocol.column", f"{where}: the group (column {group_col!r}) is empty")
            media: dict[str, str | None] = {"audio": None, "video": None}
            for kind in media:
                rel = value(kind)
                if rel:
                    p = self._media_path(rel)
                    if not d.media_outside_root and not _inside(p, self.root):
                        raise _error(d.path, f"columns.{kind}", f"{where}: {kind} path {rel!r} points outside the "
                                     f"media root {self.root}",
                                     fix="keep media under media_root (or --root), or set media_outside_root: true "
                                         "in the descriptor to allow paths outside it")
                    # A missing file keeps its path: the extractor reports it as unreadable
                    # media (and --on-bad-media decides) instead of the load failing here.
                    media[kind] = str(p)
                    if p.is_file():
                        found[kind] += 1
                    else:
                        missing[kind].append(rel)
            utts.append(Utterance(uid=uid, dialogue_id=dialogue, turn=turn, speaker=value("speaker"),
                                  text=value("text"), label=label,
                                  audio_path=media["audio"], video_path=media["video"], meta=meta))
        if not members:
            raise _error(d.path, "ignore_labels", f"every row of {d.source_name} has an ignored label")
        self._check_dialogues(d, utts)
        self._check_splits(d, [u for u in utts if u.label not in d.ignore_labels])
        first: dict[str, int] = {}
        for i, u in enumerate(utts):
            first.setdefault(u.dialogue_id, i)
        utts.sort(key=lambda u: (first[u.dialogue_id], u.turn))  # dialogues in file order, turns in order
        mods = []
        if "text" in c and any(u.text for u in utts):
            mods.append("t")
        for kind, m in (("audio", "a"), ("video", "v")):
            if found[kind]:
                mods.append(m)
                if missing[kind]:
                    log.warning("%s: %d of %d %s files missing under %s (e.g. %s)", d.name, len(missing[kind]),
                                found[kind] + len(missing[kind]), kind, self.root, ", ".join(missing[kind][:3]))
        return Corpus(d.name, utts, root=self.root, modalities=tuple(mods))

    @staticmethod
    def _check_dialogues(d: Descriptor, utts: list[Utterance]) -> None:
        """Conversations merged under one id (an id that restarts per episode or split) fail here,
        naming the descriptor: a dialogue-context method would read other conversations as context."""
        problem = repeated_turns(utts)
        if problem is None and d.split_column:
            problem = dialogues_across_splits({u.uid: d.split_values[u.meta[d.split_column]] for u in utts
                                               if u.label not in d.ignore_labels}, utts)
        if problem is None:
            return
        spec = d.columns.get("dialogue_id")
        if spec is not None:
            own = "".join(f"{{{c}}}" if i == 0 else f"_{{{c}}}" for i, c in enumerate(spec.columns))
            fix = (f"columns.dialogue_id ({spec.describe()}) must name one conversation in the whole corpus; if it "
                   f"restarts per episode, season or split, make it a template over the columns that together "
                   f"name a conversation, e.g. dialogue_id: \"{{<episode column>}}_{own}\"")
        else:
            fix = ("map columns.dialogue_id to the column naming each conversation (a template over several "
                   "columns, e.g. \"{episode}_{dialogue}\", when one is not unique on its own)")
        raise _error(d.path, "columns.dialogue_id", f"{d.source_name}: {problem}", fix=fix)

    @staticmethod
    def _check_splits(d: Descriptor, members: list[Utterance]) -> None:
        """Name the descriptor field when the rule cannot give three non-empty splits."""
        if d.split_column:
            counts = {s: 0 for s in SPLITS}
            for u in members:
                counts[d.split_values[u.meta[d.split_column]]] += 1
            for s in SPLITS:
                if not counts[s]:
                    values = sorted(v for v, t in d.split_values.items() if t == s)
                    raise _error(d.path, "split_column", f"the {s} split has no rows: no labelled row of {d.source_name} "
                                 f"has {d.split_column} = {' or '.join(map(repr, values))}",
                                 fix="map the file's values with split_values, e.g. split_values: "
                                     "{train: train, valid: [dev], test: test}, or use a protocol: rule")
            return
        dialogues = {u.dialogue_id for u in members}
        if d.rule["rule"] == "random_dialogue":
            n = len(dialogues)
            n_test, n_valid = max(1, round(n * d.rule["test"])), max(1, round(n * d.rule["valid"]))
            if n - n_test - n_valid < 1:
                raise _error(d.path, "protocol", f"random_dialogue needs at least 3 dialogues with labelled rows; "
                             f"{d.source_name} has {n}, so the train split would have no rows",
                             fix="map columns.dialogue_id, or give more dialogues")
            return
        col = d.rule["column"]
        groups: dict[str, set[str]] = {}
        for u in members:
            groups.setdefault(u.meta[col], set()).add(u.dialogue_id)
        if len(groups) < 2:
            raise _error(d.path, "protocol.column", f"column {col!r} has a single value ({next(iter(groups))!r}), so "
                         "leaving it out leaves no rows to train on", fix="choose a column with two or more groups")
        for held in groups:
            rest = set().union(*(g for k, g in groups.items() if k != held))
            if len(rest) < 2:
                raise _error(d.path, "protocol.column", f"holding out {col} = {held!r} leaves {len(rest)} dialogue(s) "
                             "to split into train and valid, so the train split would have no rows",
                             fix="give the other groups more dialogues, or use another rule")


# -- classes, registration, lookup ------------------------------------------------------------

_CLASSES: dict[Path, type[YamlCorpus]] = {}


def yaml_corpus_class(path: str | Path) -> type[YamlCorpus]:
    """The adapter class of a descriptor (one class per file, kept up to date with it)."""
    d = parse_descriptor(path)
    attrs = {"name": d.name, "descriptor": d, "metadata": d.metadata, "modalities": d.declared_modalities,
             "default_protocol": d.protocol_name}
    cls = _CLASSES.get(d.path)
    if cls is not None and cls.name == d.name:
        for k, v in attrs.items():  # the file may have changed since: refresh in place
            setattr(cls, k, v)
        return cls
    safe = re.sub(r"\W", "_", d.name)
    cls = type(f"YamlCorpus_{safe}", (YamlCorpus,), {**attrs, "__module__": __name__,
                                                    "__doc__": f"YAML corpus {d.name} ({d.path})"})
    _CLASSES[d.path] = cls
    return cls


def open_yaml_corpus(path: str | Path, root: str | Path | None = None) -> YamlCorpus:
    """An adapter instance for the descriptor at ``path`` (``root`` replaces its media_root)."""
    return yaml_corpus_class(path)(root)


def register_yaml_corpus(path: str | Path) -> type[YamlCorpus]:
    """Register the descriptor's corpus in ``DATASETS`` under its ``name`` (idempotent per file)."""
    from merbench.registry import DATASETS, load_builtins

    load_builtins()
    cls = yaml_corpus_class(path)
    if cls.name in DATASETS:
        try:
            existing = DATASETS.get(cls.name)
        except Exception:  # a broken plugin of that name still holds the name
            existing = None
        if existing is cls:
            return cls
        other = getattr(existing, "descriptor", None)
        holder = f"the YAML corpus {other.path}" if isinstance(other, Descriptor) else "a registered dataset"
        raise _error(cls.descriptor.path, "name", f"{cls.name!r} is already the name of {holder}",
                     fix="give this corpus another name (`bench list datasets` shows the names in use)")
    DATASETS.add(cls.name, cls)
    return cls


def descriptors_named(name: str, folder: Path | None = None, limit: int = 200) -> list[Path]:
    """Descriptor files in ``folder`` (default: the working folder) and its subfolders, two levels
    deep, whose ``name:`` is ``name``; for the hint when a descriptor's name is given as a dataset."""
    import yaml

    folder = Path.cwd() if folder is None else folder
    out = []
    candidates = [p for pattern in ("*.y*ml", "*/*.y*ml", "*/*/*.y*ml") for p in sorted(folder.glob(pattern))]
    for path in candidates[:limit]:
        if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file() or path.stat().st_size > 100_000:
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("name") == name and ("annotations" in data or "files" in data):
            out.append(path.relative_to(folder) if path.is_relative_to(folder) else path)
    return out
