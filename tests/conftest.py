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
