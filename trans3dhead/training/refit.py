"""Teacher labels refitted to the human landmarks: a 3D target that agrees with the humans.

The teacher's 62 parameters of a training crop decode to landmarks that follow the teacher's
biases; MERL-RAV's human points of the same crop do not. ``refit_labels`` moves each labelled
training crop's parameters (direct and mirrored view alike) to

    argmin_p  sum_k w_k |L(p)_k - h_k|^2 / sigma^2  +  sum_j ((p_j - t_j) / (prior * std_j))^2

with L(p) the 68 points the parameters decode to in the crop (x, y), h the human points, w 1 where
a point carries a position (visible or externally occluded; the jaw only where the data config's
jaw rule allows it), t the teacher's parameters and std_j the BFM parameter spread (the
normalisation of face_model/bfm.py): a Gaussian prior centred on the teacher. The pose moves only
as a similarity of the teacher's (a small rotation, scale and image shift, each with its own
prior), never as a free 3x4 matrix: a free one shears to fit 2D points and its angles drift. Landmarks, pose and
their mirrors are then re-derived from the refitted parameters as label_views derives them from
the teacher's, so every loss term (landmark, depth, parameter, vertex, Euler) sees one consistent
target. Crops without human labels, and the validation split, keep the teacher's labels.

Batched L-BFGS in float64 over all crops at once (the crops' problems are independent).
"""
from __future__ import annotations

import numpy as np
import torch

from trans3dhead.face_model.bfm import FaceModel
from trans3dhead.face_model.frames import CROP_SIZE
from trans3dhead.face_model.landmarks68 import FLIP_PERM_68, JAW, mirror_landmarks
from trans3dhead.face_model.pose import pose_deg_from_params
from trans3dhead.training.labels import _MIRROR_POSE


def _skew(w: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(w[..., 0])
    return torch.stack([torch.stack([zero, -w[..., 2], w[..., 1]], -1),
                        torch.stack([w[..., 2], zero, -w[..., 0]], -1),
                        torch.stack([-w[..., 1], w[..., 0], zero], -1)], -2)


def refit_params(params: np.ndarray, points: np.ndarray, weights: np.ndarray, prior: float,
                 sigma_px: float, crop_size: int = CROP_SIZE, iterations: int = 200,
                 rotation_deg: float = 0.0, scale_frac: float = 0.03, shift_px: float = 2.0) -> np.ndarray:
    """(N, 62) teacher parameters, (N, 68, 2) human points (crop pixels), (N, 68) weights ->
    (N, 62) refitted parameters.

    The pose block P = [s R | t] moves only as a similarity, P' = [(1 + ds) exp([w]x) s R | t + (dx, dy, 0)],
    with Gaussian priors of rotation_deg per axis, scale_frac and shift_px (so the refit cannot
    shear the camera to fit the points); shape and expression move by z * prior * std."""
    fm = FaceModel(dense=False).double()
    t = torch.as_tensor(params, dtype=torch.float64)
    h = torch.as_tensor(np.nan_to_num(points), dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64)
    n = t.shape[0]
    block, trans = t[:, :12].reshape(n, 3, 4)[:, :, :3], t[:, :12].reshape(n, 3, 4)[:, :, 3]
    scale = prior * fm.param_std[12:]
    # unknowns, each in units of its prior's spread: rotation (3), scale (1), shift (2), shape and expression (50)
    x = torch.zeros(n, 56, dtype=torch.float64, requires_grad=True)
    spread = torch.tensor([np.radians(rotation_deg)] * 3 + [scale_frac] + [shift_px] * 2, dtype=torch.float64)

    def apply(x):
        d = x[:, :6] * spread
        rot = torch.linalg.matrix_exp(_skew(d[:, :3]))
        new_block = (1.0 + d[:, 3, None, None]) * rot @ block
        new_trans = trans + torch.cat([d[:, 4:6], torch.zeros(n, 1, dtype=torch.float64)], 1)
        pose = torch.cat([new_block, new_trans[:, :, None]], 2).reshape(n, 12)
        return torch.cat([pose, t[:, 12:] + x[:, 6:] * scale], 1)

    opt = torch.optim.LBFGS([x], max_iter=iterations, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        lm = fm.landmarks_crop(apply(x), crop_size)[..., :2]
        loss = (w[..., None] * (lm - h) ** 2).sum() / sigma_px ** 2 + (x ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return apply(x).numpy()


def refit_labels(labels: dict, human: dict, indices, jaw_off: np.ndarray | None, prior: float,
                 sigma_px: float, crop_size: int = CROP_SIZE, rotation_deg: float = 0.0, log=print) -> dict:
    """label_views' labels (lm, params, pose_deg and their mirror_ views, indexed by crop) with the
    crops in indices that have human labels ({crop index: (points (68, 2), classes (68,))})
    refitted; the rest unchanged. jaw_off: per crop, True where the human jaw is not used."""
    idx = np.array([int(i) for i in indices if int(i) in human], np.int64)
    out = {k: np.array(v, copy=True) for k, v in labels.items()}
    if not len(idx):
        return out
    raw = np.stack([human[i][0] for i in idx]).astype(np.float64)
    vis = np.stack([human[i][1] for i in idx])
    w = (np.isfinite(raw).all(-1) & (vis > 0)).astype(np.float64)
    pts = np.nan_to_num(raw)
    if jaw_off is not None:
        w[np.asarray(jaw_off)[idx], JAW] = 0.0
    direct = refit_params(labels["params"][idx], pts, w, prior, sigma_px, crop_size, rotation_deg=rotation_deg)
    mirrored = refit_params(labels["mirror_params"][idx], mirror_landmarks(pts, crop_size),
                            w[:, FLIP_PERM_68], prior, sigma_px, crop_size, rotation_deg=rotation_deg)
    fm = FaceModel(dense=False).double()
    with torch.no_grad():
        lm_d = fm.landmarks_crop(torch.from_numpy(direct), crop_size).numpy()
        lm_m = fm.landmarks_crop(torch.from_numpy(mirrored), crop_size).numpy()
    lm = (lm_d + mirror_landmarks(lm_m, crop_size)) / 2
    mirror_pose = _MIRROR_POSE.numpy()
    pose = (pose_deg_from_params(direct) + pose_deg_from_params(mirrored) * mirror_pose) / 2
    out["lm"][idx], out["params"][idx], out["pose_deg"][idx] = lm, direct, pose
    out["mirror_lm"][idx] = mirror_landmarks(lm, crop_size)
    out["mirror_params"][idx], out["mirror_pose_deg"][idx] = mirrored, pose * mirror_pose  # cast to each label's dtype on assignment
    before = np.nanmean(np.where(w[..., None] > 0, np.abs(labels["lm"][idx][..., :2] - pts), np.nan))
    after = np.nanmean(np.where(w[..., None] > 0, np.abs(lm_d[..., :2] - pts), np.nan))
    moved = np.abs(lm - labels["lm"][idx]).mean()
    log(f"teacher labels refitted to the human points on {len(idx)} crops (prior {prior} x the BFM spread, "
        f"sigma {sigma_px} px): mean |label - human| {before:.2f} -> {after:.2f} px per coordinate; "
        f"labels moved {moved:.2f} px on average")
    return out
