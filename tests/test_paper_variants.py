"""The `paper` variant of each paper method: the original's model at the paper's own feature sizes
with the original's hyper-parameters. Expected parameter counts are written out here from the
originals' layer shapes (read from their code: HANLM15/MIUST model.py, CS772-Project
MMClassifiers.ipynb, BLANK-2340 Emotion_recgno_MELD.py, multimodalERC multiattn.py), never taken
from our modules."""

from __future__ import annotations

import pytest

from merbench.config import method_config
from merbench.registry import get_method


# -- layer shapes ------------------------------------------------------------------------------

def linear(i: int, o: int) -> int:
    return i * o + o


def layer_norm(d: int) -> int:  # also BatchNorm1d: weight and bias (running stats are buffers)
    return 2 * d


def bilstm(i: int, h: int, layers: int) -> int:
    """nn.LSTM(i, h, layers, bidirectional=True): per layer and direction W_ih, W_hh, b_ih, b_hh."""
    return sum(2 * (4 * h * ((i if n == 0 else 2 * h) + h) + 8 * h) for n in range(layers))


def mha(d: int) -> int:  # nn.MultiheadAttention(d, heads): in_proj (3d x d + 3d) and out_proj
    return 3 * d * d + 3 * d + linear(d, d)


def miust(classes: int, fusion_hidden: int, text: int = 768, audio: int = 768) -> int:
    lstms = 2 * bilstm(text, 128, 2) + 2 * bilstm(audio, 128, 2)  # L1, L11 (text); L2, L22 (audio)
    pools = 6 * (256 * 4 + 4)  # W 256x4 and u 4 per attention pooling
    cross = 2 * mha(256)
    fusion = linear(6 * 256, fusion_hidden) + linear(fusion_hidden, classes)
    aux = 2 * linear(256, classes)
    return lstms + pools + cross + fusion + aux


def multifocus(classes: int, audio: int = 65, text: int = 768) -> int:
    attention = linear(256, 64) + 64  # ContextBasedAttention: wh 256->64, v (64, 1)
    encoders = bilstm(audio, 128, 2) + bilstm(text, 128, 2) + 2 * attention
    gmu = linear(256, 128) + linear(256, 128) + linear(512, 128)
    return encoders + gmu + linear(128, classes)


def bert_base_uncased() -> int:
    embeddings = 30522 * 768 + 512 * 768 + 2 * 768 + layer_norm(768)
    layer = 4 * linear(768, 768) + layer_norm(768) + linear(768, 3072) + linear(3072, 768) + layer_norm(768)
    return embeddings + 12 * layer + linear(768, 768)  # + pooler


def cross_modal_head(classes: int) -> int:
    text = linear(768, 512)
    audio = (linear(512, 256) + layer_norm(256)) + (linear(50, 128) + layer_norm(128)) + linear(384, 256)
    visual = linear(512, 256) + layer_norm(256)
    attention = 2 * mha(512)
    fusion = linear(1024, 512) + linear(512, 256) + linear(256, classes)
    return text + audio + visual + attention + fusion


