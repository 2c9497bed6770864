"""The SMPL-X skeleton (55 joints) and numpy linear blend skinning. Torch-free.

Frames: the SMPL-X model frame (Y-up, body faces +Z, metres). A pose is one axis-angle vector per joint,
relative to the parent joint, in the rest frame whose axes equal the model axes (SMPL-X convention).
"""

from __future__ import annotations

import numpy as np

#: The 55 SMPL-X skeleton joints in pose-vector order.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)  # fmt: skip

#: Parent index of each joint (-1 for the pelvis).
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip

NUM_JOINTS = 55
NUM_BODY_JOINTS = 21  # body_pose covers joints 1..21


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) axis-angle (radians) → (..., 3, 3) rotation matrices."""
    aa = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.maximum(angle, 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    s = np.sin(angle)[..., None]
    c = np.cos(angle)[..., None]
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + s * k + (1.0 - c) * (k @ k)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices → (..., 3) axis-angle (radians), robust near 0 and π."""
    m = np.asarray(matrix, dtype=np.float64)
    q = matrix_to_quaternion(m)
    w = np.clip(q[..., 0], -1.0, 1.0)
    xyz = q[..., 1:]
    sin_half = np.linalg.norm(xyz, axis=-1)
    angle = 2.0 * np.arctan2(sin_half, w)
    scale = np.where(sin_half > 1e-12, angle / np.maximum(sin_half, 1e-12), 2.0)
    return xyz * scale[..., None]


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices → (..., 4) unit quaternions (w, x, y, z) with w ≥ 0."""
    m = np.asarray(matrix, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = np.stack(
        [
            np.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                      m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                      m[..., 0, 2] + m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                      m[..., 1, 2] + m[..., 2, 1]], -1),
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                      1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )  # fmt: skip
    diag = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


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
    glob_r, glob_t = forward_kinematics(rest_joints, parents, pose)
    v = np.asarray(rest_vertices, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    # Per-joint affine transform A_j(v) = R_j v + (G_j - R_j J_j); blend the 3x4 matrices by weight.
    offsets = glob_t - np.einsum("jab,jb->ja", glob_r, np.asarray(rest_joints, dtype=np.float64))
    blend_r = np.einsum("vj,jab->vab", w, glob_r)
    blend_t = w @ offsets
    posed = np.einsum("vab,vb->va", blend_r, v) + blend_t
    if transl is not None:
        posed = posed + np.asarray(transl, dtype=np.float64).reshape(1, 3)
    return posed
