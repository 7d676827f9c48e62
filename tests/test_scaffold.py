"""`bench new method|dataset`: what it writes passes the conformance checks and runs as
generated, the lazy table is edited without touching the rest of the file, bad names are
refused with a fix, and an out-of-tree plugin registers through the entry-point group."""

from __future__ import annotations

import csv
import importlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

import test_conformance as conformance
import toy
from fakes import LABELS
from merbench.cli_new import new_app
from merbench.config import method_config
from merbench.errors import MerbenchError
from merbench.paths import PROJECT_ROOT
from merbench.registry import DATASETS, METHODS, get_method, import_object, load_builtins
from merbench.scaffold import add_to_table, read_table, scaffold_dataset, scaffold_method

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: check the pyproject text instead
    tomllib = None

load_builtins()
toy.register()  # toy corpus and toy-bow extractor for the short runs


def entry_points_of(pyproject: Path, group: str) -> dict[str, str]:
    text = pyproject.read_text()
    if tomllib is not None:
        return tomllib.loads(text)["project"]["entry-points"][group]
    section = text.split(f'[project.entry-points."{group}"]', 1)[1].split("\n[", 1)[0]
    return {k.strip(): v.strip().strip('"') for k, v in (ln.split("=", 1) for ln in section.splitlines() if "=" in ln)}


@pytest.fixture
def registries(monkeypatch):
    """Methods and datasets registered by a test vanish after it."""
    for r in (METHODS, DATASETS):
        r.names()  # entry points first, so the copy holds them
        monkeypatch.setattr(r, "_entries", dict(r._entries))


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """Importable copies of methods/__init__.py and datasets/__init__.py standing in for the
    repository's folders, so the scaffold edits a copy of the real tables."""
    tag = uuid.uuid4().hex[:8]
    root = tmp_path / "pkgs"
    folders = {}
    for kind, folder in (("method", "methods"), ("dataset", "datasets")):
        pkg = root / f"scaffold_{folder}_{tag}"
        pkg.mkdir(parents=True)
        shutil.copy(PROJECT_ROOT / folder / "__init__.py", pkg / "__init__.py")
        folders[kind] = pkg
    monkeypatch.syspath_prepend(str(root))
    yield folders
    for mod in [m for m in sys.modules if tag in m]:
        del sys.modules[mod]


def check_conformance(name: str, tmp_path, all_subsets: bool = True) -> None:
    """The checks of tests/test_conformance.py, for every modality subset the method declares
    (or only the full set, where another test already covered the same generated code)."""
    cls = get_method(name)
    conformance.test_metadata_is_complete(name)
    for mods in cls.modality_subsets() if all_subsets else [cls.modalities]:
        for check in (conformance.test_method_conformance, conformance.test_prediction_independent_of_batch_composition):
            where = tmp_path / f"{check.__name__}-{''.join(mods)}"  # the kept model's folder
            where.mkdir()
            check(name, "default", mods, where)


def short_run(name, tmp_path, variant="default"):
    from merbench.results import read_result
    from merbench.runner import RunRequest, run

    paths = run(RunRequest(method=name, dataset="toy", modalities="t", seeds=[0], variant=variant,
                           overrides=["features.t=toy-bow", "train.epochs=2"], results_dir=tmp_path / "results"))
    return read_result(paths[0])


# -- methods -------------------------------------------------------------------------------------


