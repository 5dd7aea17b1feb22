"""Augmentations that move the image and its landmarks together, in the package crop frame.

Geometric: a similarity about the crop centre (scale, in-plane rotation, shift) and a horizontal
flip (x -> S - x, exact in the corner-origin frame) with the 68-point left/right permutation.
Photometric (student input only; the online teacher sees the clean geometric crop): brightness,
contrast, colour, grey, blur, noise, and synthetic occluders.
"""
from __future__ import annotations

import cv2
import numpy as np

from trans3dhead.config import AugmentConfig


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
