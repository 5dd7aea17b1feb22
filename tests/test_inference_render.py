"""The overlay renderer: the z-buffer rasteriser on shapes with known answers, and overlays on the photo."""
from __future__ import annotations

import numpy as np
import pytest
from test_inference_data import MODEL, photo_bgr

from trans3dhead import HeadAligner
from trans3dhead.inference.render import STYLES, rasterize, render_overlay


def test_rasterize_square_and_depth_order():
    # a 4x4 px square from (2, 2) to (6, 6) at depth 0 (value 1) and a triangle over its left half,
    # in front (depth 5, value 2)
    v = np.array([[2, 2], [6, 2], [6, 6], [2, 6], [2, 2], [4, 4], [2, 6]], np.float64)
    depth = np.array([0, 0, 0, 0, 5, 5, 5], np.float64)
    values = np.array([1, 1, 1, 1, 2, 2, 2], np.float64)
    tri = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    out, mask = rasterize(v, depth, values, tri, 10, 10)
    expected = np.zeros((10, 10), bool)
    expected[2:6, 2:6] = True  # pixel centres 2.5 .. 5.5 lie inside
    np.testing.assert_array_equal(mask, expected)
    assert out[3, 2] == 2 and out[4, 2] == 2  # the front triangle wins where it covers
    assert out[3, 5] == 1
    # the back square alone where the front triangle is not
    out_back, _ = rasterize(v, depth, values, tri[:2], 10, 10)
    assert out_back[3, 2] == 1


def test_rasterize_large_and_offscreen_triangles():
    v = np.array([[-50, -50], [200, -50], [-50, 200]], np.float64)
    out, mask = rasterize(v, np.zeros(3), np.ones(3), np.array([[0, 1, 2]]), 40, 30)
    assert mask.all() and np.allclose(out, 1)
    out, mask = rasterize(v + 1000, np.zeros(3), np.ones(3), np.array([[0, 1, 2]]), 40, 30)
    assert not mask.any()


@pytest.mark.parametrize("styles", [STYLES, ("depth",), ("wireframe",)])
def test_overlays_draw_on_the_face_only(styles):
    img = photo_bgr()
    (face,) = HeadAligner(model=MODEL, threads=1)(img)
    out = render_overlay(img, [face], styles)
    assert out.shape == img.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - img.astype(int)).sum(-1) > 30
    side = face.crop_box[2] - face.crop_box[0]
    x0, y0, x1, y1 = (face.crop_box + np.array([-1, -1, 1, 1]) * 0.15 * side).astype(int)
    inside = changed[max(0, y0):y1, max(0, x0):x1].mean()
    outside = changed.sum() - changed[max(0, y0):y1, max(0, x0):x1].sum()
    assert inside > 0.15 and outside < 0.002 * changed.size, (inside, outside)
    np.testing.assert_array_equal(img, photo_bgr())  # the input is not drawn on


def test_wireframe_is_a_light_edge_set_not_a_wash():
    """The decimated wireframe (vertex clustering, ~800 vertices, ~2,300 edges) leaves most of the
    face visible: inside the mesh's outline only a minority of pixels change, but many do."""
    from trans3dhead.inference.render import wire_model

    rep, _, _, _, edges = wire_model()
    assert 300 < len(rep) < 2000 and 1000 < len(edges) < 6000
    img = photo_bgr()
    (face,) = HeadAligner(model=MODEL, threads=1)(img)
    out = render_overlay(img, [face], ("wireframe",))
    changed = np.abs(out.astype(int) - img.astype(int)).sum(-1) > 30
    v = face.mesh().vertices
    x0, y0, x1, y1 = int(v[:, 0].min()), int(v[:, 1].min()), int(v[:, 0].max()), int(v[:, 1].max())
    inside = changed[y0:y1, x0:x1].mean()
    assert 0.03 < inside < 0.5, inside


def test_pose_text_is_drawn_above_the_box():
    img = photo_bgr()
    (face,) = HeadAligner(model=MODEL, threads=1)(img)
    out = render_overlay(img, [face], ("pose",))
    changed = np.abs(out.astype(int) - img.astype(int)).sum(-1) > 30
    x0, y0 = int(face.box[0]), int(face.box[1])
    assert changed[max(0, y0 - 30):y0, x0:x0 + 100].mean() > 0.05
