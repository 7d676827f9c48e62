"""On-disk feature cache: per (corpus, extractor, version, settings), in numpy parts.

Layout of one cache entry::

    <cache_root>/<corpus>-<corpus fingerprint>/<extractor>/v<version>-<settings hash>/
        meta.json            extractor, settings, dims, bad media (written last)
        part-00000.npz       uids, pooled (n, D), frames (sum T, Df), frame_lengths, valid
        ...

Each part is written atomically, so a killed extraction resumes at the first missing
part. A lock on the entry makes a concurrent run wait and then reuse the parts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import atomic_write, atomic_write_json, file_lock
from ..corpus import Corpus, Utterance
from ..errors import DamagedFileError, FeatureExtractionError, FeatureShapeError, MediaError
from ..interfaces import ExtractedItem, FeatureExtractor, FeatureTable
from ..paths import cache_root

log = logging.getLogger(__name__)

PART_SIZE = 256
BAD_MEDIA_POLICIES = ("error", "zero")


def settings_hash(extractor: FeatureExtractor) -> str:
    blob = json.dumps(extractor.settings(), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


DIGEST_BLOCK = 1 << 20  # bytes read from the start, middle and end of a large media file


def _content_digest(path: Path, size: int) -> str:
    """Size plus a fast hash of the content: the whole file when small, else three 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as fh:
        if size <= 3 * DIGEST_BLOCK:
            h.update(fh.read())
        else:
            for offset in (0, size // 2 - DIGEST_BLOCK // 2, size - DIGEST_BLOCK):
                fh.seek(offset)
                h.update(fh.read(DIGEST_BLOCK))
    return f"{size}:{h.hexdigest()}"


class _DigestMemo:
    """Content digests of media files, remembered under ``$MERBENCH_HOME/media-digests`` by path, size
    and mtime, so that each file is read once, not on every run."""

    def __init__(self, root: Path | None):
        from ..paths import home

        key = hashlib.sha256(str(Path(root).resolve() if root else "").encode()).hexdigest()[:16]
        self.path = home() / "media-digests" / f"{key}.json"
        try:
            self.known = json.loads(self.path.read_text())
            assert isinstance(self.known, dict)
        except (OSError, ValueError, AssertionError):
            self.known = {}
        self.changed = False

    def digest(self, path: str) -> str:
        try:
            st = os.stat(path)
        except OSError:
            return "missing"
        stamp = [st.st_size, st.st_mtime_ns]
        got = self.known.get(path)
        if not (isinstance(got, list) and got[:2] == stamp):
            try:
                got = [*stamp, _content_digest(Path(path), st.st_size)]
            except OSError:
                return "unreadable"
            self.known[path] = got
            self.changed = True
        return got[2]

    def save(self) -> None:
        if self.changed:
            try:
                atomic_write_json(self.path, self.known)
            except OSError as e:  # a read-only home only costs re-reading the files next time
                log.info("media digests not remembered: %s", e)


def _where(path: str | None, root: Path | None) -> str:
    """A media path as the corpus names it: relative to its root, so a moved corpus is the same corpus."""
    if not path:
        return "-"
    if root is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return Path(path).name


def corpus_fingerprint(corpus: Corpus) -> str:
    """Name and content: ids, texts, and each media file's path inside the corpus, size and content
    digest. Not the corpus's location or file times: a copied or moved corpus (with its cache) keeps
    its features, an edited one does not."""
    root = Path(corpus.root) if corpus.root else None
    memo = _DigestMemo(root)
    h = hashlib.sha256(f"{corpus.name}|content-v2".encode())
    for u in corpus.utterances:
        h.update(f"\n{u.uid}|{u.text}|{_where(u.audio_path, root)}|{memo.digest(u.audio_path) if u.audio_path else '-'}|"
                 f"{_where(u.video_path, root)}|{memo.digest(u.video_path) if u.video_path else '-'}".encode())
    memo.save()
    return h.hexdigest()[:10]


def entry_dir(corpus: Corpus, extractor: FeatureExtractor, root: Path | None = None) -> Path:
    root = Path(root) if root else cache_root()
    return (root / f"{corpus.name}-{corpus_fingerprint(corpus)}" / extractor.name
            / f"v{extractor.version}-{settings_hash(extractor)}")


def _extract_part(extractor: FeatureExtractor, utts: Sequence[Utterance],
                  bad: list[dict]) -> list[ExtractedItem | None]:
    """Extract in the extractor's batches; a batch that fails on one file is redone item by
    item so that only the unreadable files are lost (reported in ``bad``)."""
    out: list[ExtractedItem | None] = []
    bs = max(1, extractor.batch_size)
    for i in range(0, len(utts), bs):
        batch = utts[i:i + bs]
        try:
            items = extractor.extract(batch)
            if len(items) != len(batch):
                raise FeatureShapeError(f"extractor {extractor.name} returned {len(items)} items for {len(batch)} utterances")
            out.extend(items)
        except MediaError:
            for u in batch:
                try:
                    out.extend(extractor.extract([u]))
                except MediaError as e:
                    bad.append({"uid": u.uid, "path": e.path, "reason": e.reason})
                    out.append(None)
    return out


def _save_part(path: Path, utts: Sequence[Utterance], items: list[ExtractedItem | None],
               extractor: FeatureExtractor, bad: list[dict]) -> dict:
    good = [it for it in items if it is not None]
    if good:
        dim = good[0].pooled.shape[-1]
        fdim = good[0].frames.shape[-1] if good[0].frames is not None else 0
    else:  # every file of this part is unreadable: zeros of the extractor's stated sizes
        dim = extractor.output_dim("pooled")
        fdim = extractor.output_dim("frames") if "frames" in extractor.levels else 0
    pooled = np.zeros((len(items), dim), dtype=np.float32)
    lengths = np.zeros(len(items), dtype=np.int64)
    frames, valid = [], np.zeros(len(items), dtype=bool)
    for i, it in enumerate(items):
        if it is None:
            if fdim:
                frames.append(np.zeros((1, fdim), dtype=np.float32))
                lengths[i] = 1
            continue
        if it.pooled.shape != (dim,):
            raise FeatureShapeError(f"utterance {utts[i].uid}: pooled features have shape {it.pooled.shape}, expected ({dim},)")
        pooled[i] = it.pooled
        valid[i] = True
        if fdim:
            f = np.asarray(it.frames, dtype=np.float32).reshape(-1, fdim)
            if len(f) == 0:
                f = np.zeros((1, fdim), dtype=np.float32)
            frames.append(f)
            lengths[i] = len(f)
    part_uids = {u.uid for u in utts}
    part_bad = [b for b in bad if b["uid"] in part_uids]
    arrays = {
        "uids": np.array([u.uid for u in utts]),
        "bad": np.array([[b["uid"], b["path"], b["reason"]] for b in part_bad], dtype=str).reshape(-1, 3),
        "notes": np.array([[u.uid, note] for u, it in zip(utts, items) if it is not None for note in it.notes],
                          dtype=str).reshape(-1, 2),
        "pooled": pooled,
        "valid": valid,
        "frame_lengths": lengths,
        "frames": np.concatenate(frames) if frames else np.zeros((0, 0), dtype=np.float32),
    }
    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)
    return {"dim": dim, "frame_dim": fdim}


