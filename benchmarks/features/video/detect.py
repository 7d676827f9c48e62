"""Face detection for the face-track video extractors: a detector is anything with
``detect(frame_rgb) -> [(x, y, w, h), ...]``; the default is OpenCV's Haar cascade with
skin-colour blobs in the frames where Haar finds nothing."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...errors import MediaError

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


# -- detectors ---------------------------------------------------------------------------


@runtime_checkable
class FaceDetector(Protocol):
    """Anything with ``detect(frame_rgb) -> [(x, y, w, h), ...]`` (uint8 RGB frame in, pixel boxes out)."""

    def detect(self, frame_rgb: np.ndarray) -> list[Box]: ...


def describe_detector(det: Any) -> dict[str, Any]:
    """What identifies a detector in the cache key: its name and its settings()."""
    info: dict[str, Any] = {"name": getattr(det, "name", type(det).__qualname__)}
    if hasattr(det, "settings"):
        info.update(det.settings())
    return info


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade on the histogram-equalised grey frame."""

    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 4, min_size_frac: float = 0.1):
        import cv2

        self.cascade_name = cascade
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_frac = min_size_frac
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self._cascade.empty():
            raise MediaError(cv2.data.haarcascades + cascade, "OpenCV cannot load this Haar cascade",
                             fix="reinstall opencv-python-headless, which ships the cascade files")

    def __getstate__(self) -> dict:
        # The OpenCV classifier cannot be pickled; worker processes load it again from its name.
        return {k: v for k, v in self.__dict__.items() if k != "_cascade"}

    def __setstate__(self, state: dict) -> None:
        import cv2

        self.__dict__.update(state)
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + self.cascade_name)

    def settings(self) -> dict[str, Any]:
        return {"cascade": self.cascade_name, "scale_factor": self.scale_factor,
                "min_neighbors": self.min_neighbors, "min_size_frac": self.min_size_frac}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        import cv2

        grey = cv2.equalizeHist(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY))
        side = max(8, int(self.min_size_frac * min(grey.shape)))
        found = self._cascade.detectMultiScale(grey, scaleFactor=self.scale_factor,
                                               minNeighbors=self.min_neighbors, minSize=(side, side))
        return [tuple(int(v) for v in b) for b in (found if len(found) else [])]


class SkinBlobDetector:
    """Skin-coloured blobs: a fixed Cr/Cb box in YCrCb, cleaned by morphology, one box per
    large, roughly face-shaped contour. A generic fallback with no learned model."""

    name = "skin"

    def __init__(self, cr: tuple[int, int] = (135, 180), cb: tuple[int, int] = (77, 127), min_luma: int = 60,
                 min_area_frac: float = 0.01, max_area_frac: float = 0.9, aspect: tuple[float, float] = (0.35, 2.5)):
        self.cr, self.cb, self.min_luma = tuple(cr), tuple(cb), int(min_luma)
        self.min_area_frac, self.max_area_frac = min_area_frac, max_area_frac
        self.aspect = tuple(aspect)

    def settings(self) -> dict[str, Any]:
        return {"cr": list(self.cr), "cb": list(self.cb), "min_luma": self.min_luma, "min_area_frac": self.min_area_frac,
                "max_area_frac": self.max_area_frac, "aspect": list(self.aspect)}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        import cv2

        ycc = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2YCrCb)
        # Dark, nearly grey backgrounds have skin-like chroma; the luma floor keeps them out.
        mask = cv2.inRange(ycc, (self.min_luma, self.cr[0], self.cb[0]), (255, self.cr[1], self.cb[1]))
        k = max(3, (min(mask.shape) // 40) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        # Closing fills the eyes and mouth, which are not skin-coloured, into the face blob.
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        area = float(mask.shape[0] * mask.shape[1])
        boxes = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            a = cv2.contourArea(c)
            if not (self.min_area_frac * area <= a <= self.max_area_frac * area):
                continue
            if not (self.aspect[0] <= h / max(w, 1) <= self.aspect[1]):
                continue
            boxes.append((int(x), int(y), int(w), int(h)))
        return sorted(boxes, key=lambda b: -b[2] * b[3])


class FallbackDetector:
    """``primary``'s boxes, or ``fallback``'s where the primary finds nothing in a frame."""

    def __init__(self, primary: FaceDetector, fallback: FaceDetector):
        self.primary, self.fallback = primary, fallback
        self.name = f"{describe_detector(primary)['name']}|{describe_detector(fallback)['name']}"
        self.used = {"primary": 0, "fallback": 0, "none": 0}  # frames answered by each

    def settings(self) -> dict[str, Any]:
        return {"primary": describe_detector(self.primary), "fallback": describe_detector(self.fallback)}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        boxes = self.primary.detect(frame_rgb)
        if boxes:
            self.used["primary"] += 1
            return boxes
        boxes = self.fallback.detect(frame_rgb)
        self.used["fallback" if boxes else "none"] += 1
        return boxes


def default_detector(scale_factor: float = 1.1) -> FallbackDetector:
    """Haar (``scale_factor`` between the window sizes it scans), skin blobs where it finds nothing."""
    return FallbackDetector(HaarFaceDetector(scale_factor=scale_factor), SkinBlobDetector())
