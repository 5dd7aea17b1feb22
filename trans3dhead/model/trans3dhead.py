"""Trans3DHead (Jiang, Liao, Jin, Yang, "Trans3DHead: a multi-task transformer for 3D head
alignment", IJMLC 17(4):180, 2026): a CNN backbone's low-resolution map read by a landmark branch
(68 queries) and a 3DMM branch (62 queries) of a transformer decoder with QAMem and MARR.

Input: (B, 3, 120, 120) float32, BGR pixel values in [0, 255] (normalised inside as
(x - 127.5) / 128, the reference network's normalisation, so its weights can initialise the
backbone). Backbone: MobileNet-V1 at stride 32 -> a 4x4 map; no transformer encoder (the earlier
version's best variant had none). Output frames: landmarks in the package crop frame (pixels,
origin at the crop's top-left corner), parameters as the 62-vector of the 3DDFA layout.

Visibility (``visibility=True``): a head on the last layer's 68 landmark query states gives each
landmark three class probabilities in MERL-RAV's classes (VISIBILITY_CLASSES, in the order of its
codes 0, 1, 2): self-occluded (turned away), externally occluded (hidden by something else, the
position estimated), visible. It reads the queries and changes nothing else, so it can be fitted
on a trained network kept frozen (training/visibility.py).
"""
from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from trans3dhead.config import ModelConfig
from trans3dhead.face_model.bfm import NUM_LANDMARKS, NUM_PARAMS, FaceModel
from trans3dhead.face_model.landmarks68 import VISIBILITY_CLASSES
from trans3dhead.model.backbone import PIXEL_MEAN, PIXEL_STD, MobileNetV1
from trans3dhead.model.decoder import Decoder



class VisibilityHead(nn.Module):
    """(B, 68, D) landmark query states -> (B, 68, 3) class logits (VISIBILITY_CLASSES order).

    hidden = 0: each landmark its own linear map of its query state; otherwise one shared
    Linear(D, hidden) + GELU first, then each landmark's own linear map of that (chosen on the
    validation split over one linear map shared by all landmarks, docs/results.md)."""

    def __init__(self, dim: int, hidden: int = 0, num_landmarks: int = NUM_LANDMARKS):
        super().__init__()
        n = len(VISIBILITY_CLASSES)
        self.shared = nn.Sequential(nn.Linear(dim, hidden), nn.GELU()) if hidden else nn.Identity()
        self.weight = nn.Parameter(torch.zeros(num_landmarks, hidden or dim, n))
        self.bias = nn.Parameter(torch.zeros(num_landmarks, n))

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        h = self.shared(queries)  # (B, L, H)
        return (h.unsqueeze(-2) @ self.weight).squeeze(-2) + self.bias


class Trans3DHead(nn.Module):
    """Backbone -> memory tokens -> decoder; forward returns every layer's estimate."""

    def __init__(self, backbone_width: float = 0.5, crop_size: int = 120, dim: int = 64, num_layers: int = 2,
                 num_heads: int = 4, ffn_dim: int = 128, qamem: bool = True, marr: bool = True,
                 cross_branch: bool = True, param_branch: bool = True, dropout: float = 0.0,
                 visibility: bool = False, visibility_hidden: int = 0):
        super().__init__()
        self.crop_size = crop_size
        self.backbone = MobileNetV1(backbone_width)
        side = -(-crop_size // 32)
        self.input_proj = nn.Conv2d(self.backbone.num_channels, dim, 1)
        self.memory_pos = nn.Parameter(torch.randn(1, side * side, dim) * 0.02)
        self.decoder = Decoder(dim, num_layers, num_heads, ffn_dim, NUM_LANDMARKS, NUM_PARAMS if param_branch else 0,
                               qamem, cross_branch, marr, dropout)
        self.face_model = FaceModel(dense=False)
        mean_lm = self.face_model.mean_landmarks_crop(crop_size) / crop_size
        self.register_buffer("mean_lm", mean_lm, persistent=False)
        self.register_buffer("mean_params", torch.zeros(NUM_PARAMS), persistent=False)
        self.visibility_head = VisibilityHead(dim, visibility_hidden) if visibility else None

    def forward_features(self, crops: torch.Tensor) -> torch.Tensor:
        """crops (B, 3, S, S) BGR 0..255 -> memory (B, h*w, D)."""
        feat = self.input_proj(self.backbone((crops - PIXEL_MEAN) / PIXEL_STD))
        return feat.flatten(2).transpose(1, 2)

    def forward(self, crops: torch.Tensor):
        """crops (B, 3, 120, 120) float32 BGR 0..255 ->
        landmarks (K, B, 68, 3) float32, package crop frame, pixels;
        params_norm (K, B, 62) float32, normalised 3DMM parameters ((p - mean) / std)."""
        lm, params, _ = self.forward_queries(crops)
        return lm, params

    def forward_queries(self, crops: torch.Tensor):
        """As forward, plus the last layer's landmark query states (B, 68, D)."""
        memory = self.forward_features(crops)
        lm, params, x = self.decoder(memory, self.memory_pos, self.mean_lm, self.mean_params)
        return lm * self.crop_size, params, x[:, :NUM_LANDMARKS]


class Trans3DHeadPredictor(nn.Module):
    """The inference network: the final layer's landmarks (package crop frame, pixels) and
    un-normalised parameters, the same interface as the reference network; a model with a
    visibility head also returns its class probabilities (B, 68, 3)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = build_model(config)

    @classmethod
    def from_config(cls, config: dict) -> "Trans3DHeadPredictor":
        return cls(ModelConfig(**config))

    def forward(self, crops: torch.Tensor):
        """crops (B, 3, 120, 120) float32 BGR 0..255 -> landmarks (B, 68, 3), params (B, 62)
        [, visibility (B, 68, 3) probabilities, VISIBILITY_CLASSES order, when the model has the head]."""
        lm, params_norm, queries = self.model.forward_queries(crops)
        params = self.model.face_model.denormalize(params_norm[-1])
        lm = lm[-1]
        source = self.config.landmark_source
        if source != "branch":
            lm_3dmm = self.model.face_model.landmarks_crop(params, self.model.crop_size)
            lm = lm_3dmm if source == "3dmm" else (lm + lm_3dmm) / 2
        if self.model.visibility_head is None:
            return lm, params
        return lm, params, torch.softmax(self.model.visibility_head(queries), -1)


def build_model(config: ModelConfig) -> Trans3DHead:
    kwargs = asdict(config)
    kwargs.pop("landmark_source")
    return Trans3DHead(**kwargs)
