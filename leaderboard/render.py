"""Render an aggregated leaderboard as Markdown (for LEADERBOARD.md) or rich tables (for the CLI).

The Markdown is deterministic: the same result files give the same bytes (no timestamps,
no absolute paths, every ordering explicit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from merbench.interfaces import ReportedResult
from merbench.metrics import METRICS

from .aggregate import (
    Leaderboard,
    LeaderboardRow,
    LeaderboardSection,
    MethodLookup,
    MetricStat,
    aggregate,
    metric_label,
)
from .references import load_references, render_references

DEFAULT_TITLE = "merbench leaderboard"
DASH = "—"
MANIFEST_CHARS = 12

MODALITY_NAMES = {"t": "text", "a": "audio (speech)", "v": "video (face)"}


def fmt_stat(s: MetricStat) -> str:
    """``mean ± std`` with 2 decimals; the std is left out when there is one seed."""
    if s.mean is None:
        return DASH
    if s.std is None:
        return f"{s.mean:.2f}"
    return f"{s.mean:.2f} ± {s.std:.2f}"


def fmt_mean(s: MetricStat) -> str:
    return DASH if s.mean is None else f"{s.mean:.2f}"


def fmt_seeds(row: LeaderboardRow) -> str:
    return f"{', '.join(str(s) for s in row.seeds)} ({row.n})"


def _cell(text: Any) -> str:
    """A table cell: pipes escaped, no line breaks."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    sep = {"l": "---", "r": "---:", "c": ":---:"}
    out = ["| " + " | ".join(_cell(h) for h in header) + " |",
           "|" + "|".join(sep[a] for a in align) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


class _Footnotes:
    """Numbered footnotes, numbered in order of first use; identical texts share a number."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def ref(self, text: str) -> str:
        if text not in self.ids:
            self.ids[text] = len(self.ids) + 1
        return f"[^{self.ids[text]}]"

    def lines(self) -> list[str]:
        return [f"[^{i}]: {_cell(text)}" for text, i in self.ids.items()]


def fmt_selection(row: LeaderboardRow) -> str:
    """The validation metric that selected the row's epochs, e.g. ``W-F1``; — when nothing was selected."""
    return ", ".join(metric_label(m.strip()) for m in row.select_metric.split(",")) if row.select_metric else DASH


def _paper_cell(row: LeaderboardRow, notes: _Footnotes) -> str:
    p = row.paper
    if p is None:
        return DASH
    others = [r for r in p.all if r is not p.headline]
    also = "; ".join(f"{metric_label(r.metric)} {r.value:.2f}" + (f" ({r.source})" if r.source else "")
                     for r in others)
    if p.headline is not None:
        h = p.headline
        text = f"{row.method}, {metric_label(h.metric)} {h.value:.2f}"
        text += f": {h.source}" if h.source else ": source not given"
        if h.note:
            text += f" ({h.note})"
        if also:
            text += f"; the paper also reports {also}"
        return f"{h.value:.2f}{notes.ref(text + _variant_note(row, h))}"
    text = (f"{row.method}: the paper reports no {metric_label(row.headline_metric)} for this protocol, "
            f"only {also}")
    return f"{DASH}{notes.ref(text + _variant_note(row, p.all[0]))}"


def _variant_note(row: LeaderboardRow, reported) -> str:
    paper_variant = getattr(reported, "variant", "default") or "default"
    if paper_variant == (row.variant or "default"):
        return ""
    if row.paper is not None and row.paper.via == "paper":
        return (f"; our row is `{row.variant}`: the paper's model (`{paper_variant}`) on the paper's own "
                f"published features, at its dimensions and hyper-parameters")
    return (f"; our row is `{row.variant}`, a smaller training budget of the paper's model "
            f"(`{paper_variant}`), so it is not a full reproduction")


def _section_lines(section: LeaderboardSection, notes: _Footnotes,
                   references: Iterable[ReportedResult] = ()) -> list[str]:
    title = f"## {section.dataset} / {section.protocol}"
    if section.manifest_conflict:
        title += f" (manifest {section.manifest_hash[:MANIFEST_CHARS]})"
    headline = section.headline_metric
    desc = METRICS[headline].description if headline in METRICS else None
    n_runs = sum(r.n for r in section.rows)
    lines = [title, "",
             f"Headline metric: **{metric_label(headline)}**" + (f" ({desc})" if desc else "")
             + f" · protocol version `{section.protocol_version}`"
             + f" · manifest `{section.manifest_hash[:MANIFEST_CHARS]}`"
             + f" · {len(section.rows)} row{'s' if len(section.rows) != 1 else ''}, {n_runs} run{'s' if n_runs != 1 else ''}",
             ""]
    if section.test_n:
        support = ", ".join(f"{n} {c}" for n, c in (section.support or {}).items())
        lines += [f"Test set: n = {section.test_n}" + (f" (per class: {support})" if support else "") + ".", ""]
    if section.as_published:
        lines += ["> ⚠️ **As-published protocol (may leak).** This reproduces a paper's own split, which can "
                  "share speakers, sessions or dialogues between train and test. Its numbers are only for "
                  "comparison with that paper; do not rank methods on them.", ""]
    if section.manifest_conflict:
        others = ", ".join(f"`{h[:MANIFEST_CHARS]}`" for h in section.other_manifests)
        lines += [f"> ⚠️ **Different splits.** Other results of this protocol were made on manifest(s) {others}, "
                  "shown in their own section. Scores from different manifests are not comparable.", ""]

    metrics = section.metrics
    header = ["method", "variant", "modalities", "seeds (n)"]
    header += [f"{metric_label(m)} (headline)" if m == headline else metric_label(m) for m in metrics]
    header += ["selected by (valid)", "paper"]
    align = ["l", "l", "l", "l"] + ["r"] * len(metrics) + ["l", "r"]
    body = []
    for r in section.rows:
        body.append([r.method, r.label, r.modalities, fmt_seeds(r)]
                    + [fmt_stat(r.metrics[m]) for m in metrics] + [fmt_selection(r), _paper_cell(r, notes)])
    lines += _table(header, align, body) + [""]

    if section.label_names:
        lines += ["Per-class F1 (mean over seeds):", ""]
        header = ["method", "variant", "modalities"] + list(section.label_names)
        align = ["l", "l", "l"] + ["r"] * len(section.label_names)
        body = [[r.method, r.label, r.modalities] + [fmt_mean(r.per_class_f1[n]) for n in section.label_names]
                for r in section.rows]
        if section.support:
            body.append(["test support (n)", "", ""] + [str(section.support.get(n, DASH)) for n in section.label_names])
        lines += _table(header, align, body) + [""]

    extra: list[str] = list(section.warnings)
    for r in section.rows:
        kinds = dict(r.bad_media_by_kind)
        no_face = {k: kinds.pop(k) for k in list(kinds) if k.endswith("_no_face")}
        if r.bad_media:
            by_kind = f" ({', '.join(f'{k} {n}' for k, n in kinds.items())})" if kinds else ""
            extra.append(f"{r.method}/{r.label}/{r.modalities}: up to {r.bad_media} unreadable media "
                         f"file(s) per run{by_kind} were replaced by zero features")
        if no_face:
            extra.append(f"{r.method}/{r.label}/{r.modalities}: no face found in up to {sum(no_face.values())} "
                         "video(s) per run; whole frames stood in for the face crop")
    missing = sorted({(r.method, r.paper_error) for r in section.rows if r.paper_error})
    extra += [f"no paper number for `{m}`: {err}" for m, err in missing]
    if extra:
        lines += ["Notes:", ""] + [f"- {_cell(x)}" for x in extra] + [""]

    if section.unmatched_reported:
        # The paper's number stays beside ours even when we could not run its setting here.
        lines += ["Reported by the papers of methods above, for a setting with no run here (other modalities "
                  "or variant), so not beside any row:", ""]
        body = [[name, getattr(r, "variant", "default") or "default", r.modalities, metric_label(r.metric),
                 f"{r.value:.2f}", r.source or "source not given", r.note or DASH]
                for name, r in section.unmatched_reported]
        lines += _table(["method", "variant", "modalities", "metric", "reported", "source", "note"],
                        ["l", "l", "l", "l", "r", "l", "l"], body) + [""]

    # Published numbers go last and in their own table, so they are never read as our runs.
    published = render_references(section.dataset, section.protocol, references)
    if published:
        lines += published.rstrip("\n").split("\n") + [""]
    return lines


def _preamble() -> list[str]:
    metric_lines = [f"{m.label} = {m.description}" for m in METRICS.values()]
    mods = ", ".join(f"{k} = {v}" for k, v in MODALITY_NAMES.items())
    return [
        "Generated by `bench leaderboard` from the result files written by `bench run`; do not edit by hand.",
        "",
        "- Values are percent: mean ± sample standard deviation over seeds; n = number of seeds "
        "(the std is left out when n = 1).",
        "- Model selection (early stopping, checkpoints, hyper-parameters) used the validation split only; "
        "test labels were never seen during training or selection. `selected by (valid)` is the validation metric "
        "that chose the epoch: the protocol's headline unless the method's config names another.",
        "- `variant` names the config variant and every setting that differs from that variant's defaults "
        "(e.g. `default, epochs=1`).",
        "- One section per dataset and protocol; rows are sorted by the protocol's headline metric, best first.",
        "- `paper` is the number the method's paper reports for the headline metric under the same protocol and "
        "modalities (source in the footnote), or — when it reports none; numbers a paper reports for a setting "
        "with no run here (other modalities or variant) are listed under the section's tables.",
        "- Metrics: " + "; ".join(metric_lines) + ".",
        f"- Modalities: {mods}.",
        "",
    ]


def render_leaderboard(board: Leaderboard, title: str = DEFAULT_TITLE,
                       references: Iterable[ReportedResult] | None = None) -> str:
    """Markdown for an already aggregated leaderboard.

    ``references`` are the published numbers to show per section (default: ``references.yaml``).
    """
    notes = _Footnotes()
    refs = tuple(load_references() if references is None else references)
    lines = [f"# {title}", ""] + _preamble()
    if not board.sections:
        lines += ["_No results yet._ Run `bench run ...`, then `bench leaderboard`.", ""]
    else:
        lines += ["Sections:", ""]
        for s in board.sections:
            suffix = f" (manifest {s.manifest_hash[:MANIFEST_CHARS]})" if s.manifest_conflict else ""
            flag = " — as published, may leak" if s.as_published else ""
            lines.append(f"- {s.dataset} / {s.protocol}{suffix}{flag}")
        lines.append("")
        for s in board.sections:
            lines += _section_lines(s, notes, refs)
    foot = notes.lines()
    if foot:
        lines += foot + [""]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def render_markdown(results_root: str | Path, title: str = DEFAULT_TITLE,
                    method_lookup: MethodLookup | None = None) -> str:
    """Read every result under ``results_root`` and return the leaderboard as Markdown."""
    return render_leaderboard(aggregate(results_root, method_lookup=method_lookup), title=title)


def render_rich_tables(board: Leaderboard) -> list:
    """One ``rich.table.Table`` per section, for the terminal (``bench leaderboard`` without --output)."""
    from rich.table import Table

    tables = []
    for s in board.sections:
        caption = []
        if s.as_published:
            caption.append("AS PUBLISHED: may leak, compare only with the paper")
        if s.manifest_conflict:
            caption.append("other results of this protocol used different splits")
        caption += list(s.warnings)
        t = Table(
            title=f"{s.dataset} / {s.protocol}  (headline {metric_label(s.headline_metric)}, "
                  f"v{s.protocol_version}, manifest {s.manifest_hash[:MANIFEST_CHARS]})",
            caption="\n".join(caption) or None,
        )
        for c in ("method", "variant", "modalities", "seeds (n)"):
            t.add_column(c)
        for m in s.metrics:
            t.add_column(metric_label(m) + (" *" if m == s.headline_metric else ""), justify="right")
        t.add_column("selected by")
        t.add_column("paper", justify="right")
        for r in s.rows:
            paper = DASH
            if r.paper is not None and r.paper.headline is not None:
                paper = f"{r.paper.headline.value:.2f}"
            t.add_row(r.method, r.label, r.modalities, fmt_seeds(r),
                      *[fmt_stat(r.metrics[m]) for m in s.metrics], fmt_selection(r), paper)
        tables.append(t)
    return tables