def _extract_and_save(extractor: FeatureExtractor, utts: Sequence[Utterance], path: Path) -> tuple[list[dict], dict]:
    """One part, start to finish, in this process."""
    bad: list[dict] = []
    items = _extract_part(extractor, utts, bad)
    return bad, _save_part(path, utts, items, extractor, bad)


def default_workers(extractor: FeatureExtractor) -> int:
    """Processes for ``extractor`` when the user names none: one per usable core for extractors that
    compute on one core per utterance (``parallel``, e.g. openSMILE), else 1 (a torch model already
    uses every core through its threads)."""
    from ..machine import usable_cores

    return usable_cores() if getattr(extractor, "parallel", False) else 1


# Utterances per task of the pool: small enough that both cores stay busy to the end and progress
# moves, large enough that the per-task cost (pickling, a round trip) stays small.
MIN_CHUNK = 4

_worker_extractor: FeatureExtractor | None = None


def _die_with_parent(parent_pid: int) -> None:
    """The kernel kills this worker when its parent dies, even by ``kill -9`` (otherwise each
    worker, with a model loaded, lives on)."""
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _init_worker(parent_pid: int, extractor: FeatureExtractor, context: Sequence[Utterance] | None) -> None:
    """Worker initializer: the extractor arrives once per worker, not once per task."""
    global _worker_extractor
    _die_with_parent(parent_pid)
    if "torch" in __import__("sys").modules:  # one process per core: one thread each
        import torch

        torch.set_num_threads(1)
    if context is not None and hasattr(extractor, "prime"):
        extractor.prime(context)
    _worker_extractor = extractor


