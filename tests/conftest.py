import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/fakes.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

# Tests use tiny models: one thread avoids oversubscribing a small shared CI machine.
torch.set_num_threads(1)


@pytest.fixture
def merbench_home(tmp_path, monkeypatch):
    """An empty MERBENCH_HOME (feature cache, generated corpora, run checkpoints)."""
    home = tmp_path / "merbench_home"
    monkeypatch.setenv("MERBENCH_HOME", str(home))
    monkeypatch.delenv("MERBENCH_DATA", raising=False)
    return home


def shared_data_or_skip():
    from merbench.paths import shared_data

    root = shared_data()
    if root is None:
        pytest.skip("../shared/data (real annotation files) is not on this machine; set MERBENCH_SHARED_DATA")
    return root


def scores_from_predictions(result_json) -> dict[str, float]:
    """Accuracy and weighted F1 recomputed from a result's ``.predictions.csv`` (gold vs predicted
    label per test utterance), to check that the scores a result reports are those of its predictions."""
    import csv
    from pathlib import Path

    from sklearn.metrics import accuracy_score, f1_score

    rows = list(csv.DictReader(open(Path(result_json).with_suffix(".predictions.csv"), encoding="utf-8")))
    gold, pred = [r["gold"] for r in rows], [r["pred"] for r in rows]
    return {"n": len(rows), "accuracy": float(accuracy_score(gold, pred)),
            "weighted_f1": float(f1_score(gold, pred, average="weighted", zero_division=0))}
