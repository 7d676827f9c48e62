"""Real-corpus adapters (MELD, IEMOCAP, MOSI, MOSEI): counts and protocols on the real
annotation files (skipped without ``shared_data()``), and the harder parsing cases on
small fixture trees written here."""

from __future__ import annotations

import collections
import logging

import numpy as np
import pytest

from merbench.errors import CorpusNotFoundError
from merbench.protocols import SPLITS
from merbench.registry import get_dataset
from merbench.safe_pickle import safe_load

from merbench.datasets.iemocap.adapter import COSMIC_VALID_DIALOGUES, IEMOCAPDataset
from merbench.datasets.meld.adapter import MELDDataset
from merbench.corpus_text import clean_text
from merbench.datasets.mosei.adapter import MOSEIDataset
from merbench.datasets.mosi.adapter import MOSIDataset, class7, polarity


@pytest.fixture(scope="module")
def shared():
    from conftest import shared_data_or_skip

    return shared_data_or_skip()


@pytest.fixture(scope="module")
def meld(shared):
    return MELDDataset(shared / "meld").load()


@pytest.fixture(scope="module")
def iemocap(shared):
    adapter = IEMOCAPDataset(shared / "iemocap")
    return adapter, adapter.load()


def _assert_disjoint(splits):
    for f in splits.folds:
        sets = [set(f.ids(s)) for s in SPLITS]
        assert all(len(s) == len(f.ids(name)) for s, name in zip(sets, SPLITS)), "duplicate id inside a split"
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        assert all(sets), f"empty split in fold {f.name}"


# -- MELD (real files) ---------------------------------------------------------------------

def test_meld_counts_and_labels(meld):
    assert len(meld) == 13708 and meld.modalities == ("t",)
    by_split = collections.Counter(u.meta["split"] for u in meld.utterances)
    assert by_split == {"train": 9989, "valid": 1109, "test": 2610}
    dias = collections.Counter(u.meta["split"] for u in {u.dialogue_id: u for u in meld.utterances}.values())
    assert dias == {"train": 1038, "valid": 114, "test": 280}
    assert collections.Counter(u.label for u in meld.utterances) == {
        "neutral": 6436, "joy": 2308, "surprise": 1636, "anger": 1607, "sadness": 1002, "disgust": 361, "fear": 358}
    assert collections.Counter(u.meta["sentiment"] for u in meld.utterances) == {
        "neutral": 6436, "negative": 4184, "positive": 3088}
    u = meld["train/dia0_utt0"]
    assert u.dialogue_id == "train/dia0" and u.turn == 0 and u.speaker == "Chandler"
    assert u.meta["season"] == 8 and u.meta["episode"] == 21 and u.meta["start_s"] == pytest.approx(976.059)
    assert "dev/dia0_utt0" in meld and "test/dia279_utt0" in meld
    assert all(u.audio_path is None and u.video_path is None for u in meld.utterances)


def test_meld_text_is_clean_utf8(meld, shared):
    # Curly quotes survive as real characters; no line breaks, C1 controls or mojibake remain.
    assert meld["train/dia0_utt0"].text == ("also I was the point person on my company\u2019s transition "
                                            "from the KL-5 to GR-6 system.")
    assert sum("\u2019" in u.text for u in meld.utterances) == 3621
    for u in meld.utterances:
        assert u.text == u.text.strip() and "\n" not in u.text and "\r" not in u.text and "  " not in u.text
        assert not any("\x80" <= c <= "\x9f" for c in u.text) and "\u00e2\u20ac" not in u.text
    # The same sentences read from COSMIC's cp1252 pickle clean to exactly the CSV text.
    cosmic = safe_load(shared / "meld" / "cosmic_meld.pkl")
    sents, train_ids = cosmic[3], cosmic[4]
    first = sorted(train_ids)[0]
    assert "\x92" in sents[first][0]
    ours = [u.text for u in meld.dialogues()[f"train/dia{first}"]]
    assert [clean_text(s) for s in sents[first]] == ours


def test_meld_protocols(meld):
    seven = MELDDataset.protocol("meld-7").build(meld)
    assert seven.counts() == [{"train": 9989, "valid": 1109, "test": 2610}]
    _assert_disjoint(seven)
    three = MELDDataset.protocol("meld-3").build(meld)
    _assert_disjoint(three)
    assert collections.Counter(three.labels.values()) == {1: 6436, 0: 4184, 2: 3088}  # negative, neutral, positive
    assert MELDDataset.protocol("meld-7").headline_metric == "weighted_f1"


