"""A toy text corpus and a bag-of-words extractor, registered for engine tests."""

from __future__ import annotations

import zlib

import numpy as np

from merbench.corpus import Corpus, Utterance
from merbench.interfaces import DatasetAdapter, DatasetMetadata, ExtractedItem, FeatureExtractor, FitReport, Method, MethodMetadata
from merbench.protocols import Protocol, split_by_field
from merbench.registry import DATASETS, FEATURES, METHODS

WORDS = {"neutral": ["okay", "fine"], "joy": ["great", "happy"], "sadness": ["sad", "down"], "anger": ["mad", "furious"]}
LABELS = tuple(WORDS)


class ToyDataset(DatasetAdapter):
    name = "toy"
    modalities = ("t",)
    default_protocol = "toy-4"
    metadata = DatasetMetadata(title="toy text corpus for engine tests")

    @classmethod
    def protocols(cls):
        return [Protocol(name="toy-4", dataset="toy", label_names=LABELS, splitter=split_by_field("split"), default_seeds=2)]

    def load(self):
        rng = np.random.default_rng(0)
        utts = []
        for d in range(60):
            split = "train" if d < 40 else ("valid" if d < 48 else "test")
            for t in range(5):
                y = LABELS[int(rng.integers(4))]
                word = rng.choice(WORDS[y]) if rng.random() < 0.7 else rng.choice(sum(WORDS.values(), []))
                utts.append(Utterance(f"d{d}_{t}", f"d{d}", t, "AB"[t % 2], f"i am {word} today", y,
                                      meta={"split": split}))
        return Corpus("toy", utts, root=self.root, modalities=("t",))


class ToyBagOfWords(FeatureExtractor):
    name = "toy-bow"
    modality = "t"
    levels = ("pooled", "frames")

    def output_dim(self, level="pooled"):
        return 32

    def extract(self, utterances):
        out = []
        for u in utterances:
            frames = np.zeros((len(u.text.split()), 32), dtype=np.float32)
            for i, w in enumerate(u.text.split()):
                frames[i, zlib.crc32(w.encode()) % 32] = 1.0
            out.append(ExtractedItem(frames.sum(0), frames))
        return out


class SpyMethod(Method):
    """Records every label and utterance it is shown, to prove test labels never reach it."""

    name = "spy"
    modalities = ("t",)
    metadata = MethodMetadata(title="spy")
    seen: list = []

    @classmethod
    def feature_requests(cls, config, modalities):
        from merbench.interfaces import FeatureRequest

        return {"t": FeatureRequest("toy-bow")}

    def fit(self, train, valid, on_epoch=None):
        SpyMethod.seen.append(("fit", train.uids, valid.uids, train.labels is not None))
        return FitReport()

    def predict(self, split):
        SpyMethod.seen.append(("predict", split.uids, split.labels, [(u.label, dict(u.meta)) for u in split.utterances]))
        return np.full((len(split), len(split.label_names)), 1.0 / len(split.label_names), dtype=np.float32)


def register():
    if "toy" not in DATASETS:
        DATASETS.add("toy", ToyDataset)
        FEATURES.add("toy-bow", ToyBagOfWords)
        METHODS.add("spy", SpyMethod)
