"""Stature of a shaped body and the constraint that pins it to a known height (torch).

Stature = vertical extent (metres, Y up) of the body in its rest pose (zero pose: standing straight, feet flat),
the top of the head to the soles: what a tape measure gives barefoot. Rest vertices are linear in ``betas`` for
SMPL-X-style models, so the stature is the difference of two maxima of linear functions; this module keeps the
few vertices that can be the top or the bottom for plausible shapes and evaluates them exactly.

Without a known height the fit's stature comes from its shape (proportions of the fitted body) pulled towards a
population prior (:data:`PRIOR_MEAN_M`, :data:`PRIOR_STD_M`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..geometry.device import module_device

#: Adult stature prior (metres): the mean of adult women and men and a spread covering both.
PRIOR_MEAN_M = 1.70
PRIOR_STD_M = 0.09
#: Vertices kept as candidates for the top and for the bottom of the body.
CANDIDATES = 64


@dataclass
class StatureModel:
    """Stature as a function of ``betas``: ``max(top0 + betas·top_dirs) − min(bottom0 + betas·bottom_dirs)``."""

    top0: torch.Tensor  # (C,) rest-pose y of the top candidates at betas = 0
    top_dirs: torch.Tensor  # (B, C) change per unit beta
    bottom0: torch.Tensor  # (C,)
    bottom_dirs: torch.Tensor  # (B, C)

    @classmethod
    def from_body_model(cls, body_model: Any, device: torch.device | str = "cpu") -> StatureModel:
        """Sample the body model's rest vertices at betas = 0 and each unit beta; the model's tensors on
        ``device``."""
        nb = int(getattr(body_model, "num_betas", 10))
        model_device = module_device(body_model)
        betas = torch.cat([torch.zeros(1, nb, device=model_device), torch.eye(nb, device=model_device)])
        with torch.no_grad():
            v = body_model.rest_vertices(betas)[..., 1].detach().cpu().double()  # (B+1, V) heights
        dirs = v[1:] - v[0]
        # a vertex can be the extreme for some shape within ±3σ only if it is close to the extreme at the mean
        spread = 3.0 * dirs.abs().sum(0)
        top = torch.nonzero(v[0] + spread >= (v[0] - spread).max()).flatten()
        bottom = torch.nonzero(v[0] - spread <= (v[0] + spread).min()).flatten()
        top = top[torch.argsort(v[0][top], descending=True)][:CANDIDATES]
        bottom = bottom[torch.argsort(v[0][bottom])][:CANDIDATES]
        f32, dev = torch.float32, torch.device(device)
        return cls(v[0][top].to(dev, f32), dirs[:, top].to(dev, f32), v[0][bottom].to(dev, f32),
                   dirs[:, bottom].to(dev, f32))

    def __call__(self, betas: torch.Tensor) -> torch.Tensor:
        """Stature (metres, scalar tensor) of ``betas`` (B,) (shorter vectors are zero-padded)."""
        b = _pad(betas, self.top_dirs.shape[0])
        return (self.top0 + b @ self.top_dirs).max() - (self.bottom0 + b @ self.bottom_dirs).min()

    def gradient(self, betas: torch.Tensor) -> torch.Tensor:
        """d stature / d betas (B,) at ``betas`` (the active top and bottom vertices; picked on the device, no
        read back to the host)."""
        b = _pad(betas, self.top_dirs.shape[0]).detach()
        i = torch.argmax(self.top0 + b @ self.top_dirs).reshape(1)
        k = torch.argmin(self.bottom0 + b @ self.bottom_dirs).reshape(1)
        return (self.top_dirs.index_select(1, i) - self.bottom_dirs.index_select(1, k))[:, 0]

    def project(self, betas: torch.Tensor, height_m: float, steps: int = 3) -> torch.Tensor:
        """The betas (all ``num_betas``) nearest to ``betas`` whose stature is ``height_m`` (differentiable).

        Each step moves along the stature gradient by the remaining difference; stature is piecewise linear in
        betas, so the result is exact (to float precision) once the extreme vertices stop changing."""
        out = _pad(betas, self.top_dirs.shape[0])
        for _ in range(steps):
            g = self.gradient(out)
            out = out + g * (height_m - self(out)) / g.dot(g).clamp(min=1e-12)
        return out


def _pad(betas: torch.Tensor, n: int) -> torch.Tensor:
    betas = betas.reshape(-1).to(torch.float32)
    if betas.shape[0] >= n:
        return betas[:n]
    return torch.cat([betas, torch.zeros(n - betas.shape[0], dtype=betas.dtype, device=betas.device)])


def stature_prior_loss(stature: torch.Tensor) -> torch.Tensor:
    """Gaussian prior on the stature in standard deviations squared: ((s − mean) / std)²."""
    return ((stature - PRIOR_MEAN_M) / PRIOR_STD_M) ** 2


def stature_of(body_model: Any, betas: np.ndarray) -> float:
    """Rest-pose stature (metres) of ``betas`` from the full body model (all vertices)."""
    nb = int(getattr(body_model, "num_betas", 10))
    b = _pad(torch.as_tensor(np.asarray(betas, dtype=np.float32), device=module_device(body_model)), nb)[None]
    with torch.no_grad():
        y = body_model.rest_vertices(b)[0, :, 1]
    return float(y.max() - y.min())
