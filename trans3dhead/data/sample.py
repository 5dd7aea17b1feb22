"""FaceSample: one face with its labels, every point in the package pixel frame (x right, y down,
origin at the top-left corner of the top-left pixel; see face_model/frames.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FaceSample:
    """One face.

    image: (H, W, 3) uint8 BGR, the image the points refer to (a full photo or a crop).
    box: (4,) float x0, y0, x1, y1 of the square crop box in that image, pixels.
    landmarks: (68, 3) float32 x, y, z pixels (z: depth, larger is closer) or None.
    pose_deg: (3,) yaw, pitch, roll in degrees (Pose_Para convention) or None.
    visibility: (68,) int8 per landmark (2 visible, 1 occluded, 0 self-occluded) or None.
    """

    name: str
    image: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray | None = None
    pose_deg: np.ndarray | None = None
    visibility: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
