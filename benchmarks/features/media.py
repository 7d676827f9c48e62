"""Reading audio and video files for the feature extractors.

Every failure (missing, empty, corrupt, silent or blank file, no decoder) is raised as
:class:`merbench.errors.MediaError` naming the file, never as a raw library exception,
so that the feature cache can zero-fill and report the file instead of crashing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import MediaError

VIDEO_CONTAINERS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv"}
# A wav whose peak stays below two 16-bit steps carries no signal (all zeros or dither).
SILENCE_PEAK = 2.0 / 32768
# A video whose frames all span fewer grey levels than this is blank (one flat colour).
BLANK_RANGE = 4
_MAX_SEQUENTIAL_FRAMES = 20000  # when a container hides its frame count, read at most this many


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "the file does not exist",
                         fix="check the corpus root (--data-root / MERBENCH_DATA) or run `bench data prepare` again")
    if not path.is_file():
        raise MediaError(path, "the path is not a regular file", fix="point the corpus at the media files themselves")
    if path.stat().st_size == 0:
        raise MediaError(path, "the file is empty (0 bytes)",
                         fix="the download or conversion was interrupted: re-create this file")


def _resample(x: np.ndarray, native: int, sr: int) -> np.ndarray:
    try:
        import soxr

        return soxr.resample(x, native, sr).astype(np.float32, copy=False)
    except ImportError:  # soxr is a librosa dependency, but stay usable without it
        import librosa

        return librosa.resample(x, orig_sr=native, target_sr=sr).astype(np.float32, copy=False)


def _ffmpeg_audio(path: Path, sr: int) -> np.ndarray:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaError(path, "audio inside a video container needs the ffmpeg program, which is not on PATH",
                         fix=f"install ffmpeg, or extract the audio to a wav file first, e.g. "
                             f"`ffmpeg -i {path.name} -ac 1 -ar {sr} {path.stem}.wav`, and point the corpus at it")
    cmd = [exe, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(sr),
           "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MediaError(path, f"ffmpeg could not be run on it ({e})", fix="check the ffmpeg installation") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise MediaError(path, f"ffmpeg could not decode its audio ({msg[-1] if msg else 'no message'})",
                         fix="the file may be corrupt or have no audio track; re-create it or extract the audio to wav")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def read_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Mono float32 samples of an audio file at ``sr`` Hz.

    Files soundfile reads (wav, flac, ogg, ...) are decoded directly; video containers
    (.mp4, .avi, .mkv, ...) go through the ``ffmpeg`` program when it is on PATH.
    Raises MediaError for missing, empty, corrupt or silent files.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in VIDEO_CONTAINERS:
        x, native = _ffmpeg_audio(path, sr), sr
    else:
        import soundfile as sf

        try:
            data, native = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile raises several types (LibsndfileError, RuntimeError, TypeError)
            raise MediaError(path, f"not a readable audio file ({type(e).__name__}: {e})".rstrip(),
                             fix="the file is corrupt or in a format libsndfile cannot read; "
                                 "re-create it or convert it to 16-bit PCM wav") from None
        x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if x.size == 0:
        raise MediaError(path, "the file holds no audio samples", fix="re-create the file; it has a header but no audio")
    if not np.isfinite(x).all():
        raise MediaError(path, "the audio holds NaN or infinite samples", fix="re-create or re-encode the file")
    if native != sr:
        x = _resample(np.ascontiguousarray(x, dtype=np.float32), int(native), sr)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < SILENCE_PEAK:
        raise MediaError(path, f"the audio is silent (peak amplitude {peak:.2g})",
                         fix="the recording or its conversion lost the signal; re-create the file or drop the utterance")
    return np.ascontiguousarray(x, dtype=np.float32)


def _sample_indices(n_frames: int, native_fps: float, max_frames: int, fps: float | None) -> np.ndarray:
    """Frame indices to keep: at ``fps`` when given, then at most ``max_frames`` spread evenly."""
    if fps and native_fps > 0 and fps < native_fps:
        idx = np.unique(np.round(np.arange(0, n_frames, native_fps / fps)).astype(int))
        idx = idx[idx < n_frames]
    else:
        idx = np.arange(n_frames)
    if max_frames and len(idx) > max_frames:
        idx = idx[np.unique(np.round(np.linspace(0, len(idx) - 1, max_frames)).astype(int))]
    return idx


def read_video(path: str | Path, max_frames: int = 32, fps: float | None = None) -> tuple[np.ndarray, float]:
    """Frames of a video as uint8 RGB ``(T, H, W, 3)``, and their frame rate.

    With ``fps`` the clip is sampled at that rate (never above the native rate); then at
    most ``max_frames`` frames are kept, spread evenly over the clip (0 keeps all). The
    returned rate is that of the returned frames: the native rate divided by the mean
    sampling step. Raises MediaError for missing, empty, corrupt or blank files.
    """
    import cv2

    path = Path(path)
    _check_file(path)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MediaError(path, "OpenCV cannot open it as a video", fix="the file is corrupt or not a video; re-create it")
        native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(native) or native <= 0 or native > 1000:
            native = 25.0  # a container without a usable rate; 25 fps is the common default
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        frames: list[np.ndarray] = []
        if count > 0:
            keep = _sample_indices(count, native, max_frames, fps)
            wanted = set(keep.tolist())
            last = int(keep[-1]) if len(keep) else -1
            kept_idx = []
            for i in range(last + 1):
                if not cap.grab():
                    break  # the header promised more frames than the stream holds
                if i in wanted:
                    ok, fr = cap.retrieve()
                    if ok and fr is not None:
                        frames.append(fr)
                        kept_idx.append(i)
            step = float(np.mean(np.diff(kept_idx))) if len(kept_idx) > 1 else 1.0
        else:  # frame count unknown: read everything, then sample
            while len(frames) < _MAX_SEQUENTIAL_FRAMES:
                ok, fr = cap.read()
                if not ok or fr is None:
                    break
                frames.append(fr)
            keep = _sample_indices(len(frames), native, max_frames, fps)
            frames = [frames[i] for i in keep]
            step = float(np.mean(np.diff(keep))) if len(keep) > 1 else 1.0
    except MediaError:
        raise
    except Exception as e:  # cv2.error and friends from a broken stream
        raise MediaError(path, f"decoding failed ({type(e).__name__}: {e})", fix="re-create or re-encode the file") from None
    finally:
        cap.release()
    if not frames:
        raise MediaError(path, "no frame could be decoded", fix="the file is corrupt or uses a codec OpenCV lacks; "
                                                                "re-encode it (e.g. `ffmpeg -i in -c:v libx264 out.mp4`)")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise MediaError(path, f"frames change size within the clip ({sorted(shapes)[:2]})", fix="re-encode the file")
    bgr = np.stack(frames)
    if bgr.ndim == 3:  # grey video
        bgr = np.repeat(bgr[..., None], 3, axis=-1)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    flat = rgb.reshape(len(rgb), -1)
    if int((flat.max(axis=1).astype(int) - flat.min(axis=1)).max()) < BLANK_RANGE:
        raise MediaError(path, "the video is blank (every sampled frame is one flat colour)",
                         fix="the recording or its conversion lost the picture; re-create the file or drop the utterance")
    return rgb, native / step
