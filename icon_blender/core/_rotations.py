"""Small rotation helpers (numpy only): the engine's torch-free rotation maths, re-exported for the add-on
(axis-angle, matrices, quaternions (w, x, y, z), slerp, sign continuity; icon_engine/geometry/rotations.py)."""

from __future__ import annotations

from ..engine_link import rotations

axis_angle_to_matrix = rotations.axis_angle_to_matrix
axis_angle_to_quaternion = rotations.axis_angle_to_quaternion
matrix_to_quaternion = rotations.matrix_to_quaternion
quaternion_to_axis_angle = rotations.quaternion_to_axis_angle
quaternion_to_matrix = rotations.quaternion_to_matrix
sign_continuous = rotations.sign_continuous
slerp = rotations.slerp

__all__ = ["axis_angle_to_matrix", "axis_angle_to_quaternion", "matrix_to_quaternion", "quaternion_to_axis_angle",
           "quaternion_to_matrix", "sign_continuous", "slerp"]
