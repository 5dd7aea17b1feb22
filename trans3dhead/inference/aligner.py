"""HeadAligner: images in, a list of FaceResult per image out, every quantity in image pixels.

The flow is one way: image -> detector box -> crop box (the detector's CropPolicy) -> crop (the
side the weights file says its network takes) -> network -> landmarks and parameters in the crop
frame -> image frame. With second_pass the crop is taken again around the first pass's landmarks
with 3DDFA's landmark policy (the one behind AFLW2000-3D's roi_box) and the network runs once more.

The result types live in inference/results.py; frames and pose rules in face_model/.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import camera_from_params, crop_to_image
from trans3dhead.face_model.landmarks68 import FLIP_PERM_68, mirror_landmarks
from trans3dhead.inference.backends import build_backend
from trans3dhead.inference.crops import crop_box_from_landmarks, extract_crop
from trans3dhead.inference.detectors import DEFAULT_DETECTOR, CropPolicy, FaceDetector, GivenBoxes, build_detector
from trans3dhead.inference.images import IMAGE_SUFFIXES, load_image
from trans3dhead.inference.quality import DEFAULT_MIN_QUALITY, crop_sharpness, face_quality
from trans3dhead.inference.results import FaceResult, FileResult, FrameResult
from trans3dhead.inference.video import iter_frames, probe_video


class HeadAligner:
    """Image(s) -> list of FaceResult per image.

    model: a named model (default weights.DEFAULT_MODEL), a weights file, or an .onnx export.
    detector: "retinaface" (default), "faceboxes" (faster on portraits, loses faces under ~50 px; each
    runs the other where it finds no face) or a FaceDetector instance. backend: "onnx" (default: the
    shipped export run by onnxruntime, the faster path on a CPU) or "torch" (needed for device="cuda").
    score_threshold: the detector's score threshold in [0, 1] (None: the detector's default), for its
        fallback too; only with a detector name (a FaceDetector instance carries its own).
    max_faces: keep at most this many faces per image, the largest (crop box) first (None: all,
        best detector score first).
    min_quality: drop faces whose quality (FaceResult.quality, in [0, 1]: how face-like the crop is,
        inference/quality.py) is below it; default None keeps every face (each still carries its
        quality); RECOMMENDED_MIN_QUALITY (0.5, the face score's decision point; measured on the
        validation split, the clip and non-face images, docs/results.md) drops crops off the face,
        most non-face crops and heavy blur at the cost of under 1 % of real faces (not animals).
        Faces of models without a landmark branch or face score (3ddfa-mb05) have no quality and are
        always kept.
    second_pass: re-crop around the first pass's landmarks and run the network again (off by
    default: with 3ddfa-mb05 it raised AFLW2000-3D NME, docs/detector_calibration.md).
    flip: also run the network on each mirrored crop and average the landmarks (and visibility)
        with the mirrored answer (test-time flip: twice the network's work; on the validation split
        0.04 closer to human labels, docs/results.md); pose, parameters and mesh stay the crop's own.
    batch_size: images (or video frames) per batch, and crops per network call.
    device: torch device for the network ("cpu" default). threads: CPU threads for the network
    and the detector (None: the libraries' defaults), set only while they run.
    """

    def __init__(self, model: str | None = None, detector: str | FaceDetector = DEFAULT_DETECTOR,
                 backend: str = "onnx", score_threshold: float | None = None, max_faces: int | None = None,
                 min_quality: float | None = DEFAULT_MIN_QUALITY, second_pass: bool = False, batch_size: int = 32,
                 device: str = "cpu", threads: int | None = None, flip: bool = False):
        from trans3dhead.weights import DEFAULT_MODEL

        if batch_size < 1:
            raise Trans3DHeadError(f"batch_size={batch_size}: must be at least 1")
        if max_faces is not None and max_faces < 1:
            raise Trans3DHeadError(f"max_faces={max_faces}: must be at least 1 (or None for all faces)")
        if min_quality is not None and not 0.0 <= min_quality <= 1.0:
            raise Trans3DHeadError(f"min_quality={min_quality}: must lie in [0, 1] (or None to keep every face)")
        if score_threshold is not None:
            if not 0.0 <= score_threshold <= 1.0:
                raise Trans3DHeadError(f"score_threshold={score_threshold}: must lie in [0, 1]")
            if isinstance(detector, FaceDetector):
                raise Trans3DHeadError("score_threshold: set it on the FaceDetector instance you pass")
        self.model_name = str(model or DEFAULT_MODEL)
        self.backend_name = backend
        self.detector = build_detector(detector, threads, score_threshold)
        self.network = build_backend(self.model_name, backend, device, threads)
        self.crop_size = self.network.crop_size
        self.landmark_source = self.network.landmark_source
        self.disagreement_factor = self.network.disagreement_factor
        self.max_faces = max_faces
        self.min_quality = min_quality
        self.second_pass = second_pass
        self.flip = bool(flip)
        self.batch_size = batch_size

    def __call__(self, image, channels: str = "bgr", boxes=None) -> list[FaceResult]:
        """One image (path, numpy array, PIL image) -> its faces (list[FaceResult]).
        channels: order of a numpy array's channels, "bgr" or "rgb". For many images use align_batch."""
        if isinstance(image, (list, tuple)):
            raise Trans3DHeadError(f"a {type(image).__name__} of {len(image)} images: HeadAligner() takes one image; "
                                   "use aligner.align_batch(images) for several")
        if isinstance(image, np.ndarray) and image.ndim == 4:
            raise Trans3DHeadError(f"array of shape {image.shape}: pass one (H, W, 3) image, or a list of them "
                                   "to align_batch")
        return self.align(image, channels, boxes)

    def align(self, image, channels: str = "bgr", boxes=None) -> list[FaceResult]:
        """One image -> its faces, best detector score first (an empty list if none).
        boxes: None (run the detector), an (N, 4|5) array of crop boxes, or a GivenBoxes."""
        return self.align_batch([image], channels, None if boxes is None else [boxes])[0]

    def align_batch(self, images: list, channels: str = "bgr", boxes: list | None = None) -> list[list[FaceResult]]:
        """A list of images -> a list of face lists. boxes: None, or one entry per image (None to detect)."""
        if boxes is not None and len(boxes) != len(images):
            raise Trans3DHeadError(f"boxes: {len(boxes)} entries for {len(images)} images; give one per image")
        detectors = [None if b is None else _as_given(b) for b in (boxes or [None] * len(images))]
        out: list[list[FaceResult]] = []
        for i in range(0, len(images), self.batch_size):
            arrays = [load_image(img, channels)[0] for img in images[i:i + self.batch_size]]
            out.extend(self.align_arrays(arrays, detectors[i:i + self.batch_size]))
        return out

    def align_files(self, paths: Iterable, progress=None) -> Iterator[FileResult]:
        """Files -> one FileResult each, in order; a bad file gives its error and the rest go on.
        progress: called with the number of files done after each batch."""
        for batch in _batched(paths, self.batch_size):
            yield from self._align_file_batch(batch, progress)

    def align_directory(self, folder, recursive: bool = True, progress: bool = True) -> Iterator[FileResult]:
        """Every image file in a folder (sorted; recursive by default) -> one FileResult each, with a
        progress bar on stderr."""
        root = Path(folder)
        if not root.is_dir():
            raise Trans3DHeadError(f"{root}: not a folder")
        pattern = root.rglob("*") if recursive else root.glob("*")
        paths = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        with tqdm(total=len(paths), desc=root.name, unit="img", disable=not progress) as bar:
            yield from self.align_files(paths, progress=bar.update)

    def align_video(self, source, smooth: bool = False, min_cutoff: float = 1.0, beta: float = 10.0,
                    detect_every: int = 10, shot_cuts: bool = True) -> Iterator[FrameResult]:
        """Every frame of a video file, a camera (an index: 0 or "0") or a stream OpenCV can open
        (rtsp://, http://, ...), with its faces, in order; faces carry a track_id. Tracking: the
        detector runs every detect_every frames (1: every frame), at shot cuts and when a face looks
        lost; in between each face's crop comes from its last landmarks (inference/tracking.py).
        smooth: a One-Euro filter per track (min_cutoff in Hz, beta per face size per second)."""
        info = probe_video(source)
        tracker = self.tracker(detect_every, smooth, min_cutoff=min_cutoff, beta=beta, fps=info.fps,
                               shot_cuts=shot_cuts)
        for index, t, frame in iter_frames(source):
            yield FrameResult(index, t, frame, tracker(frame, t))

    def _align_file_batch(self, paths: list, progress) -> list[FileResult]:
        results = []
        for p in paths:
            try:
                results.append(FileResult(str(p), load_image(p)[0], None))
            except Trans3DHeadError as exc:
                results.append(FileResult(str(p), None, None, str(exc)))
        ok = [r for r in results if r.error is None]
        for r, faces in zip(ok, self.align_arrays([r.image for r in ok])):
            r.faces = faces
        if progress is not None:
            progress(len(paths))
        return results

    def align_arrays(self, images_bgr: list[np.ndarray], detectors: list | None = None) -> list[list[FaceResult]]:
        """The core: (H, W, 3) uint8 BGR images -> faces per image. detectors: per image None (use
        this aligner's detector) or a FaceDetector (e.g. GivenBoxes)."""
        detectors = detectors or [None] * len(images_bgr)
        found: list = [None] * len(images_bgr)
        todo = [i for i, d in enumerate(detectors) if d is None]
        for i, dets in zip(todo, self.detector.detect_batch([images_bgr[i] for i in todo]) if todo else []):
            found[i] = [(d, self.detector.crop_box(d)) for d in dets]
        for i, d in enumerate(detectors):
            if d is not None:
                found[i] = [(x, d.crop_box(x)) for x in d.detect(images_bgr[i])]
        owner = [i for i, dets in enumerate(found) for _ in dets]
        dets = [d for per_image in found for d, _ in per_image]
        boxes = np.array([b for per_image in found for _, b in per_image]).reshape(-1, 4)
        lm_crop, params, extra, sharp = self._run(images_bgr, owner, boxes)
        if self.second_pass and len(boxes):
            lm_img = crop_to_image(lm_crop, boxes, self.crop_size)
            boxes = np.stack([crop_box_from_landmarks(p) for p in lm_img])
            lm_crop, params, extra, sharp = self._run(images_bgr, owner, boxes)
        out: list[list[FaceResult]] = [[] for _ in images_bgr]
        for j, i in enumerate(owner):
            face = self._face(dets[j], boxes[j], lm_crop[j], params[j], sharp[j], _row(extra, j))
            if self.passes_quality(face):
                out[i].append(face)
        if self.max_faces is not None:
            out = [sorted(faces, key=lambda f: -(f.crop_box[2] - f.crop_box[0]))[:self.max_faces] for faces in out]
        return out

    def align_crops(self, image_bgr: np.ndarray, crop_boxes: np.ndarray, detections: list) -> list[FaceResult]:
        """The network only: one (H, W, 3) uint8 BGR image, (N, 4) crop boxes and the Detection each
        face reports -> N faces (the trackers' step between detector runs)."""
        if not len(crop_boxes):
            return []
        boxes = np.asarray(crop_boxes, np.float64).reshape(-1, 4)
        lm_crop, params, extra, sharp = self._run([image_bgr], [0] * len(boxes), boxes)
        return [self._face(d, b, lm_crop[j], params[j], sharp[j], _row(extra, j))
                for j, (d, b) in enumerate(zip(detections, boxes))]

    def passes_quality(self, face: FaceResult) -> bool:
        """Whether a face is kept by min_quality (always, where the model gives no quality)."""
        return self.min_quality is None or face.quality is None or face.quality >= self.min_quality

    def _face(self, det, crop_box, lm_crop, params, sharpness: float, extra: dict) -> FaceResult:
        face = _face_result(det, crop_box, lm_crop, params, self.crop_size, extra.get("visibility"))
        quality = face_quality(face, sharpness, self.disagreement_factor, extra.get("face_score"))
        return face if quality is None else face.with_updates(quality=quality)

    def tracker(self, detect_every: int = 10, smooth: bool = False, **options):
        """A FaceTracker for frames one at a time: ``tracker = aligner.tracker(); faces = tracker(frame)``
        (inference/tracking.py; detect_every, smooth, min_cutoff, beta, fps, shot_cuts, max_missed)."""
        from trans3dhead.inference.tracking import FaceTracker

        return FaceTracker(self, detect_every=detect_every, smooth=smooth, **options)

    def _run(self, images_bgr, owner: list[int], boxes: np.ndarray):
        size = self.crop_size
        crops = np.stack([extract_crop(images_bgr[i], b, size) for i, b in zip(owner, boxes)]) if owner else \
            np.zeros((0, size, size, 3), np.uint8)
        lm, params, extra = self.network(crops, self.batch_size)
        if self.flip and len(crops):
            lm, extra = _flip_averaged(lm, extra, self.network(np.ascontiguousarray(crops[:, :, ::-1]), self.batch_size), size)
        return lm, params, extra, [crop_sharpness(c) for c in crops]


def _flip_averaged(lm: np.ndarray, extra: dict, mirrored: tuple, size: int) -> tuple[np.ndarray, dict]:
    """The landmarks (N, 68, 3) and visibility (N, 68, 3) of crops averaged with those the network
    gave for the mirrored crops, mapped back (x -> size - x, left and right partners swapped)."""
    lm_m, _, extra_m = mirrored
    extra = dict(extra)
    if "visibility" in extra:
        extra["visibility"] = (extra["visibility"] + extra_m["visibility"][:, FLIP_PERM_68]) / 2
    return (lm + mirror_landmarks(lm_m, size)) / 2, extra


def _row(extra: dict, j: int) -> dict:
    """The optional outputs (visibility, face_score) of the j-th face."""
    return {name: values[j] for name, values in extra.items()}


def _batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of at most size items (the last may be shorter), read lazily."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _as_given(boxes) -> FaceDetector:
    return boxes if isinstance(boxes, FaceDetector) else GivenBoxes(boxes, CropPolicy())


def _face_result(det, crop_box: np.ndarray, lm_crop: np.ndarray, params: np.ndarray, crop_size: int,
                 visibility: np.ndarray | None = None) -> FaceResult:
    p = params.astype(np.float64)
    return FaceResult(box=np.asarray(det.box, np.float64), score=float(det.score), crop_box=crop_box.astype(np.float64),
                      landmarks_3d=crop_to_image(lm_crop, crop_box, crop_size),
                      camera_matrix=camera_from_params(p, crop_box, crop_size), shape_params=p[12:52].copy(),
                      expression_params=p[52:62].copy(),
                      visibility_probs=None if visibility is None else np.asarray(visibility, np.float64))
