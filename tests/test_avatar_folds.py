"""The canonical warp's compression (wave 15): the inside of a bend takes the body prior, so the rest pose has no
pleats where an arm hung against the torso in the photo.

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
    FOLD_FROM_DET,
    CanonicalOccupancy,
    SkinningField,
    body_offsets,
    canonical_body,
    canonical_pose_angles,
    folded,
    pose_body,
)
from icon_engine.bundle.skeleton import NUM_JOINTS
from icon_engine.mesh_queries import MeshQuery


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
    monkeypatch.setattr(avatar_module, "FOLD_RIGID_TOL", -1.0)
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
    monkeypatch.setattr(avatar_module, "folded", np.zeros_like)
    raw = occupancy(points)
    assert np.median(np.abs(raw[full] - f[full])) > 0.005


def test_between_the_legs_a_stride_keeps_the_photo_surface(model):
    """A stride compresses the space between the legs (the blend of two legs turned apart), but a skirt spans it:
    the compression rule leaves it to the photo."""
    field = _field(model, bench_avatar.test_pose("walk1"))
    j = field.body.joints
    ys = np.linspace(j[4, 1], j[1, 1] - 0.03, 30)
    line = np.stack([np.zeros(30), ys, np.full(30, j[1, 2])], axis=1)
    points = np.concatenate([line, line + [0.0, 0.0, 0.05], line - [0.0, 0.0, 0.05]])
    neighbours = field.neighbours(points)
    assert (folded(field.jacobian_det(points, neighbours)) > 0).mean() > 0.5
    assert field.fold_weight(points, neighbours).max() == 0.0
    # the armpit of a lowered arm keeps the rule
    arm = _field(model, bench_avatar.photo_pose("against"))
    armpit = arm.body.joints[16] + np.array([0.06, -0.07, 0.0]) + np.random.default_rng(1).normal(0, 0.008, (40, 3))
    assert np.median(arm.fold_weight(armpit, arm.neighbours(armpit))) > 0.5
