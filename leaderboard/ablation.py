"""Leaderboard extras: confidence intervals, significance against the best row, ablation
matrices, and per-protocol figures (a bar chart with error bars, a per-class F1 heat map).

``render_extras(results_root, out_dir)`` returns Markdown to append to the leaderboard and
writes the figures into ``out_dir``; like the leaderboard it is deterministic (fixed
bootstrap seed, sorted inputs, no timestamps).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from merbench.atomic import atomic_write
from merbench.errors import MerbenchError
from merbench.stats import Predictions, paired_bootstrap, paired_seed_test, predictions_path, read_predictions, seed_stats

from .aggregate import (
    Leaderboard,
    LeaderboardRow,
    LeaderboardSection,
    MethodLookup,
    MetricStat,
    aggregate,
    metric_label,
)

DASH = "—"
ALPHA = 0.05
MANIFEST_CHARS = 12
DPI = 100


# -- ablation matrices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationRow:
    variant: str
    modalities: str
    config_hash: str
    n: int
    metrics: dict[str, MetricStat]  # percent, over seeds
    delta: dict[str, float | None]  # mean minus the reference's mean, percentage points
    reference: bool
    label: str = ""  # the leaderboard row's label: variant and config changes


@dataclass(frozen=True)
class AblationMatrix:
    """One method in one leaderboard section: every modality subset / variant it was run with."""

    method: str
    dataset: str
    protocol: str
    manifest_hash: str
    headline_metric: str
    metric_names: tuple[str, ...]  # headline first
    rows: tuple[AblationRow, ...]  # reference (full model) first
    manifest_conflict: bool = False  # the protocol has results on other split manifests too

    @property
    def reference(self) -> AblationRow:
        return self.rows[0]


def _reference(rows: Sequence[LeaderboardRow]) -> LeaderboardRow:
    """The full model: the most modalities, the default variant if there is one, then the best headline."""
    def key(r: LeaderboardRow):
        h = r.headline.mean
        return (-len(r.modalities), r.variant != "default", h is None, -(h or 0.0), -r.n, r.variant, r.config_hash)

    return sorted(rows, key=key)[0]


def _mod_order(key: str) -> tuple[int, ...]:
    return tuple("tav".index(c) if c in "tav" else 3 for c in key)  # text, audio, video: the usual order


def ablation_matrix(section: LeaderboardSection, method: str) -> AblationMatrix | None:
    """The ablation matrix of ``method`` in ``section``; None when it has fewer than two rows there."""
    rows = [r for r in section.rows if r.method == method]
    if len(rows) < 2:
        return None
    ref = _reference(rows)
    names = section.metrics

    def delta(r: LeaderboardRow, m: str) -> float | None:
        a, b = r.metrics.get(m), ref.metrics.get(m)
        if a is None or b is None or a.mean is None or b.mean is None:
            return None
        return a.mean - b.mean

    order = sorted((r for r in rows if r is not ref),
                   key=lambda r: (-len(r.modalities), _mod_order(r.modalities), r.variant != "default", r.variant,
                                  r.config_hash))
    out = [AblationRow(r.variant, r.modalities, r.config_hash, r.n, {m: r.metrics[m] for m in names},
                       {m: (None if r is ref else delta(r, m)) for m in names}, r is ref, r.label)
           for r in [ref, *order]]
    return AblationMatrix(method, section.dataset, section.protocol, section.manifest_hash, section.headline_metric,
                          names, tuple(out), section.manifest_conflict)


def ablation_matrices(board: Leaderboard) -> list[AblationMatrix]:
    out = []
    for s in board.sections:
        for method in sorted({r.method for r in s.rows}):
            m = ablation_matrix(s, method)
            if m is not None:
                out.append(m)
    return out


# -- significance against the best row ------------------------------------------------------------------


@dataclass(frozen=True)
class RowSignificance:
    row: LeaderboardRow
    ci_low: float | None  # percent, t interval of the headline over seeds
    ci_high: float | None
    delta: float | None  # headline mean minus the best row's, percentage points
    p_bootstrap: float | None  # paired bootstrap over test utterances (mean over seeds), vs the best row
    p_seeds: float | None  # paired t-test over shared seeds, vs the best row
    note: str = ""  # why a test is missing

    @property
    def significant(self) -> bool:
        return self.p_bootstrap is not None and self.p_bootstrap < ALPHA


class _PredictionCache:
    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, Predictions | str] = {}

    def runs(self, row: LeaderboardRow) -> list[Predictions] | str:
        """Every seed's predictions of a row, or the reason they cannot be read."""
        out = []
        for f in row.files:
            if f not in self.cache:
                path = predictions_path(self.root / f)
                try:
                    self.cache[f] = read_predictions(path) if path.exists() else f"no predictions file beside {f}"
                except MerbenchError as e:
                    self.cache[f] = e.message
            got = self.cache[f]
            if isinstance(got, str):
                return got
            out.append(got)
        return out or "no result files"