def test_in_repo_method_is_registered_and_conforms(repo_copy, registries, merbench_home, tmp_path):
    init = repo_copy["method"] / "__init__.py"
    before = init.read_text()
    res = scaffold_method("tiny_fusion", dest=repo_copy["method"])
    pkg = repo_copy["method"].name
    ref = f"{pkg}.tiny_fusion.method:TinyFusionMethod"
    assert res.class_ref == ref and res.registered_in == init and res.entry_point is None
    # one line added to the table, every other byte kept
    line = f'    "tiny_fusion": "{ref}",\n'
    after = init.read_text()
    assert line in after and after.replace(line, "", 1) == before
    importlib.invalidate_caches()
    table = importlib.import_module(pkg).BUILTIN_METHODS
    (tmp_path / "before.py").write_text(before)
    assert table == {**read_table(tmp_path / "before.py", "BUILTIN_METHODS"), "tiny_fusion": ref}
    assert {"mlp", "majority"} <= set(table)
    names = sorted(p.relative_to(res.folder).as_posix() for p in res.files)
    assert names == ["README.md", "__init__.py", "config.yaml", "metadata.yaml", "method.py", "model.py",
                     "variants/example_ablation.yaml"]
    readme = (res.folder / "README.md").read_text()
    for section in ("## Paper", "bibtex", "## Reported numbers", "## Our numbers", "## Deviations", "## Checklist"):
        assert section in readme

    METHODS.add_lazy({"tiny_fusion": table["tiny_fusion"]})
    cls = get_method("tiny_fusion")
    assert "TODO" in cls.metadata.title and cls.modalities == ("t", "a", "v")
    check_conformance("tiny_fusion", tmp_path)

    # the ablation variant flips a config key the model reads: the built model changes
    cfg, abl = method_config(cls), method_config(cls, "example_ablation")
    assert cfg["model"]["input_norm"] is True and abl["model"]["input_norm"] is False
    dims = {"t": 16, "a": 8}
    n_full = cls(cfg, ("t", "a"), LABELS).num_parameters(dims)
    n_abl = cls(abl, ("t", "a"), LABELS).num_parameters(dims)
    assert n_full - n_abl == 2 * (16 + 8)  # the two LayerNorms' weights and biases

    r = short_run("tiny_fusion", tmp_path)
    assert (r.method, r.dataset, r.folds[0].epochs_run) == ("tiny_fusion", "toy", 2)
    assert r.parameters == cls(cfg, ("t",), toy.LABELS).num_parameters({"t": 32})  # toy-bow is 32-d
    r2 = short_run("tiny_fusion", tmp_path, variant="example_ablation")
    assert r2.variant == "example_ablation" and r2.config["model"]["input_norm"] is False


def test_plugin_method_outside_the_repo(registries, tmp_path, monkeypatch):
    dest = tmp_path / "myproject"
    res = scaffold_method("plug_fusion", dest=dest)
    ref = "merbench_plug_fusion.method:PlugFusionMethod"
    assert res.registered_in is None and res.folder == dest / "merbench_plug_fusion"
    assert res.entry_point == f'plug_fusion = "{ref}"'
    assert entry_points_of(dest / "pyproject.toml", "merbench.methods") == {"plug_fusion": ref}
    assert '"merbench_plug_fusion" = ["*.yaml", "*.md", "variants/*.yaml"]' in (dest / "pyproject.toml").read_text()
    monkeypatch.syspath_prepend(str(dest))
    importlib.invalidate_caches()
    METHODS.add("plug_fusion", import_object(ref))
    check_conformance("plug_fusion", tmp_path, all_subsets=False)  # same templates as the in-repo test
    # a second plugin in the same project leaves its pyproject alone and hands back the line
    text = (dest / "pyproject.toml").read_text()
    res2 = scaffold_method("plug_two", dest=dest)
    assert res2.pyproject is None and (dest / "pyproject.toml").read_text() == text
    assert res2.entry_point == 'plug_two = "merbench_plug_two.method:PlugTwoMethod"'
    assert any(res2.entry_point in step for step in res2.next_steps())


@pytest.mark.parametrize("name,suggestion", [("My-Net", "my_net"), ("2stage", "my_2stage"), ("class", "class_"),
                                             ("TinyFusion", "tiny_fusion"), ("mlp", "my_mlp")])
def test_bad_or_taken_names_are_refused_with_a_fix(tmp_path, name, suggestion):
    with pytest.raises(MerbenchError) as e:
        scaffold_method(name, dest=tmp_path / "p")
    assert repr(suggestion) in e.value.fix
    assert not (tmp_path / "p").exists()  # nothing written


def test_existing_folder_and_in_repo_dest_are_refused(repo_copy, tmp_path):
    (repo_copy["method"] / "already_here").mkdir()
    before = (repo_copy["method"] / "__init__.py").read_text()
    with pytest.raises(MerbenchError, match="already exists"):
        scaffold_method("already_here", dest=repo_copy["method"])
    assert (repo_copy["method"] / "__init__.py").read_text() == before
    with pytest.raises(MerbenchError, match="inside the merbench checkout"):
        scaffold_method("somewhere", dest=PROJECT_ROOT / "docs" / "nope")
    assert not (PROJECT_ROOT / "docs" / "nope").exists()


