"""The YAML corpus adapter: a small corpus written here (text + tiny wav files) loads under
each split rule and table format, runs through the engine into the leaderboard, and every
bad descriptor gets a MerbenchError naming the field and the file."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import soundfile as sf
import yaml

import toy
from merbench.errors import MerbenchError
from merbench.datasets.yaml_corpus import (
    open_yaml_corpus,
    parse_descriptor,
    register_yaml_corpus,
    yaml_corpus_class,
)
from merbench.registry import DATASETS, load_builtins, resolve_dataset

load_builtins()
toy.register()  # the toy-bow text extractor

N_DIALOGUES, TURNS = 8, 4
FIELDS = ["id", "conv", "idx", "who", "utterance", "emotion", "wav", "clip", "session", "part"]


@pytest.fixture
def isolated_datasets(monkeypatch):
    """Registrations made by a test vanish after it."""
    DATASETS.names()  # load entry points first, so the copy holds them
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))


def make_rows(n_dialogues=N_DIALOGUES, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_dialogues):
        part = "train" if d < 5 else ("dev" if d < 6 else "test")
        for t in range(TURNS):
            y = toy.LABELS[int(rng.integers(4))]
            word = toy.WORDS[y][int(rng.integers(2))]
            rows.append({"id": f"c{d}_{t}", "conv": f"c{d}", "idx": t, "who": "AB"[t % 2],
                         "utterance": f"i am {word} today", "emotion": y, "wav": f"wav/c{d}_{t}.wav",
                         "clip": f"mp4/c{d}_{t}.mp4", "session": f"s{d % 2}", "part": part})
    return rows


def write_table(path, rows, fmt="csv"):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, delimiter="\t" if fmt == "tsv" else ",")
        w.writeheader()
        w.writerows(rows)


def descriptor(**over):
    d = {
        "name": "yamltoy",
        "title": "YAML toy corpus",
        "license": "CC0-1.0",
        "annotations": "annotations.csv",
        "media_root": "media",
        "columns": {"uid": "id", "dialogue_id": "conv", "turn": "idx", "speaker": "who", "text": "utterance",
                    "label": "emotion", "audio": "wav", "video": "clip"},
        "labels": list(toy.LABELS),
        "protocol": {"rule": "random_dialogue", "seed": 0, "valid": 0.15, "test": 0.25},
    }
    for k, v in over.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def write_corpus(folder, rows=None, fmt="csv", wavs=True, **over):
    """annotations + descriptor (+ tiny wav files; the mp4 files are left out on purpose)."""
    rows = make_rows() if rows is None else rows
    table = folder / f"annotations.{fmt}"
    write_table(table, rows, fmt)
    if wavs:
        (folder / "media" / "wav").mkdir(parents=True, exist_ok=True)
        t = np.arange(1600) / 16000
        for r in rows:
            sf.write(folder / "media" / r["wav"], (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    desc = folder / "corpus.yaml"
    desc.write_text(yaml.safe_dump(descriptor(**{"annotations": table.name, **over}), sort_keys=False), encoding="utf-8")
    return desc


# -- loading ---------------------------------------------------------------------------------------


def test_loads_text_and_audio_and_builds_a_dialogue_split(tmp_path):
    adapter = open_yaml_corpus(write_corpus(tmp_path))
    corpus = adapter.load()
    assert corpus.name == "yamltoy" and len(corpus) == N_DIALOGUES * TURNS
    # text and audio are there; the video column is given but no mp4 exists
    assert corpus.modalities == ("t", "a")
    assert type(adapter).modalities == ("t", "a", "v")  # declared: the columns given
    u = corpus["c3_2"]
    assert (u.dialogue_id, u.turn, u.speaker) == ("c3", 2, "A") and u.text.startswith("i am ")
    assert u.audio_path == str(tmp_path / "media" / "wav" / "c3_2.wav")
    assert [x.turn for x in corpus.dialogues()["c5"]] == [0, 1, 2, 3]
    splits = adapter.protocol().build(corpus)
    (fold,) = splits.folds
    dialogue = {x.uid: x.dialogue_id for x in corpus.utterances}
    sets = [{dialogue[i] for i in fold.ids(s)} for s in ("train", "valid", "test")]
    assert all(sets) and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == N_DIALOGUES
    assert adapter.protocol().name == "yamltoy-random-dialogue"


def test_split_column_label_map_and_ignored_labels(tmp_path):
    rows = make_rows()
    rows[0]["emotion"], rows[1]["emotion"] = "happy", "other"
    desc = write_corpus(tmp_path, rows=rows, protocol=None, split_column="part",
                        split_values={"train": "train", "valid": ["dev"], "test": "test"},
                        label_map={"happy": "joy"}, ignore_labels=["other"], protocol_name="yamltoy-official")
    adapter = open_yaml_corpus(desc)
    splits = adapter.protocol().build(adapter.load())
    (fold,) = splits.folds
    assert adapter.protocol().name == "yamltoy-official"
    assert len(fold.train) == 5 * TURNS - 1 and len(fold.valid) == TURNS and len(fold.test) == 2 * TURNS
    assert "c0_1" not in splits.labels  # ignored label: left out
    assert splits.labels["c0_0"] == toy.LABELS.index("joy")  # mapped


def test_leave_one_group_out_makes_one_fold_per_group(tmp_path):
    adapter = open_yaml_corpus(write_corpus(tmp_path, protocol={"rule": "leave_one_group_out", "column": "session"}))
    splits = adapter.protocol().build(adapter.load())
    assert [f.name for f in splits.folds] == ["session=s0", "session=s1"]
    assert adapter.protocol().name == "yamltoy-leave-one-session-out"


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_tsv_and_jsonl_give_the_same_manifest_as_csv(tmp_path, fmt):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = open_yaml_corpus(write_corpus(tmp_path / "a", wavs=False))
    b = open_yaml_corpus(write_corpus(tmp_path / "b", fmt=fmt, wavs=False))
    ha = a.protocol().build(a.load()).manifest_hash
    hb = b.protocol().build(b.load()).manifest_hash
    assert ha == hb
    assert b.load().modalities == ("t",)  # no media files at all


def test_root_replaces_media_root(tmp_path):
    desc = write_corpus(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    corpus = open_yaml_corpus(desc, root=other).load()
    assert corpus.root == other and corpus.modalities == ("t",)  # no wav files there
    assert corpus["c0_0"].audio_path == str(other / "wav" / "c0_0.wav")


# -- registration -----------------------------------------------------------------------------------


def test_register_resolve_and_name_clash(tmp_path, isolated_datasets):
    desc = write_corpus(tmp_path, wavs=False)
    cls = register_yaml_corpus(desc)
    assert register_yaml_corpus(desc) is cls and yaml_corpus_class(desc) is cls  # idempotent per file
    assert DATASETS.get("yamltoy") is cls
    assert resolve_dataset(str(desc)) is cls
    assert resolve_dataset("synthetic").name == "synthetic"
    (tmp_path / "b").mkdir()
    clash = write_corpus(tmp_path / "b", wavs=False, name="synthetic")
    with pytest.raises(MerbenchError) as e:
        register_yaml_corpus(clash)
    assert "field `name`" in e.value.message and str(clash) in e.value.message


def test_runs_through_the_engine_and_shows_in_the_leaderboard(tmp_path, merbench_home, isolated_datasets):
    from merbench.leaderboard.render import render_markdown
    from merbench.results import read_result
    from merbench.runner import RunRequest, run

    cls = register_yaml_corpus(write_corpus(tmp_path))
    paths = run(RunRequest(method="mlp", dataset=cls.name, modalities="t", seeds=[0],
                           overrides=["features.t=toy-bow", "train.epochs=2"], results_dir=tmp_path / "results"))
    r = read_result(paths[0])
    assert (r.dataset, r.protocol, r.modalities) == ("yamltoy", "yamltoy-random-dialogue", "t")
    from conftest import scores_from_predictions

    n_test = sum(f.n_test for f in r.folds)
    again = scores_from_predictions(paths[0])  # the reported scores are those of the saved predictions
    assert n_test > 0 and again["n"] == n_test
    assert r.test.accuracy == pytest.approx(again["accuracy"]) and r.test.weighted_f1 == pytest.approx(again["weighted_f1"])
    md = render_markdown(tmp_path / "results")
    assert "yamltoy / yamltoy-random-dialogue" in md
    assert any(line.startswith("| mlp") for line in md.splitlines())


# -- bad descriptors -------------------------------------------------------------------------------


def _rows_with(changes):
    rows = make_rows()
    if callable(changes):
        return changes(rows)
    for (i, key), value in changes.items():
        rows[i][key] = value
    return rows


def _no_test_rows(rows):
    return [dict(r, part="dev" if r["part"] == "test" else r["part"]) for r in rows]


BAD = {
    "missing column": (dict(columns={**descriptor()["columns"], "text": "transcript"}), None, "columns.text", "transcript"),
    "unknown label": (dict(labels=["neutral", "joy", "sadness"]), None, "labels", "anger"),
    "duplicate ids": ({}, {(1, "id"): "c0_0"}, "columns.uid", "c0_0"),
    "split with no rows": (dict(protocol=None, split_column="part"), _no_test_rows, "split_column",
                           "test split has no rows"),
    "unmapped split value": (dict(protocol=None, split_column="part"), {(0, "part"): "dev2"}, "split_values", "dev2"),
    "missing annotation file": (dict(annotations="nope.csv"), None, "annotations", "nope.csv"),
    "unknown field": (dict(colums={}), None, "colums", "did you mean 'columns'"),
    "label_map target": (dict(label_map={"happy": "happiness"}), None, "label_map.happy", "happiness"),
    "two split rules": (dict(split_column="part"), None, "split_column", "exactly one split rule"),
    "no split rule": (dict(protocol=None), None, "protocol", "exactly one split rule"),
    "missing group column": (dict(protocol={"rule": "leave_one_group_out", "column": "room"}), None,
                             "protocol.column", "room"),
    "bad rule": (dict(protocol={"rule": "random_dialog"}), None, "protocol.rule", "random_dialogue"),
    "bad fraction": (dict(protocol={"rule": "random_dialogue", "test": 1.5}), None, "protocol.test", "1.5"),
    "missing uid column": (dict(columns={"label": "emotion", "text": "utterance"}), None, "columns.uid", "missing"),
    "bad turn": ({}, {(2, "idx"): "two"}, "columns.turn", "two"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_descriptor_names_field_and_file(tmp_path, case):
    over, changes, field, detail = BAD[case]
    desc = write_corpus(tmp_path, rows=_rows_with(changes) if changes else None, wavs=False, **over)
    with pytest.raises(MerbenchError) as e:
        adapter = open_yaml_corpus(desc)
        adapter.protocol().build(adapter.load())
    msg = e.value.message
    assert f"field `{field}`" in msg, msg
    assert str(desc) in msg, msg
    assert detail in msg, msg


def test_table_errors_also_name_the_annotation_line(tmp_path):
    desc = write_corpus(tmp_path, rows=_rows_with({(5, "emotion"): "Joy"}), wavs=False)
    with pytest.raises(MerbenchError) as e:
        open_yaml_corpus(desc).load()
    msg = e.value.message
    assert f"line 7 of {tmp_path / 'annotations.csv'}" in msg  # header is line 1, row 5 is line 7
    assert "did you mean 'joy'" in msg and "ignore_labels" in e.value.fix


def test_descriptor_missing_or_not_yaml(tmp_path):
    with pytest.raises(MerbenchError, match="does not exist"):
        parse_descriptor(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(MerbenchError, match="not valid YAML"):
        parse_descriptor(bad)


def test_cli_takes_a_descriptor_path_as_the_dataset(tmp_path, merbench_home, isolated_datasets, capsys):
    """`bench run mlp path/to/corpus.yaml` and `bench data check path/to/corpus.yaml`, no Python written."""
    from merbench.cli import main

    desc = write_corpus(tmp_path)
    assert main(["data", "check", str(desc)]) == 0
    assert "yamltoy-random-dialogue" in capsys.readouterr().out
    rc = main(["run", "mlp", str(desc), "--modalities", "a", "--seed", "0", "--epochs", "2",
               "--results-dir", str(tmp_path / "results")])
    assert rc == 0, capsys.readouterr().err
    assert list((tmp_path / "results" / "yamltoy").rglob("*.json"))


# -- dialogue integrity -------------------------------------------------------------------------------


def _restarting_rows():
    """Two episodes whose dialogue numbers restart: 'conv' alone merges conversations of both."""
    rows = []
    for ep in ("e1", "e2"):
        for r in make_rows():
            rows.append(dict(r, id=f"{ep}_{r['id']}", session=ep))  # session holds the episode
    return rows


def test_a_restarting_dialogue_column_fails_and_a_composite_id_fixes_it(tmp_path):
    desc = write_corpus(tmp_path, rows=_restarting_rows(), wavs=False)
    with pytest.raises(MerbenchError) as e:
        open_yaml_corpus(desc).load()
    msg = e.value.message
    assert str(desc) in msg and "field `columns.dialogue_id`" in msg, msg
    assert f"{N_DIALOGUES * TURNS} repeated (dialogue, turn) pair(s) in {N_DIALOGUES} dialogue(s)" in msg, msg
    assert "dialogue 'c0' turn 0: 'e1_c0_0' and 'e2_c0_0'" in msg, msg  # the first offenders, named
    assert 'dialogue_id: "{<episode column>}_{conv}"' in e.value.fix
    # the fix it suggests: a template over the columns that together name a conversation
    columns = {**descriptor()["columns"], "dialogue_id": "{session}/{conv}"}
    (tmp_path / "fixed").mkdir()
    corpus = open_yaml_corpus(write_corpus(tmp_path / "fixed", rows=_restarting_rows(), wavs=False,
                                           columns=columns)).load()
    assert len(corpus.dialogues()) == 2 * N_DIALOGUES
    assert corpus["e2_c3_1"].dialogue_id == "e2/c3"


def test_a_dialogue_spanning_splits_fails(tmp_path):
    rows = make_rows()
    rows[TURNS * 5 + 1]["part"] = "train"  # one turn of c5 (a dev dialogue) put in train
    desc = write_corpus(tmp_path, rows=rows, wavs=False, protocol=None, split_column="part")
    with pytest.raises(MerbenchError) as e:
        open_yaml_corpus(desc).load()
    msg = e.value.message
    assert "field `columns.dialogue_id`" in msg and "1 dialogue(s) span more than one split" in msg, msg
    assert "dialogue 'c5': 'c5_0' in valid, 'c5_1' in train" in msg, msg


def test_every_protocol_build_rejects_a_dialogue_across_splits():
    """The engine check, for any adapter: a fold that puts one dialogue's turns in two splits."""
    from merbench.corpus import Corpus, Utterance
    from merbench.protocols import Fold, Protocol

    utts = [Utterance(f"d{d}_{t}", f"d{d}", t, "A", "x", "neu") for d in range(3) for t in range(2)]
    split = lambda us: [Fold("f", ("d0_0", "d0_1", "d1_0"), ("d1_1",), ("d2_0", "d2_1"))]  # noqa: E731
    with pytest.raises(MerbenchError, match=r"fold f: 1 dialogue\(s\) span more than one split; first: "
                                            r"dialogue 'd1': 'd1_0' in train, 'd1_1' in valid"):
        Protocol("p", "toy", ("neu",), split).build(Corpus("toy", utts))
    # an as-published protocol reproduces a paper's leak on purpose and is flagged, not refused
    assert Protocol("p", "toy", ("neu",), split, as_published=True).build(Corpus("toy", utts)).folds


