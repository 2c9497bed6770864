"""Metric maths of the benchmarks (numpy)."""

from __future__ import annotations

import numpy as np


def procrustes_aligned(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` (N, 3) after the similarity transform (rotation, scale, translation) that best fits ``gt`` (N, 3),
    both in one frame and unit (least squares; the rotation is proper, no reflection)."""
    mp, mg = pred.mean(0), gt.mean(0)
    a, b = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    D = np.diag([1.0, 1.0, d])
    R = u @ D @ vt
    scale = (s * np.diag(D)).sum() / max((a**2).sum(), 1e-12)
    return scale * a @ R + mg
