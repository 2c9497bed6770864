"""The avatar's hands are the body model's own (wave 13): fingers, not a mitten.

At the canonical grid's spacing the bare hands mesh as mittens (fingers fused, webs, fins); the avatar stage cuts
each hand off at the wrist and joins the body's hand to the rim (:func:`icon_engine.avatar.graft_body_hands`, the
geometry in :mod:`icon_engine.geometry.graft`). Stand-ins: capped cylinders for the geometry, a bench/synthetic.py
person (real open body) with the avatar stage on its exact surface, pose and shape (small grid).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import trimesh

from bench import avatar as bench_avatar
from bench import synthetic as syn
from icon_engine import avatar as avatar_mod
from icon_engine.avatar import build_avatar, canonical_body
from icon_engine.geometry.decimate import is_watertight
from icon_engine.geometry.graft import (
    MAX_BACKTRACK_RAD,
    beyond_plane,
    boundary_loops,
    join_rims,
    loop_backtrack,
    loop_turn,
)
from icon_engine.geometry.normals import signed_volume
from icon_engine.mesh_queries import MeshQuery
from icon_engine.rig import torn_faces

AXIS = np.array([0.0, 0.0, 1.0])


def _tube(radius: float, sections: int) -> tuple[np.ndarray, np.ndarray]:
    m = trimesh.creation.cylinder(radius=radius, height=0.2, sections=sections)
    m = m.subdivide().subdivide()  # rows of vertices along the axis, so a cut leaves a ragged rim
    return np.asarray(m.vertices), np.asarray(m.faces)


def _piece(v: np.ndarray, f: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.unique(f[keep])
    remap = np.full(len(v), -1)
    remap[used] = np.arange(len(used))
    return v[used], remap[f[keep]]


def test_a_thick_tube_and_a_thin_tube_join_into_one_closed_mesh():
    va, fa = _tube(0.04, 24)
    vb, fb = _tube(0.025, 17)
    a = _piece(va, fa, ~beyond_plane(va, fa, np.zeros(3), AXIS, 1.0))  # the thick tube below z = 0
    b = _piece(vb, fb, beyond_plane(vb, fb, np.array([0, 0, 0.01]), AXIS, 1.0, every=True))  # the thin above
    rim_a, rim_b = boundary_loops(a[1]), boundary_loops(b[1])
    assert len(rim_a) == 1 and len(rim_b) == 1
    # the two open ends go round the axis in opposite directions
    assert loop_turn(a[0][rim_a[0]], np.zeros(3), AXIS) * loop_turn(b[0][rim_b[0]], np.zeros(3), AXIS) < 0
    v = np.concatenate([a[0], b[0]])
    strip = join_rims(v, rim_a[0], rim_b[0] + len(a[0]), np.zeros(3), AXIS)
    assert strip is not None and len(strip) == len(rim_a[0]) + len(rim_b[0])
    f = np.concatenate([a[1], b[1] + len(a[0]), strip])
    assert is_watertight(f)
    assert signed_volume(v, f) > 0  # outward, like both pieces
    assert not is_watertight(np.concatenate([a[1], b[1] + len(a[0])]))


def test_rims_going_the_same_way_or_beside_the_axis_are_not_joined():
    va, fa = _tube(0.04, 24)
    a = _piece(va, fa, ~beyond_plane(va, fa, np.zeros(3), AXIS, 1.0))
    rim = boundary_loops(a[1])[0]
    assert join_rims(a[0], rim, rim, np.zeros(3), AXIS) is None  # both the same way round
    assert join_rims(a[0], rim, rim[::-1].copy(), np.zeros(3), AXIS) is not None  # opposite ways: joined
    assert join_rims(a[0], rim, rim[::-1].copy(), np.array([0.5, 0.0, 0.0]), AXIS) is None  # the axis outside


def test_a_rim_that_folds_back_round_the_axis_is_not_joined():
    """A cuff folded over the wrist: its rim steps back round the forearm before going on (here by 40°)."""
    def ring(degrees, radius):
        a = np.radians(degrees)
        return np.column_stack([radius * np.cos(a), radius * np.sin(a), np.zeros(len(a))])

    clean = ring(np.arange(0, 360, 20), 0.04)
    folded = ring(np.r_[0, 20, 40, 60, 80, 100, 60, 120:360:20], 0.05)
    hand = ring(np.arange(340, -1, -30), 0.025)  # the other way round
    for rim, expected in ((clean, True), (folded, False)):
        v = np.concatenate([rim, hand])
        a, b = np.arange(len(rim)), len(rim) + np.arange(len(hand))
        assert (loop_backtrack(rim, np.zeros(3), AXIS) > MAX_BACKTRACK_RAD) is not expected
        assert (join_rims(v, a, b, np.zeros(3), AXIS) is not None) is expected


def test_a_bowtie_boundary_is_not_a_set_of_loops():
    faces = np.array([[0, 1, 2], [0, 3, 4]])  # two triangles sharing only vertex 0: two boundary edges leave it
    assert boundary_loops(faces) is None
    assert [len(x) for x in boundary_loops(np.array([[0, 1, 2]]))] == [3]


@pytest.fixture(scope="module")
def person():
    """The open body, a person made of it in a loose top with both hands on the hips, and that person's exact fit
    (shape, pose, translation): ``(model, (subject, fit))``."""
    body = syn.load_open_body()
    made = syn.make_subject(body, 2, kind="loose", pose=bench_avatar.photo_pose("hips"))
    return body, (made, SimpleNamespace(betas=made.betas, full_pose=made.full_pose, transl=made.offset))


@pytest.fixture(scope="module")
def model(person):
    return person[0]


@pytest.fixture(scope="module")
def subject(person):
    return person[1]


def _avatar(subject, model):
    s, fit = subject
    return build_avatar(s.clothed_vertices, s.clothed_faces, fit, model, resolution=144, levels=3, smooth=6,
                        face_count=30_000, camera=s.camera, mask=s.mask)


def _finger_gap_mm(av, fit, model) -> np.ndarray:
    """Distance (mm) from the canonical body's finger vertices (led by a finger joint) to the canonical avatar."""
    body = canonical_body(fit, model)
    fingers = np.isin(body.lbs_weights.argmax(axis=1), list(range(25, 55)))
    return 1000 * np.abs(MeshQuery(av.canonical_vertices, av.faces).query(body.vertices[fingers]).distance)


