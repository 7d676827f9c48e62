"""Face-crop embeddings from any Hugging Face vision model (ViT, DeiT, CLIP vision, ResNet, ConvNeXt, ...).

For each utterance: read at most ``max_frames`` frames, find and track faces and pick the
speaker's track with the helpers of :mod:`merbench.features.video` (same detector, tracker
and ``select_track`` hook as ``video-facecrop``), crop that face in colour from the full-size
frames, and embed every crop with the model (its own ``AutoImageProcessor`` resizes and
normalises).

- Image models: frames = one embedding per sampled frame ``(T, D)`` (the [CLS] state of the
  last layer with ``readout="cls"``, or the mean of the patch states with ``readout="mean"``;
  for convolutional models such as ResNet or ConvNeXt, whose last layer is a (C, H, W) map, the
  model's pooled output, ``readout`` not applying); pooled = the mean over frames.
- Video models (``timesformer``, ``videomae``, ``vivit``: e.g.
  ``facebook/timesformer-base-finetuned-k400``): the crops are sampled to the model's
  ``num_frames`` and embedded as one clip; frames = the clip's token states (space-time
  patches), pooled = the clip embedding ([CLS] for TimeSformer and ViViT, the token mean for
  VideoMAE, which has no [CLS]).

When no face is found the whole frame is used (counted in ``counts["no_face"]``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np

from ..corpus import Utterance
from ..errors import ConfigError
from ..interfaces import ExtractedItem, FeatureExtractor
from .speech_hf import hidden_size, load_hf_pretrained, resolve_device
from .text import _cached
from .video import (FaceDetector, TrackSelector, clip_box, default_detector, describe_detector, extract_face_clips,
                    resolve_track_selector, selector_id, track_faces)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "google/vit-base-patch16-224"
VIDEO_MODEL_TYPES = {"timesformer", "videomae", "vivit"}
KNOWN_DIMS = {"google/vit-base-patch16-224": 768, "google/vit-base-patch16-224-in21k": 768,
              "google/vit-large-patch16-224": 1024, "facebook/timesformer-base-finetuned-k400": 768,
              "MCG-NJU/videomae-base": 768, "openai/clip-vit-base-patch32": 768}


def face_boxes(frames: np.ndarray, detector: FaceDetector, select_track: TrackSelector, detect_every: int = 3,
               detect_max_side: int = 320, audio: np.ndarray | None = None) -> tuple[np.ndarray | None, int]:
    """Speaker-face boxes ``(T, 4)`` in pixels of ``frames`` (T, H, W, 3), or None when no face is
    found; and the number of face tracks. Detection runs on frames scaled down to
    ``detect_max_side``, every ``detect_every``-th frame (and the last), as in video-facecrop."""
    import cv2

    H, W = frames.shape[1:3]
    scale = min(1.0, detect_max_side / max(H, W))
    small = frames if scale >= 1 else np.stack(
        [cv2.resize(f, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA) for f in frames])
    last = len(small) - 1
    every = max(1, int(detect_every))
    tracks = track_faces([detector.detect(f) if i % every == 0 or i == last else [] for i, f in enumerate(small)])
    if not tracks:
        return None, 0
    k = int(select_track(tracks, audio, small)) if len(tracks) > 1 else 0
    if not 0 <= k < len(tracks):
        raise ValueError(f"select_track returned track {k} of {len(tracks)}; it must return an index into the tracks")
    return tracks[k].filled() / scale, len(tracks)


def colour_crops(frames: np.ndarray, boxes: np.ndarray | None, margin: float) -> list[np.ndarray]:
    """uint8 RGB crops of ``boxes`` in ``frames`` (whole frames when ``boxes`` is None)."""
    if boxes is None:
        return [np.ascontiguousarray(f) for f in frames]
    out = []
    for fr, b in zip(frames, boxes):
        x0, y0, x1, y1 = clip_box(b, fr.shape, margin)
        out.append(np.ascontiguousarray(fr[y0:y1, x0:x1]))
    return out


class HFVisionExtractor(FeatureExtractor):
    """Embeddings of the speaker's face crops from a Hugging Face image or video model."""

    name = "video-hf"
    version = "1"
    modality = "v"
    levels = ("pooled", "frames")
    batch_size = 8

    # What a method config may set (features.v.options); device and batch size are run settings.
    config_options = ("model_name", "readout", "max_frames", "margin", "select_track", "lipsync_checkpoint",
                      "random_seed", "detect_max_side", "detect_every")

    def __init__(self, model_name: str | os.PathLike = DEFAULT_MODEL, readout: str = "cls", max_frames: int = 16,
                 margin: float = 0.1, detector: FaceDetector | None = None, select_track: "str | TrackSelector | None" = None,
                 detect_max_side: int = 320, detect_every: int = 3, device: str = "cpu", model_batch: int = 32,
                 lipsync_checkpoint: str | os.PathLike | None = None, random_seed: int = 0):
        if readout not in ("cls", "mean"):
            raise ConfigError(f"video-hf: readout must be 'cls' or 'mean', not {readout!r}",
                              fix="readout: cls (the [CLS] state) or readout: mean (mean of the patch states)")
        self.model_name = str(model_name)
        self.readout = readout
        self.max_frames = int(max_frames)
        self.margin = float(margin)
        self.detector = detector if detector is not None else default_detector()
        # select_track: a callable, or mouth-motion (default) / random / lipsync (see resolve_track_selector).
        self.select_track = resolve_track_selector(select_track, lipsync_checkpoint, random_seed, self.name)
        self.detect_max_side = int(detect_max_side)
        self.detect_every = max(1, int(detect_every))
        self.device = device
        self.model_batch = max(1, int(model_batch))
        self.counts = {"utterances": 0, "no_face": 0, "several_faces": 0}

    def settings(self) -> dict[str, Any]:
        sel = self.select_track
        out = {"model_name": self.model_name, "readout": self.readout, "max_frames": self.max_frames,
               "margin": self.margin, "detect_max_side": self.detect_max_side, "detect_every": self.detect_every,
               "detector": describe_detector(self.detector),
               "select_track": selector_id(sel),
               "crop": "rgb, full-size frames", "pooled": "mean over frames (image models) / clip embedding (video models)"}
        if hasattr(sel, "settings"):
            out["select_track_settings"] = sel.settings()
        return out

    def output_dim(self, level: str = "pooled") -> int:
        return hidden_size(self.model_name, KNOWN_DIMS)

    def model(self):
        def load():
            proc, mod = load_hf_pretrained("AutoImageProcessor", self.model_name, "vision")
            if hasattr(mod, "vision_model"):  # a CLIP-style two-tower model: keep the image tower
                mod = mod.vision_model
            return proc, mod.to(resolve_device(self.device)).eval()

        return _cached(("hf-vision", self.model_name, self.device), load)

    def _is_video_model(self, mod) -> bool:
        return getattr(mod.config, "model_type", "") in VIDEO_MODEL_TYPES

    def _readout(self, hidden, has_cls: bool):
        if self.readout == "cls" and has_cls:
            return hidden[:, 0]
        return hidden[:, 1:].mean(1) if has_cls and hidden.shape[1] > 1 else hidden.mean(1)

    def embed(self, crops: list[np.ndarray]) -> ExtractedItem:
        """Features of one utterance's RGB crops (each (h, w, 3) uint8)."""
        import torch

        proc, mod = self.model()
        if self._is_video_model(mod):
            n = int(getattr(mod.config, "num_frames", len(crops)))
            idx = np.round(np.linspace(0, len(crops) - 1, n)).astype(int)
            pix = proc([[crops[i] for i in idx]], return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                hidden = mod(pixel_values=pix).last_hidden_state.float()
            has_cls = mod.config.model_type != "videomae"
            pooled = self._readout(hidden, has_cls)[0].cpu().numpy()
            return ExtractedItem(pooled=pooled.astype(np.float32),
                                 frames=np.ascontiguousarray(hidden[0].cpu().numpy(), dtype=np.float32))
        rows = []
        for k in range(0, len(crops), self.model_batch):
            pix = proc(crops[k:k + self.model_batch], return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                out = mod(pixel_values=pix)
            hidden = out.last_hidden_state.float()
            if hidden.dim() == 4:
                # Convolutional (ResNet, ConvNeXt, ...): (B, C, H, W) maps, no tokens. The model's own
                # pooled output when it has one (global average pool, + LayerNorm for ConvNeXt), else the spatial mean.
                pooled = getattr(out, "pooler_output", None)
                emb = pooled.float().flatten(1) if pooled is not None else hidden.mean(dim=(2, 3))
                rows.append(emb.cpu().numpy())
            else:  # ViT-like: [CLS] first
                rows.append(self._readout(hidden, True).cpu().numpy())
        frames = np.concatenate(rows).astype(np.float32)
        return ExtractedItem(pooled=frames.mean(0).astype(np.float32), frames=np.ascontiguousarray(frames))

    def features(self, frames: np.ndarray, audio: np.ndarray | None = None) -> ExtractedItem:
        """Features of the RGB frames (T, H, W, 3) of one utterance."""
        self.counts["utterances"] += 1
        boxes, n_tracks = face_boxes(frames, self.detector, self.select_track, self.detect_every,
                                     self.detect_max_side, audio)
        if boxes is None:
            self.counts["no_face"] += 1
        elif n_tracks > 1:
            self.counts["several_faces"] += 1
        item = self.embed(colour_crops(frames, boxes, self.margin))
        if boxes is None:
            item.notes = ("no_face",)
        return item

    def extract(self, utterances: Sequence[Utterance]) -> list[ExtractedItem]:
        return extract_face_clips(self, utterances)