# -- IEMOCAP (real files) ------------------------------------------------------------------

def test_iemocap_counts(iemocap):
    adapter, corpus = iemocap
    assert len(corpus) == 7433 and corpus.modalities == ("t",)
    assert collections.Counter(u.label for u in corpus.utterances) == {
        "fru": 1849, "neu": 1708, "ang": 1103, "sad": 1084, "exc": 1041, "hap": 648}
    four = [u for u in corpus.utterances if "label4" in u.meta]
    assert len(four) == 5531
    assert [collections.Counter(u.meta["session"] for u in four)[s] for s in range(1, 6)] == [1085, 1023, 1151, 1031, 1241]
    assert collections.Counter(u.meta["label4"] for u in four) == {"neu": 1708, "hap": 1636, "ang": 1103, "sad": 1084}
    # exc is merged into hap; fru never enters the 4-class set
    assert all(u.meta["label4"] == "hap" for u in four if u.label == "exc")
    assert not any(u.label == "fru" for u in four)
    # Every utterance joined to COSMIC's order by its text.
    rep = adapter.join_report
    assert rep.source == "cosmic" and rep.matched == 7433 and rep.unmatched_corpus == 0
    u = corpus["Ses01F_impro01_F000"]
    assert u.dialogue_id == "Ses01F_impro01" and u.speaker == "Ses01_F" and u.meta["session"] == 1
    assert u.text == "Excuse me." and u.turn == 0


def test_iemocap_turn_order_matches_cosmic(iemocap, shared):
    _, corpus = iemocap
    speakers, labels, sents = safe_load(shared / "iemocap" / "cosmic" / "iemocap.pkl")[:3]
    names = ("hap", "sad", "neu", "ang", "exc", "fru")
    dias = corpus.dialogues()
    assert set(dias) == set(sents)
    for d, utts in dias.items():
        assert [u.turn for u in utts] == list(range(len(utts)))
        assert [u.label for u in utts] == [names[i] for i in labels[d]]
        assert [u.speaker[-1] for u in utts] == list(speakers[d])
        assert [u.text for u in utts] == [clean_text(s) for s in sents[d]]


def test_iemocap_6_split(iemocap, shared):
    _, corpus = iemocap
    splits = IEMOCAPDataset.protocol("iemocap-6").build(corpus)
    _assert_disjoint(splits)
    (fold,) = splits.folds
    assert len(fold.test) == 1623 and len(fold.train) + len(fold.valid) == 7433 - 1623
    assert {corpus[u].meta["session"] for u in fold.test} == {5}
    assert 5 not in {corpus[u].meta["session"] for u in fold.train + fold.valid}
    valid_dias = {corpus[u].dialogue_id for u in fold.valid}
    assert valid_dias == set(COSMIC_VALID_DIALOGUES)
    # The built-in fallback list is COSMIC's own list.
    assert sorted(safe_load(shared / "iemocap" / "cosmic" / "iemocap.pkl")[5]) == sorted(COSMIC_VALID_DIALOGUES)


def test_iemocap_4_loso_validation_never_from_test_session(iemocap):
    _, corpus = iemocap
    proto = IEMOCAPDataset.protocol("iemocap-4-loso")
    splits = proto.build(corpus)
    _assert_disjoint(splits)
    assert len(splits.folds) == 5 and len(splits.labels) == 5531
    for f in splits.folds:
        held = {corpus[u].meta["session"] for u in f.test}
        assert len(held) == 1
        assert held.isdisjoint(corpus[u].meta["session"] for u in f.valid)
        assert held.isdisjoint(corpus[u].meta["session"] for u in f.train)
        # validation is whole dialogues, about a tenth of the training sessions' dialogues
        assert {corpus[u].dialogue_id for u in f.valid}.isdisjoint(corpus[u].dialogue_id for u in f.train)
        assert 0.05 < len(f.valid) / (len(f.train) + len(f.valid)) < 0.2
    assert [len(f.test) for f in splits.folds] == [1085, 1023, 1151, 1031, 1241]
    assert "mean" in proto.fold_combination and "pooled" in proto.fold_combination
    assert set(proto.metrics) == {"accuracy", "ua", "weighted_f1"}


