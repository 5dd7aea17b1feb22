"""Run a network over AFLW2000-3D and score it: the harness behind ``trans3dhead evaluate``.

Crops: ``provided`` reads the standard 120x120 crops (crops_120/; they sample the unclipped
MATLAB box ``AFLW2000_3D.crop_box_provided``, which the package protocol maps back with);
``warp`` samples roi_box from the 450x450 images with a bilinear warp. Predictions are mapped
back to the 450x450 image with roi_box and scored in the package frame (the ground truth is
moved by -0.5 px from its 1-based storage). ``protocol="3ddfa"`` instead scores as 3DDFA's
published benchmark does: the network's crop landmarks shifted to 0-based pixel centres
(-0.5 crop px) and mapped with roi_box, against pt3d_68 as stored.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from trans3dhead.data.aflw2000_3d import AFLW2000_3D
from trans3dhead.fileio import read_image_file
from trans3dhead.evaluation.metrics import AlignmentScores, score_alignment
from trans3dhead.face_model.frames import CROP_SIZE, MATLAB_TO_PKG, ZERO_BASED_TO_PKG, crop_to_image, warp_crop
from trans3dhead.face_model.pose import pose_deg_from_params
from trans3dhead.weights import predict_crops



def load_crops(ds: AFLW2000_3D, mode: str, progress: bool = True) -> np.ndarray:
    out = np.empty((len(ds), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for i in tqdm(range(len(ds)), desc=f"reading crops ({mode})", disable=not progress, leave=False):
        if mode == "provided":
            out[i] = read_image_file(ds.crop_path(i))
        elif mode == "warp":
            out[i] = warp_crop(read_image_file(ds.image_path(i)), ds.roi_box[i], CROP_SIZE)
        else:
            raise ValueError(f"crops mode '{mode}' is not one of: provided, warp")
    return out


def run_aflw2000(net, ds: AFLW2000_3D, crops: str = "provided", batch_size: int = 100, progress: bool = True,
                 flip: bool = False):
    """Predict every face: returns dict with landmarks_crop (N,68,3), params (N,62),
    landmarks_3d (N,68,3) image pkg frame, pose_deg (N,3). flip: landmarks averaged with those of
    the mirrored crops (as HeadAligner(flip=True)); parameters and pose stay the crops' own."""
    images = load_crops(ds, crops, progress)
    bar = tqdm(total=len(ds) * (2 if flip else 1), desc="predicting", disable=not progress, leave=False)
    lm_crop, params = predict_crops(net, images, batch_size, progress=bar.update, flip=flip)
    bar.close()
    boxes = ds.crop_box_provided if crops == "provided" else ds.roi_box
    return {"landmarks_crop": lm_crop, "params": params,
            "landmarks_3d": crop_to_image(lm_crop, boxes, CROP_SIZE).astype(np.float32),
            "pose_deg": pose_deg_from_params(params.astype(np.float64)).astype(np.float32)}


def score_predictions(ds: AFLW2000_3D, pred: dict, gt_landmarks_stored: np.ndarray | None = None,
                      protocol: str = "package") -> AlignmentScores:
    """Score predictions from run_aflw2000. gt_landmarks_stored (N, 68, 2|3) replaces the stored
    ground truth; it is read in the same frame as pt3d_68 (1-based pixel centres)."""
    gt_stored = ds.landmarks_stored[..., :2] if gt_landmarks_stored is None else gt_landmarks_stored[..., :2]
    if protocol == "3ddfa":
        shifted = pred["landmarks_crop"][..., :2] - ZERO_BASED_TO_PKG
        pred_xy, gt_xy = crop_to_image(shifted, ds.roi_box, CROP_SIZE), gt_stored
    elif protocol == "package":
        pred_xy, gt_xy = pred["landmarks_3d"][..., :2], gt_stored + MATLAB_TO_PKG
    else:
        raise ValueError(f"protocol '{protocol}' is not one of: package, 3ddfa")
    return score_alignment(pred_xy, gt_xy, ds.yaw_bin_deg, pred["pose_deg"], ds.pose_deg)
