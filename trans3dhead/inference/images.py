"""Input images for inference: file paths, numpy arrays and PIL images, all turned into one
(H, W, 3) uint8 BGR array, the order the networks take.

Accepted: 8-bit and 16-bit files (16-bit is scaled by 1/257), grayscale (copied to three
channels), an alpha channel (dropped), EXIF orientation (applied, as OpenCV does). A JPEG whose
data stops before its end marker is rejected: OpenCV would decode it silently with a grey tail.
Every failure is a Trans3DHeadError whose one-line message names the input.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from trans3dhead.errors import Trans3DHeadError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm",
                            ".ppm", ".pnm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
MIN_IMAGE_SIDE = 16  # the detector's smallest anchor; no face fits in less
CHANNEL_ORDERS = ("bgr", "rgb")


def _jpeg_segments_complete(data: bytes) -> bool:
    """True if a JPEG's marker chain runs from SOI to an EOI marker without running out of data.

    Segment headers carry their length and are skipped whole (so an EXIF thumbnail's own end
    marker is never mistaken for the image's); entropy-coded data after each SOS is scanned for
    the next marker, skipping byte stuffing (FF 00) and restart markers (FF D0-D7).
    """
    n, pos = len(data), 2
    while pos + 1 < n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            return True
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if pos + 3 >= n:
            return False
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker != 0xDA:
            continue
        while True:  # entropy-coded data: find the next real marker
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return False
            nxt = data[pos + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                pos += 1 if nxt == 0xFF else 2
                continue
            break
    return False


def decode_image_bytes(data: bytes, name: str) -> np.ndarray:
    """Encoded image file content -> (H, W, 3) uint8 BGR."""
    if not data:
        raise Trans3DHeadError(f"{name}: empty file (0 bytes); not an image")
    if data[:3] == b"\xff\xd8\xff" and not _jpeg_segments_complete(data):
        raise Trans3DHeadError(f"{name}: truncated or corrupt JPEG (its data ends before the end-of-image "
                               "marker); re-export or re-download the file")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise Trans3DHeadError(f"{name}: image could not be decoded ({msg})") from None
    if img is None:
        raise Trans3DHeadError(f"{name}: not a readable image (unknown format or corrupt data)")
    return to_bgr_uint8(img, "bgr", name)


def read_image_file(path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 BGR."""
    p = Path(path)
    if not p.exists():
        raise Trans3DHeadError(f"{p}: no such file")
    if p.is_dir():
        raise Trans3DHeadError(f"{p}: is a folder, not an image")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise Trans3DHeadError(f"{p}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return decode_image_bytes(data, str(p))


def to_bgr_uint8(array: np.ndarray, channels: str, name: str = "image") -> np.ndarray:
    """(H, W), (H, W, 1|3|4) uint8, uint16 or float in [0, 1] -> (H, W, 3) uint8 BGR.

    channels: "bgr" or "rgb", the order of a 3- or 4-channel array (ignored for grayscale).
    """
    if channels not in CHANNEL_ORDERS:
        raise Trans3DHeadError(f"channels='{channels}': must be one of {', '.join(CHANNEL_ORDERS)}")
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise Trans3DHeadError(f"{name}: array of shape {a.shape} is not an image; expected (H, W), (H, W, 3) "
                               "or (H, W, 4)")
    h, w = a.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise Trans3DHeadError(f"{name}: image is {w}x{h} px, too small to hold a face "
                               f"(at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} px needed)")
    a = _to_uint8(a, name)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.shape[2] == 4:
        a = a[:, :, :3]  # alpha dropped: the colour channels are what the camera saw
    if channels == "rgb":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(np.min(a)), float(np.max(a))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise Trans3DHeadError(f"{name}: float image with values in [{lo:g}, {hi:g}]; float images must lie "
                                   "in [0, 1] (or pass uint8)")
        return np.round(a * 255.0).astype(np.uint8)
    raise Trans3DHeadError(f"{name}: image dtype {a.dtype} is not supported; use uint8, uint16 or float in [0, 1]")


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
