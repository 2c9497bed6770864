"""Tests for icon_engine.sample: the generated sample photo is deterministic, dressed, cached and found by
BlazePose (through the engine's own photo loading and person detection) where the body's joints are."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from icon_engine import render, sample

# BlazePose landmark index → SMPL-X joint index (the person's left = SMPL-X left).
BLAZE_TO_SMPLX = {
    11: 16, 12: 17,  # shoulders
    13: 18, 14: 19,  # elbows
    15: 20, 16: 21,  # wrists
    23: 1, 24: 2,  # hips
    25: 4, 26: 5,  # knees
    27: 7, 28: 8,  # ankles
}  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The sample photo written through ``sample_photo_path`` into a private cache folder, and its scene."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setattr(sample, "cache_dir", lambda create=True: cache)  # the body model keeps the real cache
    try:
        path = sample.sample_photo_path()
        yield path, sample.build_scene()
    finally:
        mp.undo()


def test_sample_file_is_cached_and_deterministic(written, tmp_path, monkeypatch):
    path, _ = written
    assert path.is_file() and path.suffix == ".png"
    img = np.asarray(Image.open(path))
    assert img.shape == (sample.HEIGHT, sample.WIDTH, 3) and img.dtype == np.uint8
    monkeypatch.setattr(sample, "cache_dir", lambda create=True: path.parents[1])
    before = path.stat().st_mtime_ns
    assert sample.sample_photo_path() == path and path.stat().st_mtime_ns == before  # not regenerated
    again = sample.write_sample_photo(tmp_path / "again.png")
    assert again.read_bytes() == path.read_bytes()


def test_sample_is_dressed_and_framed(written):
    path, scene = written
    cam = scene.camera
    img = np.asarray(Image.open(path)).astype(float) / 255.0
    vc = cam.to_camera(scene.vertices)
    raster = render.rasterize(vc, scene.faces, cam.K, cam.width, cam.height)
    region = sample.regions_from_features(raster.interpolate(scene.features), scene.rest_joints)
    region[~raster.mask] = -1
    share = {name: float((region == i).mean()) for i, name in enumerate(sample.REGIONS)}
    assert all(v > 0.001 for v in share.values()), share
    # Regions sit where clothes go: chest → shirt, knees → trousers, nose → skin.
    uv, _ = cam.project(scene.joints)

    def at(point: np.ndarray) -> str:
        i, j = int(point[0]), int(point[1])
        return sample.REGIONS[region[j, i]]

    assert at(uv[sample.NECK] + (0, 0.06 * cam.height)) == "shirt"
    assert at(uv[sample.L_KNEE]) == at(uv[sample.R_KNEE]) == "trousers"
    assert at(cam.project(scene.keypoints["nose"][None])[0][0]) == "skin"
    # The person fills most of the height, feet inside the frame and on the floor (y = 0).
    rows = np.nonzero(raster.mask.any(axis=1))[0]
    assert rows.min() > 0 and rows.max() < cam.height - 1
    assert 0.65 < (rows.max() - rows.min()) / cam.height < 0.95
    assert abs(scene.vertices[:, 1].min()) < 1e-9
    # Rendered colours follow the regions (shirt is the bluest region).
    blue = img[..., 2] - img[..., 0]
    assert blue[region == sample.REGIONS.index("shirt")].mean() > blue[region == sample.REGIONS.index("skin")].mean()


def test_blazepose_finds_the_sample_person_at_its_joints(written):
    from icon_engine.image_io import load_photo
    from icon_engine.person import detect_person

    path, scene = written
    photo = load_photo(path)
    obs = detect_person(photo)
    scale = photo.rgb.shape[0] / sample.HEIGHT
    uv, _ = scene.camera.project(scene.joints)
    uv = uv * scale
    tol = 0.035 * photo.rgb.shape[0]  # ~3.5 % of the image height (BlazePose and SMPL-X joints differ a bit)
    errors = {}
    for b, j in BLAZE_TO_SMPLX.items():
        assert obs.keypoints[b, 2] > 0.5, (b, obs.keypoints[b])
        errors[b] = float(np.linalg.norm(obs.keypoints[b, :2] - uv[j]))
    assert max(errors.values()) < tol, errors
    nose = scene.camera.project(scene.keypoints["nose"][None])[0][0] * scale
    assert np.linalg.norm(obs.keypoints[0, :2] - nose) < tol
    # The person mask covers the body's silhouette.
    cam = scene.camera
    mesh_v, mesh_f = scene.mesh()  # body, shoes and hair: everything drawn
    sil = render.render_mask(cam.to_camera(mesh_v), mesh_f, cam.K, cam.width, cam.height)
    if scale != 1.0:
        sil = np.asarray(Image.fromarray(sil).resize(photo.rgb.shape[1::-1]))
    iou = (obs.mask & sil).sum() / (obs.mask | sil).sum()
    assert iou > 0.8, iou
