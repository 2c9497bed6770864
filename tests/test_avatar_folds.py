"""The canonical warp's compression (wave 15): the inside of a bend takes the body prior, so the rest pose has no
pleats where an arm hung against the torso in the photo; and a skirt between the legs is not a contact zone.

Subjects are bench/synthetic.py people (the real open body, dressed) in the "against" photo pose (arms hanging
against the torso).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import trimesh

from bench import avatar as bench_avatar
from bench import synthetic as syn
from icon_engine import avatar as avatar_module
from icon_engine.avatar import (
    CanonicalOccupancy,
    SkinningField,
    body_offsets,
    build_avatar,
    canonical_body,
    canonical_pose_angles,
    cloth_between_legs,
    folded,
    pose_body,
)
from icon_engine.avatar.skinning_field import FOLD_FROM_DET, Neighbours
from icon_engine.bundle.skeleton import NUM_JOINTS, PARENTS, forward_kinematics
from icon_engine.mesh_queries import MeshQuery, rasterize


@pytest.fixture(scope="module")
def model():
    return syn.load_open_body()


def _field(model, pose: np.ndarray) -> SkinningField:
    fit = SimpleNamespace(betas=np.zeros(10), full_pose=pose, transl=np.zeros(3))
    return SkinningField(pose_body(canonical_body(fit, model), canonical_pose_angles()), pose, np.zeros(3))


def _reference_det(field: SkinningField, points: np.ndarray, step: float = 0.002) -> np.ndarray:
    """Central differences of the field's own warp (neighbours searched afresh at every shifted point)."""
    cols = []
    for axis in range(3):
        e = np.zeros(3)
        e[axis] = step
        cols.append((field.warp_points(points + e)[0] - field.warp_points(points - e)[0]) / (2 * step))
    return np.linalg.det(np.stack(cols, axis=2))


def test_the_warp_jacobian_is_one_where_rigid_and_compressed_inside_a_bend(model, monkeypatch):
    pose = bench_avatar.photo_pose("against")
    field = _field(model, pose)
    j = field.body.joints
    rng = np.random.default_rng(5)
    # under the left shoulder, between the T-pose arm and the torso: the lowered arm closes this wedge
    armpit = j[16] + np.array([0.06, -0.07, 0.0]) + rng.normal(0.0, 0.008, (40, 3))
    # in front of the belly and on the shin: one joint's transform, no bend
    belly = np.array([0.0, j[3, 1], j[3, 2] + 0.12]) + rng.normal(0.0, 0.01, (40, 3))
    shin = j[4] + np.array([0.0, -0.2, 0.06]) + rng.normal(0.0, 0.005, (40, 3))
    points = np.concatenate([armpit, belly, shin])
    det = field.jacobian_det(points, field.neighbours(points))
    assert np.median(det[:40]) < FOLD_FROM_DET
    assert (folded(det[:40]) > 0).mean() > 0.5
    np.testing.assert_allclose(det[40:], 1.0, atol=0.02)
    assert (folded(det[40:]) == 0).all()
    # the neighbour set held fixed is the field's own derivative up to its neighbour switches
    ref = _reference_det(field, points)
    assert np.median(np.abs(det - ref)) < 0.05
    # skipping the rigid points changes nothing: every point evaluated gives the same
    monkeypatch.setattr(avatar_module.skinning_field, "FOLD_RIGID_TOL", -1.0)
    full = field.jacobian_det(points, field.neighbours(points))
    np.testing.assert_allclose(full, det, atol=0.02)
    assert np.abs(full[det == 1.0] - 1.0).max() < 0.02
    # a rigid pose (the whole body turned) keeps det 1 everywhere
    turned = np.zeros((NUM_JOINTS, 3))
    turned[0] = [0.0, 1.2, 0.0]
    rigid = _field(model, turned)
    np.testing.assert_allclose(rigid.jacobian_det(points, rigid.neighbours(points)), 1.0, atol=1e-6)
    d, idx = field.neighbours(points)
    assert field.jacobian_det(points[:0], (d[:0], idx[:0])).shape == (0,)


