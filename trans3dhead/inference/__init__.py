"""Inference: detectors, HeadAligner (images -> FaceResult in image pixels), video, overlays,
output files and ONNX export. The names below load on first use, so that importing a light
submodule (e.g. for the CLI's option lists) does not pull in torch."""
from __future__ import annotations

__all__ = ["FaceResult", "FileResult", "FrameResult", "HeadAligner", "Mesh", "Pose"]


def __getattr__(name):
    if name == "HeadAligner":
        from trans3dhead.inference.aligner import HeadAligner
        return HeadAligner
    if name in __all__:
        from trans3dhead.inference import results
        return getattr(results, name)
    raise AttributeError(f"module 'trans3dhead.inference' has no attribute '{name}'")
