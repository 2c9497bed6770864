"""The fit's speed plumbing (issue 16): nearest-vertex search, device handling, iteration budget."""

from __future__ import annotations

import numpy as np
import torch

from icon_engine.fit.silhouette import nearest_index


def test_nearest_index_matches_the_distance_matrix():
    """The CPU k-d tree picks the nearest point of every query, as the full distance matrix does."""
    rng = np.random.default_rng(0)
    points = torch.as_tensor(rng.uniform(0, 256, size=(2500, 2)), dtype=torch.float32).requires_grad_(True)
    queries = torch.as_tensor(rng.uniform(-20, 276, size=(900, 2)), dtype=torch.float32)
    got = nearest_index(queries, points)
    want = torch.cdist(queries.double(), points.detach().double()).argmin(dim=1)
    assert got.dtype == torch.int64 and got.shape == (900,)
    assert torch.equal(got, want)
