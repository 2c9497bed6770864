"""The headless command ``python -m icon_blender import-bundle DIR --blend OUT --fbx OUT``: outputs, exit
statuses and messages, nothing half-written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("bpy")

from test_blender_bundle import make_bundle  # noqa: E402

from icon_blender import cli  # noqa: E402


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("cli") / "person")


def run_cli(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(env or os.environ, PYTHONPATH=str(cli.__file__).rsplit("/icon_blender/", 1)[0])
    return subprocess.run([sys.executable, "-m", "icon_blender", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def test_writes_blend_and_fbx_that_reopen(bundle_dir, tmp_path):
    np.savez(tmp_path / "walk.npz", poses=np.zeros((20, 165)), trans=np.zeros((20, 3)), mocap_framerate=60.0)
    blend, fbx = tmp_path / "out.blend", tmp_path / "out.fbx"
    result = run_cli("import-bundle", str(bundle_dir), "--blend", str(blend), "--fbx", str(fbx), "--preset", "unity",
                     "--motion", str(tmp_path / "walk.npz"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert blend.stat().st_size > 10_000 and fbx.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.blend", "out.fbx", "walk.npz"]
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    arm = bpy.data.objects["person_rig"]
    assert len(arm.data.bones) == 56 and bpy.context.scene.camera is not None  # 55 joints + root
    assert bpy.context.scene.frame_end == 10  # 19/60 s at 30 fps
    assert all(img.packed_file is not None for img in bpy.data.images if img.source == "FILE")
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_leaves_no_blender_session_folder_in_the_temp_folder(bundle_dir, tmp_path):
    """The command skips the interpreter's teardown (bpy 4.2 crashes in it), where bpy removes its session folder:
    a batch of thousands of avatars must not leave thousands of empty ``blender_*`` folders behind."""
    temp, out = tmp_path / "temp", tmp_path / "out"
    temp.mkdir()
    out.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), TEMP=str(temp), TMP=str(temp))
    result = run_cli("import-bundle", str(bundle_dir), "--blend", str(out / "a.blend"), cwd=out, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "a.blend").is_file()
    assert list(temp.iterdir()) == []


def test_writes_gltf_and_usd_with_game_bone_names(bundle_dir, tmp_path):
    pygltflib = pytest.importorskip("pygltflib")
    pytest.importorskip("pxr")
    from pxr import Usd, UsdSkel

    glb, usd, bvh = tmp_path / "hero.glb", tmp_path / "hero.usdc", tmp_path / "hero.bvh"
    np.savez(tmp_path / "walk.npz", poses=np.zeros((5, 72)), trans=np.zeros((5, 3)), fps=30.0)  # SMPL, 5 frames
    result = run_cli("import-bundle", str(bundle_dir), "--gltf", str(glb), "--gltf-preset", "web", "--usd", str(usd),
                     "--bvh", str(bvh), "--bone-names", "unreal", "--motion", str(tmp_path / "walk.npz"),
                     "--motion-start", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hero.bvh", "hero.glb", "hero.usdc", "textures", "walk.npz"]
    text = bvh.read_text()
    assert "ROOT pelvis" in text and "JOINT upperarm_l" in text and "Frames: 5" in text
    gltf = pygltflib.GLTF2().load(str(glb))
    names = {gltf.nodes[j].name for j in gltf.skins[0].joints}
    assert {"root", "pelvis", "spine_01", "upperarm_l", "thumb_03_r"} <= names and "left_shoulder" not in names
    stage = Usd.Stage.Open(str(usd))
    skel = next(UsdSkel.Skeleton(p) for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton))
    assert str(skel.GetJointsAttr().Get()[0]) == "root" and any(
        str(j).endswith("/clavicle_l") for j in skel.GetJointsAttr().Get())


def test_bad_bundle_exits_3_and_writes_nothing(bundle_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(bundle_dir, bad)
    (bad / "bundle.json").write_text("{ not json")
    out = tmp_path / "out"
    out.mkdir()
    code = cli.main(["import-bundle", str(bad), "--blend", str(out / "a.blend"), "--fbx", str(out / "a.fbx")])
    err = capsys.readouterr().err
    assert code == 3 and "bad bundle" in err and "damaged JSON" in err and "hint:" in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["--blend", "{tmp}/x.txt"], 2, "must end in .blend"),
        ([], 2, "nothing to write"),
        (["--fbx", "{tmp}/missing/x.fbx"], 6, "output folder does not exist"),
        (["--fbx", "{tmp}/x.fbx", "--fps", "0"], 2, "not a frame rate"),
        (["--fbx", "{tmp}/x.fbx", "--motion", "{tmp}/nope.npz"], 3, "bad motion file"),
        (["--gltf", "{tmp}/x.fbx"], 2, "must end in .glb or .gltf"),
        (["--usd", "{tmp}/x.glb"], 2, "must end in .usd or .usdc"),
    ],
)
def test_usage_errors(bundle_dir, tmp_path, capsys, args, code, needle):
    args = [a.format(tmp=tmp_path) for a in args]
    assert cli.main(["import-bundle", str(bundle_dir), *args]) == code
    assert needle in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(bundle_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert cli.main(["import-bundle", str(bundle_dir), "--blend", str(locked / "a.blend")]) == 6
        assert "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_a_folder_where_the_export_goes_is_exit_6_and_left_alone(bundle_dir, tmp_path, capsys):
    (tmp_path / "hero.usdc").mkdir()
    (tmp_path / "hero.usdc" / "notes.txt").write_text("keep")
    assert cli.main(["import-bundle", str(bundle_dir), "--usd", str(tmp_path / "hero.usdc")]) == 6
    err = capsys.readouterr().err
    assert "is a folder" in err and "Move it away" in err
    assert (tmp_path / "hero.usdc" / "notes.txt").read_text() == "keep"
