"""The SMPL-X skeleton (55 joints); its numpy kinematics and skinning live in :mod:`icon_engine.geometry`
(re-exported here for the bundle's readers). Torch-free.

Frames: the SMPL-X model frame (Y-up, body faces +Z, metres). A pose is one axis-angle vector per joint,
relative to the parent joint, in the rest frame whose axes equal the model axes (SMPL-X convention).
"""

from __future__ import annotations

from ..geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion
from ..geometry.skinning import blended_transforms, forward_kinematics, skin_vertices

__all__ = ["JOINT_NAMES", "NUM_BODY_JOINTS", "NUM_JOINTS", "PARENTS", "axis_angle_to_matrix", "blended_transforms",
           "forward_kinematics", "matrix_to_axis_angle", "matrix_to_quaternion", "skin_vertices"]

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
