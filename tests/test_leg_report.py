"""bench/leg_report.py: the legs' diagnosis (angles, frames, 2-D and 3-D errors; the shared set is not needed)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.leg_report import SEGMENT_MASS, body_frame, centre_of_mass, image_axes, leg_geometry, project, subject_report


def _legs(thigh_fwd_deg: float, knee_deg: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """SMPL-X-layout joints (55, 3) facing +Z: the left thigh swung ``thigh_fwd_deg`` forward, its shin bent back
    by ``knee_deg``; the right leg straight; feet 20 cm long, flat."""
    j = np.zeros((55, 3))
    j[1], j[2] = (0.1, 0.0, 0.0), (-0.1, 0.0, 0.0)
    a, b = np.radians(thigh_fwd_deg), np.radians(thigh_fwd_deg - knee_deg)
    j[4] = j[1] + 0.4 * np.array([0.0, -np.cos(a), np.sin(a)])
    j[7] = j[4] + 0.4 * np.array([0.0, -np.cos(b), np.sin(b)])
    j[5], j[8] = j[2] + (0.0, -0.4, 0.0), j[2] + (0.0, -0.8, 0.0)
    kp = {"left_heel": j[7] + (0.0, -0.05, -0.05), "left_big_toe": j[7] + (0.0, -0.05, 0.15),
          "right_heel": j[8] + (0.0, -0.05, -0.05), "right_big_toe": j[8] + (0.05, -0.05, 0.15)}
    return j, kp


def test_leg_geometry_measures_swing_bend_and_foot_in_the_body_frame():
    joints, kp = _legs(20.0, 30.0)
    frame = body_frame(joints)
    assert np.allclose(frame, np.eye(3)), "left +X, up +Y, forward +Z"
    g = leg_geometry(joints, kp, frame)
    assert g["left_thigh_pitch"] == pytest.approx(20.0) and g["left_knee_bend"] == pytest.approx(30.0)
    assert g["left_shin_pitch"] == pytest.approx(-10.0) and g["left_thigh_roll"] == pytest.approx(0.0, abs=1e-9)
    assert g["right_thigh_pitch"] == pytest.approx(0.0, abs=1e-9) and g["right_knee_bend"] == pytest.approx(0.0)
    assert g["left_foot_yaw"] == pytest.approx(0.0, abs=1e-9) and g["left_foot_pitch"] == pytest.approx(0.0, abs=1e-9)
    # the right toe turns 5 cm towards +X, the body's left: inwards for the right foot (yaw < 0)
    assert g["right_foot_yaw"] == pytest.approx(-np.degrees(np.arctan2(0.05, 0.2)))
    assert g["hip_width"] == pytest.approx(0.2) and g["left_thigh_len"] == pytest.approx(0.4)
    # a leg swung outwards rolls positive on either side
    j2 = joints.copy()
    j2[5] = j2[2] + 0.4 * np.array([-np.sin(0.2), -np.cos(0.2), 0.0])
    assert leg_geometry(j2, kp, frame)["right_thigh_roll"] == pytest.approx(np.degrees(0.2))


def test_image_axes_point_to_the_head_and_the_left_hip():
    px = {"left_hip": np.array([110.0, 100.0]), "right_hip": np.array([90.0, 100.0]),
          "left_ankle": np.array([110.0, 300.0]), "right_ankle": np.array([90.0, 300.0])}
    up, across = image_axes(px)
    assert np.allclose(up, [0.0, -1.0]) and np.allclose(across, [1.0, 0.0])
    K = np.array([[1000.0, 0.0, 50.0], [0.0, 1000.0, 60.0], [0.0, 0.0, 1.0]])
    assert np.allclose(project(np.array([[0.1, -0.2, 2.0]]), K, np.eye(3), np.zeros(3)), [[100.0, -40.0]])


def test_subject_report_finds_a_bent_knee_and_a_landmark_bias_on_the_open_body():
    """GT: the open body standing; ours: the same with the left knee bent 0.4 rad (23°); BlazePose: the GT points
    projected, the knees 10 px lower. The report gives the left knee's bend error, nothing at the hips or on the
    right leg, and the landmarks' 10 px below the GT knees."""
    import torch

    from bench.fidelity import anny_regressor
    from bench.fit_split import segments
    from icon_engine.body_model import load_body_model
    from icon_engine.fit.landmarks import BP

    model = load_body_model()
    n = 13348
    pose = np.zeros((55, 3))

    def body(p: np.ndarray) -> np.ndarray:
        out = model(body_pose=torch.as_tensor(p[1:22].reshape(1, 63), dtype=torch.float32))
        return out.vertices[0].detach().numpy().astype(np.float64)

    gt = body(pose)
    pose[4, 0] = 0.4
    ours = body(pose)
    reg = anny_regressor(model, n)
    cam = {"K": [[1500.0, 0.0, 384.0], [0.0, 1500.0, 512.0], [0.0, 0.0, 1.0]],
           "R": np.diag([1.0, -1.0, -1.0]).tolist(), "t": [0.0, -0.3, 4.0]}  # 4 m in front, looking along −Z
    K, R, t = (np.asarray(cam[k]) for k in ("K", "R", "t"))
    gj = reg @ gt[:n]
    names = list(model.keypoint_names)
    ids = model.keypoint_vertex_ids.numpy()
    kp = np.zeros((33, 3))
    for name, point in {"left_hip": gj[1], "right_hip": gj[2], "left_knee": gj[4], "right_knee": gj[5],
                        "left_ankle": gj[7], "right_ankle": gj[8], "left_shoulder": gj[16],
                        "right_shoulder": gj[17], **{f"{s}_heel": gt[ids[names.index(f"{s}_heel")]]
                                                      for s in ("left", "right")},
                        **{f"{s}_foot_index": gt[ids[names.index(f"{s}_big_toe")]] for s in ("left", "right")}}.items():
        kp[BP[name], :2] = project(point[None], K, R, t)[0]
    kp[[BP["left_knee"], BP["right_knee"]], 1] += 10.0  # image y down: 10 px lower
    r = subject_report(ours, gt[:n], reg, model, segments(model, n), kp, cam)
    assert r["geo_left_knee_bend"] - r["gt_left_knee_bend"] == pytest.approx(np.degrees(0.4), abs=3.0)
    assert abs(r["geo_right_knee_bend"] - r["gt_right_knee_bend"]) < 0.5
    assert max(abs(r[f"3d_{s}_hip_{c}"]) for s in ("left", "right") for c in "lufd") < 0.5
    assert r["3d_left_ankle_f"] < -5.0, "the bent shin's ankle lies behind the truth"
    assert r["2d_bp-gt_left_knee_up"] == pytest.approx(-10.0, abs=0.5)
    assert r["2d_bp-gt_right_ankle_up"] == pytest.approx(0.0, abs=1e-6)
    assert r["legs_vertex_cm"] > 1.0 and r["legs_depth_cm"] > r["legs_image_cm"], "the shin swung back: depth"


def test_centre_of_mass_of_the_open_body_lies_about_the_navel_and_follows_the_legs():
    import torch

    from icon_engine.body_model import load_body_model

    model = load_body_model()

    def joints(hips_x: float) -> np.ndarray:
        pose = torch.zeros(1, 21, 3)
        pose[0, 0, 0] = pose[0, 1, 0] = hips_x  # left/right hip about +x: −x swings the thighs forward
        return model(body_pose=pose.reshape(1, 63)).joints[0].detach().numpy().astype(np.float64)

    assert sum(m for *_, m in SEGMENT_MASS) == pytest.approx(1.0, abs=0.005), "Winter's fractions: the whole body"
    rest = joints(0.0)
    com = centre_of_mass(rest)
    assert abs(com[0]) < 0.005, "left/right symmetric"
    assert rest[0, 1] - 0.05 < com[1] < rest[6, 1], "between the pelvis and spine2"
    ahead = (com - 0.5 * (rest[7] + rest[8]))[2]
    assert 0.0 < ahead < 0.05, "the rest pose's centre of mass lies a little ahead of its ankles"
    forward = joints(-0.3)
    assert (centre_of_mass(forward) - 0.5 * (forward[7] + forward[8]))[2] < ahead - 0.1, "the feet pass it"
