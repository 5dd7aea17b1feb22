"""Inference: detectors, HeadAligner (images -> FaceResult in image pixels), video smoothing,
overlays, output files and ONNX export."""
from trans3dhead.inference.aligner import FaceResult, FileResult, FrameResult, HeadAligner, Mesh

__all__ = ["FaceResult", "FileResult", "FrameResult", "HeadAligner", "Mesh"]
