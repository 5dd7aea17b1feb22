"""Head-pose convention: rotation matrix <-> yaw/pitch/roll, and the split of the 3DMM pose.

One convention for the whole package, the one AFLW2000-3D's ``Pose_Para`` uses (see
docs/conventions.md):

    R = Rz(roll) @ Ry(yaw) @ Rx(pitch)

with the standard right-handed Rx, Ry, Rz. The 3x3 block of the 3DDFA pose matrix
P = [s*R3 | t] holds, after normalising its rows, R3 = R.T. Angles are radians inside the
math and degrees at the API (names say which: ``*_rad`` / ``*_deg``). Everything here works on
numpy arrays and on torch tensors alike, with any leading batch shape.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else np


def rotation_from_euler(yaw_rad, pitch_rad, roll_rad):
    """R = Rz(roll) Ry(yaw) Rx(pitch): (..., 3, 3) from three (...) arrays in radians."""
    xp = _lib(yaw_rad)
    cy, sy = xp.cos(yaw_rad), xp.sin(yaw_rad)
    cp, sp = xp.cos(pitch_rad), xp.sin(pitch_rad)
    cr, sr = xp.cos(roll_rad), xp.sin(roll_rad)
    rows = [
        [cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp],
        [sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp],
        [-sy, cy * sp, cy * cp],
    ]
    return xp.stack([xp.stack(r, -1) for r in rows], -2)


def euler_from_rotation(rot):
    """(yaw, pitch, roll) in radians from (..., 3, 3) matrices R = Rz(roll) Ry(yaw) Rx(pitch).

    yaw lies in [-pi/2, pi/2]. At the gimbal lock (|R[2, 0]| = 1, |yaw| = 90 deg) only
    pitch -+ roll is defined: there roll is set to 0 and pitch = atan2(-R[1, 2], R[1, 1]).
    """
    xp = _lib(rot)
    # torch: kept 1e-6 inside [-1, 1], where asin's gradient is finite (at |R[2, 0]| = 1, a yaw of
    # exactly 90 deg, it is infinite and one such prediction turned a training run to NaN); this
    # moves yaw by at most 0.08 deg there. numpy (inference, evaluation) is exact.
    r20 = xp.clip(rot[..., 2, 0], -1.0, 1.0) if xp is np else rot[..., 2, 0].clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    yaw = -xp.arcsin(r20) if xp is np else -torch.asin(r20)
    atan2 = np.arctan2 if xp is np else torch.atan2
    locked = xp.abs(r20) > 1.0 - 1e-12
    pitch = xp.where(locked, atan2(-rot[..., 1, 2], rot[..., 1, 1]), atan2(rot[..., 2, 1], rot[..., 2, 2]))
    roll = xp.where(locked, 0.0 * r20, atan2(rot[..., 1, 0], rot[..., 0, 0]))
    return yaw, pitch, roll


def split_pose(pose_3x4):
    """Split the 3DDFA pose block P = [s*R3 | t] (..., 3, 4) into (scale, R, t).

    The rotation follows 3DDFA_V2's decode (its P2sRt): the first two rows of the 3x3 block are
    normalised and the third is their cross product; R is the transpose of that, so it maps model
    axes to camera axes in Pose_Para's convention. Taking the nearest rotation by SVD instead
    moves the reference's pose MAE on AFLW2000-3D from 3.902 to 3.813 deg; we keep 3DDFA's rule so
    published figures reproduce (docs/conventions.md).
    scale: (...) mean norm of the first two rows; R: (..., 3, 3); t: (..., 3) BFM-frame units.
    """
    xp = _lib(pose_3x4)
    r1, r2 = pose_3x4[..., 0, :3], pose_3x4[..., 1, :3]
    if xp is np:
        n1, n2 = np.linalg.norm(r1, axis=-1), np.linalg.norm(r2, axis=-1)
        r1, r2 = r1 / n1[..., None], r2 / n2[..., None]
        rot = np.swapaxes(np.stack([r1, r2, np.cross(r1, r2)], -2), -1, -2)
    else:
        n1, n2 = r1.norm(dim=-1), r2.norm(dim=-1)
        r1, r2 = r1 / n1[..., None], r2 / n2[..., None]
        rot = torch.stack([r1, r2, torch.linalg.cross(r1, r2)], -2).transpose(-1, -2)
    return (n1 + n2) / 2, rot, pose_3x4[..., :, 3]


def pose_deg_from_params(params):
    """(..., 3) yaw, pitch, roll in degrees from (..., 62) un-normalised 3DMM parameters."""
    xp = _lib(params)
    pose = params[..., :12].reshape(*params.shape[:-1], 3, 4)
    _, rot, _ = split_pose(pose)
    angles = xp.stack(euler_from_rotation(rot), -1)
    return angles * (180.0 / math.pi)


def quaternion_from_rotation(rot: np.ndarray) -> np.ndarray:
    """(w, x, y, z) unit quaternion of a (3, 3) rotation, w >= 0 (the convention-free form of the
    pose: no Euler order, no gimbal lock)."""
    r = np.asarray(rot, np.float64)
    t = np.trace(r)
    cands = np.array([t, r[0, 0], r[1, 1], r[2, 2]])
    k = int(np.argmax(cands))
    if k == 0:
        w = math.sqrt(max(1.0 + t, 0.0)) / 2
        q = [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
    else:
        i, j, m = (k - 1), k % 3, (k + 1) % 3
        v = math.sqrt(max(1.0 + 2 * r[i, i] - t, 0.0)) / 2
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (r[m, j] - r[j, m]) / (4 * v)
        q[1 + i], q[1 + j], q[1 + m] = v, (r[j, i] + r[i, j]) / (4 * v), (r[m, i] + r[i, m]) / (4 * v)
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def rotation_vector_from_rotation(rot: np.ndarray) -> np.ndarray:
    """(3,) axis times angle in radians of a (3, 3) rotation (the angle in [0, pi])."""
    q = quaternion_from_rotation(rot)
    s = np.linalg.norm(q[1:])
    if s < 1e-12:
        return np.zeros(3)
    return q[1:] / s * (2.0 * math.atan2(s, q[0]))
