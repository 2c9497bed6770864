"""Bare hands in the canonical avatar (issue 15, wave 6): a hand resting on the hip keeps no lump of clothing.

A hand posed on or beside the hip lies inside the photo's clothed surface (the skirt or coat around the hip). The
canonical occupancy warps points near the canonical (T-pose) hand to that posed position; before wave 6 they read
the hip's clothing as the hand's own, so the rest-pose hand carried a lump of hip up to 11 cm thick, posed back
inside the surface and carried along into every other pose. Stand-in: a bench/synthetic.py person in a midi skirt
with both hands on the hips, the avatar stage on its exact surface, pose and shape (small grid).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial import cKDTree

from bench import avatar as bench_avatar
from bench import synthetic as syn
from icon_engine.avatar import bare_hands, build_avatar, build_fused_avatar, canonical_body
from icon_engine.avatar.photo_occupancy import HAND_MAX_OFFSET_M, HAND_SLACK_M
from icon_engine.mesh_queries import MeshQuery

LEFT_HAND = (20, *range(25, 40))
RIGHT_HAND = (21, *range(40, 55))


@pytest.fixture(scope="module")
def model():
    return syn.load_open_body()


@pytest.fixture(scope="module")
def hands_on_skirt(model):
    s = syn.make_subject(model, 1, kind="skirt", pose=bench_avatar.photo_pose("hips"))
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)
    av = build_avatar(s.clothed_vertices, s.clothed_faces, fit, model, resolution=144, levels=3, smooth=6,
                      face_count=None, camera=s.camera, mask=s.mask)
    return s, fit, av


def _hand_distances(av, fit, model, joints) -> np.ndarray:
    """Distance (metres) of the canonical avatar's vertices nearest to a hand's body vertices to the canonical
    body."""
    body = canonical_body(fit, model)
    d, nearest = cKDTree(body.vertices).query(av.canonical_vertices)
    return d[np.isin(body.lbs_weights.argmax(axis=1)[nearest], joints)]


@pytest.mark.parametrize("joints", [LEFT_HAND, RIGHT_HAND], ids=["left", "right"])
def test_a_hand_on_the_hip_keeps_no_lump_of_the_skirt(hands_on_skirt, model, joints):
    s, fit, av = hands_on_skirt
    d = _hand_distances(av, fit, model, joints)
    assert len(d) > 100
    # before: median 2.8 cm, 95th percentile 9.2 cm, max 11.2 cm off the canonical hand (a lump of hip)
    assert np.median(d) < 0.015
    assert np.percentile(d, 95) < 0.03
    assert d.max() < 0.06


def test_the_skirt_around_the_hands_is_still_there(hands_on_skirt):
    """The cap only thins the hand: the posed avatar still covers the photo's surface around it."""
    s, _, av = hands_on_skirt
    d = np.abs(MeshQuery(av.posed_vertices, av.faces).query(s.clothed_vertices).distance)
    near_hands = np.linalg.norm(s.clothed_vertices[:, None, :] - s.joints[None, [20, 21], :],
                                axis=2).min(axis=1) < 0.15
    assert near_hands.sum() > 100
    assert np.percentile(d[near_hands], 95) < 0.02
    assert av.stats["posed_silhouette_iou"] > 0.95


def test_bare_hands_caps_only_near_the_hands():
    x = np.zeros((4, 3))
    f = np.array([0.05, 0.05, -0.04, 0.05])
    share = np.array([0.0, 1.0, 1.0, 0.7])
    prior = np.full(4, -0.03)
    calls = []

    def prior_fn(points: np.ndarray) -> np.ndarray:
        calls.append(len(points))
        return prior[: len(points)]

    out = bare_hands(f, x, share, prior_fn)
    assert out[0] == f[0]  # no hand: untouched, and the prior is evaluated for the hand points only
    assert calls == [3]
    assert out[1] == pytest.approx(-0.03 + HAND_SLACK_M)  # all hand: capped at the grown body
    assert out[2] == pytest.approx(-0.04)  # the cap only carves: deeper outside stays
    assert -0.03 + HAND_SLACK_M < out[3] < 0.05  # the wrist: a smooth blend
    assert HAND_MAX_OFFSET_M + HAND_SLACK_M < 0.03  # the cap is tighter than a lump


def test_several_photos_keep_bare_hands_too(hands_on_skirt, model):
    """The fused occupancy (several photos, here the same photo twice) caps the hands like one photo's."""
    s, fit, _ = hands_on_skirt
    av = build_fused_avatar([s.clothed_vertices] * 2, [s.clothed_faces] * 2, [fit, fit], model, resolution=144,
                            levels=3, smooth=6, face_count=None, cameras=[s.camera] * 2, mask=s.mask,
                            masks=[s.mask] * 2)
    for joints in (LEFT_HAND, RIGHT_HAND):
        d = _hand_distances(av, fit, model, joints)
        assert len(d) > 100
        assert np.percentile(d, 95) < 0.03
