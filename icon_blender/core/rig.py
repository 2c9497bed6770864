"""Bone layout and SMPL-X pose conversion for a Blender armature. numpy only.

Frames: the bundle world is the SMPL-X frame (Y up, body faces +Z, metres). The add-on builds the armature
directly in Blender's Z-up frame (``Y_UP_TO_Z_UP``: +90° about X, y → z, z → −y), so the armature object keeps
an identity transform (clean FBX for Unity/Unreal). A bone's rest matrix ``R`` (3×3, armature space) has
columns (x, y, z) = the bone's local axes; Blender's bone Y runs head → tail.

Bone orientation (documented in docs/addon.md): every bone's head sits on its joint and its tail points at its
child (the mean of several children's heads for the pelvis, spine3 and wrists is not used: we pick the main
child — spine for the pelvis, neck for spine3, middle finger for the wrists); leaf bones (head, jaw, eyes,
finger tips, feet) continue their parent's direction. The roll puts the bone's local Z axis as close as
possible to the body's forward direction (−Y in Blender), or to up (+Z) when the bone itself points mostly
forward (feet, toes, jaw, eyes). Both sides therefore get mirror-consistent axes, and the FBX exporter's default
primary/secondary axes (Y, X) need no change.
"""

from __future__ import annotations

import numpy as np

#: SMPL-X / bundle world (Y up) → Blender world (Z up): +90° about X.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

#: Body forward and up in Blender's frame (the avatar faces −Y, stands along +Z).
FORWARD = np.array([0.0, -1.0, 0.0])
UP = np.array([0.0, 0.0, 1.0])

#: Preferred child of joints with several children (by SMPL-X joint name).
MAIN_CHILD = {
    "pelvis": "spine1",
    "spine3": "neck",
    "head": None,
    "left_wrist": "left_middle1",
    "right_wrist": "right_middle1",
}

#: Smallest bone length in metres (joints that coincide still get a usable bone).
MIN_BONE_LENGTH = 0.01

#: The root bone game engines expect: head at the origin on the floor, lying backwards (+Y, the avatar faces −Y)
#: with its local Z up, so its rest rotation is the identity; parent of the pelvis; never posed.
ROOT_BONE_NAME = "root"
ROOT_BONE_LENGTH = 0.25


