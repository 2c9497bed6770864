"""Initial pose and translation of the body fit, from BlazePose's 3D world landmarks and 2D keypoints.

Frames: the camera is fixed at ``R = FRONT_VIEW_R`` (OpenCV axes, looking along world −Z, world +Y up), ``t = 0``
during the fit; the body world is the SMPL-X frame (metres, Y up, zero orientation faces +Z). BlazePose world
landmarks have camera-like axes (x right, y down, z away from the camera), so ``world = FRONT_VIEW_R.T @ bp``.
"""

from __future__ import annotations

import numpy as np

from ..bundle.skeleton import PARENTS, forward_kinematics, matrix_to_axis_angle
from ..camera import FRONT_VIEW_R
from .landmarks import BP, LIMB_BONES, J


def blazepose_to_world(points: np.ndarray) -> np.ndarray:
    """BlazePose world landmarks (N, 3) (x right, y down, z away) → body-world directions (N, 3)."""
    return np.asarray(points, dtype=np.float64) @ FRONT_VIEW_R  # row-vector form of R.T @ p


#: BlazePose's 3D knee bends below this (degrees) are taken as straight legs: on standing people in the dev photos
#: BlazePose reports 18–30° of knee bend, the "bent legs" bias that 2D landmarks cannot correct (a knee bent
#: towards the camera looks straight in the image).
KNEE_STRAIGHT_DEG = 35.0


def straighten_knees(world: np.ndarray, limit_deg: float = KNEE_STRAIGHT_DEG,
                     always: frozenset[str] = frozenset()) -> np.ndarray:
    """World landmarks (33, 3) with each ankle moved onto its thigh's line when the knee bends less than
    ``limit_deg``, or however it bends for the sides ("left", "right") in ``always`` (a leg beyond the photo's
    frame: BlazePose's 3D there is a guess); the shank keeps its length."""
    out = np.array(world, dtype=np.float64, copy=True)
    for side in ("left", "right"):
        hip, knee, ankle = (BP[f"{side}_{part}"] for part in ("hip", "knee", "ankle"))
        thigh, shank = out[knee] - out[hip], out[ankle] - out[knee]
        cos = float(thigh @ shank) / max(float(np.linalg.norm(thigh) * np.linalg.norm(shank)), 1e-12)
        if side in always or np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))) < limit_deg:
            out[ankle] = out[knee] + _unit(thigh) * np.linalg.norm(shank)
    return out


