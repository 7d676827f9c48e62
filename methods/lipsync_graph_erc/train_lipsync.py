"""Train LipSyncNet on the synthetic corpus and measure it.

    python -m merbench.methods.lipsync_graph_erc.train_lipsync --epochs 6 --out runs/lipsync

Data (no label of who speaks is used for training):

- every utterance: frames -> faces (the suite's detector, every 3rd frame) -> tracks
  (:func:`merbench.features.video.track_faces`) -> RGB crops per track; audio -> aligned
  log-mel (:func:`lipsync.log_mel`);
- training windows come from TRAIN-split utterances in which exactly one face track was
  found: that face is the speaker, so (its window, the same time's audio) is a positive.
  Negatives per positive: the same face with audio from another time (shift >= 2 frames)
  and another utterance's face with this audio. The original instead pseudo-labels the
  faces of multi-face clips with a pretrained SyncNet (not available offline).

Evaluation (model fixed after the last epoch):

- sync accuracy: pairs (face window, its audio) vs (face window, audio shifted by
  ``--eval-min-shift``+ frames) from single-track utterances; the distance threshold is the
  one with the best accuracy on VALID, the accuracy is measured on TEST (balanced pairs);
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
                      face_crops, log_mel, save_checkpoint, video_window, window_distances)

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
    crops, xs = [], []
    for tr in tracks:
        boxes = tr.filled()
        crops.append(face_crops(frames, boxes, crop_size, margin, region))
        xs.append(float(np.mean(boxes[:, 0] + boxes[:, 2] / 2.0)) / frames.shape[2])
    baseline = int(select_by_mouth_motion(tracks, None, frames)) if len(tracks) > 1 else 0
    # Raw frames and audio are kept only where the selector hook is evaluated (several
    # faces, evaluation splits): the training set would not fit in memory otherwise.
    keep = len(tracks) > 1 and split != "train"
    return {"uid": uid, "split": split, "fps": float(fps), "n_frames": len(frames), "mel": mel,
            "crops": crops, "track_x": xs, "mouth_motion_choice": baseline, "audio": audio if keep else None,
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


def train(model: LipSyncNet, items: list[dict], epochs: int, batch_size: int = 12, windows_per_utt: int = 4,
          lr: float = 3e-4, weight_decay: float = 1e-4, min_shift: int = 2, window: int = 5, seed: int = 0,
          log_every: int = 50, center: bool = True, other_face: bool = False) -> list[dict[str, float]]:
    """AdamW + cosine schedule over all steps; an epoch draws ``windows_per_utt`` random windows
    from every training utterance. Returns per-epoch mean losses."""
    usable = [it for it in items if len(it["crops"]) == 1 and it["n_frames"] >= window + min_shift]
    if len(usable) < 2:
        raise ValueError(f"only {len(usable)} single-face training utterances of >= {window + min_shift} frames; "
                         "need at least 2 (generate a larger corpus)")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    loss_fn = AVSyncLoss(margin=1.5, alpha=0.7)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
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


# -- evaluation --------------------------------------------------------------------------------


@torch.no_grad()
def sync_pairs(model: LipSyncNet, items: list[dict], window: int = 5, min_shift: int = 3, pairs_per_utt: int = 4,
               seed: int = 0, center: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distances of in-sync pairs (label 1) and shifted-audio pairs (label 0), equal numbers,
    from single-track utterances."""
    rng = np.random.default_rng(seed)
    vids, auds, labels = [], [], []
    for it in items:
        if len(it["crops"]) != 1:
            continue
        crops, mel = it["crops"][0], it["mel"]
        n = min(len(crops), mel.shape[1] // MEL_PER_FRAME)
        if n < window + min_shift:
            continue
        for _ in range(pairs_per_utt):
            k = int(rng.integers(0, n - window + 1))
            far = [s for s in range(0, n - window + 1) if abs(s - k) >= min_shift]
            s = int(rng.choice(far))
            v = video_window(crops, k, window, center)
            vids += [v, v]
            auds += [audio_window(mel, k, window), audio_window(mel, s, window)]
            labels += [1, 0]
    model.eval()
    d = []
    for i in range(0, len(vids), 128):
        d.append(model.distance(torch.from_numpy(np.stack(vids[i:i + 128])),
                                torch.from_numpy(np.stack(auds[i:i + 128]))).numpy())
    return (np.concatenate(d) if d else np.zeros(0)), np.asarray(labels)


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
    from .active_speaker import LipSyncSelector

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


def evaluate(model: LipSyncNet, by_split: dict[str, list[dict]], cues: dict[str, dict[str, str]], config: LipSyncConfig,
             eval_min_shift: int = 3) -> dict[str, Any]:
    window, center = config.window_frames, config.center_window
    dv, yv = sync_pairs(model, by_split["valid"], window, eval_min_shift, seed=1, center=center)
    dt, yt = sync_pairs(model, by_split["test"], window, eval_min_shift, seed=2, center=center)
    thr, acc_v = best_threshold(dv, yv)
    return {
        "sync": {"threshold_from_valid": thr, "valid_accuracy": acc_v, "test_accuracy": float(np.mean((dt < thr) == (yt == 1))),
                 "test_auc": auc(dt, yt), "n_valid_pairs": int(len(yv)), "n_test_pairs": int(len(yt)),
                 "min_shift_frames": eval_min_shift,
                 "test_mean_distance_in_sync": float(dt[yt == 1].mean()),
                 "test_mean_distance_shifted": float(dt[yt == 0].mean())},
        "active_speaker_test": active_speaker_eval(model, by_split["test"], cues, config),
        "active_speaker_valid": active_speaker_eval(model, by_split["valid"], cues, config),
    }


# -- entry point -----------------------------------------------------------------------------


def run(out: Path, epochs: int = 4, corpus_root: Path | None = None, crop_size: int = 32, batch_size: int = 12,
        windows_per_utt: int = 2, lr: float = 3e-4, seed: int = 0, workers: int = 2, threads: int = 2,
        max_train: int | None = None, other_face: bool = False) -> dict[str, Any]:
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
    by_split = {s: prepare_corpus(us, cfg.crop_size, cfg.crop_margin, cfg.crop_region, workers=workers) for s, us in utts.items()}
    t_prep = time.time() - t_start
    log.info("prepared %s utterances in %.0f s", {s: len(v) for s, v in by_split.items()}, t_prep)
    model = LipSyncNet(embed_dim=cfg.embed_dim, dropout=cfg.dropout)
    t0 = time.time()
    history = train(model, by_split["train"], epochs, batch_size=batch_size, windows_per_utt=windows_per_utt, lr=lr,
                    window=cfg.window_frames, seed=seed, center=cfg.center_window, other_face=other_face)
    t_train = time.time() - t0
    out = Path(out)
    save_checkpoint(out / "lipsync.pt", model, cfg, extra={"epochs": epochs, "seed": seed})
    t0 = time.time()
    metrics = evaluate(model, by_split, cues, cfg)
    metrics.update({
        "command": " ".join([Path(sys.executable).name, "-m", __spec__.name if __spec__ else __name__] + sys.argv[1:]),
        "corpus_root": str(ds.root), "config": asdict(cfg),
        "training": {"epochs": epochs, "batch_size": batch_size, "other_face_negatives": other_face, "windows_per_utterance": windows_per_utt, "lr": lr,
                     "weight_decay": 1e-4, "seed": seed, "history": history,
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
    p.add_argument("--out", required=True, type=Path, help="output folder (lipsync.pt, metrics.json)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--corpus-root", type=Path, default=None, help="synthetic corpus folder (default: the suite's)")
    p.add_argument("--crop-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--windows-per-utt", type=int, default=2, help="random windows per training utterance per epoch")
    p.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (the paper: 1e-4 over 20 epochs)")
    p.add_argument("--other-face", action="store_true",
                   help="also use another utterance's face as a negative (can learn voice-face identity instead of sync)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for face detection")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    p.add_argument("--max-train", type=int, default=None, help="use only the first N training utterances")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    m = run(a.out, epochs=a.epochs, corpus_root=a.corpus_root, crop_size=a.crop_size, batch_size=a.batch_size,
            windows_per_utt=a.windows_per_utt, lr=a.lr, seed=a.seed, workers=a.workers, threads=a.threads,
            max_train=a.max_train, other_face=a.other_face)
    print(json.dumps({"sync": m["sync"], "active_speaker_test": m["active_speaker_test"], "seconds": m["seconds"]},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
