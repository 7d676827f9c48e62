"""``bench data download <dataset>``: fetch a corpus's public files into its root.

An adapter declares what can be downloaded with a ``downloads`` class attribute (a tuple
of :class:`Download`). Transfers stream with ``urllib`` into ``<file>.part``, resume with an
HTTP ``Range`` request, are checked (sha256 when published, else size when known) and only
then renamed onto the final name, so a file under its final name is always complete.
Archives are unpacked into the root through a temporary folder, refusing members that
would land outside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, List, Optional, Union

import typer

from .atomic import atomic_write_text, file_lock
from .errors import MerbenchError

log = logging.getLogger(__name__)

CHUNK = 1 << 16
EXTRACT_KINDS = ("none", "tar.gz", "zip")
ProgressArg = Union[bool, Callable[[int, Optional[int]], None], None]


@dataclass(frozen=True)
class Download:
    """One public file of a corpus.

    ``sha256=None`` means upstream publishes no checksum: the file is then checked by size
    (when ``size`` is known) and the hash computed on download is recorded in a
    ``<file>.sha256`` sidecar, so later runs can tell a damaged local copy.
    ``inner``: archives inside the unpacked tree (paths relative to the root) to unpack in
    their own folder afterwards (MELD.Raw ships its clips as inner tar.gz files).
    ``group``: a name for ``--only`` (e.g. "annotations", "media").
    """

    url: str
    filename: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    extract: str = "none"
    description: str = ""
    group: str = "files"
    alternatives: tuple[str, ...] = ()
    inner: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.extract not in EXTRACT_KINDS:
            raise ValueError(f"Download {self.filename}: extract must be one of {EXTRACT_KINDS}, not {self.extract!r}")
        if "/" in self.filename or self.filename in ("", ".", ".."):
            raise ValueError(f"Download filename must be a plain file name, not {self.filename!r}")


# -- hashing / sidecars ----------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> Optional[str]:
    side = _sidecar(path)
    if not side.is_file():
        return None
    text = side.read_text(encoding="utf-8").split()
    return text[0].lower() if text else None


def _write_sidecar(path: Path, digest: str) -> None:
    # Same layout as `sha256sum`, so `sha256sum -c file.sha256` works from the folder.
    atomic_write_text(_sidecar(path), f"{digest}  {path.name}\n")


def mirror_url(d: Download, url_base: Optional[str]) -> str:
    """The URL to fetch: with a mirror, ``<mirror>/<filename>`` replaces the upstream
    scheme, host and path (a mirror holds the files flat, under their download names)."""
    if not url_base:
        return d.url
    return url_base.rstrip("/") + "/" + urllib.parse.quote(d.filename)


# -- checks ---------------------------------------------------------------------------------------


def _expected(d: Download, final: Path) -> tuple[Optional[str], str]:
    """(expected sha256, where it comes from): the published hash, else a sidecar from an earlier download."""
    if d.sha256:
        return d.sha256.lower(), "published"
    side = _read_sidecar(final)
    return (side, f"recorded in {_sidecar(final)}") if side else (None, "")


def _verify(d: Download, path: Path, final: Path, url: str) -> str:
    """Check ``path`` (the .part or the final file) before it is accepted; return its sha256.
    A bad file is deleted, and the error names it, both hashes and the fix."""
    size = path.stat().st_size
    if d.size is not None and size != d.size:
        path.unlink(missing_ok=True)
        raise MerbenchError(
            f"{final}: downloaded {size} bytes from {url} where {d.size} are expected; the bad file was deleted",
            fix="run the same command again to download it afresh (use --mirror URL if this server is damaged)")
    actual = sha256_file(path)
    if d.sha256 and actual != d.sha256.lower():
        path.unlink(missing_ok=True)
        raise MerbenchError(
            f"{final}: checksum mismatch for the file downloaded from {url}: expected sha256 {d.sha256.lower()}, "
            f"got {actual}; the bad file was deleted",
            fix="run the same command again to download it afresh (use --mirror URL if this server serves a "
                "damaged copy)")
    return actual


# -- transfer -------------------------------------------------------------------------------------------


def _unreachable(url: str, reason: object, dest_dir: Path) -> MerbenchError:
    host = urllib.parse.urlsplit(url).netloc or url
    return MerbenchError(
        f"this machine cannot reach {host} to download {url} ({reason})",
        fix=f"check the network (or pass --mirror URL); otherwise download the file on a machine that is online, "
            f"put it in {dest_dir}, and run `bench data download` again to check it, then "
            f"`bench data prepare <dataset> --root {dest_dir}`")


def _open(url: str, start: int, timeout: float):
    """The HTTP response for ``url`` from byte ``start`` (a Range request when ``start`` > 0)."""
    req = urllib.request.Request(url, headers={"User-Agent": "merbench-download/1"})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)


def _content_range(value: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    """'bytes 100-999/1000' -> (100, 1000); unknown parts are None."""
    if not value or not value.strip().startswith("bytes"):
        return None, None
    spec = value.strip()[5:].strip()
    rng, _, total = spec.partition("/")
    first = rng.split("-", 1)[0]
    try:
        start = int(first) if first and first != "*" else None
    except ValueError:
        start = None
    try:
        tot = int(total) if total and total != "*" else None
    except ValueError:
        tot = None
    return start, tot


class _Bar:
    """A rich progress bar (bytes, speed, ETA) or a plain callback; a no-op when off."""

    def __init__(self, progress: ProgressArg, label: str):
        self.cb = progress if callable(progress) else None
        self.p = None
        if progress is True:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            console = Console(stderr=True)
            self.p = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                              TextColumn("eta"), TimeRemainingColumn(), console=console,
                              disable=not console.is_terminal and os.environ.get("MERBENCH_PROGRESS") != "1")
            self.task = self.p.add_task(label, total=None)

    def __enter__(self):
        if self.p is not None:
            self.p.start()
        return self

    def __exit__(self, *exc):
        if self.p is not None:
            self.p.stop()

    def update(self, done: int, total: Optional[int]) -> None:
        if self.p is not None:
            self.p.update(self.task, completed=done, total=total)
        if self.cb is not None:
            self.cb(done, total)


def fetch(d: Download, dest_dir: Union[str, Path], progress: ProgressArg = True, url_base: Optional[str] = None,
          timeout: float = 60.0) -> Path:
    """Download ``d`` into ``dest_dir/<filename>`` (resuming a ``.part``) and return its path.

    An existing final file that verifies is kept as it is (no network access). ``progress``:
    True for a rich bar, a ``callback(done, total)``, or False.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / d.filename
    part = dest_dir / (d.filename + ".part")
    url = mirror_url(d, url_base)
    # One writer per file: two concurrent downloads would interleave bytes in the same .part.
    with file_lock(dest_dir / f".{d.filename}.lock"):
        if final.is_file() and _accept_existing(d, final):
            return final
        _transfer(d, url, part, final, dest_dir, progress, timeout)
        digest = _verify(d, part, final, url)
        os.replace(part, final)
        if not d.sha256:
            _write_sidecar(final, digest)
            log.info("%s: no published checksum; sha256 %s recorded in %s", final, digest, _sidecar(final))
    return final


