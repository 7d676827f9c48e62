"""Reading audio and video files for the feature extractors.

Every failure (missing, empty, corrupt, silent or blank file, no decoder) is raised as
:class:`merbench.errors.MediaError` naming the file, never as a raw library exception,
so that the feature cache can zero-fill and report the file instead of crashing.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
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
_THREADED_DECODE_PIXELS = 320 * 240  # smaller videos decode on one thread


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


def _have_av() -> bool:
    """PyAV (``av`` on PyPI) ships FFmpeg's libraries in its wheel: no system program needed."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except Exception as e:  # av.error.InvalidDataError and friends: not a container FFmpeg knows
        raise MediaError(path, f"FFmpeg (PyAV) cannot open it ({type(e).__name__}: {e})",
                         fix="the file is corrupt or not a media file; re-create it") from None


def _av_audio(path: Path, sr: int) -> np.ndarray:
    """The first audio stream of a container, decoded and resampled to mono float32 at ``sr``."""
    import av

    with _open_container(path) as box:
        if not box.streams.audio:
            raise MediaError(path, "the file has no audio track",
                             fix="point the corpus' audio at a file with sound (or a wav extracted from the original)")
        stream = box.streams.audio[0]
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks = []
        try:
            for frame in box.decode(stream):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))  # flush
        except av.error.FFmpegError as e:
            if not chunks:
                raise MediaError(path, f"its audio could not be decoded ({type(e).__name__}: {e})",
                                 fix="the file may be corrupt; re-create it or extract the audio to wav") from None
            # a truncated tail: keep what decoded, as players do
    return np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)


def _check_wav_length(path: Path) -> None:
    """A wav whose header promises more audio than the file holds was cut short (a copy or download that
    stopped): libsndfile would read the part that is there without a word."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not RIFF/WAVE: soundfile decides
        offset = 12
        while offset + 8 <= size:
            fh.seek(offset)
            chunk, length = struct.unpack("<4sI", fh.read(8))
            if chunk == b"data":
                have = size - offset - 8
                if length not in (0, 0xFFFFFFFF) and have < length:  # 0 / max: written by a stream, size unknown
                    raise MediaError(path, f"truncated: the header promises {length} bytes of audio, the file holds "
                                           f"{have}", fix="copy or download the file again")
                return
            offset += 8 + length + (length & 1)


def read_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Mono float32 samples of an audio file at ``sr`` Hz.

    Files soundfile reads (wav, flac, ogg, ...) are decoded directly; video containers
    (.mp4, .avi, .mkv, ...) through PyAV, whose wheel carries FFmpeg (the ``ffmpeg`` program
    on PATH is the fallback when PyAV is not installed).
    Raises MediaError for missing, empty, corrupt or silent files.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in VIDEO_CONTAINERS:
        x, native = (_av_audio(path, sr) if _have_av() else _ffmpeg_audio(path, sr)), sr
    else:
        import soundfile as sf

        if path.suffix.lower() == ".wav":
            _check_wav_length(path)
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


def read_video(path: str | Path, max_frames: int = 32, fps: float | None = None, max_side: int = 0
               ) -> tuple[np.ndarray, float]:
    """Frames of a video as uint8 RGB ``(T, H, W, 3)``, and their frame rate.

    With ``fps`` the clip is sampled at that rate (never above the native rate); then at
    most ``max_frames`` frames are kept, spread evenly over the clip (0 keeps all). The
    returned rate is that of the returned frames: the native rate divided by the mean
    sampling step. ``max_side`` > 0: frames larger than that are scaled down (area
    averaging) so that their longer side is ``max_side``, in the same FFmpeg call that
    converts them to RGB (far cheaper than converting 720p frames and resizing them).
    Decoded by PyAV (FFmpeg from its wheel).
    Raises MediaError for missing, empty, corrupt or blank files.
    """
    path = Path(path)
    _check_file(path)
    frames, native, step = _av_frames(path, max_frames, fps, int(max_side or 0))
    if not frames:
        raise MediaError(path, "no frame could be decoded", fix="the file is corrupt or has no video track; "
                                                                "re-encode it (e.g. `ffmpeg -i in -c:v libx264 out.mp4`)")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise MediaError(path, f"frames change size within the clip ({sorted(shapes)[:2]})", fix="re-encode the file")
    rgb = np.ascontiguousarray(np.stack(frames))
    flat = rgb.reshape(len(rgb), -1)
    if int((flat.max(axis=1).astype(int) - flat.min(axis=1)).max()) < BLANK_RANGE:
        raise MediaError(path, "the video is blank (every sampled frame is one flat colour)",
                         fix="the recording or its conversion lost the picture; re-create the file or drop the utterance")
    return rgb, native / step


def _usable_rate(rate) -> float:
    rate = float(rate or 0.0)
    return rate if np.isfinite(rate) and 0 < rate <= 1000 else 25.0  # no usable rate: 25 fps, the common default


def _keep_frames(decoded, count: int, native: float, max_frames: int, fps: float | None, to_rgb):
    """(RGB frames, mean step) of the sampled indices; ``decoded`` yields frames in order and
    ``count`` is the header's frame count (0: unknown, so everything is read, then sampled)."""
    if count > 0:
        keep = _sample_indices(count, native, max_frames, fps)
        wanted, last, frames, kept_idx = set(keep.tolist()), int(keep[-1]) if len(keep) else -1, [], []
        for i, fr in enumerate(decoded):
            if i > last:
                break
            if i in wanted:
                frames.append(to_rgb(fr))
                kept_idx.append(i)
        # the header promised more frames than the stream holds: sample what is there instead
        if len(kept_idx) < len(keep) and len(kept_idx) <= 1 < count:
            return None
        return frames, float(np.mean(np.diff(kept_idx))) if len(kept_idx) > 1 else 1.0
    raw = []
    for fr in decoded:
        raw.append(fr)
        if len(raw) >= _MAX_SEQUENTIAL_FRAMES:
            break
    keep = _sample_indices(len(raw), native, max_frames, fps)
    return [to_rgb(raw[i]) for i in keep], float(np.mean(np.diff(keep))) if len(keep) > 1 else 1.0


