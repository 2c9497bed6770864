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


#: Body regions by height above the floor, as shares of the stature (feet, shins, thighs, hips, torso, head).
HEIGHT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("feet", 0.0, 0.07), ("shins", 0.07, 0.28), ("thighs", 0.28, 0.48), ("hips", 0.48, 0.6),
    ("torso", 0.6, 0.82), ("head", 0.82, 10.0),
)


def region_errors(gt_points: np.ndarray, gt_normals: np.ndarray, recon_points: np.ndarray, camera_centre: np.ndarray,
                  floor_y: float, stature: float) -> dict[str, dict[str, float]]:
    """Where a reconstruction lies off the ground truth, per body region and side.

    ``gt_points`` (N, 3) samples of the true surface with their outward unit normals ``gt_normals`` (N, 3);
    ``recon_points`` (M, 3) samples of the reconstruction, in the same frame (metres, +Y up, the floor at
    ``floor_y``); ``camera_centre`` (3,). Each true point takes its height band (:data:`HEIGHT_BANDS`, shares of
    ``stature``) and side (``front``: its normal faces the camera, else ``back``). Returns, per ``"band front"`` /
    ``"band back"``: ``mean_cm`` (distance to the nearest reconstruction sample), ``signed_cm`` (that distance signed
    by the side of the true surface the sample lies on: positive outside, negative inside) and ``share`` (of the
    true points)."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(recon_points).query(gt_points)
    sign = np.sign(np.einsum("ij,ij->i", recon_points[idx] - gt_points, gt_normals))
    front = np.einsum("ij,ij->i", gt_normals, np.asarray(camera_centre, np.float64) - gt_points) > 0
    height = (gt_points[:, 1] - floor_y) / stature
    out: dict[str, dict[str, float]] = {}
    for name, lo, hi in HEIGHT_BANDS:
        for side, sel_side in (("front", front), ("back", ~front)):
            sel = sel_side & (height >= lo) & (height < hi)
            n = int(sel.sum())
            out[f"{name} {side}"] = {
                "mean_cm": float(100.0 * dist[sel].mean()) if n else float("nan"),
                "signed_cm": float(100.0 * (dist[sel] * sign[sel]).mean()) if n else float("nan"),
                "share": n / max(len(gt_points), 1),
            }
    return out
