"""Statistics (seed CIs, paired tests, bootstrap) and the leaderboard extras built on them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from merbench.errors import MerbenchError
from merbench.leaderboard.ablation import ablation_matrices, ablation_matrix, render_extras, section_significance
from merbench.leaderboard.aggregate import aggregate
from merbench.metrics import classification_metrics
from merbench.results import FoldResult, RunResult, write_result, result_path
from merbench.stats import (
    METRICS,
    Predictions,
    paired_bootstrap,
    paired_seed_test,
    predictions_path,
    predictions_score,
    read_predictions,
    score,
    seed_stats,
)

LABELS = ("neutral", "joy", "sadness", "anger")


def preds(gold, pred, folds=None, uids=None, labels=LABELS) -> Predictions:
    gold, pred = np.asarray(gold), np.asarray(pred)
    folds = np.zeros(len(gold), dtype=np.int64) if folds is None else np.asarray(folds)
    names = tuple(f"f{i}" for i in range(int(folds.max()) + 1))
    uids = tuple(f"u{i}" for i in range(len(gold))) if uids is None else tuple(uids)
    return Predictions("mem", tuple(labels), uids, folds, names, gold, pred)


# -- over seeds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[61.0, 65.0, 63.5], [0.2, 0.9], [50, 52, 49, 51, 55, 47]])
def test_seed_ci_matches_scipy(values):
    st = seed_stats(values)
    lo, hi = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert st.n == len(values) and st.mean == pytest.approx(np.mean(values))
    assert st.std == pytest.approx(np.std(values, ddof=1))
    assert (st.ci_low, st.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    st90 = seed_stats(values, confidence=0.9)
    assert st90.half_width < st.half_width


def test_seed_stats_with_too_few_values():
    assert seed_stats([70.0]).ci_low is None and seed_stats([70.0]).mean == 70.0
    assert seed_stats([]).mean is None and seed_stats([float("nan"), 3.0]).n == 1


def test_paired_seed_test_matches_scipy_and_pairs_by_seed():
    a = {0: 61.0, 1: 64.0, 2: 60.5, 7: 99.0}
    b = {0: 58.0, 1: 63.0, 2: 57.0, 3: 10.0}
    t = paired_seed_test(a, b)
    ref = sps.ttest_rel([61.0, 64.0, 60.5], [58.0, 63.0, 57.0])
    assert t.seeds == (0, 1, 2) and t.t == pytest.approx(ref.statistic) and t.p_value == pytest.approx(ref.pvalue)
    assert t.mean_diff == pytest.approx(np.mean([3.0, 1.0, 3.5]))
    assert paired_seed_test({0: 1.0}, {0: 2.0}).p_value is None  # one pair: no test
    assert paired_seed_test({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}).p_value == 1.0
    assert paired_seed_test({0: 1.0}, {5: 1.0}).n == 0


# -- metrics and bootstrap ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_metric_registry_matches_sklearn():
    """The registry computes every metric from the confusion matrix; sklearn is the reference."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(3)
    k = 6
    labels = list(range(k))
    for trial in range(20):
        n = int(rng.integers(5, 60))
        # classes 4 and 5 are often missing from gold and / or predictions
        gold = rng.integers(0, 4 + trial % 3, size=n)
        pred = rng.integers(0, 3 + trial % 4, size=n)
        ref = {"accuracy": accuracy_score(gold, pred), "ua": balanced_accuracy_score(gold, pred),
               "weighted_f1": f1_score(gold, pred, labels=labels, average="weighted", zero_division=0),
               "macro_f1": f1_score(gold, pred, labels=labels, average="macro", zero_division=0)}
        assert set(ref) == set(METRICS)
        got = classification_metrics(gold, pred, [f"c{i}" for i in range(k)])
        for m in METRICS:
            assert score(gold, pred, k, m) == pytest.approx(ref[m], abs=1e-12), (trial, m)
            assert getattr(got, m) == pytest.approx(ref[m], abs=1e-12), (trial, m)
        p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
        for i in labels:
            c = got.per_class[f"c{i}"]
            assert (c.precision, c.recall, c.f1, c.support) == pytest.approx((p[i], r[i], f[i], s[i]), abs=1e-12)


def test_protocol_metrics_decide_what_is_computed():
    m = classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"], metrics=("weighted_f1", "accuracy"))
    assert m.accuracy == pytest.approx(2 / 3) and m.weighted_f1 is not None
    assert m.ua is None and m.macro_f1 is None
    with pytest.raises(MerbenchError, match="unknown metric 'f2'"):
        classification_metrics([0], [0], ["a"], metrics=("f2",))


def test_bootstrap_identical_systems_show_no_difference():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.6, gold, rng.integers(0, 4, 300))
    r = paired_bootstrap(preds(gold, pred), preds(gold, pred.copy()), n_resamples=300)
    assert r.delta == 0 and r.p_value == 1.0 and r.ci_low == r.ci_high == 0
    assert r.score_a == pytest.approx(classification_metrics(gold, pred, LABELS).weighted_f1)


