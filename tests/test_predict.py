"""Kept models: a run keeps its selected model, `bench predict` reproduces the run's test
predictions from it (utterance- and dialogue-level), labels single clips from a clean process with
only the exported folder, and refuses a folder whose weights are a pickle or whose extractor is
unknown here."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from merbench.cli import main
from merbench.runner import RunRequest, run

pytestmark = pytest.mark.slow  # trains on a small synthetic corpus
N_DIALOGUES = 10  # 24 train, 4 valid, 9 test utterances at seed 0: seconds to extract and train


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from merbench.datasets.synthetic.generator import generate

    base = tmp_path_factory.mktemp("predict")
    generate(base / "data" / "synthetic", n_dialogues=N_DIALOGUES, seed=0, workers=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MERBENCH_DATA", str(base / "data"))
        mp.setenv("MERBENCH_HOME", str(base / "home"))
        yield base


def _run(env, method, modalities, *extra):
    out = run(RunRequest(method=method, dataset="synthetic", modalities=modalities, seeds=[0], epochs=2,
                         overrides=list(extra), results_dir=env / "results"))
    return out[0]


@pytest.fixture(scope="module")
def mlp_result(env):
    return _run(env, "mlp", "t,a,v")


@pytest.fixture(scope="module")
def erc_result(env):
    # Dialogue level; video needs a trained LipSync checkpoint, so text and audio here.
    return _run(env, "lipsync_graph_erc", "t,a")


def _probs(csv_path: Path) -> dict[str, dict[str, str]]:
    return {r["uid"]: {k: v for k, v in r.items() if k.startswith("p_")} for r in csv.DictReader(open(csv_path))}


def test_run_keeps_its_model_beside_the_result(mlp_result):
    result = json.loads(mlp_result.read_text())
    folder = mlp_result.with_suffix(".model")
    assert result["model"]["folder"] == folder.name
    fold = folder / "fold-official"
    info = yaml.safe_load((fold / "model.yaml").read_text())
    assert info["weights"]["sha256"] == result["model"]["weights_sha256"]["official"]
    assert info["parameters"] == result["parameters"] and info["manifest_hash"] == result["manifest_hash"]
    assert info["label_names"] == result["label_names"] and info["config_hash"] == result["config_hash"]
    assert {m: f["cache_key"] for m, f in info["features"].items()} == \
        {m: s["cache_key"] for m, s in result["feature_settings"].items()}
    assert info["features"]["a"]["extractor"] == "audio-egemaps" and info["features"]["a"]["version"]
    assert (fold / "weights.safetensors").read_bytes()[8:9] == b"{"  # safetensors: header length, then JSON
    # the run folder keeps no second copy once the model is beside the result
    assert not list((Path(os.environ["MERBENCH_HOME"]) / "runs").rglob("weights.safetensors"))


def test_no_keep_model_keeps_none(env, capsys):
    out = run(RunRequest(method="mlp", dataset="synthetic", modalities="t", seeds=[1], epochs=1,
                         results_dir=env / "nokeep", keep_model=False))[0]
    assert json.loads(out.read_text())["model"] == {} and not out.with_suffix(".model").exists()
    assert main(["predict", str(out), "synthetic", "--output", str(env / "nokeep" / "p")]) == 2
    err = capsys.readouterr().err
    assert "has no kept model" in err and "--force" in err


@pytest.mark.parametrize("which", ["mlp_result", "erc_result"])
def test_predict_on_the_test_split_gives_the_run_probabilities(which, request, env, capsys):
    result = request.getfixturevalue(which)
    out = env / f"pred-{which}"
    assert main(["predict", str(result), "synthetic", "--split", "test", "--output", str(out)]) == 0, \
        capsys.readouterr().err
    got, want = _probs(Path(f"{out}.csv")), _probs(result.with_suffix(".predictions.csv"))
    assert list(got) == list(want) and got == want
    data = json.loads(Path(f"{out}.json").read_text())
    assert [p["uid"] for p in data["predictions"]] == list(want) and data["on_missing"] == "error"
    assert "uid" in capsys.readouterr().out  # the table


def _clip(env, uid: str) -> tuple[Path, Path, str]:
    root = env / "data" / "synthetic"
    row = next(r for r in csv.DictReader(open(root / "annotations.csv")) if r["uid"] == uid)
    return root / row["audio"], root / row["video"], row["text"]


def _clean_predict(folder: Path, cwd: Path, *args) -> subprocess.CompletedProcess:
    """`bench predict` in a fresh process: a new MERBENCH_HOME (no feature cache), no corpus folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERBENCH")}
    env["MERBENCH_HOME"] = str(cwd / "home")
    code = "import sys; from merbench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-P", "-c", code, "predict", str(folder), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_clips_from_a_clean_process_with_the_exported_folder_only(mlp_result, env, tmp_path, capsys):
    exported = tmp_path / "exported"
    assert main(["export", str(mlp_result), str(exported)]) == 0, capsys.readouterr().err
    card = (exported / "README.md").read_text()
    assert "## Reproduce" in card and "| W-F1 (headline) |" in card and "audio-egemaps" in card
    want = _probs(mlp_result.with_suffix(".predictions.csv"))
    test_uid = next(iter(want))
    wav, mp4, text = _clip(env, test_uid)
    clips = tmp_path / "clips"
    clips.mkdir()
    # wav + mp4 of the same stem are one clip with every modality; transcripts from sidecar .txt files
    shutil.copy(wav, clips / "full.wav")
    shutil.copy(mp4, clips / "full.mp4")
    shutil.copy(wav, clips / "only.wav")
    shutil.copy(mp4, clips / "one.mp4")
    for stem in ("full", "only", "one"):
        (clips / f"{stem}.txt").write_text(text)
    # a single wav lacks video: an error naming the clip, with the fix
    rc = main(["predict", str(exported), str(clips / "only.wav"), "--output", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "only" in err and "no video" in err and "--on-missing zero" in err
    p = _clean_predict(exported, tmp_path, clips / "full.wav", clips / "full.mp4", clips / "only.wav",
                       clips / "one.mp4", "--on-missing", "zero", "--output", tmp_path / "clips")
    assert p.returncode == 0, p.stderr
    rows = {r["uid"]: r for r in csv.DictReader(open(tmp_path / "clips.csv"))}
    assert list(rows) == ["full", "only", "one"]
    # every modality: exactly the run's prediction of that test utterance
    assert {k: v for k, v in rows["full"].items() if k.startswith("p_")} == want[test_uid]
    assert rows["full"]["missing"] == ""
    # the single wav + text gets zero video; the mp4 (the synthetic mp4 has no sound track) zero audio
    assert rows["only"]["missing"] == "v" and rows["one"]["missing"] == "a"
    for r in rows.values():
        assert abs(sum(float(v) for k, v in r.items() if k.startswith("p_")) - 1) < 1e-3
    data = json.loads((tmp_path / "clips.json").read_text())
    assert data["on_missing"] == "zero" and [x["missing"] for x in data["predictions"]] == [[], ["v"], ["a"]]


def test_dialogue_model_takes_the_clips_in_order_as_one_dialogue(erc_result, env):
    import merbench

    want = _probs(erc_result.with_suffix(".predictions.csv"))
    root = env / "data" / "synthetic"
    rows = [r for r in csv.DictReader(open(root / "annotations.csv")) if r["uid"] in want]
    dialogue = [r for r in rows if r["dialogue_id"] == rows[0]["dialogue_id"]]
    dialogue.sort(key=lambda r: int(r["turn"]))
    model = merbench.load_model(erc_result.with_suffix(".model"))
    p = model.predict([root / r["audio"] for r in dialogue], text=[r["text"] for r in dialogue],
                      speakers=[r["speaker"] for r in dialogue])
    # a whole test dialogue, in order, with its speakers: the run's probabilities for it
    assert [[f"{x:.5f}" for x in row] for row in p.probs] == [list(want[r["uid"]].values()) for r in dialogue]


def _copy_model(result: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(result.with_suffix(".model") / "fold-official", folder)
    return folder


def test_weights_replaced_by_a_pickle_are_refused(mlp_result, tmp_path, capsys):
    folder = _copy_model(mlp_result, tmp_path)
    marker = tmp_path / "ran"
    (folder / "weights.safetensors").write_bytes(pickle.dumps(_Planted(str(marker))))
    rc = main(["predict", str(folder), "synthetic", "--output", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 2 and "weights.safetensors" in err and "pickle" in err and "nothing in it was run" in err
    assert not marker.exists()


def test_weights_changed_after_keeping_are_refused(mlp_result, tmp_path, capsys):
    folder = _copy_model(mlp_result, tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "weights.safetensors"))
    name = next(k for k in tensors if k.startswith("model."))
    tensors[name] = tensors[name] * 2
    save_file(tensors, str(folder / "weights.safetensors"))
    rc = main(["predict", str(folder), "synthetic", "--output", str(tmp_path / "p")])
    assert rc == 2 and "SHA-256" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (lambda f: f.update(extractor="audio-nonexistent"), "'audio-nonexistent', which is not available here"),
    (lambda f: f.update(version="999"), "the model was trained on version 999 features"),
])
def test_unknown_or_changed_extractor_is_refused(change, message, mlp_result, tmp_path, capsys):
    folder = _copy_model(mlp_result, tmp_path)
    info = yaml.safe_load((folder / "model.yaml").read_text())
    change(info["features"]["a"])
    (folder / "model.yaml").write_text(yaml.safe_dump(info))
    rc = main(["predict", str(folder), "synthetic", "--output", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err


def test_prune_removes_only_unreferenced_model_folders(mlp_result, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(mlp_result.parent, results)
    kept = results / mlp_result.with_suffix(".model").name
    orphan = results / "gone-t-seed0-00000000.model"
    shutil.copytree(kept, orphan)  # its result file was deleted
    assert main(["runs", "prune", "--results-dir", str(results)]) == 0
    assert kept.is_dir() and not orphan.exists()
    assert "1 unreferenced model folder(s)" in capsys.readouterr().out


class _Planted:
    """Unpickling this would create a file: the refusal must come before anything runs."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_run_folder_has_a_classification_report_and_per_class_plot(mlp_result):
    from sklearn.metrics import precision_recall_fscore_support

    rows = list(csv.DictReader(open(mlp_result.with_suffix(".predictions.csv"))))
    labels = json.loads(mlp_result.read_text())["label_names"]
    p, r, f, n = precision_recall_fscore_support([x["gold"] for x in rows], [x["pred"] for x in rows], labels=labels,
                                                 zero_division=0)
    report = mlp_result.with_suffix(".report.txt").read_text()
    for i, name in enumerate(labels):
        line = next(x for x in report.splitlines() if x.split() and x.split()[0] == name)
        assert line.split()[1:] == [f"{p[i]:.4f}", f"{r[i]:.4f}", f"{f[i]:.4f}", str(n[i])]
    accuracy = sum(x["gold"] == x["pred"] for x in rows) / len(rows)
    assert f"{accuracy:.4f}" in next(x for x in report.splitlines() if x.strip().startswith("accuracy (WA)"))
    assert mlp_result.with_suffix(".per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_python_snippet_runs_on_an_exported_model(mlp_result, env, tmp_path, capsys):
    """README.md's five-line snippet, run as written, with its folder and clips replaced by real ones."""
    import re

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    snippet = re.search(r"```python\n(import merbench\n.*?)```", readme, flags=re.S).group(1)
    assert len([x for x in snippet.splitlines() if x.strip()]) == 5
    assert main(["export", str(mlp_result), str(tmp_path / "my-model")]) == 0
    capsys.readouterr()
    uid = next(iter(_probs(mlp_result.with_suffix(".predictions.csv"))))
    wav, mp4, _ = _clip(env, uid)
    shutil.copy(wav, tmp_path / "hello.wav")
    shutil.copy(mp4, tmp_path / "reply.mp4")
    os.chdir(tmp_path)  # the snippet's relative paths
    try:
        exec(compile(snippet, "README.md", "exec"), {})
    finally:
        os.chdir(Path(__file__).parent)
    printed = capsys.readouterr().out.splitlines()
    labels = json.loads(mlp_result.read_text())["label_names"]
    assert [x.split()[0] for x in printed] == ["hello", "reply"] and all(x.split()[1] in labels for x in printed)
