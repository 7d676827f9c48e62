"""Face-crop speed and active-speaker accuracy: ``video-facecrop`` before and after template tracking.

In one run, on a synthetic corpus (``--dialogues``, seed 0, generated into a temporary
``MERBENCH_HOME``, or ``--corpus`` to reuse one) and on ``--clips`` 720p / 25 fps H.264 clips
made from its utterances (each synthetic frame scaled x3 and placed on a cluttered 1280x720
background, every frame shown twice: MELD's size and rate, with the corpus' ground truth):

- ``v1``: the extractor as it was (``face_tracking: interpolate``: Haar + skin detection on every
  3rd sampled frame, boxes interpolated in between; full-size decoding, then resizing) with
  the decoder's RGB conversion as it was (:func:`legacy_rgb_converter`: a new FFmpeg scaler
  with its own thread pool for every frame);
- ``interpolate``: the same pipeline with today's decoder conversion (identical frames);
- ``template``: today's default (decoder scales frames down, detection every 16th sampled
  frame and the last, template tracking in between, full detection when a face is lost).

Each side runs the extractor's own ``extract`` (decoding included) on every utterance; the
sides alternate over ``--repeats`` passes and each side's best pass counts. Reported per side:
utterances / s, sampled frames / s, detector calls per utterance, the ratio to ``v1``, and
accuracy against the corpus' ``cues.csv`` (ground truth, read only here):

- active speaker: of the utterances with two faces, the share whose crop (the box-centre column
  of the descriptors) is on the speaker's side of the frame;
- on speaker: of all utterances, the share whose mean crop centre lies within a quarter of the
  speaker's face height of the speaker's face centre.

``python benchmarks/perf/face_speed.py [--dialogues 30] [--clips 24] [--repeats 2] [--corpus DIR]
[--sides v1,interpolate,template] [--no-synthetic] [--json OUT]``
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SIDES = ("v1", "interpolate", "template")
HD_W, HD_H, HD_SCALE, HD_FPS = 1280, 720, 3, 25


def legacy_rgb_converter(max_side: int = 0):
    """The decoder's RGB conversion before this change: ``to_ndarray`` per frame (a new FFmpeg
    scaler context with its own thread pool each time); frames stay full size."""
    return lambda frame: frame.to_ndarray(format="rgb24")


@contextlib.contextmanager
def legacy_decoding():
    from merbench.features import media

    current = media._rgb_converter
    media._rgb_converter = legacy_rgb_converter
    try:
        yield
    finally:
        media._rgb_converter = current


def extractor(side: str):
    from merbench.features.video import FaceCropExtractor

    return FaceCropExtractor(face_tracking="template" if side == "template" else "interpolate")


def load_cues(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "cues.csv", newline="", encoding="utf-8") as f:
        return {r["uid"]: r for r in csv.DictReader(f)}


def utterances(root: Path, uids: list[str] | None = None, video_dir: Path | None = None):
    from merbench.corpus import Utterance

    cues = load_cues(root)
    uids = uids if uids is not None else sorted(cues)
    folder = video_dir or root / "video"
    return [Utterance(uid=u, dialogue_id=cues[u]["dialogue_id"], turn=int(cues[u]["turn"]), speaker=cues[u]["speaker"],
                      video_path=str(folder / f"{u}.mp4")) for u in uids]


# -- 720p clips ------------------------------------------------------------------------------------


def _background(rng: np.random.Generator) -> np.ndarray:
    """A 720p room-like background: a vertical gradient, a few furniture-like rectangles, texture."""
    import cv2

    top, bottom = rng.uniform(40, 160, 3), rng.uniform(20, 120, 3)
    t = np.linspace(0, 1, HD_H)[:, None, None]
    img = (top * (1 - t) + bottom * t) * np.ones((HD_H, HD_W, 3))
    for _ in range(6):
        x, y = int(rng.integers(0, HD_W - 200)), int(rng.integers(0, HD_H - 150))
        w, h = int(rng.integers(80, 400)), int(rng.integers(60, 300))
        cv2.rectangle(img, (x, y), (x + w, y + h), tuple(float(v) for v in rng.uniform(20, 200, 3)), -1)
    img += cv2.GaussianBlur(rng.normal(0, 12, (HD_H, HD_W)), (0, 0), 3)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def make_hd_clips(root: Path, uids: list[str], out: Path, seed: int = 0) -> dict[str, dict[str, float]]:
    """720p / 25 fps H.264 copies of the given synthetic utterances; per uid the synthetic frame's
    placement (x, y offset, scale) so that the cues' face positions carry over."""
    import cv2

    from merbench.features.media import read_video, write_av_clip

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    placement = {}
    for uid in uids:
        frames, _ = read_video(root / "video" / f"{uid}.mp4", max_frames=0)
        h, w = frames.shape[1] * HD_SCALE, frames.shape[2] * HD_SCALE
        x0, y0 = int(rng.integers(0, HD_W - w)), int(rng.integers(0, HD_H - h))
        bg = _background(rng)
        hd = []
        for f in frames:
            img = bg.copy()
            img[y0:y0 + h, x0:x0 + w] = cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
            hd += [img, img]  # 12.5 fps shown at 25 fps
        write_av_clip(out / f"{uid}.mp4", hd, None, 16000, fps=HD_FPS)
        placement[uid] = {"x0": x0, "y0": y0, "scale": HD_SCALE}
    return placement


# -- accuracy --------------------------------------------------------------------------------------


