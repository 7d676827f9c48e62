"""LipSyncNet: a two-tower audio-visual synchronisation network (SyncNet-like), its loss,
and the windowing that pairs a short clip of face crops with the matching log-mel.

Architecture as in the paper's code (``utils.py`` of llllxx1628/multimodalERC), written
from the spec in ``SPECS.md`` section 1:

- video tower: Conv3d 3->64 (3,7,7)/s(1,2,2) BN ReLU MaxPool3d(2,3,3)/2; Conv3d 64->128
  (3,5,5)/s(1,2,2) BN ReLU MaxPool3d(2,2,2)/2; Conv3d 128->256 (3,3,3)/s(1,2,2) BN ReLU;
  AdaptiveAvgPool3d(4,1,1) -> 1024; Linear 1024->512 BN ReLU Dropout(0.3) -> Linear 512->256;
- audio tower on a (1, 64 mel, 20 frame) log-mel: Conv2d 1->64 (5, s2) BN ReLU MaxPool 2;
  Conv2d 64->128 (5, s2) BN ReLU MaxPool 2; Conv2d 128->256 (3, s2) BN ReLU; global
  average pool -> 256; Linear 256->512 BN ReLU Dropout(0.3) -> Linear 512->256;
- both embeddings L2-normalised; distance = Euclidean distance of the two embeddings;
- loss 0.7 * MarginRanking(d_neg, d_pos, margin 1.5) + 0.3 * mean(d_pos).

Windows (our choice; the original pairs 32 video frames with the *first* 20 mel frames of
the utterance, i.e. 1.28 s of video with 0.2 s of audio, see README): ``WINDOW_FRAMES``
video frames at the corpus rate (5 frames = 400 ms at 12.5 fps) and the 20 log-mel
frames of exactly that time span (4 mel frames per video frame, hop = 1/4 video frame).
:func:`utterance_windows` cuts all windows of a track at once (training and evaluation);
:func:`frame_levels_db` / :func:`window_voiced_fraction` tell speech from pauses for the
voiced-window evaluation of ``train_lipsync``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_MELS = 64
N_MEL_FRAMES = 20  # audio input length of the network (spec)
WINDOW_FRAMES = 5  # video frames per window: 400 ms at 12.5 fps
MEL_PER_FRAME = N_MEL_FRAMES // WINDOW_FRAMES  # 4 mel frames per video frame
DEFAULT_SAMPLES_PER_FRAME = 1280  # 16 kHz audio, 12.5 fps video (80 ms per frame)
MEL_FLOOR_DB = -80.0


@dataclass(frozen=True)
class LipSyncConfig:
    """What a checkpoint needs besides its weights to be used again."""

    crop_size: int = 32  # the paper uses 160x160 whole-face crops; small crops keep CPU cost low
    crop_margin: float = 0.1
    # "lower": the lower part of the face box (mouth and chin), as SyncNet does; "face": all of it.
    crop_region: str = "lower"
    # Subtract each window's mean frame: the network sees how the mouth moves, not who it is
    # (without it, training on CPU-sized data did not leave chance level within 4 epochs).
    center_window: bool = True
    window_frames: int = WINDOW_FRAMES
    n_mels: int = N_MELS
    n_mel_frames: int = N_MEL_FRAMES
    embed_dim: int = 256
    dropout: float = 0.3


# -- the model ---------------------------------------------------------------------------------


class LipSyncNet(nn.Module):
    """Video tower (B, 3, T, H, W) -> (B, 256) and audio tower (B, 1, 64, 20) -> (B, 256),
    both L2-normalised. Input sizes are free: the adaptive pools fix the FC input sizes."""

    def __init__(self, embed_dim: int = 256, dropout: float = 0.3):
        super().__init__()
        self.video_net = nn.Sequential(
            nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)),
            nn.BatchNorm3d(64), nn.ReLU(inplace=True),
            nn.MaxPool3d((2, 3, 3), stride=(2, 2, 2)),
            nn.Conv3d(64, 128, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
            nn.BatchNorm3d(128), nn.ReLU(inplace=True),
            nn.MaxPool3d((2, 2, 2), stride=(2, 2, 2)),
            nn.Conv3d(128, 256, (3, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1)),
            nn.BatchNorm3d(256), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d((4, 1, 1)),
            nn.Flatten(),
        )
        self.video_fc = nn.Sequential(
            nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(512, embed_dim),
        )
        self.audio_net = nn.Sequential(
            nn.Conv2d(1, 64, 5, stride=2, padding=2), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(64, 128, 5, stride=2, padding=2), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
        )
        self.audio_fc = nn.Sequential(
            nn.Linear(256, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(512, embed_dim),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be (batch, 3, frames, height, width), got {tuple(video.shape)}")
        return F.normalize(self.video_fc(self.video_net(video)), p=2, dim=1)

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 4 or audio.shape[1] != 1:
            raise ValueError(f"audio must be (batch, 1, mels, frames), got {tuple(audio.shape)}")
        return F.normalize(self.audio_fc(self.audio_net(audio)), p=2, dim=1)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_video(video), self.encode_audio(audio)

    def distance(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """(B,) audio-visual distance of paired windows (small = in sync)."""
        v, a = self(video, audio)
        return F.pairwise_distance(v, a, p=2)


class AVSyncLoss(nn.Module):
    """alpha * MarginRanking(d_neg, d_pos, margin) + (1 - alpha) * mean(d_pos).

    Positive pairs: (face window, its own audio window). Negative pairs: the same face
    with audio from another time, or another face with the audio. Unit-norm embeddings
    keep distances in [0, 2], so margin 1.5 asks for well-separated pairs."""

    def __init__(self, margin: float = 1.5, alpha: float = 0.7):
        super().__init__()
        self.alpha = float(alpha)
        self.ranking = nn.MarginRankingLoss(margin=margin)

    def forward(self, d_pos: torch.Tensor, d_neg: torch.Tensor, pos_index: torch.Tensor | None = None) -> torch.Tensor:
        """``d_pos`` (P,), ``d_neg`` (N,). Without ``pos_index`` N == P and negative i is ranked
        against positive i; with it (N,) negative i is ranked against ``d_pos[pos_index[i]]``
        (several negatives per positive), and the pull term stays the mean over the P positives."""
        anchor = d_pos if pos_index is None else d_pos[pos_index]
        # target 1: the first argument (d_neg) should be the larger one.
        rank = self.ranking(d_neg, anchor, torch.ones_like(anchor))
        return self.alpha * rank + (1.0 - self.alpha) * d_pos.mean()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- inputs: log-mel and face crops ------------------------------------------------------------


def log_mel(audio: np.ndarray, samples_per_frame: float = DEFAULT_SAMPLES_PER_FRAME,
            n_frames: int | None = None, sr: int = SAMPLE_RATE, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, MEL_PER_FRAME * n_frames) log-mel of ``audio``, aligned with the video:
    mel frames ``4k .. 4k+3`` cover exactly the samples of video frame ``k``,
    ``[k * spf, (k + 1) * spf)`` (each mel frame is centred on its quarter of the frame).

    ``samples_per_frame`` (spf) = audio samples per video frame (1280 for 16 kHz / 12.5 fps).
    Levels are dB relative to the utterance's loudest mel bin, floored at -80 dB and mapped
    to about [-1, 1], so the network sees the shape of the envelope, not the recording level.
    """
    import librosa

    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if n_frames is None:
        n_frames = int(np.ceil(len(x) / samples_per_frame))
    hop_f = samples_per_frame / MEL_PER_FRAME
    hop = max(1, int(round(hop_f)))
    n_fft = int(2 ** np.ceil(np.log2(2 * hop)))  # a window of about two hops (640 -> 1024 bins)
    win = 2 * hop
    n_out = MEL_PER_FRAME * n_frames
    # Start half a hop late so that frame j (centred at j*hop with center=True) is centred
    # at j*hop + hop/2: the middle of its quarter [j*hop, (j+1)*hop).
    start = hop // 2
    need = start + n_out * hop
    x = np.pad(x, (0, max(0, need - len(x))))[start:need]
    mel = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, win_length=win, hop_length=hop,
                                         n_mels=n_mels, center=True, pad_mode="constant", power=2.0)
    mel = mel[:, :n_out]
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db - db.max(), MEL_FLOOR_DB)
    return (db / -MEL_FLOOR_DB * 2.0 + 1.0).astype(np.float32)


