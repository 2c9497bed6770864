"""The shared geometry modules (icon_engine.geometry): Laplacian and smoothing, decimation with its checks,
closest points, normals, and the rasteriser's fragments against a brute-force point-in-triangle test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from icon_engine.geometry import closest, decimate, laplacian, normals, raster


def _sphere(sub: int = 3, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    s = trimesh.creation.icosphere(subdivisions=sub, radius=radius)
    return np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int64)


def test_laplacian_rows_sum_to_zero_and_match_the_torch_term():
    v, f = _sphere(2)
    lap = laplacian.mesh_laplacian(len(v), f)
    assert np.allclose(np.asarray(lap.sum(axis=1)).ravel(), 0.0)
    assert np.allclose(lap.diagonal(), np.bincount(laplacian.mesh_edges(f).ravel(), minlength=len(v)))
    edges = torch.as_tensor(laplacian.mesh_edges(f))
    deg = laplacian.vertex_degree_torch(edges, len(v))
    got = laplacian.uniform_laplacian_torch(torch.as_tensor(v), edges, deg.double()).numpy()
    assert np.allclose(got, (lap @ v) / lap.diagonal()[:, None])


def test_taubin_removes_noise_without_shrinking():
    v, f = _sphere(4)
    noisy = v + np.random.default_rng(0).normal(0.0, 0.01, v.shape)
    smooth = laplacian.taubin_smooth(noisy, f, 10)
    shrunk = laplacian.laplacian_smooth(noisy, f, 10)  # λ only: shrinks
    radius = np.linalg.norm(smooth, axis=1)
    assert np.std(radius) < 0.4 * np.std(np.linalg.norm(noisy, axis=1))
    assert abs(radius.mean() - 1.0) < 0.01
    assert np.linalg.norm(shrunk, axis=1).mean() < radius.mean() - 0.005


def test_decimate_keeps_a_closed_mesh_closed_and_reaches_the_target():
    v, f = _sphere(5)  # 20480 faces
    assert decimate.is_watertight(f) and decimate.is_edge_manifold(f)
    dv, df = decimate.decimate(v, f, 4000)
    assert len(df) <= decimate.TARGET_SLACK * 4000 and len(df) > 3000
    assert decimate.is_watertight(df)
    assert abs(normals.signed_volume(dv, df) - normals.signed_volume(v, f)) < 0.02 * normals.signed_volume(v, f)
    same_v, same_f = decimate.decimate(v, f, len(f) + 10)
    assert same_f is not None and len(same_f) == len(f)


def test_topology_checks_catch_open_flipped_and_non_manifold_meshes():
    v, f = _sphere(1)
    assert not decimate.is_watertight(f[1:])  # a hole
    flipped = f.copy()
    flipped[0] = flipped[0, ::-1]
    assert not decimate.is_watertight(flipped)
    fin = np.vstack([f, [[f[0, 0], f[0, 1], len(v)]]])  # a third face on one edge
    assert not decimate.is_edge_manifold(fin) and decimate.is_edge_manifold(f[1:])
    doubled_v, doubled_f = decimate.drop_doubled_faces(np.vstack([v, [[9.0, 9, 9]]]), np.vstack([f, f[:1]]))
    assert len(doubled_f) == len(f) - 1 and len(doubled_v) == len(v)


def test_closest_points_agree_with_brute_force():
    v, f = _sphere(2, radius=0.5)
    pts = np.random.default_rng(1).normal(0.0, 0.6, (300, 3))
    tri = v[f]
    q, _ = closest.closest_point_on_triangles(pts[:, None], tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
    brute = np.linalg.norm(q - pts[:, None], axis=2).min(axis=1)
    res = closest.MeshQuery(v, f, k=2).query(pts)
    assert np.abs(np.abs(res.distance) - brute).max() < 1e-3
    inside = np.linalg.norm(pts, axis=1) < 0.45
    assert (res.distance[inside] < 0).all() and (res.distance[np.linalg.norm(pts, axis=1) > 0.55] > 0).all()
    fi, _, dist = closest.closest_points_on_mesh(pts, v, f, candidates=16)
    assert np.abs(dist - brute).max() < 1e-3 and fi.shape == (300,)


def test_outward_normals_and_signed_volume():
    v, f = _sphere(3)
    assert normals.signed_volume(v, f) == pytest.approx(4.0 / 3.0 * np.pi, rel=0.02)
    assert normals.signed_volume(v, f[:, ::-1]) < 0
    n = normals.outward_vertex_normals(v, f[:, ::-1])
    assert (np.einsum("ij,ij->i", n, v) > 0.99).all()


def test_fragments_match_a_brute_force_coverage_test():
    rng = np.random.default_rng(2)
    tri = rng.random((40, 1, 2)) * 60 + rng.random((40, 3, 2)) * 12
    face, pix, bary = raster.fragments(tri, 64, 48)
    got = set(zip(face.tolist(), pix.tolist(), strict=True))
    want = set()
    ys, xs = np.mgrid[0:48, 0:64]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    for i, (a, b, c) in enumerate(tri):
        def edge(p, q, r):
            return (q[0] - p[0]) * (r[:, 1] - p[1]) - (q[1] - p[1]) * (r[:, 0] - p[0])
        area = edge(a, b, c[None])[0]
        if abs(area) < 1e-12:
            continue
        w = np.stack([edge(b, c, centres), edge(c, a, centres), edge(a, b, centres)], axis=1) / area
        for k in np.nonzero((w >= -1e-9).all(axis=1))[0]:
            want.add((i, int(k)))
    assert got == want
    # screen barycentrics reproduce the pixel centre
    p = np.einsum("pk,pkc->pc", bary, tri[face])
    assert np.allclose(p, np.stack([pix % 64 + 0.5, pix // 64 + 0.5], axis=1), atol=1e-6)


def test_torch_forward_kinematics_matches_numpy_batched_with_gradients():
    """The torch kinematics by pointer jumping (the fit's and the body model's) equals the numpy one joint by joint, for
    batched poses, on the SMPL-X tree and on a tree with two roots; its gradients are right (gradcheck)."""
    from icon_engine.bundle.skeleton import PARENTS
    from icon_engine.geometry import skinning, torch_skinning

    rng = np.random.default_rng(3)
    for parents in (tuple(PARENTS), (-1, 0, 1, -1, 3, 3, 5)):
        n = len(parents)
        rest = rng.normal(size=(n, 3))
        poses = rng.normal(scale=0.7, size=(2, 3, n, 3))
        rot = torch_skinning.axis_angle_to_matrix(torch.as_tensor(poses))
        glob_r, glob_t = torch_skinning.forward_kinematics(rot, torch.as_tensor(rest), parents)
        assert glob_r.shape == (2, 3, n, 3, 3) and glob_t.shape == (2, 3, n, 3)
        for a in range(2):
            for b in range(3):
                want_r, want_t = skinning.forward_kinematics(rest, np.asarray(parents), poses[a, b])
                assert np.allclose(glob_r[a, b].numpy(), want_r, atol=1e-12)
                assert np.allclose(glob_t[a, b].numpy(), want_t, atol=1e-12)
    pose = torch.as_tensor(rng.normal(size=(7, 3)), dtype=torch.float64).requires_grad_(True)
    rest_t = torch.as_tensor(rng.normal(size=(7, 3)), dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, r: torch_skinning.forward_kinematics(
        torch_skinning.axis_angle_to_matrix(p), r, (-1, 0, 1, -1, 3, 3, 5)), (pose, rest_t))


def test_hull_zone_grows_the_landmarks_hull_by_a_share_of_their_extent():
    """The zone round a hand's landmarks: their hull, grown by ``grow`` × their extent (a disk), nothing else."""
    from icon_engine.geometry.image_fields import hull_zone

    square = np.array([[40.0, 50.0], [80.0, 50.0], [80.0, 90.0], [40.0, 90.0], [60.0, 70.0]])
    zone = hull_zone((160, 200), square, 0.25)  # extent 40 px: grown by 10 px
    assert zone.shape == (160, 200) and zone.dtype == bool
    assert zone[50:91, 40:81].all()  # the hull
    assert zone[70, 31] and zone[70, 89] and zone[41, 60] and zone[99, 60]  # 9 px out: inside the growth
    assert not zone[70, 28] and not zone[70, 92] and not zone[37, 60]  # 12 px out: outside
    assert not zone[42, 32]  # beyond the corner's disk (11.3 px diagonally)
    assert hull_zone((160, 200), square[:2], 0.25).sum() == 0  # fewer than 3 points: no zone
    assert hull_zone((160, 200), np.array([[5.0, 5.0], [6.0, 6.0], [5.0, 7.0]]), 0.25).sum() == 0  # under 4 px


