"""Evaluation of LipSyncNet: sync accuracy on VALID-chosen thresholds, measured on TEST, and
active-speaker accuracy against the corpus' cues (ground truth read only here)."""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np
import torch

from .lipsync import (LipSyncConfig, LipSyncNet, MEL_PER_FRAME, frame_levels_db, utterance_windows, window_distances,
                      window_voiced_fraction)

log = logging.getLogger(__name__)


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
