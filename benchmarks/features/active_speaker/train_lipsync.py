"""Train LipSyncNet on the synthetic corpus and measure it.

    python -m merbench.features.active_speaker.train_lipsync      # defaults = the published checkpoint

writes ``$MERBENCH_HOME/models/lipsync/lipsync.pt`` (where ``select_track: lipsync`` looks) and
``metrics.json`` beside it; ``--out DIR`` writes elsewhere.

Data (no label of who speaks is used for training):

- every utterance: frames -> faces (the suite's detector, every 3rd frame) -> tracks
  (:func:`merbench.features.video.track_faces`) -> RGB crops per track; audio -> aligned
  log-mel (:func:`lipsync.log_mel`). This preparation (minutes of face detection) is cached
  once as ``.npz`` chunks under ``$MERBENCH_HOME/features/lipsync_prep/<settings hash>/``
  (:func:`prepare_cached`: atomic writes, ``allow_pickle=False``, keyed by crop settings and
  the corpus' annotation files, resumable chunk by chunk);
- training windows come from TRAIN-split utterances in which exactly one face track was
  found: that face is the speaker, so (its window, the same time's audio) is a positive.
  Default (``--negatives group``): a step takes ``--batch-size`` utterances and all their
  windows; every window is ranked against the audio of every window of the same utterance
  ``--min-shift`` (2) or more frames away (the same face and voice at another time), with the
  spec's loss averaged over those pairs. ``--negatives random`` is the earlier sampler (one
  random shifted window per positive). Another utterance's face is not used as a negative
  (``--other-face`` to add it): faces and voices are persistent identities in the corpus.
  The original instead pseudo-labels the faces of multi-face clips with a pretrained SyncNet
  (not available offline).

Evaluation (model fixed after the last epoch; decision thresholds chosen on VALID only):

- sync accuracy (``sync``): pairs (face window, its audio) vs (face window, audio shifted by
  ``--eval-min-shift`` (3)+ frames) from single-track utterances, 4 per utterance, fixed seeds;
  the distance threshold is the one with the best accuracy on VALID, the accuracy is measured
  on TEST (balanced pairs). ``sync_voiced``: the same with anchors drawn among voiced windows
  only (at least half of the 5 frames within the level threshold of speech, that threshold
  being Otsu's cut of the TRAIN frame levels, :func:`voiced_threshold`), identical rule on
  VALID and TEST. ``sync_context{c}``: clips of ``5 + 2c`` frames, scored by the mean network
  distance of their ``2c + 1`` windows (the selector averages windows the same way);
- active-speaker accuracy: TEST utterances with two or more tracks whose cues.csv says two
  faces are in the frame: the selected track (smallest mean distance) is right when its
  side of the frame (mean box centre left / right of the middle) is the speaker's side in
  cues.csv. cues.csv is read only here, as ground truth. The suite's default selector
  (mouth motion, no audio) is scored on the same utterances for comparison.

Writes ``OUT/lipsync.pt`` (atomic) and ``OUT/metrics.json`` (atomic).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from merbench.atomic import atomic_write_json

from .lipsync import (AVSyncLoss, LipSyncConfig, LipSyncNet, MEL_PER_FRAME, SAMPLE_RATE, audio_window, count_parameters,
                      face_crops, frame_levels_db, log_mel, save_checkpoint, utterance_windows, video_window,
                      window_distances, window_voiced_fraction)

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


# -- training ----------------------------------------------------------------------------------


def _batch(items: list[dict], rng: np.random.Generator, window: int, min_shift: int, center: bool = True
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Video windows, their own audio windows, and the same faces' audio from another time."""
    vids, auds, shifted = [], [], []
    for it in items:
        crops, mel = it["crops"][0], it["mel"]
        n = min(len(crops), mel.shape[1] // MEL_PER_FRAME)
        k = int(rng.integers(0, n - window + 1))
        far = [s for s in range(0, n - window + 1) if abs(s - k) >= min_shift]
        s = int(rng.choice(far))
        vids.append(video_window(crops, k, window, center))
        auds.append(audio_window(mel, k, window))
        shifted.append(audio_window(mel, s, window))
    return (torch.from_numpy(np.stack(vids)), torch.from_numpy(np.stack(auds)), torch.from_numpy(np.stack(shifted)))


def train_step(model: LipSyncNet, loss_fn: AVSyncLoss, video: torch.Tensor, audio: torch.Tensor,
               audio_shifted: torch.Tensor, other_face: bool = False) -> torch.Tensor:
    """Loss of one batch: each positive is ranked against its shifted-audio negative and,
    with ``other_face``, also against another utterance's face (the next one in the batch)
    paired with its audio. Off by default: faces and voices are persistent identities in
    the synthetic corpus, so that negative can be solved by matching voice to face instead
    of lips to sound."""
    v = model.encode_video(video)
    a = model.encode_audio(torch.cat([audio, audio_shifted]))
    a_pos, a_shift = a[: len(video)], a[len(video):]
    d_pos = (v - a_pos).norm(dim=1)
    d_shift = (v - a_shift).norm(dim=1)
    if not other_face:
        return loss_fn(d_pos, d_shift)
    d_other = (v.roll(1, dims=0) - a_pos).norm(dim=1)
    return loss_fn(torch.cat([d_pos, d_pos]), torch.cat([d_shift, d_other]))


def group_step(model: LipSyncNet, loss_fn: AVSyncLoss, groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
               min_shift: int) -> torch.Tensor:
    """Loss of one step on windows grouped by utterance: ``groups`` holds (video windows,
    audio windows, start frames) of one face track each. Every video window is ranked
    against the audio of *every* other chosen window of the same utterance that starts
    ``min_shift`` or more frames away (the same face and voice, another time: exactly the
    evaluation's negatives), so one forward pass yields many negatives per positive."""
    v = model.encode_video(torch.from_numpy(np.concatenate([g[0] for g in groups])))
    a = model.encode_audio(torch.from_numpy(np.concatenate([g[1] for g in groups])))
    d_pos = (v - a).norm(dim=1)
    pos_idx, neg_a, off = [], [], 0
    for _, _, st in groups:
        far = np.abs(st[:, None] - st[None, :]) >= min_shift  # (n, n): anchor i, audio j
        i, j = np.nonzero(far)
        pos_idx.append(i + off)
        neg_a.append(j + off)
        off += len(st)
    pi = torch.from_numpy(np.concatenate(pos_idx))
    d_neg = (v[pi] - a[torch.from_numpy(np.concatenate(neg_a))]).norm(dim=1)
    return loss_fn(d_pos, d_neg, pos_index=pi)


def train(model: LipSyncNet, items: list[dict], epochs: int, batch_size: int = 12, windows_per_utt: int = 4,
          lr: float = 3e-4, weight_decay: float = 1e-4, min_shift: int = 2, window: int = 5, seed: int = 0,
          log_every: int = 50, center: bool = True, other_face: bool = False, negatives: str = "random",
          warmup_steps: int = 0) -> list[dict[str, float]]:
    """AdamW + cosine schedule over all steps (after ``warmup_steps`` of linear warm-up).

    ``negatives="random"``: an epoch draws ``windows_per_utt`` random windows from every
    training utterance, ``batch_size`` windows a step, each with one shifted-audio negative.
    ``negatives="group"``: a step takes ``batch_size`` utterances and ``windows_per_utt``
    distinct random windows of each (0 = all), every window ranked against all windows of its
    utterance ``min_shift`` or more frames away (:func:`group_step`); an epoch visits every
    training utterance once. Returns per-epoch mean losses."""
    if negatives not in ("random", "group"):
        raise ValueError(f"negatives must be 'random' or 'group', got {negatives!r}")
    usable = [it for it in items if len(it["crops"]) == 1 and it["n_frames"] >= window + min_shift]
    if len(usable) < 2:
        raise ValueError(f"only {len(usable)} single-face training utterances of >= {window + min_shift} frames; "
                         "need at least 2 (generate a larger corpus)")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    loss_fn = AVSyncLoss(margin=1.5, alpha=0.7)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if negatives == "group":
        return _train_groups(model, usable, epochs, batch_size, windows_per_utt, opt, loss_fn, rng, min_shift, window,
                             center, log_every, warmup_steps)
    steps_per_epoch = max(1, (len(usable) * windows_per_utt) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    history = []
    for ep in range(epochs):
        model.train()
        order = np.concatenate([rng.permutation(len(usable)) for _ in range(windows_per_utt)])
        total, t0 = 0.0, time.time()
        for st in range(steps_per_epoch):
            idx = order[st * batch_size:(st + 1) * batch_size]
            if len(idx) < 2:
                continue
            v, a, a_s = _batch([usable[i] for i in idx], rng, window, min_shift, center)
            loss = train_step(model, loss_fn, v, a, a_s, other_face)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            if log_every and (st + 1) % log_every == 0:
                log.info("epoch %d step %d/%d loss %.4f", ep + 1, st + 1, steps_per_epoch, total / (st + 1))
        history.append({"epoch": ep + 1, "loss": total / steps_per_epoch, "seconds": time.time() - t0})
        log.info("epoch %d: loss %.4f (%.0f s)", ep + 1, history[-1]["loss"], history[-1]["seconds"])
    model.eval()
    return history


def _schedule(opt: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup`` steps, then cosine decay to 0 at ``total``."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def _train_groups(model: LipSyncNet, usable: list[dict], epochs: int, utts_per_step: int, windows_per_utt: int,
                  opt: torch.optim.Optimizer, loss_fn: AVSyncLoss, rng: np.random.Generator, min_shift: int, window: int,
                  center: bool, log_every: int, warmup_steps: int) -> list[dict[str, float]]:
    steps_per_epoch = max(1, math.ceil(len(usable) / utts_per_step))
    sched = _schedule(opt, epochs * steps_per_epoch, warmup_steps)
    history = []
    for ep in range(epochs):
        model.train()
        order = rng.permutation(len(usable))
        total, t0, done = 0.0, time.time(), 0
        for st in range(steps_per_epoch):
            groups = []
            for i in order[st * utts_per_step:(st + 1) * utts_per_step]:
                it = usable[int(i)]
                crops, mel = it["crops"][0], it["mel"]
                n = min(len(crops), mel.shape[1] // MEL_PER_FRAME)
                starts = np.arange(n - window + 1)
                if windows_per_utt and len(starts) > windows_per_utt:
                    starts = np.sort(rng.choice(starts, windows_per_utt, replace=False))
                v, a = utterance_windows(crops, mel, window, center, starts)
                groups.append((v, a, starts))
            if not any((np.abs(g[2][:, None] - g[2][None, :]) >= min_shift).any() for g in groups):
                continue  # no window of any utterance has a far enough partner: nothing to rank
            loss = group_step(model, loss_fn, groups, min_shift)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            done += 1
            if log_every and (st + 1) % log_every == 0:
                log.info("epoch %d step %d/%d loss %.4f lr %.2e", ep + 1, st + 1, steps_per_epoch, total / done,
                         sched.get_last_lr()[0])
        history.append({"epoch": ep + 1, "loss": total / max(1, done), "seconds": time.time() - t0})
        log.info("epoch %d: loss %.4f (%.0f s)", ep + 1, history[-1]["loss"], history[-1]["seconds"])
    model.eval()
    return history


# -- evaluation --------------------------------------------------------------------------------


def otsu_threshold(x: np.ndarray, bins: int = 256) -> float:
    """The cut of a bimodal sample maximising the between-class variance (Otsu 1979)."""
    x = np.asarray(x, dtype=np.float64)
    hist, edges = np.histogram(x, bins=bins)
    p = hist / max(1, hist.sum())
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * mids)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


VOICED_MIN_FRACTION = 0.5  # a window is "voiced" when at least half of its frames are


def voiced_threshold(train_items: list[dict]) -> dict[str, float]:
    """Frame-level threshold (dB below the utterance's loudest frame) separating speech from
    pauses and silence, from TRAIN only: Otsu's cut of :func:`frame_levels_db` over every frame
    of every single-face TRAIN utterance. The same number is then applied to VALID and TEST."""
    levels = [frame_levels_db(it["mel"])[:it["n_frames"]] for it in train_items if len(it["crops"]) == 1]
    e = np.concatenate(levels) if levels else np.zeros(0)
    if not len(e):
        raise ValueError("no single-face TRAIN utterances to choose the voiced-frame threshold from")
    thr = otsu_threshold(e)
    return {"frame_threshold_db": thr, "min_voiced_fraction": VOICED_MIN_FRACTION, "n_train_frames": int(len(e)),
            "train_fraction_voiced_frames": float(np.mean(e >= thr))}


@torch.no_grad()
def sync_pairs(model: LipSyncNet, items: list[dict], window: int = 5, min_shift: int = 3, pairs_per_utt: int = 4,
               seed: int = 0, center: bool = True, voiced_db: float | None = None, context: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Distances of in-sync pairs (label 1) and shifted-audio pairs (label 0), equal numbers,
    from single-track utterances.

    A pair is a face clip of ``window + 2 * context`` frames with the audio of the same time
    (label 1) or of a clip starting ``min_shift`` or more frames away (label 0). Its distance is
    the mean of the network's distances over the clip's ``2 * context + 1`` consecutive windows
    (context 0: one window, the network's own input). With ``voiced_db`` the anchor clip is
    drawn only among voiced clips (:func:`window_voiced_fraction` >= ``VOICED_MIN_FRACTION``
    with that frame threshold: a sync test in silence is undefined); the shifted audio may be
    any clip. The same ``seed`` draws the same clips whatever the model."""
    rng = np.random.default_rng(seed)
    span = window + 2 * context
    dist, labels = [], []
    model.eval()
    for it in items:
        if len(it["crops"]) != 1:
            continue
        crops, mel = it["crops"][0], it["mel"]
        n = min(len(crops), mel.shape[1] // MEL_PER_FRAME)
        if n < span + min_shift:
            continue
        positions = np.arange(n - span + 1)
        # Anchors need a clip min_shift or more frames away (a middle clip of a short utterance may have none).
        anchors = positions[np.maximum(positions, positions[-1] - positions) >= min_shift]
        if voiced_db is not None:
            anchors = anchors[window_voiced_fraction(mel, anchors, span, voiced_db) >= VOICED_MIN_FRACTION]
        if not len(anchors):
            continue
        every = voiced_db is None and len(anchors) == len(positions)
        pairs = []
        for _ in range(pairs_per_utt):
            # (the integers() draw when every clip qualifies keeps the pairs of earlier versions)
            k = int(rng.integers(0, n - span + 1)) if every else int(rng.choice(anchors))
            far = [s for s in range(0, n - span + 1) if abs(s - k) >= min_shift]
            pairs.append((k, int(rng.choice(far))))
        # Embed every window of the utterance once; a pair's distance reads the (video, audio) matrix.
        v, a = utterance_windows(crops, mel, window, center)
        D = torch.cdist(model.encode_video(torch.from_numpy(v)), model.encode_audio(torch.from_numpy(a))).numpy()
        o = np.arange(2 * context + 1)
        for k, s in pairs:
            dist += [float(D[k + o, k + o].mean()), float(D[k + o, s + o].mean())]
            labels += [1, 0]
    return np.asarray(dist, dtype=np.float64), np.asarray(labels)


def best_threshold(d: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of the rule "in sync iff distance < threshold"."""
    cands = np.unique(d)
    mids = np.concatenate([[cands[0] - 1e-6], (cands[1:] + cands[:-1]) / 2, [cands[-1] + 1e-6]])
    accs = [float(np.mean((d < t) == (y == 1))) for t in mids]
    i = int(np.argmax(accs))
    return float(mids[i]), accs[i]


def auc(d: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, -d))


def active_speaker_eval(model: LipSyncNet, items: list[dict], cues: dict[str, dict[str, str]],
                        config: LipSyncConfig) -> dict[str, Any]:
    """Accuracy of picking the speaker's face among several tracks, against cues.csv."""
    from .selector import LipSyncSelector

    hook = LipSyncSelector(model, config)  # the extractor's path: rate inferred from audio length
    n = {"lipsync": 0, "lipsync_hook": 0, "mouth_motion": 0, "random_expected": 0.0}
    by_mouth: dict[str, list[int]] = {}
    considered = skipped_no_two_faces = 0
    for it in items:
        if len(it["crops"]) < 2:
            continue
        cue = cues.get(it["uid"], {})
        side = cue.get("speaker_side", "")
        if side not in ("left", "right"):
            skipped_no_two_faces += 1  # spurious second track on a one-face clip
            continue
        considered += 1
        dists = [window_distances(model, c, it["mel"], stride=1, window=config.window_frames,
                                  center=config.center_window) for c in it["crops"]]
        means = [float(x.mean()) if len(x) else math.inf for x in dists]
        sides = ["left" if x < 0.5 else "right" for x in it["track_x"]]
        ok = sides[int(np.argmin(means))] == side
        n["lipsync"] += ok
        n["lipsync_hook"] += sides[hook(it["tracks"], it["audio"], it["frames"])] == side
        n["mouth_motion"] += sides[it["mouth_motion_choice"]] == side
        n["random_expected"] += sum(s == side for s in sides) / len(sides)
        by_mouth.setdefault(cue.get("listener_mouth", "?") or "?", []).append(int(ok))
    acc = {k: (v / considered if considered else float("nan")) for k, v in n.items()}
    return {"n_utterances": considered, "skipped_spurious_tracks": skipped_no_two_faces,
            "accuracy": acc["lipsync"], "accuracy_hook_inferred_rate": acc["lipsync_hook"],
            "accuracy_mouth_motion_baseline": acc["mouth_motion"], "accuracy_random_expected": acc["random_expected"],
            "accuracy_by_listener_mouth": {k: float(np.mean(v)) for k, v in sorted(by_mouth.items())},
            "n_by_listener_mouth": {k: len(v) for k, v in sorted(by_mouth.items())}}


def sync_metrics(model: LipSyncNet, by_split: dict[str, list[dict]], config: LipSyncConfig, eval_min_shift: int = 3,
                 voiced_db: float | None = None, context: int = 0) -> dict[str, Any]:
    """Sync accuracy on TEST with the distance threshold that is best on VALID (never tuned on TEST)."""
    window, center = config.window_frames, config.center_window
    dv, yv = sync_pairs(model, by_split["valid"], window, eval_min_shift, seed=1, center=center, voiced_db=voiced_db,
                        context=context)
    dt, yt = sync_pairs(model, by_split["test"], window, eval_min_shift, seed=2, center=center, voiced_db=voiced_db,
                        context=context)
    thr, acc_v = best_threshold(dv, yv)
    return {"threshold_from_valid": thr, "valid_accuracy": acc_v,
            "test_accuracy": float(np.mean((dt < thr) == (yt == 1))), "valid_auc": auc(dv, yv),
            "test_auc": auc(dt, yt), "n_valid_pairs": int(len(yv)), "n_test_pairs": int(len(yt)),
            "min_shift_frames": eval_min_shift, "context_windows_each_side": context,
            "clip_frames": window + 2 * context,
            "test_mean_distance_in_sync": float(dt[yt == 1].mean()),
            "test_mean_distance_shifted": float(dt[yt == 0].mean())}


def evaluate(model: LipSyncNet, by_split: dict[str, list[dict]], cues: dict[str, dict[str, str]], config: LipSyncConfig,
             eval_min_shift: int = 3, voiced: dict[str, float] | None = None, contexts: Sequence[int] = (2,)
             ) -> dict[str, Any]:
    """``sync``: single windows (the network's input), all of them; ``sync_voiced`` (when
    ``voiced`` from :func:`voiced_threshold` on TRAIN is given): anchors restricted to voiced
    windows, the same rule on VALID and TEST; ``sync_context{c}`` (and its voiced variant):
    clips of ``window + 2c`` frames scored by the mean distance of their ``2c + 1`` windows."""
    out = {"sync": sync_metrics(model, by_split, config, eval_min_shift)}
    if voiced is not None:
        out["sync_voiced"] = dict(sync_metrics(model, by_split, config, eval_min_shift, voiced["frame_threshold_db"]),
                                  voiced_rule=voiced)
    for c in contexts:
        out[f"sync_context{c}"] = sync_metrics(model, by_split, config, eval_min_shift, context=c)
        if voiced is not None:
            out[f"sync_voiced_context{c}"] = sync_metrics(model, by_split, config, eval_min_shift,
                                                          voiced["frame_threshold_db"], context=c)
    out["active_speaker_test"] = active_speaker_eval(model, by_split["test"], cues, config)
    out["active_speaker_valid"] = active_speaker_eval(model, by_split["valid"], cues, config)
    return out


# -- entry point -----------------------------------------------------------------------------


def default_out() -> Path:
    """Where the method's ``lipsync`` selector loads its checkpoint from by default."""
    from merbench.paths import home

    return home() / "models" / "lipsync"


# Defaults of run() and the CLI: the configuration of the published checkpoint (README "Measured").
DEFAULTS = {"epochs": 3, "negatives": "group", "batch_size": 2, "windows_per_utt": 0, "min_shift": 2, "lr": 3e-4,
            "warmup_steps": 100, "weight_decay": 1e-4, "threads": 1}


def run(out: Path, epochs: int = DEFAULTS["epochs"], corpus_root: Path | None = None, crop_size: int = 32,
        batch_size: int = DEFAULTS["batch_size"], windows_per_utt: int = DEFAULTS["windows_per_utt"],
        lr: float = DEFAULTS["lr"], seed: int = 0, workers: int = 2, threads: int = DEFAULTS["threads"],
        max_train: int | None = None, other_face: bool = False, negatives: str = DEFAULTS["negatives"],
        min_shift: int = DEFAULTS["min_shift"], warmup_steps: int = DEFAULTS["warmup_steps"],
        weight_decay: float = DEFAULTS["weight_decay"], cache_dir: Path | None = None, eval_min_shift: int = 3,
        contexts: Sequence[int] = (2,)) -> dict[str, Any]:
    from merbench.datasets.synthetic.adapter import SyntheticDataset

    torch.set_num_threads(max(1, threads))
    t_start = time.time()
    ds = SyntheticDataset(root=corpus_root) if corpus_root else SyntheticDataset()
    corpus = ds.load()
    cues = read_cues(ds.root)
    cfg = LipSyncConfig(crop_size=crop_size)
    utts = {s: [u for u in corpus.utterances if u.meta.get("split") == s] for s in ("train", "valid", "test")}
    if max_train:
        utts["train"] = utts["train"][:max_train]
    settings = prep_settings(cfg.crop_size, cfg.crop_margin, cfg.crop_region, 3, corpus_fingerprint(ds.root))
    by_split = {s: prepare_cached(us, s, settings, cache_dir, workers=workers) for s, us in utts.items()}
    t_prep = time.time() - t_start
    log.info("prepared %s utterances in %.0f s", {s: len(v) for s, v in by_split.items()}, t_prep)
    voiced = voiced_threshold(by_split["train"])
    torch.manual_seed(seed)  # the initial weights too: the same arguments give the same checkpoint
    model = LipSyncNet(embed_dim=cfg.embed_dim, dropout=cfg.dropout)
    t0 = time.time()
    history = train(model, by_split["train"], epochs, batch_size=batch_size, windows_per_utt=windows_per_utt, lr=lr,
                    weight_decay=weight_decay, min_shift=min_shift, window=cfg.window_frames, seed=seed,
                    center=cfg.center_window, other_face=other_face, negatives=negatives, warmup_steps=warmup_steps)
    t_train = time.time() - t0
    out = Path(out)
    save_checkpoint(out / "lipsync.pt", model, cfg, extra={"epochs": epochs, "seed": seed, "negatives": negatives,
                                                           "min_shift": min_shift, "lr": lr})
    t0 = time.time()
    metrics = evaluate(model, by_split, cues, cfg, eval_min_shift=eval_min_shift, voiced=voiced, contexts=contexts)
    metrics.update({
        "command": " ".join([Path(sys.executable).name, "-m", __spec__.name if __spec__ else __name__] + sys.argv[1:]),
        "corpus_root": str(ds.root), "config": asdict(cfg), "prep_settings": settings,
        "training": {"epochs": epochs, "negatives": negatives, "batch_size": batch_size,
                     "batch_unit": "utterances" if negatives == "group" else "windows",
                     "windows_per_utterance": windows_per_utt, "min_shift_frames": min_shift,
                     "other_face_negatives": other_face, "lr": lr, "warmup_steps": warmup_steps,
                     "weight_decay": weight_decay, "seed": seed, "history": history,
                     "n_train_single_face_utterances": sum(len(it["crops"]) == 1 for it in by_split["train"])},
        "n_utterances": {s: len(v) for s, v in by_split.items()},
        "n_parameters": count_parameters(model),
        "seconds": {"prepare": t_prep, "train": t_train, "evaluate": time.time() - t0, "total": time.time() - t_start},
        "torch_threads": torch.get_num_threads(),
    })
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train and evaluate LipSyncNet on the synthetic corpus.")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder for lipsync.pt and metrics.json (default: $MERBENCH_HOME/models/lipsync, "
                        "where the method's lipsync selector looks)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--corpus-root", type=Path, default=None, help="synthetic corpus folder (default: the suite's)")
    p.add_argument("--crop-size", type=int, default=32)
    p.add_argument("--negatives", choices=("random", "group"), default=DEFAULTS["negatives"],
                   help="group: all windows of an utterance ranked against each other; random: one shifted window each")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                   help="windows per step (--negatives random) or utterances per step (--negatives group)")
    p.add_argument("--windows-per-utt", type=int, default=DEFAULTS["windows_per_utt"],
                   help="random windows per training utterance per epoch (group: per step, 0 = all)")
    p.add_argument("--min-shift", type=int, default=DEFAULTS["min_shift"], help="smallest shift (frames) of a training negative")
    p.add_argument("--eval-min-shift", type=int, default=3, help="smallest shift (frames) of an evaluation negative")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="AdamW learning rate (the paper: 1e-4 over 20 epochs)")
    p.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    p.add_argument("--warmup-steps", type=int, default=DEFAULTS["warmup_steps"], help="linear warm-up steps before the cosine decay")
    p.add_argument("--other-face", action="store_true",
                   help="also use another utterance's face as a negative (can learn voice-face identity instead of sync)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for face detection")
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"],
                   help="torch threads (1: the machine is shared; results are reproducible at a fixed count)")
    p.add_argument("--max-train", type=int, default=None, help="use only the first N training utterances")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache of prepared crops + log-mels (default: $MERBENCH_HOME/features/lipsync_prep)")
    p.add_argument("--no-cache", action="store_true", help="prepare every utterance again and store nothing")
    p.add_argument("--contexts", type=str, default="2",
                   help="comma-separated context sizes c for the extra clip-level sync scores (clips of 5 + 2c frames)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cache = None if a.no_cache else (a.cache_dir or default_cache_dir())
    m = run(a.out or default_out(), epochs=a.epochs, corpus_root=a.corpus_root, crop_size=a.crop_size,
            batch_size=a.batch_size, windows_per_utt=a.windows_per_utt, lr=a.lr, seed=a.seed, workers=a.workers,
            threads=a.threads, max_train=a.max_train, other_face=a.other_face, negatives=a.negatives,
            min_shift=a.min_shift, warmup_steps=a.warmup_steps, weight_decay=a.weight_decay, cache_dir=cache,
            eval_min_shift=a.eval_min_shift, contexts=[int(c) for c in a.contexts.split(",") if c.strip()])
    print(json.dumps({k: m[k] for k in m if k.startswith("sync") or k in ("active_speaker_test", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