def accuracy(items, utts, cues, frame_w: float, frame_h: float, placement=None) -> dict[str, float]:
    """Active-speaker accuracy on two-face utterances and the on-speaker share of all utterances."""
    from merbench.features.video import FaceCropExtractor

    D = FaceCropExtractor().frame_dim
    two = right = on = 0
    for it, u in zip(items, utts):
        cue = cues[u.uid]
        cx = float(it.frames[:, D - 4].mean()) * frame_w  # box centre x / frame width
        cy = float(it.frames[:, D - 3].mean()) * frame_h
        p = (placement or {}).get(u.uid, {"x0": 0, "y0": 0, "scale": 1})
        sx = p["x0"] + p["scale"] * float(cue["speaker_face_x"])
        sy = p["y0"] + p["scale"] * float(cue["speaker_face_y"])
        sh = p["scale"] * float(cue["speaker_face_h"])
        on += abs(cx - sx) < sh / 4 and abs(cy - sy) < sh / 4
        if cue["speaker_side"] in ("left", "right"):
            two += 1
            lx = p["x0"] + p["scale"] * float(cue["listener_face_x"])
            right += abs(cx - sx) < abs(cx - lx)
    return {"active_speaker": right / two if two else float("nan"), "n_two_faces": two,
            "on_speaker": on / len(items) if items else float("nan"), "n": len(items)}


# -- timing ----------------------------------------------------------------------------------------


def time_side(side: str, utts) -> tuple[float, list, dict]:
    ex = extractor(side)
    ctx = legacy_decoding() if side == "v1" else contextlib.nullcontext()
    with ctx:
        t = time.perf_counter()
        items = ex.extract(utts)
        dt = time.perf_counter() - t
    return dt, items, dict(ex.counts)


def measure(name: str, utts, cues, frame_size, repeats: int, placement=None, sides=SIDES) -> dict[str, dict]:
    best: dict[str, dict] = {}
    for r in range(repeats):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            dt, items, counts = time_side(side, utts)
            if side not in best or dt < best[side]["seconds"]:
                best[side] = {"seconds": dt, "utt_per_s": len(utts) / dt, "frames_per_s": counts["frames"] / dt,
                              "detections_per_utt": counts["detected_frames"] / max(1, counts["utterances"]),
                              "no_face": counts["no_face"], "several_faces": counts["several_faces"],
                              **accuracy(items, utts, cues, *frame_size, placement)}
            print(f"  {name} pass {r + 1} {side:11s} {dt:7.2f} s", flush=True)
    for side in sides:
        best[side]["ratio_to_v1"] = best[side]["utt_per_s"] / best["v1"]["utt_per_s"]
    return best


def print_table(name: str, res: dict[str, dict], load: tuple[float, float]) -> None:
    print(f"\n{name} (load average {load[0]:.2f} before, {load[1]:.2f} after)")
    print("| side | utt / s | frames / s | detections / utt | ratio to v1 | active speaker | on speaker |")
    print("|---|---|---|---|---|---|---|")
    for side, r in res.items():
        print(f"| {side} | {r['utt_per_s']:.2f} | {r['frames_per_s']:.1f} | {r['detections_per_utt']:.1f} | "
              f"{r['ratio_to_v1']:.2f}x | {r['active_speaker']:.3f} (n={r['n_two_faces']}) | {r['on_speaker']:.3f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dialogues", type=int, default=30)
    ap.add_argument("--clips", type=int, default=24, help="720p clips (two-face utterances first); 0: none")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--corpus", type=Path, help="an existing synthetic corpus to reuse")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--no-synthetic", action="store_true", help="time only the 720p clips")
    ap.add_argument("--sides", default=",".join(SIDES), help=f"which of {','.join(SIDES)} to run (v1 always)")
    args = ap.parse_args(argv)
    sides = tuple(s for s in SIDES if s == "v1" or s in args.sides.split(","))

    with tempfile.TemporaryDirectory(prefix="face_speed_") as tmp_s:
        tmp = Path(tmp_s)
        os.environ["MERBENCH_HOME"] = str(tmp / "home")
        root = args.corpus
        if root is None:
            from merbench.datasets.synthetic.generator import generate

            t = time.perf_counter()
            root = generate(tmp / "synthetic", n_dialogues=args.dialogues, seed=0, workers=1)
            print(f"synthetic corpus: {args.dialogues} dialogues in {time.perf_counter() - t:.1f} s")
        cues = load_cues(root)
        utts = utterances(root)
        out: dict[str, object] = {"n_utterances": len(utts)}
        if not args.no_synthetic:
            load0 = os.getloadavg()[0]
            res = measure("synthetic", utts, cues, (128, 96), args.repeats, sides=sides)
            out["synthetic"] = {"load_before": load0, "load_after": os.getloadavg()[0], "sides": res}
            print_table(f"synthetic, {len(utts)} utterances (128x96, 12.5 fps)", res, (load0, os.getloadavg()[0]))
        if args.clips:
            two = [u for u, c in sorted(cues.items()) if c["speaker_side"] in ("left", "right")]
            one = [u for u, c in sorted(cues.items()) if c["speaker_side"] not in ("left", "right")]
            chosen = (two[:(args.clips + 1) // 2] + one)[:args.clips]
            t = time.perf_counter()
            placement = make_hd_clips(root, chosen, tmp / "hd")
            print(f"\n720p clips: {len(chosen)} written in {time.perf_counter() - t:.1f} s")
            hd_utts = utterances(root, chosen, tmp / "hd")
            load0 = os.getloadavg()[0]
            res = measure("720p", hd_utts, cues, (HD_W, HD_H), args.repeats, placement, sides)
            out["hd720"] = {"load_before": load0, "load_after": os.getloadavg()[0], "sides": res}
            print_table(f"720p / 25 fps H.264, {len(chosen)} utterances", res, (load0, os.getloadavg()[0]))
    if args.json:
        from merbench.atomic import atomic_write_json

        atomic_write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
