"""Global trajectory on a floor, foot contact and foot locking for a fitted motion. Torch-free.

Input: per-frame pose (T, 55, 3) axis-angle and translation (T, 3) in the *camera world* of the fit (camera at
the origin looking along −Z, Y up when the camera is level; SMPL-X convention: joints = FK(rest, pose) + transl).
Output: the same motion in a *floor world*: Y up, floor at y = 0, the pelvis of the first frame above the origin,
and the camera's pose in that world.

- Floor: the planted feet (slow, low foot joints) are fitted by a plane when they span an area (≥ 0.25 m both
  ways, e.g. a walk in a circle); otherwise the camera is taken as level and only the floor height is found.
- Contact: a foot (ankle + ball joints of one side) is planted while its ball joint is within
  :data:`CONTACT_HEIGHT` of the floor and moves slower than :data:`CONTACT_SPEED`; runs shorter than three frames
  are dropped. Speeds are measured on the foot trajectory low-passed at :data:`CONTACT_SMOOTH_HZ`.
- Locking: during contact the root is shifted so that the planted foot's ball joint stays at one spot (the mean
  of its contact run) and on the floor; between contacts the shift is interpolated, so nothing jumps. Two planted
  feet share the shift. Poses are left unchanged (no inverse kinematics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bundle.skeleton import PARENTS, axis_angle_to_matrix, forward_kinematics, matrix_to_axis_angle
from ..camera import FRONT_VIEW_R
from .smooth import zero_phase

#: SMPL-X joints: (ankle, ball of the foot) for the left and right foot.
FEET = ((7, 10), (8, 11))
#: Contact thresholds: height of the ball joint above its resting height (m) and horizontal speed (m/s).
CONTACT_HEIGHT = 0.06
CONTACT_SPEED = 0.35
MIN_CONTACT_FRAMES = 3
#: Low-pass (Hz) applied to the foot trajectories before their speed is measured.
CONTACT_SMOOTH_HZ = 4.0


@dataclass
class Trajectory:
    """A motion in the floor world: ``poses (T, 55, 3)``, ``trans (T, 3)``, ``joints (T, 55, 3)``, ``contact (T, 2)``
    (left, right foot planted), camera ``R (3, 3)``, ``t (3,)`` (world → OpenCV camera), ``floor_tilt_deg`` (the
    camera's tilt found from the floor; 0 when the camera was taken as level)."""

    poses: np.ndarray
    trans: np.ndarray
    joints: np.ndarray
    contact: np.ndarray
    camera_R: np.ndarray
    camera_t: np.ndarray
    floor_tilt_deg: float


def posed_joints(rest_joints: np.ndarray, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(T, 55, 3) joint positions of poses (T, 55, 3) with translations (T, 3) (metres)."""
    parents = np.asarray(PARENTS)
    return np.stack([forward_kinematics(rest_joints, parents, p)[1] for p in poses]) + trans[:, None, :]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    idx = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(idx[::2].tolist(), idx[1::2].tolist(), strict=True))


def detect_contact(joints: np.ndarray, fps: float, ball_rest_height: float) -> np.ndarray:
    """(T, 2) bool: left/right foot planted, from joints (T, 55, 3) in a world with the floor at y = 0."""
    T = len(joints)
    contact = np.zeros((T, 2), bool)
    for side, (_, ball) in enumerate(FEET):
        p = zero_phase(joints[:, ball], fps, CONTACT_SMOOTH_HZ)  # speeds from jittery fits need a low-pass
        v = np.zeros(T)
        if T > 1:
            step = np.linalg.norm(np.diff(p[:, [0, 2]], axis=0), axis=1) * fps
            v = np.concatenate([[step[0]], 0.5 * (step[1:] + step[:-1]), [step[-1]]]) if T > 2 else \
                np.concatenate([step, step])
        c = (p[:, 1] - ball_rest_height < CONTACT_HEIGHT) & (v < CONTACT_SPEED)
        for a, b in _runs(c):
            if b - a < MIN_CONTACT_FRAMES:
                c[a:b] = False
        contact[:, side] = c
    return contact


def _floor_rotation(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation taking the fitted floor's normal to +Y (identity unless the points span an area)."""
    if len(points) < 6:
        return np.eye(3), 0.0
    c = points - points.mean(0)
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    if s[1] / np.sqrt(len(points)) < 0.25 / 3:  # a line (walking straight) or a spot: the tilt is unknown
        return np.eye(3), 0.0
    n = vt[2] * np.sign(vt[2][1] or 1.0)
    if n[1] < np.cos(np.radians(30)):  # not a floor seen by an upright camera: keep level
        return np.eye(3), 0.0
    axis = np.cross(n, [0.0, 1.0, 0.0])
    angle = float(np.arcsin(np.clip(np.linalg.norm(axis), 0.0, 1.0)))
    R = axis_angle_to_matrix(axis / max(np.linalg.norm(axis), 1e-12) * angle)
    return R, float(np.degrees(angle))


def place_on_floor(poses: np.ndarray, trans: np.ndarray, rest_joints: np.ndarray, sole_height: float,
                   fps: float, lock_feet: bool = True) -> Trajectory:
    """Move a camera-world motion onto the floor, detect contacts and lock planted feet (see module doc).

    ``sole_height``: height of the ball-of-foot joints above the soles in the rest pose (metres)."""
    poses = np.asarray(poses, np.float64).copy()
    trans = np.asarray(trans, np.float64).copy()
    joints = posed_joints(rest_joints, poses, trans)
    # floor: the lowest ball joint per frame marks the floor; the slowest third of those are the planted ones
    ball = joints[:, [FEET[0][1], FEET[1][1]]]
    low = ball[np.arange(len(ball)), np.argmin(ball[:, :, 1], axis=1)]
    speed = np.linalg.norm(np.gradient(low, axis=0), axis=1) if len(low) > 1 else np.zeros(1)
    planted = low[speed <= np.quantile(speed, 0.5)] if len(low) > 3 else low
    R_floor, tilt = _floor_rotation(planted)
    # rotate the world about the origin: orientation and pelvis positions (pelvis = J0 + trans)
    glob = R_floor @ axis_angle_to_matrix(poses[:, 0])
    poses[:, 0] = matrix_to_axis_angle(glob)
    pelvis = (rest_joints[0] + trans) @ R_floor.T
    joints = joints @ R_floor.T
    floor_y = float(np.quantile((planted @ R_floor.T)[:, 1], 0.2)) - sole_height
    shift = np.array([-pelvis[0, 0], -floor_y, -pelvis[0, 2]])
    pelvis, joints = pelvis + shift, joints + shift
    contact = detect_contact(joints, fps, sole_height)
    if lock_feet and contact.any():
        delta = _lock_offsets(joints, contact, sole_height)
        pelvis, joints = pelvis + delta, joints + delta[:, None, :]
    camera_R = FRONT_VIEW_R @ R_floor.T
    camera_t = -camera_R @ shift
    return Trajectory(poses, pelvis - rest_joints[0], joints, contact, camera_R, camera_t, tilt)


def _lock_offsets(joints: np.ndarray, contact: np.ndarray, sole_height: float) -> np.ndarray:
    """Root offsets (T, 3) pinning each planted ball joint to its run's mean spot on the floor."""
    T = len(joints)
    acc = np.zeros((T, 3))
    cnt = np.zeros(T)
    for side, (_, ball) in enumerate(FEET):
        for a, b in _runs(contact[:, side]):
            spot = joints[a:b, ball].mean(0)
            spot[1] = sole_height
            acc[a:b] += spot - joints[a:b, ball]
            cnt[a:b] += 1
    have = cnt > 0
    delta = np.zeros((T, 3))
    delta[have] = acc[have] / cnt[have, None]
    idx = np.flatnonzero(have)
    t = np.arange(T)
    for c in range(3):
        delta[:, c] = np.interp(t, idx, delta[idx, c])
    return delta
