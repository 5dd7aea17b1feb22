"""Per-landmark visibility: the head and its fitting stage (training/visibility.py), the report's
metrics, and the visibility a user gets (FaceResult, JSON, overlay) from a model that has it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import AFLW_CROPS_ROOT, DATA_ROOT
from test_inference_data import photo_bgr

from trans3dhead.config import Config, DataConfig, VisibilityFitConfig
from trans3dhead.evaluation.metrics import roc_auc
from trans3dhead.face_model.landmarks68 import FLIP_PERM_68, VISIBILITY_CLASSES
from trans3dhead.training.visibility import fit_visibility, view_crops, visibility_report


def test_roc_auc_counts_ranks_and_ties():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([1.0, 1.0, 1.0], [0, 1, 1]) == 0.5  # all tied: chance
    assert roc_auc([0.2, 0.9], [0, 1]) == 1.0 and roc_auc([0.9, 0.2], [0, 1]) == 0.0
    assert np.isnan(roc_auc([0.3, 0.4], [1, 1]))  # no negatives: undefined


def test_report_of_perfect_and_of_uninformed_probabilities():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, (40, 68))
    yaw = np.linspace(-90, 90, 40)
    perfect = np.eye(3)[targets]
    r = visibility_report(perfect, targets, yaw)
    assert r["all"]["accuracy"] == 1.0 and r["all"]["visible_auc"] == 1.0
    assert all(r["all"][c]["auc"] == 1.0 and r["all"][c]["recall"] == 1.0 for c in VISIBILITY_CLASSES)
    assert sum(r[b]["faces"] for b in ("[0,30]", "(30,60]", ">60")) == 40
    flat = np.full((40, 68, 3), 1 / 3)
    assert visibility_report(flat, targets, yaw)["all"]["visible_auc"] == 0.5


def test_mirrored_view_moves_the_classes_with_the_points():
    crops = np.random.default_rng(1).integers(0, 255, (2, 120, 120, 3), dtype=np.uint8)
    targets = np.tile(np.arange(68) % 3, (2, 1))
    mirrored, t = view_crops(crops, targets, 1, Config())
    assert np.array_equal(mirrored[:, :, ::-1], crops) and np.array_equal(t, targets[:, FLIP_PERM_68])
    augmented, t2 = view_crops(crops, targets, 2, Config())
    assert augmented.shape == crops.shape and not np.array_equal(augmented, crops)
    for row in t2:  # each augmented crop is flipped or not; its classes follow
        assert np.array_equal(row, targets[0]) or np.array_equal(row, targets[0, FLIP_PERM_68])


@pytest.fixture(scope="module")
def fitted():
    """A visibility head fitted on 150 real labelled crops (2 views, 20 short epochs) to the default model."""
    from trans3dhead.weights import read_weights, resolve_weights

    cfg = Config(data=DataConfig(crops_root=str(AFLW_CROPS_ROOT), merl_rav_root=str(DATA_ROOT / "merl_rav"),
                                 exclude=[str(AFLW_CROPS_ROOT / "excluded_near_duplicates_of_aflw2000_3d.csv")],
                                 limit=150),
                 visibility=VisibilityFitConfig(views=2, epochs=20, hidden=16, batch_size=2048, lr=1e-2))
    payload = read_weights(resolve_weights("trans3dhead"))
    out, reports = fit_visibility(cfg, payload, log=lambda s: None)
    return payload, out, reports


def test_fitted_head_leaves_the_network_and_learns_something(fitted):
    from trans3dhead.weights import build_network

    payload, out, reports = fitted
    assert out["model_config"]["visibility"] and out["model_config"]["visibility_hidden"] == 16
    fit = out["provenance"]["visibility_fit"]
    assert fit["train_crops"] == 150 and fit["val_crops"] == 150 and fit["exclusions"][0]["count"] == 433
    base = {k: v for k, v in payload["state_dict"].items() if not k.startswith("model.visibility_head.")}
    assert all(torch.equal(out["state_dict"][k], v) for k, v in base.items())
    x = torch.rand(2, 3, 120, 120) * 255
    with torch.no_grad():
        lm_a, p_a = build_network(payload)(x)[:2]
        lm_b, p_b, vis = build_network(out)(x)[:3]
    assert torch.equal(lm_a, lm_b) and torch.equal(p_a, p_b)
    assert vis.shape == (2, 68, 3) and torch.allclose(vis.sum(-1), torch.ones(2, 68))
    # 150 crops already rank visible points above hidden ones on held-out crops
    assert reports["visibility head"]["all"]["visible_auc"] > 0.7
    assert reports["visibility head"]["all"]["self_occluded"]["auc"] > 0.8


def test_visibility_reaches_the_user(fitted, tmp_path):
    """FaceResult.visibility / .visible, the JSON "visibility" block (schema 3) and the overlay's
    hollow rings for hidden points, from a weights file with the head, on both backends."""
    from trans3dhead import HeadAligner
    from trans3dhead.inference.render import draw_landmarks
    from trans3dhead.inference.writers import SCHEMA_VERSION, face_to_dict
    from trans3dhead.weights import save_weights

    path = tmp_path / "with_head.pt"
    save_weights(path, fitted[1])
    faces = {b: HeadAligner(model=str(path), backend=b, threads=1)(photo_bgr()) for b in ("torch", "onnx")}
    face = faces["torch"][0]
    assert face.visibility.shape == (68,) and face.visibility_probs.shape == (68, 3)
    assert np.allclose(face.visibility_probs.sum(1), 1.0, atol=1e-5)
    assert np.abs(faces["onnx"][0].visibility_probs - face.visibility_probs).max() < 1e-4
    doc = face_to_dict(face)
    assert SCHEMA_VERSION == 3 and set(doc["visibility"]) == set(VISIBILITY_CLASSES)
    assert np.allclose(doc["visibility"]["visible"], face.visibility, atol=1e-4)
    assert HeadAligner(model="3ddfa-mb05", threads=1)(photo_bgr())[0].visibility is None
    # the overlay draws a hidden point differently from a visible one
    probs = np.tile([0.0, 0.0, 1.0], (68, 1))
    shown, hidden = photo_bgr().copy(), photo_bgr().copy()
    draw_landmarks(shown, face.with_updates(visibility_probs=probs))
    probs[30] = [1.0, 0.0, 0.0]
    draw_landmarks(hidden, face.with_updates(visibility_probs=probs))
    x, y = face.landmarks_2d[30].astype(int)
    assert not np.array_equal(shown[y - 6:y + 6, x - 6:x + 6], hidden[y - 6:y + 6, x - 6:x + 6])
    assert np.array_equal(shown[:y - 20], hidden[:y - 20])  # nothing else changed above it


@pytest.mark.parametrize("hidden", [0, 8])
def test_standardised_fit_folds_into_the_head_exactly(hidden):
    """visibility.standardise: a head applied to standardised states, folded, computes the same
    function of the raw states (both head forms), with the moments of float16-stored states."""
    from trans3dhead.model.trans3dhead import VisibilityHead
    from trans3dhead.training.visibility import feature_moments, fold_standardisation

    torch.manual_seed(0)
    states = (torch.randn(50, 68, 16) * torch.linspace(2, 20, 16) + torch.linspace(-5, 5, 16)).half()
    mean, std = feature_moments(states, chunk=7)
    flat = states.reshape(-1, 16).double()
    assert torch.allclose(mean.double(), flat.mean(0), atol=1e-5)
    assert torch.allclose(std.double(), flat.std(0, unbiased=False), rtol=1e-5)
    dead = states.clone()
    dead[..., 3] = 0.25  # a constant feature: its spread is floored, not ~0
    assert feature_moments(dead)[1][3] >= 0.1 * feature_moments(dead)[1].median()
    head = VisibilityHead(16, hidden)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn_like(p))
        before = head((states.float() - mean) / std)
        fold_standardisation(head, mean, std)
        after = head(states.float())
    assert (before - after).abs().max() < 1e-3 * before.abs().max()
