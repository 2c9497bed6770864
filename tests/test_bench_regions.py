"""bench/lib/metrics.region_errors: where a reconstruction lies off the truth, per height band and side."""

from __future__ import annotations

import numpy as np
import trimesh

from bench.lib.metrics import HEIGHT_BANDS, region_errors


def _column(shift_z: float = 0.0, radius: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Samples and outward normals of an upright cylinder 1.7 m tall standing on y = 0, moved by ``shift_z``."""
    m = trimesh.creation.cylinder(radius=radius, height=1.7, sections=96)
    m.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # axis along +Y
    m.apply_translation([0.0, 0.85, shift_z])
    points, faces = trimesh.sample.sample_surface_even(m, 40_000, seed=seed)
    return points, m.face_normals[faces]


def test_a_surface_moved_towards_the_camera_lies_outside_in_front_and_inside_behind():
    gt, normals = _column()
    moved, _ = _column(shift_z=0.01, seed=1)  # 1 cm towards the camera at +Z
    out = region_errors(gt, normals, moved, np.array([0.0, 1.0, 4.0]), 0.0, 1.7)
    for band in ("shins", "thighs", "torso"):
        assert out[f"{band} front"]["signed_cm"] > 0.6 and out[f"{band} back"]["signed_cm"] < -0.6
        assert 0.6 < out[f"{band} front"]["mean_cm"] < 1.2
    shares = sum(v["share"] for v in out.values())
    assert abs(shares - 1.0) < 1e-9 and len(out) == 2 * len(HEIGHT_BANDS)


def test_a_thinner_surface_lies_inside_on_both_sides_and_a_match_is_near_zero():
    gt, normals = _column()
    thin, _ = _column(radius=0.13, seed=1)
    same, _ = _column(seed=2)
    centre = np.array([0.0, 1.0, 4.0])
    inside = region_errors(gt, normals, thin, centre, 0.0, 1.7)
    match = region_errors(gt, normals, same, centre, 0.0, 1.7)
    for side in ("front", "back"):
        assert inside[f"thighs {side}"]["signed_cm"] < -1.5
        assert match[f"thighs {side}"]["mean_cm"] < 0.5
