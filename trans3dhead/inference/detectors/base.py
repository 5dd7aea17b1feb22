"""Face detectors: what every detector returns (Detection), how a detector box becomes the
model's square crop box (CropPolicy), and the base class a detector plug-in implements.

All boxes are (x0, y0, x1, y1) in the package image frame: pixels, x right, y down, origin at
the top-left corner of the top-left pixel (see face_model/frames.py). Each detector owns its
CropPolicy, because every detector draws its boxes differently (tight or loose, chin or not).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropPolicy:
    """Detector box -> square crop box.

    With size = (w + h) / 2 of the box: the crop is centred at the box centre moved by
    (shift_x * size, shift_y * size) and its side is scale * size. The identity policy
    (scale 1, no shift) squares a box that is already a crop box (3DDFA's roi_box).
    """

    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def crop_box(self, box) -> np.ndarray:
        """(..., 4) detector boxes -> (..., 4) float64 square crop boxes, image pixels."""
        b = np.asarray(box, dtype=np.float64)
        w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
        size = (w + h) / 2
        cx = (b[..., 0] + b[..., 2]) / 2 + self.shift_x * size
        cy = (b[..., 1] + b[..., 3]) / 2 + self.shift_y * size
        half = self.scale * size / 2
        return np.stack([cx - half, cy - half, cx + half, cy + half], -1)


@dataclass(frozen=True)
class Detection:
    """One detected face.

    box: (4,) float64 x0, y0, x1, y1, image pixels (the detector's own box, before the policy).
    score: detector confidence in [0, 1] (1.0 for given boxes).
    keypoints: (5, 2) float64 image pixels (eyes, nose tip, mouth corners) or None.
    source: name of the detector that found it where a detector falls back on another ("" otherwise);
    its crop policy is that detector's.
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    source: str = ""


class FaceDetector(ABC):
    """A detector plug-in: images in, Detections out; it owns its box -> crop constants.

    Subclass it to plug another detector into HeadAligner: implement detect() and set
    crop_policy to constants fitted for your boxes (scripts/calibrate_detector.py shows how).
    """

    name: str = "detector"
    crop_policy: CropPolicy = CropPolicy()

    @abstractmethod
    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 BGR -> faces found, best score first (an empty list if none)."""

    def detect_batch(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """One list of Detections per image; override where the detector batches."""
        return [self.detect(img) for img in images_bgr]

    def crop_box(self, detection: Detection) -> np.ndarray:
        return self.crop_policy.crop_box(detection.box)


class _BySource(FaceDetector):
    """A detector made of others: each Detection.source names the detector that found it, whose
    crop policy crops it (an unnamed source: the first detector's)."""

    def __init__(self, detectors: list[FaceDetector], sources: list[str]):
        self._by_source = dict(zip(sources, detectors))
        self._first = detectors[0]
        self.crop_policy = detectors[0].crop_policy

    def crop_box(self, detection: Detection) -> np.ndarray:
        return self._by_source.get(detection.source, self._first).crop_box(detection)


class FallbackDetector(_BySource):
    """A detector that runs a second one where it finds no face at all: the primary's detections,
    or else the fallback's, each cropped by the policy of the detector that found it
    (Detection.source names the fallback). score_threshold and max_side are the primary's."""

    def __init__(self, primary: FaceDetector, fallback: FaceDetector):
        super().__init__([primary, fallback], ["", fallback.name])
        self.primary, self.fallback = primary, fallback
        self.name = primary.name

    score_threshold = property(lambda self: self.primary.score_threshold)
    max_side = property(lambda self: self.primary.max_side)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        dets = self.primary.detect(image_bgr)
        if dets:
            return dets
        return [Detection(d.box, d.score, d.keypoints, self.fallback.name) for d in self.fallback.detect(image_bgr)]


class AllDetectors(_BySource):
    """Every box of each of several detectors, each tagged with (Detection.source) and cropped by the
    policy of the detector that found it (the face-score stage's animal boxes)."""

    def __init__(self, detectors: list[FaceDetector]):
        super().__init__(detectors, [d.name for d in detectors])
        self.detectors = detectors
        self.name = "+".join(d.name for d in detectors)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        return [Detection(d.box, d.score, d.keypoints, det.name) for det in self.detectors for d in det.detect(image_bgr)]
