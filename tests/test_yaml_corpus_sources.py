"""YAML corpora as users keep them: one table per split with fixed values and a key spread over
several columns, and corpora with no table at all whose labels live in the media file names.
Each runs through `bench data check`, `bench run mlp` and the leaderboard; each new descriptor
mistake names the descriptor (with its line), the field and the table or media file."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import soundfile as sf
import yaml

from merbench.cli import main
from merbench.datasets.yaml_corpus import open_yaml_corpus, parse_descriptor
from merbench.errors import MerbenchError
from merbench.registry import DATASETS, load_builtins

load_builtins()

LABELS = ["neutral", "happy", "sad", "angry"]
TABLE_FIELDS = ["session", "conversation", "turn", "speakers", "utterance", "emotion"]


@pytest.fixture
def isolated_datasets(monkeypatch):
    DATASETS.names()
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))


def tone(path, freq, seconds=0.2, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)


def write_descriptor(folder, data) -> tuple:
    desc = folder / "corpus.yaml"
    text = yaml.safe_dump(data, sort_keys=False)
    desc.write_text(text, encoding="utf-8")
    return desc, text.splitlines()


def line_of(lines, key):
    """1-based line of the first YAML line that starts (after indentation) with `key:`."""
    return next(i for i, ln in enumerate(lines, 1) if re.match(rf"\s*(- )?{re.escape(key)}:", ln))


# -- three tables, a composite id, a list-literal speaker column -----------------------------------------


def three_table_rows():
    """Two sessions whose conversations are numbered 1.. again, turns 0..3: no column is unique alone."""
    rng = np.random.default_rng(0)
    rows = {"train": [], "dev": [], "test": []}
    conversations = [("s1", 1, "train"), ("s1", 2, "train"), ("s1", 3, "train"), ("s2", 1, "train"),
                     ("s2", 2, "train"), ("s1", 4, "dev"), ("s2", 3, "dev"), ("s2", 4, "test"), ("s1", 5, "test")]
    for session, conv, split in conversations:
        for turn in range(4):
            label = LABELS[int(rng.integers(4))]
            speakers = "['Ann', 'Bob']" if turn == 3 else ("Ann" if turn % 2 == 0 else "['Bob']")
            rows[split].append({"session": session, "conversation": conv, "turn": turn, "speakers": speakers,
                                "utterance": f"words {turn}",
                                "emotion": label.upper() if turn == 1 else label.capitalize() if turn == 2 else label})
    return rows


def write_three_tables(folder, rows=None, **over):
    rows = rows or three_table_rows()
    for split, table in rows.items():
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=TABLE_FIELDS)
            w.writeheader()
            w.writerows(table)
        for r in table:
            tone(folder / "media" / "wav" / f"{r['session']}_{r['conversation']}_{r['turn']:03}.wav",
                 200 + 100 * [x.lower() for x in LABELS].index(r["emotion"].lower()))
    data = {
        "name": "tabletoy",
        "annotations": [{"path": "train.csv", "split": "train"}, {"path": "dev.csv", "split": "valid"},
                        {"path": "test.csv", "split": "test"}],
        "media_root": "media",
        "split_column": "split",
        "columns": {"uid": "{session}_{conversation}_{turn:03d}", "dialogue_id": "{session}_{conversation}",
                    "turn": "turn", "speaker": {"column": "speakers", "parse": "list", "join": " & "},
                    "text": "utterance", "label": "emotion",
                    "audio": "wav/{session}_{conversation}_{turn:03d}.wav"},
        "labels": LABELS,
        "case_insensitive_labels": True,
    }
    data.update(over)
    return write_descriptor(folder, data)


def test_three_tables_with_fixed_splits_and_a_composite_id_load(tmp_path):
    desc, _ = write_three_tables(tmp_path)
    adapter = open_yaml_corpus(desc)
    corpus = adapter.load()
    assert len(corpus) == 9 * 4 and corpus.modalities == ("t", "a")
    u = corpus["s2_1_003"]
    assert (u.dialogue_id, u.turn, u.speaker) == ("s2_1", 3, "Ann & Bob")  # list literal joined
    assert corpus["s2_1_001"].speaker == "Bob" and corpus["s2_1_000"].speaker == "Ann"
    assert {x.label for x in corpus.utterances} <= set(LABELS)  # "HAPPY" / "Happy" read as happy
    assert u.audio_path == str(tmp_path / "media" / "wav" / "s2_1_003.wav")
    (fold,) = adapter.protocol().build(corpus).folds
    # the split comes from the table each row was read from
    assert {corpus[i].dialogue_id for i in fold.valid} == {"s1_4", "s2_3"}
    assert {corpus[i].dialogue_id for i in fold.test} == {"s2_4", "s1_5"}
    assert len(fold.train) == 5 * 4


def test_a_glob_of_tables_with_a_value_from_each_file_name(tmp_path):
    rows = three_table_rows()
    for split in rows:
        for r in rows[split]:
            r["split"] = split if split != "dev" else "valid"
    by_session = {}
    for r in sum(rows.values(), []):
        by_session.setdefault(r.pop("session"), []).append(r)
    (tmp_path / "sessions").mkdir()
    for session, table in by_session.items():
        with open(tmp_path / "sessions" / f"{session}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=[f for f in TABLE_FIELDS if f != "session"] + ["split"])
            w.writeheader()
            w.writerows(table)
    desc, _ = write_descriptor(tmp_path, {
        "name": "globtoy", "annotations": {"path": "sessions/*.csv", "session": "{stem}"}, "split_column": "split",
        "columns": {"uid": "{session}_{conversation}_{turn:03d}", "text": "utterance", "label": "emotion"},
        "labels": LABELS, "case_insensitive_labels": True})
    corpus = open_yaml_corpus(desc).load()
    assert len(corpus) == 36 and "s1_5_002" in corpus and "s2_4_000" in corpus


def test_three_tables_through_check_run_and_leaderboard(tmp_path, merbench_home, isolated_datasets, capsys):
    desc, _ = write_three_tables(tmp_path)
    check, md = check_run_leaderboard(desc, tmp_path / "results", capsys)
    assert "tabletoy-official" in check and re.search(r"test\s.*\b8\b", check)  # 2 test dialogues x 4 turns
    assert "tabletoy / tabletoy-official" in md and any(ln.startswith("| mlp") for ln in md.splitlines())


def check_run_leaderboard(desc, results, capsys) -> tuple[str, str]:
    """`bench data check`, `bench run mlp` (audio, one epoch) and `bench leaderboard` on a descriptor:
    (check output, leaderboard markdown)."""
    assert main(["data", "check", str(desc)]) == 0
    check = capsys.readouterr().out
    rc = main(["run", "mlp", str(desc), "--modalities", "a", "--seed", "0", "--epochs", "1",
               "--results-dir", str(results)])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["leaderboard", "--results-dir", str(results), "--no-extras"]) == 0
    return check, capsys.readouterr().out


# -- a corpus with no table: fields from the media file names ------------------------------------------------

RAVDESS = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}


def write_ravdess_like(folder, extra_file=None):
    """RAVDESS-style names: modality-channel-emotion-intensity-statement-repetition-actor.wav."""
    for actor in (1, 2, 3, 4):
        for code in RAVDESS:
            for statement in (1, 2):
                tone(folder / "media" / f"Actor_{actor:02d}" / f"03-01-{code}-01-{statement:02d}-01-{actor:02d}.wav",
                     150 + 80 * int(code), seconds=0.15)
    if extra_file:
        tone(folder / "media" / extra_file, 100, seconds=0.1)
    return write_descriptor(folder, {
        "name": "ravtoy",
        "media_root": "media",
        "files": {"glob": "Actor_*/*.wav",
                  "pattern": r"03-01-(?P<label>\d\d)-(?P<intensity>\d\d)-(?P<statement>\d\d)-\d\d-(?P<speaker>\d\d)\.wav"},
        "labels": list(RAVDESS.values()),
        "label_map": {code: name for code, name in RAVDESS.items() if code != name},
        "protocol": {"rule": "random_dialogue", "seed": 0, "valid": 0.2, "test": 0.25},
    })


def test_file_names_give_label_speaker_and_id(tmp_path):
    desc, _ = write_ravdess_like(tmp_path)
    adapter = open_yaml_corpus(desc)
    corpus = adapter.load()
    assert len(corpus) == 32 and corpus.modalities == ("a",)
    u = corpus["03-01-04-01-02-01-03"]  # the id is the file stem
    assert (u.label, u.speaker) == ("04", "03")
    assert u.audio_path == str(tmp_path / "media" / "Actor_03" / "03-01-04-01-02-01-03.wav")
    splits = adapter.protocol().build(corpus)
    assert splits.labels["03-01-04-01-02-01-03"] == LABELS.index("sad")  # "04" mapped by label_map


def test_crema_d_style_names_with_case_insensitive_labels(tmp_path):
    for speaker in ("1001", "1002", "1003"):
        for sentence in ("DFA", "IEO"):
            for code in ("ANG", "HAP", "SAD", "NEU"):
                tone(tmp_path / "AudioWAV" / f"{speaker}_{sentence}_{code}_XX.wav", 300)
    desc, _ = write_descriptor(tmp_path, {
        "name": "cremtoy", "media_root": "AudioWAV",
        "files": {"glob": "*.wav", "pattern": r"(?P<speaker>\d{4})_(?P<sentence>[A-Z]{3})_(?P<label>[A-Z]{3})_(?P<level>[A-Z]{2})\.wav"},
        "labels": LABELS, "label_map": {"neu": "neutral", "hap": "happy", "ang": "angry"},
        "case_insensitive_labels": True,
        "protocol": {"rule": "leave_one_group_out", "column": "speaker", "valid": 0.2}})
    adapter = open_yaml_corpus(desc)
    corpus = adapter.load()
    assert corpus["1002_IEO_HAP_XX"].label == "hap" and corpus["1002_IEO_SAD_XX"].label == "sad"
    splits = adapter.protocol().build(corpus)
    assert [f.name for f in splits.folds] == ["speaker=1001", "speaker=1002", "speaker=1003"]
    assert splits.labels["1001_DFA_ANG_XX"] == LABELS.index("angry")


def test_file_names_through_check_run_and_leaderboard(tmp_path, merbench_home, isolated_datasets, capsys):
    desc, _ = write_ravdess_like(tmp_path)
    check, md = check_run_leaderboard(desc, tmp_path / "results", capsys)
    assert "ravtoy-random-dialogue" in check and "ravtoy / ravtoy-random-dialogue" in md


# -- each new mistake names the descriptor line, the field and the file ----------------------------------------


def _message(desc):
    with pytest.raises(MerbenchError) as e:
        adapter = open_yaml_corpus(desc)
        adapter.protocol().build(adapter.load())
    return e.value.message


def test_template_naming_a_missing_column(tmp_path):
    desc, lines = write_three_tables(tmp_path, columns={
        "uid": "{session}_{conv}_{turn:03d}", "turn": "turn", "text": "utterance", "label": "emotion"})
    msg = _message(desc)
    assert f"corpus descriptor {desc} (line {line_of(lines, 'uid')}), field `columns.uid`" in msg, msg
    assert "'conv' is not in" in msg and str(tmp_path / "train.csv") in msg


def test_composed_ids_that_are_not_unique(tmp_path):
    desc, lines = write_three_tables(tmp_path, columns={
        "uid": "{conversation}_{turn:03d}", "turn": "turn", "text": "utterance", "label": "emotion"})
    msg = _message(desc)
    assert f"(line {line_of(lines, 'uid')}), field `columns.uid`" in msg, msg
    # conversation 1 of session s2 (line 14 of train.csv) repeats conversation 1 of s1 (line 2)
    assert "duplicate id '1_000'" in msg and "template '{conversation}_{turn:03d}'" in msg
    assert f"line 2 of {tmp_path / 'train.csv'}" in msg and f"line 14 of {tmp_path / 'train.csv'}" in msg


def test_list_literal_that_does_not_parse(tmp_path):
    rows = three_table_rows()
    rows["dev"][2]["speakers"] = "['Ann', 'Bob'"
    desc, lines = write_three_tables(tmp_path, rows=rows)
    msg = _message(desc)
    assert f"(line {line_of(lines, 'speaker')}), field `columns.speaker`" in msg, msg
    assert f"line 4 of {tmp_path / 'dev.csv'}" in msg and "not a list literal" in msg


def test_file_name_the_pattern_does_not_match(tmp_path):
    desc, lines = write_ravdess_like(tmp_path, extra_file="Actor_02/03-01-05-01-02-01.wav")
    msg = _message(desc)
    assert f"(line {line_of(lines, 'pattern')}), field `files.pattern`" in msg, msg
    assert f"file {tmp_path / 'media' / 'Actor_02' / '03-01-05-01-02-01.wav'} does not match" in msg


def test_template_format_that_a_cell_cannot_take(tmp_path):
    rows = three_table_rows()
    rows["test"][1]["turn"] = "one"
    desc, _ = write_three_tables(tmp_path, rows=rows)
    msg = _message(desc)
    assert "field `columns.uid`" in msg and f"line 3 of {tmp_path / 'test.csv'}" in msg and "'one'" in msg


@pytest.mark.parametrize("over,field,detail", [
    (dict(columns={"uid": "{session", "label": "emotion", "text": "utterance"}), "columns.uid", "template"),
    (dict(columns={"uid": "id", "label": "{emotion}", "text": "utterance"}), "columns.label", "not a template"),
    (dict(columns={"uid": "id", "label": "emotion", "speaker": {"column": "s", "parse": "json"}, "text": "u"}),
     "columns.speaker.parse", "'json'"),
    (dict(annotations=[{"split": "train"}]), "annotations[0].path", "is missing"),
    (dict(annotations=[{"path": "train.csv", "split": "{session}"}]), "annotations[0].split", "'session'"),
    (dict(labels=LABELS, label_map={"Happy": "happy"}), "case_insensitive_labels", "'happy' and 'Happy'"),
])
def test_descriptor_mistakes_found_before_reading(tmp_path, over, field, detail):
    desc, lines = write_three_tables(tmp_path, **over)
    with pytest.raises(MerbenchError) as e:
        parse_descriptor(desc)
    msg = e.value.message
    assert f"field `{field}`" in msg and str(desc) in msg and detail in msg, msg
    assert re.search(r"\(line \d+\)", msg), msg


@pytest.mark.parametrize("files,field,detail", [
    ({"glob": "*.wav", "pattern": "(unclosed"}, "files.pattern", "not a regular expression"),
    ({"glob": "*.wav", "pattern": r"\d+\.wav"}, "files.pattern", "no named group"),
    ({"glob": "*.wav", "pattern": r"(?P<stem>\d+)\.wav"}, "files.pattern", "'stem' is taken"),
    ({"glob": "*.dat", "pattern": r"(?P<label>\d+)\.dat"}, "files.media", "audio or video"),
])
def test_file_source_mistakes(tmp_path, files, field, detail):
    desc, _ = write_descriptor(tmp_path, {"name": "x", "files": files, "labels": LABELS,
                                          "protocol": {"rule": "random_dialogue"}})
    with pytest.raises(MerbenchError) as e:
        parse_descriptor(desc)
    assert f"field `{field}`" in e.value.message and detail in e.value.message, e.value.message


def test_a_column_named_after_a_missing_group(tmp_path):
    desc, lines = write_descriptor(tmp_path, {
        "name": "x", "files": {"glob": "*.wav", "pattern": r"(?P<label>\d+)\.wav"},
        "columns": {"speaker": "actor"}, "labels": LABELS, "protocol": {"rule": "random_dialogue"}})
    with pytest.raises(MerbenchError) as e:
        parse_descriptor(desc)
    assert f"(line {line_of(lines, 'speaker')}), field `columns.speaker`" in e.value.message
    assert "'actor'" in e.value.message and "named group" in e.value.message
