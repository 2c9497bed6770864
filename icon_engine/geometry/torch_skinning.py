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


def _depths(parents: tuple[int, ...]) -> list[int]:
    """Each joint's depth below its root (a root: 0); parents must precede their children."""
    depth: list[int] = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError("parents must precede their children")
        depth.append(0 if p < 0 else depth[p] + 1)
    return depth


class _JumpPlan:
    """Index tensors of :func:`forward_kinematics` for one skeleton on one device: ``parent`` each joint's parent
    (itself for a root), ``root`` whether it is one, and ``ancestors`` one (J + 1,) index per doubling step: the
    ancestor 2^k levels up of each joint at step k, or J (an identity transform appended after the joints) beyond
    its root; ceil(log2(depth + 1)) steps compose every chain."""

    def __init__(self, parents: tuple[int, ...], device: torch.device) -> None:
        depth = _depths(parents)
        count = len(parents)
        up = [p if p >= 0 else count for p in parents] + [count]
        self.ancestors: list[torch.Tensor] = []
        while (1 << len(self.ancestors)) <= max(depth, default=0):
            self.ancestors.append(torch.tensor(up, device=device))
            up = [up[a] for a in up]
        self.parent = torch.tensor([j if p < 0 else p for j, p in enumerate(parents)], device=device)
        self.root = torch.tensor([p < 0 for p in parents], device=device)[:, None]


@lru_cache(maxsize=16)
def _jump_plan(parents: tuple[int, ...], device: torch.device) -> _JumpPlan:
    """The cached :class:`_JumpPlan` (made once per skeleton and device: no host-to-device copies per call)."""
    return _JumpPlan(parents, device)


def forward_kinematics(rotations: torch.Tensor, rest_joints: torch.Tensor,
                       parents: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Global joint transforms of posed skeletons by pointer jumping over the tree.

    Args:
        rotations: (..., J, 3, 3) local joint rotations (relative to the parent).
        rest_joints: (..., J, 3) joint positions in the rest pose (metres).
        parents: J parent indices, -1 for a root; parents precede children.
    Returns:
        (global rotations (..., J, 3, 3), posed joint positions (..., J, 3)), before any root translation.

    Each joint starts with its transform relative to its parent; every step composes it with the transform its
    current ancestor holds and moves the ancestor twice as far up, so a tree of depth D takes ceil(log2(D + 1))
    steps of a few batched operations over all joints (SMPL-X: 4 steps, where one step per tree level took 10):
    the fit's forward and backward passes pay per operation, not per joint.
    """
    parents = tuple(int(p) for p in parents)
    # numpy's broadcast rule: torch.broadcast_shapes imports sympy on first use (0.5-1 s of every cold start)
    batch = torch.Size(np.broadcast_shapes(tuple(rotations.shape[:-3]), tuple(rest_joints.shape[:-2])))
    rotations = rotations.expand(batch + rotations.shape[-3:])
    rest_joints = rest_joints.expand(batch + rest_joints.shape[-2:])
    plan = _jump_plan(parents, rest_joints.device)
    count = len(parents)
    bone = torch.where(plan.root, rest_joints, rest_joints - rest_joints.index_select(-2, plan.parent))
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device).expand(batch + (1, 3, 3))
    rot = torch.cat([rotations, eye], -3)  # (..., J + 1, 3, 3): the last one the identity beyond every root
    trans = torch.cat([bone, bone.new_zeros(batch + (1, 3))], -2)[..., None]  # (..., J + 1, 3, 1)
    for up in plan.ancestors:
        rot_up = rot.index_select(-3, up)
        trans = rot_up @ trans + trans.index_select(-3, up)
        rot = rot_up @ rot
    return rot[..., :count, :, :], trans[..., :count, :, 0]


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
