"""The texture stage's machinery (issue 16, texture speed): texels projected from the vertices' camera frame, the
atlas on its own thread, texel blocks on the cores — each must give what the plain path gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bench.repose import capsule_body, dressed_subject, named_pose, photographed
from icon_engine import texture
from icon_engine.geometry.normals import vertex_normals
from icon_engine.threads import WORKERS_ENV, in_background


@pytest.fixture(scope="module")
def scene():
    """A dressed capsule subject in its photo pose, seen from the front, with the synthetic photo and mask."""
    subject = dressed_subject(capsule_body(), skirt=True)
    posed, cam, rgb, mask = photographed(subject, named_pose("photo"))
    return posed, np.asarray(subject.faces, dtype=np.int64), cam, rgb, mask


def test_texels_projected_from_the_camera_frame_match_the_world_path(scene):
    """Pixel, depth and view-angle cosine of points inside faces, blended from the vertices' camera-frame positions
    and normals, equal the projection of the blended world point with the blended unit normal."""
    v, f, cam, _, _ = scene
    rng = np.random.default_rng(0)
    tf = rng.integers(0, len(f), 5000)
    bary = rng.dirichlet(np.ones(3), len(tf)).astype(np.float32)
    corners = f[tf]
    vn = vertex_normals(v, f)
    per_vertex = np.concatenate([cam.to_camera(v), vn @ cam.R.T], axis=1).astype(np.float32)
    got = texture.sampling._project_interpolated(cam, per_vertex, corners, bary)
    points = np.einsum("tk,tkc->tc", bary, v[corners])
    normals = np.einsum("tk,tkc->tc", bary, vn[corners])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    xy, z = cam.project(points)
    assert np.abs(got.xy - xy).max() < 2e-3  # pixels (float32)
    assert np.abs(got.z - z).max() < 1e-5  # metres
    assert np.abs(got.cos - texture.sampling._view_cos(cam, points, normals)).max() < 1e-4
    # and the photo weight from it is the world path's
    view = texture.sampling._View(texture.depth_layers(v, f, cam), np.ones((cam.height, cam.width), bool),
                         np.zeros((cam.height, cam.width, 3), np.float32), cam)
    a_world, _ = texture.sampling._photo_weight(view, points, normals)
    a_cam, _ = texture.sampling._photo_weight(view, None, None, projected=got)
    assert (a_world > 0).sum() > 500
    assert np.mean(np.abs(a_world - a_cam) > 1e-3) < 1e-3  # only points at the depth tolerance's edge may flip


def test_the_bake_is_the_same_on_one_core_and_on_two(scene, monkeypatch):
    """Atlas on its own thread and texels in blocks (two workers) give exactly the inline bake (one worker)."""
    v, f, cam, rgb, mask = scene
    parts = np.where(v[:, 1] > np.median(v[:, 1]), texture.PART_TORSO, texture.PART_LEFT_LEG)
    out = {}
    for workers in ("1", "2"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        out[workers] = texture.bake_texture(v, f, rgb, mask, cam, size=1024, vertex_parts=parts,
                                            atlas="projection")
    one, two = out["1"], out["2"]
    assert one.stats["texel_coverage"] * 1024**2 > 200_000  # enough texels for two blocks
    np.testing.assert_array_equal(one.uv, two.uv)
    np.testing.assert_array_equal(one.image, two.image)
    np.testing.assert_array_equal(one.vertex_colors, two.vertex_colors)
    for stats in (one.stats, two.stats):
        assert {"unwrap", "visibility", "vertex_colours", "bake", "dilate", "total"} <= set(stats["cpu_seconds"])
        assert stats["seconds"]["total"] > 0


def test_in_background_runs_inline_on_one_worker_and_hands_errors_back(monkeypatch):
    """``in_background`` runs on another thread with two workers, inline with one; an error reaches ``result()``."""
    for workers, inline in (("1", True), ("2", False)):
        monkeypatch.setenv(WORKERS_ENV, workers)
        job = in_background(threading.get_ident)
        assert (job.result(timeout=30) == threading.get_ident()) == inline

        def fail() -> None:
            raise ValueError("atlas failed")

        with pytest.raises(ValueError, match="atlas failed"):
            in_background(fail).result(timeout=30)


def _shelf_pack_reference(sizes: np.ndarray, atlas: float):
    """Box-by-box shelf packing (the plain loop the vectorised one must reproduce)."""
    order = np.argsort(-sizes[:, 1], kind="stable")
    pos, free = np.zeros_like(sizes), []
    x = y = shelf = 0.0
    for i in order:
        w, h = sizes[i]
        if x + w > atlas:
            free.append([x, y, atlas - x, shelf])
            x, y, shelf = 0.0, y + shelf, 0.0
        if w > atlas or y + h > atlas:
            return None
        pos[i] = (x, y)
        x += w
        shelf = max(shelf, h)
    free.append([x, y, atlas - x, shelf])
    free.append([0.0, y + shelf, atlas, atlas - y - shelf])
    return pos, y + shelf, free


def test_shelf_packing_places_every_box_as_the_box_by_box_loop():
    """Same positions, used height and free rectangles as the plain loop, and None exactly when it gives None."""
    rng = np.random.default_rng(3)
    fits = 0
    for trial in range(200):
        n = int(rng.integers(0, 300))
        sizes = np.ceil(rng.gamma(1.5, 6.0, (n, 2))) + 5.0
        if trial % 3 == 0:
            sizes += rng.random((n, 2))  # fractional sizes too
        atlas = float(rng.choice([64.0, 128.0, 256.0, 1024.0]))
        got, want = texture.atlas._shelf_pack_free(sizes, atlas), _shelf_pack_reference(sizes, atlas)
        assert (got is None) == (want is None)
        if want is not None:
            fits += 1
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1] == want[1] and got[2] == want[2]
    assert 40 < fits < 190  # both outcomes were exercised