def test_bootstrap_very_different_systems_are_significant_and_small_differences_are_not():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 4, 400)
    good = np.where(rng.random(400) < 0.9, gold, rng.integers(0, 4, 400))
    bad = rng.integers(0, 4, 400)
    r = paired_bootstrap(preds(gold, good), preds(gold, bad), metric="accuracy", n_resamples=500, seed=2)
    assert r.delta > 0.5 and r.ci_low > 0.4 and r.p_value == pytest.approx(1 / 501)
    back = paired_bootstrap(preds(gold, bad), preds(gold, good), metric="accuracy", n_resamples=500, seed=2)
    assert back.delta == pytest.approx(-r.delta) and back.p_value == r.p_value
    # two systems that differ on 3 of 400 utterances: no evidence of a difference
    near = good.copy()
    near[:3] = (near[:3] + 1) % 4
    r = paired_bootstrap(preds(gold, good), preds(gold, near), metric="accuracy", n_resamples=500)
    assert r.p_value > 0.05 and r.ci_low <= 0 <= r.ci_high + 1e-12
    # same seed, same answer; another seed, another resample
    again = paired_bootstrap(preds(gold, good), preds(gold, near), metric="accuracy", n_resamples=500)
    assert again == r


def test_bootstrap_folds_seeds_and_row_order():
    rng = np.random.default_rng(5)
    n = 240
    gold = rng.integers(0, 4, n)
    folds = np.repeat([0, 1, 2], n // 3)
    runs_a = [preds(gold, np.where(rng.random(n) < 0.7, gold, rng.integers(0, 4, n)), folds) for _ in range(3)]
    b = preds(gold, np.where(rng.random(n) < 0.5, gold, rng.integers(0, 4, n)), folds)
    for p in runs_a:  # a run's score is the mean of its per-fold scores, as combine_folds does
        per_fold = [classification_metrics(p.gold[folds == f], p.pred[folds == f], LABELS).macro_f1 for f in range(3)]
        assert predictions_score(p, "macro_f1") == pytest.approx(np.mean(per_fold))
    r = paired_bootstrap(runs_a, b, metric="macro_f1", n_resamples=200)
    assert r.score_a == pytest.approx(np.mean([predictions_score(p, "macro_f1") for p in runs_a]))
    assert r.score_b == pytest.approx(predictions_score(b, "macro_f1"))
    # the same predictions in another row order give the same test
    perm = rng.permutation(n)
    shuffled = Predictions("mem", LABELS, tuple(np.array(b.uids)[perm]), folds[perm], b.fold_names, gold[perm], b.pred[perm])
    assert paired_bootstrap(runs_a, shuffled, metric="macro_f1", n_resamples=200) == r
    with pytest.raises(MerbenchError, match="same test utterances"):
        paired_bootstrap(runs_a[0], preds(gold[:-1], b.pred[:-1]))
    with pytest.raises(MerbenchError, match="gold"):
        paired_bootstrap(runs_a[0], preds((gold + 1) % 4, b.pred, folds))


def test_predictions_file_of_a_real_run(merbench_home, tmp_path):
    import toy
    from merbench.registry import load_builtins
    from merbench.results import read_result
    from merbench.runner import RunRequest, run

    load_builtins()
    toy.register()
    (out,) = run(RunRequest(method="majority", dataset="toy", seeds=[0], results_dir=tmp_path / "r"))
    p = read_predictions(predictions_path(out))
    result = read_result(out)
    assert p.label_names == tuple(result.label_names) and len(p.uids) == result.test.n
    for m in METRICS:
        assert predictions_score(p, m) == pytest.approx(getattr(result.test, m), abs=1e-9)
    bad = tmp_path / "bad.predictions.csv"
    bad.write_text("uid,fold,gold,pred,p_a,p_b\nx,official,a,zzz,0.5,0.5\n")
    with pytest.raises(MerbenchError, match=r"row 2: label 'zzz'"):
        read_predictions(bad)


# -- leaderboard extras ---------------------------------------------------------------------------------


def write_run(root: Path, method: str, seed: int, gold, pred, *, modalities="tav", variant="default",
              chash="c" * 64, protocol="synthetic-4") -> Path:
    gold, pred = np.asarray(gold), np.asarray(pred)
    m = classification_metrics(gold, pred, LABELS)
    r = RunResult(method=method, variant=variant, dataset="synthetic", protocol=protocol, protocol_version="1",
                  manifest_hash="a" * 64, label_names=list(LABELS), modalities=modalities, seed=seed,
                  config={}, config_hash=chash, headline_metric="weighted_f1",
                  folds=[FoldResult(name="official", n_train=10, n_valid=5, n_test=len(gold), test=m)], test=m)
    path = result_path(root, r)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(predictions_path(path), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uid", "fold", "gold", "pred", *[f"p_{n}" for n in LABELS]])
        for i, (g, p) in enumerate(zip(gold, pred)):
            w.writerow([f"u{i}", "official", LABELS[g], LABELS[p], *[1.0 if j == p else 0.0 for j in range(4)]])
    return write_result(root, r)


def noisy(gold, acc, rng):
    return np.where(rng.random(len(gold)) < acc, gold, rng.integers(0, 4, len(gold)))


@pytest.fixture
def board_root(tmp_path):
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 4, 200)
    root = tmp_path / "results"
    # mlp: full model (tav), two ablated subsets and a variant; majority: one row
    plan = {("mlp", "tav", "default"): 0.85, ("mlp", "t", "default"): 0.7, ("mlp", "a", "default"): 0.3,
            ("mlp", "tav", "no_fusion_dropout"): 0.8, ("majority", "t", "default"): 0.0}
    for (method, mods, variant), acc in plan.items():
        for seed in range(3):
            pred = np.zeros_like(gold) if method == "majority" else noisy(gold, acc, rng)
            write_run(root, method, seed, gold, pred, modalities=mods, variant=variant,
                      chash=("d" if variant != "default" else "c") * 64)
    return root


def test_ablation_matrix_contents(board_root):
    board = aggregate(board_root, method_lookup=lambda n: (_ for _ in ()).throw(KeyError(n)))
    (section,) = board.sections
    m = ablation_matrix(section, "mlp")
    assert ablation_matrix(section, "majority") is None  # one row: nothing to ablate
    assert [(r.variant, r.modalities) for r in m.rows] == [("default", "tav"), ("no_fusion_dropout", "tav"),
                                                           ("default", "t"), ("default", "a")]
    assert m.reference.reference and m.metric_names[0] == "weighted_f1"
    rows = {(r.method, r.variant, r.modalities): r for r in section.rows}
    full = rows[("mlp", "default", "tav")]
    for r in m.rows[1:]:
        lb = rows[("mlp", r.variant, r.modalities)]
        for metric in m.metric_names:
            assert r.metrics[metric] == lb.metrics[metric]
            assert r.delta[metric] == pytest.approx(lb.metrics[metric].mean - full.metrics[metric].mean)
    assert m.rows[3].delta["weighted_f1"] < -20  # audio-only is far below the full model
    assert all(v is None for v in m.reference.delta.values())
    assert [x.method for x in ablation_matrices(board)] == ["mlp"]


def test_render_extras_significance_ci_and_figures(board_root, tmp_path):
    board = aggregate(board_root, method_lookup=lambda n: (_ for _ in ()).throw(KeyError(n)))
    (section,) = board.sections
    sig = section_significance(section, board_root, n_resamples=300)
    assert sig[0].row is section.rows[0] and sig[0].p_bootstrap is None
    by = {(s.row.method, s.row.variant, s.row.modalities): s for s in sig}
    worst = by[("majority", "default", "t")]
    assert worst.significant and worst.p_bootstrap < 0.01 and worst.delta < -30
    # CI column: t interval of the per-seed headline scores
    full = by[("mlp", "default", "tav")]
    ref = seed_stats(_seed_values(board_root, "mlp", "default", "tav"))
    assert ref.n == 3 and (full.ci_low, full.ci_high) == (pytest.approx(ref.ci_low), pytest.approx(ref.ci_high))
    assert full.ci_low < full.row.headline.mean < full.ci_high

    out = tmp_path / "site" / "assets"
    md = render_extras(board_root, out, board=board, n_resamples=300)
    assert md == render_extras(board_root, out, board=board, n_resamples=300)  # deterministic
    assert "## Confidence intervals and significance" in md and "## Ablations" in md
    assert "### mlp on synthetic / synthetic-4" in md and "(reference)" in md
    line = next(x for x in md.splitlines() if x.startswith("| majority"))
    assert line.rstrip().endswith("| * |") and "< 0.001" in line
    best_line = next(x for x in md.splitlines() if x.startswith(f"| {section.rows[0].method} "))
    assert "| best |" in best_line
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["assets/synthetic__synthetic-4__aaaaaaaaaaaa__bars.png",
                     "assets/synthetic__synthetic-4__aaaaaaaaaaaa__class_f1.png"]
    for link in links:
        png = tmp_path / "site" / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.suffix != ".png"]  # atomic writes left no temp files


def _seed_values(root: Path, method: str, variant: str, modalities: str) -> list[float]:
    from merbench.results import iter_results

    return [100 * r.test.weighted_f1 for _, r in iter_results(root)
            if (r.method, r.variant, r.modalities) == (method, variant, modalities)]


def test_render_extras_without_predictions_says_why(board_root, tmp_path):
    for p in board_root.rglob("*.predictions.csv"):
        if "/majority/" in p.as_posix():
            p.unlink()
    md = render_extras(board_root, tmp_path / "a", n_resamples=100, figures=False,
                       method_lookup=lambda n: (_ for _ in ()).throw(KeyError(n)))
    assert "majority/default/t: no bootstrap test (no predictions file beside" in md
    assert "![" not in md