@pytest.fixture(scope="module")
def grafted(subject, model):
    return _avatar(subject, model)


@pytest.fixture(scope="module")
def mittens(subject, model):
    saved = avatar_mod.hand_graft.GRAFT_HANDS
    avatar_mod.hand_graft.GRAFT_HANDS = False
    try:
        return _avatar(subject, model)
    finally:
        avatar_mod.hand_graft.GRAFT_HANDS = saved


def test_the_avatar_has_the_body_models_fingers(grafted, mittens, subject, model):
    _, fit = subject
    assert grafted.stats["hands_grafted"] == ["left", "right"]
    assert mittens.stats["hands_grafted"] == []
    gap = _finger_gap_mm(grafted, fit, model)
    assert np.percentile(gap, 99) < 0.5  # every finger surface is on the mesh
    # the mitten: the sides of the fingers lie inside it, millimetres from any surface
    assert np.percentile(_finger_gap_mm(mittens, fit, model), 90) > 2.0


def test_the_grafted_avatar_is_closed_and_within_its_face_budget(grafted, subject, model):
    assert is_watertight(grafted.faces)
    assert signed_volume(grafted.canonical_vertices, grafted.faces) > 0
    assert 30_000 * 0.95 <= len(grafted.faces) <= 30_000 * 1.05  # the hands' faces come out of the budget
    # no face of the hands or the seam tears between the rest pose and the photo's
    torn = torn_faces(grafted.posed_vertices, grafted.rig.rest_vertices, grafted.faces)
    assert torn.sum() <= 0.0005 * len(grafted.faces)
    body = canonical_body(subject[1], model)
    centres = grafted.canonical_vertices[grafted.faces[torn]].mean(axis=1)
    assert np.linalg.norm(centres[:, None] - body.joints[None, [20, 21]], axis=2).min(initial=1.0) > 0.1


