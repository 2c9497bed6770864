"""The photo's directional light (icon_engine.lighting) and the hidden side's fill (issue 15, wave 10): in sunlight a
jumper's belly facing the ground is in deep shadow (dev photo icon_fb9d20fd), and the fill, which prefers samples
near the silhouette, gave the front of his grey shirt the shadow's dark brown. Samples in shadow now weigh less."""

from __future__ import annotations

import numpy as np
import pytest

from icon_engine.lighting import MAX_FACTOR, fit_directional_light, shading_factors
from icon_engine.texture import PART_LEFT_ARM, PART_TORSO, SEEN_ALPHA, unseen_side_fill

VIEW_AXIS = np.array([0.0, 0.0, -1.0])  # the camera looks along −Z at a person facing +Z


def _hemisphere(count: int, rng: np.random.Generator) -> np.ndarray:
    """Unit normals (count, 3) facing the camera (+Z)."""
    n = rng.normal(size=(count, 3))
    n[:, 2] = np.abs(n[:, 2])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_the_light_across_the_view_is_recovered_with_one_albedo_per_part():
    rng = np.random.default_rng(0)
    n = _hemisphere(3000, rng)
    parts = rng.integers(0, 3, len(n))
    albedo = np.array([40.0, 90.0, 150.0])[parts]
    light = np.array([0.3, 0.6, 0.4])  # towards the camera too: that part is left out (prints face the camera)
    colours = (albedo * np.exp(n @ light) * rng.lognormal(0.0, 0.08, len(n)))[:, None] * np.ones(3)
    fitted = fit_directional_light(n, colours, parts, VIEW_AXIS)
    assert fitted is not None and fitted.significant
    np.testing.assert_allclose(fitted.vector, [0.3, 0.6, 0.0], atol=0.04)
    assert fitted.explained > 0.5


def test_soft_light_is_left_alone():
    rng = np.random.default_rng(1)
    n = _hemisphere(3000, rng)
    parts = rng.integers(0, 3, len(n))
    colours = (np.array([40.0, 90.0, 150.0])[parts] * rng.lognormal(0.0, 0.15, len(n)))[:, None] * np.ones(3)
    fitted = fit_directional_light(n, colours, parts, VIEW_AXIS)
    assert fitted is not None and not fitted.significant
    np.testing.assert_array_equal(shading_factors(n, fitted), np.ones(len(n)))
    assert fit_directional_light(n[:50], colours[:50], parts[:50], VIEW_AXIS) is None  # too few samples


def test_a_light_from_below_is_albedo_not_light():
    """Y up: a "light" from below the horizon is not used (black shorts over bare legs fit one that way)."""
    rng = np.random.default_rng(3)
    n = _hemisphere(3000, rng)
    parts = np.zeros(len(n), dtype=int)
    for light, used in (([0.3, -0.6, 0.0], False), ([0.6, -0.1, 0.0], True), ([0.0, 0.6, 0.0], True)):
        colours = (100.0 * np.exp(n @ np.array(light)) * rng.lognormal(0.0, 0.05, len(n)))[:, None] * np.ones(3)
        fitted = fit_directional_light(n, colours, parts, VIEW_AXIS)
        assert fitted is not None and fitted.strength > 0.5 and fitted.explained > 0.5
        assert fitted.significant is used, light
        assert bool((shading_factors(n, fitted) != 1.0).any()) == used


def test_factors_are_relative_to_the_reference_median_and_capped():
    rng = np.random.default_rng(2)
    n = _hemisphere(2000, rng)
    parts = np.zeros(len(n), dtype=int)
    colours = (100.0 * np.exp(n @ np.array([2.0, 0.0, 0.0])))[:, None] * np.ones(3)
    fitted = fit_directional_light(n, colours, parts, VIEW_AXIS)
    reference = n[:, 0] > 0.0
    f = shading_factors(n, fitted, reference)
    assert abs(np.median(np.log(f[reference]))) < 1e-6
    assert f.max() <= MAX_FACTOR + 1e-9 and f.min() >= 1.0 / MAX_FACTOR - 1e-9


