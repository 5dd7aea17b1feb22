"""Augmentations that move the image and its landmarks together, in the package crop frame.

Geometric: a similarity about the crop centre (scale, in-plane rotation, shift) and a horizontal
flip (x -> S - x, exact in the corner-origin frame) with the 68-point left/right permutation.
Photometric (student input only; the online teacher sees the clean geometric crop): brightness,
contrast, colour, grey, blur, noise, and synthetic occluders.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Mirror partner of each of the 68 points (Multi-PIE / 300-W scheme, 0-based).
FLIP_PERM_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer mouth
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner mouth
)


@dataclass
class AugmentConfig:
    scale: float = 0.1  # crop scale jitter, +- fraction
    shift: float = 0.06  # centre shift, +- fraction of the crop
    rotate_deg: float = 20.0  # in-plane rotation, +- degrees
    flip: float = 0.5  # probability
    color: float = 0.3  # brightness/contrast/colour jitter strength
    grey: float = 0.05  # probability of a grey image
    blur: float = 0.1  # probability of a Gaussian blur
    noise: float = 0.1  # probability of Gaussian noise
    occlude: float = 0.2  # probability of a synthetic occluder


def similarity(rng: np.random.Generator, cfg: AugmentConfig, size: int) -> np.ndarray:
    """2x3 matrix mapping package-frame crop points to the augmented crop."""
    s = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    a = np.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    t = rng.uniform(-cfg.shift, cfg.shift, 2) * size
    c = size / 2.0
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, (np.array([c, c]) + t - rot @ np.array([c, c]))[:, None]])


def warp_pkg(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Warp so that package point p goes to m @ [p, 1]; cv2 indexes pixel centres at integers."""
    m_cv = m.copy()
    m_cv[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(image, m_cv, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def apply_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    out = pts.copy()
    out[..., :2] = pts[..., :2] @ m[:, :2].T + m[:, 2]
    return out


def flip_image(image: np.ndarray) -> np.ndarray:
    return image[:, ::-1]


def flip_points(pts: np.ndarray, size: int) -> np.ndarray:
    """Mirror (..., 68, D) landmarks: x -> size - x and left/right partners swapped."""
    out = pts[..., FLIP_PERM_68, :].copy()
    out[..., 0] = size - out[..., 0]
    return out


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    img = image.astype(np.float32)
    if cfg.color:
        gain = 1.0 + rng.uniform(-cfg.color, cfg.color)
        bias = rng.uniform(-cfg.color, cfg.color) * 60
        chan = 1.0 + rng.uniform(-cfg.color, cfg.color, 3) * 0.3
        img = (img - 128.0) * gain + 128.0 + bias
        img = img * chan
    if rng.random() < cfg.grey:
        img[:] = img.mean(-1, keepdims=True)
    if rng.random() < cfg.blur:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
    if rng.random() < cfg.noise:
        img = img + rng.normal(0, rng.uniform(2, 10), img.shape)
    if rng.random() < cfg.occlude:
        h, w = img.shape[:2]
        ow, oh = rng.uniform(0.15, 0.45) * w, rng.uniform(0.15, 0.45) * h
        x0, y0 = rng.uniform(0, w - ow), rng.uniform(0, h - oh)
        sl = np.s_[int(y0):int(y0 + oh), int(x0):int(x0 + ow)]
        if rng.random() < 0.5:
            img[sl] = rng.uniform(0, 255, 3)
        else:
            img[sl] = rng.uniform(0, 255, img[sl].shape)
    return np.clip(img, 0, 255).astype(np.uint8)