def _worker_chunk(utts: Sequence[Utterance]) -> tuple[list[ExtractedItem | None], list[dict], tuple | None]:
    """(items, unreadable files, failure). Exceptions do not cross the process boundary whole (a
    MerbenchError loses its fix when pickled), so a failure comes back as plain data: the utterance
    that raised it, found by extracting the chunk's utterances one by one."""
    ex = _worker_extractor
    assert ex is not None
    bad: list[dict] = []
    try:
        return _extract_part(ex, utts, bad), bad, None
    except Exception as first:  # noqa: BLE001 - named below with its file
        for u in utts:
            try:
                _extract_part(ex, [u], [])
            except Exception as e:  # noqa: BLE001
                return [], [], (u.uid, u.audio_path or u.video_path or "", f"{type(e).__name__}: {e}",
                                getattr(e, "fix", None))
        return [], [], (utts[0].uid, "", f"{type(first).__name__}: {first}", getattr(first, "fix", None))


def _extract_in_pool(extractor: FeatureExtractor, todo: list[tuple[list[Utterance], Path]], workers: int,
                     context: Sequence[Utterance] | None):
    """Extract the parts of ``todo`` in ``workers`` spawned processes, in chunks of utterances; each
    part is written here as soon as all its chunks are back. Yields (unreadable files, dims, utterances
    done) per finished chunk (dims and unreadable files only when a part is written). Same arrays as
    extracting in this process: each utterance is extracted alone by the same code."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    n_todo = sum(len(part) for part, _ in todo)
    size = max(MIN_CHUNK, min(max(1, extractor.batch_size), -(-n_todo // (workers * 8))))
    chunks = [(k, i) for k, (part, _) in enumerate(todo) for i in range(0, len(part), size)]
    results: dict[int, dict[int, tuple]] = {k: {} for k in range(len(todo))}
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(os.getpid(), extractor, context)) as pool:
        pending = {pool.submit(_worker_chunk, todo[k][0][i:i + size]): (k, i) for k, i in chunks}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    k, i = pending.pop(fut)
                    items, chunk_bad, failure = fut.result()
                    if failure is not None:
                        uid, path, why, fix = failure
                        raise FeatureExtractionError(
                            f"extractor {extractor.name} failed on {path or 'utterance ' + uid} (utterance {uid}): {why}",
                            fix=fix or "fix or remove that file; the parts finished so far are kept")
                    part, path = todo[k]
                    results[k][i] = (items, chunk_bad)
                    part_bad, dims = [], {}
                    if sum(len(r[0]) for r in results[k].values()) == len(part):
                        part_items = [it for j in sorted(results[k]) for it in results[k][j][0]]
                        part_bad = [b for j in sorted(results[k]) for b in results[k][j][1]]
                        dims = _save_part(path, part, part_items, extractor, part_bad)
                        results[k] = {}
                    yield part_bad, dims, len(items)
        except BrokenProcessPool:
            names = [todo[k][0][i].audio_path or todo[k][0][i].video_path or todo[k][0][i].uid
                     for k, i in list(pending.values())[:workers]]
            raise FeatureExtractionError(
                f"a worker process of extractor {extractor.name} died (killed, or out of memory) while extracting "
                f"chunks starting at: {', '.join(str(n) for n in names)}",
                fix="run again (finished parts are kept); with --workers 1 a crash names its file") from None
        finally:
            for fut in pending:
                fut.cancel()


def _clean_stale_tmp(entry: Path) -> None:
    """Half-written parts of an extraction that was killed (called under the entry's lock, so no live
    writer owns them)."""
    for tmp in entry.glob(".part-*.tmp"):
        tmp.unlink(missing_ok=True)


def _part_problem(path: Path, uids: Sequence[str], size: int | None = None) -> str | None:
    """Why the cache part at ``path`` cannot be used for ``uids`` (None: it can)."""
    try:
        if size is not None and path.stat().st_size != size:
            return f"size {path.stat().st_size} bytes, {size} written"
        with np.load(path, allow_pickle=False) as z:
            missing = {"uids", "pooled", "valid", "frame_lengths", "frames"} - set(z.files)
            if missing:
                return f"no {', '.join(sorted(missing))} in it"
            if [str(u) for u in z["uids"]] != list(uids):
                return "it holds other utterances"
            rows = {name: _rows(z, name) for name in ("pooled", "valid", "frame_lengths")}
            if any(n != len(uids) for n in rows.values()):
                return f"rows per array {rows}, {len(uids)} utterances"
    except FileNotFoundError:
        return "missing"
    except Exception as e:  # noqa: BLE001 - BadZipFile, EOFError, ValueError, zlib errors: all mean damaged
        return f"{type(e).__name__}: {e}"
    return None


def _rows(z, name: str) -> int:
    """Rows of array ``name`` of an open npz, read from its header only."""
    with z.zip.open(f"{name}.npy") as fh:
        fmt = np.lib.format
        major, _ = fmt.read_magic(fh)
        shape = (fmt.read_array_header_1_0(fh) if major == 1 else fmt.read_array_header_2_0(fh))[0]
    return shape[0] if shape else 0


def _damaged_parts(entry: Path, parts: Sequence[Sequence[Utterance]]) -> list[tuple[Path, str]]:
    """Parts of a finished entry that do not load (checked against the sizes meta.json recorded)."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        sizes = meta.get("part_sizes") or [None] * len(parts)
        if meta.get("parts") != len(parts) or len(sizes) != len(parts):
            return [(entry / "meta.json", f"it lists {meta.get('parts')} parts, the corpus needs {len(parts)}")]
    except (OSError, ValueError, AttributeError) as e:
        return [(entry / "meta.json", f"{type(e).__name__}: {e}")]
    out = []
    for k, part in enumerate(parts):
        path = entry / f"part-{k:05d}.npz"
        why = _part_problem(path, [u.uid for u in part], sizes[k])
        if why:
            out.append((path, why))
    return out


