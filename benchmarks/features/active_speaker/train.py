"""Training LipSyncNet on prepared utterances (windows of one face track and its audio;
negatives from the same utterance at other times)."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from .lipsync import AVSyncLoss, LipSyncNet, MEL_PER_FRAME, audio_window, utterance_windows, video_window

log = logging.getLogger(__name__)


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
