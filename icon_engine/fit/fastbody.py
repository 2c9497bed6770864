"""A light differentiable copy of a body model for the fit loop: shape blend, forward kinematics and linear
blend skinning of a vertex subset and the regressed keypoints, without pose correctives.

The body model is sampled once (zero pose, ``betas = 0`` and each unit beta): rest vertices, joints and
keypoints are linear in ``betas`` for SMPL-X-style models, so this copy is exact for shape. Pose correctives
(``posedirs``; zero for the open body) are left out while fitting; the final body comes from the real model.
Frames: the body world (SMPL-X frame, metres); pose is (55, 3) axis-angle relative to the parent joint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..bundle.skeleton import PARENTS
from ..geometry.device import module_device
from ..geometry.torch_skinning import axis_angle_to_matrix, forward_kinematics, skin_points, skinning_transforms


def _as_np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


class FastBody:
    """Shape-linear, skinned copy of ``body_model`` restricted to ``vertex_subset`` (indices into its vertices);
    its tensors on ``device`` (default: the body model's)."""

    def __init__(self, body_model: Any, vertex_subset: np.ndarray, device: torch.device | str | None = None) -> None:
        self.num_betas = int(getattr(body_model, "num_betas", 10))
        self.device = module_device(body_model) if device is None else torch.device(device)
        v, j, k = self._sample(body_model)
        self.subset = np.asarray(vertex_subset, dtype=np.int64)
        weights = _as_np(body_model.lbs_weights)

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.tensor(array, dtype=torch.float32, device=self.device)

        self.j0 = put(j[0])  # (55, 3) the mean shape's joints
        # the rest vertex subset, joints and keypoints stacked (S + 55 + K rows): the three shape blends are one
        # product per fit step, (B,) betas times the (B, 3 (S + 55 + K)) unit-beta offsets
        rest0 = np.concatenate([v[0][self.subset], j[0], k[0]])
        self._rest0 = put(rest0).flatten()
        self._rest_dirs = put(np.concatenate([v[1:, self.subset], j[1:], k[1:]], axis=1) - rest0).flatten(1)
        self._rest_split = (len(self.subset), len(j[0]), len(k[0]))
        self.w = put(weights[self.subset])  # (S, 55)
        if k.shape[1]:  # a keypoint follows the skinning of its nearest rest vertex
            near = np.argmin(((v[0][:, None, :] - k[0][None]) ** 2).sum(-1), axis=0) if v.shape[1] < 30000 else \
                np.array([np.argmin(((v[0] - p) ** 2).sum(-1)) for p in k[0]])
            self.kw = put(weights[near])
        else:
            self.kw = put(np.zeros((0, weights.shape[1])))

    def _sample(self, model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rest vertices, joints, keypoints for betas = 0 and each unit beta: (B+1, ·, 3) each."""
        dev = module_device(model)
        betas = torch.cat([torch.zeros(1, self.num_betas, device=dev), torch.eye(self.num_betas, device=dev)])
        with torch.no_grad():
            out = model(betas=betas)
        kp = getattr(out, "keypoints", None)
        ks = _as_np(kp) if kp is not None else np.zeros((self.num_betas + 1, 0, 3))
        return _as_np(out.vertices), _as_np(out.joints)[:, :55], ks

    def rest(self, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rest (vertex subset (S, 3), joints (55, 3), keypoints (K, 3)) for ``betas`` (num_betas,)."""
        rest = (self._rest0 + betas @ self._rest_dirs).view(-1, 3)
        v, j, k = rest.split(self._rest_split)
        return v, j, k

    def forward(self, betas: torch.Tensor, pose: torch.Tensor, transl: torch.Tensor,
                with_vertices: bool = True) -> dict[str, torch.Tensor]:
        """Posed ``joints`` (55, 3), ``keypoints`` (K, 3), ``rotations`` (55, 3, 3) and (optionally) ``vertices``
        (S, 3) of the subset, world frame, for ``betas`` (nb,), ``pose`` (55, 3), ``transl`` (3,)."""
        v_rest, j_rest, k_rest = self.rest(betas)
        G, T = forward_kinematics(axis_angle_to_matrix(pose), j_rest, PARENTS)
        A = skinning_transforms(G, T, j_rest)  # (55, 12)
        out = {"joints": T + transl, "rotations": G}
        out["keypoints"] = skin_points(self.kw, A, k_rest) + transl
        if with_vertices:
            out["vertices"] = skin_points(self.w, A, v_rest) + transl
        return out
