"""Global trajectory on a floor, foot contact and foot locking for a fitted motion. Torch-free.

Input: per-frame pose (T, 55, 3) axis-angle and translation (T, 3) in the *camera world* of the fit (camera at
the origin looking along −Z, Y up when the camera is level; SMPL-X convention: joints = FK(rest, pose) + transl).
Output: the same motion in a *floor world*: Y up, floor at y = 0, the pelvis of the first frame above the origin,
and the camera's pose in that world.

- Floor: the planted feet (the slower half of the lowest ball joint per frame) are fitted by a plane when they
  cover an area (:data:`FLOOR_MIN_SPREAD`), were planted at :data:`MIN_FOOTHOLDS` distinct spots (with image
  evidence) and the tilt is plausible (:data:`FLOOR_MAX_TILT_DEG`); otherwise the camera is taken as level and
  only the floor height is found.
- Contact: with a fixed camera a planted foot stands still *in the image* (heel or toes), whatever the error of
  the monocular depth: a foot is planted while its image speed is below :data:`CONTACT_IMAGE_SPEED` and it is not
  above the other foot by more than :data:`CONTACT_HEIGHT`. Without image evidence the 3D rule is used: ball
  joint within :data:`CONTACT_HEIGHT` of the floor and slower than :data:`CONTACT_SPEED`. A run must hold three
  frames under the threshold and extends while the speed stays under :data:`HYSTERESIS` times it; trajectories
  are low-passed at :data:`CONTACT_SMOOTH_HZ` before speeds are taken.
- Locking: while a foot stays planted the root moves by minus that foot's displacement (integrated frame by frame;
  in double support the foot stiller in the image, or the mean of both when equally still), so planted feet do
  not slide and hand-overs are continuous; planted balls are put on the floor. Poses are left unchanged (no
  inverse kinematics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bundle.skeleton import PARENTS, axis_angle_to_matrix, forward_kinematics, matrix_to_axis_angle
from ..camera import FRONT_VIEW_R
from .smooth import zero_phase

#: Floor plane: the planted feet must spread this much (RMS, metres) across their main direction, and the plane
#: may tilt at most this much from the camera's level; otherwise the camera is taken as level.
FLOOR_MIN_SPREAD = 0.08
FLOOR_MAX_TILT_DEG = 15.0
#: ... and the feet must have been planted at this many distinct spots (footholds at least FOOTHOLD_SEPARATION
#: metres apart horizontally): standing, sitting down or jumping on the spot, the depth error of a still foot
#: (the body's size in the image changes as it crouches) can spread its fitted positions over an area.
MIN_FOOTHOLDS = 3
FOOTHOLD_SEPARATION = 0.12
#: SMPL-X joints: (ankle, ball of the foot) for the left and right foot.
FEET = ((7, 10), (8, 11))
#: Contact thresholds: height of the ball joint above its resting height (m) and horizontal speed (m/s).
CONTACT_HEIGHT = 0.06
CONTACT_SPEED = 0.35
MIN_CONTACT_FRAMES = 3
#: A contact run extends while the speed stays below this multiple of the threshold (hysteresis).
HYSTERESIS = 3.0
#: Contact threshold on a foot's image speed (person heights per second; a walking swing foot moves 1–2).
CONTACT_IMAGE_SPEED = 0.25
#: In double support, image speeds closer than this (person heights per second) count as equally still.
DOUBLE_SUPPORT_TIE = 0.05
#: Low-pass (Hz) applied to the foot trajectories before their speed is measured.
CONTACT_SMOOTH_HZ = 6.0


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


def image_foot_speed(keypoints: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) speed of each foot in the image, in person heights per second, from BlazePose keypoints (T, 33, 3)
    (NaN rows where the person was missing). A foot counts by its stiller end (heel or toes): a planted foot
    keeps one of them still while it rolls. With a fixed camera this is the most reliable contact cue: it does
    not depend on the (noisy) monocular depth of the body."""
    kp = np.asarray(keypoints, np.float64)
    T = len(kp)
    size = np.array([_person_height(k) for k in kp])
    good = np.isfinite(size)
    if good.sum() < 2:
        return np.full((T, 2), np.inf)
    t = np.arange(T)
    out = np.full((T, 2), np.inf)
    for side, (heel, toe) in enumerate(((29, 31), (30, 32))):
        speeds = []
        for lm in (heel, toe):
            xy = np.stack([np.interp(t, t[good], kp[good, lm, c]) for c in range(2)], 1)
            xy = zero_phase(xy, fps, CONTACT_SMOOTH_HZ)
            v = np.linalg.norm(np.gradient(xy, axis=0), axis=1) * fps
            speeds.append(v / np.interp(t, t[good], size[good]))
        out[:, side] = np.minimum(*speeds)
    out[~good] = np.inf
    return out


