"""The misalignment check: a pack's labels against the corpus's (the corpus's always rule).

Packs spell labels their own way (``3``, ``"ang"``, ``"anger"``) and may merge classes (IEMOCAP-4
merges excited into happy), so no name table is needed: each corpus label is expected to meet one
pack label, the one it meets most often, and every utterance where it meets another is a
disagreement, i.e. the pack's features probably belong to another utterance. Continuous labels
(MOSI / MOSEI sentiment scores) are compared with the corpus's ``sentiment`` annotation.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

import numpy as np

TOLERANCE = 1e-3  # continuous labels: packs store float32 scores


def _number(v: Any) -> float | None:
    if isinstance(v, np.ndarray):
        if v.size != 1:
            return None
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        return None
    return float(v) if isinstance(v, (int, float, np.integer, np.floating)) else None


def _discrete(v: Any) -> Any:
    n = _number(v)
    if n is not None and float(n).is_integer():
        return int(n)
    return str(v).strip().lower()


def compare_labels(pack_labels: Mapping[str, Any], corpus_labels: Mapping[str, str | None],
                   corpus_scores: Mapping[str, float] | None = None) -> dict:
    """``{compared, agree, disagree: [(uid, pack label, corpus label)], how}``."""
    uids = [u for u in pack_labels if corpus_labels.get(u) is not None]
    numbers = [_number(pack_labels[u]) for u in uids]
    continuous = any(n is not None and not float(n).is_integer() for n in numbers)
    if continuous:
        scores = corpus_scores or {}
        if not all(u in scores for u in uids):
            return {"compared": 0, "agree": 0, "disagree": [], "how": "not compared: the pack's labels are "
                    "continuous and the corpus has no sentiment scores"}
        bad = [(u, float(n), scores[u]) for u, n in zip(uids, numbers)
               if n is None or abs(float(n) - scores[u]) > TOLERANCE]
        return {"compared": len(uids), "agree": len(uids) - len(bad), "disagree": bad,
                "how": "sentiment scores, equal within 0.001"}
    seen: dict[str, Counter] = {}
    for u in uids:
        seen.setdefault(corpus_labels[u], Counter())[_discrete(pack_labels[u])] += 1
    expected = {c: counts.most_common(1)[0][0] for c, counts in seen.items()}
    bad = [(u, pack_labels[u], corpus_labels[u]) for u in uids if _discrete(pack_labels[u]) != expected[corpus_labels[u]]]
    how = "each corpus label meets one pack label: " + ", ".join(f"{c}={p}" for c, p in sorted(expected.items()))
    return {"compared": len(uids), "agree": len(uids) - len(bad), "disagree": bad, "how": how}
