"""Trouser legs in the rest pose (wave 22): cloth a photo shows standing far off one side of a thigh or a shin (loose
shorts on a thigh raised towards the camera, wide trousers in a lunge) is capped at a tube round the leg, so the
rest pose has no sack or flap hanging off the leg; a leg within its tube, and a skirt, keep the photo's surface.

Subjects are bench/synthetic.py people (the real open body, dressed) in the "stand" photo pose.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench import avatar as bench_avatar
from bench import synthetic as syn
from icon_engine.avatar import CanonicalOccupancy, SkinningField, body_offsets, canonical_body, canonical_pose_angles
from icon_engine.avatar.body import pose_body
from icon_engine.avatar.photo_occupancy import LEG_BULGE_M, leg_tube_offsets
from icon_engine.mesh_queries import MeshQuery, vertex_normals


@pytest.fixture(scope="module")
def model():
    return syn.load_open_body()


@pytest.fixture(scope="module")
def subject(model):
    """A tight outfit standing; its photo surface with a 9 cm sack (a smooth bump) on the front of the right
    thigh, and the canonical body and skinning field of the fit."""
    s = syn.make_subject(model, 1, kind="tight", pose=bench_avatar.photo_pose("stand"))
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)
    body = pose_body(canonical_body(fit, model), canonical_pose_angles())
    skin = SkinningField(body, fit.full_pose, fit.transl)
    posed_body = skin.warp(body.vertices, body.lbs_weights)
    v = np.asarray(s.clothed_vertices, dtype=np.float64)
    normals = vertex_normals(v, s.clothed_faces)
    j = skin.posed_joints
    centre = 0.5 * (j[2] + j[5])  # the right thigh's middle
    front = normals[:, 2] > 0.5
    near = np.linalg.norm((v - centre)[:, [0, 1]], axis=1)
    bump = 0.09 * np.exp(-0.5 * (near / 0.05) ** 2) * front
    sack = MeshQuery(v + bump[:, None] * normals, s.clothed_faces)
    plain = MeshQuery(v, s.clothed_faces)
    return SimpleNamespace(body=body, skin=skin, posed_body=posed_body, sack=sack, plain=plain)


def _occupancy(subject, clothed: MeshQuery) -> CanonicalOccupancy:
    offsets, _ = body_offsets(subject.posed_body, subject.body, clothed)
    return CanonicalOccupancy(subject.skin, subject.posed_body, clothed, offsets)


def test_the_tube_is_the_legs_closer_sides_plus_the_bulge(subject):
    """A one-sided sack does not move a slice's lower quartile: the cap stays the tight trousers' offset plus
    LEG_BULGE_M, far below the sack's 9 cm."""
    occ = _occupancy(subject, subject.sack)
    owner = subject.body.lbs_weights.argmax(axis=1)
    thigh = owner == 2
    caps = leg_tube_offsets(subject.body, occ.offsets)
    assert np.all(caps[thigh] < 0.02 + LEG_BULGE_M)
    assert occ.offsets[thigh].max() > 0.06  # the sack is in the measured offsets
    assert np.all(caps[np.isin(owner, (0, 3, 6, 9, 12, 15))] >= 0.45)  # torso and head: no cap


def _in_front_of_the_right_thigh(body, depth: float, count: int = 60) -> np.ndarray:
    """Canonical points ``depth`` metres in front of the right thigh's front at its middle height."""
    j = body.joints
    mid = 0.5 * (j[2] + j[5])
    thigh = body.vertices[(body.lbs_weights.argmax(axis=1) == 2) & (np.abs(body.vertices[:, 1] - mid[1]) < 0.02)]
    rng = np.random.default_rng(0)
    return np.stack([mid[0] + rng.uniform(-0.015, 0.015, count), mid[1] + rng.uniform(-0.01, 0.01, count),
                     np.full(count, thigh[:, 2].max() + depth)], axis=1)


def test_a_sack_off_a_thigh_is_capped_and_a_plain_leg_is_left_alone(subject, monkeypatch):
    """Canonical points inside the sack (6 cm off the thigh's front) are inside the photo surface warped back,
    outside the capped occupancy (inside without the cap, and with a skirt); on the plain surface the cap changes
    nothing on the leg."""
    points = _in_front_of_the_right_thigh(subject.body, 0.06)
    occ = _occupancy(subject, subject.sack)
    x_p, _, _ = subject.skin.warp_points_hand(points, subject.skin.neighbours(points))
    assert np.all(-subject.sack.signed_distance(x_p) > 0.005)  # the photo's sack is there
    assert np.all(occ(points) < 0.0)
    occ.skirt = 1.0  # cloth spanning the legs: a skirt flares, no cap
    assert np.all(occ(points) > 0.005)
    occ.skirt = 0.0
    monkeypatch.setattr(CanonicalOccupancy, "leg_tube", lambda self, f, x_c, legs: f)
    assert np.all(occ(points) > 0.005)
    monkeypatch.undo()
    # the plain leg: identical with and without the cap
    plain = _occupancy(subject, subject.plain)
    on_leg = np.isin(subject.body.lbs_weights.argmax(axis=1), (1, 2, 4, 5))
    leg = subject.body.vertices[on_leg][::7]
    normals = vertex_normals(subject.body.vertices, subject.body.faces)[on_leg][::7]
    around = np.concatenate([leg + 0.005 * normals, leg + 0.015 * normals, leg - 0.01 * normals])
    assert (subject.skin.legs(subject.skin.neighbours(around)).sum(axis=1) > 0.9).mean() > 0.8
    f = plain(around)
    plain.leg_offsets = np.full_like(plain.leg_offsets, 10.0)
    np.testing.assert_allclose(f, plain(around), atol=1e-9)
