"""The multi-information loss of Trans3DHead: one function per term and one weighted sum.

Every term is computed for every decoder layer (MARR supervises each) and averaged over layers.
Inputs: the network's landmarks (K, B, 68, 3) in crop pixels and normalised parameters
(K, B, 62); targets in the same frames. Landmark errors are in crop pixels; the Euler term in
degrees; the parameter term on normalised parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trans3dhead.config import LossConfig
from trans3dhead.face_model.bfm import FaceModel
from trans3dhead.face_model.pose import pose_deg_from_params



def landmark_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 over x, y: pred (K, B, L, 3), target (B, L, 2|3), weight (B, L) or None."""
    err = (pred[..., :2] - target[..., :2]).abs().sum(-1)  # (K, B, L)
    if weight is None:
        return err.mean()
    return (err * weight).sum() / (weight.sum() * pred.shape[0]).clamp(min=1.0)


def depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred[..., 2] - target[..., 2]).abs().mean()


def param_loss(pred_norm: torch.Tensor, target_norm: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(pred_norm, target_norm.expand_as(pred_norm), beta=0.1)


def vertex_loss(lm_3dmm: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Landmarks decoded from the predicted parameters (K, B, 68, 3) against the target, 3D L1."""
    return (lm_3dmm - target).abs().sum(-1).mean()


def cross_branch_loss(lm_branch: torch.Tensor, lm_3dmm: torch.Tensor) -> torch.Tensor:
    return (lm_branch[..., :2] - lm_3dmm[..., :2]).abs().sum(-1).mean()


def visibility_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the visibility head's logits (B, 68, 3) against MERL-RAV classes (B, 68),
    -1 where a crop has no labels (left out; zero when no point of the batch is labelled)."""
    labelled = target >= 0
    if not labelled.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[labelled], target[labelled])


def euler_loss(params: torch.Tensor, target_pose_deg: torch.Tensor) -> torch.Tensor:
    """params (K, B, 62) un-normalised; target (B, 3) yaw, pitch, roll in degrees."""
    pred = pose_deg_from_params(params)
    return F.smooth_l1_loss(pred, target_pose_deg.expand_as(pred), beta=1.0)


class MultiInformationLoss(torch.nn.Module):
    """Weighted sum of the terms; returns (total, dict of unweighted terms)."""

    def __init__(self, config: LossConfig, face_model: FaceModel, crop_size: int = 120):
        super().__init__()
        self.config = config
        self.face_model = face_model
        self.crop_size = crop_size

    def forward(self, lm: torch.Tensor, params_norm: torch.Tensor, target: dict,
                visibility_logits: torch.Tensor | None = None):
        """target: lm (B, 68, 3) pixels, params_norm (B, 62), pose_deg (B, 3), optional
        human_lm (B, 68, 2) with human_weight (B, 68) and human_vis (B, 68); visibility_logits
        (B, 68, 3) from the last layer's landmark queries, where the model has the head."""
        c = self.config
        params = self.face_model.denormalize(params_norm)
        lm_3dmm = self.face_model.landmarks_crop(params, self.crop_size)
        terms = {"landmark": landmark_loss(lm, target["lm"]), "depth": depth_loss(lm, target["lm"])}
        if c.param:
            terms["param"] = param_loss(params_norm, target["params_norm"])
        if c.vertex:
            terms["vertex"] = vertex_loss(lm_3dmm, target["lm"])
        if c.cross_branch:
            terms["cross_branch"] = cross_branch_loss(lm, lm_3dmm)
        if c.euler:
            terms["euler"] = euler_loss(params, target["pose_deg"])
        if c.human_landmark and "human_lm" in target:
            terms["human_landmark"] = landmark_loss(lm, target["human_lm"], target["human_weight"])
        if c.visibility and visibility_logits is not None and "human_vis" in target:
            terms["visibility"] = visibility_loss(visibility_logits, target["human_vis"])
        total = sum(getattr(c, name) * value for name, value in terms.items())
        return total, terms
