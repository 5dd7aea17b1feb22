"""Face detector plug-ins: each turns an image into Detections and owns its box -> crop policy."""
from __future__ import annotations

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.detectors.base import CropPolicy, Detection, FaceDetector
from trans3dhead.inference.detectors.faceboxes import FaceBoxesDetector
from trans3dhead.inference.detectors.given import GivenBoxes
from trans3dhead.inference.detectors.retinaface import RetinaFaceDetector

DETECTORS = {"retinaface": RetinaFaceDetector, "faceboxes": FaceBoxesDetector}
# FaceBoxes (with RetinaFace where it finds nothing): on AFLW2000-3D with detection 4.067 NME and 4
# misses against RetinaFace's 4.189 and 9, as many small faces in 1920x1080 photos at its 1920 px as
# RetinaFace at its 1280, and faster (docs/results.md, "A faster detector").
DEFAULT_DETECTOR = "faceboxes"

__all__ = ["CropPolicy", "Detection", "FaceDetector", "GivenBoxes", "FaceBoxesDetector", "RetinaFaceDetector", "DETECTORS", "DEFAULT_DETECTOR",
           "build_detector"]


def build_detector(detector: str | FaceDetector = DEFAULT_DETECTOR, threads: int | None = None,
                   score_threshold: float | None = None, max_side: int | None = None) -> FaceDetector:
    """A FaceDetector from a plug-in name (with its default score threshold and detection size
    unless given) or an instance (returned as is)."""
    if isinstance(detector, FaceDetector):
        return detector
    if detector not in DETECTORS:
        raise Trans3DHeadError(f"detector '{detector}': unknown; choose one of {', '.join(DETECTORS)} "
                               "or pass a FaceDetector instance")
    options = {k: v for k, v in (("score_threshold", score_threshold), ("max_side", max_side)) if v is not None}
    return DETECTORS[detector](threads=threads, **options)
