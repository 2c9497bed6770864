"""The benchmarks' own measures (wave 12): `bench/avatar.py`'s most lost limb segment, which finds an avatar that
lost a forearm when torn faces and edge lengths cannot, and `bench/texture_sides.py`'s per-part count of the vertex
colours a texture change moved; and the rest pose's pleats (wave 15)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from bench import avatar as bench_avatar
from bench import synthetic as syn
from bench.texture_sides import changed_vertices, summary
from icon_engine.texture import PART_LEFT_ARM, PART_TORSO


@pytest.fixture(scope="module")
def standing():
    return bench_avatar.synthetic_case(syn.load_open_body(), "stand", "tight", resolution=128, face_count=20_000)


def test_most_lost_segment_finds_a_forearm_moved_away(standing):
    share, _ = bench_avatar.most_lost_segment(standing)
    assert share < 0.6  # a whole avatar: at most unresolved fingers outside
    forearm = standing.weights[:, [19, 21, *range(40, 55)]].sum(axis=1)  # right elbow, wrist, fingers
    rest = standing.rest_vertices.copy()
    rest[forearm >= 0.25] += [0.0, 1.0, 0.0]  # the right forearm and hand torn off, the elbow's blend with them
    share, name = bench_avatar.most_lost_segment(dataclasses.replace(standing, rest_vertices=rest))
    assert share >= 0.6 and name in ("right forearm", "right hand")  # what the avatar stage restores


def test_changed_vertices_counts_per_part_and_leaves_out_unchanged_parts():
    before = np.full((6, 3), 100.0)
    after = before.copy()
    after[0] += [0.0, 0.0, 11.0]  # torso: one moved
    after[1] += [5.0, 5.0, 5.0]  # torso: within the threshold
    after[4:] -= 20.0  # left arm: two moved
    parts = np.array([PART_TORSO, PART_TORSO, PART_TORSO, PART_TORSO, PART_LEFT_ARM, PART_LEFT_ARM])
    assert changed_vertices(before, after, parts) == {"torso": 1, "left_arm": 2}
    assert changed_vertices(before, before, parts) == {}


def test_texture_sides_summary_gives_the_mean_back_error_and_what_moved():
    back = {"head": {"error": 10.0}, "torso": {"error": 20.0}}
    results = {"subject_1": {"before": {"back": back}, "after": {"back": {**back, "torso": {"error": 14.0}}},
                             "changed": {"torso": 5}},
               "icon_a": {"before": {}, "after": {}, "changed": {}}}
    lines = summary(results)
    assert lines[0] == "back-side error, before: 15.000 (mean of 2 regions)"
    assert lines[1] == "back-side error, after: 12.000 (mean of 2 regions)"
    assert lines[2].endswith(": subject_1 {'torso': 5}")
    assert summary({"icon_a": {"after": {}}}) == []  # no before, no subjects: nothing to sum up


def test_multiview_region_errors_split_depth_from_lateral():
    """`bench/multiview.py --regions`: the ground truth itself misses nothing; moved 2 cm along the camera's
    viewing axis it misses mostly in depth, moved 2 cm across it more laterally than in depth (never more than
    2 cm; the gap is to the nearest point, so a surface sliding along itself misses by less)."""
    from bench.multiview import region_errors

    s = syn.make_subject(syn.load_open_body(), 0, seed=11, size=(224, 320), kind="tight")
    same = region_errors(s.clothed_vertices, s.clothed_faces, s, s.camera, samples=4000)
    assert {"torso", "thigh", "shin", "head", "hand"} <= set(same)
    assert abs(sum(r["share"] for r in same.values()) - 1.0) < 1e-9
    assert max(r["cm"] for r in same.values()) < 0.05
    for axis, along in ((2, True), (0, False)):
        moved = s.clothed_vertices + 0.02 * np.asarray(s.camera.R[axis])
        torso = region_errors(moved, s.clothed_faces, s, s.camera, samples=4000)["torso"]
        assert 0.5 < torso["cm"] <= 2.01
        if along:
            assert torso["depth_cm"] > 1.5 * torso["lateral_cm"]
        else:
            assert torso["lateral_cm"] > torso["depth_cm"]


def test_pleat_shares_see_ripples_at_the_armpits_only(standing):
    smooth = bench_avatar.pleat_shares(standing)
    assert smooth["armpits"] < 0.05
    rest = standing.rest_vertices.copy()
    shoulder = standing.rest_joints[16]
    near = np.linalg.norm(rest - shoulder, axis=1) < 0.10
    rest[near, 1] += 0.01 * np.sin(rest[near, 0] * 200.0)  # 3 cm ridges, 2 cm tall, round the left shoulder
    rippled = bench_avatar.pleat_shares(dataclasses.replace(standing, rest_vertices=rest))
    assert rippled["armpits"] > smooth["armpits"] + 0.1
    assert rippled["knees"] == pytest.approx(smooth["knees"], abs=1e-9)


def test_leg_cloth_sees_a_sack_off_a_thigh(standing):
    share, p99 = bench_avatar.leg_cloth(standing)
    assert share < 0.01 and p99 < 0.04  # tight trousers
    rest = standing.rest_vertices.copy()
    knee, hip = standing.rest_joints[5], standing.rest_joints[2]
    mid = 0.5 * (knee + hip)
    front = (standing.parts == 4) & (np.abs(rest[:, 1] - mid[1]) < 0.08) & (rest[:, 2] > mid[2])
    rest[front, 2] += 0.08  # a sack 8 cm off the right thigh's front
    share2, p99_2 = bench_avatar.leg_cloth(dataclasses.replace(standing, rest_vertices=rest))
    assert share2 > share + 0.02 and p99_2 > 0.07


def test_texture_sides_loads_an_older_texture_package_or_module(tmp_path):
    """``bench/texture_sides.py --before``: an older ``texture`` package folder (wave 17 on) or the single
    ``texture.py`` before it loads beside the working tree's, and bakes with its own code."""
    import shutil
    from pathlib import Path

    import icon_engine.texture as current
    from bench.texture_sides import load_texture_module

    assert load_texture_module(None) is current
    folder = tmp_path / "texture"
    shutil.copytree(Path(current.__file__).parent, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "bake.py").write_text((folder / "bake.py").read_text() + "\nOLDER_COPY = True\n")
    older = load_texture_module(folder)
    assert older is not current and older.bake_texture.__module__.endswith("_texture_before.bake")
    assert getattr(sys.modules[older.bake_texture.__module__], "OLDER_COPY", False)
    assert not hasattr(sys.modules["icon_engine.texture.bake"], "OLDER_COPY")
    single = tmp_path / "texture_single.py"
    single.write_text("PART_NAMES = ('torso',)\n")
    assert load_texture_module(single).PART_NAMES == ("torso",)
    for name in [n for n in sys.modules if n.startswith("icon_engine._texture_before")]:
        del sys.modules[name]


