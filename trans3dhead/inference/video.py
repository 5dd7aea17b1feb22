"""Videos: reading frames, writing an annotated video, following faces from frame to frame, and
smoothing them over time with a One-Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: a
simple speed-based low-pass filter for noisy input in interactive systems", CHI 2012).

The filter's cutoff rises with speed: still faces are smoothed hard (jitter falls), moving faces
lightly (little lag). Here one cutoff serves a whole face, driven by the mean speed of its
landmarks in face sizes per second, and is applied to every quantity of the face (landmarks,
camera matrix, shape and expression), so the mesh, pose and landmarks stay consistent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.fileio import AtomicOutput
from trans3dhead.inference.results import FaceResult

DEFAULT_FPS = 30.0  # when the container does not say


@dataclass
class VideoInfo:
    path: str
    fps: float
    frame_count: int  # as the container reports it (0 if unknown)
    width: int
    height: int


def open_video(path) -> tuple[cv2.VideoCapture, VideoInfo]:
    p = Path(path)
    if not p.is_file():
        raise Trans3DHeadError(f"{p}: no such video file")
    if p.stat().st_size == 0:
        raise Trans3DHeadError(f"{p}: empty file (0 bytes); not a video")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise Trans3DHeadError(f"{p}: not a readable video (unknown container or corrupt data)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(str(p), fps if fps and math.isfinite(fps) and fps > 0 else DEFAULT_FPS,
                     max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return cap, info


def iter_frames(path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in seconds, (H, W, 3) uint8 BGR) for every frame; an error if there is none."""
    cap, info = open_video(path)
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            yield index, index / info.fps, frame
            index += 1
        if index == 0:
            raise Trans3DHeadError(f"{path}: no frame could be decoded (empty or corrupt video)")
    finally:
        cap.release()


class VideoSink(AtomicOutput):
    """An annotated video written to a temporary name and renamed by close() (MJPG for .avi,
    mp4v otherwise: both encode and decode with opencv-python's bundled FFmpeg)."""

    def __init__(self, path, fps: float, size: tuple[int, int]):
        super().__init__(path)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
        if not self._writer.isOpened():
            self.abort()
            raise Trans3DHeadError(f"{self.path}: cannot open a video writer for this file type; use .mp4 or .avi")

    def write(self, frame_bgr: np.ndarray) -> None:
        self._writer.write(frame_bgr)

    def _release(self) -> None:
        self._writer.release()


class OneEuroFilter:
    """One-Euro filter of a vector x with one cutoff for all its elements, driven by the speed of a
    'driver' vector (in the driver's units per second).

    min_cutoff (Hz): the cutoff when still; lower = smoother, more lag.
    beta: how fast the cutoff rises with speed (Hz per driver unit per second).
    d_cutoff (Hz): the cutoff of the speed estimate itself.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x = self._driver = self._speed = self._t = None

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, driver: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or t <= self._t:
            self._x, self._driver, self._speed, self._t = x.copy(), driver.copy(), 0.0, t
            return x.copy()
        dt = t - self._t
        raw_speed = float(np.abs(driver - self._driver).mean()) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._speed = a_d * raw_speed + (1 - a_d) * self._speed
        a = self._alpha(self.min_cutoff + self.beta * self._speed, dt)
        self._x = a * x + (1 - a) * self._x
        self._driver, self._t = driver.copy(), t
        return self._x.copy()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    area = lambda z: float(np.prod(z[2:] - z[:2]))  # noqa: E731
    return inter / max(area(a) + area(b) - inter, 1e-9)


class FaceSmoother:
    """Gives every face a track id (greedy IoU matching of crop boxes with the previous frames) and
    smooths each track with its own OneEuroFilter. A track unseen for max_missed frames ends."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0,
                 min_iou: float = 0.3, max_missed: int = 5, enabled: bool = True):
        self.params = (min_cutoff, beta, d_cutoff)
        self.min_iou, self.max_missed, self.enabled = min_iou, max_missed, enabled
        self._tracks: dict[int, dict] = {}
        self._next_id = 0

    def __call__(self, faces: list[FaceResult], t: float) -> list[FaceResult]:
        ids = self._assign(faces)
        out = []
        for face, tid in zip(faces, ids):
            track = self._tracks[tid]
            if not self.enabled:
                out.append(face.with_updates(track_id=tid))
                continue
            state = np.concatenate([face.landmarks_3d.ravel(), face.camera_matrix.ravel(), face.shape_params,
                                    face.expression_params])
            size = float(face.crop_box[2] - face.crop_box[0])
            smooth = track["filter"](state, t, face.landmarks_2d.ravel() / size)
            n = face.landmarks_3d.size
            out.append(face.with_updates(
                track_id=tid, landmarks_3d=smooth[:n].reshape(-1, 3), camera_matrix=smooth[n:n + 12].reshape(3, 4),
                shape_params=smooth[n + 12:n + 52], expression_params=smooth[n + 52:]))
        return out

    def _assign(self, faces: list[FaceResult]) -> list[int]:
        pairs = sorted(((_iou(f.crop_box, tr["box"]), i, tid) for i, f in enumerate(faces)
                        for tid, tr in self._tracks.items()), reverse=True)
        ids: list[int | None] = [None] * len(faces)
        used = set()
        for v, i, tid in pairs:
            if v < self.min_iou:
                break
            if ids[i] is None and tid not in used:
                ids[i] = tid
                used.add(tid)
        for i in range(len(faces)):
            if ids[i] is None:
                ids[i] = self._next_id
                self._tracks[self._next_id] = {"filter": OneEuroFilter(*self.params), "missed": 0}
                self._next_id += 1
        for tid in list(self._tracks):
            if tid in ids:
                self._tracks[tid]["missed"] = 0
            else:
                self._tracks[tid]["missed"] += 1
                if self._tracks[tid]["missed"] > self.max_missed:
                    del self._tracks[tid]
        for i, f in enumerate(faces):
            self._tracks[ids[i]]["box"] = f.crop_box
        return ids
