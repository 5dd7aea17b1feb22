"""AFLW2000-3D (Zhu et al., CVPR 2016): the benchmark, 2000 faces in 450x450 images.

Stored landmarks ``pt3d_68`` come from a 1-based MATLAB fit; this reader returns them in the
package frame (stored - 0.5 in x and y; z unchanged). ``Pose_Para`` = pitch, yaw, roll (rad) is
returned as pose_deg = yaw, pitch, roll in degrees. ``roi_box`` (3DDFA's test boxes) is a crop box
in pixel-corner coordinates already (crop = that box resized to 120x120).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trans3dhead.fileio import load_dataset_npz, load_mat, read_image_file
from trans3dhead.data.sample import FaceSample
from trans3dhead.errors import Trans3DHeadError
from trans3dhead.face_model.frames import MATLAB_TO_PKG, roi_box_from_landmarks

YAW_BIN_EDGES_DEG = (30.0, 60.0)
POSE_LIMIT_DEG = 99.0


class AFLW2000_3D:
    """Reader for ``<root>`` = .../aflw2000_3d with images/, crops_120/ and aflw2000_3d_meta.npz."""

    def __init__(self, root):
        self.root, meta = load_dataset_npz(root, "aflw2000_3d_meta.npz", ("names", "pts68", "yaw_bin_deg", "roi_box"),
                                           "AFLW2000-3D", hint="pass --data-root .../aflw2000_3d")
        self.names = [str(n) for n in meta["names"]]
        self.landmarks_stored = meta["pts68"].transpose(0, 2, 1).astype(np.float64)  # (N, 68, 3)
        self.yaw_bin_deg = meta["yaw_bin_deg"].astype(np.float64)
        self.roi_box = meta["roi_box"].astype(np.float64)
        self._pose_deg = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def landmarks(self) -> np.ndarray:
        """(N, 68, 3) ground truth in the package frame."""
        pts = self.landmarks_stored.copy()
        pts[..., :2] += MATLAB_TO_PKG
        return pts

    @property
    def pose_deg(self) -> np.ndarray:
        """(N, 3) yaw, pitch, roll in degrees from each image's Pose_Para (read once)."""
        if self._pose_deg is None:
            self._pose_deg = np.stack([self.read_pose_deg(n) for n in self.names])
        return self._pose_deg

    def read_pose_deg(self, name: str, mat: dict | None = None) -> np.ndarray:
        path = self.root / "images" / f"{name}.mat"
        mat = load_mat(path) if mat is None else mat
        pose = np.asarray(mat.get("Pose_Para", []), dtype=np.float64).ravel()
        if pose.size < 3:
            raise Trans3DHeadError(f"{path}: no usable Pose_Para (need pitch, yaw, roll); is it an AFLW2000-3D annotation?")
        pitch, yaw, roll = pose[:3]
        return np.degrees([yaw, pitch, roll])

    @property
    def crop_box_provided(self) -> np.ndarray:
        """(N, 4) package-frame boxes that the provided crops_120 images actually sample.

        Measured (tests/test_data.py::test_provided_crops_sample_the_matlab_box): each crop is
        MATLAB's img(y0:y1, x0:x1) of the UNclipped square 3DDFA box from pt3d_68 as stored
        (x0, y0 = round(corner), side = round(side)), resized to 120x120, zero-padded outside the
        image. Inclusive 1-based indices x0..x1 cover package corners [x0 - 1, x1]; ``roi_box`` is
        that box clipped to the image and is what 3DDFA's benchmark maps back with.
        """
        boxes = np.stack([roi_box_from_landmarks(p[:, :2]) for p in self.landmarks_stored])
        corner = np.round(boxes[:, :2])
        side = np.round(boxes[:, 2] - boxes[:, 0])[:, None]
        return np.concatenate([corner - 1.0, corner + side], 1)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / f"{self.names[i]}.jpg"

    def crop_path(self, i: int) -> Path:
        return self.root / "crops_120" / f"{self.names[i]}.jpg"

    def __getitem__(self, i: int) -> FaceSample:
        name = self.names[i]
        path = self.root / "images" / f"{name}.mat"
        mat = load_mat(path)
        if "pt3d_68" not in mat or np.shape(mat["pt3d_68"]) != (3, 68):
            raise Trans3DHeadError(f"{path}: no (3, 68) pt3d_68 in this .mat; is it an AFLW2000-3D annotation?")
        pts = np.asarray(mat["pt3d_68"], dtype=np.float64).T.copy()
        pts[:, :2] += MATLAB_TO_PKG
        return FaceSample(name=name, image=read_image_file(self.image_path(i)), box=self.roi_box[i].copy(),
                          landmarks=pts.astype(np.float32), pose_deg=self.read_pose_deg(name, mat))
