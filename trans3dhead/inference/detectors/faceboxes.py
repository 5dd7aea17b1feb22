"""FaceBoxes (Zhang et al., "FaceBoxes: A CPU Real-time Face Detector with High Accuracy", IJCB
2017), with the weights 3DDFA_V2 ships for its own pipeline (MIT; see
trans3dhead/assets/LICENSE-3DDFA_V2.txt). scripts/convert_faceboxes.py folds their batch norms into
the convolutions and writes trans3dhead/assets/faceboxes.onnx (float16 storage, float32 compute).

Its first detection map has stride 32 (RetinaFace's has 8), so it costs less than half of
RetinaFace-MobileNet0.25 at the same input size (6.6 against 15.5 ms a 450x450 photo), but it needs faces of ~50-60 px of its input where
RetinaFace finds them from ~25-30 px (docs/results.md, "FaceBoxes and the detector fallback").
We decode its outputs ourselves, as for RetinaFace: anchors made once per input size and kept, only
the anchors above the score threshold decoded, OpenCV's NMS.

A face filling a big photo is larger than its largest anchors (512 px) at 1920 px: where it finds no
face in an image larger than 640 px, it tries once more at 640 (on the shared 4K clip: 58 of 102
sampled frames found at 1920, 93 at 640). By name (build_detector("faceboxes")) it comes with
RetinaFace as its fallback where it still finds no face (base.FallbackDetector).
"""
from __future__ import annotations

import numpy as np

from trans3dhead.inference.detectors.base import CropPolicy, Detection
from trans3dhead.inference.detectors.onnx_detector import AnchorCache, OnnxDetector, batch_blob, nms

# Per stride: (anchor side in pixels, offsets of the anchor centres within a cell along each axis),
# in the order the network's outputs list them; the densified small anchors start at the cell's
# corner (offset 0), as the weights were trained. Decoded with variances 0.1 (centres), 0.2 (log sizes).
ANCHOR_LAYOUT = {32: ((32, (0.0, 0.25, 0.5, 0.75)), (64, (0.0, 0.5)), (128, (0.5,))),
                 64: ((256, (0.5,)),),
                 128: ((512, (0.5,)),)}
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
PIXEL_MEAN_BGR = (104.0, 117.0, 123.0)
# Default longer side for detection (max_side): at 1920 it finds as many 45-90 px faces in 1920x1080
# photos as RetinaFace at its 1280 (scripts/measure_detector.py sizes; at 1280 it loses most under 60 px).
DETECT_SIZE = 1920
ONNX_FILE = "faceboxes.onnx"

# Fitted on the even-numbered half of AFLW2000-3D by scripts/calibrate_detector.py --detector
# faceboxes against 3DDFA's roi_box crops; figures on the odd half in docs/detector_calibration.md.
FACEBOXES_CROP_POLICY = CropPolicy(scale=1.265, shift_x=-0.001, shift_y=0.073)


def _cell_anchors(stride: int) -> np.ndarray:
    """(A, 4) one cell's anchors: centre offsets in pixels from the cell's corner, side, side."""
    rows = []
    for side, offsets in ANCHOR_LAYOUT[stride]:
        for oy in offsets:
            for ox in offsets:
                rows.append([ox * stride, oy * stride, side, side])
    return np.array(rows, np.float64)


def _make_anchors(height: int, width: int) -> np.ndarray:
    parts = []
    for stride in ANCHOR_LAYOUT:
        nx, ny = -(-width // stride), -(-height // stride)
        xx, yy = np.meshgrid(np.arange(nx) * stride, np.arange(ny) * stride)
        corners = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
        cell = _cell_anchors(stride)
        part = np.tile(cell, (len(corners), 1, 1))
        part[:, :, :2] += corners[:, None]
        parts.append(part.reshape(-1, 4))
    return np.concatenate(parts)


anchors_for = AnchorCache(_make_anchors)


def decode(loc: np.ndarray, score: np.ndarray, height: int, width: int, score_threshold: float,
           nms_threshold: float) -> list[Detection]:
    """One image's raw outputs (N, 4) and (N,) -> Detections in the input's pixel frame, best first."""
    keep = np.flatnonzero(score > score_threshold)
    if not len(keep):
        return []
    a, b, s = anchors_for(height, width)[keep], loc[keep].astype(np.float64), score[keep].astype(np.float64)
    wh = a[:, 2:] * np.exp(b[:, 2:] * SIZE_VARIANCE)
    xy = a[:, :2] + a[:, 2:] * b[:, :2] * CENTRE_VARIANCE - wh / 2
    xywh = np.concatenate([xy, wh], 1)
    out = [Detection(box=np.array([x, y, x + w, y + h]), score=float(s[i]))
           for i in nms(xywh, s, score_threshold, nms_threshold) for x, y, w, h in [xywh[i]]]
    return sorted(out, key=lambda d: -d.score)


class FaceBoxesDetector(OnnxDetector):
    """FaceBoxes alone (threshold 0.5 and NMS 0.3 as 3DDFA_V2's pipeline; the options: OnnxDetector)."""

    name = "faceboxes"
    score_threshold_default = 0.5
    nms_threshold_default = 0.3
    detect_size_default = DETECT_SIZE
    crop_policy = FACEBOXES_CROP_POLICY

    def _model(self):
        from trans3dhead.weights import named_asset

        return str(named_asset(ONNX_FILE, "faceboxes"))

    def _run(self, batch: np.ndarray) -> list[list[Detection]]:
        loc, score = self._get_session().run(None, {"input": batch_blob(batch, PIXEL_MEAN_BGR)})
        h, w = batch.shape[1:3]
        return [decode(b, s, h, w, self.score_threshold, self.nms_threshold) for b, s in zip(loc, score)]
