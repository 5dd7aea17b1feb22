"""The AFLW training crops: 19,080 120x120 faces (every AFLW2000-3D image removed).

Crops are returned as they are stored; their labels (21 AFLW points, in the 450x450 frame) are
mapped into the package crop frame with the crop box. No 68-point labels exist for them:
see trans3dhead/labels.py (teacher) and data/merl_rav.py (human labels).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from trans3dhead.fileio import load_dataset_npz, read_image_file, require_file
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.data.sample import FaceSample
from trans3dhead.face_model.frames import CROP_SIZE, image_to_crop



class AFLWCrops:
    """Reader for ``<root>`` = .../aflw_crops with images/ and aflw_crops_meta.npz."""

    def __init__(self, root):
        self.root, meta = load_dataset_npz(root, "aflw_crops_meta.npz", ("names", "pts21", "roi_box", "yaw_deg"),
                                           "AFLW crops")
        self.names = [str(n) for n in meta["names"]]
        self.roi_box = meta["roi_box"].astype(np.float64)
        self.yaw_deg = meta["yaw_deg"].astype(np.float64)
        self.pts21_img = meta["pts21"].transpose(0, 2, 1).astype(np.float64)  # (N, 21, 2), -1 = missing

    def __len__(self) -> int:
        return len(self.names)

    def pts21_crop(self, i: int) -> np.ndarray:
        """(21, 2) AFLW points in the package crop frame, NaN where not labelled."""
        pts = self.pts21_img[i].copy()
        missing = (pts < 0).any(-1)
        out = image_to_crop(pts, self.roi_box[i], CROP_SIZE)
        out[missing] = np.nan
        return out

    def read_crop(self, i: int) -> np.ndarray:
        return read_image_file(self.root / "images" / f"{self.names[i]}.jpg")

    def load_all_crops(self) -> np.ndarray:
        """(N, 120, 120, 3) uint8 BGR, all crops decoded (about 0.8 GB)."""
        out = np.empty((len(self), CROP_SIZE, CROP_SIZE, 3), np.uint8)
        for i in range(len(self)):
            out[i] = self.read_crop(i)
        return out

    def __getitem__(self, i: int) -> FaceSample:
        return FaceSample(name=self.names[i], image=self.read_crop(i),
                          box=np.array([0.0, 0.0, CROP_SIZE, CROP_SIZE]),
                          extra={"pts21": self.pts21_crop(i), "yaw_deg": self.yaw_deg[i]})


def read_exclusion_list(path) -> tuple[set[str], dict]:
    """Crop names listed in an exclusion CSV (column ``crop_name``) and a record of the list.

    The record (file name, sha256 of the file's bytes, count) goes into every model card, so a
    model says which crops it was trained and validated without."""
    p = require_file(path, "exclusion list")
    data = p.read_bytes()
    rows = list(csv.DictReader(data.decode("utf-8").splitlines()))
    if not rows or "crop_name" not in rows[0]:
        raise Trans3DHeadError(f"{p}: not an exclusion list (needs a 'crop_name' column)")
    names = {r["crop_name"].strip() for r in rows if r["crop_name"].strip()}
    return names, {"file": Path(p).name, "sha256": hashlib.sha256(data).hexdigest(), "count": len(names)}


def read_exclusion_lists(paths, val_names: set[str] | None = None) -> tuple[set[str], list[dict]]:
    """The union of the crop names in several exclusion lists and each list's record
    (read_exclusion_list); with val_names, each record also counts its crops in that split
    (``in_validation_split``)."""
    excluded, records = set(), []
    for path in paths:
        names, record = read_exclusion_list(path)
        if val_names is not None:
            record["in_validation_split"] = int(sum(n in val_names for n in names))
        excluded |= names
        records.append(record)
    return excluded, records


def read_split(path) -> set[str]:
    """Crop names of a split file (configs/splits/*.txt: one name a line, '#' comments)."""
    p = Path(path)
    if not p.is_file():
        raise Trans3DHeadError(f"validation split file not found: {p}")
    return {ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