def test_iemocap_4_random8020(iemocap):
    _, corpus = iemocap
    proto = IEMOCAPDataset.protocol("iemocap-4-random8020")
    assert proto.as_published
    splits = proto.build(corpus)
    _assert_disjoint(splits)
    (fold,) = splits.folds
    assert len(fold.test) == round(5531 * 0.2) and len(fold.train) + len(fold.valid) + len(fold.test) == 5531
    assert len(fold.valid) == round(5531 * 0.08)  # a tenth of the 80%


def test_manifest_hash_stable_across_loads(shared):
    for cls, sub in ((MELDDataset, "meld"), (IEMOCAPDataset, "iemocap"), (MOSIDataset, "mosi")):
        a, b = cls(shared / sub).load(), cls(shared / sub).load()
        for p in cls.protocols():
            assert p.build(a).manifest_hash == p.build(b).manifest_hash, p.name


# -- MOSI / MOSEI (real files) -------------------------------------------------------------

def test_mosi_and_mosei(shared):
    mosi = MOSIDataset(shared / "mosi").load()
    assert len(mosi) == 2199 and mosi.modalities == ("t",)
    assert collections.Counter(u.meta["split"] for u in mosi.utterances) == {"train": 1284, "valid": 229, "test": 686}
    assert mosi["03bSnISJMiM_1"].text == "ANYHOW IT WAS REALLY GOOD"
    two = MOSIDataset.protocol("mosi-2").build(mosi)
    _assert_disjoint(two)
    zeros = sum(u.meta["sentiment"] == 0 for u in mosi.utterances)
    assert len(two.labels) == 2199 - zeros and zeros > 0
    seven = MOSIDataset.protocol("mosi-7").build(mosi)
    _assert_disjoint(seven)
    assert len(seven.labels) == 2199
    mosei = MOSEIDataset(shared / "mosei").load()
    assert len(mosei) == 22856 and mosei.modalities == ()
    assert collections.Counter(u.meta["split"] for u in mosei.utterances) == {"train": 16326, "valid": 1871, "test": 4659}
    for p in MOSEIDataset.protocols():
        _assert_disjoint(p.build(mosei))


def test_sentiment_classes():
    assert polarity(-0.2) == "negative" and polarity(0.0) is None and polarity(1.4) == "positive"
    assert [class7(x) for x in (-3.0, -2.6, -0.4, 0.0, 0.5, 1.5, 2.5, 3.0)] == ["-3", "-3", "0", "0", "0", "2", "2", "3"]


# -- registry and missing roots --------------------------------------------------------------

def test_registered():
    assert get_dataset("meld") is MELDDataset and get_dataset("iemocap") is IEMOCAPDataset
    assert get_dataset("mosi") is MOSIDataset and get_dataset("mosei") is MOSEIDataset


@pytest.mark.parametrize("cls", [MELDDataset, IEMOCAPDataset, MOSIDataset, MOSEIDataset])
def test_missing_root_names_the_path(cls, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusNotFoundError) as info:
        cls(missing).load()
    assert str(missing) in str(info.value) and "--root" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusNotFoundError) as info:
        cls(empty).load()
    assert str(empty) in str(info.value)


def test_default_root(tmp_path, monkeypatch):
    import merbench.paths

    shared = tmp_path / "shared"
    (shared / "meld").mkdir(parents=True)
    monkeypatch.setattr(merbench.paths, "shared_data", lambda: shared)
    monkeypatch.delenv("MERBENCH_DATA", raising=False)
    monkeypatch.setenv("MERBENCH_HOME", str(tmp_path / "home"))
    assert MELDDataset().root == shared / "meld"
    assert IEMOCAPDataset().root == tmp_path / "home" / "data" / "iemocap"  # not in shared: the data root
    own = tmp_path / "own"
    (own / "meld").mkdir(parents=True)
    monkeypatch.setenv("MERBENCH_DATA", str(own))
    assert MELDDataset().root == own / "meld"  # an explicit MERBENCH_DATA copy wins
    monkeypatch.setattr(merbench.paths, "shared_data", lambda: None)
    monkeypatch.delenv("MERBENCH_DATA")
    with pytest.raises(CorpusNotFoundError) as info:
        MOSIDataset().load()
    assert str(tmp_path / "home" / "data" / "mosi") in str(info.value) and "MERBENCH_DATA" in str(info.value)


