"""Statistics over seeds and over test utterances.

- :func:`seed_stats`: mean, sample standard deviation and a t-distribution confidence
  interval of one score over seeds.
- :func:`paired_bootstrap`: two systems compared on the same test utterances, resampling
  utterances with replacement (paired: both systems are scored on the same resample).
  Multi-fold protocols are resampled within each fold and scored as the mean of per-fold
  metrics, as the runner combines folds. Each system may be several seeds; its score on a
  resample is then the mean over its seeds.
- :func:`paired_seed_test`: a paired t-test on per-seed headline scores of two systems run
  with the same seeds.

Scores are fractions in [0, 1] unless a function says otherwise. Every metric comes from the
registry ``merbench.metrics.METRICS`` (one definition, from confusion matrices).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import MerbenchError
from .metrics import METRICS, score, scores_from_confusions


# -- over seeds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedStats:
    """Mean, sample std (ddof=1) and a ``confidence`` interval of the mean (t distribution, n-1 dof).

    ``std`` and the interval are None with fewer than two values.
    """

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95

    @property
    def half_width(self) -> float | None:
        return None if self.ci_high is None or self.mean is None else self.ci_high - self.mean


def seed_stats(values: Sequence[float], confidence: float = 0.95) -> SeedStats:
    from scipy import stats

    vals = np.array([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=np.float64)
    n = len(vals)
    if n == 0:
        return SeedStats(0, None, None, None, None, confidence)
    mean = float(vals.mean())
    if n == 1:
        return SeedStats(1, mean, None, None, None, confidence)
    std = float(vals.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    return SeedStats(n, mean, std, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class PairedTest:
    """Paired t-test over the seeds both systems ran. ``p_value`` is None below two pairs."""

    n: int
    seeds: tuple[int, ...]
    mean_diff: float | None  # a - b
    t: float | None
    p_value: float | None


def paired_seed_test(a: Mapping[int, float], b: Mapping[int, float]) -> PairedTest:
    """``a`` and ``b`` map seed -> score; only seeds present in both are paired."""
    from scipy import stats

    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return PairedTest(0, (), None, None, None)
    x = np.array([a[s] for s in seeds], dtype=np.float64)
    y = np.array([b[s] for s in seeds], dtype=np.float64)
    diff = x - y
    if len(seeds) < 2:
        return PairedTest(len(seeds), seeds, float(diff.mean()), None, None)
    if np.allclose(diff, diff[0]):
        # Constant differences: the t statistic is undefined (zero variance). Identical scores
        # carry no evidence of a difference; a constant non-zero shift is as strong as it gets.
        return PairedTest(len(seeds), seeds, float(diff.mean()), None, 1.0 if abs(diff[0]) < 1e-12 else 0.0)
    res = stats.ttest_rel(x, y)
    return PairedTest(len(seeds), seeds, float(diff.mean()), float(res.statistic), float(res.pvalue))


# -- predictions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Predictions:
    """The ``.predictions.csv`` beside a result file: per test utterance, its fold, gold and predicted class."""

    path: str
    label_names: tuple[str, ...]
    uids: tuple[str, ...]
    folds: np.ndarray  # (N,) fold index into fold_names
    fold_names: tuple[str, ...]
    gold: np.ndarray  # (N,) class index
    pred: np.ndarray  # (N,) class index


def predictions_path(result_file: str | Path) -> Path:
    return Path(result_file).with_suffix(".predictions.csv")


def read_predictions(path: str | Path) -> Predictions:
    """Read a predictions CSV (columns uid, fold, gold, pred, p_<label>...)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise MerbenchError(f"cannot read predictions file {path}: {e}",
                            fix="re-run the run that wrote it (bench run ... --force)") from None
    if not rows or rows[0][:4] != ["uid", "fold", "gold", "pred"]:
        raise MerbenchError(f"predictions file {path}: header must start with uid,fold,gold,pred",
                            fix="re-run the run that wrote it with this version of merbench")
    labels = tuple(c[2:] for c in rows[0][4:] if c.startswith("p_"))
    if not labels:
        raise MerbenchError(f"predictions file {path}: no p_<label> columns, so the label set is unknown")
    index = {n: i for i, n in enumerate(labels)}
    uids, folds, gold, pred, fold_names = [], [], [], [], {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 4:
            raise MerbenchError(f"predictions file {path}, row {line}: {len(row)} columns, expected at least 4")
        uid, fold, g, p = row[:4]
        if g not in index or p not in index:
            bad = g if g not in index else p
            raise MerbenchError(f"predictions file {path}, row {line}: label {bad!r} is not one of {list(labels)}")
        uids.append(uid)
        folds.append(fold_names.setdefault(fold, len(fold_names)))
        gold.append(index[g])
        pred.append(index[p])
    return Predictions(str(path), labels, tuple(uids), np.array(folds, dtype=np.int64), tuple(fold_names),
                       np.array(gold, dtype=np.int64), np.array(pred, dtype=np.int64))


def predictions_score(p: Predictions, metric: str) -> float:
    """The run's own score: per fold, then the mean over folds (what the result file holds)."""
    k = len(p.label_names)
    return float(np.mean([score(p.gold[p.folds == f], p.pred[p.folds == f], k, metric)
                          for f in range(len(p.fold_names))]))


# -- paired bootstrap ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    metric: str
    n: int  # test utterances
    n_resamples: int
    score_a: float  # on the real test set (mean over seeds)
    score_b: float
    delta: float  # a - b
    ci_low: float  # percentile interval of the delta
    ci_high: float
    p_value: float  # two-sided, null: no difference
    confidence: float = 0.95


def _align(systems: Sequence[Predictions], ref: Predictions) -> list[np.ndarray]:
    """Row order of each run matching ``ref``'s utterances; every run must cover the same test set."""
    def keys(uids) -> list[tuple[str, int]]:
        # (uid, occurrence): an as-published protocol may hold one utterance several times
        seen: dict[str, int] = {}
        out = []
        for u in uids:
            seen[u] = seen.get(u, 0) + 1
            out.append((u, seen[u]))
        return out

    order = {k: i for i, k in enumerate(keys(ref.uids))}
    out = []
    for p in systems:
        if p.label_names != ref.label_names:
            raise MerbenchError(f"{p.path} and {ref.path} use different label sets "
                                f"({list(p.label_names)} vs {list(ref.label_names)})",
                                fix="compare runs of the same protocol only")
        pkeys = keys(p.uids)
        if len(pkeys) != len(order) or set(pkeys) != set(order):
            raise MerbenchError(f"{p.path} and {ref.path} do not cover the same test utterances "
                                f"({len(p.uids)} vs {len(ref.uids)})",
                                fix="compare runs of the same protocol and split manifest only")
        idx = np.empty(len(p.uids), dtype=np.int64)
        for i, k in enumerate(pkeys):
            idx[order[k]] = i
        if not np.array_equal(p.gold[idx], ref.gold):
            raise MerbenchError(f"{p.path} and {ref.path} disagree on gold labels",
                                fix="compare runs of the same protocol and split manifest only")
        out.append(idx)
    return out


def paired_bootstrap(a: Predictions | Sequence[Predictions], b: Predictions | Sequence[Predictions],
                     metric: str = "weighted_f1", n_resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95, chunk: int = 200) -> BootstrapResult:
    """Paired bootstrap over test utterances of system ``a`` against system ``b``.

    Each system is one run or several (seeds); a system's score is the mean over its runs.
    Utterances are resampled with replacement within each fold (fold sizes kept), and the
    same resample is used for every run of both systems. The p-value is two-sided, from the
    bootstrap distribution shifted to the null (Efron & Tibshirani, ch. 16):
    ``(1 + #{|delta* - delta| >= |delta|}) / (1 + B)``.
    """
    a = [a] if isinstance(a, Predictions) else list(a)
    b = [b] if isinstance(b, Predictions) else list(b)
    if not a or not b:
        raise MerbenchError("paired_bootstrap needs at least one run on each side")
    if metric not in METRICS:
        raise MerbenchError(f"unknown metric {metric!r}", fix=f"use one of: {', '.join(METRICS)}")
    ref = a[0]
    aligned = _align(a + b, ref)
    k = len(ref.label_names)
    gold = ref.gold
    preds = np.stack([p.pred[idx] for p, idx in zip(a + b, aligned)])  # (R, N) in ref order
    weights = np.array([1.0 / len(a)] * len(a) + [-1.0 / len(b)] * len(b))  # mean(a) - mean(b)
    fold_ids = [np.flatnonzero(ref.folds == f) for f in range(len(ref.fold_names))]
    fold_ids = [f for f in fold_ids if len(f)]
    n_folds = len(fold_ids)

    def system_scores(sample_by_fold: list[np.ndarray]) -> np.ndarray:
        """sample_by_fold[f]: (B, n_f) utterance indices -> (B, R) scores, mean over folds."""
        total = None
        for idx in sample_by_fold:
            bsz = idx.shape[0]
            g = gold[idx]  # (B, n_f)
            per_run = []
            for r in range(preds.shape[0]):
                codes = g * k + preds[r][idx] + (np.arange(bsz)[:, None] * k * k)
                conf = np.bincount(codes.ravel(), minlength=bsz * k * k).reshape(bsz, k, k)
                per_run.append(scores_from_confusions(conf, metric))
            s = np.stack(per_run, axis=1)
            total = s if total is None else total + s
        return total / n_folds

    observed = system_scores([f[None, :] for f in fold_ids])[0]
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, n_resamples, chunk):
        bsz = min(chunk, n_resamples - start)
        samples = [f[rng.integers(0, len(f), size=(bsz, len(f)))] for f in fold_ids]
        deltas.append(system_scores(samples) @ weights)
    deltas = np.concatenate(deltas)
    delta = float(observed @ weights)
    alpha = 1 - confidence
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    # tolerance: identical systems give deltas that are all (floating-point) zero
    extreme = np.abs(deltas - delta) >= abs(delta) - 1e-12
    p = float((1 + extreme.sum()) / (1 + n_resamples))
    return BootstrapResult(metric, len(gold), n_resamples, float(observed[:len(a)].mean()),
                           float(observed[len(a):].mean()), delta, float(lo), float(hi), min(p, 1.0), confidence)
