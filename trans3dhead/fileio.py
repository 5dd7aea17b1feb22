"""Files in and out. Reads fail with a one-line Trans3DHeadError that names the file (datasets,
arrays, images: the package's one image reader is read_image_file); writes are atomic (a
temporary name in the same folder, then a rename), so a killed process never leaves a
half-written output.

Images: 8-bit and 16-bit files (16-bit is scaled by 1/257), grayscale (copied to three
channels), an alpha channel (dropped), EXIF orientation (applied, as OpenCV does). A JPEG whose
data stops before its end marker is rejected: OpenCV would decode it silently with a grey tail.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from trans3dhead.errors import Trans3DHeadError


@contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``. A folder that
    cannot be created or written, or a target that cannot be replaced, is a Trans3DHeadError naming
    it; the temporary file is removed whatever happens."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    except OSError as exc:  # read-only, not a folder, no space: name the folder, not mkstemp
        raise Trans3DHeadError(f"{path.parent}: cannot write {path.name} into this folder "
                               f"({exc.strerror or type(exc).__name__}); choose a writable folder") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        try:
            os.replace(tmp, path)
        except OSError as exc:  # e.g. a folder of that name is in the way
            raise Trans3DHeadError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class AtomicOutput:
    """A streamed output written under a temporary name (``self.tmp``): close() renames it into
    place, abort() (or an exception inside a with-block) removes it. Subclasses open their handle
    on ``self.tmp`` and release it in ``_release``."""

    def __init__(self, path, suffix: str | None = None):
        self.path = Path(path)
        self._ctx = atomic_path(self.path, suffix=suffix)
        self.tmp = self._ctx.__enter__()

    def _release(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._release()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self._release()
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


# --- reads ------------------------------------------------------------------------------------

def require_dir(path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise Trans3DHeadError(f"{what}: folder not found: {p}")
    return p


def require_file(path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise Trans3DHeadError(f"{what}: file not found: {p}")
    return p


def load_mat(path) -> dict:
    p = require_file(path, "annotation")
    try:
        return scipy.io.loadmat(str(p))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise Trans3DHeadError(f"{p}: corrupt .mat file ({type(exc).__name__}: {exc})".splitlines()[0]) from None


def load_npz(path, keys: tuple[str, ...], what: str) -> dict:
    p = require_file(path, what)
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise Trans3DHeadError(f"{p}: {what} lacks keys {missing}; is this the right file?")
            return {k: z[k] for k in z.files}
    except Trans3DHeadError:
        raise
    except Exception as exc:
        raise Trans3DHeadError(f"{p}: unreadable {what} ({type(exc).__name__})") from None


def load_dataset_npz(root, file_name: str, keys: tuple[str, ...], what: str, hint: str = "") -> tuple[Path, dict]:
    """Open a dataset folder by its marker file: (folder, arrays), one-line errors naming both."""
    folder = require_dir(root, f"{what} data root")
    path = folder / file_name
    if not path.is_file():
        article = "an" if what[0] in "AEIOU" else "a"  # "an AFLW crops folder", "a MERL-RAV folder"
        raise Trans3DHeadError(f"{folder}: not {article} {what} folder (no {file_name}){'; ' + hint if hint else ''}")
    return folder, load_npz(path, keys, what)


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
