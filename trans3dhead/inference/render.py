"""Overlays drawn on the input image: the 68 landmarks, pose axes, the mesh as a wireframe, and
the mesh shaded by a small numpy z-buffer rasteriser (no GPU, no OpenGL).

Everything is drawn in the package image frame; cv2's integer pixel indices are centres, so a
point at x lands at index x - 0.5 (drawn with sub-pixel precision through cv2's shift argument).
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from trans3dhead.face_model.bfm import dense_model
from trans3dhead.inference.results import FaceResult, Mesh

STYLES = ("landmarks", "axes", "wireframe", "pose", "depth")
# Cheap enough for video (a few ms a 640x360 frame); "depth" (the shaded mesh, ~70 ms) on request.
DEFAULT_STYLES = ("wireframe", "landmarks", "axes", "pose")
# The wireframe's vertex-clustering cells, BFM units (the mean face is ~155,000 wide): the finest
# whose cells span at least WIRE_MIN_PX image pixels is drawn, so small faces get fewer edges.
WIRE_CELLS = (6000.0, 9000.0, 13000.0, 20000.0, 30000.0)
WIRE_MIN_PX = 9.0
SHIFT = 4  # cv2 fixed-point bits for sub-pixel drawing
# 68-point groups (0-based): jaw, brows, nose, eyes, mouth; BGR colours
GROUPS = ((range(0, 17), (255, 200, 0)), (range(17, 27), (0, 200, 255)), (range(27, 36), (255, 0, 255)),
          (range(36, 48), (0, 255, 0)), (range(48, 68), (0, 0, 255)))
RENDER_MAX_SIDE = 384  # the shaded face is rasterised at most this large, then resized onto the image


def _fixed(xy) -> tuple[int, int]:
    return (int(round((xy[0] - 0.5) * (1 << SHIFT))), int(round((xy[1] - 0.5) * (1 << SHIFT))))


def _face_size(face: FaceResult) -> float:
    return float(face.crop_box[2] - face.crop_box[0])


def draw_landmarks(image: np.ndarray, face: FaceResult) -> None:
    """Filled dots for the landmarks; where the model says a point is hidden (FaceResult.visible
    false: self-occluded or occluded), a hollow ring of the same colour instead."""
    r = max(1, int(round(_face_size(face) / 150)))
    visible = face.visible
    for idx, color in GROUPS:
        for i in idx:
            shown = visible is None or visible[i]
            cv2.circle(image, _fixed(face.landmarks_2d[i]), (r if shown else r + 1) << SHIFT, color,
                       -1 if shown else 1, cv2.LINE_AA, SHIFT)


def draw_box(image: np.ndarray, face: FaceResult, color=(255, 255, 255)) -> None:
    t = max(1, int(round(_face_size(face) / 200)))
    cv2.rectangle(image, _fixed(face.box[:2]), _fixed(face.box[2:]), color, t, cv2.LINE_AA, SHIFT)


def draw_axes(image: np.ndarray, face: FaceResult) -> None:
    """The head's model axes from the nose tip: x red (toward the image's right on a frontal face,
    the person's left), y green (up), z blue (out of the face); about a third of the crop long."""
    origin = face.landmarks_3d[30]
    m = face.camera_matrix[:, :3]
    length = 0.45 * _face_size(face) / 1.4
    t = max(1, int(round(_face_size(face) / 120)))
    for axis, color in ((2, (255, 0, 0)), (0, (0, 0, 255)), (1, (0, 255, 0))):
        d = m[:, axis] / np.linalg.norm(m[:, axis])
        tip = origin[:2] + length * d[:2]
        cv2.arrowedLine(image, _fixed(origin[:2]), _fixed(tip), color, t, cv2.LINE_AA, SHIFT, 0.15)


def _front_facing(mesh: Mesh) -> np.ndarray:
    v, t = mesh.vertices, mesh.triangles
    return np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])[:, 2] > 0


