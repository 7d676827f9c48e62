"""The data model every corpus adapter produces: utterances grouped in dialogues."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

MODALITIES = ("t", "a", "v")
MODALITY_NAMES = {"t": "text", "a": "audio", "v": "video"}

# The only annotations a feature extractor is handed: where an utterance lies in its media
# (MELD's start / end times, IEMOCAP's dialogue video with the utterance's start / end).
# Everything else (labels, sentiment, split, session, dimensional ratings) is withheld, so
# no extractor plugin can leak labels into the feature cache.
EXTRACTOR_META_KEYS = ("start", "end", "start_s", "end_s", "dialogue_video")


@dataclass(frozen=True)
class Utterance:
    """One utterance. ``uid`` is unique in the corpus and independent of any protocol.

    ``label`` is the corpus' own emotion name (protocols may map or merge it); it is
    ``None`` in every view the engine hands a method for prediction.
    ``meta`` holds other annotations (session, sentiment, split, ...).
    """

    uid: str
    dialogue_id: str
    turn: int
    speaker: str
    text: str = ""
    label: str | None = None
    audio_path: str | None = None
    video_path: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def without_labels(self) -> "Utterance":
        """A copy with the label and all annotations removed (what a test view holds)."""
        return replace(self, label=None, meta={})

    def for_extraction(self) -> "Utterance":
        """A copy without the label and with only the media timing of ``meta`` (what a
        feature extractor is handed)."""
        return replace(self, label=None, meta={k: self.meta[k] for k in EXTRACTOR_META_KEYS if k in self.meta})


@dataclass
class Corpus:
    """All utterances of a corpus, in dialogue order (dialogue, then turn)."""

    name: str
    utterances: list[Utterance]
    root: Path | None = None
    modalities: tuple[str, ...] = MODALITIES

    def __post_init__(self) -> None:
        self._by_id = {}
        for i, u in enumerate(self.utterances):
            if u.uid in self._by_id:
                raise ValueError(f"corpus {self.name}: duplicate utterance id {u.uid!r} (rows {self._by_id[u.uid]} and {i})")
            self._by_id[u.uid] = i
        # Every adapter's load() ends here, so no corpus reaches a method with merged dialogues.
        check_dialogue_turns(self.utterances, self.name)

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, uid: str) -> Utterance:
        return self.utterances[self._by_id[uid]]

    def __contains__(self, uid: str) -> bool:
        return uid in self._by_id

    def select(self, uids: Iterable[str]) -> list[Utterance]:
        return [self[u] for u in uids]

    def dialogues(self) -> dict[str, list[Utterance]]:
        out: dict[str, list[Utterance]] = {}
        for u in self.utterances:
            out.setdefault(u.dialogue_id, []).append(u)
        for d in out.values():
            d.sort(key=lambda u: u.turn)
        return out


# -- integrity ----------------------------------------------------------------------

COMPOSITE_ID_FIX = ("a dialogue id must name one conversation in the whole corpus: compose it from every "
                    "field that identifies a conversation (e.g. episode + dialogue number, or split + dialogue "
                    "number where numbers restart per split)")
SHOWN = 3  # offenders named in an error


def repeated_turns(utterances: Iterable[Utterance]) -> str | None:
    """What is wrong when two utterances share a (dialogue, turn) pair, else None. Such pairs mean
    the dialogue id is not unique per conversation (e.g. it restarts in every episode)."""
    first: dict[tuple[str, int], str] = {}
    repeats: list[tuple[str, int, str, str]] = []
    for u in utterances:
        key = (u.dialogue_id, u.turn)
        if key in first:
            repeats.append((u.dialogue_id, u.turn, first[key], u.uid))
        else:
            first[key] = u.uid
    if not repeats:
        return None
    shown = "; ".join(f"dialogue {d!r} turn {t}: {a!r} and {b!r}" for d, t, a, b in repeats[:SHOWN])
    return (f"{len(repeats)} repeated (dialogue, turn) pair(s) in {len({d for d, *_ in repeats})} dialogue(s), "
            f"so several conversations share a dialogue id; first: {shown}")


def dialogues_across_splits(split_of: dict[str, str], utterances: Iterable[Utterance]) -> str | None:
    """``split_of``: uid -> split. What is wrong when a dialogue has turns in two splits, else None:
    context (previous turns, dialogue graphs) would cross from train into test."""
    seen: dict[str, tuple[str, str]] = {}  # dialogue -> (split, uid) of its first member
    spanning: dict[str, str] = {}
    for u in utterances:
        s = split_of.get(u.uid)
        if s is None:
            continue
        if u.dialogue_id not in seen:
            seen[u.dialogue_id] = (s, u.uid)
        elif seen[u.dialogue_id][0] != s and u.dialogue_id not in spanning:
            first_split, first_uid = seen[u.dialogue_id]
            spanning[u.dialogue_id] = f"{first_uid!r} in {first_split}, {u.uid!r} in {s}"
    if not spanning:
        return None
    shown = "; ".join(f"dialogue {d!r}: {v}" for d, v in list(spanning.items())[:SHOWN])
    return f"{len(spanning)} dialogue(s) span more than one split; first: {shown}"


def check_dialogue_turns(utterances: Iterable[Utterance], corpus: str) -> None:
    from .errors import ConfigError

    problem = repeated_turns(utterances)
    if problem:
        raise ConfigError(f"corpus {corpus}: {problem}", fix=COMPOSITE_ID_FIX)


def parse_modalities(spec: str | Iterable[str] | None, allowed: Iterable[str] = MODALITIES) -> tuple[str, ...]:
    """``"t,a,v"`` / ``"ta"`` / ``["t", "a"]`` -> ``("t", "a")`` in canonical order."""
    from .errors import ConfigError

    if spec is None:
        return tuple(m for m in MODALITIES if m in allowed)
    if isinstance(spec, str):
        items = [s.strip() for s in spec.replace(",", " ").replace("+", " ").split()]
        if len(items) == 1 and len(items[0]) > 1 and set(items[0]) <= set(MODALITIES):
            items = list(items[0])
    else:
        items = list(spec)
    long = {v: k for k, v in MODALITY_NAMES.items()}
    items = [long.get(i, i) for i in items]
    bad = [i for i in items if i not in MODALITIES]
    if bad or not items:
        raise ConfigError(f"bad modalities {spec!r}", fix="use a comma-separated subset of t (text), a (audio), v (video), e.g. --modalities t,a")
    return tuple(m for m in MODALITIES if m in items)


def modality_key(mods: Iterable[str]) -> str:
    return "".join(m for m in MODALITIES if m in set(mods))


def named_rows(reader, path) -> Iterable:
    """The rows of a ``csv`` reader; a CSV error (a cell over the size limit, a quote never closed)
    becomes one message naming the file and line instead of a bare ``_csv.Error``."""
    import csv

    from .errors import CorpusNotFoundError

    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            line = getattr(reader, "reader", reader).line_num  # a DictReader's own line_num lags one row
            raise CorpusNotFoundError(f"{path}, line {line}: cannot be read as CSV ({e})",
                                      fix="check that line: a quote opened and never closed makes one huge "
                                          "cell; a cell must stay under 131072 characters") from None
        if isinstance(row, dict) and None in row.values():
            # DictReader fills the cells a short row lacks with None: a file cut mid-row (or a row
            # that lost its delimiters) would otherwise read as empty labels or texts.
            line = reader.line_num
            have = sum(1 for k, v in row.items() if k is not None and v is not None)
            raise CorpusNotFoundError(f"{path}, line {line}: {have} of the header's {len(reader.fieldnames)} "
                                      "fields" + (" (the last line: the file looks cut short)"
                                                  if _at_end(rows) else ""),
                                      fix="restore the file (copy it again), or give the row all its fields") from None
        yield row


def _at_end(rows) -> bool:
    try:
        next(rows)
    except StopIteration:
        return True
    except Exception:  # noqa: BLE001 - only asking whether more follows
        return False
    return False