@pytest.mark.parametrize("source,expected", [
    ('T = {}\n', 'T = {"new": "p.m:C"}\n'),
    ('T = {"a": "x:A"}\n', 'T = {"a": "x:A", "new": "p.m:C"}\n'),
    ('T = {"a": "x:A",}\n', 'T = {"a": "x:A", "new": "p.m:C"}\n'),
    ('T = {\n    "a": "x:A"  # note, with a comma\n}\n', 'T = {\n    "a": "x:A",  # note, with a comma\n    "new": "p.m:C",\n}\n'),
    ('"""é ü"""\nT = {\n  "a": "x:A",\n  # more below\n}\nOTHER = {"b": 1}\n',
     '"""é ü"""\nT = {\n  "a": "x:A",\n  # more below\n  "new": "p.m:C",\n}\nOTHER = {"b": 1}\n'),
    ('T: dict[str, str] = {\n}\n', 'T: dict[str, str] = {\n    "new": "p.m:C",\n}\n'),
])
def test_add_to_table_inserts_one_entry_and_keeps_the_rest(tmp_path, source, expected):
    f = tmp_path / "__init__.py"
    f.write_text(source, encoding="utf-8")
    os.chmod(f, 0o644)
    add_to_table(f, "T", "new", "p.m:C")
    assert f.read_text(encoding="utf-8") == expected
    assert f.stat().st_mode & 0o777 == 0o644
    with pytest.raises(MerbenchError, match="already has 'new'"):
        add_to_table(f, "T", "new", "p.m:D")


def test_add_to_table_refuses_what_it_cannot_edit(tmp_path):
    f = tmp_path / "__init__.py"
    f.write_text("T = dict(a='x:A')\n")
    with pytest.raises(MerbenchError, match="not a dict literal"):
        add_to_table(f, "T", "new", "p.m:C")
    with pytest.raises(MerbenchError, match="has no `U = {...}` table"):
        add_to_table(f, "U", "new", "p.m:C")


# -- datasets ------------------------------------------------------------------------------------