def _person_height(kp: np.ndarray) -> float:
    """Person height in pixels from one frame's keypoints (33, 3): 3.2 torso lengths (NaN when missing)."""
    if not np.isfinite(kp).all():
        return float("nan")
    hips, shoulders = kp[[23, 24], :2].mean(0), kp[[11, 12], :2].mean(0)
    return max(3.2 * float(np.linalg.norm(shoulders - hips)), 1.0)


def detect_contact(joints: np.ndarray, fps: float, ball_rest_height: float,
                   image_speed: np.ndarray | None = None) -> np.ndarray:
    """(T, 2) bool: left/right foot planted, from joints (T, 55, 3) in a world with the floor at y = 0.

    With ``image_speed`` (T, 2) (:func:`image_foot_speed`) a foot is planted while it is still in the image and
    not above the other foot by more than :data:`CONTACT_HEIGHT`; without it, while its ball joint is low and
    slow in 3D."""
    T = len(joints)
    contact = np.zeros((T, 2), bool)
    balls = zero_phase(joints[:, [FEET[0][1], FEET[1][1]]], fps, CONTACT_SMOOTH_HZ)
    lowest = balls[:, :, 1].min(1)
    for side in range(2):
        p = balls[:, side]
        if image_speed is not None:
            low = p[:, 1] - lowest < CONTACT_HEIGHT
            speed, limit = image_speed[:, side], CONTACT_IMAGE_SPEED
        else:
            low = p[:, 1] - ball_rest_height < CONTACT_HEIGHT
            speed = np.linalg.norm(np.gradient(p[:, [0, 2]], axis=0), axis=1) * fps if T > 1 else np.zeros(T)
            limit = CONTACT_SPEED
        core = low & (speed < limit)
        loose = low & (speed < HYSTERESIS * limit)  # a run grows over its slowing-down and speeding-up ends
        c = np.zeros(T, bool)
        for a, b in _runs(loose):
            if core[a:b].sum() >= MIN_CONTACT_FRAMES:
                c[a:b] = True
        contact[:, side] = c
    return contact


def footholds(balls: np.ndarray, image_speed: np.ndarray) -> np.ndarray:
    """(N, 3) the distinct spots where the feet were planted: the median ball-joint position (``balls`` (T, 2, 3))
    of each run of at least :data:`MIN_CONTACT_FRAMES` frames in which that foot is still in the image
    (``image_speed`` (T, 2), :func:`image_foot_speed`), keeping spots :data:`FOOTHOLD_SEPARATION` apart
    (horizontally)."""
    spots = []
    for side in range(2):
        for a, b in _runs(np.asarray(image_speed)[:, side] < CONTACT_IMAGE_SPEED):
            if b - a >= MIN_CONTACT_FRAMES:
                spots.append(np.median(balls[a:b, side], axis=0))
    distinct: list[np.ndarray] = []
    for spot in spots:
        if all(np.linalg.norm((spot - d)[[0, 2]]) >= FOOTHOLD_SEPARATION for d in distinct):
            distinct.append(spot)
    return np.array(distinct).reshape(-1, 3)


