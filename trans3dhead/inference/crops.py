"""From a crop box in an image to the network's 120x120 BGR crop, and from landmarks back to a
crop box (the second pass).

A crop samples its box bilinearly (face_model.frames.warp_crop), as the crops the networks were
trained on were resized. Where the box is much larger than the crop (a face of 1000 px in a
large photo), bilinear sampling would skip most pixels and alias, so the box's region is first
shrunk with area averaging to at most MAX_STEP image pixels per crop pixel.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from trans3dhead.face_model.frames import CROP_SIZE, roi_box_from_landmarks, warp_crop

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


def crop_box_from_landmarks(landmarks_img) -> np.ndarray:
    """The second pass's crop box: 3DDFA's policy (the policy behind AFLW2000-3D's roi_box) applied
    to landmarks (68, 2+) in image pixels."""
    return roi_box_from_landmarks(landmarks_img)
