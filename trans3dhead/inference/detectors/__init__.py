"""Face detector plug-ins: each turns an image into Detections and owns its box -> crop policy."""
from __future__ import annotations

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.detectors.base import CropPolicy, Detection, FaceDetector, FallbackDetector
from trans3dhead.inference.detectors.faceboxes import FaceBoxesDetector
from trans3dhead.inference.detectors.given import GivenBoxes
from trans3dhead.inference.detectors.retinaface import RetinaFaceDetector
from trans3dhead.inference.detectors.yunet import YuNetDetector

DETECTORS = {"retinaface": RetinaFaceDetector, "faceboxes": FaceBoxesDetector}
# By name, each detector runs the other where it finds no face at all (FallbackDetector): on
# AFLW2000-3D the two together miss 4 of the 2000 faces, RetinaFace alone 9, FaceBoxes alone 36.
FALLBACK = {"retinaface": "faceboxes", "faceboxes": "retinaface", "yunet": "retinaface"}
# YuNet is named with its weights file, "yunet:PATH" (not in the package: detectors/yunet.py).
YUNET_PREFIX = "yunet:"
# RetinaFace stays the default: it finds faces down to ~25 px of its input (FaceBoxes ~50-60 px)
# and boxes large faces better; FaceBoxes is the fast choice (docs/predict.md#speed).
DEFAULT_DETECTOR = "retinaface"

__all__ = ["CropPolicy", "Detection", "FaceDetector", "FallbackDetector", "GivenBoxes", "FaceBoxesDetector",
           "RetinaFaceDetector", "YuNetDetector", "DETECTORS", "DEFAULT_DETECTOR", "FALLBACK", "build_detector", "detector_arg", "detector_spec"]


def build_detector(detector: str | FaceDetector = DEFAULT_DETECTOR, threads: int | None = None,
                   score_threshold: float | None = None, max_side: int | None = None,
                   fallback: bool = True) -> FaceDetector:
    """A FaceDetector from a plug-in name (with its default score threshold and detection size
    unless given; with fallback, the other detector runs where it finds no face, at the same
    threshold when one is given) or an instance (returned as is)."""
    if isinstance(detector, FaceDetector):
        return detector
    detector_spec(detector)
    threshold = {} if score_threshold is None else {"score_threshold": score_threshold}
    size = {} if max_side is None else {"max_side": max_side}
    if detector.startswith(YUNET_PREFIX):
        primary, name = YuNetDetector(detector[len(YUNET_PREFIX):], threads=threads, **threshold, **size), "yunet"
    else:
        primary, name = DETECTORS[detector](threads=threads, **threshold, **size), detector
    if not fallback:
        return primary
    return FallbackDetector(primary, DETECTORS[FALLBACK[name]](threads=threads, **threshold))


def detector_spec(spec: str) -> str:
    """A detector name as the command lines take it: one of DETECTORS, or "yunet:PATH" (YuNet with its
    weights file); anything else is an error naming the choices (argparse's type= too)."""
    if spec in DETECTORS or (spec.startswith(YUNET_PREFIX) and len(spec) > len(YUNET_PREFIX)):
        return spec
    raise Trans3DHeadError(f"detector '{spec}': unknown; choose one of {', '.join(DETECTORS)}, "
                           "yunet:PATH (YuNet with its weights file), or pass a FaceDetector instance")


def detector_arg(spec: str) -> str:
    """detector_spec for argparse's type=: a bad spec becomes a usage error."""
    import argparse

    try:
        return detector_spec(spec)
    except Trans3DHeadError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
