"""The add-on's Blender-free core: bone layout, pose conversion, motion files, camera, FBX presets (no bpy)."""

from __future__ import annotations

import numpy as np
import pytest
from test_blender_bundle import random_pose, synthetic_body, synthetic_joints

from icon_blender.core import camera as cam_core
from icon_blender.core import fbx_presets, rig
from icon_blender.core._rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
)
from icon_blender.core.motion import MotionError, load_motion, motion_from_arrays, resample
from icon_engine.bundle import JOINT_NAMES, PARENTS, forward_kinematics, skin_vertices

C = rig.Y_UP_TO_Z_UP


def test_y_up_to_z_up_is_plus_90_about_x():
    assert np.allclose(C @ [0, 1, 0], [0, 0, 1]) and np.allclose(C @ [0, 0, 1], [0, -1, 0])
    assert np.allclose(C, axis_angle_to_matrix(np.array([np.pi / 2, 0, 0])))


def test_bones_point_to_their_child_with_forward_z_axis():
    joints = rig.to_blender(synthetic_joints())
    heads, tails, rots = rig.bone_layout(joints, np.array(PARENTS), JOINT_NAMES)
    idx = {n: i for i, n in enumerate(JOINT_NAMES)}
    assert np.allclose(heads, joints)
    for name, child in (("left_knee", "left_ankle"), ("right_elbow", "right_wrist"), ("pelvis", "spine1"),
                        ("spine3", "neck"), ("left_wrist", "left_middle1")):
        d = joints[idx[child]] - joints[idx[name]]
        assert np.allclose(tails[idx[name]] - heads[idx[name]], d, atol=1e-9), name
    for r in rots:
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(r), 1.0)
    y_dirs = (tails - heads) / np.linalg.norm(tails - heads, axis=1, keepdims=True)
    assert np.allclose(rots[:, :, 1], y_dirs, atol=1e-9)
    # limbs: local Z is the body's forward direction (−Y in Blender) for both sides alike
    for name in ("left_knee", "right_knee", "left_elbow", "right_elbow", "spine2"):
        assert rots[idx[name]][:, 2] @ rig.FORWARD > 0.95, name
    # bones along the forward axis (feet) roll their Z up instead
    assert rots[idx["left_ankle"]][:, 2] @ rig.UP > 0.5
    # leaves continue their parent's direction
    assert np.allclose(y_dirs[idx["left_index3"]], y_dirs[idx["left_index2"]])


def test_roll_reproduces_rest_rotation():
    rng = np.random.default_rng(3)
    for _ in range(50):
        r = axis_angle_to_matrix(rng.normal(size=3) * 2)
        roll = rig.roll_from_rotation(r)
        base = rig._unrolled_basis(r[:, 1])
        rolled = base @ axis_angle_to_matrix(np.array([0.0, roll, 0.0]))
        assert np.allclose(rolled, r, atol=1e-9)


def _armature_fk(heads, rest_rots, parents, basis_q, root_loc):
    """Blender's pose evaluation in numpy: M_j = M_p · Rest_p⁻¹ · Rest_j · Basis_j (armature space)."""
    n = len(heads)
    rest = np.zeros((n, 4, 4))
    rest[:, :3, :3], rest[:, :3, 3], rest[:, 3, 3] = rest_rots, heads, 1.0
    basis = np.zeros((n, 4, 4))
    basis[:, :3, :3], basis[:, 3, 3] = quaternion_to_matrix(basis_q), 1.0
    basis[0, :3, 3] = root_loc
    out = np.zeros((n, 4, 4))
    for j in range(n):
        p = parents[j]
        out[j] = (rest[j] if p < 0 else out[p] @ np.linalg.inv(rest[p]) @ rest[j]) @ basis[j]
    return out


@pytest.mark.parametrize("random_rolls", [False, True])
def test_pose_conversion_matches_smplx_forward_kinematics(random_rolls):
    joints = synthetic_joints()
    pose = random_pose(1, scale=0.5)
    transl = np.array([0.3, -0.1, 0.25])
    heads, _, rots = rig.bone_layout(rig.to_blender(joints), np.array(PARENTS), JOINT_NAMES)
    if random_rolls:  # any rest orientation works, not just ours
        rots = axis_angle_to_matrix(np.random.default_rng(5).normal(size=(55, 3)) * 2)
    q = rig.pose_bone_quaternions(pose, rots)
    loc = rig.root_location(rig.pelvis_positions(joints[0], transl), heads[0], rots[0])
    posed = _armature_fk(heads, rots, np.array(PARENTS), q, loc)
    glob_r, glob_t = forward_kinematics(joints, np.array(PARENTS), pose)
    assert np.allclose(posed[:, :3, 3], rig.to_blender(glob_t + transl), atol=1e-9)
    assert np.allclose(posed[:, :3, :3], rig.rotation_to_blender(glob_r) @ rots, atol=1e-9)
    # and the skinned mesh equals the bundle contract's mesh
    rest, _, weights = synthetic_body(joints)
    skin = np.einsum("jab,jbc->jac", posed, np.linalg.inv(np.concatenate(
        [np.concatenate([rots, heads[:, :, None]], 2), np.tile([[[0, 0, 0, 1.0]]], (55, 1, 1))], 1)))
    rest_h = np.concatenate([rig.to_blender(rest), np.ones((len(rest), 1))], 1)
    blender = np.einsum("vj,jab,vb->va", weights, skin, rest_h)[:, :3]
    expected = rig.to_blender(skin_vertices(rest, weights, joints, np.array(PARENTS), pose, transl))
    assert np.abs(blender - expected).max() < 1e-9


