"""The multi-information loss (trans3dhead/training/losses.py): each term's value on a known error,
the weighted sum, which terms a zero weight removes, and the average over decoder layers.

Targets are the reference network's answers on real AFLW2000-3D provided crops, so every term sees
the magnitudes it meets in training (pose, shape and expression of real faces)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trans3dhead.config import LossConfig
from trans3dhead.face_model.pose import pose_deg_from_params, rotation_from_euler
from trans3dhead.fileio import read_image_file
from trans3dhead.training.losses import (
    MultiInformationLoss,
    cross_branch_loss,
    depth_loss,
    euler_loss,
    landmark_loss,
    param_loss,
    vertex_loss,
)

NAMES = ("image00002", "image00004", "image00013", "image00040", "image00112", "image00019")  # frontal and profile
ALWAYS = ("landmark", "depth")  # computed whatever their weight
OPTIONAL = ("param", "vertex", "cross_branch", "euler")


@pytest.fixture(scope="module")
def target(aflw2000_root, reference_net, face_model) -> dict:
    """The teacher's labels of six real crops: lm (6, 68, 3) crop px, params_norm (6, 62), pose_deg (6, 3)."""
    crops = np.stack([read_image_file(aflw2000_root / "crops_120" / f"{n}.jpg") for n in NAMES])
    with torch.inference_mode():
        lm, params = reference_net(torch.from_numpy(crops).permute(0, 3, 1, 2).float())
    return {"lm": lm.clone(), "params": params.clone(), "params_norm": face_model.normalize(params).clone(),
            "pose_deg": pose_deg_from_params(params).clone()}


def _layers(x: torch.Tensor, *offsets: float) -> torch.Tensor:
    """(K, ...) predictions: the target moved by each offset in turn (one per decoder layer)."""
    return torch.stack([x + o for o in offsets])


def _rolled(params: torch.Tensor, roll_deg: float) -> torch.Tensor:
    """params whose pose block is turned about the viewing axis so that decoded roll grows by roll_deg
    (R' = Rz(t) R, and the block holds s R^T, so block' = block Rz(t)^T)."""
    rz = torch.as_tensor(rotation_from_euler(0.0, 0.0, math.radians(roll_deg)), dtype=params.dtype)
    out = params.clone()
    block = params[:, :12].reshape(-1, 3, 4)
    out[:, :12] = torch.cat([block[:, :, :3] @ rz.T, block[:, :, 3:]], -1).reshape(-1, 12)
    return out


def test_landmark_and_depth_terms_on_a_known_offset(target):
    lm = target["lm"]
    pred = _layers(lm, torch.tensor([1.5, -0.5, 2.0]))
    assert landmark_loss(pred, lm).item() == pytest.approx(2.0, abs=1e-4)  # |1.5| + |-0.5|, x and y only
    assert depth_loss(pred, lm).item() == pytest.approx(2.0, abs=1e-4)  # z only
    # human labels: only the weighted (visible) points count
    weight = torch.zeros(lm.shape[:2])
    weight[:, :10] = 1.0
    moved = lm.clone()
    moved[:, 10:, :2] += 50.0  # far off, but weight 0
    assert landmark_loss(_layers(moved, 0.0), lm[..., :2], weight).item() == pytest.approx(0.0, abs=1e-5)
    assert landmark_loss(_layers(moved, 0.0), lm[..., :2]).item() == pytest.approx(100.0 * 58 / 68, rel=1e-4)


def test_param_vertex_cross_branch_and_euler_terms(target, face_model):
    p_norm, lm = target["params_norm"], target["lm"]
    # smooth L1 with beta 0.1: an offset of 0.3 (> beta) costs 0.3 - 0.05
    assert param_loss(_layers(p_norm, 0.3), p_norm).item() == pytest.approx(0.25, abs=1e-5)
    assert param_loss(_layers(p_norm, 0.0), p_norm).item() == 0.0
    lm_3dmm = face_model.landmarks_crop(target["params"])
    # the teacher's own landmarks are its 3DMM decode: vertex loss against them is 0, and 3D L1 of a shift
    assert vertex_loss(_layers(lm_3dmm, 0.0), lm).item() == pytest.approx(0.0, abs=1e-3)
    assert vertex_loss(_layers(lm_3dmm, torch.tensor([1.0, 2.0, -3.0])), lm).item() == pytest.approx(6.0, abs=1e-3)
    assert cross_branch_loss(_layers(lm, torch.tensor([0.0, 4.0, 9.0])), _layers(lm, 0.0)).item() == \
        pytest.approx(4.0, abs=1e-4)  # 2D only: the z offset is ignored
    # Euler: roll turned by 3 deg on every face -> smooth L1 (beta 1) per angle: (3 - 0.5) / 3 angles
    rolled = _rolled(target["params"], 3.0)
    np.testing.assert_allclose((pose_deg_from_params(rolled) - target["pose_deg"]).numpy(),
                               np.tile([0.0, 0.0, 3.0], (len(NAMES), 1)), atol=1e-3)
    assert euler_loss(rolled[None], target["pose_deg"]).item() == pytest.approx(2.5 / 3, abs=1e-3)
    assert euler_loss(target["params"][None], target["pose_deg"]).item() == pytest.approx(0.0, abs=1e-4)