def test_multiview_balanced_pose_stands_the_body_over_its_ankles():
    """`bench/multiview.py --balanced` (wave 23): a random standing pose that flexes both hips leans the whole body
    (its centre off its ankles by several degrees); balanced, the centre stands straight above the ankles' midpoint,
    the rest of the pose unchanged."""
    from bench.multiview import balanced_pose

    bm = syn.load_open_body()
    pose = np.zeros((55, 3))
    pose[syn.L_HIP, 0] = pose[syn.R_HIP, 0] = np.radians(-15.0)  # both thighs forward: the body leans

    def lean_deg(p: np.ndarray) -> float:
        verts, joints = syn.pose_body(bm, p, np.zeros(10))
        d = verts.mean(axis=0) - 0.5 * (joints[syn.L_ANKLE] + joints[syn.R_ANKLE])
        return float(np.degrees(np.arctan2(np.hypot(d[0], d[2]), d[1])))

    balanced = balanced_pose(bm, pose, np.zeros(10))
    assert lean_deg(pose) > 2.0 and lean_deg(balanced) < 0.05
    assert np.array_equal(balanced[1:], pose[1:])


def test_multiview_natural_stance_straightens_the_hips_and_keeps_the_step():
    """`bench/multiview.py --natural` (wave 24): a random standing pose that flexes both thighs forward (a half
    squat) stands on straight hips, a step staying a step, its knees bent half as much and its pelvis (global
    orientation) and the rest of the pose unchanged; balanced instead (`--balanced`), the same pose tilts the
    pelvis."""
    from bench.multiview import balanced_pose, natural_stance
    from icon_engine.geometry.rotations import axis_angle_to_matrix

    bm = syn.load_open_body()
    pose = np.zeros((55, 3))
    pose[0, 1] = np.radians(20.0)
    pose[syn.L_HIP, 0], pose[syn.R_HIP, 0] = np.radians(-15.0), np.radians(-5.0)  # a short step, both forward
    pose[syn.L_KNEE, 0] = pose[syn.R_KNEE, 0] = np.radians(10.0)

    def pelvis_tilt_deg(p: np.ndarray) -> float:
        up = axis_angle_to_matrix(np.asarray(p[0], dtype=np.float64))[:, 1]
        return float(np.degrees(np.arccos(np.clip(up[1], -1.0, 1.0))))

    natural = natural_stance(pose)
    assert np.isclose(natural[syn.L_HIP, 0] + natural[syn.R_HIP, 0], 0.0)
    assert np.isclose(natural[syn.L_HIP, 0] - natural[syn.R_HIP, 0], np.radians(-10.0))
    assert np.allclose(natural[[syn.L_KNEE, syn.R_KNEE], 0], np.radians(5.0))
    rest = [j for j in range(55) if j not in (syn.L_HIP, syn.R_HIP, syn.L_KNEE, syn.R_KNEE)]
    assert np.array_equal(natural[rest], pose[rest]) and pelvis_tilt_deg(natural) < 1e-9
    assert pelvis_tilt_deg(balanced_pose(bm, pose, np.zeros(10))) > 0.5