def write_csv(root: Path, with_wav: bool = True, bad_label_row: int | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in range(6):
        split = "train" if d < 3 else ("dev" if d < 4 else "test")
        for t in range(3):
            label = LABELS[(d + t) % 4] if bad_label_row != len(rows) else "bored"
            rows.append({"uid": f"d{d}u{t}", "dialogue_id": f"d{d}", "turn": t, "speaker": "AB"[t % 2],
                         "text": f"line {t}", "label": label, "split": split, "audio": f"wav/d{d}u{t}.wav"})
    with open(root / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if with_wav:  # one file: enough for the audio modality to be offered
        (root / "wav").mkdir(exist_ok=True)
        sf.write(root / "wav" / "d0u0.wav", np.zeros(800, dtype=np.float32) + 0.1, 16000)


def test_in_repo_dataset_loads_a_csv_and_builds_its_protocol(repo_copy, registries, tmp_path):
    init = repo_copy["dataset"] / "__init__.py"
    before = init.read_text()
    res = scaffold_dataset("my_corpus", dest=repo_copy["dataset"])
    pkg = repo_copy["dataset"].name
    ref = f"{pkg}.my_corpus.adapter:MyCorpusDataset"
    line = f'    "my_corpus": "{ref}",\n'
    assert line in init.read_text() and init.read_text().replace(line, "", 1) == before
    assert sorted(p.name for p in res.files) == ["README.md", "__init__.py", "adapter.py"]
    readme = (res.folder / "README.md").read_text()
    for section in ("## Source", "## License", "## Layout", "## Protocols", "## Label map", "## Counts"):
        assert section in readme
    importlib.invalidate_caches()
    DATASETS.add_lazy({"my_corpus": importlib.import_module(pkg).BUILTIN_DATASETS["my_corpus"]})
    cls = DATASETS.get("my_corpus")
    write_csv(tmp_path / "data")
    corpus = cls(tmp_path / "data").load()
    assert len(corpus) == 18 and corpus.modalities == ("t", "a")
    assert corpus["d0u0"].audio_path == str(tmp_path / "data" / "wav" / "d0u0.wav")
    splits = cls.protocol().build(corpus)
    assert splits.protocol.name == "my_corpus-official"
    assert splits.counts() == [{"train": 9, "valid": 3, "test": 6}]

    write_csv(tmp_path / "bad", bad_label_row=4)
    with pytest.raises(MerbenchError) as e:
        cls(tmp_path / "bad").load()
    assert f"{tmp_path / 'bad' / 'annotations.csv'}, line 6" in e.value.message and "'bored'" in e.value.message
    with pytest.raises(MerbenchError, match="does not exist"):
        cls(tmp_path / "absent").load()


def test_plugin_dataset_outside_the_repo(registries, tmp_path, monkeypatch):
    res = scaffold_dataset("plug_corpus", dest=tmp_path / "proj")
    assert res.entry_point == 'plug_corpus = "merbench_plug_corpus.adapter:PlugCorpusDataset"'
    assert "plug_corpus" in entry_points_of(tmp_path / "proj" / "pyproject.toml", "merbench.datasets")
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    importlib.invalidate_caches()
    cls = import_object("merbench_plug_corpus.adapter:PlugCorpusDataset")
    write_csv(tmp_path / "data", with_wav=False)
    corpus = cls(tmp_path / "data").load()
    assert corpus.modalities == ("t",)  # the audio column is there, its files are not
    assert cls.protocol().build(corpus).counts() == [{"train": 9, "valid": 3, "test": 6}]


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_new_method_and_dataset(tmp_path):
    app = typer.Typer()
    app.add_typer(new_app, name="new")  # mounted as the main CLI mounts it
    runner = CliRunner()
    out = runner.invoke(app, ["new", "method", "cli_net", "--dest", str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    assert 'cli_net = "merbench_cli_net.method:CliNetMethod"' in out.output
    assert (tmp_path / "m" / "merbench_cli_net" / "model.py").is_file()
    out = runner.invoke(app, ["new", "dataset", "cli_corpus", "--dest", str(tmp_path / "d")])
    assert out.exit_code == 0, out.output
    assert '[project.entry-points."merbench.datasets"]' in out.output
    out = runner.invoke(app, ["new", "method", "Bad-Name", "--dest", str(tmp_path / "x")])
    assert isinstance(out.exception, MerbenchError) and "bad_name" in out.exception.fix


# -- out-of-tree plugin through the entry-point group ----------------------------------------------


def _pip_available() -> bool:
    try:
        import setuptools  # noqa: F401  (the build backend, with --no-build-isolation)
    except ImportError:
        return False
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _pip_available(), reason="pip (or setuptools, its build backend here) is not available "
                                                  "in this Python, so the plugin package cannot be installed")
def test_entry_point_plugin_shows_in_bench_list(tmp_path, monkeypatch, registries, capsys):
    # Installed with --target into a temporary folder put on sys.path, not into the venv
    # itself: the entry-point lookup is the same (a dist-info on sys.path), and other test
    # processes sharing the venv never see the plugin come and go.
    from merbench.cli import main

    src = tmp_path / "src"
    shutil.copytree(Path(__file__).parent / "plugin_pkg", src)  # the build writes egg-info beside the sources
    target = tmp_path / "site"
    try:
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                              "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
        assert pip.returncode == 0, pip.stderr
        assert (target / "merbench_hello" / "method.py").is_file()
        capsys.readouterr()
        assert main(["list", "methods"]) == 0
        assert "hello" not in [ln.split("\t")[0] for ln in capsys.readouterr().out.splitlines()]  # not on the path yet
        monkeypatch.syspath_prepend(str(target))
        monkeypatch.setattr(METHODS, "_entry_points_loaded", False)  # look the entry points up again
        assert main(["list", "methods"]) == 0
        out = capsys.readouterr().out
        # Not a terminal here: tab-separated rows (method, modalities, unit, title)
        row = next((ln.split("\t") for ln in out.splitlines() if ln.startswith("hello\t")), None)
        assert row is not None and row[1:3] == ["t", "utterance"] and "Hello plugin" in row[3], out
        cls = get_method("hello")
        assert (cls.__module__, cls.__name__) == ("merbench_hello.method", "HelloMethod")
        # fit / predict with consistent feature sizes (see the report: test_conformance's
        # non-neural branch hands valid / test splits of another width than train)
        from fakes import fake_split

        method = cls({}, ("t",), LABELS)
        report = method.fit(fake_split(dims={"t": 16}), fake_split(seed=1, name="valid", dims={"t": 16}))
        probs = method.predict(fake_split(seed=2, name="test", labels=False, dims={"t": 16}))
        assert report.best_valid_score is not None and probs.shape[1] == len(LABELS)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        conformance.test_metadata_is_complete("hello")
    finally:
        for mod in [m for m in sys.modules if m.startswith("merbench_hello")]:
            del sys.modules[mod]
        shutil.rmtree(target, ignore_errors=True)