LOWER_FACE_FROM = 0.45  # "lower" crops start at this fraction of the box height


def face_crops(frames: np.ndarray, boxes: np.ndarray, size: int, margin: float = 0.1, region: str = "face") -> np.ndarray:
    """(T, size, size, 3) uint8 RGB crops of ``boxes`` (T, 4: x, y, w, h) in ``frames`` (T, H, W, 3).
    ``region="lower"`` keeps the part of each box below ``LOWER_FACE_FROM`` of its height."""
    import cv2

    from merbench.features.video.track import clip_box

    if region not in ("face", "lower"):
        raise ValueError(f"crop region {region!r} must be 'face' or 'lower'")
    boxes = np.asarray(boxes, dtype=np.float64).copy()
    if region == "lower":
        boxes[:, 1] += LOWER_FACE_FROM * boxes[:, 3]
        boxes[:, 3] *= 1.0 - LOWER_FACE_FROM
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, (fr, b) in enumerate(zip(frames, boxes)):
        x0, y0, x1, y1 = clip_box(b, fr.shape, margin)
        out[i] = cv2.resize(np.ascontiguousarray(fr[y0:y1, x0:x1]), (size, size), interpolation=cv2.INTER_AREA)
    return out


def window_starts(n_frames: int, window: int = WINDOW_FRAMES, stride: int = 1) -> np.ndarray:
    """First video frame of every full window in a clip of ``n_frames`` frames."""
    if n_frames < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - window + 1, max(1, int(stride)), dtype=np.int64)


