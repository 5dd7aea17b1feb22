"""Every pixel frame of the package and the exact conversions between them.

The package frame ("pkg") for every 2D point, in crops and in images alike: x to the right,
y down, in pixels, origin at the top-left CORNER of the top-left pixel, so the centre of pixel
(row i, column j) is at (j + 0.5, i + 0.5). z is depth in the same pixel units, larger = closer
to the camera, with an arbitrary offset.

Conversions at the boundaries (measured and tested in tests/test_frames.py):

* AFLW2000-3D ``pt3d_68`` is a 1-based MATLAB fit (first pixel centre at 1): pkg = stored - 0.5.
* The BFM decode of 3DDFA/3DDFA_V2 into a 120x120 crop: x0 = x_bfm - 1, y0 = 120 - y_bfm gives
  0-based pixel-centre coordinates (first pixel centre at 0): pkg = 0-based + 0.5.
* A crop box (x0, y0, x1, y1) in pkg image coordinates maps crop point u to
  x = x0 + u * (x1 - x0) / size: corner to corner, as cv2.resize of the box does.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

CROP_SIZE = 120  # the networks' input side, pixels
MATLAB_TO_PKG = -0.5  # add to a 1-based pixel-centre coordinate
ZERO_BASED_TO_PKG = 0.5  # add to a 0-based pixel-centre coordinate
FLIP_Y = np.diag([1.0, -1.0, 1.0])  # the BFM frame has y up, images y down
# x -> S - x in the package crop frame, as a 3x3 homogeneous map (the flip augmentation's)
MIRROR_2D = np.array([[-1.0, 0.0, CROP_SIZE], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def bfm_to_crop(verts_bfm, crop_size: int = CROP_SIZE):
    """(..., N, 3) BFM-frame points (3DDFA layout) -> package crop frame (x, y pixels; z depth)."""
    x = verts_bfm[..., 0] - 1.0 + ZERO_BASED_TO_PKG
    y = crop_size - verts_bfm[..., 1] + ZERO_BASED_TO_PKG
    z = verts_bfm[..., 2] - 1.0
    if isinstance(verts_bfm, torch.Tensor):
        return torch.stack([x, y, z], -1)
    return np.stack([x, y, z], -1)


def bfm_to_crop_matrix(crop_size: int = CROP_SIZE) -> np.ndarray:
    """4x4 homogeneous matrix of bfm_to_crop: x = x_b - 1/2, y = size + 1/2 - y_b, z = z_b - 1."""
    return np.array([[1.0, 0.0, 0.0, ZERO_BASED_TO_PKG - 1.0],
                     [0.0, -1.0, 0.0, crop_size + ZERO_BASED_TO_PKG],
                     [0.0, 0.0, 1.0, -1.0],
                     [0.0, 0.0, 0.0, 1.0]])


def crop_to_image_matrix(box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """4x4 homogeneous matrix of crop_to_image for one box (z scaled by the mean of the x, y scales)."""
    x0, y0, x1, y1 = [float(v) for v in box]
    sx, sy = (x1 - x0) / crop_size, (y1 - y0) / crop_size
    return np.array([[sx, 0.0, 0.0, x0], [0.0, sy, 0.0, y0], [0.0, 0.0, (sx + sy) / 2, 0.0], [0.0, 0.0, 0.0, 1.0]])


def camera_from_params(params, crop_box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """(62,) parameters predicted in the frame of a crop box -> (3, 4) camera matrix A with
    X_img = A[:, :3] @ S + A[:, 3] for a BFM model-space point S: the parameters' 3x4 pose
    followed by bfm_to_crop and crop_to_image."""
    pose = np.vstack([np.asarray(params, np.float64)[:12].reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
    return (crop_to_image_matrix(crop_box, crop_size) @ bfm_to_crop_matrix(crop_size) @ pose)[:3]


def params_from_camera(camera, crop_box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """Inverse of camera_from_params for the 12 pose entries: (3, 4) -> (12,)."""
    a = np.vstack([np.asarray(camera, np.float64), [0.0, 0.0, 0.0, 1.0]])
    to_image = crop_to_image_matrix(crop_box, crop_size) @ bfm_to_crop_matrix(crop_size)
    return np.linalg.solve(to_image, a)[:3].reshape(12)


def crop_to_image(pts_crop, box, crop_size: int = CROP_SIZE):
    """(..., N, 2|3) crop-frame points -> image frame for crop box(es) (..., 4) = x0, y0, x1, y1.

    z is scaled by the mean of the x and y scales.
    """
    pts = np.asarray(pts_crop, dtype=np.float64).copy()
    box = np.asarray(box, dtype=np.float64)
    sx = ((box[..., 2] - box[..., 0]) / crop_size)[..., None]
    sy = ((box[..., 3] - box[..., 1]) / crop_size)[..., None]
    pts[..., 0] = pts[..., 0] * sx + box[..., 0:1]
    pts[..., 1] = pts[..., 1] * sy + box[..., 1:2]
    if pts.shape[-1] > 2:
        pts[..., 2] = pts[..., 2] * (sx + sy) / 2
    return pts


def image_to_crop(pts_img, box, crop_size: int = CROP_SIZE):
    """Inverse of crop_to_image."""
    pts = np.asarray(pts_img, dtype=np.float64).copy()
    box = np.asarray(box, dtype=np.float64)
    sx = ((box[..., 2] - box[..., 0]) / crop_size)[..., None]
    sy = ((box[..., 3] - box[..., 1]) / crop_size)[..., None]
    pts[..., 0] = (pts[..., 0] - box[..., 0:1]) / sx
    pts[..., 1] = (pts[..., 1] - box[..., 1:2]) / sy
    if pts.shape[-1] > 2:
        pts[..., 2] = pts[..., 2] / ((sx + sy) / 2)
    return pts


def crop_affine(box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """2x3 matrix for cv2.warpAffine that samples the box (pkg frame) into a crop_size crop.

    cv2 indexes pixel centres at integers, so output index u samples the input at pkg
    x = x0 + (u + 0.5) * s, i.e. input index x - 0.5.
    """
    x0, y0, x1, y1 = [float(v) for v in box]
    sx, sy = (x1 - x0) / crop_size, (y1 - y0) / crop_size
    return np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])


def warp_crop(image: np.ndarray, box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """Bilinear crop of box (pkg frame, may leave the image: zero padding) to crop_size^2."""
    m = crop_affine(box, crop_size)
    return cv2.warpAffine(image, m, (crop_size, crop_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


MAX_STEP = 2.0  # image pixels per crop pixel above which the region is area-averaged first


def extract_crop(image_bgr: np.ndarray, crop_box, crop_size: int = CROP_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 image, box x0, y0, x1, y1 (image pixels; may leave the image, zero padding)
    -> (crop_size, crop_size, 3) uint8 crop."""
    box = np.asarray(crop_box, dtype=np.float64)
    step = max(box[2] - box[0], box[3] - box[1]) / crop_size
    if step <= MAX_STEP:
        return warp_crop(image_bgr, box, crop_size)
    h, w = image_bgr.shape[:2]
    ix0, iy0 = max(0, math.floor(box[0]) - 1), max(0, math.floor(box[1]) - 1)
    ix1, iy1 = min(w, math.ceil(box[2]) + 1), min(h, math.ceil(box[3]) + 1)
    if ix1 - ix0 < 2 or iy1 - iy0 < 2:  # the box lies outside the image
        return np.zeros((crop_size, crop_size, 3), np.uint8)
    region = image_bgr[iy0:iy1, ix0:ix1]
    shrink = step / MAX_STEP
    sw, sh = max(1, round((ix1 - ix0) / shrink)), max(1, round((iy1 - iy0) / shrink))
    small = cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA)
    fx, fy = (ix1 - ix0) / sw, (iy1 - iy0) / sh  # exact factors after rounding
    box_small = np.array([(box[0] - ix0) / fx, (box[1] - iy0) / fy, (box[2] - ix0) / fx, (box[3] - iy0) / fy])
    return warp_crop(small, box_small, crop_size)


def roi_box_from_landmarks(pts_img) -> np.ndarray:
    """3DDFA's crop policy from landmarks: the square of side sqrt(2) * max(w, h) centred on the
    landmarks' bounding box. pts_img: (N, 2+) pkg frame. Returns x0, y0, x1, y1 (float)."""
    pts = np.asarray(pts_img, dtype=np.float64)[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    half = np.sqrt(2.0) * (hi - lo).max() / 2
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