def _seed_scores(root: Path, row: LeaderboardRow, metric: str) -> dict[int, float]:
    """seed -> headline score in percent, read from the row's result files."""
    from merbench.results import read_result

    out = {}
    for f in row.files:
        r = read_result(root / f)
        v = getattr(r.test, metric, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[r.seed] = float(v) * 100.0
    return out


def section_significance(section: LeaderboardSection, results_root: str | Path, n_resamples: int = 1000,
                         seed: int = 0, confidence: float = 0.95) -> list[RowSignificance]:
    """CI of every row's headline, and tests of every other row against the best (first) row."""
    root = Path(results_root)
    metric = section.headline_metric
    preds = _PredictionCache(root)
    best = section.rows[0] if section.rows else None
    best_runs = preds.runs(best) if best is not None else "no rows"
    best_seeds = _seed_scores(root, best, metric) if best is not None else {}
    out = []
    for r in section.rows:
        st = seed_stats(list(_seed_scores(root, r, metric).values()), confidence)
        if r is best:
            out.append(RowSignificance(r, st.ci_low, st.ci_high, None, None, None))
            continue
        delta = None if r.headline.mean is None or best.headline.mean is None else r.headline.mean - best.headline.mean
        p_boot, note = None, ""
        runs = preds.runs(r)
        if isinstance(runs, str) or isinstance(best_runs, str):
            note = runs if isinstance(runs, str) else f"best row: {best_runs}"
        else:
            try:
                p_boot = paired_bootstrap(runs, best_runs, metric, n_resamples=n_resamples, seed=seed).p_value
            except MerbenchError as e:
                note = e.message
        t = paired_seed_test(_seed_scores(root, r, metric), best_seeds)
        out.append(RowSignificance(r, st.ci_low, st.ci_high, delta, p_boot, t.p_value, note))
    return out


# -- figures -----------------------------------------------------------------------------------------


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None}))


def _row_label(r: LeaderboardRow) -> str:
    v = "" if r.label == "default" else f" [{r.label}]"
    return f"{r.method}{v} ({r.modalities})"


def save_bar_chart(section: LeaderboardSection, path: str | Path, results_root: str | Path,
                   confidence: float = 0.95) -> Path:
    """Headline mean per row with a t confidence interval over seeds as error bars (none for one seed)."""
    rows = list(section.rows)
    root = Path(results_root)
    labels, means, errs = [], [], []
    for r in rows:
        st = seed_stats(list(_seed_scores(root, r, section.headline_metric).values()), confidence)
        labels.append(_row_label(r) + ("" if st.half_width is not None else " (n = 1)" if st.n == 1 else ""))
        means.append(st.mean if st.mean is not None else 0.0)
        errs.append(st.half_width)
    height = 1.2 + 0.38 * max(len(rows), 1)
    fig = Figure(figsize=(7.5, height), layout="constrained")
    ax = fig.add_subplot()
    y = list(range(len(rows)))[::-1]  # best row on top
    ax.barh(y, means, color="#4c72b0")
    # Error bars only where an interval exists: one seed has none, and a zero-width bar would read as certainty.
    with_ci = [(yi, m, e) for yi, m, e in zip(y, means, errs) if e is not None]
    if with_ci:
        ax.errorbar([m for _, m, _ in with_ci], [yi for yi, _, _ in with_ci], xerr=[e for *_, e in with_ci],
                    fmt="none", ecolor="0.2", capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(f"{metric_label(section.headline_metric)} (%), mean over seeds, error bar {confidence:.0%} CI "
                  "(none for n = 1)")
    ax.set_title(f"{section.dataset} / {section.protocol}", fontsize=10)
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, Path(path))


def save_class_f1_heatmap(section: LeaderboardSection, path: str | Path) -> Path:
    """Per-class F1 (mean over seeds) of every row: rows of the leaderboard x classes."""
    rows, classes = list(section.rows), list(section.label_names)
    data = [[(r.per_class_f1[c].mean if c in r.per_class_f1 and r.per_class_f1[c].mean is not None else math.nan)
             for c in classes] for r in rows]
    fig = Figure(figsize=(2.8 + 0.75 * max(len(classes), 1), 1.3 + 0.38 * max(len(rows), 1)), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="F1 (%)")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [_row_label(r) for r in rows], fontsize=8)
    for i, line in enumerate(data):
        for j, v in enumerate(line):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    ax.set_title(f"{section.dataset} / {section.protocol}: per-class F1", fontsize=10)
    return _save(fig, Path(path))


# -- markdown -----------------------------------------------------------------------------------------


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    sep = {"l": "---", "r": "---:"}
    return (["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(sep[a] for a in align) + "|"]
            + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows])


def _stat(s: MetricStat | None) -> str:
    if s is None or s.mean is None:
        return DASH
    return f"{s.mean:.2f}" if s.std is None else f"{s.mean:.2f} ± {s.std:.2f}"


def _signed(x: float | None) -> str:
    return DASH if x is None else f"{x:+.2f}"


def _p(p: float | None) -> str:
    if p is None:
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _title(s: LeaderboardSection) -> str:
    return f"{s.dataset} / {s.protocol}" + (f" (manifest {s.manifest_hash[:MANIFEST_CHARS]})" if s.manifest_conflict else "")


