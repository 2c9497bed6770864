"""Pose correctives stored in a bundle: shape keys driven by joint rotations (numpy only; the add-on reads them).

``offsets`` (K, N, 3) rest frame of the rig, metres per unit of key value; key k is driven by joint
``key_joint[k]`` through ``key_coeffs[k]`` (9,)::

    value_k(θ) = key_coeffs[k] · vec(R_{key_joint[k]}(θ) − I)        d(θ) = Σ_k value_k(θ) · offsets[k]
    posed = skin_vertices(rest + d(θ), ...)

with ``R_j(θ)`` joint j's local rotation relative to the rig's rest pose (``rig.pose_from_rest`` convention,
SMPL-X world axes) and ``vec`` row-major. Zero at the rest pose. Fitted by :mod:`icon_engine.correctives`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .skeleton import JOINT_NAMES, axis_angle_to_matrix

#: Most shape keys a bundle may carry, and the largest offset (metres) a key may hold (trust rules).
MAX_KEYS = 512
MAX_KEY_OFFSET = 1.0


def pose_features(pose_from_rest: np.ndarray) -> np.ndarray:
    """(55, 9) ``vec(R_j − I)`` row-major of every joint's local rotation (pose (55, 3) axis-angle)."""
    rot = axis_angle_to_matrix(np.asarray(pose_from_rest, dtype=np.float64).reshape(-1, 3))
    return (rot - np.eye(3)).reshape(len(rot), 9)


@dataclass
class Correctives:
    """Pose correctives of an avatar with N vertices: ``offsets`` (K, N, 3) rest frame, metres per unit of the
    key value; ``key_joint`` (K,) the joint driving each key; ``key_coeffs`` (K, 9) the key value's weights on
    ``vec(R_j − I)`` (row-major, SMPL-X axes, R_j relative to the rig's rest pose); ``stats`` (leave-one-out
    figures, kept and dropped joints)."""

    offsets: np.ndarray
    key_joint: np.ndarray
    key_coeffs: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def key_values(self, pose_from_rest: np.ndarray) -> np.ndarray:
        """(K,) shape-key values for a pose (55, 3) axis-angle relative to the rig's rest pose."""
        feats = pose_features(pose_from_rest)  # (55, 9)
        return np.einsum("ke,ke->k", self.key_coeffs, feats[self.key_joint])

    def displacement(self, pose_from_rest: np.ndarray) -> np.ndarray:
        """(N, 3) rest-frame offsets (metres) the correctives add to the rest mesh in this pose."""
        return np.einsum("k,kni->ni", self.key_values(pose_from_rest), self.offsets)

    @property
    def count(self) -> int:
        """Number of shape keys."""
        return len(self.key_joint)

    @property
    def metadata(self) -> dict[str, Any]:
        """``bundle.json["correctives"]`` (the offsets go to ``corrective_offsets.npy``)."""
        return {"features": "vec(R_j - I), row-major, R_j local rotation relative to the rig's rest pose",
                "key_joint": [int(j) for j in self.key_joint],
                "key_names": [JOINT_NAMES[int(j)] for j in self.key_joint],
                "key_coeffs": np.asarray(self.key_coeffs, dtype=np.float64).tolist(), "stats": self.stats}
