"""Teacher labels for training crops: the 3ddfa-mb05 reference's parameters, landmarks and pose.

Flip averaging: the teacher also sees the mirrored crop; its landmarks are mirrored back (x ->
S - x and the left/right permutation) and averaged with the direct ones, and its pose likewise
(yaw and roll change sign under a mirror, pitch does not). This cancels any left/right bias of the
teacher (its +0.7 px x offset on frontal AFLW2000-3D faces) and halves part of its noise. The
parameters are taken from the direct view (shape and expression bases are not mirror-symmetric).
Landmarks are in the package crop frame and carry the teacher's own remaining (vertical) offset.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trans3dhead.data.transforms import FLIP_PERM_68
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
        self.register_buffer("perm", torch.as_tensor(FLIP_PERM_68), persistent=False)

    def train(self, mode: bool = True):
        return super().train(False)  # the teacher always runs in eval mode

    @torch.no_grad()
    def forward(self, crops: torch.Tensor) -> dict:
        """crops (B, 3, S, S) float BGR 0..255 -> lm (B, 68, 3) pixels, params (B, 62)
        un-normalised, params_norm (B, 62), pose_deg (B, 3) yaw/pitch/roll."""
        size = crops.shape[-1]
        b = crops.shape[0]
        if self.flip_average:
            lm, params = self.net(torch.cat([crops, crops.flip(-1)]))
            lm_flip = lm[b:, self.perm].clone()
            lm_flip[..., 0] = size - lm_flip[..., 0]
            pose = pose_deg_from_params(params)
            lm_out = (lm[:b] + lm_flip) / 2
            pose_out = (pose[:b] + pose[b:] * _MIRROR_POSE.to(pose)) / 2
            params = params[:b]
        else:
            lm_out, params = self.net(crops)
            pose_out = pose_deg_from_params(params)
        return {"lm": lm_out, "params": params, "params_norm": self.net.face_model.normalize(params),
                "pose_deg": pose_out}


@torch.no_grad()
def label_crops(teacher: Teacher, crops_bgr: np.ndarray, batch_size: int = 200, progress=None) -> dict:
    """(N, S, S, 3) uint8 BGR -> dict of numpy arrays (lm, params, pose_deg)."""
    out = {"lm": [], "params": [], "pose_deg": []}
    for i in range(0, len(crops_bgr), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(crops_bgr[i:i + batch_size])).permute(0, 3, 1, 2).float()
        t = teacher(x)
        for k in out:
            out[k].append(t[k].numpy())
        if progress is not None:
            progress(len(x))
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
