"""YuNet (W. Wu, H. Peng, S. Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine
Intelligence Research 2023), the ``yunet_n`` model of ShiqiYu/libfacedetection.train (Apache-2.0):
that repository's ``onnx/yunet_n_dynamic.onnx`` (sha256 in YUNET_SHA256; any input size that is a
multiple of 32). Its weights are NOT in the package (all shipped weights stay under 50 MB, and the
package is at 49.9): the user gives the file, ``YuNetDetector("yunet_n_dynamic.onnx")`` or the
detector spec ``"yunet:PATH"`` (``HeadAligner(detector="yunet:PATH")``, ``--detector yunet:PATH``),
and it is checked against YUNET_SHA256, since the constants below were chosen for that file. The
repository keeps a copy for its tests (tests/data/, with the licence).

An anchor-free detector with detection maps at strides 8, 16 and 32 and 76k parameters: it finds
faces from ~10-12 px of its input (RetinaFace-MobileNet0.25 from ~20-25 px, FaceBoxes from ~50-60
px) at about 60 % of RetinaFace's cost per pixel. So it works on the image shrunk by DETECT_SCALE
(0.75; at most DETECT_SIZE px on the longer side): a fraction of RetinaFace's time at full size,
as many faces found (scripts/choose_detector_settings.py, the rule and figures in docs/results.md,
"YuNet"). Faces larger than ~300 px of its input are beyond its training scales: larger images are
searched a second time at LARGE_PASS_SIDE px.

Its input is the BGR image as float32 0-255 (no mean subtracted), zero-padded on the right and
bottom to a multiple of 32. Per stride s, cell (row r, column c) predicts (its repository's
yunet_head.py): box centre ((c + dx) s, (r + dy) s), size (exp(dw) s, exp(dh) s), keypoints
((c + kx) s, (r + ky) s); the score is sqrt(class x objectness) (both already through a sigmoid in
the ONNX graph), as OpenCV's FaceDetectorYN reports it. We keep the cells above the threshold and
run OpenCV's NMS (onnx_detector.nms).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.inference.detectors.base import CropPolicy, Detection
from trans3dhead.inference.detectors.onnx_detector import AnchorCache, OnnxDetector, nms, rescale_detection

STRIDES = (8, 16, 32)
YUNET_SHA256 = "104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12"
# Default threshold, longest detection side (max_side) and detection scale, chosen by the rule in
# scripts/choose_detector_settings.py: non-face boxes no more than RetinaFace's at 0.9; faces in
# 1920x1080 composites at least as many as RetinaFace's at 1280; the smallest scale finding as many
# faces in 640x480 composites as RetinaFace at full size, crops as good on the validation split.
SCORE_THRESHOLD = 0.7
DETECT_SIZE = 800
# Large faces: where the image is at least LARGE_PASS_FROM px on its longer side, it is also searched
# at LARGE_PASS_SIDE (a sixth of the pixels of an 800 pass), and faces found there are merged by NMS
# with those of the main pass (every 10th frame of the shared 4K clip, where the head fills much of
# the frame: 84 of 102 found by the main pass, 102 with this one, never two boxes;
# `python scripts/measure_detector.py retry --detector yunet:PATH`).
LARGE_PASS_SIDE = 320
LARGE_PASS_FROM = 640
DETECT_SCALE = 0.75
MIN_DETECT_LONG_SIDE = 160  # never below this side (unless the image is smaller)

# Fitted on the even-numbered half of AFLW2000-3D by scripts/calibrate_detector.py --detector
# yunet against 3DDFA's roi_box crops; figures on the odd half in docs/detector_calibration.md.
YUNET_CROP_POLICY = CropPolicy(scale=1.206, shift_x=0.002, shift_y=0.112)


def _make_cells(height: int, width: int) -> np.ndarray:
    """(N, 3) column, row and stride of every output cell of a (height, width) input (multiples of
    32), in the order of the network's outputs (stride by stride, row-major)."""
    parts = []
    for s in STRIDES:
        yy, xx = np.mgrid[0:height // s, 0:width // s]
        parts.append(np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, s)], 1).astype(np.float64))
    return np.concatenate(parts)


cells_for = AnchorCache(_make_cells)