def _slug(s: LeaderboardSection) -> str:
    safe = lambda x: "".join(c if c.isalnum() or c in "-_." else "_" for c in x)  # noqa: E731
    return f"{safe(s.dataset)}__{safe(s.protocol)}__{s.manifest_hash[:MANIFEST_CHARS]}"


def render_ablation(m: AblationMatrix) -> list[str]:
    ref = m.reference
    manifest = f" (manifest {m.manifest_hash[:MANIFEST_CHARS]})" if m.manifest_conflict else ""
    lines = [f"### {m.method} on {m.dataset} / {m.protocol}{manifest}", "",
             f"Reference (full model): variant `{ref.label or ref.variant}`, modalities `{ref.modalities}`. "
             "Cells: mean ± std over seeds (change against the reference, percentage points).", ""]
    header = ["variant", "modalities", "n"] + [metric_label(x) + (" (headline)" if x == m.headline_metric else "")
                                               for x in m.metric_names]
    body = []
    for r in m.rows:
        variant = r.label or r.variant
        if r.reference:
            variant += " (reference)"
        cells = [_stat(r.metrics[x]) + ("" if r.reference else f" ({_signed(r.delta[x])})") for x in m.metric_names]
        body.append([variant, r.modalities, str(r.n)] + cells)
    return lines + _table(header, "lll" + "r" * len(m.metric_names), body) + [""]


def render_significance(section: LeaderboardSection, sig: list[RowSignificance], images: list[str]) -> list[str]:
    h = metric_label(section.headline_metric)
    lines = [f"### {_title(section)}", ""]
    header = ["method", "variant", "modalities", "n", f"{h} mean", "95% CI", "Δ vs best", "p (bootstrap)",
              "p (t-test, seeds)", ""]
    body, notes = [], []
    for i, s in enumerate(sig):
        r = s.row
        ci = DASH if s.ci_low is None else f"[{s.ci_low:.2f}, {s.ci_high:.2f}]"
        mark = "best" if i == 0 else ("*" if s.significant else "")
        body.append([r.method, r.label, r.modalities, str(r.n),
                     DASH if r.headline.mean is None else f"{r.headline.mean:.2f}", ci,
                     DASH if i == 0 else _signed(s.delta), _p(s.p_bootstrap), _p(s.p_seeds), mark])
        if s.note:
            notes.append(f"{r.method}/{r.label}/{r.modalities}: no bootstrap test ({s.note})")
    lines += _table(header, "lllrrrrrrl", body) + [""]
    if notes:
        lines += ["Notes:", ""] + [f"- {_cell(n)}" for n in notes] + [""]
    for img in images:
        lines += [img, ""]
    return lines


def render_extras(results_root: str | Path, out_dir: str | Path, board: Leaderboard | None = None,
                  markdown_dir: str | Path | None = None, method_lookup: MethodLookup | None = None,
                  n_resamples: int = 1000, seed: int = 0, figures: bool = True) -> str:
    """Markdown (CI and significance per section, ablation matrices, figure links) to append to
    the leaderboard; figures are written into ``out_dir``.

    Image links are relative to ``markdown_dir``, the folder the leaderboard file is written to
    (default: the parent of ``out_dir``).
    """
    root = Path(results_root)
    out_dir = Path(out_dir)
    md_dir = Path(markdown_dir) if markdown_dir is not None else out_dir.parent
    if board is None:
        board = aggregate(root, method_lookup=method_lookup)
    if not board.sections:
        return ""
    lines = ["## Confidence intervals and significance", "",
             "- `95% CI`: t-distribution confidence interval of the headline mean over seeds (n − 1 degrees of "
             "freedom; none for one seed).",
             f"- `p (bootstrap)`: paired bootstrap over test utterances ({n_resamples} resamples, within each fold, "
             "same resamples for both rows, each row's score the mean over its seeds) of the row against the best "
             "row of its section; two-sided.",
             "- `p (t-test, seeds)`: paired t-test on per-seed headline scores, over the seeds both rows ran.",
             f"- `*`: significantly below the best row (bootstrap p < {ALPHA}). No correction for multiple comparisons.",
             ""]
    for s in board.sections:
        if not s.rows:
            continue
        images = []
        if figures:
            bars = save_bar_chart(s, out_dir / f"{_slug(s)}__bars.png", root)
            heat = save_class_f1_heatmap(s, out_dir / f"{_slug(s)}__class_f1.png")
            for p, alt in ((bars, "headline per row with 95% CI"), (heat, "per-class F1")):
                link = Path(os.path.relpath(p, md_dir)).as_posix()
                images.append(f"![{_title(s)}: {alt}]({link})")
        lines += render_significance(s, section_significance(s, root, n_resamples, seed), images)
    matrices = ablation_matrices(board)
    if matrices:
        lines += ["## Ablations", "",
                  "Per method and protocol: every modality subset and config variant that was run, against the "
                  "full model (most modalities, default variant).", ""]
        for m in matrices:
            lines += render_ablation(m)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