def test_z_up_global_orientation_is_taken_in_blender_world():
    pose = np.zeros((55, 3))
    pose[0] = [0.3, -0.2, 1.0]
    rots = np.tile(np.eye(3), (55, 1, 1))
    q = rig.pose_bone_quaternions(pose, rots, z_up_data=True)
    assert np.allclose(quaternion_to_matrix(q[0]), axis_angle_to_matrix(pose[0]) @ C.T, atol=1e-9)
    # the AMASS identity orientation lies the Y-up body down: Y-up model → Z-up world leaves Z as model Y
    assert np.allclose(rig.pelvis_positions(np.array([0, 1.0, 0]), np.zeros(3), z_up_data=True), [0, 1, 0])


def test_make_continuous_removes_sign_flips():
    rng = np.random.default_rng(2)
    aa = np.cumsum(rng.normal(scale=0.2, size=(40, 3, 3)), axis=0)
    q = axis_angle_to_quaternion(aa)
    flips = rng.random((40, 3)) < 0.5
    mixed = np.where(flips[..., None], -q, q)
    fixed = rig.make_continuous(mixed)
    assert np.all(np.sum(fixed[1:] * fixed[:-1], -1) >= 0)
    assert np.allclose(np.abs(np.sum(fixed * q, -1)), 1.0)  # same rotations
    assert np.any(np.sum(mixed[1:] * mixed[:-1], -1) < 0)


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(200, 3))
    aa *= (np.pi * 0.999 * rng.random((200, 1))) / np.linalg.norm(aa, axis=1, keepdims=True)
    m = axis_angle_to_matrix(aa)
    assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(m)), m, atol=1e-9)
    assert np.allclose(quaternion_to_axis_angle(axis_angle_to_quaternion(aa)), aa, atol=1e-8)


# --- motion files ----------------------------------------------------------------------------------------


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_motion_smplx_and_smplh_layouts(tmp_path):
    rng = np.random.default_rng(0)
    poses = rng.normal(scale=0.3, size=(10, 165))
    m = load_motion(_save(tmp_path / "x.npz", poses=poses, trans=np.ones((10, 3)), mocap_frame_rate=120.0))
    assert m.layout == "smplx" and m.fps == 120 and m.z_up and np.allclose(m.poses.reshape(10, -1), poses)
    h = rng.normal(scale=0.3, size=(7, 156))
    m = load_motion(_save(tmp_path / "h.npz", poses=h, trans=np.zeros((7, 3)), mocap_framerate=60,
                          gender=np.array("female")))
    assert m.layout == "smplh" and m.fps == 60
    assert np.allclose(m.poses[:, :22].reshape(7, -1), h[:, :66])
    assert np.allclose(m.poses[:, 22:25], 0)  # jaw and eyes
    assert np.allclose(m.poses[:, 25:].reshape(7, -1), h[:, 66:])
    m = load_motion(_save(tmp_path / "f.npz", poses=poses[:3], fps=np.array(30)))
    assert m.fps == 30 and not m.z_up and np.allclose(m.trans, 0)
    assert load_motion(tmp_path / "f.npz", up_axis="Z").z_up


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"trans": np.zeros((3, 3)), "fps": 30}, "no 'poses'"),
        ({"poses": np.zeros((3, 100)), "fps": 30}, "expected 165"),
        ({"poses": np.zeros((3, 165))}, "no frame rate"),
        ({"poses": np.zeros((3, 165)), "fps": 0}, "not a usable frame rate"),
        ({"poses": np.zeros((3, 165)), "trans": np.zeros((2, 3)), "fps": 30}, "'trans' must be"),
        ({"poses": np.full((3, 165), np.nan), "fps": 30}, "NaN"),
    ],
)
def test_bad_motion_arrays_are_refused_clearly(tmp_path, arrays, needle):
    with pytest.raises(MotionError, match=needle):
        load_motion(_save(tmp_path / "bad.npz", **arrays))


