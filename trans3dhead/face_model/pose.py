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


# The Euler split near profile (euler_near_profile): the network's pose noise, the prior spreads of
# pitch and roll that decide what the rotation leaves open there, and the |yaw| range over which
# that prior is switched on (below it the angles are exactly euler_from_rotation's).
POSE_NOISE_DEG = 4.0  # about the network's pose error (validation MAE to the teacher 3.9-4.1 deg)
PITCH_PRIOR_DEG = 90.0  # pitch nearly free: a nod at profile reads as pitch ...
ROLL_PRIOR_DEG = 10.0  # ... and roll stays near 0 unless the rotation needs it
PROFILE_RAMP_DEG = (50.0, 70.0)  # prior weight 0 below the first |yaw|, 1 above the second


def _axis_rotations(angles: np.ndarray):
    """Rz(roll), Ry(yaw), Rx(pitch) (N, 3, 3) and their derivatives by their own angle."""
    n = len(angles)
    c, s = np.cos(angles), np.sin(angles)
    (cy, cp, cr), (sy, sp, sr) = c.T, s.T
    rz, drz, ry, dry, rx, drx = (np.zeros((n, 3, 3)) for _ in range(6))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = cr, -sr, sr, cr, 1.0
    drz[:, 0, 0], drz[:, 0, 1], drz[:, 1, 0], drz[:, 1, 1] = -sr, -cr, cr, -sr
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cy, sy, 1.0, -sy, cy
    dry[:, 0, 0], dry[:, 0, 2], dry[:, 2, 0], dry[:, 2, 2] = -sy, cy, -cy, -sy
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1.0, cp, -sp, sp, cp
    drx[:, 1, 1], drx[:, 1, 2], drx[:, 2, 1], drx[:, 2, 2] = -sp, -cp, cp, -sp
    return rz, drz, ry, dry, rx, drx


def _residuals(angles: np.ndarray, rot: np.ndarray, prior_scale: np.ndarray, jacobian: bool = False):
    """(N, 11) residuals (the 9 entries of R(angles) - rot over the pose noise, then pitch and roll
    times prior_scale (N, 2)) and, if asked, their Jacobian (N, 11, 3) by yaw, pitch, roll."""
    rz, drz, ry, dry, rx, drx = _axis_rotations(angles)
    inv_sigma = 1.0 / math.radians(POSE_NOISE_DEG)
    r = rz @ ry @ rx
    f = np.concatenate([(r - rot).reshape(-1, 9) * inv_sigma, angles[:, 1:] * prior_scale], 1)
    if not jacobian:
        return f
    d = np.stack([(rz @ dry @ rx).reshape(-1, 9), (rz @ ry @ drx).reshape(-1, 9), (drz @ ry @ rx).reshape(-1, 9)], -1)
    prior = np.zeros((len(angles), 2, 3))
    prior[:, 0, 1], prior[:, 1, 2] = prior_scale[:, 0], prior_scale[:, 1]
    return f, np.concatenate([d * inv_sigma, prior], 1)


def euler_near_profile(rot, iterations: int = 6):
    """(yaw, pitch, roll) radians of (..., 3, 3) rotations, as euler_from_rotation but with a
    split of pitch and roll that a user expects near |yaw| = 90 deg (numpy only).

    Near profile R = Rz(roll) Ry(yaw) Rx(pitch) depends on pitch and roll almost only through
    pitch -+ roll: the exact decomposition then splits them arbitrarily (an upright profile read
    yaw 87, pitch -80, roll -87), and the network's pose noise moves that split by tens of degrees.
    Here the angles minimise |R(angles) - rot|^2 / (2 sigma^2) + w (pitch^2 / (2 tau_p^2) +
    roll^2 / (2 tau_r^2)) (sigma POSE_NOISE_DEG; tau PITCH_PRIOR_DEG, ROLL_PRIOR_DEG), the prior
    weight w rising smoothly from 0 to 1 over |yaw| in PROFILE_RAMP_DEG: where the rotation does
    not decide, a nod at profile reads as pitch and roll stays small; where it decides (every
    |yaw| below 50 deg, and the well-determined directions everywhere) the angles rebuild it.
    Gauss-Newton with damping from the better of the exact split and the same in-plane angle put
    into pitch alone.
    """
    rot = np.asarray(rot, np.float64)
    shape = rot.shape[:-2]
    flat = rot.reshape(-1, 3, 3)
    angles = np.stack(euler_from_rotation(flat), -1)
    lo, hi = PROFILE_RAMP_DEG
    t = np.clip((np.degrees(np.abs(angles[:, 0])) - lo) / (hi - lo), 0.0, 1.0)
    weight = t * t * (3.0 - 2.0 * t)
    todo = weight > 0
    if todo.any():
        angles[todo] = _refine(angles[todo], flat[todo], weight[todo], iterations)
    angles = angles.reshape(*shape, 3)
    return angles[..., 0], angles[..., 1], angles[..., 2]


def _refine(angles: np.ndarray, rot: np.ndarray, weight: np.ndarray, iterations: int) -> np.ndarray:
    prior_scale = np.sqrt(weight)[:, None] / np.radians([PITCH_PRIOR_DEG, ROLL_PRIOR_DEG])

    def energy(a):
        return (_residuals(a, rot, prior_scale) ** 2).sum(1)

    # Starts: the exact split, and its in-plane angle moved wholly into pitch (pitch +- roll, roll 0).
    best, best_e = angles.copy(), energy(angles)
    for sign in (1.0, -1.0):
        alt = angles.copy()
        alt[:, 1] = (angles[:, 1] + sign * angles[:, 2] + math.pi) % (2 * math.pi) - math.pi
        alt[:, 2] = 0.0
        e = energy(alt)
        best[e < best_e], best_e = alt[e < best_e], np.minimum(e, best_e)
    a, e, damping = best, best_e, np.full(len(best), 1e-3)
    for _ in range(iterations):  # damped Gauss-Newton; a step is kept only where it lowers the energy
        f, jac = _residuals(a, rot, prior_scale, jacobian=True)
        jt = jac.transpose(0, 2, 1)
        step = -np.linalg.solve(jt @ jac + damping[:, None, None] * np.eye(3), jt @ f[..., None])[..., 0]
        trial = a + step
        e_trial = energy(trial)
        improved = e_trial < e
        a, e = np.where(improved[:, None], trial, a), np.where(improved, e_trial, e)
        damping = np.where(improved, damping * 0.3, damping * 10.0)
    a[:, 1:] = (a[:, 1:] + math.pi) % (2 * math.pi) - math.pi
    return a