def test_scale_aligned_score_removes_the_focal_and_the_scale_of_one_photo():
    """`bench/fidelity.py scale_aligned` (wave 24, the shared set's score_scale protocol, used by bench/multiview.py):
    a reconstruction seen through a 20 % longer focal and 10 % too large about the camera centre (what one
    uncalibrated photo cannot tell apart) scores ≈ 0 at scale 1/1.1; the depth-aligned Chamfer does not remove it;
    a reconstruction off by a real shape error keeps it."""
    import trimesh

    from bench.fidelity import chamfer_p2s, scale_aligned
    from icon_engine.camera import Camera
    from icon_engine.mesh_queries import MeshQuery

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    gt_v = np.asarray(sphere.vertices) * [1.0, 2.5, 0.6] + [0.1, -0.2, 3.0]  # a body-sized ellipsoid 3 m ahead
    faces = np.asarray(sphere.faces)
    K = np.array([[1400.0, 0.0, 224.0], [0.0, 1400.0, 320.0], [0.0, 0.0, 1.0]])
    gt_cam = Camera(K, np.eye(3), np.zeros(3), 448, 640)
    fit_cam = Camera(K @ np.diag([1.2, 1.2, 1.0]), np.eye(3), np.zeros(3), 448, 640)
    fit_v = 1.1 * gt_v * [1.0 / 1.2, 1.0 / 1.2, 1.0]  # the same pixels through the longer focal, 10 % farther
    gt = type("Subject", (), {"clothed_vertices": gt_v, "clothed_faces": faces})()
    gq = MeshQuery(gt_v, faces, k=2)
    out = scale_aligned(fit_v, faces, fit_cam, gt, gt_cam, gq, samples=4000)
    assert out["chamfer_scaled_cm"] < 0.3 and abs(out["scale"] - 1.0 / 1.1) < 0.003
    assert chamfer_p2s(fit_v, faces, gt_v, faces, 4000, gq)[0] > 5.0
    dented = fit_v.copy()
    dented[fit_v[:, 2] < fit_v[:, 2].mean()] += [0.0, 0.0, 0.05]  # the front half 5 cm flatter
    assert scale_aligned(dented, faces, fit_cam, gt, gt_cam, gq, samples=4000)["chamfer_scaled_cm"] > 1.0
