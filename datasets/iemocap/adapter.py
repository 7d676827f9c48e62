"""IEMOCAP (Interactive Emotional Dyadic Motion Capture): 5 sessions of dyadic dialogues.

Two sources, usable together (see README.md):

- annotation files (what ``shared_data()/iemocap`` holds): the 6-way label set and
  transcripts of MERTools (``merbench/``), the 4-class session CSVs
  (``sessions_4class/``) and COSMIC's pickle (``cosmic/iemocap.pkl``: dialogue order
  and the 6-way train / valid / test dialogue lists);
- the official release (``Session{1..5}/dialog/EmoEvaluation/*.txt``,
  ``dialog/transcriptions/*.txt``, ``sentences/wav/``, ``dialog/avi/``): times,
  transcripts, labels and media.

With annotation files, the utterance set and labels are theirs (7433 utterances, the
set ERC papers use); with only the release, every evaluated utterance is kept with its
EmoEvaluation label (xxx, oth, ... included; protocols select their classes).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from merbench.corpus import Corpus, Utterance, named_rows
from merbench.corpus_text import clean_text, decode_bytes
from merbench.errors import CorpusNotFoundError, MerbenchError
from merbench.interfaces import DatasetAdapter, DatasetMetadata
from merbench.paths import default_corpus_root
from merbench.protocols import Protocol, leave_one_group_out, random_utterance_split, split_by_field
from merbench.safe_pickle import safe_load, safe_load_npz


log = logging.getLogger(__name__)

LABELS6 = ("hap", "sad", "neu", "ang", "exc", "fru")  # index order of COSMIC and MERTools' label_6way
LABELS4 = ("ang", "hap", "neu", "sad")
LABEL4_OF_CODE = {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"}
NPZ4_NAMES = ("hap", "sad", "neu", "ang")  # index order of MERTools' label_4way

# COSMIC's held-out validation dialogues (iemocap.pkl, 6th item). Used only when the
# pickle is absent, so that a bare official release gets the same iemocap-6 split;
# the tests check this list against the pickle.
COSMIC_VALID_DIALOGUES = (
    "Ses01M_impro01", "Ses01M_script03_1", "Ses02F_impro02", "Ses02F_impro07", "Ses02M_script01_2",
    "Ses03F_impro01", "Ses03M_impro02", "Ses03M_impro08a", "Ses03M_script02_2", "Ses03M_script03_2",
    "Ses04F_impro07", "Ses04F_script02_1",
)

ANNOTATION_FILES = {
    "label6": "merbench/label_6way.npz",
    "label4": "merbench/label_4way.npz",
    "transcripts": "merbench/transcription-engchi-polish.csv",
    "cosmic": "cosmic/iemocap.pkl",
}

CITATION = ("Busso, Bulut, Lee, Kazemzadeh, Mower, Kim, Chang, Lee, Narayanan. IEMOCAP: Interactive emotional "
            "dyadic motion capture database. Language Resources and Evaluation 42(4), 2008.")
COSMIC_CITATION = ("Ghosal, Majumder, Gelbukh, Mihalcea, Poria. COSMIC: COmmonSense knowledge for eMotion "
                   "Identification in Conversations. Findings of EMNLP 2020 (IEMOCAP split of DialogueRNN).")

_UID = re.compile(r"^(Ses0?(\d))([FM])_(.+)_([FM])(\d+)(\w*)$")
_EMO_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\S+)\s+(\S+)\s+\[\s*([-\d.]+),\s*([-\d.]+),\s*([-\d.]+)\s*\]")
_TRANS_LINE = re.compile(r"^(Ses\S+)\s+\[[^\]]*\]:\s?(.*)$")


def dialogue_of(uid: str) -> str:
    return uid.rsplit("_", 1)[0]


def session_of(uid: str) -> int:
    m = re.match(r"^Ses0?(\d)", uid)
    if not m:
        raise MerbenchError(f"IEMOCAP utterance id {uid!r} does not start with SesNN",
                            fix="utterance ids look like Ses01F_impro01_F000")
    return int(m.group(1))


def speaker_of(uid: str) -> tuple[str, int]:
    """('F', 12) for Ses01F_impro01_F012: the speaking actor's letter and their turn number."""
    last = uid.rsplit("_", 1)[-1]
    m = re.match(r"^([FM])(\d+)", last)
    if not m:
        return last[:1] or "?", 10**6
    return m.group(1), int(m.group(2))


