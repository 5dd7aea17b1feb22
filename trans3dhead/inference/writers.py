"""Output files of `trans3dhead predict`: the per-image JSON document (schema version 3, see
docs/output_schema.md), JSON Lines for a folder or a video, and OBJ / PLY meshes. Every file is
written to a temporary name beside its target and renamed when complete (fileio.atomic_path),
so a failed run never leaves a half-written file.

Coordinates in every file are the package image frame: pixels, x right, y down, origin at the
top-left corner of the top-left pixel; z is depth on the same pixel scale, larger = closer.
"""
from __future__ import annotations

import io
import json

import numpy as np

from trans3dhead.fileio import AtomicOutput, atomic_path, atomic_write_text
from trans3dhead.face_model.landmarks68 import VISIBILITY_CLASSES
from trans3dhead.inference.results import FaceResult, Mesh, Pose

SCHEMA = "trans3dhead/predict"
# 2: the pose block holds scale, translation, quaternion and rotation vector; angles yaw/pitch/roll
#    (degrees); faces carry "quality". 3: faces carry "visibility" (per-landmark class probabilities).
SCHEMA_VERSION = 3
COORDINATES = ("image pixels: x right, y down, origin at the top-left corner of the top-left pixel; "
               "z depth on the same scale, larger = closer to the camera")
PIXEL_DECIMALS = 3
SIGNIFICANT = 7  # for parameters, whose magnitudes span 1e-4 .. 1e5


def _px(a) -> list:
    return np.round(np.asarray(a, np.float64), PIXEL_DECIMALS).tolist()


def _sig(a) -> list:
    return [float(f"{v:.{SIGNIFICANT}g}") for v in np.asarray(a, np.float64).ravel()]


def pose_to_dict(pose: Pose) -> dict:
    """The "pose" block: the fields of FaceResult.pose, angles in degrees."""
    return {"yaw": round(pose.yaw, 3), "pitch": round(pose.pitch, 3), "roll": round(pose.roll, 3),
            "rotation": np.round(pose.rotation, 6).tolist(), "quaternion_wxyz": np.round(pose.quaternion, 6).tolist(),
            "rotation_vector": np.round(pose.rotation_vector, 6).tolist(), "scale": float(f"{pose.scale:.{SIGNIFICANT}g}"),
            "translation": _px(pose.translation)}


def face_to_dict(face: FaceResult) -> dict:
    """One face as plain JSON types (schema version 3)."""
    out = {
        "box": _px(face.box), "score": round(float(face.score), 5),
        "quality": None if face.quality is None else round(float(face.quality), 4), "crop_box": _px(face.crop_box),
        "landmarks_2d": _px(face.landmarks_2d), "landmarks_3d": _px(face.landmarks_3d),
        "pose": pose_to_dict(face.pose),
        "camera_matrix": [_sig(row) for row in face.camera_matrix],
        "shape_params": _sig(face.shape_params), "expression_params": _sig(face.expression_params),
        "params": _sig(face.params),
        "visibility": None if face.visibility_probs is None else
        {name: np.round(face.visibility_probs[:, c], 4).tolist() for c, name in enumerate(VISIBILITY_CLASSES)},
    }
    if face.track_id is not None:
        out["track_id"] = int(face.track_id)
    return out


def image_document(source: str, image_size: tuple[int, int], faces: list[FaceResult] | None, run_info: dict,
                   error: str | None = None, frame_index: int | None = None, time_s: float | None = None,
                   meshes: list[str] | None = None) -> dict:
    """The JSON document for one image or video frame. image_size: (width, height)."""
    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "source": source}
    if frame_index is not None:
        doc["frame_index"] = int(frame_index)
        doc["time_s"] = round(float(time_s), 6) if time_s is not None else None
    if error is not None:
        doc["error"] = error
        return doc
    doc.update({"image_size": {"width": int(image_size[0]), "height": int(image_size[1])}, **run_info,
                "coordinates": COORDINATES, "faces": [face_to_dict(f) for f in faces or []]})
    if meshes is not None:  # asked for (--mesh): a list, empty where no face was found
        doc["meshes"] = meshes
    return doc


def write_json(path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


class JsonLinesWriter(AtomicOutput):
    """One JSON document per line, written to a temporary file and renamed by close(); abort()
    (or an exception inside a with-block) removes it instead."""

    def __init__(self, path):
        super().__init__(path, suffix=".jsonl")
        self._file = open(self.tmp, "w")
        self.count = 0

    def write(self, doc: dict) -> None:
        self._file.write(json.dumps(doc, separators=(",", ":")) + "\n")
        self.count += 1

    def _release(self) -> None:
        self._file.close()


def vertex_colors(image_bgr: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB sampled bilinearly from the image at the vertices' x, y (pixel frame,
    edges clamped)."""
    h, w = image_bgr.shape[:2]
    x = np.clip(vertices[:, 0].astype(np.float64) - 0.5, 0, w - 1)  # pixel-centre indices
    y = np.clip(vertices[:, 1].astype(np.float64) - 0.5, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(np.int64), w - 2), np.minimum(np.floor(y).astype(np.int64), h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    px = lambda yy, xx: image_bgr[yy, xx].astype(np.float64)  # noqa: E731
    top = px(y0, x0) * (1 - fx) + px(y0, x0 + 1) * fx
    bottom = px(y0 + 1, x0) * (1 - fx) + px(y0 + 1, x0 + 1) * fx
    bgr = np.round(top * (1 - fy) + bottom * fy)
    return bgr[:, ::-1].astype(np.uint8)


MESH_HEADER = ("trans3dhead mesh: vertices in image pixels (x right, y down, origin at the top-left "
               "corner; z depth, larger = closer); triangles wound with (v1-v0)x(v2-v0) toward +z")


def write_obj(path, mesh: Mesh, colors: np.ndarray | None = None) -> None:
    """Wavefront OBJ; colours (N, 3) uint8 RGB become the common 'v x y z r g b' extension."""
    v = mesh.vertices.astype(np.float64)
    buf = io.StringIO()
    buf.write(f"# {MESH_HEADER}\n")
    if colors is not None:
        table = np.concatenate([v, colors.astype(np.float64) / 255.0], 1)
        np.savetxt(buf, table, fmt="v %.4f %.4f %.4f %.4f %.4f %.4f")
    else:
        np.savetxt(buf, v, fmt="v %.4f %.4f %.4f")
    np.savetxt(buf, mesh.triangles.astype(np.int64) + 1, fmt="f %d %d %d")
    atomic_write_text(path, buf.getvalue())


def write_ply(path, mesh: Mesh, colors: np.ndarray | None = None) -> None:
    """Binary little-endian PLY: float32 x, y, z (+ uchar red, green, blue), int32 triangles."""
    n, t = len(mesh.vertices), len(mesh.triangles)
    vfields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        vfields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(n, dtype=vfields)
    for k, name in enumerate("xyz"):
        vert[name] = mesh.vertices[:, k]
    if colors is not None:
        for k, name in enumerate(("red", "green", "blue")):
            vert[name] = colors[:, k]
    face = np.empty(t, dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"] = 3
    face["idx"] = mesh.triangles
    header = ["ply", "format binary_little_endian 1.0", f"comment {MESH_HEADER}", f"element vertex {n}",
              "property float x", "property float y", "property float z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {t}", "property list uchar int vertex_indices", "end_header"]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii"))
            f.write(vert.tobytes())
            f.write(face.tobytes())


MESH_WRITERS = {"obj": write_obj, "ply": write_ply}
