"""Method metadata and published numbers as plain data: every in-tree method's metadata.yaml is
valid against the registries, and reading it (bench list, the leaderboard) imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from merbench.config import variants
from merbench.errors import ConfigError
from merbench.metadata import load_method_metadata, metadata_path_of
from merbench.methods import BUILTIN_METHODS
from merbench.metrics import METRICS
from merbench.protocols import all_protocols
from merbench.registry import DATASETS, get_method, load_builtins, method_metadata

load_builtins()


@pytest.mark.parametrize("name", sorted(BUILTIN_METHODS))
def test_metadata_yaml_agrees_with_the_registries(name):
    path = metadata_path_of(BUILTIN_METHODS[name])
    assert path is not None and path.parent.name == name, f"methods/{name}/metadata.yaml is missing"
    md = method_metadata(name)
    cls = get_method(name)
    assert md == cls.metadata and (cls.modalities, cls.unit) == (md.modalities, md.unit)
    protocols = all_protocols()
    known_variants = {"default", *variants(cls.config_dir)}
    for r in md.reported:
        assert r.method == name and r.metric in METRICS and r.source
        assert set(r.modalities) <= set(md.modalities), r
        assert r.variant in known_variants, f"{path}: reported number for unknown variant {r.variant!r}"
        assert r.dataset in DATASETS, r
        # A number under a protocol the suite does not have must say so (the leaderboard lists it apart).
        assert protocols.get(r.protocol, (None,))[0] == r.dataset or "no such" in r.note, r
    for budget, paper_variant in md.budget_variants + md.paper_variants:
        assert {budget, paper_variant} <= known_variants and budget != paper_variant


def write(tmp_path, data) -> object:
    p = tmp_path / "metadata.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


GOOD = {"dataset": "meld", "protocol": "meld-7", "modalities": "t", "metric": "accuracy", "value": 60.0,
        "source": "Someone, ACL 2099, Table 1"}


@pytest.mark.parametrize("change, message", [
    ({"metric": "f1"}, r"entry 2: field 'metric' is 'f1'"),
    ({"value": 0.6e3}, r"entry 2: field 'value' must be a number in percent"),
    ({"modalities": "at"}, r"entry 2: field 'modalities' is 'at'"),
    ({"venue": "ACL"}, r"entry 2: unknown field\(s\) 'venue'"),
    ({"variant": ""}, r"entry 2: field 'variant' must be a non-empty string"),
])
def test_bad_published_number_names_file_entry_and_field(tmp_path, change, message):
    p = write(tmp_path, {"title": "x", "reported": [GOOD, {**GOOD, "modalities": "tav", **change}]})
    with pytest.raises(ConfigError, match=message) as e:
        load_method_metadata(p, "x")
    assert str(p) in str(e.value)


def test_bad_metadata_fields(tmp_path):
    with pytest.raises(ConfigError, match="'modalities' must be a list"):
        load_method_metadata(write(tmp_path, {"title": "x", "modalities": ["t", "x"]}))
    with pytest.raises(ConfigError, match="'unit' must be one of"):
        load_method_metadata(write(tmp_path, {"title": "x", "unit": "frame"}))
    with pytest.raises(ConfigError, match=r"unknown field\(s\) 'reportd'"):
        load_method_metadata(write(tmp_path, {"title": "x", "reportd": []}))
    with pytest.raises(ConfigError, match="duplicates entry 1"):
        load_method_metadata(write(tmp_path, {"title": "x", "reported": [GOOD, dict(GOOD)]}))
    md = load_method_metadata(write(tmp_path, {"title": "x", "modalities": ["a", "t"], "budget_variants": {"cpu": "default"},
                                               "reported": [GOOD]}), "x")
    assert md.modalities == ("t", "a") and md.budget_variants == (("cpu", "default"),)
    assert md.reported[0].method == "x" and md.reported[0].variant == "default" and md.reported[0].note == ""


def run_python(code: str, tmp_path) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=tmp_path,
                         env={"MERBENCH_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


HEAVY = "[m for m in sys.modules if m == 'torch' or (m.startswith('merbench.methods.') and m.endswith('.method'))]"


def test_bench_list_methods_imports_no_torch_and_no_method(tmp_path):
    got = run_python(f"""
        import json, sys
        from typer.testing import CliRunner
        from merbench.cli import app
        r = CliRunner().invoke(app, ["list", "methods", "--json"])
        assert r.exit_code == 0, r.output
        print(json.dumps({{"rows": json.loads(r.output), "heavy": {HEAVY}}}))
    """, tmp_path)
    assert got["heavy"] == []
    rows = {r["method"]: r for r in got["rows"]}
    assert set(BUILTIN_METHODS) <= set(rows)
    assert rows["lipsync_graph_erc"]["unit"] == "dialogue" and rows["miust"]["modalities"] == "t,a"


def test_leaderboard_reads_published_numbers_without_torch(tmp_path):
    got = run_python(f"""
        import json, sys
        from merbench.leaderboard import aggregate
        from merbench.metrics import classification_metrics
        from merbench.results import FoldResult, RunResult, write_result
        m = classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])
        write_result("r", RunResult(method="lipsync_graph_erc", dataset="meld", protocol="meld-7", protocol_version="1",
                     manifest_hash="a" * 64, label_names=["a", "b"], modalities="tav", seed=0, config={{}},
                     config_hash="c" * 64, folds=[FoldResult(name="f", n_train=1, n_valid=1, n_test=3, test=m)], test=m))
        row = aggregate("r").sections[0].rows[0]
        print(json.dumps({{"paper": row.paper.headline.value, "error": row.paper_error, "heavy": {HEAVY}}}))
    """, tmp_path)
    assert got == {"paper": 67.75, "error": None, "heavy": []}
