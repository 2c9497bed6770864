"""Synthetic observations of a posed body, for tests and benchmarks of the fit (bench helpers, not runtime).

A body is posed in the bundle world (SMPL-X frame, metres), seen by a known OpenCV camera, and turned into what
the detector would report: 33 BlazePose-style 2D landmarks (from the same landmark mapping the fit uses, with
lower visibility where the body hides them), hip-centred 3D world landmarks in BlazePose axes (optionally
noisy), the rendered silhouette as the mask, its bbox and a 512 px crop transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from icon_engine.bundle.skeleton import PARENTS, forward_kinematics
from icon_engine.camera import Camera, default_intrinsics
from icon_engine.fit.core import landmark_points
from icon_engine.fit.landmarks import BLAZEPOSE_NAMES, BP, resolve_targets

from .metrics import procrustes_aligned

#: Landmarks the mapping leaves out, drawn at a mapped neighbour's position.
_STAND_INS = {"left_eye_inner": "left_eye", "left_eye_outer": "left_eye", "right_eye_inner": "right_eye",
              "right_eye_outer": "right_eye", "mouth_left": "nose", "mouth_right": "nose"}


@dataclass
class SyntheticObservation:
    """The fields of a ``PersonObservation`` that the fit reads (same names, units and frames)."""

    keypoints: np.ndarray
    world_landmarks: np.ndarray
    mask: np.ndarray
    bbox: np.ndarray
    crop_matrix: np.ndarray
    crop_size: int = 512
    hands: dict | None = None
    num_people: int = 1
    rotation: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class SyntheticPhoto:
    """A stand-in ``Photo``: only the processing image size matters to the fit."""

    rgb: np.ndarray


@dataclass
class SyntheticCase:
    """A posed body, its camera and what a detector would see."""

    full_pose: np.ndarray  # (55, 3)
    betas: np.ndarray
    camera: Camera
    vertices: np.ndarray  # (V, 3) world
    joints: np.ndarray  # (55, 3) world
    observation: SyntheticObservation
    photo: SyntheticPhoto


def look_at_camera(target: np.ndarray, distance: float, yaw_deg: float, pitch_deg: float, width: int,
                   height: int) -> Camera:
    """Camera at ``distance`` metres from ``target``, ``yaw_deg`` about world +Y from the body's front (+Z) and
    ``pitch_deg`` above it, looking at ``target`` with world +Y up; default field of view."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    centre = np.asarray(target, float) + distance * np.array(
        [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    z = np.asarray(target, float) - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return Camera(default_intrinsics(width, height), R, -R @ centre, width, height)


def camera_for_body(vertices: np.ndarray, yaw_deg: float, pitch_deg: float, width: int, height: int,
                    fill: float = 0.8) -> Camera:
    """A :func:`look_at_camera` aimed at the centre of ``vertices`` (V, 3) from a distance at which the body's
    bounding sphere spans about ``fill`` of the shorter image side."""
    lo, hi = vertices.min(0), vertices.max(0)
    centre = 0.5 * (lo + hi)
    radius = 0.5 * float(np.linalg.norm(hi - lo))
    focal = default_intrinsics(width, height)[0, 0]
    distance = max(focal * radius / (0.5 * fill * min(width, height)), 1.5 * radius)
    return look_at_camera(centre, distance, yaw_deg, pitch_deg, width, height)


def pose_body(body_model: Any, full_pose: np.ndarray, betas: np.ndarray) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Model output (batch 1) of a body with ``full_pose`` (55, 3) and ``betas``; also its pose tensors."""
    fp = torch.tensor(np.asarray(full_pose, dtype=np.float32)).reshape(55, 3)
    go, bp = fp[None, 0], fp[None, 1:22]
    b = torch.tensor(np.asarray(betas, dtype=np.float32))[None]
    with torch.no_grad():
        out = body_model(betas=b, global_orient=go, body_pose=bp.reshape(1, 63),
                         left_hand_pose=fp[None, 25:40].reshape(1, 45), right_hand_pose=fp[None, 40:55].reshape(1, 45))
    return out, go, bp


def make_case(body_model: Any, full_pose: np.ndarray, betas: np.ndarray, camera: Camera,
              world_noise: float = 0.0, seed: int = 0) -> SyntheticCase:
    """Pose the body, render its mask through ``camera`` and build the observation."""
    from icon_engine.render import rasterize

    out, go, bp = pose_body(body_model, full_pose, betas)
    verts = out.vertices[0].double().numpy()
    joints = out.joints[0].double().numpy()
    faces = np.asarray(body_model.faces, dtype=np.int64)
    targets = resolve_targets(list(getattr(body_model, "keypoint_names", [])))
    rotations, _ = forward_kinematics(joints, np.asarray(PARENTS), np.asarray(full_pose, float).reshape(55, 3))
    kps = getattr(out, "keypoints", None)
    kps = kps[0] if kps is not None else torch.zeros(0, 3)
    with torch.no_grad():
        pts = landmark_points(out.joints[0], kps, torch.tensor(rotations), targets).double().numpy()
    world = np.zeros((33, 3))
    world[targets.landmarks] = pts
    for name, other in _STAND_INS.items():
        world[BP[name]] = world[BP[other]]
    raster = rasterize(camera.to_camera(verts), faces, camera.K, camera.width, camera.height)
    px, depth = camera.project(world)
    vis = _visibility(px, depth, raster.depth)
    cam_pts = camera.to_camera(world)
    hips = 0.5 * (cam_pts[BP["left_hip"]] + cam_pts[BP["right_hip"]])
    rng = np.random.default_rng(seed)
    world_lm = cam_pts - hips + rng.normal(0.0, world_noise, cam_pts.shape)
    mask = raster.mask
    bbox = _bbox(mask, px)
    return SyntheticCase(np.asarray(full_pose, float), np.asarray(betas, float), camera, verts, joints,
                         SyntheticObservation(np.concatenate([px, vis[:, None]], 1), world_lm, mask, bbox,
                                              _crop_matrix(bbox, 512)),
                         SyntheticPhoto(np.zeros((camera.height, camera.width, 3), np.uint8)))


def _visibility(px: np.ndarray, depth: np.ndarray, zbuf: np.ndarray) -> np.ndarray:
    """1.0 for landmarks in the image and not hidden by another body part (surface > 15 cm nearer), else 0.3."""
    h, w = zbuf.shape
    vis = np.full(len(px), 0.3)
    for i, ((u, v), d) in enumerate(zip(px, depth, strict=True)):
        iu, iv = int(math.floor(u)), int(math.floor(v))
        if 0 <= iu < w and 0 <= iv < h:
            surface = zbuf[iv, iu]
            vis[i] = 1.0 if not np.isfinite(surface) or surface > d - 0.15 else 0.3
        else:
            vis[i] = 0.05
    return vis


def _bbox(mask: np.ndarray, px: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return np.array([px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max()])
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)


def _crop_matrix(bbox: np.ndarray, size: int, margin: float = 0.1) -> np.ndarray:
    x0, y0, x1, y1 = bbox
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    s = size / side
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy], [0, 0, 1.0]])


def landmark_names() -> tuple[str, ...]:
    """BlazePose landmark names in keypoint order."""
    return BLAZEPOSE_NAMES


def compose(*rotvecs: tuple[float, float, float]) -> np.ndarray:
    """Axis-angle (3,) of the rotation ``R(rotvecs[0]) @ R(rotvecs[1]) @ ...`` (applied right to left)."""
    from icon_engine.bundle.skeleton import axis_angle_to_matrix, matrix_to_axis_angle

    m = np.eye(3)
    for r in rotvecs:
        m = m @ axis_angle_to_matrix(np.asarray(r, float))
    return matrix_to_axis_angle(m)


def _arms(pose: np.ndarray, down: float, forward: float = 0.0, elbow: float = 0.0) -> None:
    """Both arms lowered by ``down`` rad from the T-pose, swung ``forward`` rad and elbows bent ``elbow`` rad."""
    pose[16] = compose((0.0, -forward, 0.0), (0.0, 0.0, -down))
    pose[17] = compose((0.0, forward, 0.0), (0.0, 0.0, down))
    pose[18] = (0.0, -elbow, 0.0)
    pose[19] = (0.0, elbow, 0.0)


def named_pose(name: str) -> np.ndarray:
    """A (55, 3) body pose by name: standing, walking, arms_raised, crossed_arms, sitting, squat, reaching,
    one_leg, hands_on_hips, t_pose."""
    p = np.zeros((55, 3))
    if name == "t_pose":
        return p
    _arms(p, 1.25, 0.1, 0.2)
    if name == "standing":
        p[1], p[2] = (0.0, 0.0, 0.08), (0.0, 0.0, -0.08)
    elif name == "walking":
        p[1], p[2], p[4], p[5] = (-0.45, 0.0, 0.03), (0.3, 0.0, -0.03), (0.35, 0.0, 0.0), (0.6, 0.0, 0.0)
        p[16] = compose((0.35, 0.0, 0.0), (0.0, 0.0, -1.3))
        p[17] = compose((-0.4, 0.0, 0.0), (0.0, 0.0, 1.3))
        p[18], p[19] = (0.0, -0.5, 0.0), (0.0, 0.3, 0.0)
    elif name == "arms_raised":
        _arms(p, -1.2, 0.1, 0.3)
    elif name == "crossed_arms":  # upper arms turned in, forearms across the belly
        p[16] = compose((0.0, -0.35, 0.0), (0.0, 0.0, -1.25), (1.0, 0.0, 0.0))
        p[17] = compose((0.0, 0.35, 0.0), (0.0, 0.0, 1.25), (1.0, 0.0, 0.0))
        p[18], p[19] = (0.0, -1.8, 0.0), (0.0, 1.8, 0.0)
    elif name == "sitting":
        p[1], p[2], p[4], p[5] = (-1.5, 0.0, 0.1), (-1.5, 0.0, -0.1), (1.5, 0.0, 0.0), (1.5, 0.0, 0.0)
        _arms(p, 1.2, 0.4, 0.8)
    elif name == "squat":
        p[1], p[2], p[4], p[5] = (-1.2, 0.0, 0.3), (-1.2, 0.0, -0.3), (1.9, 0.0, 0.0), (1.9, 0.0, 0.0)
        p[7], p[8] = (0.4, 0.0, 0.0), (0.4, 0.0, 0.0)
        p[3] = (0.4, 0.0, 0.0)
        _arms(p, 0.4, 1.2, 0.3)
    elif name == "reaching":
        p[16] = compose((0.0, -1.3, 0.0), (0.0, 0.0, -0.2))
        p[3], p[6] = (0.2, 0.15, 0.0), (0.1, 0.1, 0.0)
    elif name == "one_leg":
        p[1], p[4] = (-1.1, 0.0, 0.1), (1.6, 0.0, 0.0)
        _arms(p, 0.6, 0.0, 0.2)
    elif name == "hands_on_hips":
        _arms(p, 1.0, -0.3, 1.7)
        p[16] = compose((0.0, 0.0, -0.9), (0.0, -0.3, 0.0))
        p[17] = compose((0.0, 0.0, 0.9), (0.0, 0.3, 0.0))
    else:
        raise ValueError(f"unknown pose {name!r}")
    return p


POSE_NAMES = ("standing", "walking", "arms_raised", "crossed_arms", "sitting", "squat", "reaching", "one_leg",
              "hands_on_hips", "t_pose")


def joint_errors(fit_joints: np.ndarray, fit_camera: Camera, gt_joints: np.ndarray, gt_camera: Camera,
                 count: int = 22) -> dict[str, float]:
    """MPJPE and PA-MPJPE (mm) over the first ``count`` joints, compared in each camera's frame with the pelvis
    aligned (MPJPE) or after Procrustes (PA-MPJPE)."""
    pred = fit_camera.to_camera(fit_joints[:count])
    gt = gt_camera.to_camera(gt_joints[:count])
    mpjpe = np.linalg.norm((pred - pred[0]) - (gt - gt[0]), axis=1).mean() * 1000.0
    pa = np.linalg.norm(procrustes_aligned(pred, gt) - gt, axis=1).mean() * 1000.0
    return {"mpjpe_mm": float(mpjpe), "pa_mpjpe_mm": float(pa)}


def facing_camera(full_pose: np.ndarray, camera: Camera) -> bool:
    """Whether a body with this global orientation turns its front (+Z of its rest frame) towards ``camera``."""
    from icon_engine.bundle.skeleton import axis_angle_to_matrix

    forward_cam = camera.R @ axis_angle_to_matrix(np.asarray(full_pose, float).reshape(-1, 3)[0]) @ [0.0, 0.0, 1.0]
    return bool(forward_cam[2] < 0.0)
