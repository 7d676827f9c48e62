"""Feature packs: features computed elsewhere, read from files, and the suite's own written as packs.

Every format is tested on a round trip over a small synthetic corpus (export with the CLI, read
back: identical arrays, identical run result), and every way a pack can be wrong gives a clear
error naming the file and the ids.
"""

from __future__ import annotations

import json
import pickle
import shutil

from pathlib import Path

import numpy as np
import pytest

from merbench.cli import main
from merbench.corpus import Utterance
from merbench.errors import MerbenchError
from merbench.features.packs import Pack, PackError
from merbench.features.packs.ids import map_ids
from merbench.features.packs.labels import compare_labels

SOURCE = "audio-logmel"  # cheap, with both levels


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """8 dialogues (66 utterances) of the synthetic corpus and a feature cache shared by this module."""
    from merbench.datasets.synthetic.generator import generate

    base = tmp_path_factory.mktemp("packs")
    generate(base / "data" / "synthetic", n_dialogues=8, seed=0, workers=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MERBENCH_DATA", str(base / "data"))
        mp.setenv("MERBENCH_HOME", str(base / "home"))
        yield base


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def corpus():
    from merbench.registry import get_dataset

    return get_dataset("synthetic")().load()


def source_table(level="pooled"):
    from merbench.features.store import extract_corpus, load_table
    from merbench.registry import get_feature

    c = corpus()
    return load_table(extract_corpus(c, get_feature(SOURCE)()), frames=level == "frames")


def read_back(options, level="pooled", on_bad_media="error", reporter=None):
    """The pack's features as the runner reads them: check, extract into the cache, load."""
    from merbench.features.packs.check import check_pack
    from merbench.features.packs.extractor import AudioPack
    from merbench.features.store import extract_corpus, load_table

    c = corpus()
    ext = AudioPack(**options)
    report = check_pack(ext, c, on_bad_media, reporter)
    return load_table(extract_corpus(c, ext), frames=level == "frames"), report


def export(capsys, tmp_path, fmt, level="pooled"):
    out = tmp_path / f"pack-{fmt}-{level}"
    rc, stdout, err = cli(capsys, "features", "export", "synthetic", "-e", SOURCE, "--format", fmt, "--level", level,
                          "--output", out)
    assert rc == 0, err
    path = stdout.split("options: {path: ")[1].split(",")[0]
    return {"path": path, "format": fmt, "key": "audio"}


# -- round trips ------------------------------------------------------------------------------

FORMATS = ["npy-dir", "json", "dialogue-pickle", "mmsa", "table", "dataframe-pickle"]


@pytest.mark.parametrize("level", ["pooled", "frames"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_gives_identical_arrays(synth, capsys, tmp_path, fmt, level):
    opts = export(capsys, tmp_path, fmt, level)
    got, report = read_back(opts, level)
    want = source_table(level)
    assert got.uids == want.uids and report["matched"] == len(want.uids) and report["missing"] == 0
    if level == "pooled":
        np.testing.assert_array_equal(got.pooled, want.pooled)
    else:
        assert len(got.frames) == len(want.frames)
        for a, b in zip(got.frames, want.frames):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(got.pooled, np.stack([f.mean(0) for f in want.frames]))
        assert report["frames"]["min"] == min(len(f) for f in want.frames)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_run_on_a_pack_gives_the_same_result_as_on_the_extractor(synth, capsys, tmp_path, fmt):
    from merbench.results import read_result
    from merbench.runner import RunRequest, run

    opts = export(capsys, tmp_path, fmt)
    base = dict(method="mlp", dataset="synthetic", modalities="a", seeds=[0], epochs=1)
    ref = run(RunRequest(**base, results_dir=tmp_path / "ref", overrides=[f"features.a={SOURCE}"]))[0]
    req = json.dumps({"extractor": "audio-pack", "options": opts})
    got = run(RunRequest(**base, results_dir=tmp_path / "pack", overrides=[f"features.a={req}"]))[0]
    a, b = read_result(ref), read_result(got)
    assert a.test == b.test
    assert ref.with_suffix(".predictions.csv").read_text() == got.with_suffix(".predictions.csv").read_text()
    assert b.features["a"].startswith("audio-pack[") and b.feature_settings["a"]["pack"]["matched"] == 66
    assert b.feature_settings["a"]["settings"]["fingerprint"]


def test_features_extract_prints_the_report_and_caches_missing_entries_as_unreadable(synth, capsys, tmp_path):
    opts = export(capsys, tmp_path, "npy-dir")
    (tmp_path / "pack-npy-dir-pooled" / "audio" / "d0006_t00.npy").unlink()
    rc, out, err = cli(capsys, "features", "extract", "synthetic", "-e", "audio-pack", "--option", f"path={opts['path']}",
                       "--option", "key=audio")
    assert rc == 0, err
    text = " ".join(out.split())
    assert "65 of 66 utterances matched, dimension 128" in text and "missing from the pack: 1, e.g. d0006_t00" in text
    assert "66 utterances cached" in text and "1 unreadable" in text


def test_an_edited_pack_is_read_again(synth, capsys, tmp_path):
    from merbench.features.packs.extractor import AudioPack

    opts = export(capsys, tmp_path, "npy-dir")
    before = AudioPack(**opts).settings()
    f = sorted((tmp_path / "pack-npy-dir-pooled" / "audio").glob("*.npy"))[0]
    np.save(f, np.load(f) + 1)
    after = AudioPack(**opts).settings()
    assert before["fingerprint"] != after["fingerprint"] and before["path"] == after["path"]


def test_settings_name_the_path_as_given_not_as_expanded(synth, capsys, tmp_path, monkeypatch):
    """Results and cache keys name the pack by the option given ({data}/...) and its content, not
    by this machine's absolute layout."""
    from merbench.features.packs.extractor import AudioPack

    opts = export(capsys, tmp_path, "npy-dir")
    monkeypatch.setenv("MERBENCH_DATA", str(tmp_path))
    relative = dict(opts, path="{data}/" + str(Path(opts["path"]).relative_to(tmp_path)))
    given, expanded = AudioPack(**relative).settings(), AudioPack(**opts).settings()
    assert given["path"] == relative["path"] and given["fingerprint"] == expanded["fingerprint"]


def test_path_expands_data_and_dataset(synth, capsys, tmp_path, monkeypatch):
    from merbench.features.packs.extractor import AudioPack

    opts = export(capsys, tmp_path, "json")
    target = synth / "data" / "synthetic-packs"
    shutil.copytree(tmp_path / "pack-json-pooled", target)
    monkeypatch.setenv("PACKNAME", "audio.json")
    ext = AudioPack(path="{data}/{dataset}-packs/$PACKNAME")
    ext.bind("synthetic")
    assert ext.path == target / "audio.json"
    got, _ = read_back({"path": "{data}/{dataset}-packs/$PACKNAME"})
    np.testing.assert_array_equal(got.pooled, source_table().pooled)


def test_three_pack_extractors_one_per_modality():
    from merbench.registry import get_feature

    for name, modality in (("text-pack", "t"), ("audio-pack", "a"), ("video-pack", "v")):
        cls = get_feature(name)
        assert cls.name == name and cls.modality == modality and set(cls.levels) == {"pooled", "frames"}
        with pytest.raises(MerbenchError, match=f"{name}: the option path is required"):
            cls()


# -- bad packs: a clear error naming the file and the ids ---------------------------------------

@pytest.fixture
def npy_pack(synth, capsys, tmp_path):
    opts = export(capsys, tmp_path, "npy-dir")
    return opts, tmp_path / "pack-npy-dir-pooled" / "audio"


def test_missing_ids_are_named_and_masked_only_when_asked(npy_pack):
    opts, folder = npy_pack
    (folder / "d0003_t02.npy").unlink()
    (folder / "d0005_t00.npy").unlink()
    with pytest.raises(PackError, match=r"2 utterances have no usable entry.*d0003_t02.*d0005_t00") as e:
        read_back(opts)
    assert str(folder) in str(e.value) and "--on-bad-media zero" in e.value.fix
    got, report = read_back(opts, on_bad_media="zero")
    assert report["missing_first"] == ["d0003_t02", "d0005_t00"]
    gone = [got.uids.index("d0003_t02"), got.uids.index("d0005_t00")]
    assert not got.valid[gone].any() and got.valid.sum() == len(got.uids) - 2
    assert not got.pooled[gone].any()


def test_extra_ids_are_named(npy_pack):
    opts, folder = npy_pack
    np.save(folder / "d0099_t00.npy", np.zeros(128, dtype=np.float32))
    with pytest.raises(PackError, match=r"1 pack entries name no utterance of corpus synthetic.*d0099_t00") as e:
        read_back(opts)
    assert str(folder) in str(e.value)
    got, report = read_back({**opts, "extra": "ignore"})
    assert report["extra_first"] == ["d0099_t00"] and len(got.uids) == 66


def test_wrong_dimension_names_the_file(npy_pack):
    opts, folder = npy_pack
    np.save(folder / "d0002_t01.npy", np.zeros(127, dtype=np.float32))
    with pytest.raises(PackError, match=r"d0002_t01 \(.*d0002_t01\.npy: entry 'd0002_t01' has 127 dimensions, "
                                        r"the pack 128\)"):
        read_back(opts)
    with pytest.raises(PackError, match=r"66 utterances have no usable entry"):
        read_back({**opts, "dim": 100})  # a stated size every entry must have


def test_nan_entries_are_named(npy_pack):
    opts, folder = npy_pack
    v = np.load(folder / "d0001_t00.npy")
    v[3] = np.nan
    np.save(folder / "d0001_t00.npy", v)
    with pytest.raises(PackError, match=r"d0001_t00 \(.*d0001_t00\.npy: entry 'd0001_t00' has NaN or inf"):
        read_back(opts)
    got, report = read_back(opts, on_bad_media="zero")
    assert report["nonfinite_first"] == ["d0001_t00"] and np.isfinite(got.pooled).all()


def test_no_matching_ids_says_what_keys_look_like(npy_pack):
    opts, folder = npy_pack
    for f in folder.glob("*.npy"):
        f.rename(folder / f"clip-{f.name}")
    with pytest.raises(PackError, match=r"no pack key matches.*clip-d0000_t00.*d0000_t00"):
        read_back(opts)
    got, report = read_back({**opts, "ids": "clip-{uid} -> {uid}"})
    assert report["ids"] == "clip-{uid} -> {uid}" and report["matched"] == 66


def test_ids_through_a_mapping_table(npy_pack):
    from merbench.features.packs.extractor import AudioPack

    opts, folder = npy_pack
    rows = ["num,name"]
    for i, f in enumerate(sorted(folder.glob("*.npy"))):
        rows.append(f"{i},{f.stem}")
        f.rename(folder / f"{i}.npy")
    table = folder.parent / "ids.csv"
    table.write_text("\n".join(rows) + "\n")
    ids = {"table": str(table), "key": "{num}", "uid": "{name}"}
    got, report = read_back({**opts, "ids": ids})
    np.testing.assert_array_equal(got.pooled, source_table().pooled)
    assert report["ids"] == f"table {table}" and report["matched"] == 66
    before = AudioPack(**opts, ids=ids).settings()["fingerprint"]
    table.write_text("\n".join(rows[:-1]) + "\n")  # the last row gone: its utterance is missing
    assert AudioPack(**opts, ids=ids).settings()["fingerprint"] != before
    with pytest.raises(PackError, match=r"1 pack entries name no utterance.*ids\.csv\): 65\n"):
        read_back({**opts, "ids": ids})
    with pytest.raises(PackError, match=r"ids.csv: no column 'number'"):
        read_back({**opts, "ids": {**ids, "key": "{number}"}})


def test_a_run_stops_before_training_on_a_bad_pack(npy_pack, capsys):
    opts, folder = npy_pack
    (folder / "d0004_t01.npy").unlink()
    req = json.dumps({"extractor": "audio-pack", "options": opts})
    rc, out, err = cli(capsys, "run", "mlp", "synthetic", "--modalities", "a", "--seed", "0", "--epochs", "1",
                       "--set", f"features.a={req}", "--results-dir", folder.parent / "r")
    assert rc == 2 and "d0004_t01" in err and str(folder) in err and "Traceback" not in err
    assert not (folder.parent / "r").exists()


# -- id mapping ---------------------------------------------------------------------------------

def utts(*uids, dialogue=lambda u: u.rsplit("_", 1)[0]):
    return [Utterance(uid=u, dialogue_id=dialogue(u), turn=i, speaker="A") for i, u in enumerate(uids)]


def keyed(keys, split=None):
    p = Pack(source="pack.json", format="json")
    for k in keys:
        p.add(k, np.zeros(2))
        if split:
            p.split[k] = split[k]
    return p


def test_meld_keys_need_the_split_from_the_folder_or_the_key():
    ours = utts("train/dia0_utt0", "train/dia0_utt1", "dev/dia0_utt0", dialogue=lambda u: u.split("_")[0])
    pack = keyed(["train/dia0_utt0", "train/dia0_utt1", "val/dia0_utt0"])
    m = map_ids(pack, ours)
    assert m.scheme == "meld" and m.to_uid["val/dia0_utt0"] == "dev/dia0_utt0" and not m.missing
    pack = keyed(["dia0_utt0", "dia0_utt1"], split={"dia0_utt0": "train_splits", "dia0_utt1": "train_splits"})
    m = map_ids(pack, ours, "meld")
    assert m.to_uid == {"dia0_utt0": "train/dia0_utt0", "dia0_utt1": "train/dia0_utt1"} and m.missing == ["dev/dia0_utt0"]


def test_meld_dialogue_order_uses_the_split_lists_and_our_turn_order():
    ours = [Utterance(uid=f"{s}/dia{d}_utt{u}", dialogue_id=f"{s}/dia{d}", turn=u, speaker="A")
            for s, d, us in (("train", 0, (0, 1)), ("train", 1, (0,)), ("test", 0, (0, 2)))
            for u in us]  # test dia0 has no utt1: positions follow our turn order
    pack = Pack(source="meld.pkl", format="dialogue-pickle")
    for d, n in ((0, 2), (1, 1), (7, 2)):
        for pos in range(n):
            pack.add(f"{d}#{pos}", np.zeros(2))
            pack.dialogue[f"{d}#{pos}"] = (d, pos)
    pack.dialogue_split = {0: "train", 1: "train", 7: "test"}
    m = map_ids(pack, ours)
    assert m.scheme == "meld" and m.to_uid["7#1"] == "test/dia0_utt2" and not m.extra and not m.missing


def test_mosi_and_iemocap_spellings():
    ours = utts("03bSnISJMiM_1", "03bSnISJMiM_10")
    assert map_ids(keyed(["03bSnISJMiM$_$1", "03bSnISJMiM$_$10"]), ours).to_uid["03bSnISJMiM$_$10"] == "03bSnISJMiM_10"
    assert map_ids(keyed(["03bSnISJMiM[1]", "03bSnISJMiM[10]"]), ours, "mosi").missing == []
    ours = utts("Ses01F_impro01_F000", "Ses01F_impro01_M000")
    m = map_ids(keyed(["Session1/Ses01F_impro01_F000", "Session1/Ses01F_impro01_M000"]), ours)
    assert m.scheme == "iemocap" and not m.missing


def test_two_keys_for_one_utterance_and_unknown_schemes_are_errors():
    ours = utts("a_1")
    with pytest.raises(PackError, match=r"'a\$_\$1' and 'a\[1\]' both map to utterance a_1"):
        map_ids(keyed(["a$_$1", "a[1]"]), ours, "mosi")
    with pytest.raises(PackError, match="unknown ids scheme 'mels'"):
        map_ids(keyed(["a_1"]), ours, "mels")


# -- labels -------------------------------------------------------------------------------------

def test_label_comparison_accepts_other_spellings_and_merges_but_not_disagreement():
    corpus_labels = {"u1": "happy", "u2": "excited", "u3": "sad", "u4": "sad"}
    assert compare_labels({"u1": 0, "u2": 0, "u3": 1, "u4": 1}, corpus_labels)["disagree"] == []
    assert compare_labels({"u1": "hap", "u2": "hap", "u3": "sad", "u4": "sad"}, corpus_labels)["disagree"] == []
    res = compare_labels({"u1": 0, "u2": 0, "u3": 1, "u4": 0}, corpus_labels)
    assert res["disagree"] == [("u4", 0, "sad")]
    res = compare_labels({"u1": 1.5, "u2": -0.4}, {"u1": "2", "u2": "0"}, {"u1": 1.5, "u2": 0.4})
    assert [d[0] for d in res["disagree"]] == ["u2"]


# -- labels carried by a pack: misalignment is an error ------------------------------------------

def _dialogue_pack(capsys, tmp_path):
    from merbench.safe_pickle import safe_load

    opts = export(capsys, tmp_path, "dialogue-pickle")
    return opts, safe_load(opts["path"])


def _dump(obj, path):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)


def test_a_label_disagreement_is_reported_as_misalignment(synth, capsys, tmp_path):
    opts, obj = _dialogue_pack(capsys, tmp_path)
    d = next(iter(obj["videoLabels"]))
    obj["videoLabels"][d][1] = "anger" if obj["videoLabels"][d][1] != "anger" else "joy"
    _dump(obj, opts["path"])
    uid = obj["videoIDs"][d][1]
    with pytest.raises(PackError, match=rf"labels disagree with the corpus's for 1 of 66 .*{uid}: pack") as e:
        read_back(opts)
    assert opts["path"] in str(e.value) and "labels: ignore" in e.value.fix
    _, report = read_back({**opts, "labels": "ignore"})
    assert report["labels"] == "not compared (labels: ignore)"


def test_shuffled_turns_without_ids_are_caught_by_the_labels(synth, capsys, tmp_path):
    opts, obj = _dialogue_pack(capsys, tmp_path)
    del obj["videoIDs"]  # dialogue order only, as COSMIC's pickles
    _dump(obj, opts["path"])
    got, report = read_back(opts)  # in order: every turn lands on ours, labels agree
    np.testing.assert_array_equal(got.pooled, source_table().pooled)
    assert report["ids"] == "identity" and report["labels"]["disagree"] == 0
    d = next(d for d, labs in obj["videoLabels"].items() if len(set(labs)) > 1)
    for item in ("videoLabels", "audio", "videoSpeakers"):
        obj[item][d] = obj[item][d][::-1]  # this dialogue's turns in another order
    _dump(obj, opts["path"])
    with pytest.raises(PackError, match=rf"misaligned: {d}_t"):
        read_back(opts)
    del obj["videoLabels"]
    _dump(obj, opts["path"])
    with pytest.raises(PackError, match="dialogue order without utterance ids or labels"):
        read_back(opts)


def test_mmsa_sentiment_scores_are_checked_against_the_corpus(tmp_path):
    """MOSI's real clip ids and scores in an MMSA-shaped pack: ids video$_$clip, scores agree; one
    swapped pair of rows is a disagreement naming both clips."""
    from conftest import shared_data_or_skip
    from merbench.datasets.mosi.adapter import MOSIDataset
    from merbench.features.packs.check import check_pack
    from merbench.features.packs.extractor import AudioPack

    mosi = MOSIDataset(shared_data_or_skip() / "mosi").load()
    parts = {}
    for split in ("train", "valid", "test"):
        us = [u for u in mosi.utterances if u.meta["split"] == split]
        video_clip = [u.uid.rsplit("_", 1) for u in us]
        parts[split] = {"id": np.array([f"{v}$_${c}" for v, c in video_clip]),
                        "audio": np.random.default_rng(0).normal(size=(len(us), 4, 5)).astype(np.float32),
                        "audio_lengths": np.full(len(us), 3), "regression_labels": np.array(
                            [u.meta["sentiment"] for u in us], dtype=np.float32)}
    path = tmp_path / "unaligned_50.pkl"
    _dump(parts, path)
    report = check_pack(AudioPack(path=str(path)), mosi)
    assert report["ids"] == "mosi" and report["matched"] == 2199 and report["labels"]["disagree"] == 0
    assert report["frames"]["max"] == 3 and report["format"] == "mmsa"
    labels = parts["test"]["regression_labels"]
    i = next(i for i in range(1, len(labels)) if abs(labels[i] - labels[0]) > 0.5)
    labels[[0, i]] = labels[[i, 0]]
    _dump(parts, path)
    first_clip = parts["test"]["id"][0].replace("$_$", "_")
    with pytest.raises(PackError, match=rf"for 2 of 2199 .*{first_clip}"):
        check_pack(AudioPack(path=str(path)), mosi)


@pytest.mark.parametrize("corpus_name", ["meld", "iemocap"])
def test_real_cosmic_layouts_map_onto_our_corpora(tmp_path, corpus_name):
    """COSMIC's own pickles (dialogue order, no utterance ids) with a feature item added: every turn
    maps onto our MELD / IEMOCAP utterances and the pack's labels agree with ours."""
    from conftest import shared_data_or_skip
    from merbench.datasets.iemocap.adapter import IEMOCAPDataset
    from merbench.datasets.meld.adapter import MELDDataset
    from merbench.features.packs.check import check_pack
    from merbench.features.packs.extractor import TextPack
    from merbench.safe_pickle import safe_load

    shared = shared_data_or_skip()
    src, ds = {"meld": ("meld/cosmic_meld.pkl", MELDDataset(shared / "meld")),
               "iemocap": ("iemocap/cosmic/iemocap.pkl", IEMOCAPDataset(shared / "iemocap"))}[corpus_name]
    with pytest.raises(PackError, match="no item holds feature vectors"):
        TextPack(path=str(shared / src), format="dialogue-pickle").pack()
    items = list(safe_load(shared / src))
    items.insert(3, {d: np.ones((len(turns), 6), dtype=np.float32) for d, turns in items[1].items()})
    _dump(items, tmp_path / "pack.pkl")
    report = check_pack(TextPack(path=str(tmp_path / "pack.pkl"), format="dialogue-pickle"), ds.load())
    assert report["ids"] == ("meld" if corpus_name == "meld" else "identity")
    assert report["missing"] == report["extra"] == 0 and report["labels"]["disagree"] == 0
    assert report["matched"] == {"meld": 13708, "iemocap": 7433}[corpus_name]


# -- pickles: only data, never code -------------------------------------------------------------

class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt", ["dialogue-pickle", "mmsa", "dataframe-pickle"])
def test_a_pickle_with_code_is_refused_and_nothing_runs(tmp_path, fmt):
    from merbench.errors import UnsafePickleError
    from merbench.features.packs.extractor import AudioPack

    marker = tmp_path / "ran"
    path = tmp_path / "pack.pkl"
    _dump({"train": {"id": np.array(["a"]), "audio": np.zeros((1, 3)), "x": _Boom(marker)}}, path)
    with pytest.raises(UnsafePickleError, match=r"pack\.pkl: it asks for the global (posix|os)\.system"):
        AudioPack(path=str(path), format=fmt).pack()
    assert not marker.exists()


# -- the papers' layouts ------------------------------------------------------------------------

def test_cross_modal_spreadsheet_layout(tmp_path):
    """List literals in cells, `File Name` with the clip's extension, an `Emotion` column."""
    import pandas as pd

    from merbench.features.packs.table import read

    df = pd.DataFrame({"File Name": ["dia0_utt0.mp4", "dia0_utt1.mp4"], "Utterance": ["hi there", "bye"],
                       "V1": [str([0.5, 1.0, 2.0]), str([1.5, 2.0, 3.0])], "A2": [str([1.0, 2.0]), str([3.0, 4.0])],
                       "Emotion": ["joy", "neutral"]})
    df.to_csv(tmp_path / "features.csv", index=False)
    with pytest.raises(PackError, match=r"several vector columns \(V1, A2\)"):
        read(tmp_path / "features.csv")
    pack = read(tmp_path / "features.csv", "V1")
    assert list(pack.vectors) == ["dia0_utt0", "dia0_utt1"] and pack.labels["dia0_utt1"] == "neutral"
    np.testing.assert_array_equal(pack.vectors["dia0_utt1"], [1.5, 2.0, 3.0])
    np.testing.assert_array_equal(read(tmp_path / "features.csv", "V1, A2").vectors["dia0_utt1"],
                                  [1.5, 2.0, 3.0, 3.0, 4.0])
    pytest.importorskip("openpyxl")
    df.to_excel(tmp_path / "features.xlsx", index=False)
    np.testing.assert_array_equal(read(tmp_path / "features.xlsx", "A2").vectors["dia0_utt0"], [1.0, 2.0])