def _scaled_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the longer side at most ``max_side`` (0: unchanged), aspect kept."""
    scale = max_side / max(w, h) if max_side > 0 else 1.0
    if scale >= 1:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


def _rgb_converter(max_side: int):
    """``frame -> uint8 RGB array``, scaled down to ``max_side`` when larger. One reformatter
    (its FFmpeg scaler context is reused, not rebuilt per frame) and one thread: FFmpeg's
    default of a thread pool per frame cost ~1 ms a frame even for 128x96 frames."""
    from av.video.reformatter import Interpolation, VideoReformatter

    reformatter = VideoReformatter()

    def to_rgb(frame):
        w, h = _scaled_size(frame.width, frame.height, max_side)
        if (w, h) == (frame.width, frame.height):
            return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
        return reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation=Interpolation.AREA,
                                    threads=1).to_ndarray()

    return to_rgb


def _av_frames(path: Path, max_frames: int, fps: float | None, max_side: int = 0
               ) -> tuple[list[np.ndarray], float, float]:
    import av

    def decoded(box, stream):
        try:
            yield from box.decode(stream)
        except av.error.FFmpegError:
            return  # a broken tail: keep the frames decoded so far

    with _open_container(path) as box:
        if not box.streams.video:
            raise MediaError(path, "the file has no video track", fix="point the corpus' video at a file with a picture")
        stream = box.streams.video[0]
        # Frame threads pay off for large frames; for small ones (the synthetic corpus' 128x96)
        # starting them costs more per clip than decoding the clip on one thread.
        ctx = stream.codec_context
        stream.thread_type = "AUTO" if (ctx.width or 0) * (ctx.height or 0) >= _THREADED_DECODE_PIXELS else "NONE"
        native = _usable_rate(stream.average_rate or stream.guessed_rate)
        count = int(stream.frames or 0)
        kept = _keep_frames(decoded(box, stream), count, native, max_frames, fps, _rgb_converter(max_side))
    if kept is None:  # the count in the header was wrong: read everything
        with _open_container(path) as box:
            kept = _keep_frames(decoded(box, box.streams.video[0]), 0, native, max_frames, fps,
                                _rgb_converter(max_side))
    return kept[0], native, kept[1]


def media_duration(path: str | Path) -> float:
    """Seconds of an audio or video file from its header (fast on a whole corpus): soundfile for
    audio files, PyAV for containers."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_CONTAINERS:
        import soundfile as sf

        return float(sf.info(str(path)).duration)
    with _open_container(path) as box:
        if box.duration:
            return box.duration / 1_000_000  # av.time_base: microseconds
        stream = (box.streams.video or box.streams.audio or [None])[0]
        if stream is not None and stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
    raise ValueError("no duration in the header")


