"""The arms' diagnosis on the shared set (``bench/arms_report.py``, issue 15 wave 6): generated cases on the real
open body, with the truth known, so that each figure measures what it says."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench.arms_report import ARM, arm_rows
from bench.fidelity import anny_regressor
from bench.fit_split import segments
from bench.lib.fit_cases import named_pose, pose_body


@pytest.fixture(scope="module")
def scene():
    """A walker (the open body), an OpenCV camera 3.5 m in front of it, its regressor and segments, and a
    BlazePose-like observation: the arm landmarks are the true joints (pixels, and camera-frame world points)."""
    from icon_engine.body_model import load_body_model

    body = load_body_model()
    pose = named_pose("walking")
    verts = pose_body(body, pose, np.zeros(10))[0].vertices[0].double().numpy()
    reg = anny_regressor(body, len(verts))
    seg = segments(body, len(verts))
    R = np.diag([1.0, -1.0, -1.0])  # OpenCV camera looking at the body's front (+Z towards the camera)
    centre = verts.mean(0)
    t = -R @ (centre + np.array([0.0, 0.0, 3.5]))
    K = np.array([[1200.0, 0.0, 384.0], [0.0, 1200.0, 512.0], [0.0, 0.0, 1.0]])
    cam = {"K": K.tolist(), "R": R.tolist(), "t": t.tolist()}
    joints_cam = (reg @ verts) @ R.T + t
    kps = np.zeros((33, 3))
    world = np.zeros((33, 3))
    for chain in ARM.values():
        for j, lm in chain:
            c = joints_cam[j]
            kps[lm] = (*(c[:2] / c[2] * np.diag(K)[:2] + K[:2, 2]), 1.0)
            world[lm] = c
    obs = SimpleNamespace(keypoints=kps, world_landmarks=world)
    return SimpleNamespace(verts=verts, reg=reg, seg=seg, cam=cam, obs=obs, R=R, t=t)


def _rows(scene, ours: np.ndarray, obs=None) -> dict:
    return arm_rows(ours, scene.verts, obs or scene.obs, 1.0, scene.cam, scene.reg, scene.seg)


def test_the_truth_scores_zero(scene):
    rows = _rows(scene, scene.verts)
    for side in ("left", "right"):
        r = rows[side]
        assert max(r["px_ours"] + r["px_gt"]) < 0.1
        assert max(map(abs, r["dz_ours_cm"] + r["dz_bp_cm"])) < 0.05
        assert r["len_upper"] == pytest.approx(1.0, abs=1e-3) and r["len_fore"] == pytest.approx(1.0, abs=1e-3)
        assert r["len2d_ours"] == pytest.approx(1.0, abs=1e-3) and r["len2d_bp"] == pytest.approx(1.0, abs=1e-3)
        assert max(map(abs, r["along_ours_pct"] + r["along_bp_pct"])) < 0.1
    assert rows["trunk"] == pytest.approx(1.0, abs=1e-3)


def test_camera_and_scale_errors_are_removed_from_depth_and_lengths(scene):
    """A body 8 % too big and 20 cm off: the pixels move, the depths and lengths after the torso alignment not."""
    c = scene.verts.mean(0)
    rows = _rows(scene, c + 1.08 * (scene.verts - c) + np.array([0.05, -0.1, 0.2]))
    for side in ("left", "right"):
        assert max(rows[side]["px_ours"]) > 5.0
        assert max(map(abs, rows[side]["dz_ours_cm"])) < 0.2
        assert rows[side]["len_fore"] == pytest.approx(1.0, abs=2e-3)


def test_a_forearm_moved_in_depth(scene):
    """The right forearm and hand (segments of the right elbow and wrist) 10 cm farther from the camera: the right
    wrist is 10 cm deep, the left arm untouched."""
    ours = scene.verts.copy()
    moved = np.isin(scene.seg, (19, 21))
    ours[moved] += scene.R.T @ np.array([0.0, 0.0, 0.10])  # +10 cm along the camera's z, in the world
    rows = _rows(scene, ours)
    assert rows["right"]["dz_ours_cm"][1] == pytest.approx(10.0, abs=0.5)
    assert max(map(abs, rows["left"]["dz_ours_cm"])) < 0.05


def test_blazepose_depth_error(scene):
    """BlazePose's right forearm with its depth flipped: its wrist error is twice the true forearm's depth."""
    obs = SimpleNamespace(keypoints=scene.obs.keypoints, world_landmarks=scene.obs.world_landmarks.copy())
    (_, sh), (_, el), (_, wr) = ARM["right"]
    wl = obs.world_landmarks
    true_dz = wl[wr, 2] - wl[el, 2]
    wl[wr, 2] = wl[el, 2] - true_dz
    rows = _rows(scene, scene.verts, obs)
    assert rows["right"]["dz_bp_cm"][0] == pytest.approx(0.0, abs=0.05)
    assert rows["right"]["dz_bp_cm"][1] == pytest.approx(-200.0 * true_dz, abs=0.1)
    assert abs(true_dz) > 0.01  # the walker's forearm is not in the image plane


def test_landmarks_moved_along_the_arm_in_the_image(scene):
    """BlazePose's left shoulder 12 px up the arm (away from the hand) and its wrist 6 px up the forearm, in the
    image: the 2-D figures show a shoulder above the joint, a wrist up the forearm and an arm 2 % longer; our body
    (the truth) stays at 1 and 0."""
    (_, sh), (_, el), (_, wr) = ARM["left"]
    kps = scene.obs.keypoints.copy()
    line = kps[wr, :2] - kps[sh, :2]
    length = float(np.linalg.norm(line))
    u = line / length
    kps[sh, :2] -= 12.0 * u
    kps[wr, :2] -= 6.0 * u
    obs = SimpleNamespace(keypoints=kps, world_landmarks=scene.obs.world_landmarks)
    left = _rows(scene, scene.verts, obs)["left"]
    assert left["along_bp_pct"][0] == pytest.approx(-1200.0 / length, abs=0.1)
    assert left["along_bp_pct"][1] == pytest.approx(0.0, abs=0.05)
    assert left["along_bp_pct"][2] == pytest.approx(-600.0 / length, abs=0.1)
    assert left["len2d_bp"] == pytest.approx(1.0 + 6.0 / length, abs=1e-3)
    assert left["len2d_ours"] == pytest.approx(1.0, abs=1e-3)
    assert max(map(abs, left["along_ours_pct"])) < 0.1
