"""Cloth spanning the legs is skinned as one panel (wave 16): posed in a stride, a skirt drapes from one leg to the
other instead of splitting down the middle like culottes; the avatar still reproduces the photo; trousers keep
their legs' weights. The panel's split between the legs is harmonic (``panel_leg_split``).

Subjects are bench/synthetic.py people (the real open body, dressed); the avatar stage runs on their exact
clothed surface and body.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench import avatar as bench_avatar
from bench import synthetic as syn
from icon_engine import avatar as avatar_module
from icon_engine.avatar import build_avatar, canonical_body, panel_leg_split
from icon_engine.mesh_queries import MeshQuery


@pytest.fixture(scope="module")
def model():
    return syn.load_open_body()


def test_the_panel_split_between_the_legs_is_harmonic_and_keeps_the_waist_share():
    """On a strip of triangles: the left end on the left leg (hip 0.8, knee 0.2), the right end on the right leg;
    the free middle on the left leg's knee and the pelvis half and half. The legs' split ramps from left to right, every
    free row keeps its half on the pelvis, and each leg's part keeps the row's own hip/knee proportions (the right
    leg, which the row did not carry, takes the left's mirrored)."""
    n = 11
    faces = np.array([f for i in range(n - 1) for f in ((i, i + 1, n + i), (i + 1, n + i + 1, n + i))])
    col = np.arange(2 * n) % n
    w = np.zeros((2 * n, 55))
    w[col == 0, 1], w[col == 0, 4] = 0.8, 0.2  # left hip, left knee
    w[col == n - 1, 2], w[col == n - 1, 5] = 0.8, 0.2  # right hip, right knee
    free = (col > 0) & (col < n - 1)
    w[free, 0], w[free, 4] = 0.5, 0.5  # pelvis, left knee
    out = panel_leg_split(w, faces, free)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(out[free, 0], 0.5)
    left = out[:, [1, 4, 7, 10]].sum(axis=1)
    for row in (left[:n], left[n:]):
        assert np.all(np.diff(row) < 0) and row[n // 2] == pytest.approx(0.25, abs=0.03)
    np.testing.assert_allclose(out[free, 1], 0.0)  # the row's left leg was all knee: it stays all knee
    np.testing.assert_allclose(out[free, 5] / out[free][:, [2, 5, 8, 11]].sum(axis=1), 1.0)  # mirrored: knee
    np.testing.assert_array_equal(out[~free], w[~free])


def test_the_panel_reaches_down_to_where_cloth_last_crosses_the_midline():
    """Cloth below the hips that crosses the midline between the legs down to y = −0.5 m (a skirt) makes a panel
    of all the cloth down to there, its outer sides included; cloth that crosses it only at the crotch (trouser
    legs) makes a panel of the crotch alone; skin (near the body) and cloth above the hips never belong."""
    joints = np.zeros((55, 3))
    joints[[1, 2], 1] = -0.05  # hips
    ys = np.linspace(-0.1, -0.8, 15)
    xs = np.array([-0.15, -0.08, -0.04, 0.0, 0.04, 0.08, 0.15])  # right side … midline (0) … left side
    grid = np.array([(x, y, 0.1) for y in ys for x in xs])
    grid = grid[(grid[:, 0] != 0.0) | (grid[:, 1] >= -0.5 - 1e-9)]  # the skirt's midline ends at its hem
    w = np.zeros((len(grid), 55))
    w[:, 1] = np.clip(0.5 + grid[:, 0] / 0.16, 0.0, 1.0)  # left hip share grows towards +X (left)
    w[:, 2] = 1.0 - w[:, 1]
    distance = np.full(len(grid), 0.03)
    skirt = avatar_module.skirt_panel(grid, w, distance, joints)
    assert skirt[grid[:, 1] >= -0.5 - 1e-9].all() and not skirt[grid[:, 1] < -0.5 - 1e-9].any()
    # trouser legs: the midline holds cloth only down to the crotch (y > −0.12); lower, the midline is empty, though
    # the legs' inner sides (x = ±4 cm) carry both legs' weights all the way down
    legs = (grid[:, 0] != 0.0) | (grid[:, 1] > -0.12)
    trousers = avatar_module.skirt_panel(grid[legs], w[legs], distance[legs], joints)
    assert trousers.any() and (grid[legs][trousers, 1] > -0.12).all()
    # skin does not count, nor cloth above the hips
    assert not avatar_module.skirt_panel(grid, w, np.full(len(grid), 0.005), joints).any()
    high = grid + [0.0, 1.0, 0.0]
    assert not avatar_module.skirt_panel(high, w, distance, joints).any()


def _case(av, fit, model) -> bench_avatar.AvatarCase:
    return bench_avatar.AvatarCase("s", av.rig.rest_vertices, av.faces, av.rig.skin_weights.astype(np.float64),
                                   av.rig.rest_joints, av.rig.rest_pose_angles, av.posed_vertices,
                                   canonical_body(fit, model), av.vertex_parts)


def _panel_and_legs(model, monkeypatch, photo_pose: np.ndarray):
    """The avatar of a synthetic skirt photographed in ``photo_pose``, with the panel and skinned leg by leg."""
    s = syn.make_subject(model, 1, kind="skirt", pose=photo_pose)
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)

    def build():
        return build_avatar(s.clothed_vertices, s.clothed_faces, fit, model, resolution=144, levels=3, smooth=6,
                            face_count=None, camera=s.camera, mask=s.mask)

    panel = build()
    with monkeypatch.context() as m:
        # never: every cloth vertex keeps its legs' weights
        m.setattr(avatar_module.skin_weights, "SKIRT_EVIDENCE", 2.0)
        legs = build()
    return s, fit, panel, legs


def test_a_skirt_posed_in_a_stride_drapes_as_one_panel(model, monkeypatch):
    """A skirt photographed standing, posed in strides: skinned leg by leg it splits down the middle (creases over
    a tenth of the area between the knees and the hips); as one panel it stays smooth; the photo pose is kept."""
    s, fit, panel, legs = _panel_and_legs(model, monkeypatch, bench_avatar.photo_pose("stand"))
    assert panel.stats["skirt_panel_vertices"] > 500 and legs.stats["skirt_panel_vertices"] == 0
    for stride in ("walk1", "walk3"):
        creased = {}
        for name, av in (("panel", panel), ("legs", legs)):
            case = _case(av, fit, model)
            posed = bench_avatar.pose_mesh(case, bench_avatar.test_pose(stride))
            creased[name] = bench_avatar.thigh_creases(case, posed)
        assert creased["legs"] > 0.05 and creased["panel"] < 0.3 * creased["legs"], (stride, creased)
    assert panel.stats["posed_silhouette_iou"] >= legs.stats["posed_silhouette_iou"] - 0.005


def test_a_skirt_photographed_in_a_stride_still_reproduces_the_photo(model, monkeypatch):
    """The panel's rest shape is the photo's skirt un-posed with its new weights: posed back into the photo's
    stride it lies on the photo's clothed surface (closer than the legs' weights put it)."""
    s, fit, panel, legs = _panel_and_legs(model, monkeypatch, bench_avatar.test_pose("walk1"))
    query = MeshQuery(s.clothed_vertices, s.clothed_faces)
    gap = {name: float(np.abs(query.query(av.posed_vertices).distance).mean()) for name, av in
           (("panel", panel), ("legs", legs))}
    assert gap["panel"] < gap["legs"], gap
    assert panel.stats["posed_silhouette_iou"] >= legs.stats["posed_silhouette_iou"] - 0.005


def test_trousers_keep_their_legs_weights(model):
    """No photo shows cloth spanning the legs: no panel, whatever the stride."""
    s = syn.make_subject(model, 1, kind="tight", pose=bench_avatar.test_pose("walk1"))
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)
    av = build_avatar(s.clothed_vertices, s.clothed_faces, fit, model, resolution=144, levels=3, smooth=6,
                      face_count=None, camera=s.camera, mask=s.mask)
    assert av.stats["skirt_panel_vertices"] == 0 and av.stats["cloth_between_legs"] == [0.0]
