"""The torch mesh query (``icon_engine.geometry.torch_closest``) against the numpy one and brute force, on the CPU
here (the same code runs on CUDA), and the ``--device`` dispatch of the surface, avatar and texture stages.

The CUDA tests run only where ``torch.cuda.is_available()``; they skip elsewhere (CI has no GPU)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import test_texture
import torch
import trimesh

from icon_engine.geometry import device as dev_mod
from icon_engine.geometry.closest import MeshQuery, closest_point_on_triangles
from icon_engine.geometry.torch_closest import TorchMeshQuery

#: tests/test_texture.py's dressed capsule subject and its numpy bake (a module fixture).
scene = test_texture.scene

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def _brute(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N,) unsigned distance of points to the mesh, every face tried (numpy, float64)."""
    tri = vertices[faces]
    out = np.empty(len(points))
    for s in range(0, len(points), 256):
        p = points[s:s + 256, None, :]
        c, _ = closest_point_on_triangles(p, tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
        out[s:s + 256] = np.linalg.norm(c - p, axis=2).min(axis=1)
    return out


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    s = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    return np.asarray(s.vertices) + [0.2, 1.0, 3.0], np.asarray(s.faces)


@pytest.fixture(scope="module")
def open_body() -> tuple[np.ndarray, np.ndarray]:
    """The real open body (anny), shaped and in a walking pose, in the bundle world (metres)."""
    from bench.lib.fit_cases import named_pose, pose_body
    from icon_engine.body_model import load_body_model

    body = load_body_model()
    betas = np.random.default_rng(2).normal(0.0, 0.7, 10)
    out = pose_body(body, named_pose("walking"), betas)[0]
    return out.vertices[0].numpy().astype(np.float64), np.asarray(body.faces, np.int64)


def test_triangle_soup_with_degenerate_faces_matches_brute_force():
    """Random triangles, some collapsed to a segment or a point: exact distances, barycentrics that rebuild the
    closest point, in float64 and float32."""
    rng = np.random.default_rng(0)
    v = rng.normal(size=(600, 3))
    f = rng.integers(0, 600, (200, 3))
    f[:20, 2] = f[:20, 1]  # segments
    f[20:30, 1:] = f[20:30, :1]  # points
    v[f[30:40, 2]] = 0.5 * (v[f[30:40, 0]] + v[f[30:40, 1]])  # collinear corners
    pts = rng.normal(size=(2000, 3)) * 1.5
    ref = _brute(pts, v, f)
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-5)):
        q = TorchMeshQuery(v, f, dtype=dtype).query(pts)
        assert np.abs(np.abs(q.distance) - ref).max() < tol
        rebuilt = np.einsum("nk,nkc->nc", q.bary, v[f[q.face]])
        assert np.abs(rebuilt - q.closest).max() < 10 * tol
        assert np.abs(np.linalg.norm(pts - q.closest, axis=1) - ref).max() < 10 * tol
        assert (q.bary >= -1e-6).all() and np.allclose(q.bary.sum(1), 1.0)