def _accept_existing(d: Download, final: Path) -> bool:
    """True when a final file is already there and checks out (else it is fetched again and
    replaced only once the new copy verifies)."""
    if d.size is not None and final.stat().st_size != d.size:
        log.warning("%s has %d bytes where %d are expected; downloading it again", final, final.stat().st_size, d.size)
        return False
    expected, source = _expected(d, final)
    actual = sha256_file(final)
    if expected is None:
        # Placed by hand (the offline fix) or downloaded before sidecars: nothing to compare
        # with, so record what is there.
        _write_sidecar(final, actual)
        return True
    if actual != expected:
        log.warning("%s: sha256 %s differs from the %s %s; downloading it again", final, actual, source, expected)
        return False
    return True


def _transfer(d: Download, url: str, part: Path, final: Path, dest_dir: Path, progress: ProgressArg,
              timeout: float) -> None:
    start = part.stat().st_size if part.is_file() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:
            # Nothing left to send: the .part is (or claims to be) whole; _verify decides.
            e.close()
            return
        raise MerbenchError(f"{url} answered HTTP {e.code} {e.reason} (downloading {final.name})",
                            fix="check the URL or pass --mirror URL with a copy of the file; or download it by hand "
                                f"into {dest_dir} and run the command again") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _unreachable(url, reason, dest_dir) from None

    with contextlib.closing(resp):
        status = getattr(resp, "status", 200)
        total: Optional[int] = None
        mode = "ab"
        if start > 0 and status == 206:
            first, total = _content_range(resp.headers.get("Content-Range"))
            if first != start:
                # A range other than the one asked for: trust nothing, restart from zero.
                resp.close()
                part.unlink(missing_ok=True)
                return _transfer(d, url, part, final, dest_dir, progress, timeout)
        else:
            # 200: the whole file (a server that ignores Range included): start over.
            if start > 0:
                log.info("%s ignored the Range request; downloading %s from the start", url, d.filename)
            start, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is None and d.size is not None:
            total = d.size
        done = start
        with _Bar(progress, d.filename) as bar, open(part, mode) as out:
            bar.update(done, total)
            try:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    bar.update(done, total)
            except (OSError, http.client.HTTPException) as e:
                out.flush()
                raise _interrupted(url, part, done, total, e) from None
        if total is not None and done < total:
            raise _interrupted(url, part, done, total, "connection closed early")