def padded_blob(image_bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, H32, W32) float32 0-255, zero-padded to multiples of 32."""
    h, w = image_bgr.shape[:2]
    x = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    for c, plane in enumerate(cv2.split(image_bgr)):
        x[0, c, :h, :w] = plane
    return x


def decode(outputs: dict[str, np.ndarray], height: int, width: int, score_threshold: float,
           nms_threshold: float) -> list[Detection]:
    """One image's raw outputs by name (cls_8 ... kps_32, batch dimension removed) for a padded
    input of (height, width) -> Detections in the input's pixel frame, best score first."""
    score = np.sqrt(np.clip(np.concatenate([outputs[f"cls_{s}"][:, 0] for s in STRIDES]), 0, 1)
                    * np.clip(np.concatenate([outputs[f"obj_{s}"][:, 0] for s in STRIDES]), 0, 1))
    keep = np.flatnonzero(score > score_threshold)
    if not len(keep):
        return []
    cell = cells_for(height, width)[keep]
    bbox = np.concatenate([outputs[f"bbox_{s}"] for s in STRIDES])[keep].astype(np.float64)
    kps = np.concatenate([outputs[f"kps_{s}"] for s in STRIDES])[keep].astype(np.float64).reshape(-1, 5, 2)
    s, stride = score[keep].astype(np.float64), cell[:, 2:3]
    centre = (cell[:, :2] + bbox[:, :2]) * stride
    wh = np.exp(bbox[:, 2:]) * stride
    points = (cell[:, None, :2] + kps) * stride[:, None]
    xywh = np.concatenate([centre - wh / 2, wh], 1)
    out = [Detection(box=np.array([x, y, x + w, y + h]), score=float(s[i]), keypoints=points[i])
           for i in nms(xywh, s, score_threshold, nms_threshold) for x, y, w, h in [xywh[i]]]
    return sorted(out, key=lambda d: -d.score)


class YuNetDetector(OnnxDetector):
    """YuNet alone (the options: OnnxDetector; NMS 0.3 as OpenCV's FaceDetectorYN). An image is
    searched at min(max_side, DETECT_SCALE x its longer side) px, and at LARGE_PASS_SIDE px too when
    its longer side is at least LARGE_PASS_FROM; detect_scale can be changed on an instance."""

    name = "yunet"
    score_threshold_default = SCORE_THRESHOLD
    nms_threshold_default = 0.3
    detect_size_default = DETECT_SIZE
    crop_policy = YUNET_CROP_POLICY
    detect_scale: float = DETECT_SCALE

    def __init__(self, model_path, **options):
        super().__init__(**options)
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise Trans3DHeadError(f"{self.model_path}: no such file (YuNet's weights: onnx/yunet_n_dynamic.onnx "
                                   "of ShiqiYu/libfacedetection.train)")
        self._bytes = self.model_path.read_bytes()
        if hashlib.sha256(self._bytes).hexdigest() != YUNET_SHA256:
            raise Trans3DHeadError(f"{self.model_path}: not onnx/yunet_n_dynamic.onnx of ShiqiYu/libfacedetection.train "
                                   "(sha256 differs), the file this detector's constants were fitted for")

    def _model(self):
        return self._bytes

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        long_side = max(image_bgr.shape[:2])
        side = min(self.max_side, max(MIN_DETECT_LONG_SIDE, round(long_side * self.detect_scale)))
        img, factor = self._prepare(image_bgr, side)
        dets = self._run(img[None])[0]
        if long_side >= LARGE_PASS_FROM and max(img.shape[:2]) > LARGE_PASS_SIDE:
            small, f = self._prepare(img, LARGE_PASS_SIDE)  # from the shrunk image: a few ms, not tens
            dets = dets + [rescale_detection(d, 1.0 / f) for d in self._run(small[None])[0]]
            xywh = [[d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]] for d in dets]
            dets = [dets[i] for i in nms(xywh, [d.score for d in dets], self.score_threshold, self.nms_threshold)]
        return dets if factor == 1.0 else [rescale_detection(d, 1.0 / factor) for d in dets]

    def _run(self, batch: np.ndarray) -> list[list[Detection]]:
        session = self._get_session()
        names = [o.name for o in session.get_outputs()]
        out = []
        for image in batch:
            x = padded_blob(image)
            raw = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))
            out.append(decode({k: v[0] for k, v in raw.items()}, x.shape[2], x.shape[3],
                              self.score_threshold, self.nms_threshold))
        return out