def test_decimate_is_thread_safe() -> None:
    """Two threads decimating at once get what each gets alone (fast_simplification keeps its mesh in globals:
    without decimate's lock 7–8 of these 20 results came back wrong)."""
    from concurrent.futures import ThreadPoolExecutor

    from skimage.measure import marching_cubes

    from icon_engine.geometry.decimate import decimate

    g = np.indices((48, 48, 48)).astype(float) - 24
    meshes = [marching_cubes(np.sqrt((g ** 2).sum(0)) - r + 2 * np.sin(g[0] / 4), 0.0)[:2] for r in (18, 15)]
    alone = [decimate(v, f, 2000) for v, f in meshes]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(10):
            for (v, f), (v0, f0) in zip(pool.map(lambda m: decimate(m[0], m[1], 2000), meshes), alone, strict=True):
                assert np.array_equal(v, v0) and np.array_equal(f, f0)


def test_the_edge_topology_cache_serves_threads_their_own_faces() -> None:
    """The soft silhouette's edge cache (4 entries) under 4 threads and 7 face arrays (evictions all the time): each
    call gets its own faces' edges, as uncached (a subject's photos are fitted side by side)."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    faces = [torch.randint(0, 50, (40 + i, 3), generator=torch.Generator().manual_seed(i)) for i in range(7)]
    want = [raster._edge_topology_uncached(f) for f in faces]

    def calls(seed: int) -> int:
        pick = random.Random(seed)
        for _ in range(500):
            i = pick.randrange(len(faces))
            edges, inverse = raster._edge_topology(faces[i])
            assert torch.equal(edges, want[i][0]) and torch.equal(inverse, want[i][1])
        return len(raster._TOPOLOGY_CACHE)

    with ThreadPoolExecutor(4) as pool:
        assert all(n <= 4 for n in pool.map(calls, range(4)))


def test_lengths_are_numpys_norm_to_the_last_bit() -> None:
    """:func:`lengths` replaces ``np.linalg.norm(x, axis=-1)`` at the rig's, the closest-point queries' and the
    texture's hot sites (wave 36): same bits for 2-, 3- and 4-vectors, batched, float32 and float64, strided views
    and integers (taken as float64), and a zero vector stays 0."""
    from icon_engine.geometry.lengths import lengths

    rng = np.random.default_rng(5)
    cases = [rng.standard_normal((3000, 3)) * rng.random((3000, 3)) ** 4, rng.standard_normal((400, 7, 3)),
             rng.standard_normal((3000, 2)), rng.standard_normal((3000, 4)).astype(np.float32),
             np.asfortranarray(rng.standard_normal((3000, 3))), rng.standard_normal((3000, 6))[:, ::2],
             rng.integers(-50, 50, size=(3000, 3)), np.zeros((5, 3))]
    for x in cases:
        want = np.linalg.norm(x, axis=-1)
        got = lengths(x)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
    assert not lengths(np.zeros((5, 3))).any()


def test_barycentric_blend_is_the_einsum_to_the_last_bit() -> None:
    """The blend of the corners' per-vertex values replaces ``np.einsum("nk,nkc->nc", bary, values[corners])`` in
    every stage (wave 35's speed work): it must give the same bits, for float32 and float64 values, per-vertex
    vectors, and mixed dtypes (float32 barycentrics, float64 values); per-vertex scalars add the corners in order."""
    from icon_engine.geometry.barycentric import barycentric_blend

    rng = np.random.default_rng(3)
    corners = rng.integers(0, 500, size=(2000, 3))
    for bary_dtype, value_dtype, cols in ((np.float64, np.float64, 55), (np.float32, np.float32, 3),
                                          (np.float32, np.float64, 6), (np.float64, np.float64, None)):
        bary = rng.random((2000, 3)).astype(bary_dtype)
        bary /= bary.sum(axis=1, keepdims=True)
        values = rng.standard_normal((500,) if cols is None else (500, cols)).astype(value_dtype)
        if cols is None:  # per-vertex scalars: the corners in order, as for one column
            b, c = bary, values[corners]
            want = b[:, 0] * c[:, 0] + b[:, 1] * c[:, 1] + b[:, 2] * c[:, 2]
        else:
            want = np.einsum("nk,nkc->nc", bary, values[corners])
        got = barycentric_blend(bary, corners, values)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
