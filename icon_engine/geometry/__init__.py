"""Shared geometry of the engine: one home for each piece of maths that several stages use.

- :mod:`.rotations` — axis-angle, rotation matrices and quaternions (numpy, torch-free: the add-on imports it).
- :mod:`.skinning` — forward kinematics and linear blend skinning of the SMPL-X skeleton (numpy, torch-free).
- :mod:`.torch_skinning` — the same kinematics and skinning in torch, batched and differentiable (body model,
  fit).

Frames: the SMPL-X model frame (Y-up, a body with zero global orientation faces +Z, its left is +X, metres).
A pose is one axis-angle vector per joint, relative to the parent joint (SMPL-X convention).
"""
