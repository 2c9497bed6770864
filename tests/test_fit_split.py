"""bench/fit_split.py: the alignments that split the body error (pure numpy; the shared set is not needed)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.fit_split import CORE, REGIONS, limb_leads, segments, similarity
from icon_engine.bundle.skeleton import axis_angle_to_matrix


def test_similarity_recovers_a_known_transform_from_the_chosen_points():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(200, 3))
    rot = axis_angle_to_matrix(np.array([0.3, -0.5, 0.2]))
    dst = 1.3 * src @ rot.T + [0.1, -2.0, 0.5]
    assert np.allclose(similarity(src, dst), dst, atol=1e-9)
    rigid = similarity(src, src @ rot.T + 1.0, with_scale=False)
    assert np.allclose(rigid, src @ rot.T + 1.0, atol=1e-9)
    # only the chosen points set the transform: the others (a "wrong arm") keep their own error
    moved = dst.copy()
    moved[150:] += 0.5
    core = np.arange(200) < 150
    out = similarity(src, moved, fit=core)
    assert np.allclose(out[:150], moved[:150], atol=1e-9)
    assert np.allclose(np.linalg.norm(out[150:] - moved[150:], axis=1), np.linalg.norm([0.5, 0.5, 0.5]), atol=1e-9)


def test_segments_cover_the_regions_of_the_open_body():
    from icon_engine.body_model import load_body_model

    model = load_body_model()
    seg = segments(model, 13348)
    joints = set(np.unique(seg).tolist())
    assert joints <= set(sum(REGIONS.values(), ())), "every segment belongs to a region"
    assert set(CORE) <= joints
    assert not joints & set(range(22, 55)), "hands, jaw and eyes are merged into wrist and head"
    assert np.isin(seg, REGIONS["arms"]).mean() == pytest.approx(0.32, abs=0.1)


def test_limb_leads_measure_along_the_frames_forward_axis():
    """A body turned 90° about the vertical (facing +X) with the left ankle 30 cm ahead and the right 20 cm behind
    the pelvis: stride 50 cm; measured in another body's frame (facing +Z) the same joints lead by nothing."""
    joints = np.zeros((55, 3))
    joints[1], joints[2] = (0.0, 0.0, -0.1), (0.0, 0.0, 0.1)  # left hip at −Z, right at +Z: forward is +X
    joints[7], joints[8] = (0.3, -0.8, -0.1), (-0.2, -0.8, 0.1)
    joints[21] = (0.25, -0.3, 0.2)
    leads = limb_leads(joints)
    assert leads["stride"] == pytest.approx(50.0) and leads["left_ankle"] == pytest.approx(30.0)
    assert leads["right_ankle"] == pytest.approx(-20.0) and leads["right_wrist"] == pytest.approx(25.0)
    front = np.zeros((55, 3))
    front[1], front[2] = (0.1, 0.0, 0.0), (-0.1, 0.0, 0.0)  # facing +Z
    assert limb_leads(joints, front)["stride"] == pytest.approx(0.0, abs=1e-9)
