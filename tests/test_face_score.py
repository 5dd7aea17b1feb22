"""The face-score head and its fitting stage (training/face_score.py): fitted on a frozen network it
changes none of the network's other outputs, separates real faces from crops off the face and
non-face images it never saw, and reaches the user as the face quality."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import AFLW_CROPS_ROOT
from test_inference_data import photo_bgr

from trans3dhead.config import Config, DataConfig, FaceScoreFitConfig
from trans3dhead.model.trans3dhead import FaceScoreHead
from trans3dhead.training.face_score import (fit_logistic, non_face_images, split_non_faces, synthetic_textures)


def test_head_features_and_logistic_fit():
    q = torch.randn(5, 130, 8)
    f = FaceScoreHead.features(q)
    assert f.shape == (5, 24)
    assert torch.allclose(f[:, :8], q[:, :68].mean(1)) and torch.allclose(f[:, 8:16], q[:, :68].std(1), atol=1e-6)
    assert torch.allclose(f[:, 16:], q[:, 68:].mean(1))
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(1.0, 1.0, (200, 3)), rng.normal(-1.0, 1.0, (600, 3))] * [1.0, 100.0, 0.0] + [0, 5000, 3]
    y = np.r_[np.ones(200), np.zeros(600)]
    w, b = fit_logistic(x, y, 1e-3)  # weights in the raw features' units: scales and offsets folded in
    z = x @ w + b
    assert (z[:200] > 0).mean() > 0.8 and (z[200:] < 0).mean() > 0.8 and abs(w[2]) < 1e-6


def test_non_face_split_holds_out_the_animal():
    images = non_face_images()
    assert "astronaut" not in images and "camera" not in images and "chelsea" in images
    train, held_out = split_non_faces(images)
    assert not set(train) & set(held_out) and set(train) | set(held_out) == set(images)
    assert "chelsea" in held_out and len(train) >= 10
    textures = synthetic_textures(np.random.default_rng(0))
    assert {"noise", "checker", "rings", "blank0"} <= set(textures)
    assert all(t.shape == (360, 360, 3) and t.dtype == np.uint8 for t in textures.values())


@pytest.fixture(scope="module")
def fitted():
    """A face-score head fitted on 200 real faces and 200 shifted crops (and the non-face images) to
    the default model."""
    from trans3dhead.training.face_score import fit_face_score
    from trans3dhead.weights import read_weights, resolve_weights

    cfg = Config(data=DataConfig(crops_root=str(AFLW_CROPS_ROOT),
                                 exclude=[str(AFLW_CROPS_ROOT / "excluded_near_duplicates_of_aflw2000_3d.csv")],
                                 limit=200),
                 face_score=FaceScoreFitConfig())
    payload = read_weights(resolve_weights("trans3dhead"))
    base = dict(payload, model_config=dict(payload["model_config"], face_score=False),  # the shipped head removed
                state_dict={k: v for k, v in payload["state_dict"].items() if not k.startswith("model.face_score_head.")})
    out, report = fit_face_score(cfg, base, log=lambda s: None)
    return base, out, report


def test_fitted_head_leaves_the_network_and_separates_held_out_data(fitted):
    from trans3dhead.weights import build_network

    payload, out, report = fitted
    assert out["model_config"]["face_score"] is True
    assert set(out["state_dict"]) - set(payload["state_dict"]) == {"model.face_score_head.linear.weight",
                                                                   "model.face_score_head.linear.bias"}
    x = torch.from_numpy(photo_bgr()[56:176, 177:297].transpose(2, 0, 1).copy()).float()[None]
    with torch.no_grad():
        before, after = build_network(payload)(x), build_network(out)(x)
    assert build_network(out).output_names == build_network(payload).output_names + ("face_score",)
    for a, b in zip(before, after):
        assert torch.equal(a, b)  # landmarks, params, visibility: bit for bit
    assert report["validation faces"]["n"] == 200 and report["validation faces"]["median"] > 0.9
    for group in ("validation faces shifted half off", "random crops of held-out non-face images",
                  "LFW non-face patches"):
        assert report[group]["auc"] > 0.97, (group, report[group])
        assert report[group]["median"] < 0.1, (group, report[group])
    assert out["provenance"]["face_score_fit"]["non_face_images"] == split_non_faces(non_face_images())[0]


def test_face_score_becomes_the_quality(fitted, tmp_path):
    from trans3dhead import HeadAligner
    from trans3dhead.inference.detectors import Detection
    from trans3dhead.weights import save_weights

    path = tmp_path / "with_face_score.pt"
    save_weights(path, fitted[1])
    for backend in ("torch", "onnx"):
        (face,) = HeadAligner(model=str(path), backend=backend, threads=1)(photo_bgr())
        assert 0.9 < face.quality <= 1.0
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    aligner = HeadAligner(model=str(path), backend="torch", threads=1)
    box = np.array([[0.0, 0.0, 120.0, 120.0]])
    (off,) = aligner.align_crops(noise, box, [Detection(box=box[0], score=1.0)])
    assert off.quality < 0.1  # a sharp crop of noise: the face score says "no face"
