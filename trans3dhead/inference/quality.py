"""Face quality: how face-like a crop is, in [0, 1] (higher = more face-like), from one network run.

- **Face score** (models with a face-score head, the shipped default among them): the head's
  probability that the crop holds a human face framed as the detector frames one, a linear read-out
  of the last decoder layer's query states fitted against crops off the face and non-face images
  (training/face_score.py).
- **Branch agreement** (models without that head): Trans3DHead answers twice, its landmark branch
  and the 68 points of its fitted 3DMM; ``branch_disagreement`` is their mean 2D distance in % of
  the crop side, and the factor AGREEMENT_HALF² / (AGREEMENT_HALF² + d²) is 0.5 at the 98th
  percentile of validation faces (also the tracker's "lost" threshold). With human-trained
  landmarks this cue separates non-faces only weakly (docs/results.md, attempt 8).
- **Sharpness.** A heavily blurred crop still looks like a face to the network, so the variance of
  the Laplacian of the crop's grey centre (the middle two thirds of the 120x120 crop, where the
  face is) enters as s² / (s² + SHARPNESS_HALF²).

quality = (face score or agreement factor) x sharpness factor. The constants and the recommended
threshold come from the AFLW validation split, the shared clip and non-face images
(scripts/measure_face_quality.py, scripts/measure_quality_constants.py; figures in docs/results.md,
"Face-quality score"); AFLW2000-3D was not used to choose them. Models without a landmark branch
(3ddfa-mb05, or landmarks taken from the 3DMM) and without a face-score head have no quality
(None) and no threshold applies to them. The detector score is not part of the quality: it is not
what separates faces from non-faces (issue 13: two dogs scored 0.992 and 0.931, real faces as low
as 0.914).
"""
from __future__ import annotations

import cv2
import numpy as np

# Branch disagreement (% of the crop side) where the agreement factor is 0.5: the 98th percentile
# of the default model's disagreement on the validation split (930 faces, inference/tracking.py).
AGREEMENT_HALF = 1.20  # 1.22, 1.20, 0.49 and 0.44 for the weights of attempts 9, 8 and 7 and before (docs/results.md)
# Laplacian variance (grey levels squared) of the crop centre where the sharpness factor is 0.5:
# between validation faces (minimum 15, 1st percentile 26) and the same faces blurred with sigma
# 6 px of the 120 crop (95th percentile 4.4).
SHARPNESS_HALF = 8.0
# The threshold to pass as HeadAligner(min_quality=...) / predict --min-quality to drop non-faces.
# Rule for a model with a face-score head: 0.5, the head's decision point (its two classes were
# weighted equally when it was fitted). With the shipped default it keeps 924 of the 927
# validation faces the detector finds, 76 of 77 sampled clip faces (the other 0.46) and the
# bundled photo, passes no animal face the default detector reports on seven animal photos, 0-0.1 %
# of random and shifted crops and no heavily blurred face (docs/results.md, "Face-quality score"). Before the face score (branch agreement only) it was
# the lowest clip face less a margin: 0.4 with the attempt-8 weights, 0.3 before them.
RECOMMENDED_MIN_QUALITY = 0.5
# Off by default: no threshold keeps every real validation face (the lowest scores 0.046) while
# rejecting the non-faces; 0.5 drops 0.3 % of real faces and about two thirds of moderately
# blurred ones. Every face carries its quality; a user
# who needs non-faces dropped sets the threshold.
DEFAULT_MIN_QUALITY = None


def branch_disagreement(face, factor: float) -> float:
    """Mean 2D distance between the landmark branch and the 3DMM landmarks of a FaceResult, % of
    the crop side. factor: the network's disagreement_factor (fused landmarks sit part of the way
    between the two answers: 2 for an even mean)."""
    gap = np.linalg.norm(face.landmarks_2d - face.landmarks_3dmm[:, :2], axis=1).mean()
    return float(factor * gap / (face.crop_box[2] - face.crop_box[0]) * 100.0)


def crop_sharpness(crop_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey centre (middle two thirds) of a (S, S, 3) uint8 crop."""
    s = crop_bgr.shape[0]
    centre = crop_bgr[s // 6: s - s // 6, s // 6: s - s // 6]
    grey = cv2.cvtColor(np.ascontiguousarray(centre), cv2.COLOR_BGR2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def quality_from_cues(disagreement: float, sharpness: float) -> float:
    """The quality in [0, 1] from a branch disagreement (% of the crop side) and a crop sharpness."""
    agree = AGREEMENT_HALF ** 2 / (AGREEMENT_HALF ** 2 + disagreement ** 2)
    return float(agree * sharpness_factor(sharpness))


def sharpness_factor(sharpness: float) -> float:
    return float(sharpness ** 2 / (sharpness ** 2 + SHARPNESS_HALF ** 2))


def face_quality(face, sharpness: float, factor: float | None, face_score: float | None = None) -> float | None:
    """The quality of a FaceResult whose crop had this sharpness. A model with a face-score head:
    face score x sharpness factor. Otherwise the branch agreement x sharpness factor, and None for a
    model without a landmark branch (factor None: landmark_source "3dmm" or unknown)."""
    if face_score is not None:
        return float(face_score) * sharpness_factor(sharpness)
    if factor is None:
        return None
    return quality_from_cues(branch_disagreement(face, factor), sharpness)
