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

Face score (``face_score=True``): a linear read-out of the last layer's query states (the mean and
spread of the 68 landmark queries and the mean of the parameter queries) gives the probability that
the crop holds a human face centred as the detector's crops are; fitted on the frozen network
against non-face crops (training/face_score.py) and used by the face quality
(inference/quality.py).
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


class FaceScoreHead(nn.Module):
    """(B, Q, D) query states (68 landmark queries first) -> (B,) face logit: one linear map of
    [mean of the landmark queries, their standard deviation over the 68, mean of the parameter
    queries]."""

    def __init__(self, dim: int, num_landmarks: int = NUM_LANDMARKS):
        super().__init__()
        self.num_landmarks = num_landmarks
        self.linear = nn.Linear(3 * dim, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    @staticmethod
    def features(queries: torch.Tensor, num_landmarks: int = NUM_LANDMARKS) -> torch.Tensor:
        lm, par = queries[:, :num_landmarks], queries[:, num_landmarks:]
        mean = lm.mean(1)
        std = ((lm - mean[:, None]) ** 2).mean(1).mul(num_landmarks / (num_landmarks - 1)).sqrt()
        return torch.cat([mean, std, par.mean(1)], 1)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(queries, self.num_landmarks)).squeeze(-1)


class Trans3DHead(nn.Module):
    """Backbone -> memory tokens -> decoder; forward returns every layer's estimate."""

    def __init__(self, backbone_width: float = 0.5, crop_size: int = 120, dim: int = 64, num_layers: int = 2,
                 num_heads: int = 4, ffn_dim: int = 128, qamem: bool = True, marr: bool = True,
                 cross_branch: bool = True, param_branch: bool = True, dropout: float = 0.0,
                 visibility: bool = False, visibility_hidden: int = 0, face_score: bool = False):
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
        self.face_score_head = FaceScoreHead(dim) if face_score and param_branch else None

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
        """As forward, plus the last layer's query states (B, Q, D): the 68 landmark queries first,
        then the parameter queries."""
        memory = self.forward_features(crops)
        lm, params, x = self.decoder(memory, self.memory_pos, self.mean_lm, self.mean_params)
        return lm * self.crop_size, params, x


class Trans3DHeadPredictor(nn.Module):
    """The inference network: the final layer's landmarks (package crop frame, pixels) and
    un-normalised parameters, the same interface as the reference network; a model with a
    visibility head also returns its class probabilities (B, 68, 3), one with a face-score head
    its face probability (B,), in the order of ``output_names``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = build_model(config)

    @classmethod
    def from_config(cls, config: dict) -> "Trans3DHeadPredictor":
        return cls(ModelConfig(**config))

    @property
    def output_names(self) -> tuple[str, ...]:
        return output_names_of(self.model.visibility_head, self.model.face_score_head)

    @property
    def face_model(self):
        """The 3DMM its parameters decode with (as the reference network's), so that a trained
        Trans3DHead can label crops as a teacher (`trans3dhead label --teacher WEIGHTS`)."""
        return self.model.face_model

    def forward(self, crops: torch.Tensor):
        """crops (B, 3, 120, 120) float32 BGR 0..255 -> landmarks (B, 68, 3), params (B, 62)
        [, visibility (B, 68, 3) probabilities, VISIBILITY_CLASSES order, when the model has the head]
        [, face_score (B,) probability, when the model has that head]."""
        lm, params_norm, queries = self.model.forward_queries(crops)
        params = self.model.face_model.denormalize(params_norm[-1])
        lm = lm[-1]
        source = self.config.landmark_source
        if source != "branch":
            lm_3dmm = self.model.face_model.landmarks_crop(params, self.model.crop_size)
            w = self.config.branch_weight
            lm = lm_3dmm if source == "3dmm" else w * lm + (1.0 - w) * lm_3dmm
        return (lm, params, *head_outputs(queries, self.model.visibility_head, self.model.face_score_head))


def output_names_of(visibility_head, face_score_head) -> tuple[str, ...]:
    """The inference outputs of a network with these heads (None where absent), in order."""
    return ("landmarks", "params") + (("visibility",) if visibility_head is not None else ()) + \
        (("face_score",) if face_score_head is not None else ())


def head_outputs(queries: torch.Tensor, visibility_head, face_score_head) -> list[torch.Tensor]:
    """The optional heads' inference outputs from the last layer's query states (B, Q, D)."""
    out = []
    if visibility_head is not None:
        out.append(torch.softmax(visibility_head(queries[:, :NUM_LANDMARKS]), -1))
    if face_score_head is not None:
        out.append(torch.sigmoid(face_score_head(queries)))
    return out


def build_model(config: ModelConfig) -> Trans3DHead:
    kwargs = asdict(config)
    kwargs.pop("landmark_source")
    kwargs.pop("branch_weight")
    return Trans3DHead(**kwargs)
