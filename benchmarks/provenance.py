"""What a result needs to be reproduced: commit, versions, device, host, time."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata

from . import __version__
from .paths import PROJECT_ROOT
from .results import Provenance

PACKAGES = ("torch", "numpy", "scikit-learn", "transformers", "sentence-transformers", "opensmile",
            "opencv-python-headless", "av", "torch_geometric", "librosa", "soundfile")


def git_state() -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        # Committed results are outputs, not code: a run writing its seeds into leaderboard/results
        # must not mark its own later seeds as made from a dirty tree.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)leaderboard/results", ":(exclude)leaderboard/LEADERBOARD.md",
                                ":(exclude)leaderboard/leaderboard_assets"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip() != ""
        return commit, (dirty if commit else None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return f"{device} ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def collect(device: str, command: str = "") -> Provenance:
    commit, dirty = git_state()
    return Provenance(
        git_commit=commit, git_dirty=dirty, merbench_version=__version__,
        python=sys.version.split()[0], packages=package_versions(), device=device_name(device),
        hostname=socket.gethostname(), started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
    )
