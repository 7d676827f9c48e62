"""CMU-MOSI: opinion video clips (YouTube monologues) with sentiment in [-3, 3].

Reads MERTools' label file (``merbench_label.npz``: official train / valid / test
splits) and transcripts (``merbench_transcription.csv``). Sentiment becomes classes:
binary negative / positive with exactly-neutral (0) clips left out, and 7 classes by
rounding to the nearest integer. See README.md in this folder.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path
from typing import ClassVar

from merbench.corpus import Corpus, Utterance
from merbench.corpus_text import clean_text, decode_bytes
from merbench.errors import CorpusNotFoundError, MerbenchError
from merbench.interfaces import DatasetAdapter, DatasetMetadata
from merbench.paths import default_corpus_root
from merbench.protocols import Protocol, split_by_field
from merbench.safe_pickle import safe_load_npz


log = logging.getLogger(__name__)

POLARITY = ("negative", "positive")
CLASS7 = ("-3", "-2", "-1", "0", "1", "2", "3")
NPZ_SPLITS = {"train_corpus": "train", "val_corpus": "valid", "test_corpus": "test"}

MOSI_CITATION = ("Zadeh, Zellers, Pincus, Morency. MOSI: Multimodal Corpus of Sentiment Intensity and "
                 "Subjectivity Analysis in Online Opinion Videos. IEEE Intelligent Systems, 2016.")


def polarity(score: float) -> str | None:
    """negative (< 0) / positive (> 0); exactly 0 has no polarity (left out of the binary task)."""
    if score < 0:
        return "negative"
    if score > 0:
        return "positive"
    return None


def class7(score: float) -> str:
    """Round to the nearest integer in [-3, 3]; halves go to the even integer, as
    ``np.round`` does in the usual MOSI / MOSEI evaluation code."""
    return str(int(max(-3, min(3, round(score)))))


def split_clip_id(uid: str) -> tuple[str, int]:
    """'03bSnISJMiM_12' -> ('03bSnISJMiM', 12)."""
    video, _, seg = uid.rpartition("_")
    try:
        return video, int(seg)
    except ValueError:
        return uid, 0


class MOSIDataset(DatasetAdapter):
    name: ClassVar[str] = "mosi"
    metadata: ClassVar[DatasetMetadata] = DatasetMetadata(
        title="CMU-MOSI: Multimodal Opinion-level Sentiment Intensity",
        url="http://multicomp.cs.cmu.edu/resources/cmu-mosi-dataset/",
        license="research use (CMU MultiComp Lab terms); videos from YouTube",
        citation=MOSI_CITATION,
        description="2199 opinion segments from 93 YouTube videos, sentiment intensity in [-3, 3]; "
                    "official train / valid / test split (1284 / 229 / 686).",
    )
    modalities: ClassVar[tuple[str, ...]] = ("t", "a", "v")
    default_protocol: ClassVar[str] = "mosi-2"
    label_file: ClassVar[str] = "merbench_label.npz"
    transcript_file: ClassVar[str | None] = "merbench_transcription.csv"
    citation: ClassVar[str] = MOSI_CITATION

    def __init__(self, root: str | Path | None = None):
        super().__init__(root)
        self.media_report: dict[str, int] = {}

    def default_root(self) -> Path:
        return default_corpus_root(self.name)

    @classmethod
    def protocols(cls) -> list[Protocol]:
        n = cls.name
        return [
            Protocol(
                name=f"{n}-2", dataset=n, label_names=POLARITY, splitter=split_by_field("split"),
                label_field="polarity",
                description=f"{n.upper()} official split; binary sentiment (score < 0 negative, > 0 positive), "
                            "clips scored exactly 0 left out (the 'non-zero' Acc-2 convention). "
                            "Headline: accuracy (Acc-2).",
                headline_metric="accuracy", metrics=("accuracy", "weighted_f1", "macro_f1", "ua"),
                citation=cls.citation,
            ),
            Protocol(
                name=f"{n}-7", dataset=n, label_names=CLASS7, splitter=split_by_field("split"),
                description=f"{n.upper()} official split; 7 classes: the score rounded to the nearest integer "
                            "in [-3, 3]. Headline: accuracy (Acc-7).",
                headline_metric="accuracy", metrics=("accuracy", "weighted_f1", "macro_f1", "ua"),
                citation=cls.citation,
            ),
        ]

    # -- files --------------------------------------------------------------------------
    def _require(self, rel: str) -> Path:
        root = self.root
        if not root.is_dir():
            raise CorpusNotFoundError(
                f"{self.name.upper()} root {root} does not exist",
                fix=f"pass --root PATH pointing at a folder with {self.label_file}"
                    + (f" and {self.transcript_file}" if self.transcript_file else "")
                    + f", or put it at $MERBENCH_DATA/{self.name}")
        p = root / rel
        if not p.is_file():
            raise CorpusNotFoundError(
                f"{self.name.upper()} root {root} lacks {p}",
                fix=f"copy {rel} (MERTools MERBench/dataset/cmu{self.name}-process/) into that folder, "
                    "or pass --root PATH to a folder that has it")
        return p

    def _labels(self) -> dict[str, tuple[str, float]]:
        path = self._require(self.label_file)
        arrays = safe_load_npz(path)
        missing = [k for k in NPZ_SPLITS if k not in arrays]
        if missing:
            raise MerbenchError(f"{path}: no array {', '.join(missing)} (has {', '.join(arrays)})",
                                fix="use MERTools' label file with train_corpus / val_corpus / test_corpus")
        out: dict[str, tuple[str, float]] = {}
        for key, split in NPZ_SPLITS.items():
            for uid, v in arrays[key].item().items():
                uid = str(uid)
                score = float(v["val"])
                if not math.isfinite(score) or not -3.0 <= score <= 3.0:
                    raise MerbenchError(f"{path}[{key}]: clip {uid} has sentiment {score}, expected -3..3",
                                        fix="the label file is damaged; download it again")
                if uid in out:
                    raise MerbenchError(f"{path}: clip {uid} is in both {out[uid][0]} and {split}",
                                        fix="the label file is damaged; download it again")
                out[uid] = (split, score)
        return out

    def _texts(self) -> dict[str, str]:
        if not self.transcript_file:
            return {}
        path = self._require(self.transcript_file)
        reader = csv.DictReader(io.StringIO(decode_bytes(path.read_bytes()), newline=""))
        if not reader.fieldnames or not {"name", "english"} <= set(reader.fieldnames):
            raise MerbenchError(f"{path}: expected columns name, english (found {reader.fieldnames})",
                                fix="use MERTools' merbench_transcription.csv")
        return {row["name"].strip(): clean_text(row["english"]) for row in reader}

    def _media(self, uids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """The official release's segmented clips, when present next to the labels."""
        wav_dir = self.root / "Audio" / "WAV_16000" / "Segmented"
        mp4_dir = self.root / "Video" / "Segmented"
        self.media_report = {"wav_found": 0, "wav_missing": 0, "mp4_found": 0, "mp4_missing": 0}
        wavs = set(os.listdir(wav_dir)) if wav_dir.is_dir() else None
        mp4s = set(os.listdir(mp4_dir)) if mp4_dir.is_dir() else None
        out = {}
        for u in uids:
            a = v = None
            if wavs is not None:
                a = str(wav_dir / f"{u}.wav")
                self.media_report["wav_found" if f"{u}.wav" in wavs else "wav_missing"] += 1
            if mp4s is not None:
                v = str(mp4_dir / f"{u}.mp4")
                self.media_report["mp4_found" if f"{u}.mp4" in mp4s else "mp4_missing"] += 1
            out[u] = (a, v)
        for kind in ("wav", "mp4"):
            if self.media_report[f"{kind}_found"] and self.media_report[f"{kind}_missing"]:
                log.warning("%s: %d clips have no %s file", self.name, self.media_report[f"{kind}_missing"], kind)
        return out

    def load(self) -> Corpus:
        labels = self._labels()
        texts = self._texts()
        if self.transcript_file:
            missing = [u for u in labels if u not in texts]
            if missing:
                log.warning("%s: %d clips have no transcript (e.g. %s); their text is empty",
                            self.name, len(missing), missing[0])
        order = sorted(labels, key=lambda u: (split_clip_id(u)[0], split_clip_id(u)[1], u))
        media = self._media(order)
        utterances = []
        for uid in order:
            split, score = labels[uid]
            video, seg = split_clip_id(uid)
            audio_path, video_path = media.get(uid, (None, None))
            meta = {"split": split, "sentiment": score, "class7": class7(score)}
            pol = polarity(score)
            if pol is not None:
                meta["polarity"] = pol
            utterances.append(Utterance(uid=uid, dialogue_id=video, turn=seg, speaker=video,
                                        text=texts.get(uid, ""), label=class7(score),
                                        audio_path=audio_path, video_path=video_path, meta=meta))
        corpus = Corpus(self.name, utterances, root=self.root)
        mods = ["t"] if texts else []
        if self.media_report.get("wav_found"):
            mods.append("a")
        if self.media_report.get("mp4_found"):
            mods.append("v")
        corpus.modalities = tuple(mods)
        return corpus
