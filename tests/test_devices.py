"""Devices: ``auto`` resolves to the CPU without CUDA; with a GPU the fit, the rasteriser (texture fragments,
hard z-buffer), the ICON refinement loop and the body model run there and agree with the CPU.

The CUDA tests run only where ``torch.cuda.is_available()``; they skip elsewhere (CI has no GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from icon_engine.errors import EngineError
from icon_engine.geometry import raster
from icon_engine.options import resolve_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def _sphere(z: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    s = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    return np.asarray(s.vertices) + [0.0, 0.0, z], np.asarray(s.faces)


def _intrinsics(size: int) -> np.ndarray:
    return np.array([[size, 0.0, size / 2], [0.0, size, size / 2], [0.0, 0.0, 1.0]])


def test_auto_resolves_to_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(EngineError) as err:
        resolve_device("cuda")
    assert err.value.code == "device" and "--device cpu" in err.value.hint


def test_auto_picks_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_auto_here_is_what_this_machine_has():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_fit_accepts_auto():
    """``fit_body(device="auto")`` resolves the device itself (the CPU here) and fits as with ``"cpu"``."""
    from bench.lib.fit_cases import camera_for_body, make_case, named_pose, pose_body
    from icon_engine.body_model import load_body_model
    from icon_engine.fit import fit_body

    body = load_body_model()
    pose = named_pose("standing")
    betas = np.zeros(10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    cam = camera_for_body(verts, 10.0, 5.0, 256, 320, fill=0.85)
    case = make_case(body, pose, betas, cam, world_noise=0.0, seed=1)
    fit = fit_body(case.observation, body, case.photo, quality="preview", device="auto")
    assert np.isfinite(fit.vertices).all() and fit.metrics["keypoint_error_px"] < 15.0


def test_torch_raster_stays_on_the_vertices_device():
    """The tensor variant keeps its results where the vertices are (CPU here, the GPU in the CUDA test)."""
    v, f = _sphere()
    r = raster.rasterize_torch(torch.as_tensor(v), torch.as_tensor(f), _intrinsics(64), 64, 64)
    assert isinstance(r.face_index, torch.Tensor) and r.face_index.device == torch.device("cpu")
    n = r.numpy()
    ref = raster.rasterize(v, f, _intrinsics(64), 64, 64)
    assert np.array_equal(n.face_index, ref.face_index) and np.allclose(n.depth[n.mask], ref.depth[ref.mask])


@cuda
def test_rasteriser_on_cuda_matches_the_cpu():
    v, f = _sphere()
    K = _intrinsics(256)
    ref = raster.rasterize(v, f, K, 256, 256)
    dev = torch.device("cuda")
    r = raster.rasterize_torch(torch.as_tensor(v, device=dev), torch.as_tensor(f, device=dev), K, 256, 256)
    assert r.face_index.device.type == "cuda"
    got = r.numpy()
    assert (got.face_index != ref.face_index).mean() < 1e-3
    both = got.mask & ref.mask
    assert np.abs(got.depth[both] - ref.depth[both]).max() < 1e-4
    uv = np.random.default_rng(0).random((500, 1, 2)) * 200 + np.random.default_rng(1).random((500, 3, 2)) * 9
    cpu = raster.fragments(uv, 256, 256)
    with torch.device("cuda"):
        gpu = raster.fragments(torch.as_tensor(uv, device=dev), 256, 256)
    assert set(zip(cpu[0].tolist(), cpu[1].tolist(), strict=True)) == set(zip(gpu[0].tolist(), gpu[1].tolist(),
                                                                             strict=True))
    sil = raster.soft_silhouette(torch.as_tensor(v, device=dev, dtype=torch.float32).requires_grad_(True), f, K,
                                 128, 128)
    assert sil.device.type == "cuda"
    sil.sum().backward()


@cuda
def test_fit_on_cuda_matches_the_cpu():
    from bench.lib.fit_cases import camera_for_body, make_case, named_pose, pose_body
    from icon_engine.body_model import load_body_model
    from icon_engine.fit import fit_body

    cpu_body = load_body_model(device="cpu")
    gpu_body = load_body_model(device="cuda")
    pose = named_pose("walking")
    betas = np.random.default_rng(3).normal(0.0, 0.7, 10)
    verts = pose_body(cpu_body, pose, betas)[0].vertices[0].numpy()
    cam = camera_for_body(verts, 25.0, 5.0, 384, 480, fill=0.85)
    case = make_case(cpu_body, pose, betas, cam, world_noise=0.02, seed=3)
    on_cpu = fit_body(case.observation, cpu_body, case.photo, quality="preview", device="cpu")
    on_gpu = fit_body(case.observation, gpu_body, case.photo, quality="preview", device="cuda")
    assert isinstance(on_gpu.vertices, np.ndarray) and np.isfinite(on_gpu.vertices).all()
    # Same optimisation in float32 on other hardware: the bodies agree to a few millimetres.
    assert np.abs(on_gpu.vertices - on_cpu.vertices).max() < 0.02
    assert abs(on_gpu.metrics["keypoint_error_px"] - on_cpu.metrics["keypoint_error_px"]) < 1.0


@cuda
def test_icon_cloth_refinement_on_cuda():
    """The ICON cloth loop rasterises on the GPU and returns the moved vertices on the host."""
    from types import SimpleNamespace

    from icon_engine.camera import FRONT_VIEW_R, Camera
    from icon_engine.icon import infer

    v, f = _sphere(z=0.0)
    cam = Camera(_intrinsics(128), FRONT_VIEW_R.copy(), np.array([0.0, 0.0, 3.0]), 128, 128)
    dev = torch.device("cuda")
    nf, nb = infer.render_body_normals(v, f, cam, dev)
    assert nf.device.type == "cuda" and nf.shape == (1, 3, 128, 128)
    settings = infer.IconSettings(cloth_iters=12, cloth_res=128)
    crop = SimpleNamespace(camera=cam)
    out, stats = infer.refine_cloth(v, f, (nf, nb), crop, settings, SimpleNamespace(update=lambda *a: None), dev)
    assert out.shape == v.shape and np.isfinite(out).all()
    # the targets are the sphere's own normal maps: the loss starts near 0 and the regularisers keep it there
    assert stats["cloth_normal_loss_first"] < 0.02 and stats["cloth_normal_loss_last"] < 0.05
