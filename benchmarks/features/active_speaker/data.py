"""Data preparation for LipSyncNet: faces tracked in every utterance, RGB crops per track and
aligned log-mel, cached once as ``.npz`` chunks (see :mod:`.train_lipsync` for the whole recipe)."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from merbench.atomic import atomic_write_json

from .lipsync import MEL_PER_FRAME, SAMPLE_RATE, face_crops, log_mel

log = logging.getLogger(__name__)


# -- preparation -----------------------------------------------------------------------------


def prepare_utterance(args: tuple[str, str, str, str, int, float, str, int]) -> dict[str, Any] | None:
    """Tracks, crops and aligned log-mel of one utterance (None if its media cannot be read)."""
    from merbench.errors import MediaError
    from merbench.features.media import read_audio, read_video
    from merbench.features.video import default_detector, select_by_mouth_motion, track_faces

    uid, split, video_path, audio_path, crop_size, margin, region, detect_every = args
    try:
        frames, fps = read_video(video_path, max_frames=0)
        audio = read_audio(audio_path, sr=SAMPLE_RATE)
    except MediaError as e:
        log.warning("%s: skipped (%s)", uid, e)
        return None
    det = _detector_cache.setdefault("d", default_detector())
    last = len(frames) - 1
    tracks = track_faces([det.detect(f) if i % detect_every == 0 or i == last else [] for i, f in enumerate(frames)])
    spf = SAMPLE_RATE / fps
    mel = log_mel(audio, samples_per_frame=spf, n_frames=len(frames))
    crops, xs, all_boxes = [], [], []
    for tr in tracks:
        boxes = tr.filled()
        all_boxes.append(boxes)
        crops.append(face_crops(frames, boxes, crop_size, margin, region))
        xs.append(float(np.mean(boxes[:, 0] + boxes[:, 2] / 2.0)) / frames.shape[2])
    baseline = int(select_by_mouth_motion(tracks, None, frames)) if len(tracks) > 1 else 0
    # Raw frames and audio are kept only where the selector hook is evaluated (several
    # faces, evaluation splits): the training set would not fit in memory otherwise.
    keep = len(tracks) > 1 and split != "train"
    return {"uid": uid, "split": split, "fps": float(fps), "n_frames": len(frames), "mel": mel,
            "crops": crops, "boxes": all_boxes, "track_x": xs, "mouth_motion_choice": baseline, "audio": audio if keep else None,
            "frames": frames if keep else None, "tracks": tracks if keep else None}


_detector_cache: dict[str, Any] = {}


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def prepare_corpus(utterances: Sequence, crop_size: int, margin: float, region: str = "lower", detect_every: int = 3,
                   workers: int = 2) -> list[dict[str, Any]]:
    jobs = [(u.uid, u.meta.get("split", ""), u.video_path, u.audio_path, crop_size, margin, region, detect_every)
            for u in utterances]
    if workers <= 1:
        out = [prepare_utterance(j) for j in jobs]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            out = list(pool.imap(prepare_utterance, jobs, chunksize=8))
    return [o for o in out if o is not None]


# -- the preparation cache -------------------------------------------------------------------

# Bump when prepare_utterance changes what it computes: old cache entries then stop matching.
PREP_VERSION = 1
CACHE_CHUNK = 250  # utterances per cache file: an interrupted preparation resumes at the last full chunk


def corpus_fingerprint(root: Path) -> str:
    """sha256 of the corpus' annotations.csv and generator.json (regeneration changes the key)."""
    h = hashlib.sha256()
    for name in ("annotations.csv", "generator.json"):
        p = Path(root) / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()


def prep_settings(crop_size: int, margin: float, region: str, detect_every: int, corpus_fp: str) -> dict[str, Any]:
    """Everything the prepared crops and log-mels depend on (the cache key is their hash)."""
    return {"prep_version": PREP_VERSION, "crop_size": int(crop_size), "crop_margin": float(margin),
            "crop_region": region, "detect_every": int(detect_every), "sample_rate": SAMPLE_RATE,
            "mel_per_frame": MEL_PER_FRAME, "corpus": corpus_fp}


