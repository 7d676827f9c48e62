"""Leaderboard: aggregation over seeds, Markdown rendering, paper numbers, plots."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from merbench.errors import UnknownNameError
from merbench.interfaces import MethodMetadata, ReportedResult
from merbench.leaderboard.aggregate import aggregate
from merbench.leaderboard.render import render_markdown
from merbench.results import ClassScores, FoldResult, Metrics, RunResult, write_result

LABELS = ["neutral", "happy", "sad"]
MANIFEST = "a" * 64
OTHER_MANIFEST = "b" * 64


def metrics(acc: float, ua: float, wf1: float, mf1: float, f1s=(0.5, 0.4, 0.3)) -> Metrics:
    return Metrics(
        accuracy=acc, ua=ua, weighted_f1=wf1, macro_f1=mf1,
        per_class={n: ClassScores(precision=f, recall=f, f1=f, support=10) for n, f in zip(LABELS, f1s)},
        confusion=[[8, 1, 1], [2, 6, 2], [1, 1, 8]], n=30,
    )


def run(method: str, seed: int, m: Metrics, *, dataset="synthetic", protocol="synthetic-dialogue",
        manifest=MANIFEST, as_published=False, variant="default", modalities="tav",
        config_hash="c" * 64) -> RunResult:
    return RunResult(
        method=method, variant=variant, dataset=dataset, protocol=protocol, protocol_version="1",
        manifest_hash=manifest, as_published=as_published, label_names=LABELS, modalities=modalities,
        seed=seed, config={"lr": 0.001}, config_hash=config_hash, headline_metric="weighted_f1",
        folds=[FoldResult(name="official", n_train=100, n_valid=20, n_test=30, test=m)], test=m,
    )


# Two methods x three seeds, with hand-picked scores (fractions).
SCORES = {
    "alpha": [(0.61, 0.55, 0.600, 0.52), (0.65, 0.57, 0.640, 0.55), (0.63, 0.60, 0.650, 0.50)],
    "beta": [(0.70, 0.66, 0.700, 0.61), (0.72, 0.69, 0.710, 0.64), (0.69, 0.64, 0.720, 0.66)],
}
F1S = {"alpha": [(0.5, 0.4, 0.3), (0.6, 0.5, 0.2), (0.7, 0.3, 0.4)],
       "beta": [(0.8, 0.6, 0.5), (0.7, 0.7, 0.6), (0.9, 0.5, 0.4)]}


class FakeMethod:
    name = "beta"
    metadata = MethodMetadata(title="Beta net", reported=(
        ReportedResult("synthetic", "synthetic-dialogue", "weighted_f1", 73.4, "tav", "Table 2 of the paper"),
        ReportedResult("synthetic", "synthetic-dialogue", "accuracy", 74.0, "tav", "Table 2 of the paper"),
        ReportedResult("synthetic", "synthetic-dialogue", "weighted_f1", 61.23, "t", "Table 3 (text only)"),
        ReportedResult("other", "synthetic-dialogue", "weighted_f1", 11.17, "tav", "wrong dataset"),
    ))


def lookup(name: str):
    if name == "beta":
        return FakeMethod
    if name == "broken":
        raise ImportError("no module named 'torch_magic'")
    raise UnknownNameError(f"unknown method {name!r}")


def write_standard(root: Path) -> None:
    for method, rows in SCORES.items():
        for seed, (s, f1s) in enumerate(zip(rows, F1S[method])):
            write_result(root, run(method, seed, metrics(*s, f1s=f1s)))


def mean_std(xs):
    """Independent sample mean / std (ddof=1), in percent."""
    xs = [100 * x for x in xs]
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return m, sd


def table_rows(md: str, after: str) -> list[list[str]]:
    """Body rows of the first table after the text ``after``, split into cells."""
    lines = md.split(after, 1)[1].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    rows = []
    for ln in lines[start + 2:]:  # skip the header and the alignment line
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split(" | ")])
    return rows


def test_means_stds_sort_and_paper(tmp_path):
    write_standard(tmp_path)
    md = render_markdown(tmp_path, title="Test board", method_lookup=lookup)
    assert md.startswith("# Test board\n")
    assert "`bench leaderboard`" in md and "percent" in md and "validation" in md
    assert "## synthetic / synthetic-dialogue" in md
    header = next(ln for ln in md.splitlines() if ln.startswith("| method"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[:5] == ["method", "variant", "modalities", "seeds (n)", "W-F1 (headline)"]
    assert cols[-1] == "paper"

    rows = table_rows(md, "## synthetic / synthetic-dialogue")
    assert [r[0] for r in rows] == ["beta", "alpha"]  # sorted by W-F1, best first
    for r in rows:
        assert r[3] == "0, 1, 2 (3)"
        by_col = dict(zip(cols, r))
        for metric, idx in (("W-F1 (headline)", 2), ("WA", 0), ("UA", 1), ("M-F1", 3)):
            m, sd = mean_std([s[idx] for s in SCORES[r[0]]])
            assert by_col[metric] == f"{m:.2f} ± {sd:.2f}", (r[0], metric)

    beta, alpha = rows
    assert re.fullmatch(r"73\.40\[\^\d+\]", beta[-1])
    note = re.search(r"\[\^(\d+)\]", beta[-1]).group(1)
    assert re.search(rf"^\[\^{note}\]: .*Table 2 of the paper", md, re.M)
    assert "11.17" not in md  # another dataset's number is nowhere in this section
    # The text-only number matches no row (beta ran t,a,v only): not in the paper column, but listed
    # under the section as reported for a setting without a run, so the paper's number is not lost.
    assert "61.23" not in beta[-1]
    (unmatched,) = table_rows(md, "Reported by the papers of methods above")
    assert unmatched[:5] == ["beta", "default", "t", "W-F1", "61.23"] and unmatched[5] == "Table 3 (text only)"
    section = aggregate(tmp_path, method_lookup=lookup).sections[0]
    assert [(m, r.value) for m, r in section.unmatched_reported] == [("beta", 61.23)]
    assert alpha[-1] == "—"
    assert "no paper number for `alpha`: method not registered" in md

    # per-class F1 table: means only
    pc_header = next(ln for ln in md.splitlines() if ln.startswith("| method") and "neutral" in ln)
    pc_cols = [c.strip() for c in pc_header.strip("|").split("|")]
    pc_rows = table_rows(md, "Per-class F1")
    alpha_pc = dict(zip(pc_cols, next(r for r in pc_rows if r[0] == "alpha")))
    for i, label in enumerate(LABELS):
        expected = 100 * sum(f[i] for f in F1S["alpha"]) / 3
        assert alpha_pc[label] == f"{expected:.2f}"
    assert "As-published" not in md


def test_aggregate_rows(tmp_path):
    write_standard(tmp_path)
    board = aggregate(tmp_path, method_lookup=lookup)
    assert board.n_results == 6
    (section,) = board.sections
    assert section.headline_metric == "weighted_f1"
    assert section.label_names == tuple(LABELS)
    beta = section.rows[0]
    assert beta.method == "beta" and beta.n == 3 and beta.seeds == (0, 1, 2)
    m, sd = mean_std([s[0] for s in SCORES["beta"]])
    assert beta.metrics["accuracy"].mean == pytest.approx(m)
    assert beta.metrics["accuracy"].std == pytest.approx(sd)
    assert beta.paper is not None and beta.paper.headline.value == 73.4
    assert {r.metric for r in beta.paper.all} == {"weighted_f1", "accuracy"}
    assert section.rows[1].paper is None and section.rows[1].paper_error
    assert all(f.endswith(".json") and not f.startswith("/") for f in beta.files)


def test_as_published_warning_and_single_seed(tmp_path):
    write_result(tmp_path, run("alpha", 0, metrics(0.5, 0.5, 0.5, 0.5), protocol="paper-split", as_published=True))
    md = render_markdown(tmp_path, method_lookup=lookup)
    assert "## synthetic / paper-split" in md
    assert "As-published protocol" in md and "leak" in md
    row = table_rows(md, "## synthetic / paper-split")[0]
    assert row[3] == "0 (1)"
    assert row[4] == "50.00"  # one seed: no std


def test_manifest_hashes_kept_apart(tmp_path):
    write_standard(tmp_path)
    # A run of alpha on a different split manifest (e.g. an older protocol build).
    write_result(tmp_path, run("alpha", 7, metrics(0.99, 0.99, 0.99, 0.99), manifest=OTHER_MANIFEST,
                               config_hash="d" * 64))
    board = aggregate(tmp_path, method_lookup=lookup)
    assert len(board.sections) == 2
    assert {s.manifest_hash for s in board.sections} == {MANIFEST, OTHER_MANIFEST}
    assert all(s.manifest_conflict for s in board.sections)
    old = next(s for s in board.sections if s.manifest_hash == OTHER_MANIFEST)
    assert [r.n for r in old.rows] == [1]
    new = next(s for s in board.sections if s.manifest_hash == MANIFEST)
    alpha = next(r for r in new.rows if r.method == "alpha")
    assert alpha.n == 3 and 7 not in alpha.seeds  # the 0.99 run did not leak into the mean
    md = render_markdown(tmp_path, method_lookup=lookup)
    assert md.count("Different splits") == 2
    assert f"## synthetic / synthetic-dialogue (manifest {MANIFEST[:12]})" in md
    assert f"## synthetic / synthetic-dialogue (manifest {OTHER_MANIFEST[:12]})" in md


def test_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_standard(a)
    # Same results written in the other order into another folder.
    for method in reversed(list(SCORES)):
        for seed in (2, 1, 0):
            write_result(b, run(method, seed, metrics(*SCORES[method][seed], f1s=F1S[method][seed])))
    md1 = render_markdown(a, method_lookup=lookup)
    assert md1 == render_markdown(a, method_lookup=lookup)
    assert md1 == render_markdown(b, method_lookup=lookup)
    assert str(tmp_path) not in md1


def test_unknown_and_broken_methods(tmp_path, monkeypatch):
    write_result(tmp_path, run("out_of_tree_xyz", 0, metrics(0.4, 0.4, 0.4, 0.4)))
    write_result(tmp_path, run("broken", 0, metrics(0.3, 0.3, 0.3, 0.3)))
    md = render_markdown(tmp_path, method_lookup=lookup)
    assert "method not registered" in md
    assert "ImportError" in md and "torch_magic" in md
    rows = table_rows(md, "## synthetic")
    assert [r[0] for r in rows] == ["out_of_tree_xyz", "broken"]
    assert all(r[-1] == "—" for r in rows)

    # The real registry path: an unknown name raises UnknownNameError, handled the same way.
    md2 = render_markdown(tmp_path)
    assert "no paper number for `out_of_tree_xyz`" in md2

    # A registered method through the real registry (monkeypatched lookup table).
    from merbench import registry

    registry.load_builtins()
    class Registered(FakeMethod):
        name = "out_of_tree_xyz"

    monkeypatch.setitem(registry.METHODS._entries, "out_of_tree_xyz", Registered)
    md3 = render_markdown(tmp_path)
    row = next(r for r in table_rows(md3, "## synthetic") if r[0] == "out_of_tree_xyz")
    assert row[-1].startswith("73.40[^")


def test_duplicate_seed_counted_once(tmp_path):
    r = run("alpha", 0, metrics(0.5, 0.5, 0.5, 0.5))
    path = write_result(tmp_path, r)
    copy = path.with_name("copy-of-" + path.name)
    copy.write_text(path.read_text())
    board = aggregate(tmp_path, method_lookup=lookup)
    row = board.sections[0].rows[0]
    assert row.n == 1 and row.seeds == (0,)
    assert any("seed 0 appears in both" in w for w in board.sections[0].warnings)


def test_empty_results(tmp_path):
    md = render_markdown(tmp_path / "nothing", method_lookup=lookup)
    assert "No results yet" in md
    assert render_markdown(tmp_path, method_lookup=lookup) == md


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots(tmp_path):
    from merbench.run_plots import save_confusion_png, save_curves_png

    cm = tmp_path / "sub" / "confusion.png"
    save_confusion_png([[8, 1, 1], [2, 6, 2], [0, 0, 0]], LABELS, cm, title="test")
    assert _is_png(cm)
    history = [{"epoch": i + 1, "train_loss": 1.0 / (i + 1), "valid_loss": 1.1 / (i + 1),
                "valid_weighted_f1": 0.1 * i, "lr": 1e-3} for i in range(5)]
    curves = tmp_path / "curves.png"
    save_curves_png(history, curves, title="alpha seed 0")
    assert _is_png(curves)
    empty = tmp_path / "empty.png"
    save_curves_png([], empty)
    assert _is_png(empty)
    save_curves_png([{"valid_loss": float("nan")}], tmp_path / "nan.png")
    assert _is_png(tmp_path / "nan.png")
    # no temporary files left behind
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    with pytest.raises(ValueError, match="label names"):
        save_confusion_png([[1, 0], [0, 1]], LABELS, tmp_path / "bad.png")


def test_rich_tables(tmp_path):
    from rich.console import Console

    from merbench.leaderboard.aggregate import aggregate as agg
    from merbench.leaderboard.render import render_rich_tables

    write_standard(tmp_path)
    write_result(tmp_path, run("alpha", 0, metrics(0.5, 0.5, 0.5, 0.5), protocol="paper-split", as_published=True))
    tables = render_rich_tables(agg(tmp_path, method_lookup=lookup))
    assert len(tables) == 2
    console = Console(record=True, width=200)
    for t in tables:
        console.print(t)
    out = console.export_text()
    assert "beta" in out and "73.40" in out and "AS PUBLISHED" in out


def test_budget_variant_row_gets_the_paper_number_with_a_note(tmp_path):
    class Budgeted(FakeMethod):
        metadata = MethodMetadata(title="Beta net", reported=FakeMethod.metadata.reported,
                                  budget_variants=(("cpu", "default"),))

    for seed, s in enumerate(SCORES["beta"]):
        write_result(tmp_path, run("beta", seed, metrics(*s), variant="cpu"))
        write_result(tmp_path, run("beta", seed, metrics(*s), variant="other", config_hash="d" * 64))
    md = render_markdown(tmp_path, method_lookup=lambda name: Budgeted)
    rows = {r[1]: r for r in table_rows(md, "## synthetic / synthetic-dialogue")}
    assert re.fullmatch(r"73\.40\[\^\d+\]", rows["cpu"][-1])
    note = re.search(r"\[\^(\d+)\]", rows["cpu"][-1]).group(1)
    assert re.search(rf"^\[\^{note}\]: .*our row is `cpu`, a smaller training budget", md, re.M)
    assert rows["other"][-1] == "—"  # a variant not declared as a budget of the paper's model


def test_paper_variant_row_gets_the_paper_number_as_a_reproduction(tmp_path):
    class WithPacks(FakeMethod):
        metadata = MethodMetadata(title="Beta net", reported=FakeMethod.metadata.reported,
                                  budget_variants=(("cpu", "default"),), paper_variants=(("paper", "default"),))

    for seed, s in enumerate(SCORES["beta"]):
        for variant in ("paper", "cpu"):
            write_result(tmp_path, run("beta", seed, metrics(*s), variant=variant))
    md = render_markdown(tmp_path, method_lookup=lambda name: WithPacks)
    rows = {r[1]: r for r in table_rows(md, "## synthetic / synthetic-dialogue")}
    assert re.fullmatch(r"73\.40\[\^\d+\]", rows["paper"][-1])
    paper_note = re.search(r"\[\^(\d+)\]", rows["paper"][-1]).group(1)
    budget_note = re.search(r"\[\^(\d+)\]", rows["cpu"][-1]).group(1)
    note_text = re.search(rf"^\[\^{paper_note}\]: (.*)$", md, re.M).group(1)
    assert "the paper's own published features" in note_text and "smaller training budget" not in note_text
    assert re.search(rf"^\[\^{budget_note}\]: .*our row is `cpu`, a smaller training budget", md, re.M)
    section = aggregate(tmp_path, method_lookup=lambda name: WithPacks).sections[0]
    by_variant = {r.variant: r for r in section.rows}
    assert by_variant["paper"].paper.via == "paper" and by_variant["cpu"].paper.via == "budget"


def test_runs_differing_only_by_epochs_get_distinct_labels_everywhere(tmp_path, monkeypatch):
    """Two runs of mlp/default, one with --epochs 1: every table and both charts name the change;
    one seed per row draws no error bar; the section shows the test size and class support."""
    import merbench.leaderboard.ablation as ablation
    from merbench.config import config_hash, method_config, resolve_select_metric
    from merbench.leaderboard.ablation import render_extras
    from merbench.registry import get_method

    mlp = get_method("mlp")
    base = resolve_select_metric(mlp, method_config(mlp, "default", "synthetic", "synthetic-dialogue"), "weighted_f1")
    short = {**base, "train": {**base["train"], "epochs": 1}}
    for cfg, s in ((base, (0.7, 0.6, 0.7, 0.6)), (short, (0.5, 0.4, 0.5, 0.4))):
        r = run("mlp", 0, metrics(*s), modalities="t", config_hash=config_hash(cfg))
        write_result(tmp_path, r.model_copy(update={"config": cfg, "select_metric": cfg["train"]["select_metric"]}))

    (section,) = aggregate(tmp_path).sections
    assert [r.label for r in section.rows] == ["default", "default, epochs=1"]
    assert section.test_n == 30 and section.support == {n: 10 for n in LABELS}

    md = render_markdown(tmp_path)
    main = table_rows(md, "## synthetic / synthetic-dialogue")
    assert [(r[1], r[-2]) for r in main] == [("default", "W-F1"), ("default, epochs=1", "W-F1")]
    assert "Test set: n = 30 (per class: neutral 10, happy 10, sad 10)." in md
    per_class = table_rows(md, "Per-class F1")
    assert [r[1] for r in per_class[:2]] == ["default", "default, epochs=1"]
    assert per_class[2][:1] + per_class[2][3:] == ["test support (n)", "10", "10", "10"]

    figures = {}
    real_save = ablation._save
    monkeypatch.setattr(ablation, "_save", lambda fig, path: figures.setdefault(Path(path).name, fig)
                        and real_save(fig, path))
    extras = render_extras(tmp_path, tmp_path / "assets")
    significance = table_rows(extras, "## Confidence intervals and significance")
    assert [r[1] for r in significance] == ["default", "default, epochs=1"]
    ablations = table_rows(extras, "### mlp on synthetic")
    assert [r[0] for r in ablations] == ["default (reference)", "default, epochs=1"]
    bars = next(f for n, f in figures.items() if n.endswith("__bars.png")).axes[0]
    heat = next(f for n, f in figures.items() if n.endswith("__class_f1.png")).axes[0]
    bar_labels = [t.get_text() for t in bars.get_yticklabels()]
    assert bar_labels == ["mlp (t) (n = 1)", "mlp [default, epochs=1] (t) (n = 1)"]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["mlp (t)", "mlp [default, epochs=1] (t)"]
    assert not bars.containers[1:]  # the bars only: no error bar container for n = 1


def test_error_bars_only_for_rows_with_two_or_more_seeds(tmp_path, monkeypatch):
    import merbench.leaderboard.ablation as ablation
    from matplotlib.container import ErrorbarContainer

    write_standard(tmp_path)  # alpha and beta, three seeds each
    write_result(tmp_path, run("gamma", 0, metrics(0.4, 0.4, 0.4, 0.4)))
    figures = []
    monkeypatch.setattr(ablation, "_save", lambda fig, path: figures.append(fig) or Path(path))
    (section,) = aggregate(tmp_path, method_lookup=lookup).sections
    ablation.save_bar_chart(section, tmp_path / "bars.png", tmp_path)
    ax = figures[0].axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars.lines[2][0].get_segments()) == 2  # beta and alpha; gamma (one seed) has none
