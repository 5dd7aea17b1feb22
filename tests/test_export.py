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
    assert [o.name for o in sess.get_outputs()] == ["landmarks", "params", "visibility", "face_score"]
    for b in (1, 4):
        lm, params, vis, face = sess.run(None, {"crops": np.full((b, 3, 120, 120), 100, np.float32)})
        assert lm.shape == (b, 68, 3) and params.shape == (b, 62) and vis.shape == (b, 68, 3)
        assert face.shape == (b,)


def test_torch_and_onnx_backends_agree(onnx_file):
    images = [photo_bgr(), aflw_path(FRONTAL_AFLW[0]), aflw_path(PROFILE_AFLW[0])]
    by_torch = HeadAligner(model=MODEL, backend="torch", threads=1).align_batch(images)
    for model in (str(onnx_file), MODEL):  # an exported file, and a named model's shipped export
        by_onnx = HeadAligner(model=model, backend="onnx", threads=1).align_batch(images)
        for a, b in zip(by_torch, by_onnx):
            assert len(a) == len(b) >= 1
            for fa, fb in zip(a, b):
                assert np.abs(fa.landmarks_3d - fb.landmarks_3d).max() < 0.01
                assert abs(fa.pose.yaw - fb.pose.yaw) < 0.01


def test_onnx_backend_errors(tmp_path):
    with pytest.raises(Trans3DHeadError, match="needs backend 'onnx'"):
        HeadAligner(model=str(tmp_path / "m.onnx"), backend="torch")
    with pytest.raises(Trans3DHeadError, match="no such ONNX file"):
        HeadAligner(model=str(tmp_path / "m.onnx"), backend="onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(Trans3DHeadError, match="onnxruntime cannot load"):
        HeadAligner(model=str(bad), backend="onnx")


@pytest.mark.parametrize("name", ["trans3dhead", "trans3dhead-large"])
def test_shipped_onnx_matches_torch_on_real_crops(name, aflw2000):
    """Each shipped .onnx (what backend="onnx" runs for a named model) reproduces its torch weights
    on real AFLW2000-3D crops at batch 1 and 7: landmarks within 1e-4 px, parameters within 1e-4 of
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
        lm_o, p_o = sess.run(None, {"crops": np.ascontiguousarray(batch)})[:2]
        ref = slice(0, 1) if len(batch) == 1 else slice(1, None)
        assert np.abs(lm_o - lm_t[ref]).max() < 1e-4
        assert (np.abs(p_o - p_t[ref]) / std).max() < 1e-4


TINY = dict(backbone_width=0.25, dim=16, num_layers=3, num_heads=2, ffn_dim=32)


@pytest.mark.parametrize("switches", [dict(), dict(qamem=False), dict(cross_branch=False), dict(marr=False),
                                      dict(landmark_source="fused"), dict(landmark_source="3dmm"),
                                      dict(landmark_source="fused", branch_weight=0.8),
                                      dict(visibility=True), dict(visibility=True, visibility_hidden=8,
                                                                  landmark_source="fused"),
                                      dict(face_score=True), dict(visibility=True, face_score=True,
                                                                  landmark_source="fused")])
def test_export_form_equals_the_module_it_folds(switches):
    """The export form (layer 0 precomputed, static reshapes, folded scales) computes the same
    function as the module as written, for every switch it covers, in torch and after export."""
    import torch

    from trans3dhead.config import ModelConfig
    from trans3dhead.inference.export import export_onnx_bytes, onnx_parity
    from trans3dhead.model.export_form import Trans3DHeadExportForm, export_form
    from trans3dhead.model.trans3dhead import Trans3DHeadPredictor

    torch.manual_seed(0)
    net = Trans3DHeadPredictor(ModelConfig(**TINY, **switches)).eval()
    with torch.no_grad():  # heads start at zero: give them weights so every layer's update counts
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    form = export_form(net)
    assert isinstance(form, Trans3DHeadExportForm)
    x = torch.rand(3, 3, 120, 120) * 255
    with torch.no_grad():
        out_a, out_b = net(x), form(x)
    names = ("landmarks", "params") + ("visibility",) * bool(switches.get("visibility")) + \
        ("face_score",) * bool(switches.get("face_score"))
    assert net.output_names == form.output_names == names
    assert len(out_a) == len(out_b) == len(names)
    a, b = dict(zip(names, out_a)), dict(zip(names, out_b))
    std = net.model.face_model.param_std
    assert (a["landmarks"] - b["landmarks"]).abs().max() < 1e-3
    assert ((a["params"] - b["params"]).abs() / std).max() < 1e-4
    if "visibility" in a:
        vis_a, vis_b = a["visibility"], b["visibility"]
        assert vis_a.shape == (3, 68, 3) and (vis_a - vis_b).abs().max() < 1e-5
        assert torch.allclose(vis_a.sum(-1), torch.ones(3, 68))
        assert vis_a.std() > 0.01  # the randomised head gives the points different answers
    if "face_score" in a:
        assert a["face_score"].shape == (3,) and (a["face_score"] - b["face_score"]).abs().max() < 1e-5
        assert ((a["face_score"] >= 0) & (a["face_score"] <= 1)).all()
    worst = onnx_parity(net, export_onnx_bytes(net))
    assert set(worst) == set(names)
    assert worst["landmarks"] < 1e-3 and worst["params"] < 1e-4
    assert worst.get("visibility", 0.0) < 1e-5 and worst.get("face_score", 0.0) < 1e-5


def test_export_has_no_shape_arithmetic():
    """The default model's export holds no Shape/Gather chains for the dynamic batch and no Einsum
    (each cost more than its arithmetic at batch 1; docs/results.md, "Export speed")."""
    import onnx

    from trans3dhead.weights import NAMED_ONNX, named_asset

    ops = {n.op_type for n in onnx.load(str(named_asset(NAMED_ONNX[MODEL], MODEL))).graph.node}
    assert not ops & {"Shape", "Gather", "Einsum", "ConstantOfShape", "Expand"}, ops


def test_default_backend_is_onnx_and_matches_torch_on_real_photos():
    """HeadAligner() runs the shipped ONNX export (the faster path, docs/results.md); the torch
    backend gives the same faces: crop-frame landmarks within 1e-4 px, params within 1e-4 of
    their spread, so image-frame landmarks within 1e-4 px times the crop's scale."""
    from trans3dhead.face_model.bfm import load_bfm_arrays

    images = [photo_bgr(), aflw_path(FRONTAL_AFLW[0]), aflw_path(PROFILE_AFLW[0])]
    onnx_aligner = HeadAligner(threads=1)
    assert onnx_aligner.backend_name == "onnx"
    by_onnx = onnx_aligner.align_batch(images)
    by_torch = HeadAligner(backend="torch", threads=1).align_batch(images)
    std = load_bfm_arrays()["param_std"]
    for a, b in zip(by_torch, by_onnx):
        assert len(a) == len(b) >= 1
        for fa, fb in zip(a, b):
            np.testing.assert_array_equal(fa.crop_box, fb.crop_box)
            scale = (fa.crop_box[2] - fa.crop_box[0]) / 120
            assert np.abs(fa.landmarks_3d - fb.landmarks_3d).max() < 1e-4 * max(scale, 1.0)
            assert (np.abs(fa.shape_params - fb.shape_params) / std[12:52]).max() < 1e-4
            assert (np.abs(fa.expression_params - fb.expression_params) / std[52:]).max() < 1e-4
            assert abs(fa.pose.yaw - fb.pose.yaw) < 1e-3


def test_export_weights_half_stores_float16_and_loads_into_float32(tmp_path):
    """`export-weights --half` halves the file; the loader copies it into the float32 network, whose
    outputs on real crops then move by rounding only (measured on AFLW2000-3D: pose MAE 3.719 ->
    3.723 deg, NME unchanged at 3 decimals; docs/results.md)."""
    import torch

    from trans3dhead.fileio import read_image_file
    from trans3dhead.weights import load_network, read_weights, resolve_weights

    out = tmp_path / "half.pt"
    assert main(["export-weights", str(resolve_weights(MODEL)), "-o", str(out), "--half"]) == 0
    payload = read_weights(out)
    assert payload["provenance"]["storage"] == "float16"
    for k, v in payload["state_dict"].items():  # the network float16, the two small heads float32
        if v.is_floating_point():
            head = k.startswith(("model.visibility_head.", "model.face_score_head."))
            assert v.dtype == (torch.float32 if head else torch.float16), k
    assert out.stat().st_size < 0.6 * resolve_weights(MODEL).stat().st_size
    import cv2

    crops = [cv2.resize(read_image_file(aflw_path(n))[90:390, 75:375], (120, 120), interpolation=cv2.INTER_AREA)
             for n in FRONTAL_AFLW]  # the face region of real photos
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        full, half = load_network(MODEL)(x), load_network(str(out))(x)
    assert next(load_network(str(out)).parameters()).dtype == torch.float32
    assert (full[0] - half[0]).abs().max() < 0.1 and (full[2] - half[2]).abs().max() < 0.01


def test_half_storage_export_matches_the_half_weights_on_real_crops(tmp_path, aflw2000):
    """`export-onnx --half` stores a float16 weights file's weights as float16 in the ONNX file (cast
    back to float32 in the graph): much smaller than the float32 export, and onnxruntime reproduces
    that weights file's torch network on real crops within 1e-4."""
    from trans3dhead.face_model.bfm import load_bfm_arrays
    from trans3dhead.fileio import read_image_file
    from trans3dhead.weights import NAMED_ONNX, load_network, named_asset, predict_crops

    half_pt, half_onnx = tmp_path / "half.pt", tmp_path / "half.onnx"
    checkpoint = str(named_asset("trans3dhead_default.pt", MODEL))
    assert main(["export-weights", checkpoint, "-o", str(half_pt), "--half"]) == 0
    assert main(["export-onnx", "--model", str(half_pt), "--half", "-o", str(half_onnx)]) == 0
    assert half_onnx.stat().st_size < 0.6 * named_asset(NAMED_ONNX[MODEL], MODEL).stat().st_size
    # a float32 weights file has nothing float16 holds exactly: one clear error, no file
    assert main(["export-onnx", "--model", checkpoint, "--half", "-o", str(tmp_path / "f32.onnx")]) == 2
    assert not (tmp_path / "f32.onnx").exists()
    crops = np.stack([read_image_file(aflw2000.crop_path(i)) for i in range(0, 2000, 250)])
    lm_t, p_t = predict_crops(load_network(str(half_pt)), crops)
    sess = ort.InferenceSession(str(half_onnx), providers=["CPUExecutionProvider"])
    lm_o, p_o = sess.run(None, {"crops": crops.transpose(0, 3, 1, 2).astype(np.float32)})[:2]
    assert np.abs(lm_o - lm_t).max() < 1e-4
    assert (np.abs(p_o - p_t) / load_bfm_arrays()["param_std"]).max() < 1e-4


def test_reference_without_a_shipped_export_runs_on_onnx_exported_at_load():
    """The reference ships no .onnx (the size bound); backend "onnx" exports it in memory at load
    and gives the torch backend's faces on real photos."""
    from trans3dhead.weights import NAMED_ONNX

    assert "3ddfa-mb05" not in NAMED_ONNX
    images = [photo_bgr(), aflw_path(PROFILE_AFLW[0])]
    by_torch = HeadAligner(model="3ddfa-mb05", backend="torch", threads=1).align_batch(images)
    by_onnx = HeadAligner(model="3ddfa-mb05", backend="onnx", threads=1).align_batch(images)
    for a, b in zip(by_torch, by_onnx):
        assert len(a) == len(b) >= 1
        for fa, fb in zip(a, b):
            assert np.abs(fa.landmarks_3d - fb.landmarks_3d).max() < 0.01


def test_shipped_weights_stay_under_the_size_bound():
    """Issue 12: all shipped weights (.pt of every named model, .onnx of the two Trans3DHead models,
    the FaceBoxes detector's .onnx) together under 50 MB; the large model is stored as float16 in both files."""
    import onnx
    import torch

    from trans3dhead.inference.detectors.faceboxes import ONNX_FILE as FACEBOXES_ONNX
    from trans3dhead.weights import NAMED_ONNX, NAMED_WEIGHTS, named_asset

    assert set(NAMED_ONNX) == {"trans3dhead", "trans3dhead-large"} and set(NAMED_ONNX) <= set(NAMED_WEIGHTS)
    large = torch.load(named_asset(NAMED_WEIGHTS["trans3dhead-large"], "trans3dhead-large"), weights_only=False)
    query_weight = large["state_dict"]["model.decoder.layers.0.read.query_weight"]
    assert query_weight.dtype == torch.float16
    graph = onnx.load(str(named_asset(NAMED_ONNX["trans3dhead-large"], "trans3dhead-large"))).graph
    assert sum(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer) > 10
    files = [named_asset(f, name) for table in (NAMED_WEIGHTS, NAMED_ONNX) for name, f in table.items()]
    files.append(named_asset(FACEBOXES_ONNX, "faceboxes"))  # the detector's weights count too
    total = sum(f.stat().st_size for f in files)
    assert total < 50e6, f"{total / 1e6:.1f} MB of shipped weights"