@dataclass
class JoinReport:
    """How the turn order was obtained (see README: turn order)."""

    source: str = ""  # "start-time", "cosmic", "fallback"
    matched: int = 0
    unmatched_corpus: int = 0  # utterances placed by the fallback rule
    unmatched_cosmic: int = 0  # COSMIC sentences that matched no utterance
    dialogues_fallback: list[str] = field(default_factory=list)


@dataclass
class _Rec:
    uid: str
    label: str | None = None
    text: str | None = None
    start: float | None = None
    end: float | None = None
    vad: tuple[float, float, float] | None = None
    label4: str | None = None
    label6: str | None = None
    code: str | None = None  # the release's EmoEvaluation label
    text_key: str = ""


def _norm_key(s: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", clean_text(s).casefold()).strip()


class IEMOCAPDataset(DatasetAdapter):
    name: ClassVar[str] = "iemocap"
    metadata: ClassVar[DatasetMetadata] = DatasetMetadata(
        title="IEMOCAP: Interactive Emotional Dyadic Motion Capture database",
        url="https://sail.usc.edu/iemocap/",
        license="USC SAIL release agreement (research use; request access from the authors)",
        citation=CITATION,
        description="About 12 h of dyadic improvised and scripted sessions by 10 actors (5 sessions); "
                    "categorical and dimensional labels per utterance.",
    )
    modalities: ClassVar[tuple[str, ...]] = ("t", "a", "v")
    default_protocol: ClassVar[str] = "iemocap-6"

    def __init__(self, root: str | Path | None = None):
        super().__init__(root)
        self.join_report = JoinReport()
        self.media_report: dict[str, int] = {}
        self.sources: dict[str, str] = {}

    def default_root(self) -> Path:
        return default_corpus_root(self.name)

    @classmethod
    def protocols(cls) -> list[Protocol]:
        fold_note = ("mean over the 5 held-out sessions of each fold's metrics (WA = accuracy, UA = unweighted "
                     "accuracy, weighted F1); per-class scores and the confusion matrix from the pooled "
                     "predictions of all 5 folds")
        return [
            Protocol(
                name="iemocap-6", dataset="iemocap", label_names=LABELS6, splitter=split_by_field("split6"),
                description="6 classes (hap, sad, neu, ang, exc, fru), 7433 utterances, the ERC split of "
                            "DialogueRNN / COSMIC: Sessions 1-4 train with COSMIC's 12 held-out validation "
                            "dialogues, Session 5 test (1623 utterances). Headline: weighted F1.",
                headline_metric="weighted_f1", metrics=("weighted_f1", "accuracy", "macro_f1", "ua"),
                citation=COSMIC_CITATION,
            ),
            Protocol(
                name="iemocap-4-loso", dataset="iemocap", label_names=LABELS4,
                splitter=leave_one_group_out("session", valid_fraction=0.1), label_field="label4",
                description="4 classes (ang, hap with exc merged in, neu, sad), 5531 utterances; 5-fold "
                            "leave-one-session-out (speaker independent). In each fold 10% of the training "
                            "sessions' dialogues are held out for validation (never from the test session). "
                            "Headline: weighted F1; WA / UA / weighted F1 reported.",
                headline_metric="weighted_f1", metrics=("accuracy", "ua", "weighted_f1"),
                fold_combination=fold_note, citation=CITATION,
            ),
            Protocol(
                name="iemocap-4-random8020", dataset="iemocap", label_names=LABELS4,
                splitter=random_utterance_split(test=0.2, valid=0.08, seed=42), label_field="label4",
                description="As published by the multi-focus attention BLSTM paper: 4 classes, 5531 utterances, a "
                            "random 80/20 utterance split (seed 42) ignoring speakers and dialogues; 10% of the "
                            "80% (8% of all) is carved out for validation. Speakers and dialogues appear in "
                            "both train and test, so scores are optimistic and not comparable with "
                            "iemocap-4-loso.",
                headline_metric="weighted_f1", metrics=("accuracy", "ua", "weighted_f1"),
                as_published=True, citation=CITATION,
            ),
        ]

    # -- discovery ----------------------------------------------------------------------
    def _release_root(self) -> Path | None:
        for cand in (self.root, self.root / "IEMOCAP_full_release", self.root / "IEMOCAP"):
            if any((cand / f"Session{n}" / "dialog" / "EmoEvaluation").is_dir() for n in range(1, 6)):
                return cand
        return None

    def _ann(self, key: str) -> Path | None:
        p = self.root / ANNOTATION_FILES[key]
        return p if p.is_file() else None

    def _sessions_4class(self) -> list[Path] | None:
        paths = [self.root / "sessions_4class" / f"Session{n}.csv" for n in range(1, 6)]
        present = [p for p in paths if p.is_file()]
        if not present:
            return None
        if len(present) != len(paths):
            missing = [str(p) for p in paths if not p.is_file()]
            raise CorpusNotFoundError(f"IEMOCAP: {', '.join(missing)} missing (the other sessions are there)",
                                      fix="copy all five sessions_4class/Session{1..5}.csv into the root")
        return paths

    # -- readers ------------------------------------------------------------------------
    def _read_release(self, rel: Path, recs: dict[str, _Rec], create: bool) -> int:
        """Times, labels and transcripts of the official release. Returns utterances read."""
        n = 0
        for s in range(1, 6):
            sess = rel / f"Session{s}" / "dialog"
            emo_dir = sess / "EmoEvaluation"
            if not emo_dir.is_dir():
                log.warning("IEMOCAP: %s is missing; session %d is taken from the other sources only", emo_dir, s)
                continue
            for f in sorted(emo_dir.glob("*.txt")):
                if f.name.startswith("._"):
                    continue  # macOS resource forks shipped in some copies
                for line in decode_bytes(f.read_bytes()).splitlines():
                    m = _EMO_LINE.match(line)
                    if not m:
                        continue
                    start, end, uid, code, v, a, d = m.groups()
                    if uid not in recs:
                        if not create:
                            continue
                        recs[uid] = _Rec(uid, label=code)  # release only: the label is the code
                    r = recs[uid]
                    r.start, r.end = float(start), float(end)
                    r.vad = (float(v), float(a), float(d))
                    r.code = code
                    n += 1
            tr_dir = sess / "transcriptions"
            for f in sorted(tr_dir.glob("*.txt")) if tr_dir.is_dir() else []:
                if f.name.startswith("._"):
                    continue
                for line in decode_bytes(f.read_bytes()).splitlines():
                    m = _TRANS_LINE.match(line.strip())
                    if m and m.group(1) in recs:
                        recs[m.group(1)].text = clean_text(m.group(2))
        return n

    def _read_transcripts_csv(self, path: Path) -> dict[str, str]:
        text = decode_bytes(path.read_bytes())
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or "name" not in reader.fieldnames or "english" not in reader.fieldnames:
            raise MerbenchError(f"{path}: expected columns name, english (found {reader.fieldnames})",
                                fix="use MERTools' iemocap-process/transcription-engchi-polish.csv")
        return {row["name"].strip(): clean_text(row["english"]) for row in named_rows(reader, path)}

    def _read_sessions_4class(self, paths: list[Path]) -> dict[str, str]:
        out: dict[str, str] = {}
        for p in paths:
            reader = csv.DictReader(io.StringIO(decode_bytes(p.read_bytes()), newline=""))
            if not reader.fieldnames or not {"Utterance_ID", "Emotion"} <= set(reader.fieldnames):
                raise MerbenchError(f"{p}: expected columns Utterance_ID, Emotion (found {reader.fieldnames})",
                                    fix="use the 4-class IEMOCAP session CSVs (Utterance_ID, Text, Emotion)")
            for i, row in enumerate(named_rows(reader, p), start=2):
                uid, emo = row["Utterance_ID"].strip(), row["Emotion"].strip().lower()
                lab = LABEL4_OF_CODE.get(emo)
                if lab is None:
                    raise MerbenchError(f"{p}, line {i}: emotion {emo!r} is not one of ang, hap, exc, neu, sad",
                                        fix="use the 4-class IEMOCAP session CSVs")
                out[uid] = lab
        return out

    # -- ordering -----------------------------------------------------------------------
    def _order_by_cosmic(self, recs: dict[str, _Rec], cosmic_sents: dict, cosmic_speakers: dict) -> dict[str, float]:
        """Position of each utterance in COSMIC's dialogue order, joined on sentence text
        (and speaker) within a dialogue. Unmatched utterances get no entry."""
        by_dia: dict[str, list[str]] = {}
        for uid in recs:
            by_dia.setdefault(dialogue_of(uid), []).append(uid)
        pos: dict[str, float] = {}
        rep = self.join_report
        for dia, sents in cosmic_sents.items():
            uids = by_dia.get(dia, [])
            spk = list(cosmic_speakers.get(dia, [])) if cosmic_speakers else []
            pools: dict[tuple[str, str], list[str]] = {}
            for u in uids:
                pools.setdefault((speaker_of(u)[0], recs[u].text_key), []).append(u)
            last_no: dict[str, int] = {}
            for i, s in enumerate(sents):
                letter = str(spk[i]) if i < len(spk) else None
                key = _norm_key(s)
                cands = []
                for (sp, k), lst in pools.items():
                    if k == key and (letter is None or sp == letter):
                        cands.extend(u for u in lst if u not in pos)
                if not cands:
                    rep.unmatched_cosmic += 1
                    continue
                # Within one speaker, turn numbers grow with time: take the first unused
                # utterance after that speaker's last match (repeated "Yeah." lines).
                cands.sort(key=lambda u: speaker_of(u)[1])
                after = [u for u in cands if speaker_of(u)[1] > last_no.get(speaker_of(u)[0], -1)]
                pick = (after or cands)[0]
                sp = speaker_of(pick)[0]
                last_no[sp] = speaker_of(pick)[1]
                pos[pick] = float(i)
                rep.matched += 1
        return pos

    @staticmethod
    def _turns(uids: list[str], pos: dict[str, float]) -> list[str]:
        """Order one dialogue: known positions first-class; an unplaced utterance goes right
        after the same speaker's latest placed utterance with a smaller turn number
        (or at the start), ties broken by turn number then speaker."""
        def key(u: str):
            if u in pos:
                return (pos[u], 0, 0, "")
            letter, no = speaker_of(u)
            anchors = [pos[v] for v in uids if v in pos and speaker_of(v)[0] == letter and speaker_of(v)[1] < no]
            return (max(anchors) if anchors else -1.0, 1, no, letter)

        return sorted(uids, key=key)

    # -- load -----------------------------------------------------------------------------
    def load(self) -> Corpus:
        root = self.root
        if not root.is_dir():
            raise CorpusNotFoundError(
                f"IEMOCAP root {root} does not exist",
                fix="pass --root PATH pointing at IEMOCAP_full_release/ (with Session1..5) or at a folder with "
                    "the annotation files (merbench/label_6way.npz, merbench/transcription-engchi-polish.csv, "
                    "sessions_4class/Session{1..5}.csv, cosmic/iemocap.pkl), or put it at $MERBENCH_DATA/iemocap")
        self.join_report = JoinReport()
        self.sources = {}
        rel = self._release_root()
        label6_path = self._ann("label6")
        if rel is None and label6_path is None:
            raise CorpusNotFoundError(
                f"IEMOCAP root {root} has neither the official release (Session1..5/dialog/EmoEvaluation/) "
                f"nor the annotation file {root / ANNOTATION_FILES['label6']}",
                fix="pass --root PATH to IEMOCAP_full_release/ or to a folder holding merbench/label_6way.npz "
                    "and its companions (see datasets/iemocap/README.md)")

        recs: dict[str, _Rec] = {}
        if label6_path is not None:
            # The label set ERC papers use: 7433 utterances, 6 classes.
            table = safe_load_npz(label6_path).get("whole_corpus")
            if table is None:
                raise MerbenchError(f"{label6_path} has no 'whole_corpus' array", fix="use MERTools' label_6way.npz")
            for uid, v in table.item().items():
                idx = int(v["emo"])
                if not 0 <= idx < len(LABELS6):
                    raise MerbenchError(f"{label6_path}: utterance {uid} has emotion index {idx}, expected 0..5",
                                        fix="use MERTools' label_6way.npz (hap 0, sad 1, neu 2, ang 3, exc 4, fru 5)")
                recs[str(uid)] = _Rec(str(uid), label=LABELS6[idx], label6=LABELS6[idx])
            self.sources["labels"] = str(label6_path)

        # 4-class set: the session CSVs, else MERTools' label_4way.npz, else (release only)
        # the EmoEvaluation code with exc merged into hap.
        four: dict[str, str] | None = None
        s4 = self._sessions_4class()
        if s4 is not None:
            four = self._read_sessions_4class(s4)
            self.sources["label4"] = str(s4[0].parent)
        elif self._ann("label4") is not None:
            t4 = safe_load_npz(self._ann("label4"))["whole_corpus"].item()
            four = {str(u): NPZ4_NAMES[int(v["emo"])] for u, v in t4.items()}
            self.sources["label4"] = str(self._ann("label4"))
        elif label6_path is not None and rel is None:
            raise CorpusNotFoundError(
                f"IEMOCAP root {root} lacks the 4-class set: {root / 'sessions_4class' / 'Session1.csv'} "
                f"(..Session5.csv) or {root / ANNOTATION_FILES['label4']}",
                fix="copy sessions_4class/Session{1..5}.csv into the root (see datasets/iemocap/README.md)")
        if four is not None and recs:
            extra = [u for u in four if u not in recs]
            for u in extra:  # 4-class utterances outside the 6-way set still belong to the corpus
                recs[u] = _Rec(u)

        if rel is not None:
            n = self._read_release(rel, recs, create=not recs)
            self.sources["release"] = str(rel)
            if n == 0:
                raise CorpusNotFoundError(f"IEMOCAP release at {rel}: no utterance line in any "
                                          "Session*/dialog/EmoEvaluation/*.txt",
                                          fix="check that the EmoEvaluation files are the original ones")
        tr_path = self._ann("transcripts")
        csv_text = self._read_transcripts_csv(tr_path) if tr_path else {}
        if tr_path:
            self.sources["transcripts"] = str(tr_path)
        no_text = []
        for uid, r in recs.items():
            if r.text is None:
                r.text = csv_text.get(uid)
            if r.text is None:
                no_text.append(uid)
        if no_text and rel is None:
            raise CorpusNotFoundError(
                f"IEMOCAP: no transcript for {len(no_text)} utterances (e.g. {no_text[0]}); "
                f"{root / ANNOTATION_FILES['transcripts']} is {'incomplete' if tr_path else 'missing'}",
                fix="copy merbench/transcription-engchi-polish.csv into the root, or use the official release")
        if no_text:
            log.warning("IEMOCAP: %d utterances have no transcript (e.g. %s); their text is empty",
                        len(no_text), no_text[0])
        for r in recs.values():
            r.text = r.text or ""
            r.text_key = _norm_key(r.text)
            if four is not None:
                r.label4 = four.get(r.uid)
            else:  # no 4-class file: the release's code (exc merged into hap), else the 6-way label
                src = r.code if r.code is not None else r.label
                r.label4 = LABEL4_OF_CODE.get(src) if src is not None else None

        # 6-way split by dialogue, from COSMIC's lists when present.
        cosmic_path = self._ann("cosmic")
        split_of: dict[str, str] = {}
        cosmic = None
        if cosmic_path is not None:
            cosmic = safe_load(cosmic_path)
            if not (isinstance(cosmic, (list, tuple)) and len(cosmic) == 6):
                raise MerbenchError(f"{cosmic_path}: expected COSMIC's 6-item IEMOCAP pickle "
                                    "(speakers, labels, sentences, train ids, test ids, valid ids)",
                                    fix="use COSMIC/feature-extraction/iemocap/iemocap.pkl")
            for split, ids in (("train", cosmic[3]), ("test", cosmic[4]), ("valid", cosmic[5])):
                for d in ids:
                    split_of[str(d)] = split
            self.sources["split6"] = str(cosmic_path)
        else:
            self.sources["split6"] = "built-in COSMIC_VALID_DIALOGUES + Session 5 test"

        def split6(uid: str) -> str:
            d = dialogue_of(uid)
            if d in split_of:
                return split_of[d]
            if session_of(uid) == 5:
                return "test"
            return "valid" if d in COSMIC_VALID_DIALOGUES else "train"

        # Turn order: release start times, else COSMIC's order joined on text, else fallback.
        by_dia: dict[str, list[str]] = {}
        for uid in recs:
            by_dia.setdefault(dialogue_of(uid), []).append(uid)
        order: dict[str, list[str]] = {}
        rep = self.join_report
        if rel is not None and all(r.start is not None for r in recs.values()):
            rep.source = "start-time"
            for d, uids in by_dia.items():
                order[d] = sorted(uids, key=lambda u: (recs[u].start, speaker_of(u)[1], u))
        else:
            pos: dict[str, float] = {}
            if rel is not None:  # some utterances lack release times: use the times that exist
                pos = {u: r.start for u, r in recs.items() if r.start is not None}
                rep.source = "start-time+fallback"
            elif cosmic is not None:
                pos = self._order_by_cosmic(recs, cosmic[2], cosmic[0])
                rep.source = "cosmic"
                log.info("IEMOCAP: %d utterances joined to COSMIC's dialogue order by text, %d not",
                         rep.matched, len(recs) - rep.matched)
            else:
                rep.source = "fallback"
            for d, uids in by_dia.items():
                order[d] = self._turns(uids, pos)
                unplaced = [u for u in uids if u not in pos]
                rep.unmatched_corpus += len(unplaced)
                if unplaced:
                    rep.dialogues_fallback.append(d)

        media = self._media(rel, by_dia)
        utterances: list[Utterance] = []
        for d in sorted(order):
            for turn, uid in enumerate(order[d]):
                r = recs[uid]
                letter = speaker_of(uid)[0]
                sess = session_of(uid)
                meta: dict = {"session": sess, "split6": split6(uid)}
                if r.label4 is not None:
                    meta["label4"] = r.label4
                if r.start is not None:
                    meta["start"], meta["end"] = r.start, r.end
                if r.vad is not None:
                    meta["valence"], meta["arousal"], meta["dominance"] = r.vad
                audio, video, dia_video = media.get(uid, (None, None, None))
                if dia_video is not None:
                    meta["dialogue_video"] = dia_video
                utterances.append(Utterance(
                    uid=uid, dialogue_id=d, turn=turn, speaker=f"Ses{sess:02d}_{letter}", text=r.text,
                    label=r.label, audio_path=audio, video_path=video, meta=meta,
                ))
        corpus = Corpus(self.name, utterances, root=root)
        mods = ["t"]
        if self.media_report.get("wav_found"):
            mods.append("a")
        if self.media_report.get("clip_found"):
            mods.append("v")
        corpus.modalities = tuple(mods)
        return corpus

    def prepare(self, progress: bool = True) -> None:
        """Cut one video clip per utterance from the release's dialogue videos by the EmoEvaluation
        times, into ``Session{n}/sentences/avi/<dialogue>/<uid>.avi`` (PyAV: no ffmpeg program;
        existing clips are kept), so that the video modality is offered; then validate by loading."""
        from merbench.features.media import cut_clip

        corpus = self.load()
        rel = self._release_root()
        todo = [u for u in corpus.utterances if u.meta.get("dialogue_video") and u.meta.get("start") is not None
                and not (u.video_path and Path(u.video_path).is_file())]
        for i, u in enumerate(todo):
            dst = rel / f"Session{session_of(u.uid)}" / "sentences" / "avi" / dialogue_of(u.uid) / f"{u.uid}.avi"
            cut_clip(u.meta["dialogue_video"], dst, float(u.meta["start"]), float(u.meta["end"]))
            if progress and (i + 1) % 200 == 0:
                log.warning("IEMOCAP: %d of %d utterance clips cut", i + 1, len(todo))
        if todo:
            self.load()

    def _media(self, rel: Path | None, by_dia: dict[str, list[str]]) -> dict[str, tuple[str | None, str | None, str | None]]:
        """(audio, video clip, dialogue video) per utterance.

        Audio: ``Session{n}/sentences/wav/<dialogue>/<uid>.wav`` (official release).
        The release's video is one file per dialogue with both actors
        (``Session{n}/dialog/avi/DivX/<dialogue>.avi``); the video extractors read a whole
        file, so it is not an utterance's ``video_path``: it goes to ``meta["dialogue_video"]``
        (with ``meta["start"]`` / ``meta["end"]``). Utterance clips cut from it (see
        README.md) in ``Session{n}/sentences/avi/<dialogue>/<uid>.avi`` (or ``.mp4``)
        become ``video_path``.
        """
        self.media_report = {"wav_found": 0, "wav_missing": 0, "clip_found": 0, "clip_missing": 0,
                             "dialogue_avi_found": 0, "dialogue_avi_missing": 0}
        out: dict[str, tuple[str | None, str | None, str | None]] = {}
        if rel is None:
            return out
        sessions = [rel / f"Session{s}" for s in range(1, 6)]
        wav_any = any((s / "sentences" / "wav").is_dir() for s in sessions)
        clip_any = any((s / "sentences" / "avi").is_dir() for s in sessions)
        avi_any = any((s / "dialog" / "avi").is_dir() for s in sessions)
        rep = self.media_report
        for d, uids in by_dia.items():
            sess = rel / f"Session{session_of(uids[0])}"
            wav_dir = sess / "sentences" / "wav" / d
            clip_dir = sess / "sentences" / "avi" / d
            wavs = set(os.listdir(wav_dir)) if wav_dir.is_dir() else set()
            clips = set(os.listdir(clip_dir)) if clip_dir.is_dir() else set()
            dia_video = None
            if avi_any:
                cands = [sess / "dialog" / "avi" / "DivX" / f"{d}.avi", sess / "dialog" / "avi" / f"{d}.avi"]
                dia_video = next((c for c in cands if c.is_file()), None)
                rep["dialogue_avi_found" if dia_video else "dialogue_avi_missing"] += len(uids)
            for u in uids:
                audio = clip = None
                if wav_any:
                    # A missing file keeps its expected path: the extractor reports it as
                    # unreadable media (and --on-bad-media decides) instead of a crash here.
                    audio = wav_dir / f"{u}.wav"
                    rep["wav_found" if audio.name in wavs else "wav_missing"] += 1
                if clip_any:
                    clip = next((clip_dir / f"{u}{ext}" for ext in (".avi", ".mp4") if f"{u}{ext}" in clips),
                                clip_dir / f"{u}.avi")
                    rep["clip_found" if clip.name in clips else "clip_missing"] += 1
                out[u] = tuple(None if x is None else str(x) for x in (audio, clip, dia_video))  # type: ignore[assignment]
        for kind in ("wav", "clip", "dialogue_avi"):
            if rep[f"{kind}_found"] and rep[f"{kind}_missing"]:
                log.warning("IEMOCAP: %d utterances have no %s file under %s", rep[f"{kind}_missing"], kind, rel)
        if rep["dialogue_avi_found"] and not rep["clip_found"]:
            log.warning("IEMOCAP: dialogue videos found but no utterance clips (Session*/sentences/avi/); the video "
                        "modality needs clips cut by the EmoEvaluation times (see datasets/iemocap/README.md)")
        return out
