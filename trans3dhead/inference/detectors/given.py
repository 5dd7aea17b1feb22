"""The "boxes given" detector: boxes from the caller (another detector, a tracker, annotations)
instead of a detector run. Boxes are (x0, y0, x1, y1[, score]) in image pixels.

By default the boxes are taken as crop boxes in 3DDFA's sense (roi_box: a loose square around
the whole head, about 1.4x the landmarks' extent) and only squared. For tight face-detector boxes
pass the policy fitted for that detector, e.g. ``RetinaFaceDetector.crop_policy``.
"""
from __future__ import annotations

import numpy as np

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.detectors.base import CropPolicy, Detection, FaceDetector


class GivenBoxes(FaceDetector):
    """Returns the boxes it was built with for whatever image it is given."""

    name = "given-boxes"

    def __init__(self, boxes, crop_policy: CropPolicy = CropPolicy()):
        b = np.asarray(boxes, dtype=np.float64)
        if b.ndim == 1 and b.size in (4, 5):
            b = b[None]
        if b.size == 0:
            b = np.zeros((0, 4))
        if b.ndim != 2 or b.shape[1] not in (4, 5):
            raise Trans3DHeadError(f"boxes of shape {b.shape}: expected (N, 4) x0, y0, x1, y1 or (N, 5) with a score")
        if not np.all(np.isfinite(b)) or np.any(b[:, 2] <= b[:, 0]) or np.any(b[:, 3] <= b[:, 1]):
            raise Trans3DHeadError("boxes: every box needs finite x0 < x1 and y0 < y1 (image pixels)")
        self.boxes = b
        self.crop_policy = crop_policy

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        score = self.boxes[:, 4] if self.boxes.shape[1] == 5 else np.ones(len(self.boxes))
        return [Detection(box=b[:4].copy(), score=float(s)) for b, s in zip(self.boxes, score)]
