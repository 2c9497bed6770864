"""Motions on the avatar in headless Blender: BVH export read back by Blender's own BVH importer (a reader that is
not ours), BVH applied to another avatar, start frame, frame-rate override, target action, NLA stacking."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from test_blender_bundle import make_bundle  # noqa: E402

from icon_blender.blender.importer import import_bundle  # noqa: E402
from icon_blender.blender.motion import apply_motion, export_bvh  # noqa: E402
from icon_engine.bundle import JOINT_NAMES  # noqa: E402


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "mover", seed=5, rest_offset=(0.0, -1.2, 0.03))


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = 30, 1.0
    return sc


def walk(path, frames=12, fps=30.0, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, poses=np.cumsum(rng.normal(scale=0.12, size=(frames, 165)), 0),
             trans=np.cumsum(rng.normal(scale=0.03, size=(frames, 3)), 0), fps=fps)
    return path


def world_heads(arm, names=JOINT_NAMES) -> np.ndarray:
    m = np.array(arm.matrix_world)
    return np.array([arm.pose.bones[n].head for n in names]) @ m[:3, :3].T + m[:3, 3]


def test_bvh_export_is_read_by_blenders_bvh_importer_and_drives_another_avatar(scene, bundle_dir, tmp_path):
    first = import_bundle(bundle_dir, scene, name="first")
    apply_motion(first.armature, walk(tmp_path / "walk.npz"), scene)
    path = export_bvh(first.armature, tmp_path / "walk.bvh", bone_names="mixamo")
    expected = {}
    for f in (1, 6, 12):
        scene.frame_set(f)
        expected[f] = world_heads(first.armature)
    # Blender's own BVH importer (Y up in the file → Z up) rebuilds the same joint positions
    bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="-Z", axis_up="Y", update_scene_fps=False,
                            update_scene_duration=False, use_fps_scale=False, frame_start=1)
    imported = bpy.context.view_layer.objects.active
    assert imported.type == "ARMATURE" and "mixamorig:LeftArm" in imported.data.bones
    names = [f"mixamorig:{n}" for n in ("Hips", "LeftUpLeg", "Head", "RightHand", "LeftHandIndex3")]
    joints = [JOINT_NAMES.index(j) for j in ("pelvis", "left_hip", "head", "right_wrist", "left_index3")]
    for f, heads in expected.items():
        scene.frame_set(f)
        assert np.abs(world_heads(imported, names) - heads[joints]).max() < 1e-4, f
    # and our reader puts a second avatar in the same pose (the file's rest is the rig's own floor-standing rest)
    second = import_bundle(bundle_dir, scene, name="second")
    apply_motion(second.armature, path, scene)
    for f, heads in expected.items():
        scene.frame_set(f)
        assert np.abs(world_heads(second.armature) - heads).max() < 1e-4, f


def test_bvh_from_an_a_pose_avatar_has_a_t_pose_rest_and_drives_a_t_pose_avatar(scene, tmp_path):
    a_dir = make_bundle(tmp_path / "a_rest", seed=5, rest_pose="A")
    t_dir = make_bundle(tmp_path / "t_rest", seed=5)
    a_avatar = import_bundle(a_dir, scene, name="a_avatar")
    apply_motion(a_avatar.armature, walk(tmp_path / "walk.npz"), scene)
    path = export_bvh(a_avatar.armature, tmp_path / "a.bvh")
    from icon_blender.core.bvh import parse_bvh

    parsed = parse_bvh(path.read_text())
    rest = np.zeros((55, 3))
    for j, p in enumerate(parsed.parents):
        rest[j] = parsed.offsets[j] + (rest[p] if p >= 0 else 0)
    wrist, shoulder = rest[parsed.names.index("left_wrist")], rest[parsed.names.index("left_shoulder")]
    assert abs(wrist[1] - shoulder[1]) < 0.02  # the file's rest is the T pose: the arm is horizontal
    t_avatar = import_bundle(t_dir, scene, name="t_avatar")
    apply_motion(t_avatar.armature, path, scene)
    for f in (1, 7, 12):
        scene.frame_set(f)
        assert np.abs(world_heads(t_avatar.armature) - world_heads(a_avatar.armature)).max() < 1e-4, f


def test_start_frame_fps_override_target_action_and_nla(scene, bundle_dir, tmp_path):
    res = import_bundle(bundle_dir, scene)
    arm = res.armature
    path = walk(tmp_path / "a.npz", frames=12, fps=30.0)
    # start frame and a frame-rate override: 12 frames "at 15 fps" last 0.73 s → 23 frames at 30 fps from frame 10
    action = apply_motion(arm, path, scene, frame_start=10, fps=15.0, action_name="Run")
    assert action.name == "Run" and (scene.frame_start, scene.frame_end) == (10, 32)
    assert tuple(round(f) for f in action.frame_range) == (10, 32)
    scene.frame_set(10)
    at_start = world_heads(arm)
    # the same target action again: replaced in place, no "Run.001"
    again = apply_motion(arm, walk(tmp_path / "b.npz", seed=3), scene, frame_start=10, action_name="Run")
    assert again.name == "Run" and "Run.001" not in bpy.data.actions and arm.animation_data.action == again
    scene.frame_set(10)
    assert np.abs(world_heads(arm) - at_start).max() > 1e-3  # the new motion, not the old one
    # NLA: motions stack as strips on their own tracks, the active action cleared so the strips play
    one = apply_motion(arm, path, scene, frame_start=1, action_name="One", nla=True)
    two = apply_motion(arm, walk(tmp_path / "c.npz", seed=4), scene, frame_start=40, action_name="Two", nla=True)
    tracks = arm.animation_data.nla_tracks
    assert [t.name for t in tracks] == ["One", "Two"] and arm.animation_data.action is None
    assert [(s.action, round(s.frame_start)) for t in tracks for s in t.strips] == [(one, 1), (two, 40)]
    assert scene.frame_end >= 51 and one.use_fake_user and two.use_fake_user
    scene.frame_set(45)
    solo = import_bundle(bundle_dir, scene, name="solo")
    apply_motion(solo.armature, tmp_path / "c.npz", scene, frame_start=40)
    scene.frame_set(45)
    assert np.abs(world_heads(arm) - world_heads(solo.armature)).max() < 1e-4  # the strip plays "Two"
