"""Published reference numbers: loader validation, rendering, and their place in the leaderboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from merbench.errors import ConfigError
from merbench.interfaces import ReportedResult
from merbench.leaderboard.aggregate import aggregate
from merbench.leaderboard.references import (
    DEFAULT_PATH,
    FIELDS,
    TITLE,
    load_references,
    render_references,
)
from merbench.leaderboard.render import render_leaderboard
from merbench.results import ClassScores, FoldResult, Metrics, RunResult, write_result

GOOD = {
    "dataset": "meld", "protocol": "meld-7", "method": "Some baseline", "modalities": "t",
    "metric": "weighted_f1", "value": 60.5, "source": "Someone et al., ACL 2099, Table 9", "note": "",
}


def write_refs(tmp_path: Path, entries) -> Path:
    p = tmp_path / "refs.yaml"
    p.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    return p


def ref(**kw) -> ReportedResult:
    d = dict(GOOD, **kw)
    return ReportedResult(**{k: d[k] for k in FIELDS})


# -- the shipped file ----------------------------------------------------------------------


def test_shipped_file_is_valid_and_sourced():
    refs = load_references()
    assert refs, f"{DEFAULT_PATH} should hold published numbers"
    for r in refs:
        # Every source names a venue/preprint and a year.
        assert re.search(r"(19|20)\d\d", r.source), r
        assert r.dataset in {"meld", "iemocap"}, r
    by_key = {(r.dataset, r.protocol, r.method): r.value for r in refs}
    # The protocol facts in the methods spec.
    assert by_key[("meld", "meld-7", "COSMIC")] == 65.21
    assert by_key[("iemocap", "iemocap-6", "COSMIC")] == 65.28
    assert by_key[("iemocap", "iemocap-6", "DialogueRNN")] == 62.75


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("change, field", [
    ({"value": "sixty"}, "value"),
    ({"value": True}, "value"),
    ({"value": 160.0}, "value"),
    ({"value": float("nan")}, "value"),
    ({"metric": "f1"}, "metric"),
    ({"modalities": "at"}, "modalities"),
    ({"modalities": "tx"}, "modalities"),
    ({"modalities": ""}, "modalities"),
    ({"source": "  "}, "source"),
    ({"method": 3}, "method"),
    ({"note": None}, "note"),
])
def test_bad_field_names_file_entry_and_field(tmp_path, change, field):
    p = write_refs(tmp_path, [GOOD, dict(GOOD, **{"method": "Other", **change})])
    with pytest.raises(ConfigError) as e:
        load_references(p)
    msg = str(e.value)
    assert str(p) in msg and "entry 2" in msg and repr(field) in msg, msg


def test_missing_and_unknown_fields(tmp_path):
    bad = {k: v for k, v in GOOD.items() if k != "source"}
    p = write_refs(tmp_path, [bad])
    with pytest.raises(ConfigError, match=r"entry 1 \(method 'Some baseline'\): missing field\(s\) 'source'"):
        load_references(p)
    p = write_refs(tmp_path, [dict(GOOD, venue="ACL")])
    with pytest.raises(ConfigError, match=r"unknown field\(s\) 'venue'"):
        load_references(p)


def test_structure_errors(tmp_path):
    p = write_refs(tmp_path, {"meld": GOOD})
    with pytest.raises(ConfigError, match="expected a list"):
        load_references(p)
    p = write_refs(tmp_path, ["just a string"])
    with pytest.raises(ConfigError, match="entry 1: expected a mapping"):
        load_references(p)
    p = write_refs(tmp_path, [GOOD, dict(GOOD, value=61.0)])
    with pytest.raises(ConfigError, match="entry 2 .*duplicates entry 1"):
        load_references(p)
    p.write_text("- dataset: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_references(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_references(tmp_path / "nope.yaml")


def test_valid_file_loads(tmp_path):
    p = write_refs(tmp_path, [GOOD, dict(GOOD, modalities="tav", value=70)])
    refs = load_references(p)
    assert [r.modalities for r in refs] == ["t", "tav"]
    assert refs[1].value == 70.0 and isinstance(refs[1].value, float)
    assert write_refs(tmp_path, []) and load_references(tmp_path / "refs.yaml") == ()


# -- rendering -----------------------------------------------------------------------------


def test_render_order_escaping_and_empty():
    refs = [
        ref(method="low", value=50.0),
        ref(method="acc one", metric="accuracy", value=40.0),
        ref(method="high | piped", value=70.0, note="line\nbreak"),
        ref(method="elsewhere", protocol="meld-3", value=99.0),
    ]
    md = render_references("meld", "meld-7", refs)
    lines = md.splitlines()
    assert lines[0] == f"{TITLE}:"
    assert "not run here" in md and "elsewhere" not in md
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| method")]
    # Metric order (WA before W-F1), then best value first.
    assert [r.split(" | ")[0] for r in rows] == ["| acc one", "| high \\| piped", "| low"]
    assert "| WA | 40.00 |" in rows[0] and "| W-F1 | 70.00 |" in rows[1]
    assert "line break" in rows[1]
    assert rows[2].endswith("| — |")  # empty note shown as a dash
    assert render_references("meld", "meld-7", refs) == md  # deterministic
    assert render_references("iemocap", "iemocap-6", refs) == ""


# -- in the leaderboard --------------------------------------------------------------------

LABELS = ["neutral", "joy", "anger"]


def _run(dataset: str, protocol: str, seed: int) -> RunResult:
    m = Metrics(accuracy=0.6, ua=0.5, weighted_f1=0.55 + seed / 100, macro_f1=0.4,
                per_class={n: ClassScores(precision=0.5, recall=0.5, f1=0.5, support=10) for n in LABELS},
                confusion=[[8, 1, 1], [2, 6, 2], [1, 1, 8]], n=30)
    return RunResult(
        method="mlp", variant="default", dataset=dataset, protocol=protocol, protocol_version="1",
        manifest_hash="a" * 64, as_published=False, label_names=LABELS, modalities="t", seed=seed,
        config={}, config_hash="c" * 64, headline_metric="weighted_f1",
        folds=[FoldResult(name="official", n_train=100, n_valid=20, n_test=30, test=m)], test=m,
    )


def test_section_gets_its_table(tmp_path):
    for seed in (0, 1):
        write_result(tmp_path, _run("meld", "meld-7", seed))
        write_result(tmp_path, _run("toyset", "toy-3", seed))
    board = aggregate(tmp_path)
    refs = [ref(method="Paper A", value=61.0), ref(method="Paper B", dataset="toyset", protocol="toy-9")]
    md = render_leaderboard(board, references=refs)
    plain = render_leaderboard(board, references=())

    sections = md.split("\n## ")
    meld = next(s for s in sections if s.startswith("meld / meld-7"))
    toy = next(s for s in sections if s.startswith("toyset / toy-3"))
    assert TITLE in meld and "| Paper A | t | W-F1 | 61.00 |" in meld
    # Our runs' tables come first, the published table after them.
    assert meld.index("Per-class F1") < meld.index(TITLE)
    assert TITLE not in toy and "Paper B" not in md  # toy-9 has no section here

    # Apart from the added block, the output is unchanged.
    block = render_references("meld", "meld-7", refs)
    assert md.replace(block + "\n", "", 1) == plain


def test_default_references_reach_the_markdown(tmp_path):
    write_result(tmp_path, _run("meld", "meld-7", 0))
    md = render_leaderboard(aggregate(tmp_path))
    assert TITLE in md and "COSMIC" in md and "65.21" in md
