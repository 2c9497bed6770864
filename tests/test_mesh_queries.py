"""Point queries against triangle meshes: closest point, signed distance, normals, rasteriser, visibility."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics
from icon_engine.mesh_queries import (
    MeshQuery,
    closest_point_on_triangles,
    rasterize,
    vertex_normals,
    vertex_visibility,
)


@pytest.fixture(scope="module")
def blob() -> trimesh.Trimesh:
    """A closed, non-convex, irregular mesh: a sphere with bumps, rotated."""
    m = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
    v = m.vertices.copy()
    v *= (1.0 + 0.25 * np.sin(5 * v[:, [1]]) * np.cos(4 * v[:, [0]]))
    v[:, 1] *= 1.8
    return trimesh.Trimesh(v, m.faces, process=False)


def _brute_distance(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    tri = mesh.vertices[mesh.faces]
    out = []
    for p in points:
        c, _ = closest_point_on_triangles(p[None], tri[:, 0], tri[:, 1], tri[:, 2])
        out.append(np.sqrt(((c - p) ** 2).sum(1)).min())
    return np.array(out)


def test_closest_point_regions_of_one_triangle():
    a, b, c = np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
    pts = np.array([[0.2, 0.2, 1.0], [-1, -1, 0], [2, -0.5, 0], [-0.5, 2, 0], [0.5, -1, 0], [1, 1, 0], [-1, 0.5, 0]])
    want = np.array([[0.2, 0.2, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0]])
    n = len(pts)
    got, bary = closest_point_on_triangles(pts, np.tile(a, (n, 1)), np.tile(b, (n, 1)), np.tile(c, (n, 1)))
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(bary.sum(1), 1.0)
    assert (bary >= -1e-12).all()


def test_distance_matches_brute_force_and_sign(blob):
    rng = np.random.default_rng(1)
    lo, hi = blob.bounds
    pts = rng.uniform(lo - 0.1, hi + 0.1, (400, 3))
    q = MeshQuery(blob.vertices, blob.faces, k=2)
    res = q.query(pts)
    np.testing.assert_allclose(np.abs(res.distance), _brute_distance(pts, blob), atol=2e-4)
    # Sign: negative inside. Points pulled towards the centre along a ray stay inside a star-shaped blob.
    inside = blob.vertices * 0.7
    outside = blob.vertices * 1.3
    assert (q.signed_distance(inside) < 0).all()
    assert (q.signed_distance(outside) > 0).all()
    # Closest points lie on the mesh and the distance is their separation.
    np.testing.assert_allclose(np.linalg.norm(res.closest - pts, axis=1), np.abs(res.distance), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(res.normal, axis=1), 1.0, atol=1e-9)


def test_interpolate_recovers_positions(blob):
    q = MeshQuery(blob.vertices, blob.faces)
    pts = blob.vertices[::7] * 1.05
    r = q.query(pts)
    np.testing.assert_allclose(q.interpolate(blob.vertices, r.face, r.bary), r.closest, atol=1e-5)


def test_float32_agrees_with_float64(blob):
    rng = np.random.default_rng(2)
    pts = rng.normal(0, 0.3, (2000, 3))
    d64 = MeshQuery(blob.vertices, blob.faces, k=2).signed_distance(pts)
    d32 = MeshQuery(blob.vertices, blob.faces, k=2, dtype=np.float32).signed_distance(pts)
    np.testing.assert_allclose(d32, d64, atol=1e-5)


def test_vertex_normals_point_outwards(blob):
    n = vertex_normals(blob.vertices, blob.faces)
    assert (np.einsum("ij,ij->i", n, blob.vertices) > 0).mean() > 0.99


def _front_camera(width: int = 200, height: int = 240, distance: float = 3.0) -> Camera:
    return Camera(default_intrinsics(width, height), FRONT_VIEW_R.copy(), np.array([0.0, 0.0, distance]), width,
                  height)


def test_rasterize_sphere_depth_and_area():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.4)
    cam = _front_camera()
    r = rasterize(sphere.vertices, sphere.faces, cam)
    # Centre pixel: the sphere's front at z = 3 - 0.4 (faceting error well below 1 mm).
    i, j = cam.width // 2, cam.height // 2
    assert abs(r.depth[j, i] - 2.6) < 1e-3
    # Silhouette area ~ the projected disc (radius f·r/sqrt(d² − r²)).
    f = cam.K[0, 0]
    radius = f * 0.4 / np.sqrt(3.0**2 - 0.4**2)
    assert abs(r.mask.sum() / (np.pi * radius**2) - 1.0) < 0.03
    # Perspective-correct barycentrics reproduce the camera-frame depth of the hit point.
    cam_v = cam.to_camera(sphere.vertices)
    zs = np.einsum("ni,ni->n", r.bary[r.mask], cam_v[sphere.faces[r.face[r.mask]], 2])
    np.testing.assert_allclose(zs, r.depth[r.mask], atol=1e-9)


def test_visibility_front_and_back():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    cam = _front_camera()
    vis = vertex_visibility(sphere.vertices, sphere.faces, cam)
    front = sphere.vertices[:, 2] > 0.1
    back = sphere.vertices[:, 2] < -0.1
    assert vis[front].mean() > 0.98
    assert not vis[back].any()


def test_rasterize_uses_pixel_centres():
    """A camera-facing square spanning x ∈ [10.2, 20.7], y ∈ [5.6, 12.4] px covers exactly the pixels whose centres
    (i + 0.5, j + 0.5) fall inside: columns 10–20 and rows 6–11 (the render module's convention)."""
    cam = _front_camera(40, 30, distance=2.0)
    z = 2.0
    corners_px = np.array([[10.2, 5.6], [20.7, 5.6], [20.7, 12.4], [10.2, 12.4]])
    ray = np.linalg.solve(cam.K, np.c_[corners_px, np.ones(4)].T).T * z  # camera frame at depth z
    world = (ray - cam.t) @ cam.R  # camera → world (R orthonormal)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    r = rasterize(world, faces, cam)
    want = np.zeros((30, 40), dtype=bool)
    want[6:12, 10:21] = True
    np.testing.assert_array_equal(r.mask, want)
    np.testing.assert_allclose(r.depth[r.mask], z, atol=1e-9)
    assert np.isinf(r.depth[~r.mask]).all() and (r.face[~r.mask] == -1).all()


def test_rasterize_face_ids_refer_to_the_input_faces():
    """Back-face culling and the near limit drop faces before rasterising; the returned face index, barycentrics
    and depth still refer to the caller's face array, and match the render module's raster of the same view."""
    from icon_engine import render

    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    cam = _front_camera(160, 160, distance=3.0)
    full = rasterize(sphere.vertices, sphere.faces, cam)
    culled = rasterize(sphere.vertices, sphere.faces, cam, cull_backfaces=True)
    assert isinstance(full, render.Raster)
    assert full.depth.dtype == np.float64 and full.bary.dtype == np.float64 and full.face.dtype == np.int64
    # a closed convex mesh: the nearest surface is always front-facing, so culling changes nothing
    np.testing.assert_array_equal(culled.face, full.face)
    np.testing.assert_allclose(culled.depth[culled.mask], full.depth[full.mask], atol=1e-9)
    shown = np.unique(culled.face[culled.mask])
    n = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False).face_normals[shown]
    to_cam = cam.center - sphere.vertices[sphere.faces[shown]].mean(axis=1)
    assert (np.einsum("ij,ij->i", n, to_cam) > 0).all()
    ref = render.rasterize(cam.to_camera(sphere.vertices), sphere.faces, cam.K, cam.width, cam.height)
    np.testing.assert_array_equal(full.face, ref.face_index)
    np.testing.assert_allclose(full.depth[full.mask], ref.depth[ref.mask], atol=1e-5)
    # the camera inside the mesh's front half: faces with a corner at z ≤ 1 mm are skipped, the rest keep their ids
    near_cam = _front_camera(160, 160, distance=0.35)
    r = rasterize(sphere.vertices, sphere.faces, near_cam)
    cam_v = near_cam.to_camera(sphere.vertices)
    drawn = np.unique(r.face[r.mask])
    assert (cam_v[sphere.faces[drawn], 2] > 1e-3).all()
    zs = np.einsum("ni,ni->n", r.bary[r.mask], cam_v[sphere.faces[r.face[r.mask]], 2])
    np.testing.assert_allclose(zs, r.depth[r.mask], atol=1e-9)
    assert r.mask.mean() > 0.9  # the back of the sphere fills the view


def test_normals_are_the_render_modules():
    from icon_engine import mesh_queries, render

    assert mesh_queries.vertex_normals is render.vertex_normals
    assert mesh_queries.face_normals is render.face_normals