def _interrupted(url: str, part: Path, done: int, total: Optional[int], reason: object) -> MerbenchError:
    of = f" of {total}" if total is not None else ""
    return MerbenchError(f"download of {url} interrupted after {done}{of} bytes ({reason}); the partial file {part} "
                         "is kept", fix="run the same command again: it resumes where it stopped")


# -- extraction ------------------------------------------------------------------------------------------


def _unsafe_name(name: str) -> Optional[str]:
    """Why an archive member name may not be unpacked (None when it is fine)."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in p.parts:
        return "a '..' component"
    return None


def _check_tar(archive: Path, tf: tarfile.TarFile) -> None:
    for m in tf.getmembers():
        why = _unsafe_name(m.name)
        if why is None and (m.issym() or m.islnk()):
            # A symlink resolves from its own folder, a hard link from the archive root.
            target = str(PurePosixPath(m.name).parent / m.linkname) if m.issym() else m.linkname
            if _unsafe_name(m.linkname) or _unsafe_name(target):
                why = f"a link to {m.linkname!r} outside the folder"
        elif why is None and not (m.isfile() or m.isdir()):
            why = "a device or special file"
        if why:
            raise MerbenchError(f"{archive}: member {m.name!r} has {why}; refusing to unpack it",
                                fix="the archive is damaged or not the expected one: delete it and run the command "
                                    "again (or unpack it by hand after checking it)")


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        why = _unsafe_name(info.filename)
        if why:
            raise MerbenchError(f"{archive}: member {info.filename!r} has {why}; refusing to unpack it",
                                fix="the archive is damaged or not the expected one: delete it and run the command "
                                    "again (or unpack it by hand after checking it)")


def extract(archive: Union[str, Path], kind: str, into: Union[str, Path]) -> list[Path]:
    """Unpack ``archive`` into ``into`` through a temporary folder there, then move each
    top-level entry in place (a rename, so a folder appears whole or not at all). Refuses
    members with absolute paths, '..' or links leading out, and never overwrites an entry
    that is already there. Returns the top-level paths created."""
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", suffix=".extracting", dir=into))
    try:
        if kind == "tar.gz":
            try:
                with tarfile.open(archive, "r:*") as tf:
                    _check_tar(archive, tf)
                    if hasattr(tarfile, "data_filter"):
                        tf.extractall(tmp, filter="data")
                    else:  # pragma: no cover - Python without extraction filters
                        tf.extractall(tmp)
            except (tarfile.TarError, EOFError, OSError) as e:
                raise MerbenchError(f"{archive} is not a readable tar.gz archive ({e})",
                                    fix="delete it and run the command again to download it afresh") from None
        elif kind == "zip":
            try:
                with zipfile.ZipFile(archive) as zf:
                    _check_zip(archive, zf)
                    zf.extractall(tmp)
            except (zipfile.BadZipFile, OSError) as e:
                raise MerbenchError(f"{archive} is not a readable zip archive ({e})",
                                    fix="delete it and run the command again to download it afresh") from None
        else:
            raise ValueError(f"unknown archive kind {kind!r}")
        entries = sorted(tmp.iterdir())
        clash = [into / e.name for e in entries if (into / e.name).exists()]
        if clash:
            raise MerbenchError(f"unpacking {archive} would overwrite {', '.join(map(str, clash))}",
                                fix="move or delete those first (an interrupted unpack leaves them), then run the "
                                    "command again")
        out = []
        for e in entries:
            os.replace(e, into / e.name)
            out.append(into / e.name)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _marker(into: Path, archive: Path) -> Path:
    return into / f".{archive.name}.extracted"


def extract_once(archive: Path, kind: str, into: Path) -> bool:
    """Unpack unless a marker says this very archive (same sha256) was unpacked here; True when it unpacked."""
    digest = _read_sidecar(archive) or sha256_file(archive)
    marker = _marker(into, archive)
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest:
        return False
    extract(archive, kind, into)
    atomic_write_text(marker, digest + "\n")
    return True


# -- command ------------------------------------------------------------------------------------------------


def downloads_of(adapter_cls) -> tuple[Download, ...]:
    """The adapter's downloads, or a MerbenchError telling how to obtain the corpus."""
    downloads = tuple(getattr(adapter_cls, "downloads", ()) or ())
    if downloads:
        return downloads
    name = getattr(adapter_cls, "name", "?")
    meta = getattr(adapter_cls, "metadata", None)
    url = getattr(meta, "url", "") or ""
    licence = getattr(meta, "license", "") or ""
    if name == "synthetic" or licence.startswith("CC0") and not url:
        raise MerbenchError(f"{name} is generated locally and has nothing to download",
                            fix=f"run `bench data prepare {name}`")
    where = f" from {url}" if url else " from its authors"
    raise MerbenchError(
        f"{name} has no public download" + (f" (licence: {licence})" if licence else ""),
        fix=f"obtain it{where} under its licence, put it in a folder, then run "
            f"`bench data prepare {name} --root PATH` (see datasets/{name}/README.md)")


