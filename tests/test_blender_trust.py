"""Bundles are untrusted input for the add-on too (issue 19): the headless importer refuses links and files that
are not what they claim to be, shows an EXIF-rotated photo upright, and a full disk ends in exit 6 with a plain
message and nothing written."""

from __future__ import annotations

import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bpy")

import test_blender_bundle  # noqa: E402
from bundle_trust import BUNDLE_FILES, LINK_MESSAGE, file_label, link_outside  # noqa: E402
from test_blender_bundle import make_bundle  # noqa: E402

from icon_blender import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    path = make_bundle(tmp_path / "person")
    preview = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(preview, format="PNG")
    (path / "preview.png").write_bytes(preview.getvalue())  # the engine's bundles have one: cover its kind too
    import json

    meta = json.loads((path / "bundle.json").read_text())
    meta["files"]["preview"] = "preview.png"
    (path / "bundle.json").write_text(json.dumps(meta))
    return path


def test_import_refuses_a_symlink_of_every_file_kind(bundle_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pristine = {name: (bundle_dir / name).read_bytes() for name in BUNDLE_FILES}
    for name in BUNDLE_FILES:
        outside = link_outside(bundle_dir, name)
        code = cli.main(["import-bundle", str(bundle_dir), "--blend", str(out / "a.blend"), "--fbx",
                         str(out / "a.fbx")])
        err = capsys.readouterr().err.splitlines()
        assert code == 3, name
        assert err[0] == f"error: bad bundle: {bundle_dir}: {file_label(name)} {LINK_MESSAGE}"
        assert list(out.iterdir()) == []
        (bundle_dir / name).unlink()
        (bundle_dir / name).write_bytes(pristine[name])
        outside.unlink()


def test_the_reported_attack_is_refused(bundle_dir: Path, tmp_path: Path, capsys) -> None:
    """The issue's case: photo.jpg → an outside text file, texture.png → an outside PNG; nothing is embedded."""
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    (bundle_dir / "photo.jpg").unlink()
    (bundle_dir / "photo.jpg").symlink_to(secret)
    blend = tmp_path / "a.blend"
    assert cli.main(["import-bundle", str(bundle_dir), "--blend", str(blend)]) == 3
    assert f"'photo.jpg' (photo) {LINK_MESSAGE}" in capsys.readouterr().err
    assert not blend.exists()
    (bundle_dir / "photo.jpg").unlink()
    shutil.copy(secret, bundle_dir / "photo.jpg")  # the same text as a plain file: not an image
    assert cli.main(["import-bundle", str(bundle_dir), "--blend", str(blend)]) == 3
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: bad bundle: {bundle_dir}: 'photo.jpg' (photo) is not a PNG or JPEG image")
    assert not blend.exists()


def _phone_jpeg(orientation: int = 6) -> bytes:
    """A 640 × 480 upright photo as a phone stores it: pixels rotated, EXIF orientation to undo it. Upright, a red
    block fills the top-left corner."""
    from PIL import Image

    upright = np.full((480, 640, 3), 90, np.uint8)
    upright[:120, :160] = (230, 20, 20)
    stored = {6: np.rot90(upright, 1), 8: np.rot90(upright, -1)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored)).save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def _background_top_left(blend: Path) -> tuple[tuple[int, int], np.ndarray]:
    """Size and the mean colour of the top-left 120 × 160 block of the camera's background image in ``blend``."""
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    img = bpy.context.scene.camera.data.background_images[0].image
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    top_down = px.reshape(h, w, 4)[::-1]
    block = top_down[:120, :160, :3].reshape(-1, 3).mean(0)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return (w, h), block


@pytest.mark.parametrize("legacy", [False, True])
def test_an_exif_rotated_photo_is_upright_behind_the_camera(tmp_path: Path, monkeypatch, legacy: bool) -> None:
    """New bundles store the photo upright (writer); older ones hold the rotated JPEG and the importer turns it."""
    if legacy:
        bundle = make_bundle(tmp_path / "person")
        (bundle / "photo.jpg").write_bytes(_phone_jpeg(8))
    else:
        real = test_blender_bundle._png
        monkeypatch.setattr(test_blender_bundle, "_png", lambda a, fmt="PNG": _phone_jpeg(6) if fmt == "JPEG"
                            else real(a, fmt))
        bundle = make_bundle(tmp_path / "person")
    blend = tmp_path / "a.blend"
    assert cli.main(["import-bundle", str(bundle), "--blend", str(blend)]) == 0
    size, block = _background_top_left(blend)
    assert size == (640, 480)
    assert block[0] > 0.6 and block[1] < 0.2 and block[2] < 0.2  # red: the photo's top-left is at the top left


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, resource.RLIM_INFINITY))


@pytest.mark.parametrize("suffix", [".fbx", ".blend"])
def test_a_full_disk_is_exit_6_with_a_plain_message(bundle_dir: Path, tmp_path: Path, suffix: str) -> None:
    """A real write failure (the child may write at most 60 kB per file) during Blender's FBX export or .blend save:
    no traceback, exit 6, nothing left (Blender's compressed .blend writer even reports success on a cut file)."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"a{suffix}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "icon_blender", "import-bundle", str(bundle_dir),
                             f"--{suffix[1:]}", str(target)], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path, preexec_fn=_limit_file_size)
    assert result.returncode == 6, result.stderr[-2000:]
    assert result.stderr.splitlines() == [f"error: could not write {target}: the disk is full",
                                          "hint: Free some disk space or write to another disk; nothing was written."]
    assert "Traceback" not in result.stdout + result.stderr
    assert list(out.iterdir()) == []


def test_too_little_free_space_is_refused_before_the_import(bundle_dir: Path, tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1 << 40, 1 << 40, 1 << 20))
    assert cli.main(["import-bundle", str(bundle_dir), "--fbx", str(tmp_path / "a.fbx")]) == 6
    err = capsys.readouterr().err.splitlines()
    assert re.fullmatch(rf"error: {re.escape(str(tmp_path))}: not enough disk space for a\.fbx \(about \d+ MB "
                        r"needed, 1 MB free\)", err[0])
    assert not (tmp_path / "a.fbx").exists()
