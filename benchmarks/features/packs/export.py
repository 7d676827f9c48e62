"""``bench features export``: the suite's cached features written as a pack of any format.

So that others can use them, and so that every reader is tested on a round trip. Rows carry
the corpus's label, dialogue, turn, speaker and split (from the protocol's first fold) for the
formats that store them; utterances whose media was unreadable (zero features) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...corpus import Corpus
from ...interfaces import FeatureTable
from . import FORMATS, format_module


@dataclass
class Row:
    uid: str
    vector: np.ndarray  # (D,) or (T, D)
    label: str | None
    dialogue_id: str
    turn: int
    speaker: str
    split: str | None  # train / valid / test


def rows_of(corpus: Corpus, table: FeatureTable, level: str, split_of: dict[str, str]) -> list[Row]:
    if level == "frames" and table.frames is None:
        from .pack import PackError

        raise PackError(f"extractor {table.extractor} has no frame level", fix="export with --level pooled")
    rows = []
    for i, uid in enumerate(table.uids):
        if not table.valid[i]:
            continue
        u = corpus[uid]
        vec = table.frames[i] if level == "frames" else table.pooled[i]
        rows.append(Row(uid, np.asarray(vec, dtype=np.float32), u.label, u.dialogue_id, u.turn, u.speaker,
                        split_of.get(uid)))
    return rows


def export(corpus: Corpus, table: FeatureTable, fmt: str, out: Path, key: str | None = None,
           level: str = "pooled", split_of: dict[str, str] | None = None) -> tuple[Path, int]:
    """Write ``table`` (ordered as the corpus) to ``out``; returns the path to read back and the row count."""
    if fmt not in FORMATS:
        from .pack import PackError

        raise PackError(f"unknown pack format {fmt!r}", fix=f"use one of: {', '.join(FORMATS)}")
    order = {u.uid: i for i, u in enumerate(corpus.utterances)}
    table = table.subset(sorted(table.uids, key=lambda u: order[u]))
    rows = rows_of(corpus, table, level, split_of or {})
    out.mkdir(parents=True, exist_ok=True)
    return format_module(fmt).write(out, rows, key), len(rows)
