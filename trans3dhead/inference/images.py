"""Input images for inference: file paths, numpy arrays and PIL images, all turned into one
(H, W, 3) uint8 BGR array, the order the networks take.

Files are decoded by fileio.read_image_file (the package's one image reader, also behind the
dataset readers); arrays by fileio.to_bgr_uint8. Every failure is a Trans3DHeadError whose
one-line message names the input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trans3dhead.errors import Trans3DHeadError
from trans3dhead.fileio import read_image_file, to_bgr_uint8

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm",
                            ".ppm", ".pnm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


def load_image(image, channels: str = "bgr") -> tuple[np.ndarray, str]:
    """A path, numpy array or PIL image -> ((H, W, 3) uint8 BGR, a name for messages).

    channels: the channel order of a numpy array ("bgr", as cv2.imread returns, or "rgb");
    paths and PIL images carry their own order and ignore it.
    """
    if isinstance(image, (str, Path)):
        return read_image_file(image), str(image)
    if isinstance(image, np.ndarray):
        return to_bgr_uint8(image, channels, "array"), "array"
    if _is_pil(image):
        return _from_pil(image), "PIL image"
    raise Trans3DHeadError(f"image of type {type(image).__name__}: pass a file path, a numpy array or a PIL image")


def _is_pil(obj) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "convert")


def _from_pil(img) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        if arr.dtype != np.uint16:
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        return to_bgr_uint8(arr, "rgb", "PIL image")
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
    return to_bgr_uint8(np.asarray(img), "rgb", "PIL image")
