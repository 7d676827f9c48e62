"""MELD (Multimodal EmotionLines Dataset): Friends dialogues, 7 emotions and 3 sentiments.

Reads the official annotation CSVs (``train_sent_emo.csv``, ``dev_sent_emo.csv``,
``test_sent_emo.csv``) and, when the MELD.Raw video folders are next to them, points
every utterance at its clip. See README.md in this folder.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from pathlib import Path
from typing import ClassVar

from merbench.corpus import Corpus, Utterance, named_rows
from merbench.corpus_text import clean_text, decode_bytes
from merbench.download import Download
from merbench.errors import CorpusNotFoundError, MerbenchError
from merbench.interfaces import DatasetAdapter, DatasetMetadata
from merbench.paths import default_corpus_root
from merbench.protocols import Protocol, split_by_field

log = logging.getLogger(__name__)

EMOTIONS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")  # COSMIC's index order
SENTIMENTS = ("negative", "neutral", "positive")

# file split name -> (protocol split, MELD.Raw clip folder)
SPLITS = {
    "train": ("train", "train_splits"),
    "dev": ("valid", "dev_splits_complete"),
    "test": ("test", "output_repeated_splits_test"),
}
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
MEDIA_EXTS = (".mp4",)

CITATION = ("Poria, Hazarika, Majumder, Naik, Cambria, Mihalcea. MELD: A Multimodal Multi-Party Dataset "
            "for Emotion Recognition in Conversations. ACL 2019.")

_TIME = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?\s*$")


def parse_time(s: str) -> float | None:
    """'00:16:16,059' -> 976.059 (None when the cell is empty or malformed)."""
    m = _TIME.match(s or "")
    if not m:
        return None
    h, mi, se, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(se) + (int(ms.ljust(3, "0")) / 1000 if ms else 0.0)


def read_split_csv(path: Path) -> list[dict[str, str]]:
    """Rows of one ``*_sent_emo.csv`` as dicts; each gets ``_line`` (its first line in the file)."""
    text = decode_bytes(path.read_bytes())
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise MerbenchError(f"{path} is empty", fix="download the MELD annotation files again") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise MerbenchError(f"{path}: missing column(s) {', '.join(missing)} (header: {', '.join(header)})",
                            fix="use the official MELD CSVs (data/MELD/*_sent_emo.csv of the MELD release)")
    rows = []
    line = reader.line_num + 1
    for cells in named_rows(reader, path):
        if not any(c.strip() for c in cells):
            line = reader.line_num + 1
            continue
        if len(cells) != len(header):
            raise MerbenchError(f"{path}, line {line}: {len(cells)} fields where the header has {len(header)}",
                                fix="the file is damaged (an unbalanced quote?); download it again")
        row = dict(zip(header, cells))
        row["_line"] = str(line)
        rows.append(row)
        line = reader.line_num + 1
    return rows


class MELDDataset(DatasetAdapter):
    name: ClassVar[str] = "meld"
    metadata: ClassVar[DatasetMetadata] = DatasetMetadata(
        title="MELD: Multimodal EmotionLines Dataset",
        url="https://affective-meld.github.io/",
        license="GPL-3.0 (annotations, github.com/declare-lab/MELD); clips from the TV series Friends, research use",
        citation=CITATION,
        description="13,708 utterances in 1,433 multi-party dialogues from Friends; 7 emotions and 3 sentiments; "
                    "official train / dev / test split.",
    )
    modalities: ClassVar[tuple[str, ...]] = ("t", "a", "v")
    default_protocol: ClassVar[str] = "meld-7"
    # `bench data download meld`. Upstream publishes no checksums, hence sha256=None (the
    # hash computed on download is kept in a <file>.sha256 sidecar).
    downloads: ClassVar[tuple[Download, ...]] = tuple(
        Download(url=f"https://raw.githubusercontent.com/declare-lab/MELD/master/data/MELD/{s}_sent_emo.csv",
                 filename=f"{s}_sent_emo.csv", sha256=None, group="annotations",
                 description=f"MELD {s} annotations (declare-lab/MELD on GitHub, GPL-3.0)")
        for s in ("train", "dev", "test")
    ) + (
        Download(url="https://huggingface.co/datasets/declare-lab/MELD/resolve/main/MELD.Raw.tar.gz",
                 filename="MELD.Raw.tar.gz", sha256=None, extract="tar.gz", group="media",
                 alternatives=("http://web.eecs.umich.edu/~mihalcea/downloads/MELD.Raw.tar.gz",),
                 inner=("MELD.Raw/train.tar.gz", "MELD.Raw/dev.tar.gz", "MELD.Raw/test.tar.gz"),
                 description="MELD.Raw: the clips (mp4) of all splits, about 10 GB; mirror of "
                             "http://web.eecs.umich.edu/~mihalcea/downloads/MELD.Raw.tar.gz"),
    )

    def __init__(self, root: str | Path | None = None):
        super().__init__(root)
        self.media_report: dict[str, dict] = {}

    def default_root(self) -> Path:
        return default_corpus_root(self.name)

    @classmethod
    def protocols(cls) -> list[Protocol]:
        return [
            Protocol(
                name="meld-7", dataset="meld", label_names=EMOTIONS, splitter=split_by_field("split"),
                description="MELD official train / dev / test split (9989 / 1109 / 2610 utterances), 7 emotions; "
                            "dev is the validation set. Headline: weighted F1 over the test set.",
                headline_metric="weighted_f1", metrics=("weighted_f1", "accuracy", "macro_f1", "ua"),
                citation=CITATION,
            ),
            Protocol(
                name="meld-3", dataset="meld", label_names=SENTIMENTS, splitter=split_by_field("split"),
                label_field="sentiment",
                description="MELD official split, 3 sentiment classes (negative / neutral / positive). "
                            "Headline: weighted F1 over the test set.",
                headline_metric="weighted_f1", metrics=("weighted_f1", "accuracy", "macro_f1", "ua"),
                citation=CITATION,
            ),
            # Its folds repeat utterance ids within and across splits (that is the leak), which the
            # engine accepts only from an as-published protocol marked allow_overlap.
            Protocol(
                name="meld-oversampled-leaky", dataset="meld", label_names=EMOTIONS,
                splitter=oversampled_leaky_split(test=0.2, valid=0.1, seed=42),
                description="As published by the cross-modal attention framework (BLANK-2340): only MELD's train "
                            "split, every class randomly oversampled (with replacement) to the size of the largest "
                            "class, and only then a stratified random 80/20 split; 10% of the 80% is held out for "
                            "validation (the original validated on its test set). Copies of most test utterances "
                            "are in training, so scores are inflated and not comparable with meld-7.",
                headline_metric="accuracy", metrics=("accuracy", "weighted_f1", "macro_f1", "ua"),
                as_published=True, allow_overlap=True,
                citation=CITATION + " Protocol: github.com/BLANK-2340/Emotional-analysis-neural-net.",
            ),
        ]

    # -- files ------------------------------------------------------------------------
    def _csv_dir(self) -> Path:
        root = self.root
        if not root.is_dir():
            raise CorpusNotFoundError(
                f"MELD root {root} does not exist",
                fix="pass --root PATH pointing at the folder with train_sent_emo.csv, dev_sent_emo.csv and "
                    "test_sent_emo.csv (e.g. MELD.Raw/ or data/MELD/ of the MELD release), "
                    "or put that folder at $MERBENCH_DATA/meld")
        for cand in (root, root / "MELD.Raw", root / "data" / "MELD"):
            if all((cand / f"{s}_sent_emo.csv").is_file() for s in SPLITS):
                return cand
        missing = [str(root / f"{s}_sent_emo.csv") for s in SPLITS if not (root / f"{s}_sent_emo.csv").is_file()]
        raise CorpusNotFoundError(
            f"MELD root {root} lacks {', '.join(missing)}",
            fix="download the annotations (github.com/declare-lab/MELD, data/MELD/*_sent_emo.csv, or the "
                "MELD.Raw archive) into that folder, or pass --root PATH to a folder that has them")

    def _media_dir(self, folder: str, file_split: str) -> Path | None:
        root = self.root
        for base in (root, root / "MELD.Raw"):
            for cand in (base / folder, base / file_split / folder):
                if cand.is_dir():
                    return cand
        return None

    def _resolve_media(self, file_split: str, keys: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[str | None, str | None]]:
        folder = SPLITS[file_split][1]
        found_dir = self._media_dir(folder, file_split)
        if found_dir is None:
            self.media_report[file_split] = {"folder": None, "found": 0, "missing": len(keys)}
            return {}
        names = set(os.listdir(found_dir))
        out, missing = {}, []
        for d, u in keys:
            stem = f"dia{d}_utt{u}"
            video = found_dir / f"{stem}.mp4"
            # A wav next to the clip (extracted audio) is preferred for audio; otherwise the
            # audio track of the mp4 itself is the audio source.
            audio = found_dir / f"{stem}.wav" if f"{stem}.wav" in names else video
            if f"{stem}.mp4" not in names:
                missing.append(stem)
            # Missing clips keep their expected path: the extractor then reports them as
            # unreadable media (and --on-bad-media decides) instead of a crash here.
            out[(d, u)] = (str(audio), str(video))
        self.media_report[file_split] = {"folder": str(found_dir), "found": len(keys) - len(missing),
                                         "missing": len(missing), "missing_examples": missing[:5]}
        if missing:
            log.warning("MELD %s: %d of %d clips missing in %s (e.g. %s)", file_split, len(missing), len(keys),
                        found_dir, ", ".join(missing[:3]))
        return out

    # -- load ---------------------------------------------------------------------------
    def load(self) -> Corpus:
        csv_dir = self._csv_dir()
        self.media_report = {}
        utterances: list[Utterance] = []
        any_media = False
        for file_split, (split, _folder) in SPLITS.items():
            path = csv_dir / f"{file_split}_sent_emo.csv"
            rows = read_split_csv(path)
            parsed = []
            seen: dict[tuple[int, int], str] = {}
            for row in rows:
                try:
                    d, u = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
                except ValueError:
                    raise MerbenchError(
                        f"{path}, line {row['_line']}: Dialogue_ID={row['Dialogue_ID']!r}, "
                        f"Utterance_ID={row['Utterance_ID']!r} are not integers",
                        fix="the file is damaged; download the MELD annotations again") from None
                if (d, u) in seen:
                    raise MerbenchError(f"{path}: dialogue {d} utterance {u} appears twice (lines {seen[(d, u)]} "
                                        f"and {row['_line']})", fix="download the MELD annotations again")
                seen[(d, u)] = row["_line"]
                parsed.append((d, u, row))
            parsed.sort(key=lambda x: (x[0], x[1]))
            media = self._resolve_media(file_split, [(d, u) for d, u, _ in parsed])
            any_media = any_media or bool(media)
            for d, u, row in parsed:
                audio, video = media.get((d, u), (None, None))
                meta = {
                    "split": split,
                    "sentiment": clean_text(row["Sentiment"]).lower(),
                    "season": _int_or_none(row.get("Season")),
                    "episode": _int_or_none(row.get("Episode")),
                    "start": clean_text(row.get("StartTime", "")),
                    "end": clean_text(row.get("EndTime", "")),
                    "start_s": parse_time(row.get("StartTime", "")),
                    "end_s": parse_time(row.get("EndTime", "")),
                }
                utterances.append(Utterance(
                    uid=f"{file_split}/dia{d}_utt{u}", dialogue_id=f"{file_split}/dia{d}", turn=u,
                    speaker=clean_text(row["Speaker"]), text=clean_text(row["Utterance"]),
                    label=clean_text(row["Emotion"]).lower(), audio_path=audio, video_path=video, meta=meta,
                ))
        corpus = Corpus(self.name, utterances, root=self.root)
        # Text only unless the MELD.Raw clip folders are here (the engine then refuses a/v clearly).
        corpus.modalities = ("t", "a", "v") if any_media else ("t",)
        return corpus


def _int_or_none(s: str | None) -> int | None:
    try:
        return int(str(s).strip())
    except (TypeError, ValueError):
        return None


def oversampled_leaky_split(test: float = 0.2, valid: float = 0.1, seed: int = 42, source: str = "train"):
    """The leaky procedure of BLANK-2340/Emotional-analysis-neural-net, as a splitter.

    Takes the utterances of MELD's ``source`` split only; random oversampling as imblearn's
    RandomOverSampler (each class keeps its utterances and draws copies with replacement until it
    has as many as the largest class); then, per class, a random ``test`` share of the oversampled
    rows is the test split and ``valid`` of the rest the validation split. Ids repeat within and
    across the splits: that is the published leak, kept on purpose. Seeded; the original's exact
    rows (its own spreadsheet row order and numpy / sklearn random streams) cannot be recovered.
    """
    import random

    from merbench.protocols import Fold

    def splitter(utts):
        by_class: dict[str, list[str]] = {}
        for u in sorted(utts, key=lambda u: u.uid):
            if u.meta.get("split") == source and u.label:
                by_class.setdefault(u.label, []).append(u.uid)
        if not by_class:
            raise MerbenchError(f"meld-oversampled-leaky: no labelled utterance has split={source!r}",
                                fix="load MELD with its official train_sent_emo.csv")
        rng = random.Random(seed)
        largest = max(len(ids) for ids in by_class.values())
        parts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
        for label in sorted(by_class):
            ids = by_class[label]
            rows = ids + rng.choices(ids, k=largest - len(ids))
            rng.shuffle(rows)
            n_test = round(len(rows) * test)
            rest = rows[n_test:]
            n_valid = round(len(rest) * valid)
            parts["test"] += rows[:n_test]
            parts["valid"] += rest[:n_valid]
            parts["train"] += rest[n_valid:]
        return [Fold("oversampled-leaky", *(tuple(sorted(parts[s])) for s in ("train", "valid", "test")))]

    return splitter
