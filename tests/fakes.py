"""Small in-memory splits for tests that need no corpus on disk."""

from __future__ import annotations

import numpy as np

from merbench.corpus import Utterance
from merbench.interfaces import FeatureTable, SplitData

LABELS = ("neutral", "joy", "sadness", "anger")


def fake_split(n_dialogues: int = 4, turns: tuple[int, int] = (3, 6), dims: dict[str, int] | None = None,
               seed: int = 0, name: str = "train", labels: bool = True, prefix: str = "d",
               label_names=LABELS, max_frames: int = 9) -> SplitData:
    """Dialogues of random length with random pooled and frame features.
    Features carry a weak label signal so that a few training steps can lower the loss."""
    dims = dims or {"t": 12, "a": 10, "v": 8}
    rng = np.random.default_rng(seed)
    utts, ys = [], []
    for d in range(n_dialogues):
        speakers = ["A", "B", "C"][: rng.integers(2, 4)]
        for t in range(int(rng.integers(turns[0], turns[1] + 1))):
            y = int(rng.integers(len(label_names)))
            ys.append(y)
            utts.append(Utterance(uid=f"{prefix}{d}_u{t}", dialogue_id=f"{prefix}{d}", turn=t,
                                  speaker=speakers[t % len(speakers)], text=f"utterance {t}",
                                  label=label_names[y] if labels else None))
    ys = np.array(ys)
    feats = {}
    for m, D in dims.items():
        signal = np.eye(len(label_names), D)[ys] * 2.0
        pooled = (rng.normal(size=(len(utts), D)) + signal).astype(np.float32)
        frames = [(rng.normal(size=(int(rng.integers(2, max_frames + 1)), D)) + signal[i]).astype(np.float32)
                  for i in range(len(utts))]
        feats[m] = FeatureTable(f"fake-{m}", [u.uid for u in utts], pooled, frames)
    return SplitData(name, utts, feats, tuple(label_names), ys if labels else None)
