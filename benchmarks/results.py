"""The result file: one JSON per (method, variant, dataset, protocol, modalities, seed, config).

Typed with pydantic; ``schema_version`` changes whenever a field's meaning changes.
Written atomically next to per-utterance predictions (CSV) and two PNGs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .atomic import atomic_write_text
from .errors import MerbenchError

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)


class ClassScores(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int


class Metrics(BaseModel):
    """Scores in [0, 1], one field per metric of ``merbench.metrics.METRICS`` (``accuracy`` is WA,
    ``ua`` mean per-class recall); None for a metric the run's protocol does not list."""

    accuracy: float | None = None
    ua: float | None = None
    weighted_f1: float | None = None
    macro_f1: float | None = None
    per_class: dict[str, ClassScores] = Field(default_factory=dict)
    confusion: list[list[int]] = Field(default_factory=list)  # rows gold, columns predicted
    n: int = 0


class FoldResult(BaseModel):
    name: str
    n_train: int
    n_valid: int
    n_test: int
    epochs_run: int = 0
    best_epoch: int | None = None
    best_valid_score: float | None = None
    test: Metrics
    history: list[dict[str, float]] = Field(default_factory=list)


class Provenance(BaseModel):
    git_commit: str | None = None
    git_dirty: bool | None = None
    merbench_version: str = ""
    python: str = ""
    packages: dict[str, str] = Field(default_factory=dict)
    device: str = ""
    hostname: str = ""
    started_at: str = ""
    wall_time_s: float = 0.0  # summed over pieces: a killed run resumed later adds each process' time
    command: str = ""
    # One entry per process that worked on the run: {started_at, wall_time_s, hostname}.
    pieces: list[dict[str, Any]] = Field(default_factory=list)


class RunResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    method: str
    variant: str = "default"
    dataset: str
    protocol: str
    protocol_version: str
    manifest_hash: str
    as_published: bool = False
    label_names: list[str]
    modalities: str  # canonical key, e.g. "tav"
    features: dict[str, str] = Field(default_factory=dict)  # modality -> extractor@version
    # modality -> {"cache_key": "v<version>-<settings hash>", "settings": the extractor's settings()}
    feature_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seed: int
    config: dict[str, Any]
    config_hash: str
    headline_metric: str = "weighted_f1"
    select_metric: str = ""
    fold_combination: str = ""
    folds: list[FoldResult]
    test: Metrics  # combined over folds
    parameters: int | None = None
    bad_media: int = 0
    bad_media_by_kind: dict[str, int] = Field(default_factory=dict)  # e.g. {"audio": 1, "video": 2}: unreadable files
    # The corpus content the run read (ids, texts, labels' source, media content); "" in older files.
    corpus_fingerprint: str = ""
    # The kept model (``bench predict``): {"folder": "<stem>.model", "weights_sha256": {fold: hash}};
    # empty when the run was made with --no-keep-model, by a method that cannot keep one, or earlier.
    model: dict[str, Any] = Field(default_factory=dict)
    provenance: Provenance = Field(default_factory=Provenance)

    def run_key(self) -> str:
        return f"{self.variant}-{self.modalities}-seed{self.seed}-{self.config_hash[:8]}"


def result_dir(results_root: Path, dataset: str, protocol: str, method: str) -> Path:
    return Path(results_root) / dataset / protocol / method


def result_path(results_root: Path, r: RunResult) -> Path:
    return result_dir(results_root, r.dataset, r.protocol, r.method) / f"{r.run_key()}.json"


def alternate_result_path(base: Path, manifest_hash: str) -> Path:
    """Where a result goes when ``base`` already holds the same run on another split manifest (e.g. a
    relabelled copy of a corpus with the same name): the manifest hash joins the name."""
    return base.with_name(f"{base.stem}-m{manifest_hash[:12]}.json")


def write_result(results_root: Path, r: RunResult, path: Path | None = None) -> Path:
    path = Path(path) if path is not None else result_path(results_root, r)
    atomic_write_text(path, r.model_dump_json(indent=2) + "\n")
    return path


def read_result(path: Path) -> RunResult:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MerbenchError(f"cannot read result file {path}: {e}", fix="delete it and run again") from e
    if not isinstance(data, dict):
        raise MerbenchError(f"result file {path} holds a JSON {type(data).__name__}, not a result object",
                            fix="move it out of the results folder")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise MerbenchError(f"result file {path} has schema version {data.get('schema_version')}, expected {SCHEMA_VERSION}",
                            fix="re-run it with this version of merbench")
    try:
        return RunResult.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3])
        raise MerbenchError(f"result file {path} is not a complete result ({problems})",
                            fix="delete it and run again, or move it out of the results folder") from None


def iter_results(results_root: Path, strict: bool = False):
    """Every readable result under ``results_root`` (sorted, so output is stable). A file that cannot be
    read (foreign or damaged JSON) is skipped with a warning, or raises when ``strict``; the CLI lists
    them with :func:`unreadable_results`."""
    for path in _result_files(results_root):
        try:
            result = read_result(path)
        except MerbenchError as e:
            if strict:
                raise
            log.warning("skipped: %s", e.message)
            continue
        yield path, result


def unreadable_results(results_root: Path) -> list[tuple[Path, str]]:
    """(path, why) of each JSON file under ``results_root`` that is not a readable result."""
    out = []
    for path in _result_files(results_root):
        try:
            read_result(path)
        except MerbenchError as e:
            out.append((path, e.message))
    return out


def _result_files(results_root: Path) -> list[Path]:
    return [p for p in sorted(Path(results_root).rglob("*.json")) if not p.name.startswith(".")]
