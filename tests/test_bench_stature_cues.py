"""`bench/stature_cues.py`'s measures (wave 34): the scale-free shape and the length ratios a photo could show at
best do not change when a body is scaled or moved, and the regressions recover a known relation. The study itself
(anny's population) is a benchmark, not a test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.stature_cues import RATIOS, linear_fit, linear_predict, ratios, scale_free
from icon_engine.body_model import load_body_model


@pytest.fixture(scope="module")
def bodies():
    """Two open-body shapes in the rest pose: (vertices (2, V, 3), joints (2, 55, 3)), metres, Y up."""
    model = load_body_model()
    betas = torch.zeros(2, model.num_betas, dtype=model.v_template.dtype)
    betas[1, 0], betas[1, 1] = 1.5, -1.0
    with torch.no_grad():
        return model.rest_vertices(betas).double().numpy(), model.rest_joints(betas).double().numpy()


def test_a_scaled_and_moved_body_has_the_same_scale_free_shape_and_ratios(bodies):
    verts, joints = bodies
    shape, stature = scale_free(verts)
    moved = 1.3 * verts + np.array([0.2, -0.5, 3.0])
    shape_m, stature_m = scale_free(moved)
    np.testing.assert_allclose(stature_m, 1.3 * stature, rtol=1e-12)
    np.testing.assert_allclose(shape_m, shape, atol=1e-12)
    assert np.abs(shape[0] - shape[1]).max() > 1e-3  # two different shapes stay different
    r = ratios(verts, joints, stature)
    r_m = ratios(moved, 1.3 * joints + np.array([0.2, -0.5, 3.0]), stature_m)
    assert set(r) == set(RATIOS)
    for label in RATIOS:
        np.testing.assert_allclose(r_m[label], r[label], rtol=1e-10)
        assert np.all((r[label] > 0.05) & (r[label] < 0.5)), label  # each a body part's share of the stature


def test_the_head_ratio_is_the_head_top_above_the_neck_joint_over_the_stature(bodies):
    verts, joints = bodies
    _, stature = scale_free(verts)
    neck = 12  # SMPL-X joint order
    expected = (verts[:, :, 1].max(1) - joints[:, neck, 1]) / stature
    np.testing.assert_allclose(ratios(verts, joints, stature)["head (top − neck)"], expected, rtol=1e-12)


def test_the_regression_recovers_a_linear_relation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = 0.5 + x @ np.array([1.0, -2.0, 0.25])
    coef = linear_fit(x, y)
    np.testing.assert_allclose(coef, [0.5, 1.0, -2.0, 0.25], atol=1e-10)
    np.testing.assert_allclose(linear_predict(coef, x[:5]), y[:5], atol=1e-10)
