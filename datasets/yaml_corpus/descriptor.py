"""The corpus descriptor: a plain YAML file read and checked into a :class:`Descriptor`
(the adapter in ``adapter.py`` reads the tables it names).

The descriptor names an annotation table (CSV, TSV or JSON lines), maps its columns onto
the utterance fields, gives the label set and one split rule. Paths are relative to the
descriptor's folder; audio / video paths in the table are relative to ``media_root``::

    name: mycorpus                  # the dataset name in results and the leaderboard
    title: My corpus                # optional: title, url, license, citation, description
    annotations: annotations.csv    # .csv, .tsv or .jsonl (or set format: csv|tsv|jsonl); a glob;
                                    # or a list of {path: train.csv, split: train} (fixed values)
    # files: {glob: "*.wav", pattern: "(?P<speaker>..)_(?P<label>..)\\.wav"}   # instead: no table
    media_root: media               # default: the descriptor's folder
    columns:                        # field -> column; uid and label are required
      uid: utt_id                   # or a template: "{session}_{conv}_{turn:03d}"
      dialogue_id: dialog           # default: every utterance is its own dialogue
      turn: turn                    # default: row order within the dialogue
      speaker: speaker              # or {column: speakers, parse: list, join: " & "}
      text: transcript
      label: emotion
      audio: wav
      video: clip
    labels: [neutral, happy, sad, angry]   # the protocol's classes, in index order
    label_map: {excited: happy}            # optional: other file values -> a label
    ignore_labels: [other]                 # optional: file values whose rows are left out
    # one split rule: the file's own split column ...
    split_column: split
    split_values: {train: train, valid: [dev, val], test: test}   # optional
    # ... or a protocol rule
    # protocol: {rule: random_dialogue, seed: 0, valid: 0.1, test: 0.2}
    # protocol: {rule: leave_one_group_out, column: session, valid: 0.1, seed: 0}

A modality is offered when its column is given and (for audio and video) at least one of
its files exists under ``media_root``. Every mistake is reported with the descriptor file,
the field and, for table errors, the line of the annotation file.
"""

from __future__ import annotations

import ast
import difflib
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from merbench.errors import ConfigError, CorpusNotFoundError
from merbench.interfaces import DatasetMetadata
from merbench.metrics import METRICS
from merbench.protocols import SPLITS, Protocol, leave_one_group_out, random_dialogue_split, split_by_field

COLUMN_FIELDS = ("uid", "dialogue_id", "turn", "speaker", "text", "label", "audio", "video")
TEMPLATE_FIELDS = ("uid", "dialogue_id", "speaker", "audio", "video")  # may compose several columns
TABLE_NAME_COLUMNS = ("stem", "name", "parent")  # what a table entry's fixed value may name of its file
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv")
REQUIRED_COLUMNS = ("uid", "label")
TOP_LEVEL = ("name", "title", "url", "license", "citation", "description", "annotations", "files", "format", "delimiter",
             "media_root", "columns", "labels", "label_map", "ignore_labels", "split_column", "split_values",
             "protocol", "protocol_name", "version", "headline_metric", "seeds", "meta_columns",
             "case_insensitive_labels", "media_outside_root")
RULES = {"random_dialogue": ("rule", "seed", "valid", "test"),
         "leave_one_group_out": ("rule", "column", "seed", "valid")}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_SPLIT_VALUES = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "validation": "valid",
                        "test": "test"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


_LINES: dict[Path, dict[str, int]] = {}  # descriptor -> dotted field -> line, for error messages


