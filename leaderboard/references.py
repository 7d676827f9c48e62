"""Published reference numbers shown beside our runs ("reported in the literature, not run here").

The numbers live in ``references.yaml`` next to this file: a plain list of entries
``{dataset, protocol, method, modalities, metric, value, source, note}``, read into the same
type as a method's own published numbers (:class:`~merbench.interfaces.ReportedResult`). They are never
aggregated with our results; the leaderboard prints them in their own small table per section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from merbench.errors import ConfigError
from merbench.interfaces import ReportedResult
from merbench.metadata import parse_reported_list, read_yaml
from merbench.metrics import METRICS, metric_label

DEFAULT_PATH = Path(__file__).with_name("references.yaml")
TITLE = "Published results (reported, not reproduced here)"
FIELDS = ("dataset", "protocol", "method", "modalities", "metric", "value", "source", "note")  # all required


def load_references(path: str | Path | None = None) -> tuple[ReportedResult, ...]:
    """Read and validate a references file (default: ``references.yaml`` beside this module).

    A missing default file means no references; a missing explicit path is an error.
    """
    explicit = path is not None
    p = Path(path) if explicit else DEFAULT_PATH
    if not p.is_file():
        if explicit:
            raise ConfigError(f"references file {p} does not exist", fix="pass the path of a references .yaml file")
        return ()
    return parse_reported_list(p, read_yaml(p), FIELDS)


def references_for(dataset: str, protocol: str, references: Iterable[ReportedResult]) -> list[ReportedResult]:
    """The entries of one section, in a fixed order: by metric, best value first, then by name."""
    order = {m: i for i, m in enumerate(METRICS)}
    rows = [r for r in references if r.dataset == dataset and r.protocol == protocol]
    return sorted(rows, key=lambda r: (order.get(r.metric, len(order)), -r.value, r.method, r.modalities))


def _cell(text: Any) -> str:
    """A table cell: pipes escaped, no line breaks (same escaping as the leaderboard tables)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_references(dataset: str, protocol: str, references: Iterable[ReportedResult] | None = None) -> str:
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
