"""What the ONNX detectors (RetinaFace, FaceBoxes, YuNet) share: an onnxruntime session with our
thread count, the image shrunk to max_side (and padded where tiny) for detection only, a retry at
RETRY_SIZE for a face that fills a big photo (YuNet searches a second size instead), anchors (or
output cells) kept per input size, the input blob and the NMS. Boxes come back in the full image's
pixel frame."""
from __future__ import annotations

from abc import abstractmethod

import cv2
import numpy as np

from trans3dhead.inference.detectors.base import CropPolicy, Detection, FaceDetector

MIN_DETECT_SIDE = 32  # smaller images are zero-padded on the right/bottom
# Where nothing is found in an image larger than max_side allows, it is tried once at this side: a
# face filling a big photo is beyond the largest anchors at 1280-1920 px.
RETRY_SIZE = 640
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


class OnnxDetector(FaceDetector):
    """An anchor-based detector run by onnxruntime. Subclasses set name, the *_default class
    attributes and crop_policy, and implement _model() (the ONNX file or bytes) and _run(batch).

    score_threshold: keep faces scoring above it. nms_threshold: IoU above which the weaker of two
    boxes is dropped. max_side: longer side (pixels) an image is shrunk to for detection; where
    nothing is found in an image larger than RETRY_SIZE, it is tried once more at RETRY_SIZE.
    threads: onnxruntime intra-op threads (None: onnxruntime's default).
    """

    score_threshold_default: float = 0.5
    nms_threshold_default: float = 0.4
    detect_size_default: int = 1280

    def __init__(self, score_threshold: float | None = None, nms_threshold: float | None = None,
                 max_side: int | None = None, threads: int | None = None, crop_policy: CropPolicy | None = None):
        self.score_threshold = self.score_threshold_default if score_threshold is None else score_threshold
        self.nms_threshold = self.nms_threshold_default if nms_threshold is None else nms_threshold
        self.max_side = self.detect_size_default if max_side is None else max_side
        self.threads = threads
        if crop_policy is not None:
            self.crop_policy = crop_policy
        self._session = None

    @abstractmethod
    def _model(self):
        """The ONNX model: a path or its bytes."""

    @abstractmethod
    def _run(self, batch: np.ndarray) -> list[list[Detection]]:
        """(B, H, W, 3) uint8 BGR of one size -> Detections in that batch's pixel frame."""

    def _get_session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(self._model(), opts, providers=["CPUExecutionProvider"])
        return self._session

    def _prepare(self, image_bgr: np.ndarray, max_side: int | None = None) -> tuple[np.ndarray, float]:
        """Shrink to max_side (default self.max_side) and pad tiny images: (H', W', 3) uint8 and the factor."""
        h, w = image_bgr.shape[:2]
        factor = min(1.0, (max_side or self.max_side) / max(h, w))
        img = image_bgr
        if factor < 1.0:
            img = shrink(image_bgr, (max(1, round(w * factor)), max(1, round(h * factor))))
        ph, pw = max(0, MIN_DETECT_SIDE - img.shape[0]), max(0, MIN_DETECT_SIDE - img.shape[1])
        if ph or pw:
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        return img, factor

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        dets = self._detect_at(image_bgr, self.max_side)
        if not dets and self.max_side > RETRY_SIZE and max(image_bgr.shape[:2]) > RETRY_SIZE:
            dets = self._detect_at(image_bgr, RETRY_SIZE)
        return dets

    def _detect_at(self, image_bgr: np.ndarray, max_side: int) -> list[Detection]:
        img, factor = self._prepare(image_bgr, max_side)
        dets = self._run(img[None])[0]
        return dets if factor == 1.0 else [rescale_detection(d, 1.0 / factor) for d in dets]


def nms(xywh, scores, score_threshold: float, nms_threshold: float) -> np.ndarray:
    """Indices of the boxes (x, y, width, height) that OpenCV's NMS keeps, best score first (ties in
    their given order)."""
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    chosen = cv2.dnn.NMSBoxes(np.asarray(xywh, np.float64)[order].tolist(), scores[order].tolist(),
                              score_threshold, nms_threshold)
    return order[np.asarray(chosen, np.int64).ravel()]


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale to size (w, h) for detection: halved by INTER_AREA while the image is at least twice
    the size (OpenCV's fast path: means of 2 x 2 blocks; an odd last row or column is dropped, which
    moves the far edge by at most a pixel of the full image per halving), then INTER_LINEAR for the
    rest (a factor below 2, where bilinear sampling barely aliases). A 3456x2234 frame to 800 px:
    ~4 ms, against ~38 ms for one INTER_AREA by the whole factor 4 (not a fast path when the
    height is not a multiple of 4) then bilinear (scripts/measure_detector.py shrink)."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        h, w = image.shape[:2]
        image = cv2.resize(image[:h - h % 2, :w - w % 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if image.shape[1] != size[0] or image.shape[0] != size[1]:
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image


def input_blob(image_bgr: np.ndarray, mean_bgr) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 with the channel means subtracted: the same numbers
    as cv2.dnn.blobFromImages (and numpy's cast, subtract and transpose), from one cv2.subtract per
    channel plane: 5 against 28 ms on a 1920x1241 frame at one thread (scripts/measure_detector.py faceboxes)."""
    x = np.empty((1, 3, *image_bgr.shape[:2]), np.float32)
    for c, plane in enumerate(cv2.split(image_bgr)):
        cv2.subtract(plane, float(mean_bgr[c]), dst=x[0, c], dtype=cv2.CV_32F)
    return x


def batch_blob(batch: np.ndarray, mean_bgr) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 input_blob's (one image: no copy)."""
    if len(batch) == 1:
        return input_blob(batch[0], mean_bgr)
    return np.concatenate([input_blob(img, mean_bgr) for img in batch])


def rescale_detection(det: Detection, s: float) -> Detection:
    """The detection with its box and keypoints scaled by s (a detection on a shrunk image back to the image)."""
    kp = None if det.keypoints is None else det.keypoints * s
    return Detection(box=det.box * s, score=det.score, keypoints=kp, source=det.source)