def _field_lines(node, prefix: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """``{"columns.uid": 12, "annotations[1].path": 4, ...}`` from a composed YAML node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}.{k.value}" if prefix else str(k.value)
            out[key] = k.start_mark.line + 1
            _field_lines(v, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[f"{prefix}[{i}]"] = v.start_mark.line + 1
            _field_lines(v, f"{prefix}[{i}]", out)
    return out


def _line_of(path: Path, field: str) -> int | None:
    """The descriptor line of ``field`` or of the nearest enclosing field that is written there."""
    lines = _LINES.get(path, {})
    while field:
        if field in lines:
            return lines[field]
        cut = max(field.rfind("."), field.rfind("["))
        field = field[:cut] if cut > 0 else ""
    return None


def _error(path: Path, field: str, message: str, fix: str | None = None, cls=ConfigError):
    line = _line_of(path, field)
    where = f"corpus descriptor {path}" + (f" (line {line})" if line else "")
    return cls(f"{where}, field `{field}`: {message}", fix=fix)


def _close(word: str, options) -> str:
    """"; did you mean ...?" for near misses, ignoring case ("Joy" -> 'joy')."""
    by_lower = {str(o).lower(): str(o) for o in options}
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""


def _scalar(path: Path, field: str, value: Any) -> str:
    """A label / column / split value written in YAML as a string (numbers allowed)."""
    if isinstance(value, (list, tuple, dict)):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        first = next(iter(value), None)
        raise _error(path, field, f"takes one value, not {kind} ({value!r})",
                     fix=f"give `{field}` a single value" + (f", e.g. {field}: {first}" if first is not None else ""))
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _error(path, field, f"{value!r} must be a string", fix="quote it, e.g. \"yes\" instead of yes")
    value = str(value).strip()
    if not value:
        raise _error(path, field, "is empty")
    return value


def _string_list(path: Path, field: str, value: Any) -> list[str]:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise _error(path, field, f"must be a list of strings, not {type(value).__name__}")
    return [_scalar(path, f"{field}[{i}]", v) for i, v in enumerate(value)]


_INT_SPECS, _FLOAT_SPECS = set("bcdoxXn"), set("eEfFgG%")


@dataclass(frozen=True)
class FieldSpec:
    """Where one utterance field comes from: a column, or a template over several columns
    (``"{session}_{turn:03d}"``); ``parse: list`` reads a Python list literal and joins its items."""

    field: str  # e.g. "columns.uid", for messages
    source: str  # the column name, or the template text
    template: tuple[tuple[str, str | None, str], ...] | None = None  # (literal, column, format spec)
    parse: str | None = None
    join: str = " & "

    @property
    def columns(self) -> tuple[str, ...]:
        if self.template is None:
            return (self.source,)
        return tuple(dict.fromkeys(col for _, col, _ in self.template if col is not None))

    def describe(self) -> str:
        return f"template {self.source!r}" if self.template is not None else f"column {self.source!r}"

    def value(self, row: dict[str, str]) -> str:
        """The field's value in ``row``; ValueError (with the reason) when it cannot be composed or parsed."""
        if self.template is None:
            raw = row.get(self.source, "")
        else:
            out = []
            for literal, col, spec in self.template:
                out.append(literal)
                if col is None:
                    continue
                cell: Any = row.get(col, "")
                kind = spec[-1:] if spec else ""
                try:
                    if kind in _INT_SPECS:
                        cell = _as_int(cell)
                    elif kind in _FLOAT_SPECS:
                        cell = float(cell)
                    out.append(format(cell, spec))
                except ValueError:
                    raise ValueError(f"column {col!r} holds {row.get(col, '')!r}, which the format "
                                     f"{{{col}:{spec}}} cannot take") from None
            raw = "".join(out)
        if self.parse == "list":
            raw = parse_list_literal(raw, self.join)
        return raw


def _as_int(cell: str) -> int:
    try:
        return int(cell)
    except ValueError:
        number = float(cell)  # "3.0" as a spreadsheet writes it
        if not number.is_integer():
            raise
        return int(number)


def parse_list_literal(raw: str, join: str) -> str:
    """``"['Monica', 'Ross']"`` -> ``"Monica & Ross"``; a cell without brackets is one item."""
    text = raw.strip()
    if not text.startswith(("[", "(")):
        return text
    try:
        items = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{raw!r} is not a list literal (e.g. ['A', 'B'])") from None
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, (str, int, float)) for x in items):
        raise ValueError(f"{raw!r} is not a flat list of names")
    return join.join(str(x).strip() for x in items)


