"""On-disk feature cache: per (corpus, extractor, version, settings), in numpy parts.

Layout of one cache entry::

    <cache_root>/<corpus>-<corpus fingerprint>/<extractor>/v<version>-<settings hash>/
        meta.json            extractor, settings, dims, bad media (written last)
        part-00000.npz       uids, pooled (n, D), frames (sum T, Df), frame_lengths, valid
        ...

Each part is written atomically, so a killed extraction resumes at the first missing
part. Each part has a lock (``.part-NNNNN.lock``) held while it is extracted, so runs that need the
same entry at once share its parts; the entry's lock (``.lock``) guards meta.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..atomic import HeldLock, atomic_write, atomic_write_json, file_lock
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
    return root / f"{corpus.name}-{corpus_fingerprint(corpus)}" / _extractor_key(extractor)


def _extractor_key(extractor: FeatureExtractor) -> str:
    """The extractor's part of a cache entry's path: ``<name>/v<version>-<settings hash>``."""
    return f"{extractor.name}/v{extractor.version}-{settings_hash(extractor)}"


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
    _write_part(path, arrays)
    return {"dim": dim, "frame_dim": fdim}


def _write_part(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a part's arrays atomically (a killed writer leaves only a ``.tmp`` behind)."""
    def write(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


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


def _part_path(entry: Path, k: int) -> Path:
    return entry / f"part-{k:05d}.npz"


def _part_lock(entry: Path, k: int) -> HeldLock:
    return HeldLock(entry / f".part-{k:05d}.lock")


def _part_ready(entry: Path, k: int, part: Sequence[Utterance], warn: Callable[[str], None]) -> bool:
    """Under part ``k``'s lock: True when a usable part is written; else nothing of it is left (a
    damaged part is named and removed, a half-written one from a killed run deleted)."""
    path = _part_path(entry, k)
    for tmp in entry.glob(f".{path.name}.*.tmp"):  # no live writer: it would hold the lock
        tmp.unlink(missing_ok=True)
    if not path.exists():
        return False
    why = _part_problem(path, [u.uid for u in part])
    if why is None:
        return True
    warn(f"feature cache {path} is damaged ({why}); it is extracted again")
    path.unlink(missing_ok=True)
    return False


def _claim_free_parts(entry: Path, parts: Sequence[Sequence[Utterance]], ks: Sequence[int],
                      warn: Callable[[str], None], elsewhere: list[int]) -> Iterator[tuple[int, HeldLock | None]]:
    """The parts ``ks`` that no other process holds, one at a time, as (k, None) when already written,
    or (k, its lock) when this process must extract it: the lock is held until the caller releases it,
    once the part is written. Parts held by another process (extracting them now) go to ``elsewhere``.
    Claimed one at a time, as work is needed, so that runs extracting one entry at once share its
    parts instead of one waiting for the other."""
    for k in ks:
        lock = _part_lock(entry, k)
        if not lock.take(wait=False):
            elsewhere.append(k)
            continue
        try:
            ready = _part_ready(entry, k, parts[k], warn)
        except BaseException:
            lock.release()
            raise
        if ready:
            lock.release()
            yield k, None
        else:
            yield k, lock


def _extract_in_pool(extractor: FeatureExtractor, claims: Iterator[tuple[int, HeldLock | None]],
                     parts: Sequence[Sequence[Utterance]], entry: Path, workers: int,
                     context: Sequence[Utterance] | None, n_todo: int) -> Iterator[int]:
    """Extract the claimed parts in ``workers`` spawned processes, in chunks of utterances; each part
    is written here as soon as all its chunks are back, and its lock released. Parts are claimed only
    while fewer than two chunks per worker are in flight. Yields the utterances done (extracted, or
    found written) as they come. Same arrays as extracting in this process: each utterance is
    extracted alone by the same code."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    first = None
    for k, lock in claims:  # no pool (seconds to start) unless something is left to extract
        if lock is None:
            yield len(parts[k])
            continue
        first = (k, lock)
        break
    if first is None:
        return
    size = max(MIN_CHUNK, min(max(1, extractor.batch_size), -(-n_todo // (workers * 8))))
    held: dict[int, HeldLock] = {first[0]: first[1]}
    results: dict[int, dict[int, tuple]] = {}
    pending: dict = {}
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(os.getpid(), extractor, context)) as pool:
            def submit(k: int) -> None:
                results[k] = {}
                for i in range(0, len(parts[k]), size):
                    pending[pool.submit(_worker_chunk, parts[k][i:i + size])] = (k, i)

            submit(first[0])
            more = True
            try:
                while pending or more:
                    while more and len(pending) < 2 * workers:
                        nxt = next(claims, None)
                        if nxt is None:
                            more = False
                        elif nxt[1] is None:
                            yield len(parts[nxt[0]])
                        else:
                            held[nxt[0]] = nxt[1]
                            submit(nxt[0])
                    if not pending:
                        continue
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        k, i = pending.pop(fut)
                        items, chunk_bad, failure = fut.result()
                        if failure is not None:
                            uid, path, why, fix = failure
                            raise FeatureExtractionError(
                                f"extractor {extractor.name} failed on {path or 'utterance ' + uid} (utterance {uid}): {why}",
                                fix=fix or "fix or remove that file; the parts finished so far are kept")
                        results[k][i] = (items, chunk_bad)
                        if sum(len(r[0]) for r in results[k].values()) == len(parts[k]):
                            done = results.pop(k)
                            _save_part(_part_path(entry, k), parts[k], [it for j in sorted(done) for it in done[j][0]],
                                       extractor, [b for j in sorted(done) for b in done[j][1]])
                            held.pop(k).release()
                        yield len(items)
            except BrokenProcessPool:
                names = [parts[k][i].audio_path or parts[k][i].video_path or parts[k][i].uid
                         for k, i in list(pending.values())[:workers]]
                raise FeatureExtractionError(
                    f"a worker process of extractor {extractor.name} died (killed, or out of memory) while extracting "
                    f"chunks starting at: {', '.join(str(n) for n in names)}",
                    fix="run again (finished parts are kept); with --workers 1 a crash names its file") from None
            finally:
                for fut in pending:
                    fut.cancel()
    finally:
        for lock in held.values():
            lock.release()


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


def _shape(z, name: str) -> tuple[int, ...]:
    """Shape of array ``name`` of an open npz, read from its header only."""
    with z.zip.open(f"{name}.npy") as fh:
        fmt = np.lib.format
        major, _ = fmt.read_magic(fh)
        return tuple((fmt.read_array_header_1_0(fh) if major == 1 else fmt.read_array_header_2_0(fh))[0])


def _rows(z, name: str) -> int:
    shape = _shape(z, name)
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
        path = _part_path(entry, k)
        why = _part_problem(path, [u.uid for u in part], sizes[k])
        if why:
            out.append((path, why))
    return out


def _read_part_summary(path: Path) -> tuple[list[dict], list[tuple[str, str]], dict]:
    """(unreadable files, (uid, note) pairs, dims) of one written part; raises when it does not load."""
    with np.load(path, allow_pickle=False) as z:
        bad = [{"uid": str(u), "path": str(p), "reason": str(r)} for u, p, r in (z["bad"] if "bad" in z.files else [])]
        notes = [(str(uid), str(note)) for uid, note in (z["notes"] if "notes" in z.files else [])]
        frames = _shape(z, "frames")
        dims = {"dim": int(_shape(z, "pooled")[1]), "frame_dim": int(frames[1]) if len(frames) == 2 and frames[0] else 0}
    return bad, notes, dims


def _recorded_size(entry: Path, k: int) -> int | None:
    """The size meta.json recorded for part ``k`` (None when it records none)."""
    try:
        sizes = json.loads((entry / "meta.json").read_text()).get("part_sizes") or []
        return sizes[k] if k < len(sizes) else None
    except (OSError, ValueError, AttributeError):
        return None


def _entry_summary(entry: Path, n_parts: int) -> tuple[dict | None, tuple[int, str] | None]:
    """What meta.json says of the written parts (dims, unreadable files, notes, part sizes), read from
    every part, whichever process wrote it; or (None, (part, why)) for a part missing or not loading
    (removed by another run since, or damaged inside)."""
    bad: list[dict] = []
    notes: dict[str, list[str]] = {}
    dims: dict = {}
    sizes = []
    for k in range(n_parts):
        path = _part_path(entry, k)
        try:
            sizes.append(path.stat().st_size)
            part_bad, part_notes, part_dims = _read_part_summary(path)
        except Exception as e:  # noqa: BLE001 - missing or damaged: the caller extracts it again
            return None, (k, f"{type(e).__name__}: {e}")
        bad.extend(part_bad)
        for uid, note in part_notes:
            notes.setdefault(note, []).append(uid)
        dims = dims or part_dims
    bad.sort(key=lambda b: b["uid"])
    return {**dims, "bad_media": bad, "notes": {note: sorted(uids) for note, uids in sorted(notes.items())},
            "part_sizes": sizes}, None


def _clean_stale_tmp(entry: Path) -> None:
    """Half-written parts of a run that was killed, in a finished entry (no live writer: it would
    hold the part's lock)."""
    for tmp in entry.glob(".part-*.npz.*.tmp"):
        lock = _part_lock(entry, int(tmp.name.split(".")[1].split("-")[1]))
        if lock.take(wait=False):
            try:
                tmp.unlink(missing_ok=True)
            finally:
                lock.release()


def extract_corpus(corpus: Corpus, extractor: FeatureExtractor, *, cache: Path | None = None,
                   progress: Callable[[int, int], None] | None = None, workers: int = 1,
                   warn: Callable[[str], None] | None = None) -> Path:
    """Extract (or finish extracting) features for every utterance of ``corpus``.

    ``workers`` > 1 extracts in that many spawned processes, chunk by chunk (the extractor is
    pickled to each once; the parts are written here); :func:`default_workers` says how many suit
    an extractor. Runs extracting the same entry at once share it part by part (each part has its
    own lock): each extracts the parts nobody holds, then waits for those held elsewhere. A damaged
    part (cut short, not loadable) is named through ``warn`` and extracted again."""
    warn = warn or log.warning
    if hasattr(extractor, "bind"):
        extractor.bind(corpus.name)  # e.g. a feature pack whose path names {dataset}
    entry = entry_dir(corpus, extractor, cache)
    entry.mkdir(parents=True, exist_ok=True)
    # Extractors get no labels or annotations besides media timing: the cache is shared by
    # every protocol and method, so nothing in it may depend on a label.
    utts = [u.for_extraction() for u in corpus.utterances]
    parts = [utts[i:i + PART_SIZE] for i in range(0, len(utts), PART_SIZE)]
    with file_lock(entry / ".lock"):
        if (entry / "meta.json").exists():
            damaged = _damaged_parts(entry, parts)
            if not damaged:
                _clean_stale_tmp(entry)
                if progress:
                    progress(len(corpus), len(corpus))
                return entry
            for path, why in damaged:
                warn(f"feature cache {path} is damaged ({why}); it is extracted again")
                if path.name != "meta.json":
                    k = int(path.stem.split("-")[1])
                    lock = _part_lock(entry, k)
                    lock.take()  # a run checking that part holds it briefly
                    try:
                        if _part_problem(path, [u.uid for u in parts[k]], _recorded_size(entry, k)) is not None:
                            path.unlink(missing_ok=True)  # still damaged (not rewritten while we waited)
                    finally:
                        lock.release()
            (entry / "meta.json").unlink(missing_ok=True)
    if hasattr(extractor, "prime"):
        # Extractors that read context across utterances (e.g. earlier turns of a dialogue)
        # see the whole corpus first, so a resumed extraction gives the same features.
        extractor.prime(utts)
    wider = _finished_wider_entry(entry, extractor, parts)
    done = 0
    if progress:
        progress(done, len(utts))
    remaining = list(range(len(parts)))
    while True:
        while remaining:
            elsewhere: list[int] = []
            claims = _claim_free_parts(entry, parts, remaining, warn, elsewhere)
            n_todo = sum(len(parts[k]) for k in remaining if not _part_path(entry, k).exists())
            if workers > 1 and n_todo >= 2 * MIN_CHUNK and wider is None:
                counts = _extract_in_pool(extractor, claims, parts, entry, workers,
                                          utts if hasattr(extractor, "prime") else None, n_todo)
            else:
                counts = _extract_serially(extractor, claims, parts, entry, wider, warn)
            try:
                for n in counts:
                    done += n
                    if progress:
                        progress(done, len(utts))
            finally:  # e.g. a progress callback that raised: let go of the pool and every part lock now
                counts.close()
                claims.close()
            if not elsewhere:
                break
            # Another run holds these parts: wait for the first (holding nothing, so two runs never
            # wait for each other), then look at all of them again; a part its holder left
            # unwritten (it failed, or was killed) is claimed and extracted here.
            k = elsewhere[0]
            log.info("%s: waiting for part %d, extracted by another run", extractor.name, k)
            lock = _part_lock(entry, k)
            lock.take()
            try:
                ready = _part_ready(entry, k, parts[k], warn)
            finally:
                lock.release()
            if ready:
                done += len(parts[k])
                if progress:
                    progress(done, len(utts))
                elsewhere.pop(0)
            remaining = elsewhere
        with file_lock(entry / ".lock"):
            if (entry / "meta.json").exists():  # written by a run that finished at the same time
                return entry
            summary, problem = _entry_summary(entry, len(parts))
            if summary is not None:
                for tmp in entry.glob(".meta.json.*.tmp"):
                    tmp.unlink(missing_ok=True)
                meta = {"corpus": corpus.name, "root": str(corpus.root), "extractor": extractor.name,
                        "version": extractor.version, "settings": extractor.settings(), "parts": len(parts),
                        "count": len(utts), **summary}
                if wider is not None:  # where the numbers came from (this run copied at least some)
                    meta["pooled_from"] = f"{wider.parent.name}/{wider.name}"
                atomic_write_json(entry / "meta.json", meta)
                break
        # A part went missing since (a run that found it damaged removed it), or is damaged inside.
        k, why = problem
        lock = _part_lock(entry, k)
        lock.take()
        try:
            try:
                _read_part_summary(_part_path(entry, k))  # written meanwhile by a run that held it: fine
            except FileNotFoundError:
                pass
            except Exception:  # noqa: BLE001 - damaged inside
                warn(f"feature cache {_part_path(entry, k)} is damaged ({why}); it is extracted again")
                _part_path(entry, k).unlink(missing_ok=True)
        finally:
            lock.release()
        remaining = list(range(len(parts)))
        done = 0
    if summary["bad_media"]:
        log.info("%s: %d unreadable media files (cached as zeros, flagged invalid), e.g. %s", extractor.name,
                 len(summary["bad_media"]), summary["bad_media"][0])
    return entry


def _extract_serially(extractor: FeatureExtractor, claims: Iterator[tuple[int, HeldLock | None]],
                      parts: Sequence[Sequence[Utterance]], entry: Path, wider: Path | None = None,
                      warn: Callable[[str], None] = log.warning) -> Iterator[int]:
    """Extract the claimed parts in this process, one after another (or copy them from the finished
    entry ``wider``, see :func:`_finished_wider_entry`); yields utterances done."""
    for k, lock in claims:
        if lock is not None:
            try:
                copied = False
                if wider is not None:
                    try:
                        _save_pooled_part(_part_path(wider, k), _part_path(entry, k))
                        copied = True
                    except Exception as e:  # noqa: BLE001 - damaged inside, or removed since: compute it
                        warn(f"feature cache {_part_path(wider, k)} could not be copied ({type(e).__name__}: {e}); "
                             f"part {k} is extracted instead")
                if not copied:
                    _extract_and_save(extractor, parts[k], _part_path(entry, k))
            finally:
                lock.release()
        yield len(parts[k])


def _finished_wider_entry(entry: Path, extractor: FeatureExtractor,
                          parts: Sequence[Sequence[Utterance]]) -> Path | None:
    """A finished, undamaged cache entry that holds this pooled-only extractor's features already: the
    entry of its both-levels twin (``extractor.pooled_from()``, e.g. openSMILE functionals + LLDs),
    whose pooled arrays are the same numbers. None when there is none."""
    twin = extractor.pooled_from() if hasattr(extractor, "pooled_from") else None
    if twin is None:
        return None
    wider = entry.parent.parent / _extractor_key(twin)  # same corpus folder: no second fingerprint
    if not (wider / "meta.json").exists() or _damaged_parts(wider, parts):
        return None
    return wider


def _save_pooled_part(source: Path, path: Path) -> None:
    """Part ``path`` of a pooled-only entry, from part ``source`` of its both-levels twin: the same
    arrays as extracting it (uids, unreadable files, notes, pooled, valid), without frames."""
    with np.load(source, allow_pickle=False) as z:
        n = len(z["uids"])
        # Parts written before unreadable files and notes were kept in them have neither array.
        bad = z["bad"] if "bad" in z.files else np.zeros((0, 3), dtype=str)
        notes = z["notes"] if "notes" in z.files else np.zeros((0, 2), dtype=str)
        arrays = {"uids": z["uids"], "bad": bad, "notes": notes, "pooled": z["pooled"], "valid": z["valid"],
                  "frame_lengths": np.zeros(n, dtype=np.int64), "frames": np.zeros((0, 0), dtype=np.float32)}
    _write_part(path, arrays)


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


def media_notes(entry: Path) -> dict[str, list[str]]:
    """What the extractor noticed per utterance (e.g. ``{"no_face": [uids]}``); {} for caches made
    before notes were kept."""
    return json.loads((entry / "meta.json").read_text()).get("notes", {})
