"""Method metadata and published numbers as plain data (YAML), readable without importing a method.

Each in-tree method keeps ``metadata.yaml`` beside its ``method.py``: title, authors, venue,
links, BibTeX, the modalities and unit it works on, its budget variants, and ``reported``, the
numbers its paper publishes. ``bench list``, ``bench info`` and the leaderboard read that file
directly, so none of them imports torch or a method module; the method class loads the same
file (``metadata = method_metadata_file(__file__)``). The leaderboard's ``references.yaml``
(other papers' numbers) holds entries of the same type, :class:`ReportedResult`.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import yaml

from .corpus import MODALITIES
from .errors import ConfigError
from .interfaces import MethodMetadata, ReportedResult

METADATA_FILE = "metadata.yaml"
REPORTED_FIELDS = ("dataset", "protocol", "method", "modalities", "metric", "value", "source", "note", "variant")
METADATA_FIELDS = ("title", "authors", "venue", "year", "code_url", "paper_url", "bibtex", "description",
                   "modalities", "unit", "budget_variants", "paper_variants", "reported")
UNITS = ("utterance", "dialogue")


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}", fix=f"fix the YAML syntax of {path}") from e


def _where(path: Path, index: int, entry: Any) -> str:
    name = entry.get("method") if isinstance(entry, dict) else None
    return f"{path}: entry {index + 1}" + (f" (method {name!r})" if isinstance(name, str) and name else "")


def parse_reported(path: Path, index: int, entry: Any, required: tuple[str, ...], method: str = "") -> ReportedResult:
    """One published number; every error names the file, the entry and the field."""
    from .metrics import METRICS

    where = _where(path, index, entry)
    fix = f"correct that entry in {path}; fields: {', '.join(required)} (required), " \
          f"{', '.join(f for f in REPORTED_FIELDS if f not in required)} (optional)"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(entry).__name__}", fix=fix)
    missing = [f for f in required if f not in entry]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(repr(f) for f in missing)}", fix=fix)
    unknown = sorted(str(k) for k in entry if k not in REPORTED_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(repr(f) for f in unknown)}", fix=fix)
    for f in ("dataset", "protocol", "method", "modalities", "metric", "source", "variant"):
        v = entry.get(f, "-")
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{where}: field {f!r} must be a non-empty string, got {v!r}", fix=fix)
    if not isinstance(entry.get("note", ""), str):
        # An empty note is fine; a non-string one is a typo.
        raise ConfigError(f"{where}: field 'note' must be a string (use \"\" for none), got {entry['note']!r}", fix=fix)
    mods = entry["modalities"]
    if mods != "".join(m for m in MODALITIES if m in mods) or len(mods) != len(set(mods)) or set(mods) - set(MODALITIES):
        raise ConfigError(f"{where}: field 'modalities' is {mods!r}; use letters of 'tav' in that order "
                          "(t = text, a = audio, v = video), e.g. 't' or 'tav'", fix=fix)
    if entry["metric"] not in METRICS:
        raise ConfigError(f"{where}: field 'metric' is {entry['metric']!r}; use one of {', '.join(METRICS)}", fix=fix)
    value = entry["value"]
    # bool is an int in Python; a YAML `yes` must not pass as 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= float(value) <= 100.0:
        raise ConfigError(f"{where}: field 'value' must be a number in percent between 0 and 100, got {value!r}",
                          fix=fix)
    return ReportedResult(
        dataset=entry["dataset"].strip(), protocol=entry["protocol"].strip(), metric=entry["metric"],
        value=float(value), modalities=mods, source=entry["source"].strip(), note=entry.get("note", "").strip(),
        variant=entry.get("variant", "default").strip(), method=entry.get("method", method).strip(),
    )


def parse_reported_list(path: Path, data: Any, required: tuple[str, ...], method: str = "") -> tuple[ReportedResult, ...]:
    """A YAML list of published numbers, validated, without duplicates."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of entries, got {type(data).__name__}",
                          fix="write one '- dataset: ...' item per published number")
    refs = [parse_reported(path, i, e, required, method) for i, e in enumerate(data)]
    seen: dict[tuple, int] = {}
    for i, r in enumerate(refs):
        if r.key in seen:
            raise ConfigError(f"{_where(path, i, data[i])}: duplicates entry {seen[r.key] + 1} (same dataset, "
                              "protocol, method, modalities, metric and variant)", fix=f"keep one of the two in {path}")
        seen[r.key] = i
    return tuple(refs)


def load_method_metadata(path: str | Path, name: str = "") -> MethodMetadata:
    """Read and validate a method's ``metadata.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"method metadata file {path} does not exist", fix=f"write {METADATA_FILE} beside method.py")
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("title"), str):
        raise ConfigError(f"{path}: expected a mapping with at least a 'title'", fix="see methods/mlp/metadata.yaml")
    unknown = sorted(str(k) for k in data if k not in METADATA_FIELDS)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(map(repr, unknown))}", fix=f"fields: {', '.join(METADATA_FIELDS)}")
    mods = data.get("modalities", list(MODALITIES))
    if not isinstance(mods, list) or not mods or set(mods) - set(MODALITIES):
        raise ConfigError(f"{path}: 'modalities' must be a list of t, a, v, got {mods!r}", fix="e.g. modalities: [t, a]")
    unit = data.get("unit", "utterance")
    if unit not in UNITS:
        raise ConfigError(f"{path}: 'unit' must be one of {', '.join(UNITS)}, got {unit!r}", fix="e.g. unit: utterance")
    pairs = {}
    for key in ("budget_variants", "paper_variants"):
        pairs[key] = data.get(key) or {}
        if not isinstance(pairs[key], dict):
            raise ConfigError(f"{path}: {key!r} must map a variant to the variant whose numbers it stands beside",
                              fix=f"e.g. {key}: {{{'cpu' if key.startswith('budget') else 'paper'}: default}}")
    required = ("dataset", "protocol", "modalities", "metric", "value", "source")
    return MethodMetadata(
        title=data["title"], authors=data.get("authors", ""), venue=data.get("venue", ""), year=data.get("year"),
        code_url=data.get("code_url", ""), paper_url=data.get("paper_url", ""), bibtex=data.get("bibtex", ""),
        description=data.get("description", ""), modalities=tuple(m for m in MODALITIES if m in mods), unit=unit,
        budget_variants=tuple((str(k), str(v)) for k, v in pairs["budget_variants"].items()),
        paper_variants=tuple((str(k), str(v)) for k, v in pairs["paper_variants"].items()),
        reported=parse_reported_list(path, data.get("reported"), required, name),
    )


def method_metadata_file(module_file: str | Path) -> MethodMetadata:
    """The metadata of the in-tree method whose ``method.py`` is ``module_file`` (``__file__``);
    its folder's name is its registry name."""
    return load_method_metadata(Path(module_file).with_name(METADATA_FILE), Path(module_file).parent.name)


def metadata_path_of(ref: str) -> Path | None:
    """The ``metadata.yaml`` beside the module of a lazy ``"package.module:Class"`` reference,
    found without importing the module (its parent packages only)."""
    module_name = ref.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).with_name(METADATA_FILE)
    return path if path.is_file() else None
