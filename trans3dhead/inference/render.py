"""Overlays drawn on the input image: the 68 landmarks, pose axes, the mesh as a wireframe, and
the mesh shaded by a small numpy z-buffer rasteriser (no GPU, no OpenGL).

Everything is drawn in the package image frame; cv2's integer pixel indices are centres, so a
point at x lands at index x - 0.5 (drawn with sub-pixel precision through cv2's shift argument).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from trans3dhead.inference.results import FaceResult, Mesh

STYLES = ("landmarks", "axes", "wireframe", "depth")
DEFAULT_STYLES = ("depth", "landmarks", "axes")
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
    r = max(1, int(round(_face_size(face) / 150)))
    for idx, color in GROUPS:
        for i in idx:
            cv2.circle(image, _fixed(face.landmarks_2d[i]), r << SHIFT, color, -1, cv2.LINE_AA, SHIFT)


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


def draw_wireframe(image: np.ndarray, mesh: Mesh, color=(200, 255, 200), alpha: float = 0.5) -> None:
    """Edges of the triangles that face the camera, blended over the image."""
    tri = mesh.triangles[_front_facing(mesh)]
    pts = np.round((mesh.vertices[:, :2] - 0.5) * (1 << SHIFT)).astype(np.int32)[tri]
    layer = image.copy()
    cv2.polylines(layer, list(pts), True, color, 1, cv2.LINE_8, SHIFT)
    cv2.addWeighted(layer, alpha, image, 1 - alpha, 0, dst=image)


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
        mesh = face.mesh() if ("depth" in styles or "wireframe" in styles) else None
        if "depth" in styles:
            draw_depth(out, mesh)
        if "wireframe" in styles:
            draw_wireframe(out, mesh)
        draw_box(out, face)
        if "axes" in styles:
            draw_axes(out, face)
        if "landmarks" in styles:
            draw_landmarks(out, face)
    return out