def cache_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _pack_items(items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Prepared utterances -> flat arrays (np.savez needs no pickling for these)."""
    n_tracks = [len(it["crops"]) for it in items]
    crops = [c for it in items for c in it["crops"]]
    boxes = [b for it in items for b in it.get("boxes", [])]
    kept = [i for i, it in enumerate(items) if it.get("frames") is not None]
    out = {
        "uid": np.array([it["uid"] for it in items], dtype=str),
        "split": np.array([it["split"] for it in items], dtype=str),
        "fps": np.array([it["fps"] for it in items], dtype=np.float64),
        "n_frames": np.array([it["n_frames"] for it in items], dtype=np.int64),
        "n_tracks": np.array(n_tracks, dtype=np.int64),
        "mouth_motion_choice": np.array([it["mouth_motion_choice"] for it in items], dtype=np.int64),
        "track_x": np.array([x for it in items for x in it["track_x"]], dtype=np.float64),
        "mel": np.concatenate([it["mel"] for it in items], axis=1) if items else np.zeros((0, 0), np.float32),
        "crops": np.concatenate(crops) if crops else np.zeros((0, 1, 1, 3), np.uint8),
        "boxes": np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        "kept": np.array(kept, dtype=np.int64),
        "frames": (np.concatenate([items[i]["frames"] for i in kept]) if kept else np.zeros((0, 1, 1, 3), np.uint8)),
        "audio_len": np.array([len(items[i]["audio"]) for i in kept], dtype=np.int64),
        "audio": (np.concatenate([items[i]["audio"] for i in kept]).astype(np.float32) if kept
                  else np.zeros(0, np.float32)),
    }
    return out


def _unpack_items(z: Any) -> list[dict[str, Any]]:
    from merbench.features.video import FaceTrack

    items = []
    mel_at = crop_at = track_i = 0
    kept = {int(i): j for j, i in enumerate(z["kept"])}
    frame_at = np.concatenate([[0], np.cumsum([z["n_frames"][i] for i in z["kept"]])]).astype(np.int64)
    audio_at = np.concatenate([[0], np.cumsum(z["audio_len"])]).astype(np.int64)
    mel_all, crops_all, boxes_all = z["mel"], z["crops"], z["boxes"]
    for i, uid in enumerate(z["uid"]):
        n, k = int(z["n_frames"][i]), int(z["n_tracks"][i])
        mel = mel_all[:, mel_at:mel_at + MEL_PER_FRAME * n]
        mel_at += MEL_PER_FRAME * n
        crops = [crops_all[crop_at + j * n: crop_at + (j + 1) * n] for j in range(k)]
        boxes = [boxes_all[crop_at + j * n: crop_at + (j + 1) * n] for j in range(k)]
        crop_at += k * n
        xs = [float(x) for x in z["track_x"][track_i:track_i + k]]
        track_i += k
        it = {"uid": str(uid), "split": str(z["split"][i]), "fps": float(z["fps"][i]), "n_frames": n, "mel": mel,
              "crops": crops, "boxes": boxes, "track_x": xs, "mouth_motion_choice": int(z["mouth_motion_choice"][i]),
              "audio": None, "frames": None, "tracks": None}
        if i in kept:
            j = kept[i]
            it["frames"] = z["frames"][frame_at[j]:frame_at[j + 1]]
            it["audio"] = z["audio"][audio_at[j]:audio_at[j + 1]]
            it["tracks"] = [FaceTrack([tuple(map(float, b)) for b in bx]) for bx in boxes]
        items.append(it)
    return items


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
        np.savez(fh, **arrays)


def default_cache_dir() -> Path:
    from merbench.paths import cache_root

    return cache_root() / "lipsync_prep"


def prepare_cached(utterances: Sequence, split: str, settings: dict[str, Any], cache_dir: Path | None,
                   workers: int = 2) -> list[dict[str, Any]]:
    """:func:`prepare_corpus` of one split, stored as ``cache_dir/<key>/<split>-NNN-<ids hash>.npz`` chunks
    (atomic writes; loaded with ``allow_pickle=False``). A chunk is reused only when its
    settings key matches and it holds exactly the expected utterance ids, so an interrupted
    run resumes at the first missing chunk. ``cache_dir=None`` disables the cache."""
    args = (settings["crop_size"], settings["crop_margin"], settings["crop_region"], settings["detect_every"])
    if cache_dir is None:
        return prepare_corpus(utterances, *args, workers=workers)
    from merbench.atomic import atomic_write

    folder = Path(cache_dir) / cache_key(settings)
    atomic_write_json(folder / "settings.json", settings)
    out: list[dict[str, Any]] = []
    for c in range(0, max(1, len(utterances)), CACHE_CHUNK):
        chunk = list(utterances[c:c + CACHE_CHUNK])
        expected = [u.uid for u in chunk]
        # The name carries a hash of the chunk's ids, so a subset (--max-train) never overwrites the full set.
        ids_hash = hashlib.sha256("\n".join(expected).encode()).hexdigest()[:8]
        path = folder / f"{split}-{c // CACHE_CHUNK:03d}-{ids_hash}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    data = {k: z[k] for k in z.files}
                # Utterances whose media could not be read are absent: a subset in order is fine.
                ids = [str(x) for x in data["uid"]]
                if set(ids) <= set(expected) and len(data.get("expected", [])) == len(expected) and \
                        [str(x) for x in data["expected"]] == expected:
                    out += _unpack_items(data)
                    log.info("%s: %d prepared utterances from the cache", path, len(ids))
                    continue
                log.warning("%s: holds other utterances than expected; preparing it again", path)
            except (OSError, ValueError, KeyError) as e:
                log.warning("%s: unreadable cache chunk (%s); preparing it again", path, e)
        t0 = time.time()
        items = prepare_corpus(chunk, *args, workers=workers)
        packed = _pack_items(items)
        packed["expected"] = np.array(expected, dtype=str)
        atomic_write(path, lambda p: _savez(p, packed))
        log.info("%s: prepared %d utterances in %.0f s", path, len(items), time.time() - t0)
        out += items
    return out


def read_cues(root: Path) -> dict[str, dict[str, str]]:
    """uid -> cues.csv row (ground truth for evaluation only)."""
    path = Path(root) / "cues.csv"
    if not path.is_file():
        from merbench.errors import CorpusNotFoundError

        raise CorpusNotFoundError(f"{path} is missing: active-speaker evaluation needs the synthetic corpus' cues",
                                  fix="regenerate the synthetic corpus (delete its folder and load it again)")
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["uid"]: r for r in csv.DictReader(fh)}