def test_meld_missing_one_csv_is_named(tmp_path):
    for s in ("train", "dev"):
        (tmp_path / f"{s}_sent_emo.csv").write_text("Utterance\n")
    with pytest.raises(CorpusNotFoundError) as info:
        MELDDataset(tmp_path).load()
    assert str(tmp_path / "test_sent_emo.csv") in str(info.value)
    assert str(tmp_path / "train_sent_emo.csv") not in str(info.value)


def test_iemocap_missing_4class_is_named(tmp_path):
    (tmp_path / "merbench").mkdir()
    np.savez(tmp_path / "merbench" / "label_6way.npz",
             whole_corpus=np.array({"Ses01F_impro01_F000": {"emo": 2, "val": -10}}, dtype=object))
    with pytest.raises(CorpusNotFoundError, match="sessions_4class"):
        IEMOCAPDataset(tmp_path).load()


# -- MELD fixture: cp1252 bytes, embedded newlines, BOM, mojibake, media ------------------------

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\r\n"


def _write_meld(root, with_media=True):
    train = (HEADER
             + '1,"Oh my God,\r\nyou\x92re here!",Rachel,surprise,positive,0,1,1,2,"00:00:01,000","00:00:02,500"\r\n'
             + '2,I don\x92t know.,Ross,neutral,neutral,0,0,1,2,"00:00:00,100","00:00:00,900"\r\n'
             + '3,\x93Fine\x94 \x96 whatever\x85,Joey ,Anger ,negative,1,0,1,3,,\r\n').encode("latin-1")
    (root / "train_sent_emo.csv").write_bytes(train)
    dev = "\ufeff" + HEADER + "1,It\u00e2\u20ac\u2122s  me.\t,Monica,joy,positive,0,0,2,1,\"0:01:00,5\",\"0:01:01,000\"\r\n"
    (root / "dev_sent_emo.csv").write_bytes(dev.encode("utf-8"))
    test = HEADER + "1,\"Line one\nline two\",Phoebe,sadness,negative,3,0,3,4,\"00:10:00,000\",\"00:10:02,000\"\r\n"
    (root / "test_sent_emo.csv").write_bytes(test.encode("utf-8"))
    if with_media:
        clips = root / "MELD.Raw" / "train_splits"
        clips.mkdir(parents=True)
        for stem in ("dia0_utt0", "dia0_utt1"):  # dia1_utt0 is missing
            (clips / f"{stem}.mp4").write_bytes(b"")
        (clips / "dia0_utt1.wav").write_bytes(b"")
        test_clips = root / "test" / "output_repeated_splits_test"
        test_clips.mkdir(parents=True)
        (test_clips / "dia3_utt0.mp4").write_bytes(b"")


def test_meld_fixture_text_and_order(tmp_path, caplog):
    _write_meld(tmp_path)
    adapter = MELDDataset(tmp_path)
    with caplog.at_level(logging.WARNING):
        corpus = adapter.load()
    assert [u.uid for u in corpus.utterances] == ["train/dia0_utt0", "train/dia0_utt1", "train/dia1_utt0",
                                                  "dev/dia0_utt0", "test/dia3_utt0"]
    assert corpus["train/dia0_utt1"].text == "Oh my God, you\u2019re here!"  # newline in quotes, cp1252 quote
    assert corpus["train/dia0_utt0"].text == "I don\u2019t know."
    assert corpus["train/dia1_utt0"].text == "\u201cFine\u201d \u2013 whatever\u2026"
    assert corpus["train/dia1_utt0"].speaker == "Joey" and corpus["train/dia1_utt0"].label == "anger"
    assert corpus["train/dia1_utt0"].meta["start_s"] is None
    assert corpus["dev/dia0_utt0"].text == "It\u2019s me."  # BOM, double-encoded quote, stray whitespace
    assert corpus["dev/dia0_utt0"].meta["split"] == "valid"
    assert corpus["dev/dia0_utt0"].meta["start_s"] == pytest.approx(60.5)
    assert corpus["test/dia3_utt0"].text == "Line one line two"
    # Media: found clips point at their file, a missing one keeps its expected path and is counted.
    assert corpus.modalities == ("t", "a", "v")
    u0 = corpus["train/dia0_utt0"]
    assert u0.video_path.endswith("MELD.Raw/train_splits/dia0_utt0.mp4") and u0.audio_path == u0.video_path
    assert corpus["train/dia0_utt1"].audio_path.endswith("dia0_utt1.wav")
    assert corpus["train/dia1_utt0"].video_path.endswith("train_splits/dia1_utt0.mp4")
    assert adapter.media_report["train"]["missing"] == 1 and adapter.media_report["train"]["found"] == 2
    assert adapter.media_report["dev"] == {"folder": None, "found": 0, "missing": 1}
    assert corpus["dev/dia0_utt0"].video_path is None
    assert corpus["test/dia3_utt0"].video_path.endswith("test/output_repeated_splits_test/dia3_utt0.mp4")
    assert "1 of 3 clips missing" in caplog.text


