"""Decode speed: PyAV (FFmpeg from its wheel, today's reader) against the path it replaced.

Writes ``--clips`` MELD-like mp4 files (H.264 + AAC 48 kHz stereo, ``--width`` x ``--height``,
25 fps, ``--seconds`` long, drawn moving shapes and noise) to a temporary folder, then times:

- video, ``read_video(max_frames=32)`` (what ``video-facecrop`` reads) and ``max_frames=0``
  (every frame): PyAV against OpenCV's ``VideoCapture`` (grab every frame, decode the kept ones),
  the reader before PyAV (:func:`opencv_frames`, kept here only for this comparison);
- audio from the mp4 (16 kHz mono): PyAV against the ``ffmpeg`` program the reader called before,
  when one is on PATH (none on a fresh machine: then only PyAV's time is given);
- audio from a wav of the same samples with soundfile (unchanged), for scale.

The two sides alternate over ``--repeats`` rounds; the best round of each is kept. Prints a
table and writes ``--out`` (JSON) with seconds per clip and the ratios (old / PyAV: > 1 means
PyAV is faster).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clips(folder: Path, n: int, seconds: float, width: int, height: int, seed: int = 0) -> list[Path]:
    import soundfile as sf

    from merbench.features.media import write_av_clip

    rng = np.random.default_rng(seed)
    fps, sr = 25, 48000
    paths = []
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(n):
        frames = []
        for f in range(int(seconds * fps)):
            cx, cy = width * (0.3 + 0.4 * np.sin(f / 9 + i)), height * 0.5
            blob = ((xx - cx) ** 2 / (0.1 * width) ** 2 + (yy - cy) ** 2 / (0.2 * height) ** 2) < 1
            img = np.clip(rng.normal(60, 6, (height, width, 3)) + blob[..., None] * [150, 110, 90], 0, 255)
            frames.append(img.astype(np.uint8))
        t = np.arange(int(seconds * sr)) / sr
        audio = (0.3 * np.sin(2 * np.pi * 180 * t) * np.clip(np.sin(2 * np.pi * 4 * t), 0, None)).astype(np.float32)
        path = folder / f"dia{i}_utt0.mp4"
        write_av_clip(path, frames, audio, sr)
        sf.write(folder / f"dia{i}_utt0.wav", audio, sr, subtype="PCM_16")
        paths.append(path)
    return paths


def opencv_frames(path: Path, max_frames: int, fps: float | None) -> tuple[list[np.ndarray], float, float]:
    """The reader before PyAV (OpenCV, grab every frame and decode the kept ones), kept here to time it."""
    import cv2

    from merbench.errors import MediaError
    from merbench.features.media import _keep_frames, _usable_rate

    cap = cv2.VideoCapture(str(path))

    def decoded(lazy: bool):
        """Frames in order; ``lazy``: only grab each one, and let ``to_rgb`` retrieve the kept ones."""
        while cap.grab():
            if lazy:
                yield None
                continue
            ok, fr = cap.retrieve()
            if not ok or fr is None:
                return
            yield fr

    def to_rgb(bgr):
        if bgr is None:
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                raise MediaError(path, "a frame could not be decoded", fix="re-create or re-encode the file")
        return np.repeat(bgr[..., None], 3, axis=-1) if bgr.ndim == 2 else np.ascontiguousarray(bgr[..., ::-1])

    try:
        if not cap.isOpened():
            raise MediaError(path, "OpenCV cannot open it as a video", fix="the file is corrupt or not a video; re-create it")
        native = _usable_rate(cap.get(cv2.CAP_PROP_FPS))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        kept = _keep_frames(decoded(count > 0), count, native, max_frames, fps, to_rgb)
        if kept is None:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            kept = _keep_frames(decoded(False), 0, native, max_frames, fps, to_rgb)
    except MediaError:
        raise
    except Exception as e:  # cv2.error and friends from a broken stream
        raise MediaError(path, f"decoding failed ({type(e).__name__}: {e})", fix="re-create or re-encode the file") from None
    finally:
        cap.release()
    return kept[0], native, kept[1]


def _time(fn, paths) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return (time.perf_counter() - t0) / len(paths)


def measure(paths: list[Path], repeats: int) -> dict:
    from merbench.features import media

    sides = {
        "video_32_frames": {"old": lambda p: opencv_frames(p, 32, None), "pyav": lambda p: media._av_frames(p, 32, None)},
        "video_all_frames": {"old": lambda p: opencv_frames(p, 0, None), "pyav": lambda p: media._av_frames(p, 0, None)},
        "audio_from_mp4": {"pyav": lambda p: media._av_audio(p, 16000)},
        "audio_from_wav": {"soundfile": lambda p: media.read_audio(p.with_suffix(".wav"), 16000)},
    }
    if shutil.which("ffmpeg"):
        sides["audio_from_mp4"]["old"] = lambda p: media._ffmpeg_audio(p, 16000)
    out = {}
    for task, fns in sides.items():
        best = {k: float("inf") for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():  # alternate the sides, keep each one's best round
                best[k] = min(best[k], _time(fn, paths))
        row = {f"{k}_s_per_clip": round(v, 5) for k, v in best.items()}
        if "old" in best:
            row["ratio_old_over_pyav"] = round(best["old"] / best["pyav"], 2)
        out[task] = row
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import os

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(Path(tmp), args.clips, args.seconds, args.width, args.height)
        results = measure(paths, args.repeats)
    report = {"clips": args.clips, "seconds": args.seconds, "size": [args.width, args.height],
              "ffmpeg_program": shutil.which("ffmpeg"), "load_average": os.getloadavg()[0], "results": results}
    for task, row in results.items():
        print(f"{task:18s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    if args.out:
        from merbench.atomic import atomic_write_json

        atomic_write_json(args.out, report)
    return report


if __name__ == "__main__":  # pragma: no cover
    main()
