"""Pure metrics on arrays (NME by yaw bin, head-pose MAE) and the writer of the results table.

Conventions follow 3DDFA's AFLW2000-3D benchmark: 68-point 2D NME normalised by sqrt(w * h) of
the ground-truth landmarks' bounding box; |yaw| bins [0, 30], (30, 60], (60, 90] degrees from
the dataset's ``yaw_bin_deg`` (1312 / 383 / 305 images); the mean of the three bins is the
figure papers report. Pose MAE is the plain absolute difference in degrees per angle over the
faces whose three ground-truth angles lie within +-99 degrees (1969 images).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from trans3dhead.fileio import atomic_write_text

BIN_NAMES = ("[0,30]", "(30,60]", ">60")  # |yaw| in degrees, as yaw_bins splits it


def nme_per_face(pred_xy: np.ndarray, gt_xy: np.ndarray) -> np.ndarray:
    """(N,) NME in percent: mean point error / sqrt(w * h) of each gt (N, L, 2) bounding box."""
    gt_xy = np.asarray(gt_xy, np.float64)[..., :2]
    pred_xy = np.asarray(pred_xy, np.float64)[..., :2]
    size = gt_xy.max(1) - gt_xy.min(1)
    norm = np.sqrt(size[:, 0] * size[:, 1])
    return np.linalg.norm(pred_xy - gt_xy, axis=-1).mean(1) / norm * 100.0


def yaw_bins(yaw_deg: np.ndarray) -> list[np.ndarray]:
    """Boolean masks for |yaw| <= 30, 30 < |yaw| <= 60 and |yaw| > 60."""
    a = np.abs(np.asarray(yaw_deg, np.float64))
    return [a <= 30, (a > 30) & (a <= 60), a > 60]


def pose_mask(gt_pose_deg: np.ndarray, limit_deg: float = 99.0) -> np.ndarray:
    return np.all(np.abs(gt_pose_deg) <= limit_deg, axis=1)


@dataclass
class AlignmentScores:
    """NME (%) per yaw bin, their mean, the mean over all faces; pose MAE (deg)."""

    nme_bins: list[float]
    nme_mean_of_bins: float
    nme_all: float
    bin_counts: list[int]
    pose_mae_deg: dict[str, float] | None = None
    pose_count: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def score_alignment(pred_xy, gt_xy, yaw_bin_deg, pred_pose_deg=None, gt_pose_deg=None) -> AlignmentScores:
    nme = nme_per_face(pred_xy, gt_xy)
    masks = yaw_bins(yaw_bin_deg)
    bins = [float(nme[m].mean()) for m in masks]
    scores = AlignmentScores(nme_bins=bins, nme_mean_of_bins=float(np.mean(bins)), nme_all=float(nme.mean()),
                             bin_counts=[int(m.sum()) for m in masks])
    if pred_pose_deg is not None and gt_pose_deg is not None:
        keep = pose_mask(gt_pose_deg)
        err = np.abs(np.asarray(pred_pose_deg) - np.asarray(gt_pose_deg))[keep].mean(0)
        scores.pose_mae_deg = {"yaw": float(err[0]), "pitch": float(err[1]), "roll": float(err[2]),
                               "mean": float(err.mean())}
        scores.pose_count = int(keep.sum())
    return scores


def format_table(rows: dict[str, AlignmentScores]) -> str:
    """Markdown table, one row per named result."""
    head = ("| model | NME " + " | NME ".join(BIN_NAMES) + " | NME mean of bins | NME all | "
            "yaw MAE | pitch MAE | roll MAE | pose MAE mean |")
    lines = [head, "|" + "---|" * 10]
    for name, s in rows.items():
        p = s.pose_mae_deg or {}
        pose = [f"{p[k]:.3f}" if k in p else "-" for k in ("yaw", "pitch", "roll", "mean")]
        lines.append(f"| {name} | " + " | ".join(f"{b:.3f}" for b in s.nme_bins)
                     + f" | **{s.nme_mean_of_bins:.3f}** | {s.nme_all:.3f} | " + " | ".join(pose) + " |")
    return "\n".join(lines)


def write_json(path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of scores for the boolean labels positive (the probability that a
    random positive scores above a random negative, ties counting half); NaN without both kinds."""
    scores = np.asarray(scores, np.float64).ravel()
    positive = np.asarray(positive, bool).ravel()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks over ties (1-based)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
