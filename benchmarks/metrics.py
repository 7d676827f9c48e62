"""The metric registry: every scalar metric the suite reports, defined once.

Each :class:`Metric` has a name (the key in result files and configs), a short label (the
leaderboard's column head), a description, whether higher is better, and one function from
confusion matrices to scores. The runner, the trainer's validation scores, the statistics
(bootstrap resamples) and the leaderboard all go through :data:`METRICS`; a protocol's
``metrics`` list decides which of them a run computes and the leaderboard shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import UnknownNameError
from .results import ClassScores, Metrics


def _counts(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(B, K, K) confusion counts (rows gold) -> true positives, support, predicted (B, K), total (B,)."""
    conf = conf.astype(np.float64)
    tp = np.diagonal(conf, axis1=1, axis2=2)
    support = conf.sum(axis=2)
    return tp, support, conf.sum(axis=1), support.sum(axis=1)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, 0 where b is 0 (sklearn's zero_division=0)."""
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def _f1(conf: np.ndarray) -> np.ndarray:
    tp, support, predicted, _ = _counts(conf)
    return _div(2 * tp, support + predicted)  # = 2PR / (P + R), 0 where undefined


def _accuracy(conf: np.ndarray) -> np.ndarray:
    tp, _, _, n = _counts(conf)
    return _div(tp.sum(axis=1), n)


def _ua(conf: np.ndarray) -> np.ndarray:
    tp, support, _, _ = _counts(conf)
    present = support > 0  # mean recall over the classes present in the gold labels
    return _div(_div(tp, support).sum(axis=1), present.sum(axis=1).astype(np.float64))


def _weighted_f1(conf: np.ndarray) -> np.ndarray:
    _, support, _, n = _counts(conf)
    return _div((_f1(conf) * support).sum(axis=1), n)


def _macro_f1(conf: np.ndarray) -> np.ndarray:
    return _f1(conf).mean(axis=1)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # short column head, e.g. "W-F1"
    description: str
    higher_is_better: bool
    from_confusions: Callable[[np.ndarray], np.ndarray]  # (B, K, K) counts, rows gold -> (B,) scores in [0, 1]


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "WA", "weighted accuracy (overall accuracy)", True, _accuracy),
    Metric("ua", "UA", "unweighted accuracy (mean per-class recall)", True, _ua),
    Metric("weighted_f1", "W-F1", "support-weighted F1", True, _weighted_f1),
    Metric("macro_f1", "M-F1", "macro F1 (unweighted mean of per-class F1)", True, _macro_f1),
)}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise UnknownNameError(f"unknown metric {name!r}", fix=f"use one of: {', '.join(METRICS)}")
    return METRICS[name]


def metric_label(name: str) -> str:
    return METRICS[name].label if name in METRICS else name


def ordered(names: Sequence[str], first: str | None = None) -> tuple[str, ...]:
    """``names`` in registry order, ``first`` (a headline) leading."""
    rest = tuple(m for m in METRICS if m in set(names) and m != first)
    return ((first,) if first else ()) + rest


def confusion(gold: Sequence[int], pred: Sequence[int], k: int) -> np.ndarray:
    """(K, K) counts, rows gold, columns predicted."""
    gold, pred = np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    return np.bincount(gold * k + pred, minlength=k * k).reshape(k, k)


def scores_from_confusions(conf: np.ndarray, metric: str) -> np.ndarray:
    """(B, K, K) confusion counts -> (B,) scores (many bootstrap resamples at once)."""
    return get_metric(metric).from_confusions(conf)


def score(gold: Sequence[int], pred: Sequence[int], k: int, metric: str) -> float:
    return float(scores_from_confusions(confusion(gold, pred, k)[None], metric)[0])


def classification_metrics(gold: Sequence[int], pred: Sequence[int], label_names: Sequence[str],
                           metrics: Sequence[str] | None = None) -> Metrics:
    """Scalar ``metrics`` (default: all registered), per-class scores and the confusion matrix."""
    k = len(label_names)
    conf = confusion(gold, pred, k)
    tp, support, predicted, _ = (x[0] for x in _counts(conf[None]))
    precision, recall, f1 = _div(tp, predicted), _div(tp, support), _f1(conf[None])[0]
    return Metrics(
        **{name: float(get_metric(name).from_confusions(conf[None])[0]) for name in (metrics or METRICS)},
        per_class={n: ClassScores(precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i]),
                                  support=int(support[i])) for i, n in enumerate(label_names)},
        confusion=conf.tolist(),
        n=int(conf.sum()),
    )


def combine_folds(fold_metrics: list[Metrics], gold: Sequence[int], pred: Sequence[int],
                  label_names: Sequence[str], metrics: Sequence[str] | None = None) -> Metrics:
    """Scalars: mean over folds. Per-class scores and confusion: from the pooled predictions."""
    if len(fold_metrics) == 1:
        return fold_metrics[0]
    pooled = classification_metrics(gold, pred, label_names, metrics)
    for m in metrics or METRICS:
        setattr(pooled, m, float(np.mean([getattr(fm, m) for fm in fold_metrics])))
    return pooled
