"""Pose correctives as Blender shape keys driven by the bones (numpy only; the bpy glue is in blender/importer).

A bundle's key k (``icon_engine.bundle.correctives``) has the value ``c_k · vec(Q_j − I)`` with ``Q_j`` the
joint's rotation relative to the rig's rest in SMPL-X world axes (row-major ``vec``). Blender poses the bone with
the quaternion ``M = S⁻¹ Q S`` (``S = C⁻¹ R``: R the bone's rest matrix in armature space, C the Y-up → Z-up
rotation; icon_blender.core.rig), so ``Q − I = S (M − I) Sᵀ`` and ``vec(Q − I) = (S ⊗ S) vec(M − I)``: the key
value is ``((S ⊗ S)ᵀ c_k) · vec(M − I)``, a sum of the quadratic quaternion terms below — a driver's simple
expression (no Python needed, so it runs with auto-run scripts off) over the pose bone's quaternion w, x, y, z.
"""

from __future__ import annotations

import numpy as np

from .rig import Y_UP_TO_Z_UP

#: vec(M − I) (row-major) of the rotation matrix of a unit quaternion (w, x, y, z), as driver expressions.
ROTATION_MINUS_IDENTITY = (
    "-2*(y*y+z*z)", "2*(x*y-w*z)", "2*(x*z+w*y)",
    "2*(x*y+w*z)", "-2*(x*x+z*z)", "2*(y*z-w*x)",
    "2*(x*z-w*y)", "2*(y*z+w*x)", "-2*(x*x+y*y)",
)  # fmt: skip


def bone_coefficients(key_coeffs: np.ndarray, bone_rest: np.ndarray) -> np.ndarray:
    """(9,) weights of a key on ``vec(M − I)`` of its pose bone, from its weights (9,) on ``vec(Q − I)`` (SMPL-X
    axes) and the bone's rest rotation (3, 3), armature space, Blender frame."""
    s = Y_UP_TO_Z_UP.T @ np.asarray(bone_rest, dtype=np.float64)
    return np.kron(s, s).T @ np.asarray(key_coeffs, dtype=np.float64)


def driver_expression(coefficients: np.ndarray, tolerance: float = 1e-7) -> str:
    """The driver expression of a key value over the pose bone's quaternion variables w, x, y, z."""
    terms = [f"{c:+.7g}*{m}" for c, m in zip(coefficients, ROTATION_MINUS_IDENTITY, strict=True)
             if abs(c) > tolerance]
    return " ".join(terms).lstrip("+") if terms else "0"