@lru_cache(maxsize=len(WIRE_CELLS))
def wire_model(cell_size: float = WIRE_CELLS[1]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A light wireframe of the dense mesh by vertex clustering (cells of cell_size BFM units on the
    mean face): one representative vertex per cell (the one nearest the cell's centroid) and the
    edges between cells that a triangle joins. Returns (representative vertex ids (K,), mean shape
    there (K, 3), bases there (K, 3, 50), unit normals of the mean face there (K, 3), edges (E, 2)
    into the K representatives). At 9,000 units: ~800 vertices and ~2,300 edges instead of 76,073
    triangles."""
    u, bases, tri = dense_model()
    cell = np.floor(u / cell_size).astype(np.int64)
    _, label = np.unique(cell, axis=0, return_inverse=True)
    label = label.ravel()
    k = label.max() + 1
    centroid = np.stack([np.bincount(label, weights=u[:, d], minlength=k) for d in range(3)], 1)
    centroid /= np.bincount(label, minlength=k)[:, None]
    dist = np.linalg.norm(u - centroid[label], axis=1)
    order = np.lexsort((dist, label))
    first = np.ones(len(order), bool)
    first[1:] = label[order][1:] != label[order][:-1]
    rep = order[first]  # per cluster, its vertex nearest the centroid (clusters in label order)
    edges = label[np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])]
    edges = np.unique(np.sort(edges[edges[:, 0] != edges[:, 1]], axis=1), axis=0)
    fn = np.cross(u[tri[:, 1]] - u[tri[:, 0]], u[tri[:, 2]] - u[tri[:, 0]])
    normals = np.zeros_like(u, dtype=np.float64)
    for d in range(3):
        normals[:, d] = np.bincount(tri.ravel(), weights=np.repeat(fn[:, d], 3), minlength=len(u))
    normals = normals[rep] / np.maximum(np.linalg.norm(normals[rep], axis=1, keepdims=True), 1e-12)
    return rep, u[rep], bases[rep], normals, edges


def draw_wireframe(image: np.ndarray, face: FaceResult, color=(200, 255, 200), alpha: float = 0.35) -> None:
    """A light wireframe of the face's mesh (wire_model, as fine as the face's size allows), edges
    facing the camera, blended over the image."""
    px_per_unit = face.pose.scale
    cell = next((c for c in WIRE_CELLS if c * px_per_unit >= WIRE_MIN_PX), WIRE_CELLS[-1])
    _, u, bases, normals, edges = wire_model(cell)
    m = face.camera_matrix
    v = face.model_points(u, bases)
    facing = (normals @ m[:, :3].T)[:, 2] > 0  # M = s F R: normals map like directions; +z = to the camera
    e = edges[facing[edges[:, 0]] & facing[edges[:, 1]]]
    if not len(e):
        return
    pts = np.round((v[:, :2] - 0.5) * (1 << SHIFT)).astype(np.int32)
    x0, y0, x1, y1 = _region(image, v)
    if x1 <= x0 or y1 <= y0:
        return
    region = image[y0:y1, x0:x1]
    layer = region.copy()
    offset = np.array([x0, y0]) << SHIFT
    cv2.polylines(layer, list((pts[e] - offset).astype(np.int32)), False, color, 1, cv2.LINE_AA, SHIFT)
    cv2.addWeighted(layer, alpha, region, 1 - alpha, 0, dst=region)


def _region(image: np.ndarray, v: np.ndarray) -> tuple[int, int, int, int]:
    h, w = image.shape[:2]
    return (max(0, math.floor(v[:, 0].min()) - 2), max(0, math.floor(v[:, 1].min()) - 2),
            min(w, math.ceil(v[:, 0].max()) + 2), min(h, math.ceil(v[:, 1].max()) + 2))


def draw_pose_text(image: np.ndarray, face: FaceResult, color=(255, 255, 255)) -> None:
    """yaw / pitch / roll in degrees above the face's box (below it at the image's top edge)."""
    text = f"yaw {face.pose.yaw:.0f} pitch {face.pose.pitch:.0f} roll {face.pose.roll:.0f}"
    scale = float(np.clip(_face_size(face) / 300.0, 0.35, 1.2))
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = int(face.box[0]), int(face.box[1]) - 4
    if y - th < 0:
        y = int(face.box[3]) + th + 4
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def vertex_normals(mesh: Mesh) -> np.ndarray:
    """(N, 3) unit normals: area-weighted sums of the adjacent triangles' normals."""
    v, t = mesh.vertices.astype(np.float64), mesh.triangles
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        n[:, k] = np.bincount(t.ravel(), weights=np.repeat(fn[:, k], 3), minlength=len(v))
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _candidates(p: np.ndarray, lo: np.ndarray, k: int):
    """Pixels (T, k*k, 2) of each triangle's k x k box from lo, and their barycentric weights."""
    off = np.stack(np.meshgrid(np.arange(k), np.arange(k), indexing="xy"), -1).reshape(-1, 2)
    pix = lo[:, None, :] + off[None]
    c = pix + 0.5  # pixel centres
    a, b, d = p[:, None, 0], p[:, None, 1], p[:, None, 2]
    den = (b[..., 0] - a[..., 0]) * (d[..., 1] - a[..., 1]) - (d[..., 0] - a[..., 0]) * (b[..., 1] - a[..., 1])
    den = np.where(np.abs(den) < 1e-12, np.nan, den)  # degenerate triangles cover nothing
    w1 = ((c[..., 0] - a[..., 0]) * (d[..., 1] - a[..., 1]) - (d[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])) / den
    w2 = ((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (c[..., 0] - a[..., 0]) * (b[..., 1] - a[..., 1])) / den
    return pix, np.stack([1.0 - w1 - w2, w1, w2], -1)


def rasterize(vertices_xy: np.ndarray, depth: np.ndarray, values: np.ndarray, triangles: np.ndarray,
              width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer rasterisation at pixel centres.

    vertices_xy: (N, 2) pixel frame; depth: (N,) larger = closer; values: (N,) interpolated per
    pixel (barycentric); triangles: (T, 3). Returns (values (H, W) float32, mask (H, W) bool) of
    the closest triangle at each covered pixel.
    Each triangle is tested at the pixel centres of its k x k bounding box, triangles grouped by
    k, so the cost follows the covered area: callers keep triangles a few pixels wide.
    """
    p = vertices_xy[triangles].astype(np.float64)  # (T, 3, 2)
    lo = np.ceil(p.min(1) - 0.5).astype(np.int64)  # first pixel index whose centre may be inside
    hi = np.floor(p.max(1) - 0.5).astype(np.int64)
    keep = np.all(hi >= lo, 1) & (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < width) & (lo[:, 1] < height)
    ext = (hi - lo).max(1) + 1
    lins, zs, vals = [], [], []
    for k in np.unique(ext[keep]):
        sel = np.nonzero(keep & (ext == k))[0]
        pix, w = _candidates(p[sel], lo[sel], int(k))
        inside = np.all(w >= -1e-6, -1) & np.all(pix <= hi[sel, None, :], -1)
        inside &= (pix[..., 0] >= 0) & (pix[..., 1] >= 0) & (pix[..., 0] < width) & (pix[..., 1] < height)
        ti, ci = np.nonzero(inside)
        tri = triangles[sel[ti]]
        wts = w[ti, ci]
        lins.append(pix[ti, ci, 1] * width + pix[ti, ci, 0])
        zs.append((depth[tri] * wts).sum(1))
        vals.append((values[tri] * wts).sum(1))
    out = np.zeros((height, width), np.float32)
    mask = np.zeros((height, width), bool)
    if not lins or sum(len(x) for x in lins) == 0:
        return out, mask
    lin, z, val = np.concatenate(lins), np.concatenate(zs), np.concatenate(vals)
    order = np.lexsort((-z, lin))  # per pixel, closest first
    lin, val = lin[order], val[order]
    first = np.ones(len(lin), bool)
    first[1:] = lin[1:] != lin[:-1]
    out.ravel()[lin[first]] = val[first]
    mask.ravel()[lin[first]] = True
    return out, mask


def draw_depth(image: np.ndarray, mesh: Mesh, alpha: float = 0.75) -> None:
    """The mesh shaded (Lambert, light from the camera and slightly above-left), blended over the image."""
    v = mesh.vertices.astype(np.float64)
    h, w = image.shape[:2]
    x0, y0 = max(0, math.floor(v[:, 0].min())), max(0, math.floor(v[:, 1].min()))
    x1, y1 = min(w, math.ceil(v[:, 0].max())), min(h, math.ceil(v[:, 1].max()))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    s = min(1.0, RENDER_MAX_SIDE / max(x1 - x0, y1 - y0))
    rw, rh = max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))
    xy = (v[:, :2] - [x0, y0]) * [rw / (x1 - x0), rh / (y1 - y0)]
    light = np.array([-0.3, -0.4, 1.0])
    light /= np.linalg.norm(light)
    shade = 0.25 + 0.75 * np.clip(vertex_normals(mesh) @ light, 0.0, 1.0)
    val, mask = rasterize(xy, v[:, 2], shade, mesh.triangles, rw, rh)
    if (rw, rh) != (x1 - x0, y1 - y0):
        val = cv2.resize(val, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) > 0.5
    region = image[y0:y1, x0:x1]
    grey = np.clip(val * 235.0, 0, 255)[..., None]
    blended = region.astype(np.float32) * (1 - alpha) + grey * alpha
    region[mask] = blended[mask].astype(np.uint8)


def render_overlay(image_bgr: np.ndarray, faces: list[FaceResult], styles=DEFAULT_STYLES) -> np.ndarray:
    """A copy of the image with the chosen styles drawn for every face (depth first, points last)."""
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise ValueError(f"render styles {unknown} are not among {', '.join(STYLES)}")
    out = image_bgr.copy()
    for face in faces:
        if "depth" in styles:
            draw_depth(out, face.mesh())
        if "wireframe" in styles:
            draw_wireframe(out, face)
        draw_box(out, face)
        if "axes" in styles:
            draw_axes(out, face)
        if "landmarks" in styles:
            draw_landmarks(out, face)
        if "pose" in styles:
            draw_pose_text(out, face)
    return out