def test_the_posed_fingers_follow_the_fitted_hand(grafted, subject, model):
    """The grafted vertices keep the body's skin weights: posed, the fingers lie on the fitted body's fingers."""
    s, _ = subject
    fingers = np.isin(model.lbs_weights.argmax(dim=1).numpy(), list(range(25, 55)))
    gap = 1000 * np.abs(MeshQuery(grafted.posed_vertices, grafted.faces).query(s.body_vertices[fingers]).distance)
    assert np.percentile(gap, 95) < 1.0


def _seam_max_dihedral_deg(av, fit, model) -> float:
    """Largest angle (degrees) between adjacent faces within 1 cm of either join's middle."""
    body = canonical_body(fit, model)
    m = trimesh.Trimesh(av.canonical_vertices, av.faces, process=False)
    centres = m.triangles_center[m.face_adjacency[:, 0]]
    worst = 0.0
    for wrist, elbow in ((20, 18), (21, 19)):
        axis = body.joints[wrist] - body.joints[elbow]
        axis /= np.linalg.norm(axis)
        graft = avatar_mod.hand_graft
        middle = body.joints[wrist] + (graft.HAND_CUTS_M[0] + 0.5 * graft.HAND_GRAFT_GAP_M) * axis
        band = (np.abs((centres - middle) @ axis) < 0.01) & (np.linalg.norm(centres - middle, axis=1) < 0.1)
        worst = max(worst, float(np.degrees(m.face_adjacency_angles[band]).max()))
    return worst


def test_the_wrist_seam_is_smooth(grafted, subject, model, monkeypatch):
    """No ledge where the clothed forearm meets the body's hand: the join's strip is relaxed into its
    surroundings (without the relaxation, faces across the rim fold by 100–160°)."""
    _, fit = subject
    assert _seam_max_dihedral_deg(grafted, fit, model) < 45.0
    monkeypatch.setattr(avatar_mod.hand_graft, "HAND_SEAM_ITERS", 0)
    assert _seam_max_dihedral_deg(_avatar(subject, model), fit, model) > 90.0


def test_a_hand_fitted_off_the_photos_hand_keeps_its_meshed_shape(subject, model):
    """The right wrist fitted 70° off the photo's: the body's right hand would leave the photo's outline, so that
    hand keeps the mitten the photo's surface shaped; the left hand, fitted right, is grafted."""
    s, fit = subject
    pose = np.array(fit.full_pose, dtype=np.float64).reshape(55, 3).copy()
    pose[21] += np.radians([70.0, 0.0, 0.0])
    off = SimpleNamespace(betas=fit.betas, full_pose=pose, transl=fit.transl)
    av = build_avatar(s.clothed_vertices, s.clothed_faces, off, model, resolution=144, levels=3, smooth=6,
                      face_count=30_000, camera=s.camera, mask=s.mask)
    assert av.stats["hands_grafted"] == ["left"]
    outside = av.stats["hand_outside_fraction"]
    assert outside["right"] > avatar_mod.hand_graft.HAND_OUTSIDE_MAX >= outside["left"]


def test_a_cut_that_fails_tries_the_next_one(mittens, subject, model, monkeypatch):
    """A cut whose rim folds on itself (a cuff at the wrist) is tried again further along the hand."""
    _, fit = subject
    real = avatar_mod.graft_hand
    calls = []

    def first_fails(vertices, faces, body, side, piece, cut_m):
        calls.append((side, cut_m))
        first_cut = avatar_mod.hand_graft.HAND_CUTS_M[0]
        return None if cut_m == first_cut else real(vertices, faces, body, side, piece, cut_m)

    monkeypatch.setattr(avatar_mod.hand_graft, "graft_hand", first_fails)
    _, faces, sides = avatar_mod.graft_body_hands(mittens.canonical_vertices, mittens.faces,
                                                  canonical_body(fit, model))
    cuts = avatar_mod.hand_graft.HAND_CUTS_M
    assert sides == ["left", "right"]
    assert calls == [("left", cuts[0]), ("left", cuts[1]), ("right", cuts[0]), ("right", cuts[1])]
    assert is_watertight(faces)
