"""Trans3DHead network: shapes and frames, gradients, each ablation switch, batch consistency,
and overfitting real crops."""

import numpy as np
import pytest
import torch
from conftest import DATA_ROOT

from trans3dhead.fileio import read_image_file
from trans3dhead.model.qamem import QAMemRead, SharedValueRead
from trans3dhead.config import ModelConfig
from trans3dhead.model.trans3dhead import Trans3DHeadPredictor, build_model

DATA = DATA_ROOT
TINY = dict(backbone_width=0.25, dim=16, num_layers=2, num_heads=2, ffn_dim=32)


def _randomise_heads(model):
    torch.manual_seed(1)
    for head in [*model.decoder.heads.lm_heads, *model.decoder.heads.param_heads]:
        torch.nn.init.normal_(head.weight, std=0.1)
    with torch.no_grad():
        model.decoder.heads.param_embed.normal_(std=0.1)


def _real_crops(n=8):
    names = sorted((DATA / "aflw_crops" / "images").glob("*.jpg"))[:n]
    return torch.from_numpy(np.stack([read_image_file(p) for p in names])).permute(0, 3, 1, 2).float()


def test_shapes_and_mean_face_start():
    model = build_model(ModelConfig(**TINY)).eval()
    lm, params = model(torch.rand(3, 3, 120, 120) * 255)
    assert lm.shape == (2, 3, 68, 3) and params.shape == (2, 3, 62)
    # Heads start at zero, so with MARR every layer's estimate is the mean face in crop pixels.
    mean = model.face_model.mean_landmarks_crop(120)
    torch.testing.assert_close(lm[0, 0], mean, atol=1e-4, rtol=0)
    assert torch.all(params == 0)
    assert (mean[:, :2] > 0).all() and (mean[:, :2] < 120).all()


def test_every_parameter_gets_a_gradient():
    model = build_model(ModelConfig(**TINY))
    _randomise_heads(model)
    lm, params = model(torch.rand(2, 3, 120, 120) * 255)
    (lm.square().mean() + params.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_qamem_switch_replaces_per_query_projections():
    on = build_model(ModelConfig(**TINY, qamem=True))
    off = build_model(ModelConfig(**TINY, qamem=False))
    assert all(isinstance(layer.read, QAMemRead) for layer in on.decoder.layers)
    assert all(isinstance(layer.read, SharedValueRead) for layer in off.decoder.layers)
    assert not any("query_weight" in n for n, _ in off.named_parameters())
    assert on.decoder.layers[0].read.query_weight.shape == (130, 16, 16)


def test_marr_switch_regresses_absolute_values():
    model = build_model(ModelConfig(**TINY, marr=False)).eval()
    lm, params = model(torch.rand(1, 3, 120, 120) * 255)
    assert torch.all(lm == 0) and torch.all(params == 0)  # zero heads, no mean face to add to
    _randomise_heads(model)
    lm, _ = model(torch.rand(1, 3, 120, 120) * 255)
    marr = build_model(ModelConfig(**TINY, marr=True)).eval()
    marr.load_state_dict(model.state_dict())
    lm_marr, _ = marr(torch.rand(1, 3, 120, 120) * 255)
    assert not torch.allclose(lm, lm_marr)


@pytest.mark.parametrize("cross_branch", [True, False])
def test_cross_branch_switch(cross_branch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, cross_branch=cross_branch)).eval()
    _randomise_heads(model)
    x = torch.rand(1, 3, 120, 120) * 255
    lm_a, _ = model(x)
    with torch.no_grad():
        model.decoder.query_content[68:] += 1.0  # change only the 3DMM branch's queries
    lm_b, _ = model(x)
    changed = not torch.allclose(lm_a[0], lm_b[0], atol=1e-6)
    assert changed == cross_branch


def test_single_image_equals_batched():
    model = build_model(ModelConfig(**TINY)).eval()
    _randomise_heads(model)
    x = torch.rand(4, 3, 120, 120) * 255
    lm_b, p_b = model(x)
    lm_1, p_1 = model(x[2:3])
    torch.testing.assert_close(lm_1[:, 0], lm_b[:, 2], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(p_1[:, 0], p_b[:, 2], atol=1e-4, rtol=1e-4)


def test_predictor_landmark_sources_and_no_nans():
    cfg = ModelConfig(**TINY, landmark_source="fused")
    net = Trans3DHeadPredictor(cfg).eval()
    lm, params = net(_real_crops(2))
    assert lm.shape == (2, 68, 3) and params.shape == (2, 62)
    assert torch.isfinite(lm).all() and torch.isfinite(params).all()


@pytest.mark.slow
def test_overfits_real_crops_below_one_pixel():
    """8 real training crops, teacher landmarks as targets: under 1 px within a few hundred steps."""
    from trans3dhead.training.labels import Teacher
    from trans3dhead.weights import load_network

    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    crops = _real_crops(8)
    target = Teacher(load_network("3ddfa-mb05"))(crops)["lm"]
    model = build_model(ModelConfig(dim=32, num_layers=2, num_heads=2, ffn_dim=64))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for step in range(400):
        lm, _ = model(crops)
        loss = (lm - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        err = (lm[-1, ..., :2] - target[..., :2]).norm(dim=-1).mean().item()
        if err < 1.0:
            break
    assert err < 1.0, f"mean 2D error still {err:.2f} px after {step + 1} steps"


def test_shipped_default_matches_its_onnx_export_on_real_crops():
    """Issue 6: exported with a dynamic batch axis, the default model matches PyTorch within 1e-4."""
    import onnxruntime as ort

    from trans3dhead.inference.export import export_onnx_bytes
    from trans3dhead.weights import load_network

    net = load_network("trans3dhead")
    sess = ort.InferenceSession(export_onnx_bytes(net), providers=["CPUExecutionProvider"])
    crops = _real_crops(5)
    for batch in (crops[:1], crops):
        with torch.inference_mode():
            lm, params, vis, face = net(batch)
        lm_onnx, params_onnx, vis_onnx, face_onnx = sess.run(None, {"crops": batch.numpy()})
        assert np.abs(lm_onnx - lm.numpy()).max() < 1e-4
        assert np.abs(vis_onnx - vis.numpy()).max() < 1e-4
        assert face.shape == (len(batch),) and np.abs(face_onnx - face.numpy()).max() < 1e-4
        # raw parameters span 1e-4..1e5; compare in units of each parameter's spread
        std = net.model.face_model.param_std.numpy()
        assert (np.abs(params_onnx - params.numpy()) / std).max() < 1e-4
