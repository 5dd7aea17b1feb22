"""HeadAligner: images in, a list of FaceResult per image out, every quantity in image pixels.

The flow is one way: image -> detector box -> crop box (the detector's CropPolicy) -> 120x120
crop -> network -> landmarks and parameters in the crop frame -> image frame. With second_pass
the crop is taken again around the first pass's landmarks with 3DDFA's landmark policy (the one
behind AFLW2000-3D's roi_box) and the network runs once more.

Frames: the package image frame (pixels, x right, y down, origin at the top-left corner of the
top-left pixel); z is depth in the same pixel units, larger = closer to the camera. The dense
model and pose follow face_model/ (docs/output_schema.md states every formula).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Iterable, Iterator

import numpy as np

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import crop_to_image
from trans3dhead.face_model.pose import euler_from_rotation, rotation_from_euler, split_pose
from trans3dhead.inference.backends import build_backend
from trans3dhead.inference.crops import CROP_SIZE, crop_box_from_landmarks, extract_crop
from trans3dhead.inference.detectors import CropPolicy, FaceDetector, GivenBoxes, build_detector
from trans3dhead.inference.images import load_image

FLIP_Y = np.diag([1.0, -1.0, 1.0])  # the BFM frame has y up, images y down


@lru_cache(maxsize=1)
def _dense_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean shape (N, 3), bases (N, 3, 50), triangles (T, 3) int32) of the packaged BFM, read once.
    The triangles are wound so that (v1 - v0) x (v2 - v0) points out of the face (+z of the BFM
    frame for the mean face, whose z axis points to the camera)."""
    from trans3dhead.face_model.bfm import load_bfm_arrays

    a = load_bfm_arrays()
    bases = np.concatenate([a["w_shp"], a["w_exp"]], -1)
    u, tri = a["u"], a["tri"].astype(np.int32)
    normal_z = np.cross(u[tri[:, 1]] - u[tri[:, 0]], u[tri[:, 2]] - u[tri[:, 0]])[:, 2]
    if normal_z.sum() < 0:
        tri = tri[:, [0, 2, 1]].copy()
    return u, bases, tri


@dataclass
class Mesh:
    """vertices: (38365, 3) float32, image pixels (z depth, larger = closer);
    triangles: (76073, 3) int32 vertex indices, wound so that (v1 - v0) x (v2 - v0) points out of
    the face (toward +z, the camera, where the face is seen from the front)."""

    vertices: np.ndarray
    triangles: np.ndarray


