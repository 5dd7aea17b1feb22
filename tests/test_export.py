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
    by_torch = HeadAligner(model=MODEL, threads=1)(images)
    for model in (str(onnx_file), MODEL):  # an exported file, and a named model exported in memory
        by_onnx = HeadAligner(model=model, backend="onnx", threads=1)(images)
        for a, b in zip(by_torch, by_onnx):
            assert len(a) == len(b) >= 1
            for fa, fb in zip(a, b):
                assert np.abs(fa.landmarks_3d - fb.landmarks_3d).max() < 0.01
                assert abs(fa.yaw_deg - fb.yaw_deg) < 0.01


def test_onnx_backend_errors(tmp_path):
    with pytest.raises(Trans3DHeadError, match="needs backend 'onnx'"):
        HeadAligner(model=str(tmp_path / "m.onnx"))
    with pytest.raises(Trans3DHeadError, match="no such ONNX file"):
        HeadAligner(model=str(tmp_path / "m.onnx"), backend="onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(Trans3DHeadError, match="onnxruntime cannot load"):
        HeadAligner(model=str(bad), backend="onnx")