def extract_corpus(corpus: Corpus, extractor: FeatureExtractor, *, cache: Path | None = None,
                   progress: Callable[[int, int], None] | None = None, workers: int = 1,
                   warn: Callable[[str], None] | None = None) -> Path:
    """Extract (or finish extracting) features for every utterance of ``corpus``.

    ``workers`` > 1 extracts in that many spawned processes, chunk by chunk (the extractor is
    pickled to each once; the parts are written here); :func:`default_workers` says how many suit
    an extractor. A damaged part (cut short,
    not loadable) is named through ``warn`` and extracted again."""
    warn = warn or log.warning
    if hasattr(extractor, "bind"):
        extractor.bind(corpus.name)  # e.g. a feature pack whose path names {dataset}
    entry = entry_dir(corpus, extractor, cache)
    entry.mkdir(parents=True, exist_ok=True)
    with file_lock(entry / ".lock"):
        _clean_stale_tmp(entry)
        # Extractors get no labels or annotations besides media timing: the cache is shared by
        # every protocol and method, so nothing in it may depend on a label.
        utts = [u.for_extraction() for u in corpus.utterances]
        parts = [utts[i:i + PART_SIZE] for i in range(0, len(utts), PART_SIZE)]
        if (entry / "meta.json").exists():
            damaged = _damaged_parts(entry, parts)
            if not damaged:
                if progress:
                    progress(len(corpus), len(corpus))
                return entry
            for path, why in damaged:
                warn(f"feature cache {path} is damaged ({why}); it is extracted again")
                path.unlink(missing_ok=True)
            (entry / "meta.json").unlink(missing_ok=True)
        if hasattr(extractor, "prime"):
            # Extractors that read context across utterances (e.g. earlier turns of a dialogue)
            # see the whole corpus first, so a resumed extraction gives the same features.
            extractor.prime(utts)
        bad: list[dict] = []
        dims: dict = {}
        done = 0
        todo = []
        for k, part in enumerate(parts):
            path = entry / f"part-{k:05d}.npz"
            if path.exists():  # resumed: this part was finished before an interruption
                why = _part_problem(path, [u.uid for u in part])
                if why is None:
                    with np.load(path, allow_pickle=False) as z:
                        bad.extend({"uid": str(u), "path": str(p), "reason": str(r)}
                                   for u, p, r in (z["bad"] if "bad" in z.files else []))
                        dims = dims or {"dim": int(z["pooled"].shape[1]),
                                        "frame_dim": int(z["frames"].shape[1]) if z["frames"].size else 0}
                    done += len(part)
                    continue
                warn(f"feature cache {path} is damaged ({why}); it is extracted again")
                path.unlink(missing_ok=True)
            todo.append((part, path))
        if progress:
            progress(done, len(utts))
        n_todo = sum(len(part) for part, _ in todo)
        if workers > 1 and n_todo >= 2 * MIN_CHUNK:
            for part_bad, part_dims, n in _extract_in_pool(extractor, todo, workers,
                                                           utts if hasattr(extractor, "prime") else None):
                bad.extend(part_bad)
                dims = part_dims or dims
                done += n
                if progress:
                    progress(done, len(utts))
        else:
            for part, path in todo:
                part_bad, dims = _extract_and_save(extractor, part, path)
                bad.extend(part_bad)
                done += len(part)
                if progress:
                    progress(done, len(utts))
        bad.sort(key=lambda b: b["uid"])
        notes = _part_notes(entry, len(parts))
        meta = {"corpus": corpus.name, "root": str(corpus.root), "extractor": extractor.name,
                "version": extractor.version, "settings": extractor.settings(), "parts": len(parts),
                "count": len(utts), **dims, "bad_media": bad, "notes": notes,
                "part_sizes": [(entry / f"part-{k:05d}.npz").stat().st_size for k in range(len(parts))]}
        atomic_write_json(entry / "meta.json", meta)
    if bad:
        log.info("%s: %d unreadable media files (cached as zeros, flagged invalid), e.g. %s", extractor.name, len(bad), bad[0])
    return entry