@pytest.fixture(scope="module")
def lit_torso():
    """A vertical cylinder torso (radius 15 cm, 1.0–1.6 m) and an arm beside it, rest pose = photo pose, facing +Z:
    vertices, faces, parts, normals, photo weights and colours of a grey shirt (albedo 90) and skin under a light
    from the person's left (+X). The photo sees the front and a little beyond the shadowed right side (−X), as a
    jumper's shadowed underside: the silhouette samples the fill prefers are mostly in shadow."""
    import trimesh

    from icon_engine.geometry.normals import vertex_normals

    swap = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    torso = trimesh.creation.cylinder(radius=0.15, height=0.6, sections=64).subdivide().subdivide()
    arm = trimesh.creation.cylinder(radius=0.04, height=0.5, sections=24).subdivide()
    tv = np.asarray(torso.vertices) @ swap + [0.0, 1.3, 0.0]
    av = np.asarray(arm.vertices) @ swap + [0.3, 1.3, 0.0]
    tf = np.asarray(torso.faces)[:, [0, 2, 1]]  # the axis swap mirrors: keep the faces wound outward
    af = np.asarray(arm.faces)[:, [0, 2, 1]] + len(tv)
    v, f = np.concatenate([tv, av]), np.concatenate([tf, af])
    parts = np.concatenate([np.full(len(tv), PART_TORSO), np.full(len(av), PART_LEFT_ARM)])
    n = vertex_normals(v, f)
    assert (np.einsum("ij,ij->i", n[: len(tv)], tv - [0.0, 1.3, 0.0]) >= -1e-9).all()  # outward
    alpha = np.where((n[:, 2] > 0.05) | ((n[:, 0] < -0.3) & (n[:, 2] > -0.2)), 1.0, 0.0)
    albedo = np.where((parts == PART_TORSO)[:, None], 90.0, np.array([170.0, 120.0, 90.0]))
    colours = np.clip(albedo * np.exp(1.1 * n[:, 0])[:, None], 0.0, 255.0)
    return v, f, parts, n, alpha, colours


def _back_fill(lit_torso, shading: np.ndarray | None) -> np.ndarray:
    """Mean fill colour of the torso's hidden back (the part facing −Z away from the shadowed side)."""
    v, f, parts, n, alpha, colours = lit_torso
    fill = unseen_side_fill(v, f, parts, alpha, colours, n[:, 2], shading=shading)[0]
    hidden = (parts == PART_TORSO) & (alpha <= SEEN_ALPHA) & (n[:, 2] < -0.5)
    assert hidden.sum() > 100
    return fill[hidden].mean(axis=0)


def test_the_back_takes_the_lit_shirt_not_its_shadow(lit_torso):
    _, _, parts, n, alpha, colours = lit_torso
    seen = alpha > SEEN_ALPHA
    light = fit_directional_light(n[seen], colours[seen], parts[seen], VIEW_AXIS)
    assert light is not None and light.significant and light.vector[0] > 0.8
    shading = shading_factors(n, light, seen)
    shadowed, lit = seen & (n[:, 0] < -0.5), seen & (n[:, 0] > 0.5)
    assert (shading[shadowed] < 1.0).all() and shading[shadowed].mean() < 0.8 < 1.25 < shading[lit].mean()
    weighted = _back_fill(lit_torso, shading)
    plain = _back_fill(lit_torso, None)
    assert plain.mean() < 60.0, plain  # without the light: the shadow's colour (90 × e^-1.1 = 30 at the darkest)
    assert weighted.mean() >= 90.0, weighted  # with it: the shirt where it is lit (90 facing the camera, up to 255)
    assert np.ptp(weighted) < 1.0  # grey stays grey: no colour is scaled, only the samples' weights change


def test_a_shadow_seen_far_round_the_side_still_leaves_the_back_lit(lit_torso, monkeypatch):
    """The photo shows the shadowed side far round towards the back (a jumper seen from behind and below, dev photo
    icon_fb9d20fd): most of the silhouette samples the fill prefers are in shadow. Weighted by the shading factor
    cubed the back takes the lit shirt; squared (before wave 27) it took the shadow's colour."""
    from icon_engine.texture import fill as fill_module

    v, f, parts, n, _, colours = lit_torso
    alpha = np.where((n[:, 2] > 0.05) | ((n[:, 0] < -0.3) & (n[:, 2] > -0.6)), 1.0, 0.0)
    seen = alpha > SEEN_ALPHA
    light = fit_directional_light(n[seen], colours[seen], parts[seen], VIEW_AXIS)
    assert light is not None and light.significant
    shading = shading_factors(n, light, seen)
    hidden = (parts == PART_TORSO) & ~seen & (n[:, 2] < -0.5)
    assert hidden.sum() > 100

    def back() -> float:
        return float(unseen_side_fill(v, f, parts, alpha, colours, n[:, 2], shading=shading)[0][hidden].mean())

    assert back() >= 90.0
    monkeypatch.setattr(fill_module, "SHADOW_POWER", 2.0)
    assert back() < 70.0  # the shadow's grey (30–65; 47 before wave 30's face-on colour weights, 62 with them)
