"""From a crop box in an image to the network's 120x120 BGR crop, and from landmarks back to a
crop box (the second pass).

The crop itself is face_model.frames.extract_crop (re-exported here; it lives in the frames
module so that training's face-score stage makes its crops the way inference does): the box is
sampled bilinearly, as the crops the networks were trained on were resized, and where the box is
much larger than the crop (a face of 1000 px in a large photo) its region is first shrunk with
area averaging to at most MAX_STEP image pixels per crop pixel.
"""
from __future__ import annotations

import numpy as np

from trans3dhead.face_model.frames import CROP_SIZE, MAX_STEP, extract_crop, roi_box_from_landmarks, warp_crop  # noqa: F401


def crop_box_from_landmarks(landmarks_img) -> np.ndarray:
    """The second pass's crop box: 3DDFA's policy (the policy behind AFLW2000-3D's roi_box) applied
    to landmarks (68, 2+) in image pixels."""
    return roi_box_from_landmarks(landmarks_img)