def _floor_rotation(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation taking the fitted floor's normal to +Y: identity (a level camera) unless the planted feet cover an
    area on the floor (RMS spread ≥ :data:`FLOOR_MIN_SPREAD` across their main direction, measured horizontally
    so that height noise cannot fake it) and the plane's tilt is plausible (≤ :data:`FLOOR_MAX_TILT_DEG`)."""
    if len(points) < 6:
        return np.eye(3), 0.0
    c = points - points.mean(0)
    flat = np.linalg.svd(c[:, [0, 2]], compute_uv=False) / np.sqrt(len(points))
    if flat[1] < FLOOR_MIN_SPREAD:  # a line (walking straight) or a spot: the tilt is unknown
        return np.eye(3), 0.0
    n = np.linalg.svd(c, full_matrices=False)[2][2]
    n = n * np.sign(n[1] or 1.0)
    if n[1] < np.cos(np.radians(FLOOR_MAX_TILT_DEG)):
        return np.eye(3), 0.0
    axis = np.cross(n, [0.0, 1.0, 0.0])
    angle = float(np.arcsin(np.clip(np.linalg.norm(axis), 0.0, 1.0)))
    R = axis_angle_to_matrix(axis / max(np.linalg.norm(axis), 1e-12) * angle)
    return R, float(np.degrees(angle))


def place_on_floor(poses: np.ndarray, trans: np.ndarray, rest_joints: np.ndarray, sole_height: float,
                   fps: float, lock_feet: bool = True, image_speed: np.ndarray | None = None) -> Trajectory:
    """Move a camera-world motion onto the floor, detect contacts and lock planted feet (see module doc).

    ``sole_height``: height of the ball-of-foot joints above the soles in the rest pose (metres);
    ``image_speed``: (T, 2) foot speeds in the image (:func:`image_foot_speed`), the preferred contact cue."""
    poses = np.asarray(poses, np.float64).copy()
    trans = np.asarray(trans, np.float64).copy()
    joints = posed_joints(rest_joints, poses, trans)
    # floor: the lowest ball joint per frame marks the floor; the slowest third of those are the planted ones
    ball = joints[:, [FEET[0][1], FEET[1][1]]]
    low = ball[np.arange(len(ball)), np.argmin(ball[:, :, 1], axis=1)]
    speed = np.linalg.norm(np.gradient(low, axis=0), axis=1) if len(low) > 1 else np.zeros(1)
    planted = low[speed <= np.quantile(speed, 0.5)] if len(low) > 3 else low
    R_floor, tilt = _floor_rotation(planted)
    if image_speed is not None and len(footholds(ball, image_speed)) < MIN_FOOTHOLDS:
        R_floor, tilt = np.eye(3), 0.0
    # rotate the world about the origin: orientation and pelvis positions (pelvis = J0 + trans)
    glob = R_floor @ axis_angle_to_matrix(poses[:, 0])
    poses[:, 0] = matrix_to_axis_angle(glob)
    pelvis = (rest_joints[0] + trans) @ R_floor.T
    joints = joints @ R_floor.T
    floor_y = float(np.quantile((planted @ R_floor.T)[:, 1], 0.2)) - sole_height
    shift = np.array([-pelvis[0, 0], -floor_y, -pelvis[0, 2]])
    pelvis, joints = pelvis + shift, joints + shift
    contact = detect_contact(joints, fps, sole_height, image_speed)
    if lock_feet and contact.any():
        delta = _lock_offsets(joints, contact, sole_height, image_speed)
        pelvis, joints = pelvis + delta, joints + delta[:, None, :]
    camera_R = FRONT_VIEW_R @ R_floor.T
    camera_t = -camera_R @ shift
    return Trajectory(poses, pelvis - rest_joints[0], joints, contact, camera_R, camera_t, tilt)


def _lock_offsets(joints: np.ndarray, contact: np.ndarray, sole_height: float,
                  image_speed: np.ndarray | None = None) -> np.ndarray:
    """Root offsets (T, 3) that keep planted ball joints still on the floor.

    Horizontally the offset is integrated frame by frame: while a foot stays planted from one frame to the next,
    the root moves by minus that foot's displacement, otherwise it moves as fitted. In double support the foot
    that is stiller in the image carries the root (the mean of both when they are equally still, or without
    image speeds). So the root is carried by the planted feet, hand-overs between feet are continuous, and the
    fit's depth jitter does not reach a planted foot. Vertically, planted balls are put at ``sole_height``; the
    vertical offset is interpolated between contacts (flight phases keep their fitted shape)."""
    T = len(joints)
    balls = joints[:, [FEET[0][1], FEET[1][1]]]  # (T, 2, 3)
    delta = np.zeros((T, 3))
    for t in range(1, T):
        both = contact[t] & contact[t - 1]
        delta[t, [0, 2]] = delta[t - 1, [0, 2]]
        if both.all() and image_speed is not None:
            sp = image_speed[t]
            if abs(sp[0] - sp[1]) > DOUBLE_SUPPORT_TIE:
                both = np.array([sp[0] < sp[1], sp[1] < sp[0]])
        if both.any():
            step = (balls[t, both] - balls[t - 1, both]).mean(0)
            delta[t, [0, 2]] -= step[[0, 2]]
    have = contact.any(1)
    if have.any():
        lift = np.where(contact, sole_height - balls[:, :, 1], 0.0).sum(1) / np.maximum(contact.sum(1), 1)
        idx = np.flatnonzero(have)
        delta[:, 1] = np.interp(np.arange(T), idx, lift[idx])
    delta[:, [0, 2]] -= delta[0, [0, 2]]
    return delta
