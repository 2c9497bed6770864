"""The coarse-to-fine grid evaluation shared by the surface and canonical-avatar stages
(:func:`icon_engine.geometry.implicit.evaluate_coarse_to_fine`): evaluated nodes hold the function's value, no node
is evaluated twice, the zero level is found, threads change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from icon_engine.geometry.implicit import evaluate_coarse_to_fine


class _Sphere:
    """f(p) = R − |p − c| (metres, positive inside); records every point it is asked for."""

    def __init__(self, centre: np.ndarray, radius: float) -> None:
        self.centre, self.radius = centre, radius
        self.calls: list[np.ndarray] = []

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        self.calls.append(np.array(pts))
        return self.radius - np.linalg.norm(pts - self.centre, axis=1)


def _run(workers: int = 1, cells: int = 64) -> tuple[np.ndarray, np.ndarray, _Sphere, float]:
    fn = _Sphere(np.array([0.013, -0.021, 0.007]), 0.3)
    lo, hi, h = np.array([-0.4, -0.4, -0.4]), np.array([0.4, 0.4, 0.4]), 0.8 / cells
    vol, origin = evaluate_coarse_to_fine(fn, lo, hi, h, 4, band_factor=1.5, workers=workers)
    return vol, origin, fn, h


def test_band_nodes_hold_exact_values_and_no_point_is_evaluated_twice() -> None:
    vol, origin, fn, h = _run()
    pts = np.concatenate(fn.calls)
    keys = np.round((pts - origin) / h).astype(np.int64)
    assert len(np.unique(keys, axis=0)) == len(keys)  # each node at most once (coarse nodes are fine nodes too)
    np.testing.assert_allclose(vol[tuple(keys.T)], fn(pts), atol=1e-6)
    # every node within one spacing of the sphere was evaluated, and its sign is right everywhere
    idx = np.indices(vol.shape).reshape(3, -1).T
    exact = fn(origin + h * idx).reshape(vol.shape)
    near = np.abs(exact) < h
    evaluated = np.zeros(vol.shape, dtype=bool)
    evaluated[tuple(keys.T)] = True
    assert evaluated[near].all()
    assert (np.sign(vol) == np.sign(exact))[np.abs(exact) > 1e-9].all()
    assert len(pts) < 0.3 * vol.size  # a band, not the whole grid


@pytest.mark.parametrize("workers", [2])
def test_threads_give_the_same_grid(workers: int) -> None:
    one, _, _, _ = _run(1, cells=128)
    many, _, fn, _ = _run(workers, cells=128)
    assert max(len(c) for c in fn.calls) < 60_000  # the finest band (~90k points) ran in blocks on the threads
    np.testing.assert_array_equal(one, many)
