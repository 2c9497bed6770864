"""2-D registration of masks in image pixels: a mask's outline and the search for the integer shift that best lays
one outline onto another (the texture's other photos, :func:`icon_engine.texture.silhouette_shift`), and the
overlap of two masks. Numpy only; pixels as (column, row)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of ``mask`` (H, W) bool with a 4-neighbour outside it (the image border counts as
    outside)."""
    pad = np.pad(mask, 1)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return mask & ~interior


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def search_shift(cost: Callable[[np.ndarray], np.ndarray], max_shift: int, step: int, radius: int,
                 min_gain: float) -> np.ndarray:
    """(dx, dy) float pixels: the integer shift within ± ``max_shift`` that minimises ``cost`` ((S, 2) int shifts →
    (S,) costs), found on a grid of ``step`` pixels and refined within ± ``radius`` of the grid's best; zeros unless
    it lowers the cost of no shift by the fraction ``min_gain``."""
    grid = np.arange(-max_shift, max_shift + 1, step)
    shifts = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    best = shifts[np.argmin(cost(shifts))]
    fine = np.arange(-radius, radius + 1)
    near = best[None] + np.stack(np.meshgrid(fine, fine, indexing="ij"), axis=-1).reshape(-1, 2)
    near = near[(np.abs(near) <= max_shift).all(axis=1)]
    c = cost(near)
    if float(c.min()) > (1.0 - min_gain) * float(cost(np.zeros((1, 2), dtype=np.int64))[0]):
        return np.zeros(2)
    return near[np.argmin(c)].astype(np.float64)
