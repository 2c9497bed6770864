"""The add-on's **Motion from video** in headless Blender: the operator, the engine command, progress, the
motion applied as an action at the video's frame rate, and Cancel applying the frames done so far. The engine
is a stand-in speaking the JSON-lines protocol and writing real AMASS-layout files (the real engine's CLI is
tested in test_motion.py); timers never fire headless, so the timer function is driven by hand."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from icon_blender.core.video_motion import motion_command, scene_rate

FAKE = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import numpy as np
    args = sys.argv[1:]
    assert args[:3] == ["-m", "icon_engine", "motion"], args
    video, out = args[3], args[args.index("--out") + 1]
    stem = os.path.splitext(os.path.basename(video))[0]
    def emit(**kw):
        print(json.dumps(kw), flush=True)
    def write(frames):
        os.makedirs(out, exist_ok=True)
        poses = np.zeros((frames, 165)); poses[:, 0] = 1.5708  # Z-up data, standing
        poses[:, 16 * 3 + 2] = np.linspace(-1.2, 0.0, frames)  # the left arm rises
        np.savez(os.path.join(out, "motion.npz"), poses=poses, trans=np.zeros((frames, 3)),
                 betas=np.zeros(10), gender="neutral", mocap_framerate=25.0)
    done = [0]
    def stop(*_):
        write(max(done[0], 1))
        emit(event="warning", photo=stem, message="Cancelled after %d frames" % done[0])
        emit(event="done", photo=stem, bundle=os.path.join(out, "motion.npz"), partial=True)
        sys.exit(130)
    signal.signal(signal.SIGTERM, stop)
    total = 12
    for i in range(total):
        done[0] = i + 1
        emit(event="progress", photo=stem, stage="fit", fraction=(i + 1) / total, overall=(i + 1) / total,
             message="Frame %d/%d" % (i + 1, total), frame=i + 1, frames=total)
        time.sleep(1.0 if stem == "slow" else 0.0)
    write(total)
    emit(event="warning", photo=stem, message="3 frames were bridged")
    emit(event="done", photo=stem, bundle=os.path.join(out, "motion.npz"), partial=False)
    """
)


