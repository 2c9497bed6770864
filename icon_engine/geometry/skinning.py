"""Forward kinematics and linear blend skinning in numpy (torch-free; the bundle reader and the add-on use it).

Frames: the SMPL-X model frame (Y-up, metres). A pose is (J, 3) axis-angle per joint relative to its parent.
"""

from __future__ import annotations

import numpy as np

from .rotations import axis_angle_to_matrix


def forward_kinematics(
    rest_joints: np.ndarray, parents: np.ndarray, pose: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Global joint transforms of a posed skeleton.

    Args:
        rest_joints: (J, 3) joint positions in the rest pose (model frame, metres).
        parents: (J,) parent indices, -1 for the root; parents precede children.
        pose: (J, 3) axis-angle per joint, relative to the parent (SMPL-X convention).
    Returns:
        (global_rotations (J, 3, 3), posed_joints (J, 3)), before any root translation.
    """
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    rotations = axis_angle_to_matrix(np.asarray(pose, dtype=np.float64).reshape(-1, 3))
    n = len(parents)
    glob_r = np.zeros((n, 3, 3))
    glob_t = np.zeros((n, 3))
    for j in range(n):
        p = int(parents[j])
        if p < 0:
            glob_r[j] = rotations[j]
            glob_t[j] = rest_joints[j]
        else:
            glob_r[j] = glob_r[p] @ rotations[j]
            glob_t[j] = glob_r[p] @ (rest_joints[j] - rest_joints[p]) + glob_t[p]
    return glob_r, glob_t


def blended_transforms(weights: np.ndarray, rest_joints: np.ndarray, parents: np.ndarray,
                       pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex blended LBS transform: (B (N, 3, 3), t (N, 3)) such that ``posed = B v + t`` (no root
    translation). ``weights`` (N, J), the other arguments as in :func:`forward_kinematics`."""
    glob_r, glob_t = forward_kinematics(rest_joints, parents, pose)
    offsets = glob_t - np.einsum("jab,jb->ja", glob_r, np.asarray(rest_joints, dtype=np.float64))
    w = np.asarray(weights, dtype=np.float64)
    return np.einsum("vj,jab->vab", w, glob_r), w @ offsets


def skin_vertices(
    rest_vertices: np.ndarray,
    weights: np.ndarray,
    rest_joints: np.ndarray,
    parents: np.ndarray,
    pose: np.ndarray,
    transl: np.ndarray | None = None,
) -> np.ndarray:
    """Linear blend skinning: rest-pose vertices → posed vertices (model frame, metres).

    ``posed = Σ_j w_j (R_j (v − J_j) + G_j) + transl`` with (R_j, G_j) from :func:`forward_kinematics`.
    This is the bundle's contract: rest_mesh + skin_weights + rest_joints + pose + transl = posed_mesh.
    """
    blend_r, blend_t = blended_transforms(weights, rest_joints, parents, pose)
    posed = np.einsum("vab,vb->va", blend_r, np.asarray(rest_vertices, dtype=np.float64)) + blend_t
    if transl is not None:
        posed = posed + np.asarray(transl, dtype=np.float64).reshape(1, 3)
    return posed
