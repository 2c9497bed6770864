"""Front + back (a rigged turnaround without a side view): the photos share the trunk, each keeps its own arms tied
by their agreement (icon_engine.joint_fit.OWN_ARMS_WITHOUT_SIDE), so a back view's wrong arm does not move the first
photo's, and its own legs drawn together by a stiff agreement (OWN_LEGS_WITHOUT_SIDE), so they meet (generated
photos of the sample person: real BlazePose, real open body)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_joint_fit import _photos, body_error_cm

from icon_engine.fit.landmarks import BP


def _turned_arm(keypoints: np.ndarray, side: str, degrees: float) -> np.ndarray:
    """BlazePose ``keypoints`` (33, 3) with one arm's elbow, wrist and hand turned in the image about its shoulder."""
    out = np.asarray(keypoints, dtype=np.float64).copy()
    a = np.radians(degrees)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = out[BP[f"{side}_shoulder"], :2]
    for name in ("elbow", "wrist", "pinky", "index", "thumb"):
        i = BP[f"{side}_{name}"]
        out[i, :2] = centre + (out[i, :2] - centre) @ rot.T
    return out


@pytest.mark.slow
def test_front_and_back_keep_their_own_arms_and_a_wrong_back_arm_leaves_the_first_photos(tmp_path: Path) -> None:
    from icon_engine.body_model import load_body_model
    from icon_engine.joint_fit import ARM_ROWS, LEG_ROWS, shared_pose_fit
    from icon_engine.subject import fit_subject, gather_inputs

    photos = _photos(tmp_path, (0.0, 180.0), [None, None])
    body = load_body_model()
    views, _, report = fit_subject(gather_inputs([p for p, _, _ in photos]), body, quality="preview", joint=False)
    betas = np.asarray(report["betas"])
    warm = [(v.observation, v.photo, v.fit) for v in views]
    pair = shared_pose_fit(warm, body, betas, quality="preview")
    assert pair.stats["quarter_turns"] and pair.stats["shared_pose_photos"] == 2, str(pair.stats)
    assert pair.stats["own_arms"] and pair.stats["own_legs"] and pair.stats["labels_swapped"] == 0, str(pair.stats)
    arms = [r + 1 for r in ARM_ROWS]  # full_pose rows (the pelvis first)
    legs = [r + 1 for r in LEG_ROWS]
    trunk = [r for r in range(1, 22) if r not in arms + legs]
    first, back = (np.asarray(f.full_pose) for f in pair.fits)
    assert np.allclose(first[trunk], back[trunk])  # one trunk
    assert np.abs(first[arms] - back[arms]).max() > 1e-3  # an arm each
    # a pair of legs each, drawn together: they end within a few hundredths of a radian (the reported gap)
    gap = np.linalg.norm(first[legs] - back[legs], axis=1).max()
    assert 0.0 < gap < 0.1 and abs(gap - pair.stats["leg_gap_rad"]) < 1e-3, (gap, pair.stats["leg_gap_rad"])
    # the per-limb keypoint terms of the back view, own and registered to the first photo's pose, are reported
    reg = pair.stats["registration"][1]
    assert set(reg["own_limbs"]) == {"left_arm", "right_arm", "left_leg", "right_leg"} == set(reg["registered_limbs"])
    # BlazePose got the back view's left arm wrong (turned 60° about its shoulder): the first photo's arms barely
    # move (with one shared arm they moved by 0.085 rad here), and its body stays as close to the truth
    bad = replace(views[1].observation, keypoints=_turned_arm(views[1].observation.keypoints, "left", 60.0))
    wrong = shared_pose_fit([warm[0], (bad, warm[1][1], warm[1][2])], body, betas, quality="preview")
    assert wrong.stats["shared_pose_photos"] == 2 and wrong.stats["own_arms"], str(wrong.stats)
    moved = np.abs(np.asarray(wrong.fits[0].full_pose)[arms] - first[arms]).max()
    assert moved < 0.04, moved
    errors = [body_error_cm(f.fits[0], photos[0][1], photos[0][2]) for f in (pair, wrong)]
    own = body_error_cm(views[0].fit, photos[0][1], photos[0][2])
    assert errors[1] < errors[0] + 0.5 and errors[0] < own + 0.5, (errors, own)
