"""Reading files with one-line errors that name the file."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

from trans3dhead.errors import Trans3DHeadError


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


def read_image_bgr(path) -> np.ndarray:
    """(H, W, 3) uint8 BGR; raises Trans3DHeadError for a missing or undecodable file."""
    p = require_file(path, "image")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise Trans3DHeadError(f"{p}: not a readable image (corrupt or unsupported format)")
    return img


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