def test_total_is_the_weighted_sum_of_the_named_terms(target, face_model):
    weights = LossConfig(landmark=1.3, depth=0.7, param=0.4, vertex=0.25, cross_branch=0.6, euler=0.02,
                         human_landmark=0.9)
    loss = MultiInformationLoss(weights, face_model)
    lm = _layers(target["lm"], torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.2, 0.1, -0.3]))
    p_norm = _layers(target["params_norm"], 0.2, -0.05)
    human = {"human_lm": target["lm"][..., :2] + 3.0, "human_weight": torch.ones(target["lm"].shape[:2])}
    total, terms = loss(lm, p_norm, {**target, **human})
    assert set(terms) == {*ALWAYS, *OPTIONAL, "human_landmark"}
    assert all(v.item() > 0 for v in terms.values()), terms
    expected = sum(getattr(weights, name) * value for name, value in terms.items())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    # the same predictions with one weight doubled move the total by exactly that term once more
    for name in terms:
        doubled = LossConfig(**{**weights.__dict__, name: 2 * getattr(weights, name)})
        total2, _ = MultiInformationLoss(doubled, face_model)(lm, p_norm, {**target, **human})
        assert total2.item() - total.item() == pytest.approx(getattr(weights, name) * terms[name].item(), rel=1e-4)


@pytest.mark.parametrize("off", OPTIONAL + ("human_landmark",))
def test_a_zero_weight_removes_its_term(target, face_model, off):
    loss = MultiInformationLoss(LossConfig(**{"human_landmark": 1.0, off: 0.0}), face_model)
    human = {"human_lm": target["lm"][..., :2], "human_weight": torch.ones(target["lm"].shape[:2])}
    total, terms = loss(_layers(target["lm"], 1.0), _layers(target["params_norm"], 0.1), {**target, **human})
    assert off not in terms and set(terms) == {*ALWAYS, *OPTIONAL, "human_landmark"} - {off}
    assert torch.isfinite(total)


def test_human_term_needs_labels_as_well_as_a_weight(target, face_model):
    loss = MultiInformationLoss(LossConfig(human_landmark=1.0), face_model)
    _, terms = loss(_layers(target["lm"], 1.0), _layers(target["params_norm"], 0.1), target)
    assert "human_landmark" not in terms
    # landmark and depth stay even at weight 0 (logged, not counted)
    total, terms = MultiInformationLoss(LossConfig(landmark=0.0, depth=0.0, param=0.0, vertex=0.0,
                                                   cross_branch=0.0, euler=0.0), face_model)(
        _layers(target["lm"], 1.0), _layers(target["params_norm"], 0.1), target)
    assert set(terms) == set(ALWAYS) and terms["landmark"].item() > 0 and total.item() == 0.0


def test_every_term_is_the_mean_over_decoder_layers(target, face_model):
    """Each of K layers is supervised equally: a term over (K, ...) equals the mean of the K one-layer terms."""
    loss = MultiInformationLoss(LossConfig(human_landmark=1.0), face_model)
    offsets_lm = (torch.tensor([2.0, 0.0, 1.0]), torch.tensor([-0.5, 1.0, 0.0]), torch.tensor([0.1, 0.1, -4.0]))
    offsets_p = (0.3, -0.02, 0.15)
    weight = torch.ones(target["lm"].shape[:2])
    weight[::2, 30:] = 0.0  # uneven visibility: the layer average must not reweight faces
    human = {"human_lm": target["lm"][..., :2] - 1.0, "human_weight": weight}
    _, stacked = loss(_layers(target["lm"], *offsets_lm), _layers(target["params_norm"], *offsets_p),
                      {**target, **human})
    per_layer = [loss(_layers(target["lm"], a), _layers(target["params_norm"], b), {**target, **human})[1]
                 for a, b in zip(offsets_lm, offsets_p)]
    for name, value in stacked.items():
        mean = sum(t[name] for t in per_layer) / len(per_layer)
        assert value.item() == pytest.approx(mean.item(), rel=1e-5), name
    # and the layers differ, so a loss that read only the last layer would fail this
    assert len({round(t["landmark"].item(), 4) for t in per_layer}) == 3


def test_visibility_term_leaves_unlabelled_points_out():
    import math

    import torch

    from trans3dhead.training.losses import visibility_loss

    logits = torch.zeros(2, 68, 3)
    logits[0, :, 2] = 10.0  # face 0: confidently "visible" everywhere
    target = torch.full((2, 68), -1)
    target[0] = 2
    assert visibility_loss(logits, target) < 1e-3  # only face 0 counts, and it is right
    target[0, :34] = 0  # half its points are self-occluded: cross-entropy ~10 on those
    assert abs(float(visibility_loss(logits, target)) - 5.0) < 0.01
    none = visibility_loss(logits, torch.full((2, 68), -1))
    assert float(none) == 0.0 and not math.isnan(float(none))
