"""The 68-point scheme (Multi-PIE / 300-W, 0-based): groups, mirror partners and the one mirror
helper for landmarks (used by the teacher's flip averaging, the cached mirrored views and the
flip augmentation alike).

Indices: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67; "inner" points are 17-67.
"""
from __future__ import annotations

import numpy as np
import torch

NUM_LANDMARKS = 68
INNER = slice(17, 68)  # every point but the jaw contour
JAW = slice(0, 17)

# Per-landmark visibility classes, in the order of MERL-RAV's codes 0, 1, 2: turned away from the
# camera (no position in MERL-RAV), hidden by something else (its position estimated), visible.
VISIBILITY_CLASSES = ("self_occluded", "occluded", "visible")

# Mirror partner of each of the 68 points.
FLIP_PERM_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer mouth
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner mouth
)


def mirror_landmarks(pts, size: float):
    """Landmarks (..., 68, D) of a crop -> those of its horizontal mirror: x -> size - x (exact in
    the corner-origin package frame) and left/right partners swapped. numpy or torch in, same out."""
    if isinstance(pts, torch.Tensor):
        out = pts[..., torch.as_tensor(FLIP_PERM_68, device=pts.device), :].clone()
    else:
        out = np.asarray(pts)[..., FLIP_PERM_68, :].copy()
    out[..., 0] = size - out[..., 0]
    return out
