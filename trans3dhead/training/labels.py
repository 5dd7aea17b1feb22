"""Teacher labels for training crops: the 3ddfa-mb05 reference's parameters, landmarks and pose.

Flip averaging: the teacher also sees the mirrored crop; its landmarks are mirrored back (x ->
S - x and the left/right permutation) and averaged with the direct ones, and its pose likewise
(yaw and roll change sign under a mirror, pitch does not). This cancels any left/right bias of the
teacher (its +0.7 px x offset on frontal AFLW2000-3D faces) and halves part of its noise. The
parameters are taken from the direct view (shape and expression bases are not mirror-symmetric).
Landmarks are in the package crop frame and carry the teacher's own remaining (vertical) offset.

Cached labels (``label_views``, ``transform_labels``): the teacher labels every crop once, as seen
directly and mirrored; a training sample warped by a similarity m (and possibly mirrored) then gets
its labels by moving the cached ones with the same m: landmarks exactly, the 3x4 pose of the
parameters by the equivalent 3D similarity (rotation about the viewing axis, scale, shift), so the
parameters still decode to the moved landmarks' frame. This replaces two teacher forwards per
training crop (~35 % of a step) and gives one label per face whatever the augmentation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trans3dhead.fileio import atomic_path

from trans3dhead.face_model.frames import CROP_SIZE, bfm_to_crop_matrix
from trans3dhead.face_model.landmarks68 import mirror_landmarks
from trans3dhead.model.batching import forward_crops
from trans3dhead.face_model.pose import pose_deg_from_params

_MIRROR_POSE = torch.tensor([-1.0, 1.0, -1.0])  # yaw, pitch, roll under a horizontal mirror


class Teacher(nn.Module):
    """Wraps a network (forward(crops) -> (landmarks, params)) into label targets."""

    def __init__(self, net: nn.Module, flip_average: bool = True):
        super().__init__()
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.flip_average = flip_average

    def train(self, mode: bool = True):
        return super().train(False)  # the teacher always runs in eval mode

    @torch.no_grad()
    def forward(self, crops: torch.Tensor) -> dict:
        """crops (B, 3, S, S) float BGR 0..255 -> lm (B, 68, 3) pixels, params (B, 62)
        un-normalised, params_norm (B, 62), pose_deg (B, 3) yaw/pitch/roll."""
        size = crops.shape[-1]
        b = crops.shape[0]
        if self.flip_average:
            lm, params = self.net(torch.cat([crops, crops.flip(-1)]))[:2]
            pose = pose_deg_from_params(params)
            lm_out = (lm[:b] + mirror_landmarks(lm[b:], size)) / 2
            pose_out = (pose[:b] + pose[b:] * _MIRROR_POSE.to(pose)) / 2
            params = params[:b]
        else:
            lm_out, params = self.net(crops)[:2]
            pose_out = pose_deg_from_params(params)
        return {"lm": lm_out, "params": params, "params_norm": self.net.face_model.normalize(params),
                "pose_deg": pose_out}


def label_crops(teacher: Teacher, crops_bgr: np.ndarray, batch_size: int = 200, progress=None) -> dict:
    """(N, S, S, 3) uint8 BGR -> dict of numpy arrays (lm, params, pose_deg)."""
    return forward_crops(lambda x: {k: v for k, v in teacher(x).items() if k != "params_norm"}, crops_bgr,
                         batch_size, progress=progress)


VIEW_KEYS = ("lm", "params", "pose_deg")


def label_views(net: nn.Module, crops_bgr: np.ndarray, batch_size: int = 200, progress=None) -> dict:
    """Flip-averaged teacher labels of each crop as seen directly and mirrored.

    (N, S, S, 3) uint8 BGR -> {"lm", "params", "pose_deg"} for the direct view and the same keys
    prefixed "mirror_" for the mirrored crop (its landmarks are the mirrored flip-averaged ones,
    exactly; its parameters are the teacher's on the mirrored crop). Two forwards per crop.
    """
    teacher = Teacher(net, flip_average=False)

    def views(x: torch.Tensor) -> dict:
        b, size = len(x), x.shape[-1]
        t = teacher(torch.cat([x, x.flip(-1)]))
        lm = (t["lm"][:b] + mirror_landmarks(t["lm"][b:], size)) / 2
        pose = (t["pose_deg"][:b] + t["pose_deg"][b:] * _MIRROR_POSE) / 2
        return {"lm": lm, "params": t["params"][:b], "pose_deg": pose, "mirror_lm": mirror_landmarks(lm, size),
                "mirror_params": t["params"][b:], "mirror_pose_deg": pose * _MIRROR_POSE}

    return forward_crops(views, crops_bgr, batch_size, progress=progress)


def transform_labels(labels: dict, m: np.ndarray, crop_size: int = CROP_SIZE) -> dict:
    """Move one face's labels {"lm" (68, 3), "params" (62,), "pose_deg" (3,)} by the 2x3 crop
    similarity m (package frame): x, y by m, depth scaled by m's scale, the parameters' 3x4 pose
    by the same 3D similarity, the Euler angles by the change of the parameters' own decode."""
    k = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    g = np.eye(4)
    g[:2, :2], g[:2, 3], g[2, 2] = m[:, :2], m[:, 2], k
    c = bfm_to_crop_matrix(crop_size)
    h = np.linalg.inv(c) @ g @ c  # the move expressed in the BFM frame
    params = labels["params"].astype(np.float64)
    pose = np.vstack([params[:12].reshape(3, 4), [0, 0, 0, 1]])
    moved = params.copy()
    moved[:12] = (h @ pose)[:3].reshape(12)
    lm = labels["lm"].astype(np.float64)
    lm_out = np.empty_like(lm)
    lm_out[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
    lm_out[:, 2] = lm[:, 2] * k
    d_pose = pose_deg_from_params(moved[None]) - pose_deg_from_params(params[None])
    # The teacher's 3x4 pose is not exactly a scaled rotation, so P2sRt's yaw and pitch also move a
    # little (up to ~5 deg) under an in-plane rotation: shift all three by the decode's own change.
    pose_deg = (labels["pose_deg"].astype(np.float64) + d_pose[0] + 180.0) % 360.0 - 180.0
    return {"lm": lm_out.astype(np.float32), "params": moved.astype(np.float32),
            "pose_deg": pose_deg.astype(np.float32)}


def write_label_cache(path, labels: dict, names, teacher: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, names=np.array(names), teacher=np.array(teacher), flip_average=np.array(True),
                     frame=np.array("package crop frame (pixels, origin at the crop's top-left corner)"),
                     **labels)
