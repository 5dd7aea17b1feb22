"""Face detector plug-ins: each turns an image into Detections and owns its box -> crop policy."""
from __future__ import annotations

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.detectors.base import CropPolicy, Detection, FaceDetector
from trans3dhead.inference.detectors.given import GivenBoxes
from trans3dhead.inference.detectors.retinaface import RetinaFaceDetector

DETECTORS = {"retinaface": RetinaFaceDetector}

__all__ = ["CropPolicy", "Detection", "FaceDetector", "GivenBoxes", "RetinaFaceDetector", "DETECTORS",
           "build_detector"]


def build_detector(detector: str | FaceDetector = "retinaface", threads: int | None = None,
                   score_threshold: float | None = None) -> FaceDetector:
    """A FaceDetector from a plug-in name (with its default score threshold unless given) or an
    instance (returned as is)."""
    if isinstance(detector, FaceDetector):
        return detector
    if detector not in DETECTORS:
        raise Trans3DHeadError(f"detector '{detector}': unknown; choose one of {', '.join(DETECTORS)} "
                               "or pass a FaceDetector instance")
    options = {} if score_threshold is None else {"score_threshold": score_threshold}
    return DETECTORS[detector](threads=threads, **options)