def test_repeated_turns_fail_for_any_adapter():
    from merbench.corpus import Corpus, Utterance

    with pytest.raises(MerbenchError, match="corpus toy: 1 repeated .dialogue, turn. pair.*'a' and 'b'") as e:
        Corpus("toy", [Utterance("a", "d", 0, "A"), Utterance("b", "d", 0, "B")])
    assert "compose it" in e.value.fix


def test_a_list_where_one_value_is_expected_gets_a_useful_fix(tmp_path):
    desc = write_corpus(tmp_path, wavs=False, protocol=None, split_column=["part", "session"])
    with pytest.raises(MerbenchError) as e:
        parse_descriptor(desc)
    assert "field `split_column`" in e.value.message and "not a list" in e.value.message, e.value.message
    assert "quote" not in e.value.fix and "split_column: part" in e.value.fix


def test_data_check_on_a_text_only_descriptor(tmp_path, isolated_datasets, monkeypatch, capsys):
    """Dialogues and turns per split; no audio / video rows for a corpus that declares none."""
    from rich.console import Console

    from merbench import cli

    monkeypatch.setattr(cli, "console", Console(width=200))  # no wrapped columns
    main = cli.main
    columns = {k: v for k, v in descriptor()["columns"].items() if k not in ("audio", "video")}
    desc = write_corpus(tmp_path, wavs=False, columns=columns, protocol=None, split_column="part")
    assert main(["data", "check", str(desc)]) == 0
    out = capsys.readouterr().out
    assert "dialogues" in out and "turns per dialogue" in out
    assert re.search(r"train\s.*\s20\s+│\s+5\s+│\s+4\.0 / 4 / 4", out), out  # 20 turns in 5 dialogues
    assert "audio" not in out and "video" not in out and "missing" not in out


def test_a_descriptor_name_given_as_the_dataset_points_at_its_path(tmp_path, isolated_datasets, monkeypatch, capsys):
    from merbench.cli import main

    (tmp_path / "corpora").mkdir()
    write_corpus(tmp_path / "corpora", wavs=False)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "check", "yamltoy"]) == 2
    err = capsys.readouterr().err
    assert "corpora/corpus.yaml" in err and "pass that path" in err, err
