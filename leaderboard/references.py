"""Published reference numbers shown beside our runs ("reported in the literature, not run here").

The numbers live in ``references.yaml`` next to this file: a plain list of entries
``{dataset, protocol, method, modalities, metric, value, source, note}``. They are never
aggregated with our results; the leaderboard prints them in their own small table per section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from merbench.errors import ConfigError

from .aggregate import METRIC_DESCRIPTIONS, metric_label

DEFAULT_PATH = Path(__file__).with_name("references.yaml")
TITLE = "Published results (reported, not reproduced here)"
FIELDS = ("dataset", "protocol", "method", "modalities", "metric", "value", "source", "note")
MODALITY_ORDER = "tav"


@dataclass(frozen=True)
class Reference:
    """One number reported in a paper. ``value`` is in percent, as printed in the paper."""

    dataset: str
    protocol: str
    method: str
    modalities: str
    metric: str
    value: float
    source: str
    note: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.dataset, self.protocol, self.method, self.modalities, self.metric)


def _where(path: Path, index: int, entry: Any) -> str:
    name = entry.get("method") if isinstance(entry, dict) else None
    return f"{path}: entry {index + 1}" + (f" (method {name!r})" if isinstance(name, str) and name else "")


def _check_entry(path: Path, index: int, entry: Any) -> Reference:
    where = _where(path, index, entry)
    fix = f"correct that entry in {path}; every entry has exactly the fields {', '.join(FIELDS)}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(entry).__name__}", fix=fix)
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(repr(f) for f in missing)}", fix=fix)
    unknown = sorted(str(k) for k in entry if k not in FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(repr(f) for f in unknown)}", fix=fix)

    for f in ("dataset", "protocol", "method", "modalities", "metric", "source"):
        v = entry[f]
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{where}: field {f!r} must be a non-empty string, got {v!r}", fix=fix)
    if not isinstance(entry["note"], str):
        # An empty note is fine; a missing or non-string one is a typo.
        raise ConfigError(f"{where}: field 'note' must be a string (use \"\" for none), got {entry['note']!r}",
                          fix=fix)

    mods = entry["modalities"]
    if set(mods) - set(MODALITY_ORDER) or len(set(mods)) != len(mods) or \
            mods != "".join(m for m in MODALITY_ORDER if m in mods):
        raise ConfigError(f"{where}: field 'modalities' is {mods!r}; use letters of 'tav' in that order "
                          "(t = text, a = audio, v = video), e.g. 't' or 'tav'", fix=fix)
    if entry["metric"] not in METRIC_DESCRIPTIONS:
        raise ConfigError(f"{where}: field 'metric' is {entry['metric']!r}; use one of "
                          f"{', '.join(METRIC_DESCRIPTIONS)}", fix=fix)
    value = entry["value"]
    # bool is an int in Python; a YAML `yes` must not pass as 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= float(value) <= 100.0:
        raise ConfigError(f"{where}: field 'value' must be a number in percent between 0 and 100, got {value!r}",
                          fix=fix)
    return Reference(
        dataset=entry["dataset"].strip(), protocol=entry["protocol"].strip(), method=entry["method"].strip(),
        modalities=mods, metric=entry["metric"], value=float(value), source=entry["source"].strip(),
        note=entry["note"].strip(),
    )


def load_references(path: str | Path | None = None) -> tuple[Reference, ...]:
    """Read and validate a references file (default: ``references.yaml`` beside this module).

    A missing default file means no references; a missing explicit path is an error.
    """
    explicit = path is not None
    p = Path(path) if explicit else DEFAULT_PATH
    if not p.is_file():
        if explicit:
            raise ConfigError(f"references file {p} does not exist", fix="pass the path of a references .yaml file")
        return ()
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}", fix=f"fix the YAML syntax of {p}") from e
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"{p}: expected a list of entries at the top level, got {type(data).__name__}",
                          fix="write one '- dataset: ...' item per published number")
    refs = [_check_entry(p, i, e) for i, e in enumerate(data)]
    seen: dict[tuple, int] = {}
    for i, r in enumerate(refs):
        if r.key in seen:
            raise ConfigError(f"{_where(p, i, data[i])}: duplicates entry {seen[r.key] + 1} (same dataset, "
                              "protocol, method, modalities and metric)", fix=f"keep one of the two in {p}")
        seen[r.key] = i
    return tuple(refs)


def references_for(dataset: str, protocol: str, references: Iterable[Reference]) -> list[Reference]:
    """The entries of one section, in a fixed order: by metric, best value first, then by name."""
    order = {m: i for i, m in enumerate(METRIC_DESCRIPTIONS)}
    rows = [r for r in references if r.dataset == dataset and r.protocol == protocol]
    return sorted(rows, key=lambda r: (order.get(r.metric, len(order)), -r.value, r.method, r.modalities))


def _cell(text: Any) -> str:
    """A table cell: pipes escaped, no line breaks (same escaping as the leaderboard tables)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_references(dataset: str, protocol: str, references: Iterable[Reference] | None = None) -> str:
    """Markdown for one section's published numbers, or "" when there are none.

    ``references`` defaults to the entries of ``references.yaml``.
    """
    refs = load_references() if references is None else references
    rows = references_for(dataset, protocol, refs)
    if not rows:
        return ""
    lines = [
        f"{TITLE}:",
        "",
        "> Numbers reported in the literature, **not run here**: features, dialogue context and model "
        "selection differ from our runs, so read them as context, not as rows of the ranking.",
        "",
        "| method | modalities | metric | reported | source | note |",
        "|---|---|---|---:|---|---|",
    ]
    for r in rows:
        cells = [r.method, r.modalities, metric_label(r.metric), f"{r.value:.2f}", r.source, r.note or "—"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
