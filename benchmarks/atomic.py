"""Atomic writes and inter-process locks, so interrupted or concurrent runs never
leave a half-written result, checkpoint or cache file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path`` (same folder, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # mkstemp makes the file 0600; a result or cache file is as readable as any file the user
        # writes (a shared results folder or cache must stay readable to colleagues).
        os.chmod(tmp, 0o666 & ~_umask())
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock held while the block runs (waits for other holders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class HeldLock:
    """An exclusive advisory lock taken and released by hand (:func:`file_lock` is the with-block
    form): for trying a lock without waiting, or holding several for as long as work on each lasts.
    The kernel drops it when the process dies, so a killed holder never blocks anyone."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fh = None

    def take(self, wait: bool = True) -> bool:
        """Take the lock (waiting for its holder when ``wait``); False when another holds it and
        ``wait`` is False."""
        if self._fh is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            return False
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        return True

    def release(self) -> None:
        """Let go (nothing when not held)."""
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            finally:
                fh.close()


def check_writable_dir(folder: str | Path, what: str, option: str) -> None:
    """Fail early (before any training) when ``folder`` could not be created or written to; creates
    nothing (a run refused later must not leave an empty results folder behind)."""
    from .errors import MerbenchError

    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        why = f"{existing} is not writable (permission denied)"
    else:
        return
    raise MerbenchError(f"cannot write {what} to {folder}: {why}",
                        fix=f"choose a writable folder with {option}, or fix its permissions")