def test_neighbours_keep_each_fields_blend_and_give_the_plain_pairs_answers(model):
    """:class:`Neighbours` keeps the blend a field made of it (wave 36: the occupancy's warp, fold test and legs'
    shares reuse one), per field: two fields of one canonical body in different poses (a fusion's photos) share the
    neighbours but each gets its own warp. Every answer is the plain pair's, to the bit."""
    lowered = _field(model, bench_avatar.photo_pose("against"))
    turned_pose = np.zeros((NUM_JOINTS, 3))
    turned_pose[0] = [0.0, 1.2, 0.0]
    turned = _field(model, turned_pose)
    j = lowered.body.joints
    rng = np.random.default_rng(7)
    points = np.concatenate([j[16] + np.array([0.06, -0.07, 0.0]) + rng.normal(0.0, 0.01, (50, 3)),
                             j[1] + rng.normal(0.0, 0.05, (50, 3))])
    kept = lowered.neighbours(points)
    plain = (np.array(kept[0]), np.array(kept[1]))
    assert isinstance(kept, Neighbours) and not isinstance(plain, Neighbours)
    for field in (lowered, turned, lowered):  # the second field, then the first again, on the same neighbours
        for a, b in zip(field.warp_points_hand(points, kept), field.warp_points_hand(points, plain), strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(field.jacobian_det(points, kept), field.jacobian_det(points, plain))
        assert np.array_equal(field.legs(kept), field.legs(plain))
        assert np.array_equal(field.weights(points, neighbours=kept)[0], field.weights(points, neighbours=plain)[0])
    assert {key[0] for key in kept.made} == {lowered, turned}
    assert not np.allclose(lowered.warp_points_hand(points, kept)[0], turned.warp_points_hand(points, kept)[0])


def test_inside_a_bend_the_occupancy_is_the_body_prior(model, monkeypatch):
    """A photo surface with detail (bumps of ±1 cm, like a real one's wrinkles), warped back through the lowered
    arm's compressed armpit, is magnified into pleats (the rendered and dev photos' rest poses: ridges and dents of
    1–3 cm; this smooth stand-in shows them only as pegs under the arms); there the occupancy is the body prior."""
    s = syn.make_subject(model, 1, kind="loose", pose=bench_avatar.photo_pose("against"))
    clothed = trimesh.Trimesh(s.clothed_vertices, s.clothed_faces, process=False)
    v = clothed.vertices
    bumps = 0.01 * np.sin(100 * v[:, 0]) * np.sin(100 * v[:, 1] + 1.0) * np.sin(100 * v[:, 2] + 2.0)
    bumpy = MeshQuery(v + bumps[:, None] * clothed.vertex_normals, s.clothed_faces)
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)
    body = pose_body(canonical_body(fit, model), canonical_pose_angles())
    skin = SkinningField(body, fit.full_pose, fit.transl)
    posed_body = skin.warp(body.vertices, body.lbs_weights)
    offsets, _ = body_offsets(posed_body, body, bumpy)
    occupancy = CanonicalOccupancy(skin, posed_body, bumpy, offsets)
    # points round the armpits' surface, canonical space
    rng = np.random.default_rng(2)
    j = body.joints
    points = np.concatenate([j[k] + np.array([0.09 * np.sign(j[k, 0]), -0.06, 0.0]) + rng.normal(0.0, 0.03, (400, 3))
                             for k in (16, 17)])
    neighbours = skin.neighbours(points)
    fold = folded(skin.jacobian_det(points, neighbours))
    x_p, d_c, _ = skin.warp_points_hand(points, neighbours)
    full = (fold > 0.999) & (occupancy.contact(points, x_p, d_c) == 0)
    assert full.sum() > 50
    f = occupancy(points)
    np.testing.assert_allclose(f[full], occupancy.prior(points[full]), atol=1e-4)
    # without it the photo's surface decides there, centimetres off the prior
    monkeypatch.setattr(avatar_module.skinning_field, "folded", np.zeros_like)
    raw = occupancy(points)
    assert np.median(np.abs(raw[full] - f[full])) > 0.005


def test_between_the_legs_a_stride_keeps_the_photo_surface(model):
    """A stride compresses the space between the legs (the blend of two legs turned apart), but a skirt spans it:
    where the photo shows cloth spanning the legs the compression rule leaves it to the photo; trousers fold there
    like anywhere else (wave 21)."""
    field = _field(model, bench_avatar.test_pose("walk1"))
    j = field.body.joints
    ys = np.linspace(j[4, 1], j[1, 1] - 0.03, 30)
    line = np.stack([np.zeros(30), ys, np.full(30, j[1, 2])], axis=1)
    points = np.concatenate([line, line + [0.0, 0.0, 0.05], line - [0.0, 0.0, 0.05]])
    neighbours = field.neighbours(points)
    assert (folded(field.jacobian_det(points, neighbours)) > 0).mean() > 0.5
    assert field.fold_weight(points, neighbours).max() == 0.0  # a skirt (cloth spanning the legs: 1)
    trousers = field.fold_weight(points, neighbours, spanning=0.0)
    np.testing.assert_allclose(trousers, folded(field.jacobian_det(points, neighbours)))
    assert (trousers > 0).mean() > 0.5
    # the armpit of a lowered arm keeps the rule
    arm = _field(model, bench_avatar.photo_pose("against"))
    armpit = arm.body.joints[16] + np.array([0.06, -0.07, 0.0]) + np.random.default_rng(1).normal(0, 0.008, (40, 3))
    assert np.median(arm.fold_weight(armpit, arm.neighbours(armpit))) > 0.5


