"""End to end: the built-in sample photo → bundle (engine CLI, JSON progress) → .blend + .fbx (add-on CLI).

One preview-quality reconstruction is shared by the module's tests (it takes a while on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from icon_engine.bundle import read_bundle, skin_vertices
from icon_engine.camera import Camera

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("e2e")
    photo = out / "sample.png"
    made = _run("icon_engine", "sample", "--out", str(photo))
    assert made.returncode == 0, made.stderr
    result = _run("icon_engine", "reconstruct", str(photo), "--out", str(out), "--quality", "preview",
                  "--texture-size", "512", "--progress", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return out / "sample", events


def test_progress_protocol_covers_every_stage_and_ends_with_done(sample_run) -> None:
    bundle_dir, events = sample_run
    progress = [e for e in events if e["event"] == "progress"]
    assert list(dict.fromkeys(e["stage"] for e in progress)) == [
        "load", "detect", "body_model", "fit", "surface", "rig", "texture", "bundle"]
    overall = [e["overall"] for e in progress]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    assert events[-1] == {"event": "done", "photo": "sample.png", "bundle": str(bundle_dir)}


def test_bundle_is_valid_and_consistent(sample_run) -> None:
    bundle_dir, _ = sample_run
    bundle = read_bundle(bundle_dir)
    assert bundle.meta["body"]["model"] == "open"
    assert bundle.file("texture") is not None and bundle.file("preview") is not None
    reposed = skin_vertices(bundle.rest_mesh.vertices, bundle.skin_weights, bundle.rest_joints, bundle.parents,
                            bundle.full_pose, bundle.transl)
    assert np.abs(reposed - bundle.posed_mesh.vertices).max() < 1e-3  # 1 mm
    assert bundle.posed_mesh.vertices[:, 1].min() > -0.1  # standing on the ground plane y = 0


def test_camera_overlays_the_mesh_on_the_person(sample_run) -> None:
    """Projected with the bundle's camera, the clothed mesh covers the person mask (original photo pixels)."""
    from PIL import Image

    from icon_engine.render import render_mask

    bundle_dir, _ = sample_run
    bundle = read_bundle(bundle_dir)
    w, h = bundle.image_size
    camera = Camera(bundle.K, bundle.R, bundle.t, w, h)
    verts_cam = camera.to_camera(bundle.posed_mesh.vertices)
    rendered = np.asarray(render_mask(verts_cam, bundle.posed_mesh.faces, bundle.K, w, h), dtype=bool)
    mask = np.asarray(Image.open(bundle.file("mask"))) > 127
    iou = (rendered & mask).sum() / (rendered | mask).sum()
    assert iou > 0.85, iou


def test_addon_cli_writes_blend_and_fbx(sample_run) -> None:
    bundle_dir, _ = sample_run
    blend, fbx = bundle_dir / "sample.blend", bundle_dir / "sample.fbx"
    result = _run("icon_blender", "import-bundle", str(bundle_dir), "--blend", str(blend), "--fbx", str(fbx))
    assert result.returncode == 0, result.stderr[-3000:]
    assert blend.stat().st_size > 10_000 and fbx.stat().st_size > 10_000


def test_cancel_leaves_no_bundle(tmp_path: Path, sample_run) -> None:
    from icon_engine import reconstruct
    from icon_engine.errors import Cancelled
    from icon_engine.options import ReconstructOptions
    from icon_engine.progress import CancelToken

    bundle_dir, _ = sample_run
    token = CancelToken()

    def cancel_during_fit(event) -> None:
        if event.stage == "fit":
            token.cancel()

    with pytest.raises(Cancelled):
        reconstruct(bundle_dir / "photo.png", tmp_path, ReconstructOptions(quality="preview"),
                    progress=cancel_during_fit, cancel=token)
    assert list(tmp_path.iterdir()) == []
