"""bench/avatar_roundtrip.py's measures: the round trip's Chamfer and its regions (issue 15, wave 6)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from bench.avatar_roundtrip import REGIONS, body_regions, round_trip


def _body() -> tuple[np.ndarray, np.ndarray]:
    """Stand-in body: a torso sphere (joint 3, spine1) with a hand sphere (joint 21, right wrist) 2 cm off its side,
    and a leg sphere (joint 4) far below; one-hot (V, 55) weights."""
    torso = trimesh.creation.icosphere(3, radius=0.15).vertices
    hand = trimesh.creation.icosphere(2, radius=0.04).vertices + [0.21, 0.0, 0.0]
    leg = trimesh.creation.icosphere(2, radius=0.08).vertices + [0.0, -0.6, 0.0]
    verts = np.concatenate([torso, hand, leg])
    w = np.zeros((len(verts), 55))
    w[: len(torso), 3] = 1.0
    w[len(torso): len(torso) + len(hand), 21] = 1.0
    w[len(torso) + len(hand):, 4] = 1.0
    return verts, w


def test_regions_name_hands_touching_and_other():
    verts, w = _body()
    points = np.array([[0.25, 0.0, 0.0],  # beyond the hand
                       [0.155, 0.0, 0.0],  # on the torso, 1.5 cm from the hand
                       [-0.16, 0.0, 0.0],  # the torso's far side
                       [0.0, -0.69, 0.0]])  # under the leg
    names = [REGIONS[i] for i in body_regions(verts, w, points)]
    assert names == ["hands", "touching", "other", "other"]


def test_round_trip_is_zero_on_the_same_mesh_and_the_shift_otherwise():
    verts, w = _body()
    m = trimesh.creation.icosphere(3, radius=0.16)
    same = round_trip(m.vertices, m.faces, m.vertices, m.faces, verts, w, samples=4000)
    assert same["chamfer_cm"] < 1e-6
    grown = trimesh.creation.icosphere(3, radius=0.17)
    rt = round_trip(grown.vertices, grown.faces, m.vertices, m.faces, verts, w, samples=4000)
    assert rt["chamfer_cm"] == pytest.approx(1.0, abs=0.05)  # 1 cm apart everywhere
    assert rt["avatar_to_surface"]["max_cm"] == pytest.approx(1.0, abs=0.05)
    shares = sum(r["share_pct"] for r in rt["avatar_to_surface"]["regions"].values())
    assert shares == pytest.approx(100.0)
