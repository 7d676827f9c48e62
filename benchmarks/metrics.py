"""Classification metrics the leaderboard reports: WA, UA, weighted / macro F1, per class."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from .results import ClassScores, Metrics

SCALAR_METRICS = ("accuracy", "ua", "weighted_f1", "macro_f1")


def classification_metrics(gold: Sequence[int], pred: Sequence[int], label_names: Sequence[str]) -> Metrics:
    gold, pred = np.asarray(gold), np.asarray(pred)
    labels = list(range(len(label_names)))
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    present = np.unique(gold)
    return Metrics(
        accuracy=float(accuracy_score(gold, pred)),
        # UA over the classes present in the gold labels (sklearn warns otherwise).
        ua=float(balanced_accuracy_score(gold, pred)) if len(present) else 0.0,
        weighted_f1=float(f1_score(gold, pred, labels=labels, average="weighted", zero_division=0)),
        macro_f1=float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        per_class={n: ClassScores(precision=float(p[i]), recall=float(r[i]), f1=float(f[i]), support=int(s[i]))
                   for i, n in enumerate(label_names)},
        confusion=confusion_matrix(gold, pred, labels=labels).tolist(),
        n=int(len(gold)),
    )


def score(gold: Sequence[int], pred: Sequence[int], metric: str, label_names: Sequence[str]) -> float:
    return float(getattr(classification_metrics(gold, pred, label_names), metric))


def combine_folds(fold_metrics: list[Metrics], gold: Sequence[int], pred: Sequence[int],
                  label_names: Sequence[str]) -> Metrics:
    """Scalars: mean over folds. Per-class scores and confusion: from the pooled predictions."""
    pooled = classification_metrics(gold, pred, label_names)
    if len(fold_metrics) == 1:
        return fold_metrics[0]
    for m in SCALAR_METRICS:
        setattr(pooled, m, float(np.mean([getattr(fm, m) for fm in fold_metrics])))
    return pooled