def test_a_skirt_in_a_stride_is_not_carved_open_between_the_legs(model, monkeypatch):
    """Between the legs, the skirt's volume lies centimetres from the posed legs: not a contact zone (the web of
    touching legs lies within one or two), so the prior does not carve a slit into it."""
    s = syn.make_subject(model, 1, kind="skirt", pose=bench_avatar.test_pose("walk1"))
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)

    def midline_inside(av) -> np.ndarray:
        """Share of points inside the rest mesh on lines between the legs, from the knees to the crotch, at five
        depths from the skirt's front to its back."""
        j = av.rig.rest_joints
        query = MeshQuery(av.rig.rest_vertices, av.faces)
        ys = np.linspace(j[4, 1] - 0.05, j[1, 1] - 0.05, 10)
        return np.array([(query.signed_distance(np.stack([np.full(10, j[0, 0]), ys, np.full(10, j[0, 2] + z)],
                                                         axis=1)) < 0).mean() for z in (0.06, 0.03, 0.0, -0.03, -0.06)])

    def build():
        return build_avatar(s.clothed_vertices, s.clothed_faces, fit, model, resolution=144, levels=3, smooth=6,
                            face_count=None, camera=s.camera, mask=s.mask)

    kept = build()
    assert midline_inside(kept).min() == 1.0
    contact = CanonicalOccupancy.contact  # every point between the legs may be in contact, as before
    monkeypatch.setattr(CanonicalOccupancy, "contact", lambda self, x_c, x_p, d_c=None, legs=None:
                        contact(self, x_c, x_p, d_c))
    carved = build()
    assert midline_inside(carved).min() < 0.95
    assert kept.stats["posed_silhouette_iou"] > carved.stats["posed_silhouette_iou"]


@pytest.mark.parametrize(("kind", "pose", "expected"), [("skirt", "walk1", 1.0), ("tight", "walk1", 0.0),
                                                        ("skirt", "stand", 1.0), ("tight", "stand", 0.0)])
def test_cloth_between_legs_is_seen_only_where_the_photo_shows_it(model, kind, pose, expected):
    """A skirt fills the picture between legs that stand apart; trousers show a gap (or legs too close to tell)."""
    photo_pose = bench_avatar.test_pose(pose) if pose.startswith("walk") else bench_avatar.photo_pose(pose)
    s = syn.make_subject(model, 1, kind=kind, pose=photo_pose)
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)
    body = canonical_body(fit, model)
    _, joints = forward_kinematics(body.joints, np.asarray(PARENTS), s.full_pose.reshape(-1, 3))
    body_mask = rasterize(s.body_vertices, s.body_faces, s.camera).mask
    seen = cloth_between_legs(joints + s.offset.reshape(1, 3), s.camera, s.mask, body_mask)
    assert seen == pytest.approx(expected, abs=1e-9)
    # where the fitted body covers the picture between the legs (a leg crossing it) nothing is seen
    assert cloth_between_legs(joints + s.offset.reshape(1, 3), s.camera, s.mask, np.ones_like(s.mask)) == 0.0
    # nor where a thigh does not hang down (seated, kicking): the same picture, the right thigh raised forward
    raised = joints.copy()
    raised[5] = raised[2] + np.linalg.norm(raised[5] - raised[2]) * np.array([0.0, -0.5, np.sqrt(0.75)])  # 60°
    assert cloth_between_legs(raised + s.offset.reshape(1, 3), s.camera, s.mask, body_mask) == 0.0
    # the body's silhouette may come as a function (the avatar's: a raster costs ~0.1 s): called at most once, the
    # same answer, and not at all where no level is judged (the raised thigh)
    calls = []

    def lazy_mask() -> np.ndarray:
        calls.append(1)
        return body_mask

    assert cloth_between_legs(joints + s.offset.reshape(1, 3), s.camera, s.mask, lazy_mask) == seen
    assert len(calls) <= 1 and (len(calls) == 1 or seen == 0.0)
    calls.clear()
    assert cloth_between_legs(raised + s.offset.reshape(1, 3), s.camera, s.mask, lazy_mask) == 0.0
    assert calls == []