def camera_from_params(params: np.ndarray, crop_box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """(62,) parameters in the frame of a square crop box -> (3, 4) camera matrix A with
    X_img = A[:, :3] @ S + A[:, 3] for a BFM model-space point S."""
    p = np.asarray(params, np.float64)[:12].reshape(3, 4)
    box = np.asarray(crop_box, np.float64)
    k = (box[2] - box[0]) / crop_size
    # bfm_to_crop then crop_to_image: x = k x_b + x0 - k/2, y = -k y_b + y0 + (size + 1/2) k, z = k z_b - k
    offset = np.array([box[0] - 0.5 * k, box[1] + (crop_size + 0.5) * k, -k])
    return np.concatenate([k * FLIP_Y @ p[:, :3], (k * FLIP_Y @ p[:, 3] + offset)[:, None]], 1)


def params_from_camera(camera: np.ndarray, crop_box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """Inverse of camera_from_params for the 12 pose entries: (3, 4) -> (12,)."""
    box = np.asarray(crop_box, np.float64)
    k = (box[2] - box[0]) / crop_size
    offset = np.array([box[0] - 0.5 * k, box[1] + (crop_size + 0.5) * k, -k])
    m = FLIP_Y @ camera[:, :3] / k
    t = FLIP_Y @ (camera[:, 3] - offset) / k
    return np.concatenate([m, t[:, None]], 1).reshape(12)


@dataclass
class FaceResult:
    """One face, every point in image pixels.

    box: (4,) x0, y0, x1, y1 from the detector (or given). score: detector confidence.
    crop_box: (4,) the square box the final crop was taken from.
    landmarks_3d: (68, 3) float64 x, y, z (z depth, larger = closer; same pixel scale).
    camera_matrix: (3, 4) float64 A: X_img = A[:, :3] @ S + A[:, 3] for BFM model-space points S;
        A[:, :3] = scale * diag(1, -1, 1) @ rotation.T up to the network's non-orthogonality.
    shape_params: (40,), expression_params: (10,) BFM coefficients (3DDFA scaling).
    track_id: the face's track across video frames (None for still images).
    """

    box: np.ndarray
    score: float
    crop_box: np.ndarray
    landmarks_3d: np.ndarray
    camera_matrix: np.ndarray
    shape_params: np.ndarray
    expression_params: np.ndarray
    track_id: int | None = None
    _pose: tuple = field(default=None, init=False, repr=False, compare=False)

    @property
    def landmarks_2d(self) -> np.ndarray:
        """(68, 2) x, y image pixels."""
        return self.landmarks_3d[:, :2]

    def _split(self) -> tuple:
        if self._pose is None:
            # 3DDFA's rule (split_pose) gives the angles, so published pose figures reproduce; its
            # matrix is not exactly orthonormal, so the rotation is rebuilt from the angles.
            scale, rot, _ = split_pose(FLIP_Y @ self.camera_matrix)
            yaw, pitch, roll = euler_from_rotation(rot)
            rot = rotation_from_euler(yaw, pitch, roll)
            self._pose = (float(scale), rot, *(math.degrees(float(a)) for a in (yaw, pitch, roll)))
        return self._pose

    @property
    def scale(self) -> float:
        """Image pixels per BFM model unit."""
        return self._split()[0]

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) R = Rz(roll) Ry(yaw) Rx(pitch) of yaw_deg, pitch_deg, roll_deg (AFLW2000-3D's
        Pose_Para convention), orthonormal."""
        return self._split()[1]

    @property
    def translation(self) -> np.ndarray:
        """(3,) image pixels: where the model origin lands (x, y; z on the landmarks' depth scale)."""
        return self.camera_matrix[:, 3].copy()

    @property
    def yaw_deg(self) -> float:
        return self._split()[2]

    @property
    def pitch_deg(self) -> float:
        return self._split()[3]

    @property
    def roll_deg(self) -> float:
        return self._split()[4]

    @property
    def pose_deg(self) -> np.ndarray:
        """(3,) yaw, pitch, roll in degrees."""
        return np.array(self._split()[2:])

    @property
    def params(self) -> np.ndarray:
        """(62,) the 3DDFA parameter vector in the frame of crop_box (what the network predicts)."""
        return np.concatenate([params_from_camera(self.camera_matrix, self.crop_box), self.shape_params,
                               self.expression_params])

    def mesh(self) -> Mesh:
        """The dense face: 38,365 vertices in image pixels and the 76,073 triangles."""
        u, bases, tri = _dense_model()
        coef = np.concatenate([self.shape_params, self.expression_params]).astype(np.float32)
        shape = u + bases @ coef
        verts = shape.astype(np.float64) @ self.camera_matrix[:, :3].T + self.camera_matrix[:, 3]
        if np.linalg.det(self.camera_matrix[:, :3]) < 0:  # the y flip to the image frame mirrors the winding
            tri = tri[:, [0, 2, 1]]
        return Mesh(vertices=verts.astype(np.float32), triangles=np.ascontiguousarray(tri))

    def with_updates(self, **changes) -> "FaceResult":
        """A copy with some fields replaced (pose cache cleared)."""
        return replace(self, **changes)


@dataclass
class FileResult:
    """What align_files yields per file: the decoded image and its faces, or the error."""

    path: str
    image: np.ndarray | None
    faces: list[FaceResult] | None
    error: str | None = None


@dataclass
class FrameResult:
    """What align_video yields per frame."""

    index: int
    time_s: float
    image: np.ndarray
    faces: list[FaceResult]


class HeadAligner:
    """Image(s) -> list of FaceResult per image.

    model: a named model (default weights.DEFAULT_MODEL), a weights file, or an .onnx export.
    detector: "retinaface" or a FaceDetector instance. backend: "torch" or "onnx".
    second_pass: re-crop around the first pass's landmarks and run the network again (off by
    default: with 3ddfa-mb05 it raised AFLW2000-3D NME, docs/detector_calibration.md).
    batch_size: images (or video frames) per batch, and crops per network call.
    device: torch device for the network ("cpu" default). threads: CPU threads for the network
    and the detector (None: the libraries' defaults), set only while they run.
    """

    def __init__(self, model: str | None = None, detector: str | FaceDetector = "retinaface",
                 backend: str = "torch", second_pass: bool = False, batch_size: int = 32, device: str = "cpu",
                 threads: int | None = None):
        from trans3dhead.weights import DEFAULT_MODEL

        if batch_size < 1:
            raise Trans3DHeadError(f"batch_size={batch_size}: must be at least 1")
        self.model_name = str(model or DEFAULT_MODEL)
        self.backend_name = backend
        self.detector = build_detector(detector, threads)
        self.network = build_backend(self.model_name, backend, device, threads)
        self.second_pass = second_pass
        self.batch_size = batch_size

    def __call__(self, images, channels: str = "bgr", boxes=None):
        """One image (path, numpy array, PIL image) -> list[FaceResult]; a list or tuple of images
        -> list[list[FaceResult]], run as batches. channels: order of numpy arrays, "bgr" or "rgb"."""
        if isinstance(images, (list, tuple)):
            return self.align_batch(images, channels, boxes)
        if isinstance(images, np.ndarray) and images.ndim == 4:
            raise Trans3DHeadError(f"array of shape {images.shape}: pass a batch as a list of (H, W, 3) images")
        return self.align(images, channels, boxes)

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
        from pathlib import Path

        from tqdm import tqdm

        from trans3dhead.inference.images import IMAGE_SUFFIXES

        root = Path(folder)
        if not root.is_dir():
            raise Trans3DHeadError(f"{root}: not a folder")
        pattern = root.rglob("*") if recursive else root.glob("*")
        paths = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        with tqdm(total=len(paths), desc=root.name, unit="img", disable=not progress) as bar:
            yield from self.align_files(paths, progress=bar.update)

    def align_video(self, path, smooth: bool = False, min_cutoff: float = 1.0, beta: float = 10.0,
                    ) -> Iterator[FrameResult]:
        """Every frame of a video file with its faces, in order; faces carry a track_id. smooth: a
        One-Euro filter per track (min_cutoff in Hz, beta per face size per second; video.py)."""
        from trans3dhead.inference.video import FaceSmoother, iter_frames

        smoother = FaceSmoother(min_cutoff, beta, enabled=smooth)
        for batch in _batched(iter_frames(path), self.batch_size):
            yield from self._align_frames(batch, smoother)

    def _align_frames(self, batch: list, smoother) -> Iterator[FrameResult]:
        for (index, t, frame), faces in zip(batch, self.align_arrays([b[2] for b in batch])):
            yield FrameResult(index, t, frame, smoother(faces, t))

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
        lm_crop, params = self._run(images_bgr, owner, boxes)
        if self.second_pass and len(boxes):
            lm_img = crop_to_image(lm_crop, boxes, CROP_SIZE)
            boxes = np.stack([crop_box_from_landmarks(p) for p in lm_img])
            lm_crop, params = self._run(images_bgr, owner, boxes)
        out: list[list[FaceResult]] = [[] for _ in images_bgr]
        for j, i in enumerate(owner):
            out[i].append(_face_result(dets[j], boxes[j], lm_crop[j], params[j]))
        return out

    def _run(self, images_bgr, owner: list[int], boxes: np.ndarray):
        crops = np.stack([extract_crop(images_bgr[i], b) for i, b in zip(owner, boxes)]) if owner else \
            np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        return self.network(crops, self.batch_size)


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


def _face_result(det, crop_box: np.ndarray, lm_crop: np.ndarray, params: np.ndarray) -> FaceResult:
    p = params.astype(np.float64)
    return FaceResult(box=np.asarray(det.box, np.float64), score=float(det.score), crop_box=crop_box.astype(np.float64),
                      landmarks_3d=crop_to_image(lm_crop, crop_box, CROP_SIZE),
                      camera_matrix=camera_from_params(p, crop_box), shape_params=p[12:52].copy(),
                      expression_params=p[52:62].copy())
