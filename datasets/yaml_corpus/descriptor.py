"""The corpus descriptor: a plain YAML file read and checked into a :class:`Descriptor`
(the adapter in ``adapter.py`` reads the tables it names).

The descriptor names an annotation table (CSV, TSV or JSON lines), maps its columns onto
the utterance fields, gives the label set and one split rule. Paths are relative to the
descriptor's folder; audio / video paths in the table are relative to ``media_root``::

    name: mycorpus                  # the dataset name in results and the leaderboard
    title: My corpus                # optional: title, url, license, citation, description
    annotations: annotations.csv    # .csv, .tsv or .jsonl (or set format: csv|tsv|jsonl)
    media_root: media               # default: the descriptor's folder
    columns:                        # field -> column; uid and label are required
      uid: utt_id
      dialogue_id: dialog           # default: every utterance is its own dialogue
      turn: turn                    # default: row order within the dialogue
      speaker: speaker
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

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from merbench.errors import ConfigError, CorpusNotFoundError
from merbench.interfaces import DatasetMetadata
from merbench.protocols import SPLITS, Protocol, leave_one_group_out, random_dialogue_split, split_by_field

COLUMN_FIELDS = ("uid", "dialogue_id", "turn", "speaker", "text", "label", "audio", "video")
REQUIRED_COLUMNS = ("uid", "label")
TOP_LEVEL = ("name", "title", "url", "license", "citation", "description", "annotations", "format", "delimiter",
             "media_root", "columns", "labels", "label_map", "ignore_labels", "split_column", "split_values",
             "protocol", "protocol_name", "version", "headline_metric", "seeds", "meta_columns")
RULES = {"random_dialogue": ("rule", "seed", "valid", "test"),
         "leave_one_group_out": ("rule", "column", "seed", "valid")}
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
METRICS = ("accuracy", "ua", "weighted_f1", "macro_f1")
DEFAULT_SPLIT_VALUES = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "validation": "valid",
                        "test": "test"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _error(path: Path, field: str, message: str, fix: str | None = None, cls=ConfigError):
    return cls(f"corpus descriptor {path}, field `{field}`: {message}", fix=fix)


def _close(word: str, options) -> str:
    """"; did you mean ...?" for near misses, ignoring case ("Joy" -> 'joy')."""
    by_lower = {str(o).lower(): str(o) for o in options}
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""


def _scalar(path: Path, field: str, value: Any) -> str:
    """A label / column / split value written in YAML as a string (numbers allowed)."""
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


@dataclass(frozen=True)
class Descriptor:
    """A parsed, checked descriptor; data-dependent checks happen when the table is read."""

    path: Path
    name: str
    annotations: Path
    format: str
    delimiter: str | None
    media_root: Path
    columns: dict[str, str]
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

    @property
    def declared_modalities(self) -> tuple[str, ...]:
        return tuple(m for m, col in (("t", "text"), ("a", "audio"), ("v", "video")) if col in self.columns)

    def describe_split(self) -> str:
        if self.split_column:
            by = {s: sorted(v for v, t in self.split_values.items() if t == s) for s in SPLITS}
            return (f"the corpus' own split, column {self.split_column!r} of {self.annotations.name} ("
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


def parse_descriptor(path: str | Path) -> Descriptor:
    """Read and check a corpus descriptor (the annotation table is read by ``load``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CorpusNotFoundError(f"corpus descriptor {path} does not exist",
                                  fix="check the path; a YAML corpus is given by the path of its .yaml file")
    path = path.resolve()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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

    # annotation table
    ann_rel = _scalar(path, "annotations", required("annotations"))
    annotations = (base / ann_rel).resolve()
    fmt = data.get("format")
    if fmt is None:
        fmt = FORMATS.get(annotations.suffix.lower())
        if fmt is None:
            raise _error(path, "annotations", f"cannot tell the format of {ann_rel!r} from its suffix",
                         fix="name it .csv, .tsv or .jsonl, or add format: csv|tsv|jsonl")
    elif fmt not in ("csv", "tsv", "jsonl"):
        raise _error(path, "format", f"{fmt!r} is not csv, tsv or jsonl")
    delimiter = data.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or fmt == "jsonl"):
        raise _error(path, "delimiter", f"{delimiter!r}: must be one character, for csv / tsv tables only")
    media_root = (base / _scalar(path, "media_root", data.get("media_root", "."))).resolve()

    # columns
    cols = required("columns")
    if not isinstance(cols, dict):
        raise _error(path, "columns", "must map fields to column names, e.g. {uid: id, label: emotion, text: utterance}")
    columns = {}
    for key, col in cols.items():
        if key not in COLUMN_FIELDS:
            raise _error(path, f"columns.{key}", "unknown field" + _close(key, COLUMN_FIELDS),
                         fix=f"fields: {', '.join(COLUMN_FIELDS)}")
        if col is not None:
            columns[key] = _scalar(path, f"columns.{key}", col)
    for key in REQUIRED_COLUMNS:
        if key not in columns:
            raise _error(path, f"columns.{key}", "is missing", fix=f"name the column that holds the {key}")
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
    seeds = data.get("seeds", 3)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise _error(path, "seeds", f"{seeds!r} must be a positive integer (the default number of seeds)")
    meta_columns = tuple(_string_list(path, "meta_columns", data.get("meta_columns") or []))
    text = {k: str(data.get(k) or "") for k in ("title", "url", "license", "citation", "description")}
    metadata = DatasetMetadata(title=text["title"] or f"{name} (YAML corpus)", url=text["url"], license=text["license"],
                               citation=text["citation"], description=text["description"])
    return Descriptor(path=path, name=name, annotations=annotations, format=fmt, delimiter=delimiter,
                      media_root=media_root, columns=columns, labels=tuple(labels), label_map=label_map,
                      ignore_labels=frozenset(ignore), split_column=split_column, split_values=split_values,
                      rule=rule, protocol_name=protocol_name, version=version, headline_metric=headline, seeds=seeds,
                      meta_columns=meta_columns, metadata=metadata)