def _field_spec(path: Path, field: str, value: Any) -> FieldSpec:
    """``column`` | ``"{template}"`` | ``{column: ..., parse: list, join: ...}`` | ``{template: ...}``."""
    parse, join = None, " & "
    if isinstance(value, dict):
        for k in value:
            if k not in ("column", "template", "parse", "join"):
                raise _error(path, f"{field}.{k}", "unknown key" + _close(k, ("column", "template", "parse", "join")),
                             fix="a column field is a name, a template, or {column|template: ..., parse: list, join: ' & '}")
        if ("column" in value) == ("template" in value):
            raise _error(path, field, "give exactly one of column or template")
        parse = value.get("parse")
        if parse not in (None, "list"):
            raise _error(path, f"{field}.parse", f"{parse!r} is not a parser", fix="the parser is: list")
        if "join" in value:
            if parse != "list" or not isinstance(value["join"], str):
                raise _error(path, f"{field}.join", "is a string, and applies with parse: list only")
            join = value["join"]
        source = _scalar(path, f"{field}.{'column' if 'column' in value else 'template'}",
                         value.get("column", value.get("template")))
        is_template = "template" in value
    else:
        source = _scalar(path, field, value)
        is_template = "{" in source
    if not is_template:
        return FieldSpec(field, source, None, parse, join)
    parts = []
    try:
        for literal, col, spec, conv in string.Formatter().parse(source):
            if col is not None and not col.strip():
                raise ValueError("an empty {} names no column")
            if conv:
                raise ValueError(f"conversion !{conv} is not supported")
            if spec and "{" in spec:
                raise ValueError("nested {} in a format spec is not supported")
            parts.append((literal, col, spec or ""))
    except ValueError as e:
        raise _error(path, field, f"template {source!r}: {e}",
                     fix="write columns in braces, e.g. \"{session}_{turn:03d}\"; double a literal brace: {{") from None
    for _, col, spec in parts:
        if col is not None and spec:
            try:
                format(0 if spec[-1] in _INT_SPECS else (0.0 if spec[-1] in _FLOAT_SPECS else ""), spec)
            except ValueError as e:
                raise _error(path, field, f"template {source!r}: format {{{col}:{spec}}}: {e}") from None
    return FieldSpec(field, source, tuple(parts), parse, join)


@dataclass(frozen=True)
class TableSpec:
    """One entry of ``annotations``: a path or glob (relative to the descriptor) and fixed values
    given to every row of the table(s) it names (templates over ``{stem}``, ``{name}``, ``{parent}``)."""

    field: str  # "annotations" or "annotations[2]"
    pattern: str
    fixed: tuple[tuple[str, FieldSpec], ...] = ()
    format: str | None = None  # None: from each file's suffix

    @property
    def is_glob(self) -> bool:
        return any(ch in self.pattern for ch in "*?[")


@dataclass(frozen=True)
class FileSource:
    """A corpus with no table: one utterance per media file under ``media_root`` matching ``glob``;
    the named groups of ``pattern`` (matched against the file name, or the relative path when it
    holds a ``/``) become columns, beside ``path``, ``dir``, ``name`` and ``stem``."""

    glob: str
    pattern: re.Pattern
    media: str  # "audio" or "video": the field the file fills
    unmatched: str  # "error" or "skip"

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.pattern.groupindex, *FILE_COLUMNS)


FILE_COLUMNS = ("path", "dir", "name", "stem")
GROUP_DEFAULTS = {"uid": "uid", "dialogue": "dialogue_id", "dialogue_id": "dialogue_id", "turn": "turn",
                  "speaker": "speaker", "label": "label", "text": "text"}