def cut_clip(src: str | Path, dst: str | Path, start: float, end: float) -> int:
    """Write the video frames of ``src`` between ``start`` and ``end`` seconds to ``dst`` (picture
    only, MPEG-4 part 2 in the container of ``dst``'s suffix), through PyAV: no ffmpeg program.
    The file appears atomically; returns the number of frames written."""
    import av

    from ..atomic import atomic_write

    src, dst = Path(src), Path(dst)
    _check_file(src)
    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        with _open_container(src) as box:
            if not box.streams.video:
                raise MediaError(src, "the file has no video track", fix="cut clips from the dialogue video files")
            stream = box.streams.video[0]
            rate = _usable_rate(stream.average_rate or stream.guessed_rate)
            with av.open(str(tmp), "w", format=dst.suffix.lstrip(".").lower()) as out:
                vs = out.add_stream("mpeg4", rate=Fraction(rate).limit_denominator(1001))
                vs.width, vs.height = stream.codec_context.width, stream.codec_context.height
                vs.pix_fmt, vs.bit_rate = "yuv420p", 2_000_000
                for frame in box.decode(stream):
                    t = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
                    if t is None or t < start - 1e-6:
                        continue
                    if t >= end - 1e-6:
                        break
                    out_frame = frame.reformat(format="yuv420p")
                    out_frame.pts = written
                    for p in vs.encode(out_frame):
                        out.mux(p)
                    written += 1
                for p in vs.encode():
                    out.mux(p)
        if not written:
            raise MediaError(src, f"no frame between {start:.2f} s and {end:.2f} s",
                             fix="check the time stamps against the video's length")

    atomic_write(dst, write)
    return written


def write_av_clip(path: str | Path, frames: list[np.ndarray], audio: np.ndarray | None, sr: int, *, fps: int = 25,
                  video_codec: str = "libx264", audio_codec: str = "aac", vfr: bool = False) -> None:
    """RGB ``frames`` (and mono ``audio``, written as stereo) into one container with PyAV, e.g. H.264 +
    AAC in an mp4 as MELD.Raw ships (tests and benchmarks make real-shaped media with it). ``vfr``:
    frame durations alternate 20 / 60 ms (the mean rate is ``fps`` = 25) with millisecond time stamps."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream(video_codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if video_codec == "libx264":
            vs.options = {"preset": "ultrafast", "crf": "12"}
        if vfr:
            vs.codec_context.time_base = vs.time_base = Fraction(1, 1000)
        astream = None
        if audio is not None:
            astream = out.add_stream(audio_codec, rate=sr)
            astream.layout = "stereo"
        t_ms = 0
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if vfr:
                frame.pts, frame.time_base = t_ms, Fraction(1, 1000)
                t_ms += 20 if i % 2 == 0 else 60
            else:
                frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if astream is not None:
            size = astream.codec_context.frame_size or 1024
            for k in range(0, len(audio), size):
                chunk = audio[k:k + size]
                if audio_codec == "aac" and len(chunk) < size:
                    chunk = np.pad(chunk, (0, size - len(chunk)))
                if audio_codec == "pcm_s16le":
                    pcm = (np.repeat(chunk[:, None], 2, 1).reshape(1, -1) * 32767).astype(np.int16)
                    af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
                else:
                    af = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]).astype(np.float32), format="fltp",
                                                    layout="stereo")
                af.sample_rate, af.pts = sr, k
                for p in astream.encode(af):
                    out.mux(p)
            for p in astream.encode():
                out.mux(p)