def test_meld_fixture_text_only(tmp_path):
    _write_meld(tmp_path, with_media=False)
    corpus = MELDDataset(tmp_path).load()
    assert corpus.modalities == ("t",)
    assert all(u.audio_path is None and u.video_path is None for u in corpus.utterances)


def test_meld_bad_row_names_file_and_line(tmp_path):
    _write_meld(tmp_path, with_media=False)
    (tmp_path / "dev_sent_emo.csv").write_text(HEADER + "1,Hi,Ross,joy,positive,x,0,1,1,,\r\n")
    from merbench.errors import MerbenchError

    with pytest.raises(MerbenchError) as info:
        MELDDataset(tmp_path).load()
    assert "dev_sent_emo.csv, line 2" in str(info.value)


# -- IEMOCAP fixture: the official release layout ---------------------------------------------

def _emo_block(start, end, uid, emo):
    return (f"[{start:.4f} - {end:.4f}]\t{uid}\t{emo}\t[2.5000, 3.0000, 3.5000]\n"
            "C-E1:\tNeutral;\t()\nA-E1:\tval 3; act 2; dom  2;\t()\n\n")


# dialogue -> [(uid, start, emo, text)], deliberately not in time order in the file
RELEASE = {
    "Ses01F_impro01": [("Ses01F_impro01_F001", 3.0, "exc", "Yes, I do."),
                       ("Ses01F_impro01_F000", 1.0, "neu", "Excuse me."),
                       ("Ses01F_impro01_M000", 2.0, "fru", "Do you have your forms?"),
                       ("Ses01F_impro01_M001", 4.0, "xxx", "Okay.")],
    "Ses01M_impro01": [("Ses01M_impro01_M000", 0.5, "ang", "No."),
                       ("Ses01M_impro01_F000", 1.5, "sad", "Why?")],
    "Ses05F_script01_1": [("Ses05F_script01_1_F000", 0.2, "hap", "Hello."),
                          ("Ses05F_script01_1_M000", 0.9, "sad", "Bye.")],
}


def _write_release(root, missing_wav="Ses01F_impro01_M001"):
    import soundfile as sf

    for dia, utts in RELEASE.items():
        sess = root / f"Session{int(dia[4])}"
        emo = sess / "dialog" / "EmoEvaluation"
        trans = sess / "dialog" / "transcriptions"
        wav = sess / "sentences" / "wav" / dia
        for d in (emo, trans, wav):
            d.mkdir(parents=True, exist_ok=True)
        (emo / "Categorical").mkdir(exist_ok=True)  # sub-folders are ignored
        text = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        text += "".join(_emo_block(s, s + 0.5, u, e) for u, s, e, _ in utts)
        (emo / f"{dia}.txt").write_text(text)
        (emo / f"._{dia}.txt").write_bytes(b"\x00\x05\x16\x07junk")
        lines = [f"{u} [{s:08.4f}-{s + 0.5:08.4f}]: {t}" for u, s, _, t in utts] + ["M: [LAUGHTER]"]
        (trans / f"{dia}.txt").write_text("\n".join(lines) + "\n")
        if dia == "Ses01F_impro01":
            (sess / "dialog" / "avi" / "DivX").mkdir(parents=True, exist_ok=True)
            (sess / "dialog" / "avi" / "DivX" / f"{dia}.avi").write_bytes(b"")
        for u, *_ in utts:
            if u != missing_wav:
                sf.write(wav / f"{u}.wav", np.zeros(160, dtype=np.float32), 16000)