def test_pickled_and_foreign_files_are_refused(tmp_path):
    obj = np.empty(1, dtype=object)
    obj[0] = {"evil": 1}
    with pytest.raises(MotionError, match="pickled"):
        load_motion(_save(tmp_path / "p.npz", poses=obj, fps=30))
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(MotionError, match="not an .npz"):
        load_motion(tmp_path / "m.pkl")
    with pytest.raises(MotionError, match="not found"):
        load_motion(tmp_path / "missing.npz")


def test_resample_down_picks_frames_and_up_interpolates():
    rng = np.random.default_rng(1)
    poses = rng.normal(scale=0.4, size=(9, 165))
    m = motion_from_arrays({"poses": poses, "trans": rng.normal(size=(9, 3)), "mocap_framerate": 120})
    down = resample(m, 30)
    assert down.num_frames == 3 and down.fps == 30
    assert np.allclose(down.poses, m.poses[::4], atol=1e-9) and np.allclose(down.trans, m.trans[::4])
    axis = np.array([0.0, 0.0, 1.0])
    two = motion_from_arrays({"poses": np.stack([np.tile(axis * 0.2, 55), np.tile(axis * 0.6, 55)]), "fps": 30})
    up = resample(two, 60)
    assert up.num_frames == 3
    assert np.allclose(up.poses[1], axis * 0.4, atol=1e-9)
    odd = resample(m, 50)  # 8/120 s of motion → frames at 0, 1/50, ... ≤ 8/120
    assert odd.num_frames == int(np.floor(8 / 120 * 50)) + 1


# --- camera and presets ----------------------------------------------------------------------------------


def test_camera_pose_and_intrinsics():
    K = np.array([[900.0, 0, 300], [0, 900.0, 260], [0, 0, 1]])
    R = np.diag([1.0, -1.0, -1.0])
    t = np.array([0.0, 1.0, 3.0])
    cam = cam_core.blender_camera(K, R, t, 640, 480)
    m = cam.matrix_world
    assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3)) and np.isclose(np.linalg.det(m[:3, :3]), 1)
    assert np.allclose(m[:3, 3], C @ (-R.T @ t))  # centre in Blender's frame: (0, 3, 1) → (0, -3, 1)
    assert np.allclose(m[:3, 3], [0, -3, 1])
    assert np.allclose(m[:3, :3] @ [0, 0, -1], [0, 1, 0])  # it looks along +Y at the avatar facing −Y
    assert cam.sensor_fit == "HORIZONTAL" and np.isclose(cam.lens_mm, 900 * 36 / 640)
    assert np.isclose(cam.shift_x, 20 / 640) and np.isclose(cam.shift_y, 20 / 640)
    tall = cam_core.blender_camera(K, R, t, 480, 640)
    assert tall.sensor_fit == "VERTICAL" and np.isclose(tall.lens_mm, 900 * 36 / 640)


def test_fbx_presets():
    for name in ("unity", "unreal", "generic"):
        p = fbx_presets.preset(name)
        assert p["add_leaf_bones"] is False and p["bake_anim"] is True
    assert fbx_presets.preset("Unity")["apply_scale_options"] == "FBX_SCALE_ALL"
    with pytest.raises(ValueError, match="unknown FBX preset"):
        fbx_presets.preset("maya")


def test_pose_relative_to_an_a_pose_rest_reproduces_smplx():
    """Posing the A-rest skeleton with the converted pose gives SMPL-X's joints, and every bone turns by the
    SMPL-X rotation after undoing its rest rotation (so rigidly skinned parts land exactly where SMPL-X puts them)."""
    joints = synthetic_joints()
    parents = np.array(PARENTS)
    angles = np.zeros((55, 3))
    angles[16, 2], angles[17, 2] = -np.pi / 4, np.pi / 4  # arms lowered
    angles[3] = [0.1, 0.0, 0.05]
    rest_rot, joints_a = forward_kinematics(joints, parents, angles)
    poses = np.stack([random_pose(s) for s in range(3)])
    rel = rig.pose_relative_to_rest(poses, angles, parents)
    assert rel.shape == poses.shape
    for k in range(3):
        glob, expected = forward_kinematics(joints, parents, poses[k])
        glob_a, got = forward_kinematics(joints_a, parents, rel[k])
        assert np.abs(got - expected).max() < 1e-9
        assert np.abs(glob_a @ rest_rot - glob).max() < 1e-9
    assert np.array_equal(rig.pose_relative_to_rest(poses, np.zeros((55, 3)), parents), poses)
