"""Metrics (evaluate.py) on synthetic arrays with known answers, and the bins and pose subset on
the real AFLW2000-3D meta."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trans3dhead.evaluation.metrics import (BIN_NAMES, AlignmentScores, format_table, nme_per_face, pose_mask, score_alignment,
                                  write_json, yaw_bins)


def _gt_faces(rng, n):
    """(n, 68, 3) landmarks spread over boxes of different widths and heights."""
    pts = rng.uniform(0, 1, (n, 68, 3))
    size = rng.uniform(50, 300, (n, 1, 3))
    return pts * size + rng.uniform(0, 200, (n, 1, 3))


def test_nme_of_a_known_offset():
    rng = np.random.default_rng(0)
    gt = _gt_faces(rng, 10)
    offset = np.array([3.0, -4.0])  # 5 px for every point
    pred = gt[..., :2] + offset
    w = gt[..., 0].max(1) - gt[..., 0].min(1)
    h = gt[..., 1].max(1) - gt[..., 1].min(1)
    np.testing.assert_allclose(nme_per_face(pred, gt), 5.0 / np.sqrt(w * h) * 100, rtol=1e-12)
    # z is ignored on both sides
    pred3 = np.concatenate([pred, rng.normal(size=(10, 68, 1)) * 100], -1)
    np.testing.assert_allclose(nme_per_face(pred3, gt), nme_per_face(pred, gt[..., :2]), rtol=1e-12)


def test_nme_normalises_by_the_ground_truth_box_only():
    gt = np.zeros((1, 68, 2))
    gt[0, :, 0] = np.linspace(0, 100, 68)
    gt[0, :, 1] = np.linspace(0, 25, 68)  # sqrt(100 * 25) = 50
    pred = gt.copy()
    pred[0, 0] = [-1000.0, 1000.0]  # a wild prediction does not change the normaliser
    want = np.linalg.norm(pred[0, 0] - gt[0, 0]) / 68 / 50 * 100
    np.testing.assert_allclose(nme_per_face(pred, gt), [want])


def test_yaw_bins_boundaries():
    yaw = np.array([0.0, 30.0, -30.0, 30.001, 60.0, -60.0, 60.001, 89.0, 120.0, -351.0])
    b0, b1, b2 = yaw_bins(yaw)
    np.testing.assert_array_equal(np.where(b0)[0], [0, 1, 2])
    np.testing.assert_array_equal(np.where(b1)[0], [3, 4, 5])
    np.testing.assert_array_equal(np.where(b2)[0], [6, 7, 8, 9])
    assert BIN_NAMES == ("[0,30]", "(30,60]", ">60")  # the labels say what the masks do


def test_pose_mask_keeps_angles_within_99_degrees():
    pose = np.array([[10.0, -99.0, 99.0], [99.01, 0, 0], [0, -120.0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(pose_mask(pose), [True, False, False, True])


def test_score_alignment_on_synthetic_bins_and_pose():
    rng = np.random.default_rng(1)
    yaw = np.concatenate([np.full(4, 10.0), np.full(2, -45.0), np.full(2, 75.0)])
    gt = _gt_faces(rng, 8)[..., :2]
    size = np.sqrt(np.prod(gt.max(1) - gt.min(1), -1))
    nme_want = np.array([1, 1, 1, 1, 2, 2, 4, 4], float)
    pred = gt + np.array([1.0, 0.0]) * (nme_want * size / 100)[:, None, None]
    gt_pose = np.zeros((8, 3))
    gt_pose[7] = [150.0, 0, 0]  # outside +-99: left out of the pose MAE
    pred_pose = gt_pose + np.array([1.0, -2.0, 3.0])
    pred_pose[7] += 100.0
    s = score_alignment(pred, gt, yaw, pred_pose, gt_pose)
    np.testing.assert_allclose(s.nme_bins, [1.0, 2.0, 4.0])
    assert s.nme_mean_of_bins == pytest.approx(7 / 3)
    assert s.nme_all == pytest.approx(nme_want.mean())
    assert s.bin_counts == [4, 2, 2]
    assert s.pose_mae_deg == pytest.approx({"yaw": 1.0, "pitch": 2.0, "roll": 3.0, "mean": 2.0})
    assert s.pose_count == 7
    assert score_alignment(pred, gt, yaw).pose_mae_deg is None


def test_format_table_and_json(tmp_path):
    with_pose = AlignmentScores([2.925, 3.667, 4.784], 3.792, 3.35, [1312, 383, 305],
                                {"yaw": 2.963, "pitch": 5.264, "roll": 3.479, "mean": 3.902}, 1969)
    no_pose = AlignmentScores([1.0, 2.0, 3.0], 2.0, 1.5, [1, 1, 1])
    lines = format_table({"3ddfa-mb05": with_pose, "other": no_pose}).splitlines()
    assert len(lines) == 4
    assert all(line.count("|") == 11 for line in lines)
    assert lines[2] == ("| 3ddfa-mb05 | 2.925 | 3.667 | 4.784 | **3.792** | 3.350 | 2.963 | 5.264 | 3.479 | "
                        "3.902 |")
    assert lines[3].endswith("| - | - | - | - |")
    write_json(tmp_path / "s.json", {"r": with_pose.to_dict()})
    back = json.loads((tmp_path / "s.json").read_text())
    assert back["r"]["nme_bins"] == [2.925, 3.667, 4.784] and back["r"]["pose_count"] == 1969


def test_bins_and_pose_subset_on_the_real_meta(aflw2000, aflw2000_pose_deg):
    assert [int(m.sum()) for m in yaw_bins(aflw2000.yaw_bin_deg)] == [1312, 383, 305]
    assert int(pose_mask(aflw2000_pose_deg).sum()) == 1969
    # 7 faces have |yaw| > 90 (up to 351 deg): they sit in the last bin, hence its label ">60"
    assert int((np.abs(aflw2000.yaw_bin_deg) > 90).sum()) == 7


def test_perfect_prediction_scores_zero_on_the_real_meta(aflw2000, aflw2000_pose_deg):
    gt = aflw2000.landmarks
    s = score_alignment(gt[..., :2], gt, aflw2000.yaw_bin_deg, aflw2000_pose_deg, aflw2000_pose_deg)
    assert s.nme_all == 0 and s.nme_bins == [0, 0, 0] and s.pose_mae_deg["mean"] == 0