def test_iemocap_release_layout(tmp_path):
    _write_release(tmp_path)
    adapter = IEMOCAPDataset(tmp_path)
    corpus = adapter.load()
    assert len(corpus) == 8 and corpus.modalities == ("t", "a")
    order = [u.uid for u in corpus.dialogues()["Ses01F_impro01"]]
    assert order == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_F001", "Ses01F_impro01_M001"]
    assert adapter.join_report.source == "start-time"
    u = corpus["Ses01F_impro01_F001"]
    assert u.label == "exc" and u.meta["label4"] == "hap" and u.text == "Yes, I do."
    assert u.meta["start"] == pytest.approx(3.0) and u.meta["valence"] == pytest.approx(2.5)
    assert u.audio_path.endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F001.wav")
    assert u.video_path is None and u.speaker == "Ses01_F"
    # The release's video is per dialogue: kept in meta, not handed to extractors as a clip.
    assert u.meta["dialogue_video"].endswith("Session1/dialog/avi/DivX/Ses01F_impro01.avi")
    assert "dialogue_video" not in corpus["Ses05F_script01_1_F000"].meta
    assert corpus["Ses01F_impro01_M001"].label == "xxx" and "label4" not in corpus["Ses01F_impro01_M001"].meta
    assert "label4" not in corpus["Ses01F_impro01_M000"].meta  # fru
    assert adapter.media_report["wav_found"] == 7 and adapter.media_report["wav_missing"] == 1
    # Without COSMIC's pickle the built-in list gives the same 6-way split.
    assert corpus["Ses01M_impro01_M000"].meta["split6"] == "valid"
    assert corpus["Ses01F_impro01_F000"].meta["split6"] == "train"
    assert corpus["Ses05F_script01_1_F000"].meta["split6"] == "test"
    six = IEMOCAPDataset.protocol("iemocap-6").build(corpus)
    _assert_disjoint(six)
    assert six.counts() == [{"train": 3, "valid": 2, "test": 2}]  # xxx is left out

    # Utterance clips cut from the dialogue videos make the video modality available.
    clips = tmp_path / "Session1" / "sentences" / "avi" / "Ses01F_impro01"
    clips.mkdir(parents=True)
    (clips / "Ses01F_impro01_F000.avi").write_bytes(b"")
    adapter = IEMOCAPDataset(tmp_path)
    corpus = adapter.load()
    assert corpus.modalities == ("t", "a", "v")
    assert corpus["Ses01F_impro01_F000"].video_path == str(clips / "Ses01F_impro01_F000.avi")
    assert corpus["Ses01F_impro01_M000"].video_path == str(clips / "Ses01F_impro01_M000.avi")  # missing, reported
    assert adapter.media_report["clip_found"] == 1 and adapter.media_report["clip_missing"] == 7


def test_iemocap_release_with_annotation_files(tmp_path):
    """Release media and times, with the 6-way label set of the annotation file."""
    _write_release(tmp_path, missing_wav=None)
    (tmp_path / "merbench").mkdir()
    table = {"Ses01F_impro01_F000": {"emo": 0, "val": -10}, "Ses01F_impro01_M000": {"emo": 5, "val": -10},
             "Ses05F_script01_1_F000": {"emo": 0, "val": -10}}
    np.savez(tmp_path / "merbench" / "label_6way.npz", whole_corpus=np.array(table, dtype=object))
    corpus = IEMOCAPDataset(tmp_path).load()
    assert sorted(u.uid for u in corpus.utterances) == sorted(table)
    assert corpus["Ses01F_impro01_F000"].label == "hap"  # the annotation file's label wins over "neu"
    assert corpus["Ses01F_impro01_F000"].meta["label4"] == "neu"  # 4-class from the release's code
    assert corpus["Ses01F_impro01_M000"].turn == 1 and corpus["Ses01F_impro01_M000"].text == "Do you have your forms?"
    assert corpus.modalities == ("t", "a")


def test_iemocap_fallback_turn_order():
    pos = {"D_F000": 0.0, "D_M000": 1.0, "D_F002": 2.0}
    uids = ["D_M001", "D_F001", "D_F000", "D_M000", "D_F002", "D_M005"]
    # F001 goes after F000, the unplaced M001 / M005 after M000
    assert IEMOCAPDataset._turns(uids, pos) == ["D_F000", "D_F001", "D_M000", "D_M001", "D_M005", "D_F002"]
    assert IEMOCAPDataset._turns(["D_M001", "D_F001", "D_M000", "D_F000"], {}) == ["D_F000", "D_M000", "D_F001", "D_M001"]
