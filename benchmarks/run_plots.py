"""PNG plots the runner writes after every run: a confusion matrix and training curves.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing touches
the global backend or needs a display, and figures are freed when they go out of scope.
Files are written atomically: a reader never sees a half-written PNG.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from merbench.atomic import atomic_write

DPI = 100
# Keys that are bookkeeping, not curves.
_SKIP_KEYS = {"epoch", "step", "lr", "learning_rate", "time", "time_s", "epoch_time_s", "wall_time_s"}


def _save(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    # The temporary file ends in .tmp, so the format must be named.
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def _message(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])


def save_confusion_png(confusion: list[list[int]], label_names: Sequence[str], path: str | Path,
                       title: str = "") -> Path:
    """Confusion matrix (rows gold, columns predicted): cells coloured by the row share
    (per-class recall) and labelled with counts."""
    label_names = [str(n) for n in label_names]
    k = len(confusion)
    if any(len(row) != k for row in confusion):
        raise ValueError(f"confusion matrix for {path} is not square: {[len(r) for r in confusion]} columns per row")
    if k and len(label_names) != k:
        raise ValueError(f"confusion matrix for {path} has {k} classes but {len(label_names)} label names "
                         f"({label_names}); pass the run's label_names")
    size = min(2.2 + 0.55 * max(k, 2), 10.0)
    fig = Figure(figsize=(size + 0.8, size), layout="constrained")
    ax = fig.add_subplot()
    if title:
        ax.set_title(title, fontsize=10)
    if k == 0:
        _message(ax, "no predictions")
        return _save(fig, path)

    row_sums = [sum(row) for row in confusion]
    share = [[(c / s if s else 0.0) for c in row] for row, s in zip(confusion, row_sums)]
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of gold class")
    font = 9 if k <= 8 else max(5, 9 - (k - 8) // 2)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i][j]), ha="center", va="center", fontsize=font,
                    color="white" if share[i][j] > 0.5 else "black")
    ax.set_xticks(range(k), label_names, rotation=45, ha="right", fontsize=font)
    ax.set_yticks(range(k), label_names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    return _save(fig, path)


def _series(history: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, rec in enumerate(history):
        v = rec.get(key)
        if v is None or isinstance(v, bool):
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(v):
            continue
        x = rec.get("epoch", i + 1)
        xs.append(float(x) if isinstance(x, (int, float)) else float(i + 1))
        ys.append(v)
    return xs, ys


def save_curves_png(history: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Losses (left) and validation / training metrics (right) per epoch.

    Any key containing ``loss`` is a loss; other ``valid_*`` / ``train_*`` keys are metrics.
    Epochs come from an ``epoch`` key when present, else from the position (1-based).
    An empty history (e.g. a non-iterative method) gives a figure that says so.
    """
    history = list(history or [])
    keys: list[str] = []
    for rec in history:
        keys.extend(k for k in rec if k not in keys and k not in _SKIP_KEYS)
    losses = [k for k in keys if "loss" in k]
    metrics = [k for k in keys if k not in losses and (k.startswith("valid_") or k.startswith("train_"))]

    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    if title:
        fig.suptitle(title, fontsize=10)
    for ax, names, ylabel in ((ax_loss, losses, "loss"), (ax_metric, metrics, "score")):
        drawn = 0
        for name in names:
            xs, ys = _series(history, name)
            if not xs:
                continue
            style = "--" if name.startswith("train_") and ax is ax_metric else "-"
            ax.plot(xs, ys, style, marker="o" if len(xs) <= 30 else None, markersize=3, label=name)
            drawn += 1
        if not drawn:
            _message(ax, "no training history" if not history else f"no {ylabel} values recorded")
            continue
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax_loss.set_title("losses", fontsize=9)
    ax_metric.set_title("metrics", fontsize=9)
    return _save(fig, path)


def classification_report_text(per_class: dict, label_names: Sequence[str], accuracy: float | None = None,
                               ua: float | None = None, title: str = "") -> str:
    """A plain-text table as the seeds' ``classification_report``: precision, recall, F1 and support per
    class, then accuracy (WA), UA (mean recall) and the macro and support-weighted averages."""
    width = max([len(str(n)) for n in label_names] + [12])
    head = f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"
    lines = ([title, ""] if title else []) + [head, ""]
    rows = [(str(n), per_class[n]) for n in label_names if n in per_class]
    for name, c in rows:
        lines.append(f"{name:>{width}}  {c.precision:9.4f}  {c.recall:9.4f}  {c.f1:9.4f}  {c.support:9d}")
    total = sum(c.support for _, c in rows)
    lines.append("")
    if accuracy is not None:
        lines.append(f"{'accuracy (WA)':>{width}}  {'':>9}  {'':>9}  {accuracy:9.4f}  {total:9d}")
    if ua is not None:
        lines.append(f"{'UA':>{width}}  {'':>9}  {ua:9.4f}  {'':>9}  {total:9d}")
    if rows:
        for label, weights in (("macro avg", [1.0] * len(rows)), ("weighted avg", [c.support for _, c in rows])):
            w = sum(weights) or 1.0
            avg = [sum(getattr(c, k) * x for (_, c), x in zip(rows, weights)) / w for k in ("precision", "recall", "f1")]
            lines.append(f"{label:>{width}}  {avg[0]:9.4f}  {avg[1]:9.4f}  {avg[2]:9.4f}  {total:9d}")
    return "\n".join(lines) + "\n"


def save_per_class_png(per_class: dict, label_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Grouped bars of precision, recall and F1 per class, with each class's test support under its name."""
    names = [str(n) for n in label_names if n in per_class]
    fig = Figure(figsize=(max(4.5, 1.1 * len(names) + 2.0), 3.6), layout="constrained")
    ax = fig.add_subplot()
    if title:
        ax.set_title(title, fontsize=10)
    if not names:
        _message(ax, "no per-class scores")
        return _save(fig, path)
    width = 0.27
    for k, (key, colour) in enumerate((("precision", "#4C72B0"), ("recall", "#DD8452"), ("f1", "#55A868"))):
        xs = [i + (k - 1) * width for i in range(len(names))]
        ax.bar(xs, [getattr(per_class[n], key) for n in names], width, label=key, color=colour)
    ax.set_xticks(range(len(names)), [f"{n}\n(n={per_class[n].support})" for n in names], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return _save(fig, path)
