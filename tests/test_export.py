"""ONNX export with a dynamic batch axis, and torch / onnx backends agreeing on real photos."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from test_inference_data import FRONTAL_AFLW, MODEL, PROFILE_AFLW, aflw_path, photo_bgr

from trans3dhead import HeadAligner
from trans3dhead.cli import main
from trans3dhead.errors import Trans3DHeadError


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export-onnx", "--model", MODEL, "-o", str(path)]) == 0
    return path


def test_export_has_a_dynamic_batch(onnx_file):
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["crops"]
    assert [o.name for o in sess.get_outputs()] == ["landmarks", "params"]
    for b in (1, 4):
        lm, params = sess.run(None, {"crops": np.full((b, 3, 120, 120), 100, np.float32)})
        assert lm.shape == (b, 68, 3) and params.shape == (b, 62)


def test_torch_and_onnx_backends_agree(onnx_file):
    images = [photo_bgr(), aflw_path(FRONTAL_AFLW[0]), aflw_path(PROFILE_AFLW[0])]
    by_torch = HeadAligner(model=MODEL, threads=1).align_batch(images)
    for model in (str(onnx_file), MODEL):  # an exported file, and a named model's shipped export
        by_onnx = HeadAligner(model=model, backend="onnx", threads=1).align_batch(images)
        for a, b in zip(by_torch, by_onnx):
            assert len(a) == len(b) >= 1
            for fa, fb in zip(a, b):
                assert np.abs(fa.landmarks_3d - fb.landmarks_3d).max() < 0.01
                assert abs(fa.pose.yaw - fb.pose.yaw) < 0.01


def test_onnx_backend_errors(tmp_path):
    with pytest.raises(Trans3DHeadError, match="needs backend 'onnx'"):
        HeadAligner(model=str(tmp_path / "m.onnx"))
    with pytest.raises(Trans3DHeadError, match="no such ONNX file"):
        HeadAligner(model=str(tmp_path / "m.onnx"), backend="onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(Trans3DHeadError, match="onnxruntime cannot load"):
        HeadAligner(model=str(bad), backend="onnx")


@pytest.mark.parametrize("name", ["trans3dhead", "3ddfa-mb05"])
def test_shipped_onnx_matches_torch_on_real_crops(name, aflw2000):
    """Each named model's shipped .onnx (what backend="onnx" runs) reproduces its torch weights on
    real AFLW2000-3D crops at batch 1 and 7: landmarks within 1e-4 px, parameters within 1e-4 of
    their spread. A stale export (weights changed, .onnx not rewritten) fails here."""
    from trans3dhead.face_model.bfm import load_bfm_arrays
    from trans3dhead.fileio import read_image_file
    from trans3dhead.weights import NAMED_ONNX, load_network, named_asset, predict_crops

    crops = np.stack([read_image_file(aflw2000.crop_path(i)) for i in range(0, 2000, 250)])
    lm_t, p_t = predict_crops(load_network(name), crops)
    sess = ort.InferenceSession(str(named_asset(NAMED_ONNX[name], name)), providers=["CPUExecutionProvider"])
    std = load_bfm_arrays()["param_std"]
    x = crops.transpose(0, 3, 1, 2).astype(np.float32)
    for batch in (x[:1], x[1:]):
        lm_o, p_o = sess.run(None, {"crops": np.ascontiguousarray(batch)})
        ref = slice(0, 1) if len(batch) == 1 else slice(1, None)
        assert np.abs(lm_o - lm_t[ref]).max() < 1e-4
        assert (np.abs(p_o - p_t[ref]) / std).max() < 1e-4