@dataclass(frozen=True)
class Descriptor:
    """A parsed, checked descriptor; data-dependent checks happen when the table is read."""

    path: Path
    name: str
    tables: tuple[TableSpec, ...]  # empty when the corpus is read from file names
    files: FileSource | None
    delimiter: str | None
    media_root: Path
    columns: dict[str, FieldSpec]
    labels: tuple[str, ...]
    label_map: dict[str, str]
    ignore_labels: frozenset[str]
    split_column: str | None
    split_values: dict[str, str]  # value in the file -> train / valid / test
    rule: dict[str, Any] | None
    protocol_name: str
    version: str
    headline_metric: str
    seeds: int
    meta_columns: tuple[str, ...]
    metadata: DatasetMetadata
    case_insensitive_labels: bool = False
    # Media paths of the table may point outside media_root (e.g. ../shared/audio) only when this is set.
    media_outside_root: bool = False

    @property
    def source_name(self) -> str:
        """What the rows come from, for descriptions: the table names, or the file pattern."""
        if self.files:
            return f"file names matching {self.files.glob!r}"
        return ", ".join(t.pattern for t in self.tables)

    @property
    def declared_modalities(self) -> tuple[str, ...]:
        return tuple(m for m, col in (("t", "text"), ("a", "audio"), ("v", "video")) if col in self.columns)

    def describe_split(self) -> str:
        if self.split_column:
            by = {s: sorted(v for v, t in self.split_values.items() if t == s) for s in SPLITS}
            return (f"the corpus' own split, column {self.split_column!r} of {self.source_name} ("
                    + "; ".join(f"{s}: {', '.join(by[s])}" for s in SPLITS) + ")")
        r = self.rule or {}
        if r["rule"] == "random_dialogue":
            return (f"seeded random split by dialogue (seed {r['seed']}; {r['valid']:.0%} of dialogues valid, "
                    f"{r['test']:.0%} test)")
        return (f"leave one {r['column']} out: one fold per value of column {r['column']!r}, validation "
                f"dialogues ({r['valid']:.0%}) drawn from the training groups (seed {r['seed']})")

    def protocol(self) -> Protocol:
        if self.split_column:
            splitter = split_by_field(self.split_column, dict(self.split_values))
        elif self.rule["rule"] == "random_dialogue":
            splitter = random_dialogue_split(valid=self.rule["valid"], test=self.rule["test"], seed=self.rule["seed"])
        else:
            splitter = leave_one_group_out(self.rule["column"], valid_fraction=self.rule["valid"], seed=self.rule["seed"])
        label_map = {**{n: n for n in self.labels}, **self.label_map} if self.label_map else None
        mapped = f"; mapped: {', '.join(f'{k} -> {v}' for k, v in self.label_map.items())}" if self.label_map else ""
        ignored = f"; left out: {', '.join(sorted(self.ignore_labels))}" if self.ignore_labels else ""
        return Protocol(
            name=self.protocol_name, dataset=self.name, label_names=self.labels, splitter=splitter,
            version=self.version, headline_metric=self.headline_metric, label_map=label_map,
            default_seeds=self.seeds,
            description=(f"{self.describe_split()}; {len(self.labels)} classes: {', '.join(self.labels)}"
                         f"{mapped}{ignored} (YAML corpus {self.path.name})"),
        )


def _tables(path: Path, value: Any, fmt: str | None) -> tuple[TableSpec, ...]:
    """``annotations``: a path or glob, or a list of them, each optionally ``{path: ..., <column>: value}``."""
    entries = value if isinstance(value, list) else [value]
    if not entries:
        raise _error(path, "annotations", "is an empty list")
    out = []
    for i, entry in enumerate(entries):
        field = f"annotations[{i}]" if isinstance(value, list) else "annotations"
        fixed: dict[str, FieldSpec] = {}
        if isinstance(entry, dict):
            if entry.get("path") in (None, ""):
                raise _error(path, f"{field}.path", "is missing",
                             fix="a table entry is {path: train.csv, <column>: <value for every row>, ...}")
            for k, v in entry.items():
                if k != "path":
                    fixed[str(k)] = _field_spec(path, f"{field}.{k}", v)
                    bad = [c for c in fixed[str(k)].columns if fixed[str(k)].template and c not in TABLE_NAME_COLUMNS]
                    if bad:
                        raise _error(path, f"{field}.{k}", f"a fixed value may name only {', '.join(TABLE_NAME_COLUMNS)} "
                                     f"(of the table's file), not {bad[0]!r}")
                    if fixed[str(k)].template is None:  # a plain value, not a column name
                        fixed[str(k)] = FieldSpec(f"{field}.{k}", v := fixed[str(k)].source, ((v, None, ""),))
            entry = entry["path"]
            field = f"{field}.path"
        rel = _scalar(path, field, entry)
        if fmt is None and not any(ch in Path(rel).suffix for ch in "*?[") and FORMATS.get(Path(rel).suffix.lower()) is None:
            raise _error(path, field, f"cannot tell the format of {rel!r} from its suffix",
                         fix="name it .csv, .tsv or .jsonl, or add format: csv|tsv|jsonl")
        out.append(TableSpec(field.removesuffix(".path"), rel, tuple(fixed.items()), fmt))
    return tuple(out)