def video_window(crops: np.ndarray, start: int, window: int = WINDOW_FRAMES, center: bool = True) -> np.ndarray:
    """(3, window, S, S) float32 from uint8 crops (T, S, S, 3), frames start..start+window-1:
    pixels in [-1, 1], or with ``center`` their difference from the window's mean frame (x4)."""
    clip = crops[start:start + window]
    if len(clip) != window:
        raise ValueError(f"window at frame {start} needs {window} frames, the clip has {len(crops)}")
    x = clip.astype(np.float32).transpose(3, 0, 1, 2) / 127.5 - 1.0
    if center:
        x = (x - x.mean(axis=1, keepdims=True)) * 4.0
    return x


def audio_window(mel: np.ndarray, start: int, window: int = WINDOW_FRAMES) -> np.ndarray:
    """(1, n_mels, 4 * window) float32: the mel frames of video frames start..start+window-1."""
    a, b = MEL_PER_FRAME * start, MEL_PER_FRAME * (start + window)
    if b > mel.shape[1]:
        raise ValueError(f"audio window at frame {start} needs mel frames {a}..{b - 1}, the log-mel has {mel.shape[1]}")
    return mel[None, :, a:b].astype(np.float32, copy=False)


def utterance_windows(crops: np.ndarray, mel: np.ndarray, window: int = WINDOW_FRAMES, center: bool = True,
                      starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All windows of one face track at once: video (n, 3, window, S, S) and audio
    (n, 1, n_mels, 4 * window), float32, window ``i`` starting at frame ``starts[i]``
    (default: every full window). Equal to stacking :func:`video_window` / :func:`audio_window`."""
    n = min(len(crops), mel.shape[1] // MEL_PER_FRAME)
    if starts is None:
        starts = window_starts(n, window)
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) and (starts.min() < 0 or starts.max() + window > n):
        raise ValueError(f"window starts {starts.min()}..{starts.max()} do not fit a clip of {n} frames")
    S = crops.shape[1]
    if not len(starts):
        return (np.zeros((0, 3, window, S, S), np.float32), np.zeros((0, 1, mel.shape[0], MEL_PER_FRAME * window), np.float32))
    x = crops[:n].astype(np.float32).transpose(3, 0, 1, 2) / 127.5 - 1.0  # (3, T, S, S)
    idx = starts[:, None] + np.arange(window)[None, :]  # (n, window)
    v = x[:, idx].transpose(1, 0, 2, 3, 4)  # (n, 3, window, S, S)
    if center:
        v = (v - v.mean(axis=2, keepdims=True)) * 4.0
    midx = MEL_PER_FRAME * starts[:, None] + np.arange(MEL_PER_FRAME * window)[None, :]
    a = mel[:, midx].transpose(1, 0, 2)[:, None].astype(np.float32)  # (n, 1, n_mels, 4 * window)
    return np.ascontiguousarray(v, dtype=np.float32), np.ascontiguousarray(a)


def frame_levels_db(mel: np.ndarray) -> np.ndarray:
    """Audio level of every video frame of a :func:`log_mel` output, in dB relative to the
    utterance's loudest frame (power summed over the frame's mel bins and its 4 mel frames)."""
    n = mel.shape[1] // MEL_PER_FRAME
    db = (mel[:, :n * MEL_PER_FRAME].astype(np.float64) - 1.0) / 2.0 * -MEL_FLOOR_DB  # undo the [-1, 1] map
    power = (10.0 ** (db / 10.0)).sum(axis=0).reshape(n, MEL_PER_FRAME).sum(axis=1)
    level = 10.0 * np.log10(np.maximum(power, 1e-30))
    return (level - level.max()).astype(np.float32) if n else level.astype(np.float32)


def window_voiced_fraction(mel: np.ndarray, starts: np.ndarray, window: int, frame_threshold_db: float) -> np.ndarray:
    """Fraction of each window's video frames whose level (:func:`frame_levels_db`) reaches
    ``frame_threshold_db``: 0 for a window in silence, where the lips have nothing to follow."""
    starts = np.asarray(starts, dtype=np.int64)
    if not len(starts):
        return np.zeros(0, np.float32)
    voiced = frame_levels_db(mel) >= frame_threshold_db
    return voiced[starts[:, None] + np.arange(window)[None, :]].mean(axis=1).astype(np.float32)


def window_span_seconds(start: int, window: int = WINDOW_FRAMES, fps: float = 12.5) -> tuple[float, float]:
    """Time span [t0, t1) covered by a video window (and, by construction, by its audio window)."""
    return start / fps, (start + window) / fps


def mel_frame_span_seconds(j: int, samples_per_frame: float = DEFAULT_SAMPLES_PER_FRAME,
                           sr: int = SAMPLE_RATE) -> tuple[float, float]:
    """The quarter of a video frame that mel frame ``j`` of :func:`log_mel` is centred on."""
    hop = max(1, int(round(samples_per_frame / MEL_PER_FRAME)))
    return j * hop / sr, (j + 1) * hop / sr


@torch.no_grad()
def window_distances(model: LipSyncNet, crops: np.ndarray, mel: np.ndarray, stride: int = 1,
                     window: int = WINDOW_FRAMES, batch: int = 64, center: bool = True) -> np.ndarray:
    """Audio-visual distance of every aligned window of one face track (empty if the clip is too short)."""
    n = min(len(crops), mel.shape[1] // MEL_PER_FRAME)
    starts = window_starts(n, window, stride)
    if not len(starts):
        return np.zeros(0, dtype=np.float32)
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(starts), batch):
        v, a = utterance_windows(crops, mel, window, center, starts[i:i + batch])
        out.append(model.distance(torch.from_numpy(v).to(dev), torch.from_numpy(a).to(dev)).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def pad_to_window(crops: np.ndarray, mel: np.ndarray, window: int = WINDOW_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Repeat the last frame (and pad the log-mel with silence) so a clip shorter than one
    window still gives one window; clips of ``window`` frames or more are returned as they are."""
    if len(crops) >= window:
        return crops, mel
    reps = window - len(crops)
    crops = np.concatenate([crops, np.repeat(crops[-1:], reps, axis=0)])
    need = MEL_PER_FRAME * window - mel.shape[1]
    if need > 0:
        mel = np.pad(mel, ((0, 0), (0, need)), constant_values=-1.0)
    return crops, mel