def download_dataset(dataset: str, root: Optional[Path] = None, url_base: Optional[str] = None,
                     only: Optional[list[str]] = None, progress: ProgressArg = True,
                     timeout: float = 60.0) -> list[Path]:
    """Fetch (and unpack) a corpus's downloads into ``root`` (default ``data_root()/<name>``)."""
    from .registry import resolve_dataset
    from .paths import data_root

    cls = resolve_dataset(dataset)
    items = downloads_of(cls)
    if only:
        wanted = set(only)
        known = {d.group for d in items} | {d.filename for d in items}
        unknown = sorted(wanted - known)
        if unknown:
            raise MerbenchError(f"{dataset} has no download group or file {', '.join(map(repr, unknown))}",
                                fix=f"choose among: {', '.join(sorted(known))}")
        items = tuple(d for d in items if d.group in wanted or d.filename in wanted)
    # Not the adapter's default root: that may be the read-only shared annotation folder.
    root = Path(root).expanduser() if root else data_root() / cls.name
    paths = []
    for d in items:
        if d.extract != "none" and not (root / d.filename).exists() and _marker(root, root / d.filename).is_file():
            # Unpacked before and the archive deleted to save space: do not fetch it again.
            log.info("%s was unpacked into %s before; skipping it", d.filename, root)
            continue
        path = fetch(d, root, progress=progress, url_base=url_base, timeout=timeout)
        if d.extract != "none":
            extract_once(path, d.extract, root)
            for rel in d.inner:
                inner = root / rel
                if not inner.is_file():
                    # Warn, not fail: the outer archive is unpacked and usable; only this part is unknown.
                    log.warning("%s unpacked without the expected inner archive %s; unpack the clips by hand "
                                "(see the dataset README)", path, inner)
                    continue
                extract_once(inner, "zip" if inner.name.endswith(".zip") else "tar.gz", inner.parent)
        paths.append(path)
    return paths


def download(
    dataset: str = typer.Argument(..., help="dataset name (bench list datasets)"),
    root: Optional[Path] = typer.Option(None, "--root", help="folder to download into (default: $MERBENCH_DATA/<name>)"),
    url_base: Optional[str] = typer.Option(None, "--mirror",
                                           help="base URL of a mirror holding the files under their names"),
    only: Optional[List[str]] = typer.Option(None, "--only", help="a download group (e.g. annotations, media) "
                                                                  "or file name; repeatable"),
    list_only: bool = typer.Option(False, "--list", help="show the downloads and exit"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds without data before a transfer fails"),
):
    """Download a corpus's public files (resumable, checksummed) and unpack its archives."""
    from rich.console import Console

    from .registry import resolve_dataset

    console = Console()
    if list_only:
        for d in downloads_of(resolve_dataset(dataset)):
            check = f"sha256 {d.sha256[:12]}…" if d.sha256 else "no published checksum"
            console.print(f"[bold]{d.filename}[/bold] ({d.group}; {check}) {mirror_url(d, url_base)}"
                          + (f"\n  {d.description}" if d.description else ""), highlight=False, soft_wrap=True)
        return
    paths = download_dataset(dataset, root=root, url_base=url_base, only=only, progress=True, timeout=timeout)
    from .paths import data_root

    folder = Path(root).expanduser() if root else data_root() / resolve_dataset(dataset).name
    for p in paths:
        console.print(f"{p.name}: ok ({p.stat().st_size} bytes)", highlight=False)
    console.print(f"{dataset}: files in {folder}; next: bench data prepare {dataset} --root {folder}",
                  highlight=False, soft_wrap=True)
