"""Feature extractors never see labels or annotations: a plugin that reads them learns nothing."""

from __future__ import annotations

import numpy as np

import toy
from merbench.corpus import EXTRACTOR_META_KEYS, Corpus, Utterance
from merbench.features.store import extract_corpus, load_table
from merbench.interfaces import ExtractedItem, FeatureExtractor
from merbench.registry import FEATURES, load_builtins
from merbench.results import read_result
from merbench.runner import RunRequest, run

load_builtins()
toy.register()


class LabelPeek(FeatureExtractor):
    """A malicious plugin: a one-hot of the gold label it is handed (last slot: no label)."""

    name = "toy-label-peek"
    modality = "t"

    def output_dim(self, level="pooled"):
        return len(toy.LABELS) + 1

    def extract(self, utterances):
        out = []
        for u in utterances:
            v = np.zeros(len(toy.LABELS) + 1, dtype=np.float32)
            v[toy.LABELS.index(u.label) if u.label in toy.LABELS else -1] = 1.0
            out.append(ExtractedItem(v))
        return out


if LabelPeek.name not in FEATURES:
    FEATURES.add(LabelPeek.name, LabelPeek)


def test_a_label_reading_extractor_learns_nothing(merbench_home, tmp_path):
    # Before extractors got sealed utterances this run scored 100 % on the test split.
    path = run(RunRequest(method="mlp", dataset="toy", seeds=[0], results_dir=tmp_path / "r",
                          overrides=[f"features.t={LabelPeek.name}", "train.epochs=6", "train.patience=100"]))[0]
    entry = next((merbench_home / "features").rglob(LabelPeek.name))
    table = load_table(next(entry.iterdir()))
    assert (table.pooled[:, -1] == 1).all() and table.pooled[:, :-1].sum() == 0  # every row: "no label"
    test = read_result(path).test
    labels = [u.label for u in toy.ToyDataset().load().utterances if u.meta["split"] == "test"]
    majority = max(labels.count(c) for c in toy.LABELS) / len(labels)
    assert test.accuracy <= majority + 1e-9  # constant features: no better than one class for all


class Recorder(FeatureExtractor):
    name = "recorder"
    modality = "t"
    seen: list = []

    def extract(self, utterances):
        Recorder.seen.extend(utterances)
        return [ExtractedItem(np.zeros(1, dtype=np.float32)) for _ in utterances]

    def prime(self, utterances):
        Recorder.seen.extend(utterances)


def test_extractors_see_media_timing_only(tmp_path):
    meta = {"split": "test", "sentiment": "positive", "session": 5, "label4": "hap", "valence": 2.5,
            "start": "00:00:01,000", "end": "00:00:02,500", "start_s": 1.0, "end_s": 2.5,
            "dialogue_video": "/media/dia.avi"}
    corpus = Corpus("sealed", [Utterance("u0", "d0", 0, "A", "hi", "joy", "/a.wav", "/v.mp4", meta=meta)])
    Recorder.seen = []
    extract_corpus(corpus, Recorder(), cache=tmp_path)
    assert Recorder.seen  # primed and extracted
    for u in Recorder.seen:
        assert u.label is None
        assert dict(u.meta) == {k: meta[k] for k in EXTRACTOR_META_KEYS}
        assert (u.uid, u.dialogue_id, u.turn, u.speaker, u.text, u.audio_path, u.video_path) == (
            "u0", "d0", 0, "A", "hi", "/a.wav", "/v.mp4")
    assert set(EXTRACTOR_META_KEYS) == {"start", "end", "start_s", "end_s", "dialogue_video"}