# -- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(path: str | Path, model: LipSyncNet, config: LipSyncConfig, extra: dict[str, Any] | None = None) -> Path:
    """Write weights + config atomically (a reader never sees a half-written file)."""
    from merbench.atomic import atomic_write

    payload = {"format": "merbench-lipsync-1", "config": asdict(config),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "extra": extra or {}}
    return atomic_write(path, lambda p: torch.save(payload, p))


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[LipSyncNet, LipSyncConfig]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain data only:
    ``weights_only=True`` refuses any pickled code)."""
    from merbench.errors import MerbenchError

    path = Path(path)
    if not path.is_file():
        raise MerbenchError(f"{path}: lip-sync checkpoint not found",
                            fix="train one with `python -m merbench.features.active_speaker.train_lipsync --out DIR`")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, or one holding code objects
        raise MerbenchError(f"{path}: not a readable lip-sync checkpoint ({type(e).__name__}: {e})",
                            fix="re-create it with train_lipsync") from None
    if not isinstance(payload, dict) or payload.get("format") != "merbench-lipsync-1":
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise MerbenchError(f"{path}: not a merbench lip-sync checkpoint (found {found!r}, "
                            "expected format 'merbench-lipsync-1')", fix="re-create it with train_lipsync")
    cfg = LipSyncConfig(**payload["config"])
    model = LipSyncNet(embed_dim=cfg.embed_dim, dropout=cfg.dropout)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, cfg


def state_fingerprint(model: nn.Module) -> str:
    """sha256 of the weights (identifies the model in feature-cache keys)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        buf = io.BytesIO()
        np.save(buf, v.detach().cpu().numpy(), allow_pickle=False)
        h.update(buf.getvalue())
    return h.hexdigest()