def lipsync_fusion(classes: int, dims=(("v", 768), ("a", 1024), ("t", 1024)), d: int = 256,
                   layers: int = 3) -> tuple[int, int]:
    """HierarchicalAttentionFusion(use_moe=False, use_contrastive=False): (all its parameters,
    those that never get a gradient: quality detectors, confidence and uncertainty estimators)."""
    m = len(dims)
    proj = sum(linear(x, d) + layer_norm(d) for _, x in dims)
    aligners = m * (m - 1) // 2 * (2 * linear(d, d) + 1)  # source, target, temperature
    adaptive = linear(d * m, d) + layer_norm(d) + linear(d, d // 2) + linear(d // 2, m)
    selectors = m * (linear(d, d // 2) + layer_norm(d // 2) + linear(d // 2, d))
    info_gates = m * (linear(2 * d, d) + layer_norm(d) + linear(d, 1))
    gates = m * (linear(2 * d, d) + layer_norm(d) + linear(d, d))
    cross = m * mha(d)
    transformer = layers * (mha(d) + linear(d, 4 * d) + linear(4 * d, d) + 2 * layer_norm(d))
    pool = 3 * d + mha(d)
    integrator = linear(3 * d, 2 * d) + layer_norm(2 * d) + linear(2 * d, d) + layer_norm(d)
    heads = 3 * linear(d, classes) + m * (linear(d, d // 2) + linear(d // 2, classes))
    quality = sum(linear(x, 128) + layer_norm(128) + linear(128, 64) + linear(64, 1) for _, x in dims)
    estimators = 2 * (linear(d, 64) + linear(64, 1))
    total = (proj + aligners + adaptive + selectors + info_gates + gates + cross + transformer + pool
             + integrator + heads + quality + estimators)
    return total, quality + estimators


def test_the_expected_counts_are_the_papers():
    # The figures the task states, from the shapes above.
    assert miust(7, 128) == 5_993_005 and miust(4, 64) == 5_892_452
    assert bert_base_uncased() == 109_482_240
    assert lipsync_fusion(7) == (7_012_024, 419_589)


# -- our paper variants ----------------------------------------------------------------------------

def paper_method(name: str, dataset: str, protocol: str, mods: tuple[str, ...]):
    from merbench.registry import resolve_dataset

    cls = get_method(name)
    proto = resolve_dataset(dataset).protocol(protocol)
    cfg = method_config(cls, "paper", dataset, protocol)
    return cls(cfg, mods, tuple(proto.label_names)), cfg


@pytest.mark.parametrize("dataset,protocol,expected", [("meld", "meld-7", 5_993_005),
                                                        ("iemocap", "iemocap-4-loso", 5_892_452)])
def test_miust_paper_variant_has_the_original_count(dataset, protocol, expected):
    method, cfg = paper_method("miust", dataset, protocol, ("t", "a"))
    feats = cfg["features"]
    assert (feats["t"]["extractor"], feats["a"]["extractor"]) == ("text-pack", "audio-pack")
    assert feats["t"]["level"] == feats["a"]["level"] == "frames"
    assert feats["t"]["options"]["dim"] == feats["a"]["options"]["dim"] == 768
    t = cfg["train"]
    assert (t["optimizer"], t["lr"], t["scheduler"], t["standardize"]) == ("rmsprop", 5e-4, "cosine", False)
    assert (t["epochs"], t["batch_size"]) == ((40, 256) if dataset == "meld" else (70, 128))
    assert method.num_parameters({"t": 768, "a": 768}) == expected == miust(len(method.label_names),
                                                                              128 if dataset == "meld" else 64)


def test_multifocus_paper_variant_has_the_original_count():
    method, cfg = paper_method("multifocus_blstm", "iemocap", "iemocap-4-random8020", ("t", "a"))
    feats = cfg["features"]
    assert feats["a"]["extractor"] == "audio-pack" and feats["a"]["options"]["format"] == "dataframe-pickle"
    assert feats["a"]["options"]["key"] == "features" and feats["a"]["options"]["dim"] == 65
    assert feats["t"]["options"]["model_name"] == "bert-base-uncased"
    assert {s: method.stage_train_cfg(s)["epochs"] for s in ("a", "t", "fusion")} == {"a": 15, "t": 10, "fusion": 2}
    assert method.stage_train_cfg("a")["lr"] == 1e-4 and method.stage_train_cfg("a")["batch_size"] == 32
    assert method.num_parameters({"t": 768, "a": 65}) == multifocus(4) == 2_074_756


def test_lipsync_paper_variant_has_the_original_fusion_count():
    method, cfg = paper_method("lipsync_graph_erc", "meld", "meld-7", ("t", "a", "v"))
    dims = {m: cfg["features"][m]["options"]["dim"] for m in ("t", "a", "v")}
    assert dims == {"t": 1024, "a": 1024, "v": 768}
    assert cfg["model"]["use_graph"] is False and cfg["train"]["lr"] == 1.4733e-5
    total, never_trained = lipsync_fusion(7)
    # Ours leaves out what the original computes and discards (no gradient ever reaches it).
    assert method.num_parameters(dims) == total - never_trained == 6_592_435


def test_cross_modal_paper_variant_config():
    _, cfg = paper_method("cross_modal_attention", "meld", "meld-7", ("t", "a", "v"))
    assert cfg["encoder"]["name"] == "bert-base-uncased" and cfg["features"]["t"] == "raw"
    assert cfg["features"]["a"]["options"]["dim"] == 512 + 25 + 25 and cfg["features"]["v"]["options"]["dim"] == 512
    assert cfg["model"]["audio_groups"] == [[512, 256], [50, 128]]


@pytest.mark.parametrize("method,where,expected", [
    ("miust", ["-d", "iemocap", "-p", "iemocap-4-loso"], miust(4, 64)),
    ("miust", ["-d", "meld"], miust(7, 128)),
    ("multifocus_blstm", ["-d", "iemocap", "-p", "iemocap-4-random8020"], multifocus(4)),
    ("lipsync_graph_erc", ["-d", "meld"], lipsync_fusion(7)[0] - lipsync_fusion(7)[1]),
    # bert-base-uncased counted from its architecture: no weights needed
    ("cross_modal_attention", ["-d", "meld"], bert_base_uncased() + cross_modal_head(7)),
])
def test_bench_info_prints_the_paper_count(method, where, expected, capsys):
    from merbench.cli import main

    assert main(["info", method, "--variant", "paper", *where]) == 0
    out = capsys.readouterr().out
    assert f"parameters: {expected}  " in out, out


# -- one epoch through the engine on packs of the paper's sizes -------------------------------------

LABELS4 = ["neutral", "joy", "sadness", "anger"]
N_DIALOGUES, TURNS = 8, 5  # 40 utterances


def split_of(d: int) -> str:
    return "train" if d < 5 else ("valid" if d < 7 else "test")


@pytest.fixture
def pack_corpus(tmp_path, monkeypatch):
    """A 40-utterance corpus (8 dialogues of 5 turns, own split) whose features come from packs:
    its audio and video files are empty placeholders that no pack extractor opens."""
    import csv

    import yaml

    monkeypatch.setenv("MERBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MERBENCH_DATA", str(tmp_path / "data"))
    root = tmp_path / "corpus"
    (root / "media").mkdir(parents=True)
    rows = []
    for d in range(N_DIALOGUES):
        for t in range(TURNS):
            uid = f"d{d}_u{t}"
            (root / "media" / f"{uid}.wav").touch()
            (root / "media" / f"{uid}.mp4").touch()
            rows.append({"id": uid, "conv": f"d{d}", "idx": t, "who": "AB"[t % 2], "utterance": f"turn {t} of {d}",
                         "emotion": LABELS4[(d + t) % 4], "wav": f"{uid}.wav", "clip": f"{uid}.mp4",
                         "split": split_of(d)})
    with open(root / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    desc = {"name": f"packs-{tmp_path.name}"[:60],  # a corpus name is registered once per process
            "annotations": "annotations.csv", "media_root": "media",
            "columns": {"uid": "id", "dialogue_id": "conv", "turn": "idx", "speaker": "who", "text": "utterance",
                        "label": "emotion", "audio": "wav", "video": "clip"},
            "labels": LABELS4, "split_column": "split", "seeds": 1}
    (root / "corpus.yaml").write_text(yaml.safe_dump(desc, sort_keys=False), encoding="utf-8")
    return root / "corpus.yaml", rows


def frames(rng, dim: int, uid: str):
    n = 3 + sum(map(ord, uid)) % 6  # unaligned: a length of its own per utterance and modality
    return rng.standard_normal((n, dim)).astype("float32")


def run_paper(method: str, desc, tmp_path, *sets: str) -> dict:
    import json

    from merbench.cli import main

    out = tmp_path / "results"
    args = ["run", method, str(desc), "--variant", "paper", "--seed", "0", "--epochs", "1",
            "--results-dir", str(out), *[a for s in sets for a in ("--set", s)]]
    assert main(args) == 0
    (result,) = [p for p in out.rglob("*.json")]
    return json.loads(result.read_text())


def test_miust_paper_variant_trains_one_epoch_on_npy_packs(pack_corpus, tmp_path):
    import numpy as np

    desc, rows = pack_corpus
    rng = np.random.default_rng(0)
    for name in ("bert", "emotion2vec"):  # the authors' layout: <dir>/Session{n}/<utterance id>.npy
        for r in rows:
            f = tmp_path / "packs" / name / f"Session{1 + int(r['conv'][1:]) % 2}" / f"{r['id']}.npy"
            f.parent.mkdir(parents=True, exist_ok=True)
            np.save(f, frames(rng, 768, r["id"] + name))
    res = run_paper("miust", desc, tmp_path, f"features.t.options.path={tmp_path / 'packs' / 'bert'}",
                    f"features.a.options.path={tmp_path / 'packs' / 'emotion2vec'}")
    assert res["parameters"] == miust(4, 64) == 5_892_452
    assert res["variant"] == "paper" and res["folds"][0]["epochs_run"] == 1
    packs = {m: res["feature_settings"][m]["pack"] for m in ("t", "a")}
    assert all(p["matched"] == 40 and p["dim"] == 768 and p["missing"] == 0 for p in packs.values())


def test_lipsync_paper_variant_trains_one_epoch_on_json_packs(pack_corpus, tmp_path):
    import json

    import numpy as np

    desc, rows = pack_corpus
    rng = np.random.default_rng(1)
    split_dir = {"train": "train_features", "valid": "dev_features", "test": "test_features"}
    data = tmp_path / "packs" / "lipsync"
    for name, dim in (("text", 1024), ("audio", 1024), ("visual", 768)):
        for split, folder in split_dir.items():  # the authors' layout: {train,dev,test}_features/<m>_features.json
            f = data / folder / f"{name}_features.json"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps({r["id"]: rng.standard_normal(dim).round(4).tolist()
                                     for r in rows if r["split"] == split}))
    res = run_paper("lipsync_graph_erc", desc, tmp_path, *[f"features.{m}.options.path={data}" for m in "tav"])
    total, never_trained = lipsync_fusion(4)
    assert res["parameters"] == total - never_trained
    assert res["folds"][0]["epochs_run"] == 1
    assert {m: res["feature_settings"][m]["pack"]["dim"] for m in "tav"} == {"t": 1024, "a": 1024, "v": 768}


def test_a_variant_naming_another_extractor_drops_the_inherited_options():
    # config.yaml reads video with {extractor: video-facecrop, options: {select_track: lipsync}}; the
    # paper variant's video-pack must not inherit select_track (it has no such option).
    cfg = method_config(get_method("lipsync_graph_erc"), "paper", "meld", "meld-7")
    assert set(cfg["features"]["v"]["options"]) == {"path", "format", "key", "dim"}
    same = method_config(get_method("lipsync_graph_erc"), "mouth_motion_face")  # same extractor: merged
    assert same["features"]["v"] == {"extractor": "video-facecrop", "options": {"select_track": "mouth-motion"}}


def test_multifocus_paper_variant_trains_one_epoch_per_stage_on_a_dataframe_pickle(pack_corpus, tmp_path):
    import pickle

    import numpy as np
    import pandas as pd

    desc, rows = pack_corpus
    rng = np.random.default_rng(2)
    # The authors' data_processed.pkl: a DataFrame with ComParE LLD arrays (T, 65) in `features`,
    # transcripts and emotions beside them; here indexed by utterance name.
    df = pd.DataFrame({"features": [frames(rng, 65, r["id"]) for r in rows],
                       "trans_words": [r["utterance"] for r in rows], "emotion": [r["emotion"] for r in rows]},
                      index=pd.Index([r["id"] for r in rows]))
    pkl = tmp_path / "packs" / "data_processed.pkl"
    pkl.parent.mkdir(parents=True)
    pkl.write_bytes(pickle.dumps(df, protocol=4))
    bert = tmp_path / "packs" / "bert"  # bert-base-uncased token states, as a pack (no hub here)
    bert.mkdir()
    for r in rows:
        np.save(bert / f"{r['id']}.npy", frames(rng, 768, r["id"] + "t"))
    res = run_paper("multifocus_blstm", desc, tmp_path, f"features.a.options.path={pkl}",
                    "features.t={extractor: text-pack, level: frames, options: {path: " + str(bert) + ", dim: 768}}")
    assert res["parameters"] == multifocus(4) == 2_074_756
    stages = res["folds"][0]["history"]
    assert sorted({row["stage"] for row in stages}) == [0.0, 1.0, 2.0] and len(stages) == 3
    pack = res["feature_settings"]["a"]["pack"]
    assert pack["matched"] == 40 and pack["dim"] == 65 and pack["labels"]["agree"] == 40


def test_cross_modal_paper_variant_trains_one_epoch_on_a_table(pack_corpus, tmp_path):
    import csv

    import numpy as np

    desc, rows = pack_corpus
    rng = np.random.default_rng(3)
    # The authors' spreadsheet (as CSV): File Name, Utterance, Emotion and list-literal vector cells.
    table = tmp_path / "packs" / "MELD.csv"
    table.parent.mkdir(parents=True)
    widths = {"V1": 512, "V2": 25, "V3": 25, "V4": 25, "A2": 512}
    with open(table, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["File Name", "Utterance", "Emotion", *widths])
        for r in rows:
            w.writerow([f"{r['id']}.mp4", r["utterance"], r["emotion"],
                        *[str(rng.standard_normal(n).round(4).tolist()) for n in widths.values()]])
    res = run_paper("cross_modal_attention", desc, tmp_path, f"features.a.options.path={table}",
                    f"features.v.options.path={table}", "encoder.name=tiny-random-bert")
    assert res["folds"][0]["epochs_run"] == 1
    assert {m: res["feature_settings"][m]["pack"]["dim"] for m in "av"} == {"a": 562, "v": 512}
    # Everything but the (tiny, test-only) encoder is the original's head at 4 classes.
    from merbench.text_encoder import load_encoder

    tiny = sum(p.numel() for p in load_encoder("tiny-random-bert").parameters())
    assert res["parameters"] - tiny == cross_modal_head(4) - linear(768, 512) + linear(32, 512)


def test_a_dataframe_pickle_indexed_by_utterance_names_is_keyed_by_them(tmp_path):
    # pandas 3 gives a string index dtype str, not object: the reader must still take it as the ids.
    import pickle

    import pandas as pd

    from merbench.features.packs.dataframe import read

    df = pd.DataFrame({"features": [[[0.0, 1.0]], [[2.0, 3.0], [4.0, 5.0]]]}, index=pd.Index(["Ses01F_a_F000", "x"]))
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(df, protocol=4))
    assert sorted(read(tmp_path / "d.pkl", "features").vectors) == ["Ses01F_a_F000", "x"]