def load_table(entry: Path, uids: Sequence[str] | None = None, frames: bool = True) -> FeatureTable:
    meta = json.loads((entry / "meta.json").read_text())
    all_uids, pooled, valid, seqs = [], [], [], []
    for k in range(meta["parts"]):
        path = entry / f"part-{k:05d}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                all_uids.extend(str(u) for u in z["uids"])
                pooled.append(z["pooled"])
                valid.append(z["valid"])
                if frames and meta.get("frame_dim"):
                    offsets = np.concatenate([[0], np.cumsum(z["frame_lengths"])])
                    fr = z["frames"]
                    seqs.extend(fr[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1))
        except Exception as e:  # noqa: BLE001 - a CRC or zip error inside the part: named, then healed by the caller
            raise DamagedFileError(path, f"{type(e).__name__}: {e}",
                                   fix="run again: the damaged part is extracted again") from None
    table = FeatureTable(meta["extractor"], all_uids, np.concatenate(pooled),
                         seqs if seqs else None, np.concatenate(valid))
    return table.subset(uids) if uids is not None else table


def bad_media(entry: Path) -> list[dict]:
    return json.loads((entry / "meta.json").read_text()).get("bad_media", [])


def _part_notes(entry: Path, n_parts: int) -> dict[str, list[str]]:
    """note -> utterance ids, gathered from every part (fresh or finished before an interruption)."""
    notes: dict[str, list[str]] = {}
    for k in range(n_parts):
        with np.load(entry / f"part-{k:05d}.npz") as z:
            for uid, note in (z["notes"] if "notes" in z.files else []):
                notes.setdefault(str(note), []).append(str(uid))
    return {note: sorted(uids) for note, uids in sorted(notes.items())}


def media_notes(entry: Path) -> dict[str, list[str]]:
    """What the extractor noticed per utterance (e.g. ``{"no_face": [uids]}``); {} for caches made
    before notes were kept."""
    return json.loads((entry / "meta.json").read_text()).get("notes", {})
