"""Face detector plug-ins: each turns an image into Detections and owns its box -> crop policy."""
from __future__ import annotations

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.detectors.base import CropPolicy, Detection, FaceDetector, FallbackDetector
from trans3dhead.inference.detectors.faceboxes import FaceBoxesDetector
from trans3dhead.inference.detectors.given import GivenBoxes
from trans3dhead.inference.detectors.retinaface import RetinaFaceDetector
from trans3dhead.inference.detectors.yunet import YuNetDetector

DETECTORS = {"retinaface": RetinaFaceDetector, "faceboxes": FaceBoxesDetector, "yunet": YuNetDetector}
# By name, each detector runs the other where it finds no face at all (FallbackDetector): on
# AFLW2000-3D the two together miss 4 of the 2000 faces, RetinaFace alone 9, FaceBoxes alone 36.
FALLBACK = {"retinaface": "faceboxes", "faceboxes": "retinaface", "yunet": "retinaface"}
# RetinaFace stays the default: it finds faces down to ~25 px of its input (FaceBoxes ~50-60 px)
# and boxes large faces better; FaceBoxes is the fast choice (docs/predict.md#speed).
DEFAULT_DETECTOR = "retinaface"

__all__ = ["CropPolicy", "Detection", "FaceDetector", "FallbackDetector", "GivenBoxes", "FaceBoxesDetector",
           "RetinaFaceDetector", "YuNetDetector", "DETECTORS", "DEFAULT_DETECTOR", "FALLBACK", "build_detector"]


def build_detector(detector: str | FaceDetector = DEFAULT_DETECTOR, threads: int | None = None,
                   score_threshold: float | None = None, max_side: int | None = None,
                   fallback: bool = True) -> FaceDetector:
    """A FaceDetector from a plug-in name (with its default score threshold and detection size
    unless given; with fallback, the other detector runs where it finds no face, at the same
    threshold when one is given) or an instance (returned as is)."""
    if isinstance(detector, FaceDetector):
        return detector
    if detector not in DETECTORS:
        raise Trans3DHeadError(f"detector '{detector}': unknown; choose one of {', '.join(DETECTORS)} "
                               "or pass a FaceDetector instance")
    threshold = {} if score_threshold is None else {"score_threshold": score_threshold}
    size = {} if max_side is None else {"max_side": max_side}
    primary = DETECTORS[detector](threads=threads, **threshold, **size)
    if not fallback:
        return primary
    return FallbackDetector(primary, DETECTORS[FALLBACK[detector]](threads=threads, **threshold))
