"""The reference and teacher network: 3DDFA_V2's MobileNet-V1 x0.5 (Guo et al., "Towards Fast,
Accurate and Stable 3D Dense Face Alignment", ECCV 2020; MIT licence), 62 parameters from a
120x120 crop.

Input: (B, 3, 120, 120) float32 BGR pixel values in [0, 255] (normalised inside as
(x - 127.5) / 128). Output: the 62 un-normalised 3DMM parameters and the 68 landmarks they
decode to in the package crop frame.
"""
from __future__ import annotations

import torch
from torch import nn

from trans3dhead.face_model.bfm import FaceModel
from trans3dhead.model.backbone import PIXEL_MEAN, PIXEL_STD, MobileNetV1



class ReferenceMB05(nn.Module):
    """MobileNet-V1 backbone, global average pool, one linear layer to the normalised 62-vector."""

    def __init__(self, width: float = 0.5, crop_size: int = 120):
        super().__init__()
        self.crop_size = crop_size
        self.backbone = MobileNetV1(width)
        self.fc_param = nn.Linear(self.backbone.num_channels, 62)
        self.face_model = FaceModel(dense=False)

    def forward_params_norm(self, crops: torch.Tensor) -> torch.Tensor:
        """crops (B, 3, 120, 120) BGR 0..255 -> (B, 62) normalised parameters."""
        feat = self.backbone((crops - PIXEL_MEAN) / PIXEL_STD)
        return self.fc_param(feat.mean((2, 3)))

    def forward(self, crops: torch.Tensor):
        """crops (B, 3, 120, 120) float32 BGR 0..255 ->
        landmarks (B, 68, 3) package crop frame, pixels; params (B, 62) un-normalised."""
        params = self.face_model.denormalize(self.forward_params_norm(crops))
        return self.face_model.landmarks_crop(params, self.crop_size), params


def convert_3ddfa_checkpoint(state_dict: dict) -> dict:
    """Rename a 3DDFA_V2 MobileNet checkpoint ('module.' prefix, fc_param/fc_lm heads) to ours.

    fc_lm (3DDFA_V2's auxiliary 2D landmark head) is dropped on purpose; every other key must map.
    """
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith("fc_lm."):
            continue
        out[key if key.startswith("fc_param.") else "backbone." + key] = value
    return out
