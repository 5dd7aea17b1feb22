"""What inference returns: FaceResult (one face, every quantity in image pixels), its Pose and
Mesh, and the per-file and per-frame wrappers FileResult and FrameResult.

Frames: the package image frame (pixels, x right, y down, origin at the top-left corner of the
top-left pixel); z is depth in the same pixel units, larger = closer to the camera. The dense
model and pose follow face_model/ (docs/conventions.md and docs/output_schema.md state every
formula).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np

from trans3dhead.face_model.bfm import dense_model, keypoint_model
from trans3dhead.face_model.frames import FLIP_Y, params_from_camera
from trans3dhead.face_model.pose import (euler_from_rotation, euler_near_profile, quaternion_from_rotation,
                                         rotation_from_euler, rotation_vector_from_rotation, split_pose)


class Mesh(NamedTuple):
    """vertices: (38365, 3) float32, image pixels (z depth, larger = closer);
    triangles: (76073, 3) int32 vertex indices, wound so that (v1 - v0) x (v2 - v0) points out of
    the face (toward +z, the camera, where the face is seen from the front).

    A named tuple: ``vertices, triangles = face.mesh()`` unpacks it."""

    vertices: np.ndarray
    triangles: np.ndarray


@dataclass(frozen=True)
class Pose:
    """Head pose of one face, the JSON "pose" block as an object.

    yaw, pitch, roll: degrees, AFLW2000-3D's Pose_Para convention: rotation = Rz(roll) Ry(yaw)
        Rx(pitch) (docs/conventions.md gives the signs). Below |yaw| = 50 deg they are the exact
        decomposition of the rotation; nearer profile, where the rotation fixes only pitch -+ roll,
        the split that reads a nod as pitch (face_model/pose.py euler_near_profile), which
        rebuilds the rotation within ~6 deg near profile (docs/conventions.md).
    rotation: (3, 3) orthonormal: the network's rotation (3DDFA's rule, exactly orthonormalised);
        quaternion and rotation_vector are the same rotation with no Euler order.
    scale: image pixels per BFM model unit.
    translation: (3,) image pixels, where the model origin lands (x, y; z on the landmarks' depth scale).
    """

    yaw: float
    pitch: float
    roll: float
    rotation: np.ndarray = field(repr=False)
    scale: float = field(repr=False)
    translation: np.ndarray = field(repr=False)

    @property
    def angles(self) -> np.ndarray:
        """(3,) yaw, pitch, roll in degrees."""
        return np.array([self.yaw, self.pitch, self.roll])

    @property
    def quaternion(self) -> np.ndarray:
        """(4,) w, x, y, z of the rotation (w >= 0): the same pose with no Euler order and no gimbal
        lock (near |yaw| = 90 deg pitch and roll are coupled; the quaternion is not)."""
        return quaternion_from_rotation(self.rotation)

    @property
    def rotation_vector(self) -> np.ndarray:
        """(3,) rotation axis times angle, radians (as cv2.Rodrigues gives it)."""
        return rotation_vector_from_rotation(self.rotation)

    def __repr__(self) -> str:
        return f"Pose(yaw={self.yaw:.1f}, pitch={self.pitch:.1f}, roll={self.roll:.1f})"


def pose_from_camera(camera_matrix: np.ndarray) -> Pose:
    """3DDFA's rule (split_pose) gives the rotation, so published pose figures reproduce; its
    matrix is not exactly orthonormal, so the rotation is rebuilt from its exact Euler angles.
    The reported angles are euler_near_profile's (the exact ones below |yaw| = 50 deg)."""
    scale, rot, _ = split_pose(FLIP_Y @ camera_matrix)
    rotation = rotation_from_euler(*euler_from_rotation(rot))
    yaw, pitch, roll = (float(a) for a in euler_near_profile(rot))
    return Pose(yaw=math.degrees(yaw), pitch=math.degrees(pitch), roll=math.degrees(roll),
                rotation=rotation, scale=float(scale),
                translation=np.asarray(camera_matrix, np.float64)[:, 3].copy())


@dataclass(frozen=True, repr=False, eq=False)
class FaceResult:
    """One face, every point in image pixels. Frozen: use with_updates() for a changed copy.

    box: (4,) x0, y0, x1, y1 from the detector (or given). score: detector confidence.
    crop_box: (4,) the square box the final crop was taken from.
    landmarks_3d: (68, 3) float64 x, y, z (z depth, larger = closer; same pixel scale).
    camera_matrix: (3, 4) float64 A: X_img = A[:, :3] @ S + A[:, 3] for BFM model-space points S;
        A[:, :3] = scale * diag(1, -1, 1) @ rotation.T up to the network's non-orthogonality.
    shape_params: (40,), expression_params: (10,) BFM coefficients (3DDFA scaling).
    track_id: the face's track across video frames (None for still images).
    quality: how face-like the crop is, in [0, 1] (higher = more face-like): branch agreement x crop
        sharpness (inference/quality.py); None for models without a landmark branch (3ddfa-mb05).
    visibility_probs: (68, 3) float64 per landmark the probabilities of MERL-RAV's classes
        self-occluded (turned away from the camera), occluded (hidden by something else; the
        position is an estimate) and visible (VISIBILITY_CLASSES order); None for models without
        a visibility head. ``visibility`` is its last column, ``visible`` that at >= 0.5.
    pose: yaw, pitch, roll (degrees), rotation, scale, translation (a Pose).
    """

    box: np.ndarray
    score: float
    crop_box: np.ndarray
    landmarks_3d: np.ndarray
    camera_matrix: np.ndarray
    shape_params: np.ndarray
    expression_params: np.ndarray
    track_id: int | None = None
    quality: float | None = None
    visibility_probs: np.ndarray | None = None

    def __repr__(self) -> str:
        x0, y0, x1, y1 = (float(v) for v in self.box)
        track = "" if self.track_id is None else f", track_id={self.track_id}"
        quality = "" if self.quality is None else f", quality={self.quality:.3f}"
        return (f"FaceResult(box=[{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}], score={self.score:.3f}{quality}, "
                f"{self.pose!r}{track})")

    @cached_property
    def pose(self) -> Pose:
        return pose_from_camera(self.camera_matrix)

    @property
    def visibility(self) -> np.ndarray | None:
        """(68,) probability that each landmark is visible (None without a visibility head)."""
        return None if self.visibility_probs is None else self.visibility_probs[:, -1]

    @property
    def visible(self) -> np.ndarray | None:
        """(68,) bool: the landmark is more likely visible than hidden (visibility >= 0.5)."""
        return None if self.visibility_probs is None else self.visibility_probs[:, -1] >= 0.5

    @property
    def landmarks_2d(self) -> np.ndarray:
        """(68, 2) x, y image pixels."""
        return self.landmarks_3d[:, :2]

    @property
    def landmarks_3dmm(self) -> np.ndarray:
        """(68, 3) the 68 points of the fitted 3DMM (shape, expression, pose) in image pixels: the
        3DMM branch's own landmarks. The gap to landmarks_3d says how well the network's two
        branches agree (small on real faces; trackers use it to notice a lost face)."""
        return self.model_points(*keypoint_model())

    @property
    def params(self) -> np.ndarray:
        """(62,) the 3DDFA parameter vector in the frame of crop_box (what the network predicts)."""
        return np.concatenate([params_from_camera(self.camera_matrix, self.crop_box), self.shape_params,
                               self.expression_params])

    def mesh(self) -> Mesh:
        """The dense face: 38,365 vertices in image pixels and the 76,073 triangles."""
        u, bases, tri = dense_model()
        verts = self.model_points(u, bases)
        if np.linalg.det(self.camera_matrix[:, :3]) < 0:  # the y flip to the image frame mirrors the winding
            tri = tri[:, [0, 2, 1]]
        return Mesh(vertices=verts.astype(np.float32), triangles=np.ascontiguousarray(tri))

    def model_points(self, mean: np.ndarray, bases: np.ndarray) -> np.ndarray:
        """Points of the face's 3DMM in image pixels: mean (N, 3) + bases (N, 3, 50) @ its shape and
        expression coefficients, through its camera matrix. (N, 3) float64."""
        coef = np.concatenate([self.shape_params, self.expression_params]).astype(np.float32)
        shape = (mean + bases @ coef).astype(np.float64)
        return shape @ self.camera_matrix[:, :3].T + self.camera_matrix[:, 3]

    def with_updates(self, **changes) -> "FaceResult":
        """A copy with some fields replaced (the pose is recomputed from the new fields)."""
        return replace(self, **changes)


@dataclass
class FileResult:
    """What align_files yields per file: the decoded image and its faces, or the error."""

    path: str
    image: np.ndarray | None
    faces: list[FaceResult] | None
    error: str | None = None


@dataclass
class FrameResult:
    """What align_video yields per frame."""

    index: int
    time_s: float
    image: np.ndarray
    faces: list[FaceResult]
