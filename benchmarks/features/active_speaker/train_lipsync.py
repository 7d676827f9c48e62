"""Train LipSyncNet on the synthetic corpus and measure it: the command line over
:mod:`.data` (preparation), :mod:`.train` and :mod:`.evaluate`.

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
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from merbench.atomic import atomic_write_json

from .data import corpus_fingerprint, default_cache_dir, prep_settings, prepare_cached, read_cues
from .evaluate import evaluate, voiced_threshold
from .lipsync import LipSyncConfig, LipSyncNet, count_parameters, save_checkpoint
from .train import train

log = logging.getLogger(__name__)


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
