"""Packaging: the manifest validates, build_addon.py builds the extension zip, and the zip installs, registers,
imports a bundle and unregisters cleanly in a headless Blender with a throw-away user folder (subprocess, since
bpy reads BLENDER_USER_RESOURCES when it is imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
import zipfile

import pytest

pytest.importorskip("bpy")

from test_blender_bundle import make_bundle  # noqa: E402

import build_addon  # noqa: E402


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    return build_addon.build(tmp_path_factory.mktemp("dist"))


def test_manifest_rules(repo_root):
    m = tomllib.loads((repo_root / "blender_manifest.toml").read_text())
    assert m["schema_version"] == "1.0.0" and m["type"] == "add-on" and m["blender_version_min"] == "4.2.0"
    assert len(m["version"].split(".")) == 3 and all(p.isdigit() for p in m["version"].split("."))
    assert len(m["tagline"]) <= 64 and m["tagline"][-1].isalnum()
    assert m["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(m["permissions"]) == {"files", "network"}
    assert all(len(v) <= 64 and v[-1].isalnum() for v in m["permissions"].values())
    assert m["website"].startswith("https://") and m["copyright"] and m["copyright"][0][:4].isdigit()
    assert set(m["platforms"]) <= {"windows-x64", "windows-arm64", "macos-arm64", "macos-x64", "linux-x64"}
    assert {"windows-x64", "macos-arm64", "linux-x64"} <= set(m["platforms"])


def test_blender_validates_the_zip_and_rejects_a_bad_manifest(built_zip, tmp_path):
    result = build_addon.run_cli("validate", str(built_zip))
    assert result.returncode == 0 and "error" not in (result.stdout + result.stderr).lower(), result.stdout
    build_addon.stage(tmp_path)
    manifest = tmp_path / "blender_manifest.toml"
    text = manifest.read_text()
    manifest.write_text(text.replace('version = "0.1.0"', 'version = "0.1"'))
    bad = build_addon.run_cli("validate", str(tmp_path))
    assert bad.returncode != 0 and "version" in bad.stdout.lower()


def test_zip_contents(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "ui/panel.py" in names
    assert "engine/icon_engine/bundle/reader.py" in names and "engine/requirements.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/")]
    assert built_zip.stat().st_size < 2_000_000


INSTALL = textwrap.dedent(
    """
    import json, sys
    import bpy, addon_utils
    zip_path, bundle = sys.argv[1], sys.argv[2]
    try:
        import icon_engine  # noqa: F401
        sys.exit("the source checkout leaked into the test")
    except ImportError:
        pass
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    mod = "bl_ext.user_default.icon_for_blender"
    out = {"result": sorted(result), "enabled": mod in bpy.context.preferences.addons}
    import importlib
    link = importlib.import_module(mod + ".engine_link")
    out["engine_source"] = str(link.engine_source_dir())
    out["requirements"] = link.engine_requirements().is_file()
    prefs = bpy.context.preferences.addons[mod].preferences
    out["prefs_mode"] = prefs.env_mode
    state = importlib.import_module(mod + ".ui.state")
    out["user_dir"] = str(state.user_dir("results"))
    out["types"] = sorted(n for n in dir(bpy.types) if n.startswith("ICON"))
    importer = importlib.import_module(mod + ".blender.importer")
    res = importer.import_bundle(bundle, bpy.context.scene)
    out["bones"] = len(res.armature.data.bones)
    bpy.ops.preferences.addon_disable(module=mod)
    out["after_types"] = sorted(n for n in dir(bpy.types) if n.startswith("ICON"))
    out["after_settings"] = hasattr(bpy.types.Scene, "icon_settings")
    out["after_enabled"] = mod in bpy.context.preferences.addons
    print("RESULT" + json.dumps(out))
    """
)


def test_zip_installs_registers_and_unregisters(built_zip, tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    user = tmp_path / "user"
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(user)
    proc = subprocess.run([sys.executable, "-c", INSTALL, str(built_zip), str(bundle)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(line[len("RESULT"):])
    assert out["result"] == ["FINISHED"] and out["enabled"]
    ext_dir = user / "extensions" / "user_default" / "icon_for_blender"
    assert out["engine_source"] == str((ext_dir / "engine").resolve()) and out["requirements"]
    assert out["prefs_mode"] == "AUTO"
    assert out["user_dir"].startswith(str(user)) and ".user" in out["user_dir"]
    assert "ICON_PT_reconstruct" in out["types"] and "ICON_OT_reconstruct" in out["types"]
    assert out["bones"] == 56  # 55 SMPL-X joints + the root bone
    assert out["after_types"] == [] and not out["after_settings"] and not out["after_enabled"]
