"""Kinematics and linear blend skinning in torch: batched, differentiable (the body model and the fit use them).

The same maths as :mod:`.skinning` (numpy), in the style of a pure-function LBS module: tensors in, tensors out.
Frames: the SMPL-X model frame (Y-up, metres). Poses are axis-angle per joint relative to the parent joint.
Leading dimensions ``...`` are batch dimensions and are broadcast.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (..., 3) axis-angle (radians) → (..., 3, 3) rotation matrices; differentiable at zero."""
    angle = torch.sqrt((axis_angle * axis_angle).sum(-1, keepdim=True) + 1e-12)
    axis = axis_angle / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(axis_angle.shape[:-1] + (3, 3))
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


@lru_cache(maxsize=8)
def kinematic_levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Joints grouped by depth below the root (level 0 = the roots); each level depends only on earlier ones."""
    depth: list[int] = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError("parents must precede their children")
        depth.append(0 if p < 0 else depth[p] + 1)
    return tuple(tuple(j for j, d in enumerate(depth) if d == level) for level in range(max(depth) + 1))


def forward_kinematics(rotations: torch.Tensor, rest_joints: torch.Tensor,
                       parents: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Global joint transforms of posed skeletons, one tree level at a time.

    Args:
        rotations: (..., J, 3, 3) local joint rotations (relative to the parent).
        rest_joints: (..., J, 3) joint positions in the rest pose (metres).
        parents: J parent indices, -1 for a root; parents precede children.
    Returns:
        (global rotations (..., J, 3, 3), posed joint positions (..., J, 3)), before any root translation.
    """
    parents = tuple(int(p) for p in parents)
    # numpy's broadcast rule: torch.broadcast_shapes imports sympy on first use (0.5-1 s of every cold start)
    batch = torch.Size(np.broadcast_shapes(tuple(rotations.shape[:-3]), tuple(rest_joints.shape[:-2])))
    rotations = rotations.expand(batch + rotations.shape[-3:])
    rest_joints = rest_joints.expand(batch + rest_joints.shape[-2:])
    n = len(parents)
    glob_r: list[torch.Tensor | None] = [None] * n
    glob_t: list[torch.Tensor | None] = [None] * n
    for level in kinematic_levels(parents):
        idx = list(level)
        if parents[idx[0]] < 0:
            for j in idx:
                glob_r[j], glob_t[j] = rotations[..., j, :, :], rest_joints[..., j, :]
            continue
        par = [parents[j] for j in idx]
        r_par = torch.stack([glob_r[p] for p in par], -3)  # (..., L, 3, 3)
        t_par = torch.stack([glob_t[p] for p in par], -2)  # (..., L, 3)
        bone = rest_joints[..., idx, :] - rest_joints[..., par, :]
        r_new = r_par @ rotations[..., idx, :, :]
        t_new = (r_par @ bone[..., None])[..., 0] + t_par
        for k, j in enumerate(idx):
            glob_r[j], glob_t[j] = r_new[..., k, :, :], t_new[..., k, :]
    return torch.stack(glob_r, -3), torch.stack(glob_t, -2)


def skinning_transforms(global_rotations: torch.Tensor, posed_joints: torch.Tensor,
                        rest_joints: torch.Tensor) -> torch.Tensor:
    """Per-joint affine maps rest → posed as (..., J, 12): the 3×3 rotation (row-major) then the translation
    ``G_j − R_j J_j``, so that a rest point ``v`` rigidly attached to joint j goes to ``R_j v + t_j``."""
    offsets = posed_joints - (global_rotations @ rest_joints[..., None])[..., 0]
    return torch.cat([global_rotations.flatten(-2), offsets], -1)


def skin_points(weights: torch.Tensor, transforms: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning of rest ``points`` (..., N, 3) with ``weights`` (N, J) and the per-joint
    ``transforms`` (..., J, 12) of :func:`skinning_transforms` → posed points (..., N, 3)."""
    blended = weights @ transforms  # (..., N, 12)
    rot = blended[..., :9].unflatten(-1, (3, 3))
    return (rot @ points[..., None])[..., 0] + blended[..., 9:]