def hang_legs(world: np.ndarray, sides: frozenset[str]) -> np.ndarray:
    """World landmarks (33, 3) with the legs of ``sides`` ("left", "right") hanging straight down from their hips
    along the torso (shoulders' midpoint → hips' midpoint), each bone keeping its length: a portrait shows no
    leg, and BlazePose's guess for it is often a raised knee."""
    out = np.array(world, dtype=np.float64, copy=True)
    shoulders = 0.5 * (out[BP["left_shoulder"]] + out[BP["right_shoulder"]])
    torso = 0.5 * (out[BP["left_hip"]] + out[BP["right_hip"]]) - shoulders
    down = _unit(torso) if np.linalg.norm(torso) > 1e-3 else np.array([0.0, -1.0, 0.0])  # world Y up
    for side in sides:
        chain = [BP[f"{side}_{part}"] for part in ("hip", "knee", "ankle", "heel")]
        lengths = [np.linalg.norm(out[b] - out[a]) for a, b in zip(chain[:-1], chain[1:], strict=True)]
        for (a, b), length in zip(zip(chain[:-1], chain[1:], strict=True), lengths, strict=True):
            out[b] = out[a] + down * length
        toe = BP[f"{side}_foot_index"]
        out[toe] = out[chain[2]] + (out[toe] - world[chain[2]])  # the foot keeps its direction below the ankle
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def frame_from_axes(left: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotation whose columns are the body's (left, up, forward) axes, built from a left and an up direction."""
    x = _unit(left)
    z = _unit(np.cross(x, up))
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction ``a`` to direction ``b``."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -0.999999:  # opposite: turn by π about any axis perpendicular to a
        axis = _unit(np.cross(a, [1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.cross(a, [0.0, 1.0, 0.0]))
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + k + k @ k / (1.0 + c)


def torso_frames(world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pelvis frame, chest frame) as rotations in the body world, from world-frame landmarks (33, 3)."""
    lh, rh, ls, rs = world[BP["left_hip"]], world[BP["right_hip"]], world[BP["left_shoulder"]], world[
        BP["right_shoulder"]]
    up = 0.5 * (ls + rs) - 0.5 * (lh + rh)
    return frame_from_axes(lh - rh, up), frame_from_axes(ls - rs, up)


def initial_pose(world_landmarks: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Full pose (55, 3) axis-angle whose global orientation, spine twist and limb directions follow the world
    landmarks (33, 3, BlazePose axes). Limbs are aligned by their smallest rotation (no twist)."""
    world = blazepose_to_world(world_landmarks)
    pelvis, chest = torso_frames(world)
    pose = np.zeros((55, 3))
    pose[0] = matrix_to_axis_angle(pelvis)
    spine = matrix_to_axis_angle(pelvis.T @ chest) / 3.0
    for j in (J["spine1"], J["spine2"], J["spine3"]):
        pose[j] = spine
    parents = np.asarray(PARENTS)
    lower = {joint: (a, b) for joint, _, a, b in LIMB_BONES}
    for joint, child, a, b in LIMB_BONES:
        glob, _ = forward_kinematics(rest_joints, parents, pose)
        parent_rot = glob[parents[joint]]
        rest_dir = rest_joints[child] - rest_joints[joint]
        target = parent_rot.T @ (world[b] - world[a])
        rot = rotation_between(rest_dir, target)
        if joint in _BEND and child in lower:  # twist the upper bone so the hinge below bends the right way
            c, d = lower[child]
            rot = rot @ _hinge_twist(rest_dir, rot.T @ parent_rot.T @ (world[d] - world[c]), *_BEND[joint])
        pose[joint] = matrix_to_axis_angle(rot)
    return pose


#: Upper limb joint → (direction, in its rest frame, in which the hinge below bends the limb; largest twist).
#: Elbows fold the forearm forward (+Z), knees fold the shank backward (−Z).
_BEND = {J["left_shoulder"]: ((0.0, 0.0, 1.0), 1.5), J["right_shoulder"]: ((0.0, 0.0, 1.0), 1.5),
         J["left_hip"]: ((0.0, 0.0, -1.0), 0.7), J["right_hip"]: ((0.0, 0.0, -1.0), 0.7)}


def _hinge_twist(axis: np.ndarray, lower: np.ndarray, bend: tuple[float, float, float], limit: float,
                 min_bend_deg: float = 20.0) -> np.ndarray:
    """Rotation about the bone ``axis`` (rest frame) taking the hinge's ``bend`` direction to the lower bone's
    direction ``lower`` (same frame), clamped to ``limit`` rad; identity when the limb is nearly straight."""
    axis = _unit(axis)
    lower = _unit(lower)
    perp = lower - (lower @ axis) * axis
    if np.linalg.norm(perp) < np.sin(np.radians(min_bend_deg)):
        return np.eye(3)
    b = np.asarray(bend, dtype=np.float64)
    b = _unit(b - (b @ axis) * axis)
    angle = float(np.arctan2(axis @ np.cross(b, perp), b @ perp))
    angle = float(np.clip(angle, -limit, limit))
    from ..bundle.skeleton import axis_angle_to_matrix

    return axis_angle_to_matrix(axis * angle)


def facing_camera(full_pose: np.ndarray, R: np.ndarray = FRONT_VIEW_R) -> bool:
    """Whether a body with this global orientation turns its front (+Z of its rest frame) towards a camera with
    world→camera rotation ``R``."""
    from ..bundle.skeleton import axis_angle_to_matrix

    forward = R @ axis_angle_to_matrix(np.asarray(full_pose)[0]) @ np.array([0.0, 0.0, 1.0])
    return bool(forward[2] < 0.0)


def solve_translation(points: np.ndarray, pixels: np.ndarray, weights: np.ndarray, K: np.ndarray,
                      R: np.ndarray = FRONT_VIEW_R, min_depth: float = 0.5) -> np.ndarray:
    """Body translation (3,) that best projects world ``points`` (N, 3) onto ``pixels`` (N, 2).

    Weighted linear least squares on the perspective equations (camera ``x = R (p + transl)``, ``t = 0``);
    the depth is kept at least ``min_depth`` metres in front of the camera.
    """
    cam = np.asarray(points, dtype=np.float64) @ R.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = pixels[:, 0] - cx, pixels[:, 1] - cy
    w = np.sqrt(np.maximum(weights, 0.0))
    zeros = np.zeros_like(du)
    rows_u = np.stack([np.full_like(du, fx), zeros, -du], 1)
    rows_v = np.stack([zeros, np.full_like(dv, fy), -dv], 1)
    A = np.concatenate([rows_u * w[:, None], rows_v * w[:, None]])
    rhs = np.concatenate([(du * cam[:, 2] - fx * cam[:, 0]) * w, (dv * cam[:, 2] - fy * cam[:, 1]) * w])
    c, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    depth = cam[:, 2].mean() + c[2]
    if not np.isfinite(c).all() or depth < min_depth:
        c = _fallback_translation(cam, pixels, weights, K, min_depth)
    return R.T @ c


def _fallback_translation(cam: np.ndarray, pixels: np.ndarray, weights: np.ndarray, K: np.ndarray,
                          min_depth: float) -> np.ndarray:
    """Depth from the ratio of 3D to 2D spread, then x/y from the weighted centroids."""
    w = np.maximum(weights, 1e-6)[:, None]
    c3, c2 = (cam * w).sum(0) / w.sum(), (pixels * w).sum(0) / w.sum()
    s3 = np.sqrt((((cam[:, :2] - c3[:2]) ** 2).sum(1) * w[:, 0]).sum() / w.sum())
    s2 = np.sqrt((((pixels - c2) ** 2).sum(1) * w[:, 0]).sum() / w.sum())
    z = max(K[0, 0] * s3 / max(s2, 1e-6), min_depth)
    tz = z - c3[2]
    tx = (c2[0] - K[0, 2]) * z / K[0, 0] - c3[0]
    ty = (c2[1] - K[1, 2]) * z / K[1, 1] - c3[1]
    return np.array([tx, ty, tz])
