"""Real inputs shared by the inference, detector, video, CLI and export tests (no tests here).

Photos: the bundled public-domain astronaut photo and AFLW2000-3D images from ../shared/data.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from conftest import AFLW2000_ROOT

from trans3dhead.inference.examples import example_photo

AFLW = AFLW2000_ROOT
MODEL = "trans3dhead"  # the shipped default model
# near-frontal AFLW2000-3D faces (|yaw| < 10 deg by Pose_Para), picked by name
FRONTAL_AFLW = ("image00002", "image00013", "image00040")
PROFILE_AFLW = ("image00004", "image00112")  # yaw +68 and -65 deg


def photo_path() -> Path:
    return example_photo()


@lru_cache(maxsize=None)
def photo_bgr() -> np.ndarray:
    img = cv2.imread(str(example_photo()))
    img.setflags(write=False)
    return img


def aflw_path(name: str) -> Path:
    return AFLW / "images" / f"{name}.jpg"


@lru_cache(maxsize=1)
def aflw_meta() -> dict:
    with np.load(AFLW / "aflw2000_3d_meta.npz") as z:
        return {k: z[k] for k in z.files}


def aflw_truth(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(68, 2) ground-truth landmarks in the package frame and the roi_box of one AFLW image."""
    meta = aflw_meta()
    i = list(meta["names"]).index(name)
    return meta["pts68"][i, :2].T.astype(np.float64) - 0.5, meta["roi_box"][i].astype(np.float64)


def aflw_pose_deg(name: str) -> np.ndarray:
    """yaw, pitch, roll (degrees) from the image's Pose_Para."""
    import scipy.io

    pitch, yaw, roll = scipy.io.loadmat(str(AFLW / "images" / f"{name}.mat"))["Pose_Para"].ravel()[:3]
    return np.degrees([yaw, pitch, roll])


def nme(pred_xy: np.ndarray, gt_xy: np.ndarray) -> float:
    size = gt_xy.max(0) - gt_xy.min(0)
    return float(np.linalg.norm(pred_xy - gt_xy, axis=1).mean() / np.sqrt(size[0] * size[1]) * 100)


def no_face_bgr() -> np.ndarray:
    """A real photo region without a face: the astronaut's suit and the flag below her chin."""
    return np.ascontiguousarray(photo_bgr()[300:, :])


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The image moved by (dx, dy) pixels (bilinear, edges replicated)."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path