def test_sphere_signs_normals_and_points_on_the_surface(sphere):
    v, f = sphere
    centre = np.array([0.2, 1.0, 3.0])
    rng = np.random.default_rng(1)
    d = rng.normal(size=(4000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    radius = rng.uniform(0.0, 1.0, 4000)
    pts = centre + d * radius[:, None]
    q = TorchMeshQuery(v, f).query(pts)
    clear = np.abs(radius - 0.5) > 0.01  # the icosphere lies within 2 mm inside the true sphere
    assert np.array_equal(q.distance[clear] > 0, radius[clear] > 0.5)  # positive outside
    radial = (q.closest - centre) / np.linalg.norm(q.closest - centre, axis=1, keepdims=True)
    assert np.einsum("ni,ni->n", q.normal, radial).min() > 0.99  # the outward sphere normal at the closest point
    outside = radius > 0.55
    assert np.einsum("ni,ni->n", q.normal[outside], d[outside]).min() > 0.98
    assert np.allclose(np.linalg.norm(q.normal, axis=1), 1.0, atol=1e-5)
    # Points on the surface: vertices, face centres, edge midpoints → distance 0, closest = the point itself.
    on = np.concatenate([v, v[f].mean(1), 0.5 * (v[f[:, 0]] + v[f[:, 1]])])
    qs = TorchMeshQuery(v, f).query(on)
    assert np.abs(qs.distance).max() < 1e-6 and np.abs(qs.closest - on).max() < 1e-6


def test_agrees_with_the_numpy_query_on_the_open_body(open_body):
    """Near the surface and anywhere in the body's box: the torch query is exact (brute force on a subset), never
    farther than the numpy query's answer, and they agree on distance, sign and normal for almost every point."""
    v, f = open_body
    rng = np.random.default_rng(3)
    near = v[f[rng.integers(0, len(f), 3000)]].mean(1) + rng.normal(0, 0.02, (3000, 3))
    box = rng.uniform(v.min(0) - 0.15, v.max(0) + 0.15, (1500, 3))
    pts = np.concatenate([near, box])
    t = TorchMeshQuery(v, f).query(pts)
    n = MeshQuery(v, f, k=2).query(pts)
    sub = rng.choice(len(pts), 300, replace=False)
    assert np.abs(np.abs(t.distance[sub]) - _brute(pts[sub], v, f)).max() < 2e-6
    assert (np.abs(t.distance) <= np.abs(n.distance) + 2e-6).all()
    same = np.abs(t.distance - n.distance) < 1e-5
    assert same.mean() > 0.97
    assert (np.sign(t.distance) == np.sign(n.distance)).mean() > 0.99
    cos = np.einsum("ni,ni->n", t.normal[same], n.normal[same])
    assert np.percentile(cos, 1) > 0.999
    # interpolate() at the answers rebuilds the closest points (the MeshQuery contract)
    assert np.abs(TorchMeshQuery(v, f).interpolate(v, t.face, t.bary) - t.closest).max() < 1e-5


def test_tensor_answers_stay_on_the_device(sphere):
    v, f = sphere
    q = TorchMeshQuery(v, f)
    pts = torch.tensor([[0.2, 1.0, 3.0], [0.2, 1.0, 4.0]], dtype=torch.float64)
    out = q.query_tensors(pts)
    assert out.distance.device == q.device and out.distance.dtype == torch.float32
    assert out.distance[0] < -0.45 and abs(float(out.distance[1]) - 0.5) < 0.01
    assert np.allclose(out.numpy().closest, q.query(pts.numpy()).closest, atol=1e-6)


def test_bad_meshes_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        TorchMeshQuery(np.zeros((3, 3)), np.zeros((0, 3), np.int64))
    with pytest.raises(ValueError, match="face indices"):
        TorchMeshQuery(np.zeros((3, 3)), np.array([[0, 1, 3]]))


def test_dispatch_keeps_numpy_on_the_cpu(sphere):
    v, f = sphere
    assert isinstance(dev_mod.mesh_query(v, f, "cpu"), MeshQuery)
    assert isinstance(dev_mod.mesh_query(v, f, torch.device("cpu")), MeshQuery)
    x = np.zeros((4, 3, 2))
    assert dev_mod.on_device(x, "cpu") is x
    assert dev_mod.is_cpu("cpu") and not dev_mod.is_cpu("cuda") and not dev_mod.is_cpu("cuda:1")


def test_texture_bake_through_tensor_fragments_matches_numpy(scene, monkeypatch):
    """The bake's device hook hands the rasteriser tensors (as on CUDA; here CPU tensors): same texture as
    tests/test_texture.py's numpy bake of its dressed capsule subject."""
    from icon_engine import texture as texture_mod

    subject, posed, cam, rgb, mask, ref = scene
    seen = []

    def as_tensor(array, device):
        seen.append(device)
        return torch.as_tensor(np.asarray(array))

    monkeypatch.setattr(texture_mod.uv, "on_device", as_tensor)
    got = texture_mod.bake_texture(posed, subject.faces, rgb, mask, cam, size=512, device="cpu")
    assert len(seen) == 2  # the photo's depth layers and the UV atlas
    assert np.array_equal(got.image, ref.image) and np.array_equal(got.vertex_colors, ref.vertex_colors)


@cuda
def test_texture_bake_on_cuda_matches_the_cpu(scene):
    from icon_engine.texture import bake_texture

    subject, posed, cam, rgb, mask, cpu = scene
    gpu = bake_texture(posed, subject.faces, rgb, mask, cam, size=512, device="cuda")
    assert np.abs(gpu.image.astype(int) - cpu.image.astype(int)).mean() < 0.5
    assert np.abs(gpu.vertex_colors.astype(int) - cpu.vertex_colors.astype(int)).mean() < 0.5


@cuda
def test_torch_query_on_cuda_matches_the_cpu(open_body):
    v, f = open_body
    rng = np.random.default_rng(5)
    pts = np.concatenate([v[f[rng.integers(0, len(f), 20000)]].mean(1) + rng.normal(0, 0.03, (20000, 3)),
                          rng.uniform(v.min(0) - 0.3, v.max(0) + 0.3, (20000, 3))])
    q = dev_mod.mesh_query(v, f, "cuda")
    assert isinstance(q, TorchMeshQuery) and q.device.type == "cuda"
    gpu = q.query(pts)
    cpu = TorchMeshQuery(v, f).query(pts)
    assert np.abs(gpu.distance - cpu.distance).max() < 1e-5
    out = q.query_tensors(torch.as_tensor(pts, device="cuda"))
    assert out.distance.device.type == "cuda"


@pytest.mark.slow
def test_surface_with_the_torch_query_matches_the_numpy_one(monkeypatch):
    """The surface stage's hook takes the torch query (here on the CPU, as it does on CUDA) and builds the same
    clothed surface as with the numpy query, on a real synthetic subject (open body, rendered mask)."""
    from bench.synthetic import make_subject
    from icon_engine import surface as surface_mod
    from icon_engine.body_model import load_body_model

    subject = make_subject(load_body_model(), 0, seed=7, size=(320, 448), spacing=0.009, kind="tight")
    fit = SimpleNamespace(vertices=subject.body_vertices, faces=subject.body_faces, camera=subject.camera,
                          joints=subject.joints)
    obs = SimpleNamespace(mask=subject.mask)
    ref = surface_mod.build_surface(fit, obs, None, quality="preview")
    made = []

    def torch_query(vertices, faces, device):
        made.append(TorchMeshQuery(vertices, faces))
        return made[-1]

    monkeypatch.setattr(surface_mod, "mesh_query", torch_query)
    got = surface_mod.build_surface(fit, obs, None, quality="preview")
    assert made  # the hook was used
    assert abs(got.stats["silhouette_iou"] - ref.stats["silhouette_iou"]) < 0.002
    d = np.abs(MeshQuery(ref.vertices, ref.faces, k=2).signed_distance(got.vertices))
    assert d.mean() < 1e-4 and np.percentile(d, 99) < 1e-3


@cuda
@pytest.mark.slow
def test_reconstruct_on_cuda_matches_the_cpu_reference(tmp_path, monkeypatch):
    """A whole ``--device cuda`` reconstruction of the sample photo (texture on): the surface and avatar queries are
    torch queries on the GPU, and the posed avatar matches the CPU reference of the regression test."""
    from test_speed_regression import MAX_CHAMFER_M, MIN_IOU, _reference, compare

    from icon_engine.bundle import read_bundle
    from icon_engine.options import ReconstructOptions
    from icon_engine.pipeline import reconstruct
    from icon_engine.sample import sample_photo_path

    devices = []

    class Spy(TorchMeshQuery):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            devices.append(self.device.type)

    monkeypatch.setattr(dev_mod, "TorchMeshQuery", Spy)
    bundle = read_bundle(reconstruct(sample_photo_path(), tmp_path,
                                     ReconstructOptions(quality="preview", texture=True, device="cuda")))
    assert bundle.meta["device"] == "cuda"
    assert len(devices) >= 3 and set(devices) == {"cuda"}  # body (surface), clothed and canonical body (avatar)
    iou, chamfer = compare(_reference("preview"), bundle.posed_mesh.vertices, bundle.posed_mesh.faces)
    # the fit runs in float32 on other hardware (test_devices: bodies agree to a few mm): a little slack
    assert iou >= MIN_IOU - 0.01 and chamfer <= 2 * MAX_CHAMFER_M
    texture = bundle.file("texture")
    assert texture is not None and texture.stat().st_size > 10_000


def test_an_empty_point_set_gets_empty_answers(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    """A query of no points (a surface block in which one body part has no candidates) answers with empty arrays of
    the right shapes, like the numpy query; it used to fail to unpack the torch query's chunks."""
    v, f = sphere
    for query in (TorchMeshQuery(v, f), MeshQuery(v, f)):
        got = query.query(np.zeros((0, 3)))
        assert got.distance.shape == (0,) and got.face.shape == (0,) and got.face.dtype == np.int64
        assert got.bary.shape == got.closest.shape == got.normal.shape == (0, 3)
