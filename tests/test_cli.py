"""End to end through the `bench` CLI on a small generated synthetic corpus, and the
bad-input paths: each a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from merbench.cli import main


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory):
    """~20 dialogues of the synthetic corpus, generated once for this module."""
    from merbench.datasets.synthetic.generator import generate

    data = tmp_path_factory.mktemp("data")
    generate(data / "synthetic", n_dialogues=20, seed=0, workers=2)
    return data


@pytest.fixture
def env(small_synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("MERBENCH_DATA", str(small_synthetic))
    monkeypatch.setenv("MERBENCH_HOME", str(small_synthetic.parent / "home"))  # feature cache shared by the tests here
    return tmp_path


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_run_then_leaderboard_shows_the_result_numbers(env, capsys):
    results = env / "results"
    rc, out, err = run_cli(capsys, "run", "mlp", "synthetic", "--modalities", "t,a,v", "--seeds", "2", "--epochs", "4",
                           "--results-dir", results)
    assert rc == 0, err
    files = sorted(results.rglob("*.json"))
    assert len(files) == 2
    wf1 = [json.loads(f.read_text())["test"]["weighted_f1"] * 100 for f in files]
    assert "mlp (default) on synthetic / synthetic-4" in out  # the final rich table
    md = env / "LB.md"
    rc, out, err = run_cli(capsys, "leaderboard", "--results-dir", results, "--output", md)
    assert rc == 0, err
    text = md.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| mlp"))
    assert f"{np.mean(wf1):.2f} ± {np.std(wf1, ddof=1):.2f}" in row
    assert "synthetic / synthetic-4" in text


def test_unknown_method_suggests_closest(env, capsys):
    rc, out, err = run_cli(capsys, "run", "mpl", "synthetic")
    assert rc == 2 and "unknown method 'mpl'" in err and "'mlp'" in err and "Traceback" not in err + out


def test_unknown_dataset_suggests_closest(env, capsys):
    rc, out, err = run_cli(capsys, "run", "mlp", "synthetc")
    assert rc == 2 and "unknown dataset 'synthetc'" in err and "'synthetic'" in err


def test_unknown_protocol_and_bad_modalities(env, capsys):
    rc, _, err = run_cli(capsys, "run", "mlp", "synthetic", "--protocol", "synthetic-5")
    assert rc == 2 and "no protocol 'synthetic-5'" in err and "synthetic-4" in err
    rc, _, err = run_cli(capsys, "run", "mlp", "synthetic", "--modalities", "t,x")
    assert rc == 2 and "bad modalities" in err


def test_corrupt_wav_is_named(env, capsys, small_synthetic, tmp_path):
    import shutil

    root = tmp_path / "syn_copy"
    shutil.copytree(small_synthetic / "synthetic", root)
    victim = sorted(root.rglob("*.wav"))[3]
    victim.write_bytes(b"RIFF not really a wav")
    rc, out, err = run_cli(capsys, "run", "mlp", "synthetic", "--root", root, "--modalities", "a", "--seed", "0",
                           "--epochs", "1", "--results-dir", tmp_path / "r")
    assert rc == 2 and victim.name in err and "--on-bad-media zero" in err and "Traceback" not in err
    rc, out, err = run_cli(capsys, "run", "mlp", "synthetic", "--root", root, "--modalities", "a", "--seed", "0",
                           "--epochs", "1", "--results-dir", tmp_path / "r", "--on-bad-media", "zero")
    assert rc == 0, err
    result = json.loads(next((tmp_path / "r").rglob("*.json")).read_text())
    assert result["bad_media"] == 1


def test_extraction_prints_plain_progress_lines_when_not_a_terminal(env, capsys):
    """Piped to a file (CI logs, nohup), a long extraction is not silent: plain progress lines."""
    rc, out, err = run_cli(capsys, "features", "extract", "synthetic", "--extractor", "text-minilm")
    assert rc == 0, err
    progress = [line for line in out.splitlines() if line.startswith("extract text-minilm: ")]
    assert progress and "(100%)" in progress[-1], out


def test_a_cache_part_of_the_wrong_shape_is_named_and_extracted_again(env, capsys, tmp_path):
    # Extract once, then damage the cached part: its pooled array loses a row.
    rc, _, err = run_cli(capsys, "features", "extract", "synthetic", "--extractor", "text-minilm")
    assert rc == 0, err
    from merbench.paths import cache_root

    part = next(p for p in cache_root().rglob("part-00000.npz") if "text-minilm" in str(p))
    backup = part.read_bytes()
    try:
        with np.load(part) as z:
            arrays = dict(z)
        arrays["pooled"] = arrays["pooled"][:-1]
        with open(part, "wb") as fh:
            np.savez(fh, **arrays)
        rc, out, err = run_cli(capsys, "run", "mlp", "synthetic", "--modalities", "t", "--seed", "0", "--epochs", "1",
                               "--results-dir", tmp_path / "r")
        assert rc == 0 and "Traceback" not in out + err
        assert re.search(rf"feature cache {re.escape(str(part))} is damaged \(.*extracted again",
                         out + err)
        assert part.read_bytes() == backup  # extracted again: the same features
    finally:
        part.write_bytes(backup)


def test_missing_corpus_root_is_named(env, capsys, tmp_path):
    from merbench.registry import DATASETS, load_builtins

    load_builtins()
    real = [n for n in DATASETS.names() if n != "synthetic"]
    if not real:
        pytest.skip("no real-corpus adapter registered yet")
    missing = tmp_path / "no_such_corpus"
    rc, out, err = run_cli(capsys, "data", "check", real[0], "--root", missing)
    assert rc == 2 and "no_such_corpus" in err and "Traceback" not in err


def test_data_check_counts_and_media_durations(env, capsys, small_synthetic, tmp_path):
    import shutil

    root = tmp_path / "syn_check"
    shutil.copytree(small_synthetic / "synthetic", root)
    sorted(root.rglob("*.wav"))[0].write_bytes(b"broken")
    rc, out, err = run_cli(capsys, "data", "check", "synthetic", "--root", root)
    assert rc == 0, err
    assert "synthetic-4" in out and "train" in out and "test" in out
    audio_row = next(line for line in out.splitlines() if line.strip("│ ").startswith("audio"))
    assert " 1 " in audio_row  # the broken wav is counted as unreadable
    assert "unreadable audio" in out


def test_features_extract_with_workers_matches_one_process(env, capsys, monkeypatch, tmp_path):
    from merbench.features import store
    from merbench.registry import get_dataset

    monkeypatch.setattr(store, "PART_SIZE", 60)  # a few parts on the small corpus
    corpus = get_dataset("synthetic")().load()
    ext = __import__("merbench.cli", fromlist=["build_extractor"]).build_extractor("audio-logmel", batch_size=8)
    one = store.load_table(store.extract_corpus(corpus, ext, cache=tmp_path / "one"))
    two = store.load_table(store.extract_corpus(corpus, ext, cache=tmp_path / "two", workers=2))
    np.testing.assert_array_equal(one.pooled, two.pooled)
    assert [len(f) for f in one.frames] == [len(f) for f in two.frames]
    rc, out, err = run_cli(capsys, "features", "extract", "synthetic", "-e", "text-minilm", "--device", "cuda")
    import torch

    if not torch.cuda.is_available():
        assert rc == 2 and "no CUDA device" in err
    rc, out, err = run_cli(capsys, "features", "extract", "synthetic", "-e", "audio-logmel", "--device", "gpu")
    assert rc == 2 and "unknown device" in err


def test_features_extract_options_reach_the_extractor(env, capsys, tmp_path):
    """`--option key=value` builds the extractor as a config's `options` would: here tiny
    random-weight models through the real loading code (a Hugging Face folder, a FunASR folder);
    a second run reuses the cache; unknown options are named."""
    from test_features_more import _speech_model

    tiny = _speech_model(tmp_path, "wav2vec2")
    args = ("features", "extract", "synthetic", "-e", "audio-hf", "--option", f"model_name={tiny}", "-o", "layer=1")
    rc, out, err = run_cli(capsys, *args)
    assert rc == 0, err
    from merbench.cli import build_extractor
    from merbench.features.store import entry_dir
    from merbench.registry import get_dataset

    entry = entry_dir(get_dataset("synthetic")().load(), build_extractor("audio-hf", options={"model_name": str(tiny),
                                                                                                "layer": 1}))
    parts = sorted(entry.glob("part-*.npz"))
    assert parts and json.loads((entry / "meta.json").read_text())["settings"]["layer"] == 1
    stamps = [p.stat().st_mtime_ns for p in parts]
    rc, out2, err = run_cli(capsys, *args)
    assert rc == 0 and [p.stat().st_mtime_ns for p in parts] == stamps  # nothing recomputed
    rc, out, err = run_cli(capsys, "features", "extract", "synthetic", "-e", "audio-hf", "--option", "layr=1")
    assert rc == 2 and "no option 'layr'" in err and "layer" in err and "Traceback" not in err
    rc, out, err = run_cli(capsys, "features", "extract", "synthetic", "-e", "audio-hf", "--option", "layer")
    assert rc == 2 and "not key=value" in err
    # Every other model-based extractor through the same command, on tiny random-weight models.
    from test_features_more import build_tiny_mlm, build_tiny_vit

    bert, vit = build_tiny_mlm(tmp_path / "bert", max_positions=256), build_tiny_vit(tmp_path / "vit")
    for ex, opts in (("text-hf", [f"model_name={bert}"]), ("text-context", [f"model_name={bert}"]),
                     ("video-hf", [f"model_name={vit}", "max_frames=3"])):
        rc, out, err = run_cli(capsys, "features", "extract", "synthetic", "-e", ex, *[x for o in opts for x in ("-o", o)])
        assert rc == 0, (ex, err)
    try:
        import funasr  # noqa: F401
    except ImportError:
        return
    from test_features_more import build_tiny_emotion2vec

    e2v = build_tiny_emotion2vec(tmp_path / "e2v")
    rc, out, err = run_cli(capsys, "features", "extract", "synthetic", "-e", "audio-emotion2vec", "-o", f"model={e2v}")
    assert rc == 0, err


# -- output for programs ------------------------------------------------------------------------


@pytest.mark.parametrize("kind,first_column", [("methods", "method"), ("datasets", "dataset"),
                                               ("protocols", "protocol"), ("features", "extractor")])
def test_list_json_gives_every_name_in_full(capsys, kind, first_column):
    rc, out, _ = run_cli(capsys, "list", kind, "--json")
    assert rc == 0
    rows = json.loads(out)
    assert rows and all(first_column in r for r in rows)
    names = [r[first_column] for r in rows]
    if kind == "protocols":
        assert "iemocap-4-random8020" in names and "meld-oversampled-leaky" in names
        leaky = next(r for r in rows if r["protocol"] == "iemocap-4-random8020")
        assert leaky["dataset"] == "iemocap" and leaky["note"] == "as published (leaky)"
    if kind == "methods":
        assert "mlp" in names


def test_list_in_a_pipe_is_plain_text_with_untruncated_names(capsys):
    """What `bench list protocols | grep iemocap-4-random8020` sees: stdout is not a terminal."""
    rc, out, _ = run_cli(capsys, "list", "protocols")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split("\t")[:2] == ["protocol", "dataset"]
    hits = [ln for ln in lines if "iemocap-4-random8020" in ln]
    assert len(hits) == 1 and hits[0].split("\t")[0] == "iemocap-4-random8020"
    assert "…" not in out and "─" not in out  # no rich table borders or ellipses


def test_info_json_and_plain(capsys):
    rc, out, _ = run_cli(capsys, "info", "lipsync_graph_erc", "--json")
    assert rc == 0
    info = json.loads(out)
    assert info["method"] == "lipsync_graph_erc" and info["unit"] == "dialogue"
    assert info["parameters"] > 0 and set(info["inputs"]) == {"t", "a", "v"}
    rc, out, _ = run_cli(capsys, "info", "lipsync_graph_erc")
    assert rc == 0
    title_line = out.splitlines()[0]
    assert title_line.endswith("Hierarchical Fusion (LipSync graph ERC)")  # one line, not wrapped at 80 columns
    assert f"parameters: {info['parameters']}" in out


def test_info_shows_default_epochs_and_what_each_variant_changes(capsys):
    rc = main(["info", "miust"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "default epochs: 70" in out  # methods/miust/config.yaml
    # variants/cpu.yaml: 10 epochs, shorter sequences, patience 10
    assert re.search(r"variants: default; cpu: epochs=10, max_frames=96, patience=10; no_cmd: cmd=0\.0", out), out
    rc = main(["info", "miust", "--variant", "cpu"])
    assert rc == 0 and "default epochs: 70 (variant cpu: 10)" in capsys.readouterr().out
