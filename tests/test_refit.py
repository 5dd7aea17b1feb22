"""Teacher labels refitted to human points (training/refit.py): on real teacher parameters of real
crops, the refit moves the decoded landmarks toward the points it is given, keeps the teacher's
angles when the rotation is held, returns the teacher where the prior is tight, and leaves crops
without human labels as they were."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import AFLW_CROPS_ROOT

from trans3dhead.face_model.bfm import FaceModel
from trans3dhead.face_model.pose import pose_deg_from_params
from trans3dhead.training.refit import refit_labels, refit_params


@pytest.fixture(scope="module")
def teacher():
    """The reference's labels (label_views) of 12 real training crops."""
    from trans3dhead.data.aflw_crops import AFLWCrops
    from trans3dhead.training.labels import label_views
    from trans3dhead.weights import load_network

    reader = AFLWCrops(AFLW_CROPS_ROOT)
    crops = np.stack([reader.read_crop(i) for i in range(12)])
    return label_views(load_network("3ddfa-mb05"), crops)


def _decode(params):
    with torch.no_grad():
        return FaceModel(dense=False).double().landmarks_crop(torch.as_tensor(params, dtype=torch.float64)).numpy()


def test_refit_moves_the_landmarks_to_the_points_and_keeps_the_angles(teacher):
    params = teacher["params"].astype(np.float64)
    rng = np.random.default_rng(0)
    target = params.copy()
    target[:, 12:] += rng.normal(0, 1, target[:, 12:].shape) * FaceModel(dense=False).param_std[12:].numpy() * 0.5
    points = _decode(target)[..., :2]  # what "humans" marked: another shape and expression, the same camera
    w = np.ones(points.shape[:2])
    w[:, :17] = 0.0  # no jaw
    before = np.abs(_decode(params)[..., :2] - points)[:, 17:].mean()
    fitted = refit_params(params, points, w, prior=1.0, sigma_px=2.0)
    after = np.abs(_decode(fitted)[..., :2] - points)[:, 17:].mean()
    assert after < 0.5 * before
    assert np.allclose(pose_deg_from_params(fitted), pose_deg_from_params(params), atol=1e-6)
    tight = refit_params(params, points, w, prior=1e-4, sigma_px=2.0, scale_frac=1e-6, shift_px=1e-6)
    assert np.abs(tight - params).max() < 1e-3 * np.abs(params).max()
    turned = refit_params(params, points, w, prior=1.0, sigma_px=2.0, rotation_deg=5.0)
    assert not np.allclose(pose_deg_from_params(turned), pose_deg_from_params(params), atol=1e-3)


def test_refit_labels_touch_only_the_labelled_crops(teacher):
    lm = teacher["lm"][:, :, :2].astype(np.float64)
    human = {3: (lm[3] + 1.5, np.full(68, 2)), 7: (lm[7] - 1.0, np.full(68, 2))}  # shifted points, all visible
    human[7][0][:5] = np.nan
    out = refit_labels(teacher, human, indices=[0, 1, 3, 5, 7], jaw_off=None, prior=0.5, sigma_px=2.0, log=lambda s: None)
    for k in teacher:
        assert out[k].dtype == teacher[k].dtype
        for i in (0, 1, 2, 5, 11):
            assert np.array_equal(out[k][i], teacher[k][i]), (k, i)
    for i, d in ((3, 1.5), (7, -1.0)):
        assert np.abs((out["lm"][i, :, :2] - teacher["lm"][i, :, :2]).mean() - d) < 0.5 * abs(d)
    # the mirrored view follows: its landmarks are the mirror of the refitted ones
    from trans3dhead.face_model.landmarks68 import mirror_landmarks
    assert np.allclose(out["mirror_lm"][3], mirror_landmarks(out["lm"][3], 120), atol=1e-4)
