"""Named, versioned splits built from a corpus, with a manifest and its hash.

A protocol decides which utterances take part, which label set is used (mapping or
merging the corpus labels), and how utterances fall into train / valid / test,
in one or more folds. The engine stores the manifest hash in every result, and the
leaderboard groups by protocol name.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .corpus import COMPOSITE_ID_FIX, Corpus, Utterance, dialogues_across_splits
from .errors import ConfigError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Fold:
    name: str
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]

    def ids(self, split: str) -> tuple[str, ...]:
        return getattr(self, split)


@dataclass
class ProtocolSplits:
    """A protocol applied to a corpus: folds of utterance ids plus their gold labels."""

    protocol: "Protocol"
    folds: list[Fold]
    labels: dict[str, int]  # uid -> class index under the protocol's label set

    def manifest(self) -> dict:
        return {
            "protocol": self.protocol.name,
            "version": self.protocol.version,
            "dataset": self.protocol.dataset,
            "label_names": list(self.protocol.label_names),
            "folds": [
                {s: [[uid, self.labels[uid]] for uid in f.ids(s)] for s in SPLITS} | {"name": f.name}
                for f in self.folds
            ],
        }

    @property
    def manifest_hash(self) -> str:
        blob = json.dumps(self.manifest(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def counts(self) -> list[dict[str, int]]:
        return [{s: len(f.ids(s)) for s in SPLITS} for f in self.folds]


Splitter = Callable[[Sequence[Utterance]], list[Fold]]


@dataclass(frozen=True)
class Protocol:
    """A named split rule. ``splitter`` turns the protocol's utterances into folds.

    ``label_map`` maps corpus labels to protocol labels (merging where two corpus labels
    map to one name); utterances whose label is not mapped are left out.
    ``label_field`` reads the label from ``meta`` instead of ``Utterance.label``
    (e.g. MELD's sentiment).
    """

    name: str
    dataset: str
    label_names: tuple[str, ...]
    splitter: Splitter
    version: str = "1"
    description: str = ""
    headline_metric: str = "weighted_f1"
    # What a run computes and the leaderboard shows (names of merbench.metrics.METRICS; empty:
    # every registered metric).
    metrics: tuple[str, ...] = ()
    label_map: dict[str, str] | None = None
    label_field: str | None = None
    as_published: bool = False  # a paper's own (often leaky) protocol, marked in the leaderboard
    # Ids may repeat within and across splits (oversampling before splitting). Only an
    # as-published protocol may say so: it exists to show how much such a leak inflates scores.
    allow_overlap: bool = False
    fold_combination: str = "mean of per-fold metrics; per-class scores and confusion from pooled predictions"
    default_seeds: int = 3
    citation: str = ""

    def __post_init__(self) -> None:
        from .metrics import METRICS

        unknown = [m for m in (self.headline_metric, *self.metrics) if m not in METRICS]
        if unknown:
            raise ConfigError(f"protocol {self.name}: unknown metric(s) {unknown}", fix=f"use names of: {', '.join(METRICS)}")
        if not self.metrics:
            object.__setattr__(self, "metrics", tuple(METRICS))
        elif self.headline_metric not in self.metrics:
            object.__setattr__(self, "metrics", (self.headline_metric, *self.metrics))

    def label_of(self, u: Utterance) -> str | None:
        raw = u.meta.get(self.label_field) if self.label_field else u.label
        if raw is None:
            return None
        raw = str(raw)
        if self.label_map is not None:
            return self.label_map.get(raw)
        return raw if raw in self.label_names else None

    def build(self, corpus: Corpus) -> ProtocolSplits:
        members = [u for u in corpus.utterances if self.label_of(u) is not None]
        if not members:
            raise ConfigError(f"protocol {self.name}: no utterance of corpus {corpus.name} has a label in {self.label_names}")
        index = {n: i for i, n in enumerate(self.label_names)}
        labels = {u.uid: index[self.label_of(u)] for u in members}
        if self.allow_overlap and not self.as_published:
            raise ConfigError(f"protocol {self.name}: allow_overlap is only for as-published (leaky) protocols")
        folds = self.splitter(members)
        for f in folds:
            if self.allow_overlap:
                strays = [u for s in SPLITS for u in f.ids(s) if u not in labels]
                if strays:
                    raise ConfigError(f"protocol {self.name}, fold {f.name}: ids not in the protocol, e.g. {strays[:3]}")
            else:
                check_disjoint(f)
            for s in SPLITS:
                if not f.ids(s):
                    raise ConfigError(f"protocol {self.name}, fold {f.name}: the {s} split is empty")
            # An as-published split may leak on purpose (and is flagged wherever it is shown).
            problem = None if self.as_published else dialogues_across_splits(
                {u: s for s in SPLITS for u in f.ids(s)}, members)
            if problem:
                raise ConfigError(f"corpus {corpus.name}, protocol {self.name}, fold {f.name}: {problem}",
                                  fix=COMPOSITE_ID_FIX)
        return ProtocolSplits(self, folds, labels)


def check_disjoint(fold: Fold) -> None:
    seen: dict[str, str] = {}
    for s in SPLITS:
        for uid in fold.ids(s):
            if uid in seen:
                where = f"twice in {s}" if seen[uid] == s else f"in both {seen[uid]} and {s}"
                raise ConfigError(f"fold {fold.name}: utterance {uid!r} is {where}")
            seen[uid] = s


# -- reusable splitters ------------------------------------------------------------

def split_by_field(field_name: str = "split", names: dict[str, str] | None = None) -> Splitter:
    """Official splits: each utterance's ``meta[field_name]`` says train / valid / test."""
    names = names or {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "test": "test"}

    def splitter(utts: Sequence[Utterance]) -> list[Fold]:
        parts: dict[str, list[str]] = {s: [] for s in SPLITS}
        for u in utts:
            raw = str(u.meta.get(field_name, ""))
            if raw not in names:
                raise ConfigError(f"utterance {u.uid}: {field_name}={raw!r} is not one of {sorted(names)}")
            parts[names[raw]].append(u.uid)
        return [Fold("official", *(tuple(parts[s]) for s in SPLITS))]

    return splitter


def _group_ids(utts: Sequence[Utterance], key: Callable[[Utterance], str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for u in utts:
        groups.setdefault(key(u), []).append(u.uid)
    return groups


def random_dialogue_split(valid: float = 0.1, test: float = 0.2, seed: int = 0) -> Splitter:
    """Seeded split by dialogue (no dialogue crosses splits)."""

    def splitter(utts: Sequence[Utterance]) -> list[Fold]:
        groups = _group_ids(utts, lambda u: u.dialogue_id)
        keys = sorted(groups)
        random.Random(seed).shuffle(keys)
        n = len(keys)
        n_test, n_valid = max(1, round(n * test)), max(1, round(n * valid))
        parts = {"test": keys[:n_test], "valid": keys[n_test:n_test + n_valid], "train": keys[n_test + n_valid:]}
        ids = {s: tuple(uid for k in sorted(parts[s]) for uid in groups[k]) for s in SPLITS}
        return [Fold("random-dialogue", ids["train"], ids["valid"], ids["test"])]

    return splitter


def leave_one_group_out(group_field: str, valid_fraction: float = 0.1, seed: int = 0,
                        valid_unit: str = "dialogue") -> Splitter:
    """One fold per value of ``meta[group_field]``; validation dialogues are drawn from
    the training groups only (never from the held-out group)."""

    def splitter(utts: Sequence[Utterance]) -> list[Fold]:
        groups = _group_ids(utts, lambda u: str(u.meta[group_field]))
        folds = []
        for held in sorted(groups):
            train_utts = [u for u in utts if str(u.meta[group_field]) != held]
            unit = (lambda u: u.dialogue_id) if valid_unit == "dialogue" else (lambda u: u.uid)
            units = sorted(_group_ids(train_utts, unit).items())
            rng = random.Random(f"{seed}-{held}")
            rng.shuffle(units)
            n_valid = max(1, round(len(units) * valid_fraction))
            valid_ids = tuple(uid for _, ids in sorted(units[:n_valid]) for uid in ids)
            vset = set(valid_ids)
            train_ids = tuple(u.uid for u in train_utts if u.uid not in vset)
            folds.append(Fold(f"{group_field}={held}", train_ids, valid_ids, tuple(groups[held])))
        return folds

    return splitter


def random_utterance_split(test: float = 0.2, valid: float = 0.1, seed: int = 42) -> Splitter:
    """Random split of utterances, ignoring dialogues and speakers (as some papers did)."""

    def splitter(utts: Sequence[Utterance]) -> list[Fold]:
        ids = [u.uid for u in utts]
        rng = random.Random(seed)
        rng.shuffle(ids)
        n_test = round(len(ids) * test)
        n_valid = round(len(ids) * valid)
        return [Fold("random-utterance", tuple(ids[n_test + n_valid:]), tuple(ids[n_test:n_test + n_valid]), tuple(ids[:n_test]))]

    return splitter


def all_protocols() -> dict[str, tuple[str, Protocol]]:
    """name -> (dataset, protocol) over every registered dataset."""
    from .registry import DATASETS, load_builtins

    load_builtins()
    out = {}
    for ds in DATASETS.names():
        cls = DATASETS.get(ds)
        for p in cls.protocols():
            out[p.name] = (ds, p)
    return out


def protocol_names(protos: Iterable[Protocol]) -> list[str]:
    return [p.name for p in protos]
