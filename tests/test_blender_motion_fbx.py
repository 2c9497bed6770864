"""Motion files on an imported avatar, FBX export presets and the FBX round trip (bpy, headless)."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from test_blender_bundle import make_bundle, synthetic_joints  # noqa: E402

from icon_blender.blender.export import export_fbx  # noqa: E402
from icon_blender.blender.importer import import_bundle  # noqa: E402
from icon_blender.blender.motion import apply_motion  # noqa: E402
from icon_blender.core import rig  # noqa: E402
from icon_blender.core.motion import MotionError, load_motion, resample  # noqa: E402
from icon_engine.bundle import JOINT_NAMES, PARENTS, forward_kinematics, read_bundle  # noqa: E402


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "avatar", seed=4)


@pytest.fixture(scope="module")
def a_rest_bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "a_avatar", seed=4, rest_pose="A")


@pytest.fixture()
def avatar(bundle_dir):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    return import_bundle(bundle_dir, scene)


def make_motion(path, frames=13, fps=60.0, key="fps", seed=0):
    rng = np.random.default_rng(seed)
    poses = np.cumsum(rng.normal(scale=0.15, size=(frames, 165)), axis=0)
    trans = np.cumsum(rng.normal(scale=0.02, size=(frames, 3)), axis=0)
    np.savez(path, poses=poses, trans=trans, **{key: fps})
    return path


def world_heads(arm) -> np.ndarray:
    m = np.array(arm.matrix_world)
    heads = np.array([arm.pose.bones[n].head for n in JOINT_NAMES])
    return heads @ m[:3, :3].T + m[:3, 3]


@pytest.mark.parametrize("rest", ["T", "A"])
def test_motion_keys_reproduce_smplx_forward_kinematics(rest, bundle_dir, a_rest_bundle, tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    avatar = import_bundle(bundle_dir if rest == "T" else a_rest_bundle, scene)
    path = make_motion(tmp_path / "walk.npz")
    action = apply_motion(avatar.armature, path, scene)
    assert avatar.armature.animation_data.action == action
    motion = resample(load_motion(path), 30)
    assert motion.num_frames == 7 and (scene.frame_start, scene.frame_end) == (1, 7)
    t_joints = synthetic_joints()  # SMPL-X motions are relative to the T pose, whatever the rig's rest pose
    for k in (0, 3, 6):
        scene.frame_set(1 + k)
        _, joints = forward_kinematics(t_joints, np.array(PARENTS), motion.poses[k])
        expected = rig.to_blender(joints + motion.trans[k])
        assert np.abs(world_heads(avatar.armature) - expected).max() < 1e-4, k
    # quaternion channels are sign-continuous
    pb = avatar.armature.pose.bones
    quats = []
    for f in range(1, 8):
        scene.frame_set(f)
        quats.append([list(pb[n].rotation_quaternion) for n in JOINT_NAMES])
    q = np.array(quats)
    assert np.all(np.sum(q[1:] * q[:-1], -1) >= -1e-6)


def test_amass_z_up_root_orientation_stands_upright(avatar, bundle_dir, tmp_path):
    scene = bpy.context.scene
    poses = np.zeros((4, 165))
    poses[:, 0] = np.pi / 2  # AMASS: Y-up body turned into the Z-up world
    np.savez(tmp_path / "amass.npz", poses=poses, trans=np.zeros((4, 3)), mocap_framerate=30.0)
    apply_motion(avatar.armature, tmp_path / "amass.npz", scene)
    scene.frame_set(2)
    heads = world_heads(avatar.armature)
    b = read_bundle(bundle_dir)
    rest = rig.to_blender(b.rest_joints)
    # upright: every joint at its rest offset from the pelvis (the head above the pelvis along +Z)
    assert np.abs((heads - heads[0]) - (rest - rest[0])).max() < 1e-4


def test_bad_motion_leaves_the_armature_unchanged(avatar, tmp_path):
    before_action = avatar.armature.animation_data.action
    n_actions = len(bpy.data.actions)
    np.savez(tmp_path / "bad.npz", poses=np.zeros((5, 99)), fps=30)
    with pytest.raises(MotionError, match="99 values"):
        apply_motion(avatar.armature, tmp_path / "bad.npz")
    assert avatar.armature.animation_data.action == before_action and len(bpy.data.actions) == n_actions


@pytest.mark.parametrize("preset", ["generic", "unity", "unreal"])
def test_fbx_round_trip(avatar, bundle_dir, tmp_path, preset):
    scene = bpy.context.scene
    apply_motion(avatar.armature, make_motion(tmp_path / "m.npz", seed=2), scene)
    scene.frame_set(4)
    posed_joint = world_heads(avatar.armature)[JOINT_NAMES.index("left_wrist")]
    arm_name = avatar.armature.name
    out = export_fbx(avatar.armature, tmp_path / f"{preset}.fbx", preset)
    assert out.is_file() and avatar.armature.name == arm_name
    assert avatar.mesh.modifiers["Armature"].show_viewport and avatar.mesh.modifiers["Armature"].show_render
    assert not list(tmp_path.glob(".*partial*"))
    n_vertices = len(avatar.mesh.data.vertices)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(out), anim_offset=0)
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    assert len(arms) == 1 and len(meshes) == 1
    arm, mesh = arms[0], meshes[0]
    assert sorted(b.name for b in arm.data.bones) == sorted([*JOINT_NAMES, "root"])  # no leaf "_end" bones
    assert len(mesh.data.vertices) == n_vertices
    assert {g.name for g in mesh.vertex_groups} >= set(JOINT_NAMES) - {"left_eye_smplhf", "right_eye_smplhf"}
    weighted = sum(1 for v in mesh.data.vertices if v.groups)
    assert weighted == n_vertices
    action = arm.animation_data.action
    assert tuple(round(f) for f in action.frame_range) == (1, 7)
    bpy.context.scene.frame_set(4)
    got = world_heads(arm)[JOINT_NAMES.index("left_wrist")]
    assert np.abs(got - posed_joint).max() < 1e-3, (got, posed_joint)


def test_unreal_export_names_the_armature_object(avatar, tmp_path):
    export_fbx(avatar.armature, tmp_path / "ue.fbx", "unreal")
    data = (tmp_path / "ue.fbx").read_bytes()
    assert b"Armature" in data and avatar.armature.name.encode() not in data