def test_command_and_rates(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    cmd = motion_command("py", "v.mp4", "out", person=1, start=1.5, end=0.0, bundle=bundle)
    assert cmd[:5] == ["py", "-m", "icon_engine", "motion", "v.mp4"]
    assert cmd[cmd.index("--person") + 1] == "1" and cmd[cmd.index("--start") + 1] == "1.5"
    assert "--end" not in cmd and cmd[cmd.index("--bundle") + 1] == str(bundle)
    assert cmd[cmd.index("--progress") + 1] == "json"
    assert "--bundle" not in motion_command("py", "v.mp4", "out", bundle=tmp_path / "missing")
    assert scene_rate(30.0) == (30, 1.0) and scene_rate(25) == (25, 1.0)
    assert scene_rate(29.97002997) == (30, 1.001) and scene_rate(59.94) == (60, 1.001)
    fps, base = scene_rate(12.5)
    assert abs(fps / base - 12.5) < 1e-9
    with pytest.raises(ValueError):
        scene_rate(0)


bpy = pytest.importorskip("bpy")
ADDON = "icon_blender"


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    import addon_utils
    from test_blender_bundle import make_bundle

    tmp = tmp_path_factory.mktemp("motion_addon")
    script = tmp / "fake_engine.py"
    script.write_text(FAKE)
    python = tmp / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.env_mode = "CUSTOM"
    prefs.python_path = str(python)
    from icon_blender.blender.importer import import_bundle
    from icon_blender.ui import state

    real_user_dir = state.user_dir

    def user_dir(*parts: str) -> Path:
        path = tmp.joinpath("user", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    state.user_dir = user_dir
    res = import_bundle(make_bundle(tmp / "avatar"), bpy.context.scene)
    yield tmp, res
    state.user_dir = real_user_dir
    addon_utils.disable(ADDON, default_set=True)


def _select(arm) -> None:
    bpy.context.view_layer.objects.active = arm


def _run(timeout: float = 60.0) -> None:
    from icon_blender.ui import video_motion

    end = time.monotonic() + timeout
    while video_motion.tick() is not None:
        assert time.monotonic() < end, "capture did not finish"
        time.sleep(0.02)


def _armature(res):
    return next(o for o in res.collection.objects if o.type == "ARMATURE")


def test_motion_from_video_applies_at_the_video_rate(addon) -> None:
    tmp, res = addon
    from icon_blender.ui import state, video_motion

    arm = _armature(res)
    _select(arm)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    video = tmp / "dance.mp4"
    video.write_bytes(b"\x00" * 64)  # the stand-in engine never reads it
    assert bpy.ops.icon.motion_from_video(filepath=str(video), person=0) == {"FINISHED"}
    cap = video_motion.capture
    assert cap is not None and "--bundle" in cap.job.command  # the avatar's shape goes to the engine
    assert not bpy.ops.icon.motion_from_video.poll()  # one capture at a time
    _run()
    assert video_motion.capture is None
    assert scene.render.fps == 25 and scene.render.fps_base == 1.0  # the video's rate
    assert scene.frame_end - scene.frame_start + 1 == 12
    action = arm.animation_data.action
    assert action is not None and action.name.startswith("motion motion")
    texts = [t for _, t in state.messages]
    assert any("bridged" in t for t in texts) and any("motion applied" in t for t in texts)


def test_cancel_applies_the_frames_done(addon) -> None:
    tmp, res = addon
    from icon_blender.ui import video_motion

    arm = _armature(res)
    _select(arm)
    arm.animation_data_clear()
    video = tmp / "slow.mp4"
    video.write_bytes(b"\x00" * 64)
    bpy.ops.icon.motion_from_video(filepath=str(video))
    cap = video_motion.capture
    deadline = time.monotonic() + 30
    while cap.job.stage != "fit":
        video_motion.tick()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert bpy.ops.icon.motion_cancel() == {"FINISHED"}
    assert cap.finished and cap.result is not None and cap.result.is_file()
    _run()
    assert arm.animation_data is not None and arm.animation_data.action is not None
    scene = bpy.context.scene
    assert 1 <= scene.frame_end - scene.frame_start + 1 < 12


def test_no_avatar_no_button(addon) -> None:
    bpy.context.view_layer.objects.active = None
    assert not bpy.ops.icon.motion_from_video.poll()
    assert os.environ.get("PYTEST_CURRENT_TEST")


def test_blender_reads_our_bvh(addon, tmp_path: Path) -> None:
    """Blender's own BVH importer plays our file back with the joints where our kinematics put them."""
    pytest.importorskip("torch", reason="the body model needs the engine's environment")
    import numpy as np

    from bench.motion import procedural_motion
    from icon_engine.body_model import load_body_model
    from icon_engine.bundle.skeleton import JOINT_NAMES
    from icon_engine.motion.trajectory import posed_joints
    from icon_engine.motion.writers import write_bvh

    rest = load_body_model().rest_joints()[0].double().numpy()
    poses, _, _ = procedural_motion("sit", 10)
    trans = np.linspace([0.0, 0.0, 0.0], [0.3, -0.2, 0.4], 10)
    path = write_bvh(tmp_path / "sit.bvh", poses, trans, rest, 30.0)
    assert bpy.ops.import_anim.bvh(filepath=str(path), global_scale=0.01, axis_forward="-Z", axis_up="Y",
                                   frame_start=1) == {"FINISHED"}
    arm = bpy.context.active_object
    assert arm.type == "ARMATURE" and len(arm.data.bones) == 22
    want = posed_joints(rest, poses, trans)
    scene = bpy.context.scene
    for frame in (0, 5, 9):
        scene.frame_set(frame + 1)
        for j in (0, 4, 7, 18, 21):  # pelvis, knee, ankle, elbow, wrist
            bone = arm.pose.bones[JOINT_NAMES[j]]
            got = np.array(arm.matrix_world @ bone.head)
            x, y, z = want[frame, j]
            assert np.allclose(got, [x, -z, y], atol=2e-3), (frame, JOINT_NAMES[j], got, want[frame, j])


def test_captured_hands_move_the_finger_bones(addon, tmp_path: Path) -> None:
    """Finger poses in the engine's motion.npz reach the avatar's finger bones through Apply motion (the path
    Motion from video takes): a curled left hand brings the fingertip joints towards the wrist, the wrist and
    the untouched right hand stay where the flat-hand motion puts them."""
    import numpy as np

    from icon_blender.blender.motion import apply_motion
    from icon_engine.motion.writers import write_amass_npz

    _, res = addon
    arm = _armature(res)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    poses = np.zeros((4, 55, 3))
    poses[:, 16] = (0.0, 0.0, -1.0)  # the left arm lowered
    heads = {}
    for name, curl in (("flat", 0.0), ("curled", 0.8)):
        poses[:, 25:37] = (0.0, 0.0, -curl)  # the left index, middle, pinky and ring bend towards the palm
        path = write_amass_npz(tmp_path / f"{name}.npz", poses, np.zeros((4, 3)), np.zeros(10), 30.0, np.zeros(3))
        apply_motion(arm, path, scene)
        scene.frame_set(2)
        heads[name] = {b: np.array(arm.matrix_world @ arm.pose.bones[b].head)
                       for b in ("left_wrist", "left_index3", "left_middle3", "right_index3")}
    flat, curled = heads["flat"], heads["curled"]
    for tip in ("left_index3", "left_middle3"):
        reach_flat = np.linalg.norm(flat[tip] - flat["left_wrist"])
        reach_curled = np.linalg.norm(curled[tip] - curled["left_wrist"])
        assert reach_curled < reach_flat - 0.02, (tip, reach_flat, reach_curled)
    assert np.allclose(curled["left_wrist"], flat["left_wrist"], atol=1e-4)
    assert np.allclose(curled["right_index3"], flat["right_index3"], atol=1e-4)
