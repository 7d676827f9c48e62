"""Where corpora, caches and results live. Every location can be overridden.

- ``MERBENCH_HOME`` (default ``~/.cache/merbench``): generated corpora and feature caches.
- ``MERBENCH_DATA``: parent folder of corpus roots (default ``$MERBENCH_HOME/data``).
- ``MERBENCH_SHARED_DATA``: the folder with the real annotation files
  (default: ``../shared/data`` next to the project checkout, if present).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(os.environ.get("MERBENCH_HOME", Path.home() / ".cache" / "merbench")).expanduser()


def data_root() -> Path:
    return Path(os.environ.get("MERBENCH_DATA", home() / "data")).expanduser()


def cache_root() -> Path:
    return home() / "features"


def shared_data() -> Path | None:
    """The folder of real annotation files, or None when it is not on this machine."""
    env = os.environ.get("MERBENCH_SHARED_DATA")
    candidates = [Path(env).expanduser()] if env else []
    candidates += [PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def default_corpus_root(name: str) -> Path:
    """``$MERBENCH_DATA/<name>`` when MERBENCH_DATA is set and has it, else the shared
    annotation folder ``shared_data()/<name>`` when present, else ``data_root()/<name>``."""
    own = data_root() / name
    if os.environ.get("MERBENCH_DATA") and own.exists():
        return own
    shared = shared_data()
    if shared is not None and (shared / name).is_dir():
        return shared / name
    return own
