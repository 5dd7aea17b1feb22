"""FaceModel: the Basel Face Model (BFM, neck removed) in the 3DDFA layout, as packaged arrays.

62 parameters = a 3x4 pose [s*R3 | t] (row-major, 12) + 40 shape + 10 expression coefficients.
Networks predict them normalised, (p - param_mean) / param_std. Decoding gives points in the BFM
frame (x right, y UP, 120x120 crop units); ``frames.bfm_to_crop`` moves them to the package crop
frame. Arrays ship inside the package (trans3dhead/assets/bfm_noneck_v3.npz; Basel Face Model
terms: non-commercial research, see NOTICE).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from torch import nn

from trans3dhead.face_model.frames import CROP_SIZE, bfm_to_crop
from trans3dhead.face_model.landmarks68 import NUM_LANDMARKS

NUM_PARAMS = 62
POSE_DIMS, SHAPE_DIMS, EXP_DIMS = 12, 40, 10


def load_bfm_arrays() -> dict[str, np.ndarray]:
    """The packaged BFM arrays, bases converted to float32."""
    with resources.files("trans3dhead.assets").joinpath("bfm_noneck_v3.npz").open("rb") as f:
        raw = np.load(f)
        arrays = {k: raw[k] for k in raw.files}
    for k in ("u", "w_shp", "w_exp", "param_mean", "param_std"):
        arrays[k] = arrays[k].astype(np.float32)
    return arrays


def outward_triangles(u: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """The package's one triangle winding: (T, 3) int32, ordered so that (v1 - v0) x (v2 - v0)
    points out of the face (+z of the BFM frame for the mean face u, whose z axis points to the
    camera). The stored order is kept when it already does."""
    tri = np.asarray(tri).astype(np.int32)
    normal_z = np.cross(u[tri[:, 1]] - u[tri[:, 0]], u[tri[:, 2]] - u[tri[:, 0]])[:, 2]
    return np.ascontiguousarray(tri[:, [0, 2, 1]] if normal_z.sum() < 0 else tri)


@lru_cache(maxsize=1)
def dense_model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean shape (N, 3), bases (N, 3, 50) shape then expression, outward triangles (T, 3) int32)
    of the packaged BFM, read once; float32, BFM frame."""
    a = load_bfm_arrays()
    return a["u"], np.concatenate([a["w_shp"], a["w_exp"]], -1), outward_triangles(a["u"], a["tri"])


@lru_cache(maxsize=1)
def keypoint_model() -> tuple[np.ndarray, np.ndarray]:
    """(mean shape (68, 3), bases (68, 3, 50)) at the 68 landmark vertices, float32, BFM frame."""
    u, bases, _ = dense_model()
    kp = load_bfm_arrays()["keypoints"].astype(np.int64)
    return u[kp].copy(), bases[kp].copy()


class FaceModel(nn.Module):
    """62 parameters <-> 68 landmarks and the dense 38,365-vertex mesh.

    Buffers are not persistent: they come from the packaged file, never from a checkpoint.
    """

    def __init__(self, dense: bool = True, arrays: dict | None = None):
        super().__init__()
        a = arrays if arrays is not None else load_bfm_arrays()
        kp = torch.as_tensor(a["keypoints"].astype(np.int64))
        u = torch.as_tensor(a["u"])
        w = torch.cat([torch.as_tensor(a["w_shp"]), torch.as_tensor(a["w_exp"])], -1)  # (N, 3, 50)
        self.register_buffer("param_mean", torch.as_tensor(a["param_mean"]), persistent=False)
        self.register_buffer("param_std", torch.as_tensor(a["param_std"]), persistent=False)
        self.register_buffer("u_lm", u[kp].clone(), persistent=False)  # (68, 3)
        self.register_buffer("w_lm", w[kp].clone(), persistent=False)  # (68, 3, 50)
        self.dense = dense
        if dense:
            self.register_buffer("u", u, persistent=False)
            self.register_buffer("w", w, persistent=False)
            tri = outward_triangles(a["u"], a["tri"]).astype(np.int64)
            self.register_buffer("tri", torch.as_tensor(tri), persistent=False)
        self.keypoints = a["keypoints"].astype(np.int64)

    def denormalize(self, params_norm: torch.Tensor) -> torch.Tensor:
        return params_norm * self.param_std + self.param_mean

    def normalize(self, params: torch.Tensor) -> torch.Tensor:
        return (params - self.param_mean) / self.param_std

    @staticmethod
    def _decode(params: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        pose = params[..., :12].reshape(*params.shape[:-1], 3, 4)
        shape = u + torch.einsum("nck,...k->...nc", w, params[..., 12:])  # (..., N, 3)
        return shape @ pose[..., :3, :3].transpose(-1, -2) + pose[..., None, :, 3]

    def landmarks_bfm(self, params: torch.Tensor) -> torch.Tensor:
        """(..., 62) un-normalised -> (..., 68, 3) BFM frame."""
        return self._decode(params, self.u_lm, self.w_lm)

    def landmarks_crop(self, params: torch.Tensor, crop_size: int = CROP_SIZE) -> torch.Tensor:
        """(..., 62) un-normalised -> (..., 68, 3) package crop frame, pixels."""
        return bfm_to_crop(self.landmarks_bfm(params), crop_size)

    def vertices_crop(self, params: torch.Tensor, crop_size: int = CROP_SIZE) -> torch.Tensor:
        """(..., 62) un-normalised -> (..., 38365, 3) dense mesh in the package crop frame."""
        if not self.dense:
            raise RuntimeError("FaceModel was built with dense=False; build FaceModel(dense=True) for meshes")
        return bfm_to_crop(self._decode(params, self.u, self.w), crop_size)

    def mean_landmarks_crop(self, crop_size: int = CROP_SIZE) -> torch.Tensor:
        """(68, 3) landmarks of the mean parameters: the average face in the crop frame."""
        return self.landmarks_crop(self.param_mean, crop_size)