def _file_source(path: Path, value: Any) -> FileSource:
    keys = ("glob", "pattern", "media", "unmatched")
    if not isinstance(value, dict):
        raise _error(path, "files", "must be a mapping, e.g. {glob: '**/*.wav', pattern: '(?P<speaker>\\d+)_(?P<label>\\w+)\\.wav'}")
    for k in value:
        if k not in keys:
            raise _error(path, f"files.{k}", "unknown key" + _close(k, keys), fix=f"keys: {', '.join(keys)}")
    glob = _scalar(path, "files.glob", value.get("glob", "**/*"))
    raw = _scalar(path, "files.pattern", value.get("pattern") or "")
    try:
        pattern = re.compile(raw)
    except re.error as e:
        raise _error(path, "files.pattern", f"{raw!r} is not a regular expression: {e}") from None
    if not pattern.groupindex:
        raise _error(path, "files.pattern", f"{raw!r} has no named group",
                     fix="name the parts, e.g. (?P<label>[A-Z]{3}); groups become columns")
    clash = sorted(set(pattern.groupindex) & set(FILE_COLUMNS))
    if clash:
        raise _error(path, "files.pattern", f"group {clash[0]!r} is taken: {', '.join(FILE_COLUMNS)} are set from the file")
    media = value.get("media")
    if media is None:
        suffix = Path(glob).suffix.lower()
        media = "video" if suffix in VIDEO_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None
    if media not in ("audio", "video"):
        raise _error(path, "files.media", f"{media!r}: say whether the files are audio or video",
                     fix="media: audio, or media: video")
    unmatched = value.get("unmatched", "error")
    if unmatched not in ("error", "skip"):
        raise _error(path, "files.unmatched", f"{unmatched!r} is not error or skip")
    return FileSource(glob, pattern, media, unmatched)


