"""Scores on the held-out validation split of the AFLW training crops (never AFLW2000-3D): NME
against the flip-averaged teacher (all 68 points) and against MERL-RAV human labels (inner points
17-67, faces whose inner points are all labelled), for each landmark source and their fused mean.
Training logs them every epoch (val/...); scripts/validate.py prints them for finished models.
"""
from __future__ import annotations

import numpy as np

from trans3dhead.evaluation.metrics import nme_per_face
from trans3dhead.face_model.landmarks68 import INNER


def fully_labelled_inner(human_weight: np.ndarray) -> np.ndarray:
    """(N,) faces whose 51 inner points all carry a human position (weight > 0)."""
    return np.asarray(human_weight)[:, INNER].astype(bool).all(1)


def validation_scores(sources: dict[str, np.ndarray], teacher_lm: np.ndarray, human_lm: np.ndarray,
                      human_weight: np.ndarray) -> dict[str, float]:
    """sources: {"branch": (N, 68, 2+), "3dmm": ...} landmarks in one frame with the labels; a
    "fused" source (their mean) is added when both are given. Returns nme_teacher_<source>,
    nme_human_inner_<source> and nme_human_inner_teacher (the teacher's own human NME)."""
    sources = dict(sources)
    if "branch" in sources and "3dmm" in sources:
        sources["fused"] = (sources["branch"] + sources["3dmm"]) / 2
    full = fully_labelled_inner(human_weight)
    out = {}
    for name, pred in sources.items():
        out[f"nme_teacher_{name}"] = float(nme_per_face(pred, teacher_lm).mean())
        if full.any():
            out[f"nme_human_inner_{name}"] = float(nme_per_face(pred[full][:, INNER], human_lm[full][:, INNER]).mean())
    if full.any():
        out["nme_human_inner_teacher"] = float(nme_per_face(teacher_lm[full][:, INNER], human_lm[full][:, INNER]).mean())
    return out