def floor_offset(rest_vertices: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(3,) translation, bundle/SMPL-X frame (Y up, metres), that stands the rest pose on the floor: the lowest
    rest vertex at y = 0 and the pelvis (joint 0) above the origin (x = z = 0). Zero for a rest already there."""
    v = np.asarray(rest_vertices, dtype=np.float64)
    j0 = np.asarray(rest_joints, dtype=np.float64)[0]
    return np.array([-j0[0], -v[:, 1].min(), -j0[2]])


def to_blender(points: np.ndarray) -> np.ndarray:
    """SMPL-X/bundle-world points (..., 3) → Blender world points (..., 3)."""
    return np.asarray(points, dtype=np.float64) @ Y_UP_TO_Z_UP.T


def rotation_to_blender(rot: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) in the SMPL-X frame → the same rotations in Blender's frame (C·Q·Cᵀ)."""
    return Y_UP_TO_Z_UP @ np.asarray(rot, dtype=np.float64) @ Y_UP_TO_Z_UP.T


def _normalize(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-12 else v


def main_children(names: list[str] | tuple[str, ...], parents: np.ndarray) -> list[int]:
    """Index of the child each bone points at (−1 for leaves)."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for j, name in enumerate(names):
        kids = [c for c in range(len(parents)) if int(parents[c]) == j]
        if name in MAIN_CHILD:
            pick = MAIN_CHILD[name]
            out.append(index[pick] if pick is not None and pick in index else -1)
        elif len(kids) == 1:
            out.append(kids[0])
        elif kids:
            out.append(kids[0])
        else:
            out.append(-1)
    return out


def bone_layout(
    joints: np.ndarray, parents: np.ndarray, names: list[str] | tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heads, tails and rest rotations of the bones for rest joints given in Blender's frame.

    Args:
        joints: (J, 3) rest joint positions, Blender frame, metres.
        parents: (J,) parent indices (−1 for the root).
        names: joint names (used to pick the main child).
    Returns:
        heads (J, 3), tails (J, 3) and rest rotations (J, 3, 3) whose columns are the bone's x, y, z axes
        (y = head → tail, z = the roll reference made orthogonal).
    """
    joints = np.asarray(joints, dtype=np.float64)
    n = len(joints)
    child = main_children(names, parents)
    heads = joints.copy()
    dirs = np.zeros((n, 3))
    lengths = np.zeros(n)
    for j in range(n):  # parents precede children, so a leaf can reuse its parent's direction
        c = child[j]
        if c >= 0 and np.linalg.norm(joints[c] - joints[j]) > 1e-6:
            d = joints[c] - joints[j]
            dirs[j], lengths[j] = _normalize(d), np.linalg.norm(d)
        else:
            p = int(parents[j])
            dirs[j] = dirs[p] if p >= 0 and np.linalg.norm(dirs[p]) > 0 else UP
            ref = lengths[p] if p >= 0 else 0.1
            lengths[j] = 0.5 * ref
    lengths = np.maximum(lengths, MIN_BONE_LENGTH)
    tails = heads + dirs * lengths[:, None]
    rots = np.stack([bone_rotation(d) for d in dirs])
    return heads, tails, rots


def bone_rotation(direction: np.ndarray) -> np.ndarray:
    """Rest rotation (3×3, columns x, y, z) of a bone pointing along ``direction`` (Blender frame)."""
    y = _normalize(np.asarray(direction, dtype=np.float64))
    ref = FORWARD if abs(float(y @ FORWARD)) < 0.7 else UP
    z = _normalize(ref - (ref @ y) * y)
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=1)


def roll_from_rotation(rot: np.ndarray) -> float:
    """Blender's bone roll (radians) for a rest rotation (columns x, y, z; y along the bone).

    Blender builds a bone matrix from the direction y by the shortest rotation of +Y onto y, then rolls
    about y; the roll is the angle from that unrolled z axis to the wanted z axis.
    """
    rot = np.asarray(rot, dtype=np.float64)
    y = _normalize(rot[:, 1])
    base = _unrolled_basis(y)
    z0, z = base[:, 2], rot[:, 2]
    return float(np.arctan2(np.cross(z0, z) @ y, z0 @ z))


def _unrolled_basis(y: np.ndarray) -> np.ndarray:
    """Blender's bone matrix with roll 0 for direction ``y`` (vec_roll_to_mat3 without roll)."""
    x, yy, z = y
    theta = 1.0 + yy
    if theta > 1e-9:  # rotation taking +Y to y by the shortest arc
        return np.array(
            [
                [1 - x * x / theta, x, -x * z / theta],
                [-x, yy, -z],
                [-x * z / theta, z, 1 - z * z / theta],
            ]
        )
    return np.array([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])  # y = −Y


def pose_bone_quaternions(full_pose: np.ndarray, rest_rotations: np.ndarray, z_up_data: bool = False) -> np.ndarray:
    """SMPL-X axis-angle pose → pose-bone quaternions (w, x, y, z) for bones of any rest orientation.

    Args:
        full_pose: (..., J, 3) axis-angle per joint relative to its parent, SMPL-X convention.
        rest_rotations: (J, 3, 3) bone rest rotations in armature space (Blender frame), e.g. ``bone.matrix_local``.
        z_up_data: the global orientation (joint 0) maps the body into a Z-up world (AMASS); then it is taken
            as a Blender-frame rotation of the Y-up body, i.e. ``Q0_blender = Q0 · Cᵀ``.
    Returns:
        (..., J, 4) unit quaternions, ``R⁻¹ · (C Q Cᵀ) · R`` per bone (w ≥ 0 per frame; see :func:`make_continuous`).
    """
    from ._rotations import axis_angle_to_matrix, matrix_to_quaternion

    q = rotation_to_blender(axis_angle_to_matrix(full_pose))
    if z_up_data:
        q[..., 0, :, :] = np.asarray(axis_angle_to_matrix(np.asarray(full_pose)[..., 0, :])) @ Y_UP_TO_Z_UP.T
    r = np.asarray(rest_rotations, dtype=np.float64)
    basis = np.swapaxes(r, -1, -2) @ q @ r
    return matrix_to_quaternion(basis)


def root_location(
    pelvis_world: np.ndarray, rest_pelvis: np.ndarray, rest_rotation: np.ndarray
) -> np.ndarray:
    """Pose-bone ``location`` of the root bone that puts its head at ``pelvis_world``.

    Args:
        pelvis_world: (..., 3) wanted pelvis positions, Blender frame, metres.
        rest_pelvis: (3,) the pelvis bone's rest head, Blender frame.
        rest_rotation: (3, 3) the pelvis bone's rest rotation (armature space).
    Returns:
        (..., 3) locations in the bone's rest frame: ``Rᵀ (p − head)``.
    """
    d = np.asarray(pelvis_world, dtype=np.float64) - np.asarray(rest_pelvis, dtype=np.float64)
    return d @ np.asarray(rest_rotation, dtype=np.float64)


def pelvis_positions(rest_joint0_smplx: np.ndarray, transl: np.ndarray, z_up_data: bool = False) -> np.ndarray:
    """World pelvis positions (Blender frame) of an SMPL-X body: ``J0 + transl`` in the data's frame.

    For Y-up data (bundles, most SMPL-X fits) the sum is mapped to Blender's frame; for Z-up data (AMASS) the
    SMPL convention adds the model-frame J0 to a Z-up translation, which is already Blender's frame.
    """
    p = np.asarray(rest_joint0_smplx, dtype=np.float64) + np.asarray(transl, dtype=np.float64)
    return p if z_up_data else to_blender(p)


def make_continuous(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs along the first axis (time) so consecutive quaternions have a non-negative dot product.

    Blender interpolates quaternion channels component-wise; q and −q are the same rotation, but mixing them
    makes the interpolation swing through a full turn.
    """
    q = np.array(quaternions, dtype=np.float64, copy=True)
    if len(q) < 2:
        return q
    signs = np.where(np.sum(q[1:] * q[:-1], axis=-1) < 0, -1.0, 1.0)
    q[1:] *= np.cumprod(signs, axis=0)[..., None]
    return q


def pose_relative_to_rest(full_pose: np.ndarray, rest_angles: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """SMPL-X poses (relative to the T zero pose) → poses relative to a rig whose rest is ``rest_angles`` (A-pose).

    With ``A_j`` the rest's global rotations and ``Q_j`` the pose's local rotations, the rig needs
    ``P_j = A_parent · Q_j · A_j⁻¹`` (``P_0 = Q_0 · A_0⁻¹``) so that every global rotation equals SMPL-X's.

    Args:
        full_pose: (..., J, 3) axis-angle, SMPL-X convention.
        rest_angles: (J, 3) axis-angle that carries the T pose into the rig's rest pose.
        parents: (J,) parent indices.
    Returns:
        (..., J, 3) axis-angle relative to the rig's rest pose.
    """
    from ._rotations import axis_angle_to_matrix, matrix_to_quaternion, quaternion_to_axis_angle

    rest_angles = np.asarray(rest_angles, dtype=np.float64)
    if not np.any(rest_angles):
        return np.array(full_pose, dtype=np.float64, copy=True)
    local_rest = axis_angle_to_matrix(rest_angles)
    glob_rest = np.zeros_like(local_rest)
    for j, p in enumerate(parents):
        glob_rest[j] = local_rest[j] if p < 0 else glob_rest[int(p)] @ local_rest[j]
    q = axis_angle_to_matrix(full_pose)
    parent_rest = np.stack([glob_rest[int(p)] if p >= 0 else np.eye(3) for p in parents])
    rel = parent_rest @ q @ np.swapaxes(glob_rest, -1, -2)
    return quaternion_to_axis_angle(matrix_to_quaternion(rel))