def parse_descriptor(path: str | Path) -> Descriptor:
    """Read and check a corpus descriptor (the annotation table is read by ``load``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CorpusNotFoundError(f"corpus descriptor {path} does not exist",
                                  fix="check the path; a YAML corpus is given by the path of its .yaml file")
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        _LINES[path] = _field_lines(yaml.compose(text))
    except yaml.YAMLError as e:
        raise ConfigError(f"corpus descriptor {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"corpus descriptor {path} must be a mapping (name:, annotations:, columns:, labels:, ...)",
                          fix="see datasets/yaml_corpus/README.md for an example")
    for key in data:
        if key not in TOP_LEVEL:
            raise _error(path, str(key), "unknown field" + _close(key, TOP_LEVEL), fix=f"fields: {', '.join(TOP_LEVEL)}")
    base = path.parent

    def required(key: str) -> Any:
        if data.get(key) in (None, "", [], {}):
            raise _error(path, key, "is missing", fix="see datasets/yaml_corpus/README.md for an example")
        return data[key]

    name = _scalar(path, "name", required("name"))
    if not _NAME.match(name):
        raise _error(path, "name", f"{name!r} is not usable as a dataset name",
                     fix="use letters, digits, '_', '-' and '.', starting with a letter or digit")

    # where the rows come from: annotation table(s), or media file names
    if (data.get("annotations") is None) == (data.get("files") is None):
        raise _error(path, "annotations" if data.get("annotations") is not None else "files",
                     "give exactly one of annotations (tables) or files (file names)"
                     + (", not both" if data.get("files") is not None else ""),
                     fix="annotations: table.csv (or a list of tables), or files: {glob: '**/*.wav', pattern: '...'}")
    fmt = data.get("format")
    if fmt is not None and fmt not in ("csv", "tsv", "jsonl"):
        raise _error(path, "format", f"{fmt!r} is not csv, tsv or jsonl")
    tables = _tables(path, data.get("annotations"), fmt) if data.get("annotations") is not None else ()
    files = _file_source(path, data["files"]) if data.get("files") is not None else None
    delimiter = data.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or files
                                  or all((t.format or FORMATS.get(Path(t.pattern).suffix.lower())) == "jsonl"
                                         for t in tables)):
        raise _error(path, "delimiter", f"{delimiter!r}: must be one character, for csv / tsv tables only")
    media_root = (base / _scalar(path, "media_root", data.get("media_root", "."))).resolve()

    # columns: field -> column, template or {column|template, parse}
    cols = data.get("columns") or {} if files else required("columns")
    if not isinstance(cols, dict):
        raise _error(path, "columns", "must map fields to column names, e.g. {uid: id, label: emotion, text: utterance}")
    columns: dict[str, FieldSpec] = {}
    for key, col in cols.items():
        if key not in COLUMN_FIELDS:
            raise _error(path, f"columns.{key}", "unknown field" + _close(key, COLUMN_FIELDS),
                         fix=f"fields: {', '.join(COLUMN_FIELDS)}")
        if col is not None:
            columns[key] = _field_spec(path, f"columns.{key}", col)
            if key not in TEMPLATE_FIELDS and columns[key].template is not None:
                raise _error(path, f"columns.{key}", f"{key} is read from one column, not a template",
                             fix=f"templates are for {', '.join(TEMPLATE_FIELDS)}")
    if files:  # file names: the file is the media, its stem the id, same-named groups the rest
        defaults = {"uid": "stem", files.media: "path"}
        defaults |= {f: g for g, f in GROUP_DEFAULTS.items() if g in files.pattern.groupindex}
        for key, col in defaults.items():
            columns.setdefault(key, FieldSpec(f"files.pattern (group {col})", col))
        for key, spec in columns.items():
            for col in spec.columns:
                if col not in files.columns:
                    raise _error(path, spec.field, f"{spec.describe()} names {col!r}, which is neither a named group "
                                 "of files.pattern nor one of " + ", ".join(FILE_COLUMNS) + _close(col, files.columns),
                                 fix=f"the columns of a file are: {', '.join(files.columns)}")
    for key in REQUIRED_COLUMNS:
        if key not in columns:
            raise _error(path, f"columns.{key}", "is missing", fix=f"name the column that holds the {key}"
                         + (" (or name a group of files.pattern after it)" if files else ""))
    if not {"text", "audio", "video"} & set(columns):
        raise _error(path, "columns", "names no text, audio or video column", fix="add at least one of them")

    # labels
    labels = _string_list(path, "labels", required("labels"))
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise _error(path, "labels", f"{', '.join(dup)} listed twice")
    raw_map = data.get("label_map") or {}
    if not isinstance(raw_map, dict):
        raise _error(path, "label_map", "must map file values to labels, e.g. {excited: happy}")
    label_map = {}
    for k, v in raw_map.items():
        key, target = _scalar(path, "label_map", k), _scalar(path, f"label_map.{k}", v)
        if target not in labels:
            raise _error(path, f"label_map.{key}", f"maps to {target!r}, which is not in labels" + _close(target, labels),
                         fix=f"labels: {', '.join(labels)}")
        label_map[key] = target
    ignore = _string_list(path, "ignore_labels", data.get("ignore_labels") or [])
    both = sorted(set(ignore) & (set(labels) | set(label_map)))
    if both:
        raise _error(path, "ignore_labels", f"{', '.join(both)} also in labels or label_map")
    fold = data.get("case_insensitive_labels", False)
    if not isinstance(fold, bool):
        raise _error(path, "case_insensitive_labels", f"{fold!r} is not true or false")
    if fold:  # "ANG", "ang" and "Ang" are one value: the names given must stay apart when folded
        spellings: dict[str, str] = {}
        for v in (*labels, *label_map, *ignore):
            other = spellings.setdefault(v.lower(), v)
            if other != v:
                raise _error(path, "case_insensitive_labels",
                             f"{other!r} and {v!r} (in labels, label_map or ignore_labels) are one value when case is ignored")

    # split rule: exactly one of split_column / protocol
    split_column, rule, split_values = None, None, dict(DEFAULT_SPLIT_VALUES)
    has_col, has_rule = data.get("split_column") is not None, data.get("protocol") is not None
    if has_col == has_rule:
        raise _error(path, "split_column" if has_col else "protocol",
                     "give exactly one split rule: split_column or protocol" + (", not both" if has_col else ""),
                     fix="split_column: <column with train/valid/test>, or protocol: {rule: random_dialogue} "
                         "or protocol: {rule: leave_one_group_out, column: <column>}")
    if data.get("split_values") is not None and not has_col:
        raise _error(path, "split_values", "only applies with split_column")
    if has_col:
        split_column = _scalar(path, "split_column", data["split_column"])
        sv = data.get("split_values")
        if sv is not None:
            if not isinstance(sv, dict):
                raise _error(path, "split_values", "must map train / valid / test to the file's values")
            split_values = {}
            for s, vals in sv.items():
                if s not in SPLITS:
                    raise _error(path, f"split_values.{s}", "unknown split" + _close(s, SPLITS), fix="use train, valid, test")
                for v in _string_list(path, f"split_values.{s}", vals):
                    if v in split_values and split_values[v] != s:
                        raise _error(path, f"split_values.{s}", f"value {v!r} is also given for {split_values[v]}")
                    split_values[v] = s
            for s in SPLITS:
                if s not in sv:
                    raise _error(path, f"split_values.{s}", "is missing", fix="give the file's value(s) for train, valid and test")
        default_name = f"{name}-official"
    else:
        r = data["protocol"]
        if not isinstance(r, dict) or r.get("rule") not in RULES:
            got = r.get("rule") if isinstance(r, dict) else r
            raise _error(path, "protocol.rule", f"{got!r} is not a known rule" + _close(got, RULES),
                         fix=f"rules: {', '.join(RULES)}")
        for k in r:
            if k not in RULES[r["rule"]]:
                raise _error(path, f"protocol.{k}", f"unknown for rule {r['rule']}" + _close(k, RULES[r["rule"]]),
                             fix=f"keys of {r['rule']}: {', '.join(RULES[r['rule']])}")
        rule = {"rule": r["rule"], "seed": r.get("seed", 0), "valid": r.get("valid", 0.1)}
        if r["rule"] == "random_dialogue":
            rule["test"] = r.get("test", 0.2)
        else:
            if r.get("column") in (None, ""):
                raise _error(path, "protocol.column", "is missing", fix="name the column whose values are the groups")
            rule["column"] = _scalar(path, "protocol.column", r["column"])
        if isinstance(rule["seed"], bool) or not isinstance(rule["seed"], int):
            raise _error(path, "protocol.seed", f"{rule['seed']!r} is not an integer")
        for k in ("valid", "test"):
            if k in rule and (isinstance(rule[k], bool) or not isinstance(rule[k], (int, float)) or not 0 < rule[k] < 1):
                raise _error(path, f"protocol.{k}", f"{rule[k]!r} must be a fraction between 0 and 1")
        if rule.get("test", 0) + rule["valid"] >= 1:
            raise _error(path, "protocol", "valid + test fractions leave nothing to train on")
        default_name = (f"{name}-random-dialogue" if r["rule"] == "random_dialogue"
                        else f"{name}-leave-one-{rule['column']}-out")
    protocol_name = _scalar(path, "protocol_name", data.get("protocol_name", default_name))

    version = _scalar(path, "version", data.get("version", "1"))
    headline = data.get("headline_metric", "weighted_f1")
    if headline not in METRICS:
        raise _error(path, "headline_metric", f"{headline!r} is not one of {', '.join(METRICS)}")
    outside = data.get("media_outside_root", False)
    if not isinstance(outside, bool):
        raise _error(path, "media_outside_root", f"{outside!r} is not true or false")
    seeds = data.get("seeds", 3)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise _error(path, "seeds", f"{seeds!r} must be a positive integer (the default number of seeds)")
    meta_columns = tuple(_string_list(path, "meta_columns", data.get("meta_columns") or []))
    text = {k: str(data.get(k) or "") for k in ("title", "url", "license", "citation", "description")}
    metadata = DatasetMetadata(title=text["title"] or f"{name} (YAML corpus)", url=text["url"], license=text["license"],
                               citation=text["citation"], description=text["description"])
    return Descriptor(path=path, name=name, tables=tables, files=files, delimiter=delimiter,
                      media_root=media_root, columns=columns, labels=tuple(labels), label_map=label_map,
                      ignore_labels=frozenset(ignore), split_column=split_column, split_values=split_values,
                      rule=rule, protocol_name=protocol_name, version=version, headline_metric=headline, seeds=seeds,
                      meta_columns=meta_columns, metadata=metadata, case_insensitive_labels=fold,
                      media_outside_root=outside)
