"""Tests for icon_engine.render: hard raster against analytic cases, helpers, visibility and the soft silhouette."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from icon_engine import render as R
from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics

W, H = 160, 120


def _sphere(sub: int = 4, radius: float = 0.5, z: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    s = trimesh.creation.icosphere(subdivisions=sub, radius=radius)
    return np.asarray(s.vertices) + [0.0, 0.0, z], np.asarray(s.faces)


def _quad(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float | None = None):
    """Two-triangle rectangle in the camera frame; depth varies linearly in x from z0 to z1."""
    z1 = z0 if z1 is None else z1
    v = np.array([[x0, y0, z0], [x1, y0, z1], [x1, y1, z1], [x0, y1, z0]], dtype=np.float64)
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_sphere_silhouette_depth_and_barycentrics():
    v, f = _sphere(sub=5)
    K = default_intrinsics(W, H)
    r = R.rasterize(v, f, K, W, H)
    # Silhouette of a centred sphere: a disk of radius f·r/sqrt(d² − r²).
    rad = K[0, 0] * 0.5 / np.sqrt(3.0**2 - 0.5**2)
    assert abs(r.mask.sum() - np.pi * rad**2) / (np.pi * rad**2) < 0.02
    # Depth against the analytic ray/sphere intersection.
    rays = R.pixel_rays(K, W, H)
    c = np.array([0.0, 0.0, 3.0])
    b = rays @ c
    disc = b**2 - (c @ c - 0.25)
    inner = disc > 0.05  # away from the rim
    t = b[inner] - np.sqrt(disc[inner])
    z_true = t * rays[inner][:, 2]
    assert r.mask[inner].all()
    assert np.abs(r.depth[inner] - z_true).max() < 5e-3
    assert np.isinf(r.depth[~r.mask]).all() and (r.face_index[~r.mask] == -1).all()
    bs = r.bary[r.mask]
    assert np.allclose(bs.sum(axis=1), 1.0, atol=1e-5) and (bs >= -1e-6).all()


def test_pixel_centre_convention():
    K = np.array([[100.0, 0, 0], [0, 100.0, 0], [0, 0, 1]])
    # Rectangle x ∈ [10.2, 20.2) px, y ∈ [5.6, 9.4) px at depth 1.
    v, f = _quad(0.102, 0.202, 0.056, 0.094, 1.0)
    m = R.render_mask(v, f, K, 32, 16)
    cols = np.nonzero(m.any(axis=0))[0]
    rows = np.nonzero(m.any(axis=1))[0]
    assert cols.tolist() == list(range(10, 20))  # centres 10.5 … 19.5
    assert rows.tolist() == [6, 7, 8]  # centres 6.5, 7.5, 8.5
    assert m.sum() == 30  # no holes along the shared diagonal


def test_perspective_correct_barycentrics():
    K = default_intrinsics(64, 64)
    v, f = _quad(-1.0, 1.0, -1.0, 1.0, 1.5, 4.0)  # slanted plane
    r = R.rasterize(v, f, K, 64, 64)
    m = r.mask
    assert m.sum() > 1000
    pos = r.interpolate(v)  # camera-frame position from the barycentrics
    rays = R.pixel_rays(K, 64, 64)
    # The interpolated point lies on the pixel's ray, at the rasterized depth.
    cross = np.cross(pos[m], rays[m])
    assert np.abs(cross).max() < 1e-4
    assert np.allclose(pos[m][:, 2], r.depth[m], rtol=1e-5)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_nearest_surface_wins_and_farthest(order):
    near_v, near_f = _quad(-0.5, 0.5, -0.5, 0.5, 2.0)
    far_v, far_f = _quad(-1.0, 1.0, -1.0, 1.0, 3.0)
    parts = [(near_v, near_f), (far_v, far_f)]
    a, b = parts[order[0]], parts[order[1]]
    v = np.concatenate([a[0], b[0]])
    f = np.concatenate([a[1], b[1] + 4])
    near_ids = {0, 1} if order[0] == 0 else {2, 3}
    K = default_intrinsics(80, 80)
    r = R.rasterize(v, f, K, 80, 80)
    assert set(np.unique(r.face_index[40, 38:42])) <= near_ids
    assert np.allclose(r.depth[40, 40], 2.0, atol=1e-5)
    back = R.rasterize(v, f, K, 80, 80, farthest=True)
    assert np.allclose(back.depth[40, 40], 3.0, atol=1e-5)
    assert (back.mask == r.mask).all()


def test_cube_front_face_and_normal_pair():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    v = np.asarray(box.vertices) + [0.0, 0.0, 3.0]
    f = np.asarray(box.faces)
    K = default_intrinsics(W, H)
    r = R.rasterize(v, f, K, W, H)
    fn = R.face_normals(v, f)
    assert np.allclose(fn[r.face_index[H // 2, W // 2]], [0, 0, -1])
    front, back, mask = R.render_normal_pair(v, f, K, W, H)
    n = np.linalg.norm(front[mask], axis=1)
    assert np.allclose(n, 1.0, atol=1e-4)
    assert (front[H // 2, W // 2] @ [0, 0, 1]) < -0.5  # towards the camera
    assert (back[H // 2, W // 2] @ [0, 0, 1]) > 0.5  # the far side faces away
    assert (front[~mask] == 0).all()


def test_normals_world_space_and_vertex_normals():
    sph = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    vw = np.asarray(sph.vertices) + [0.0, 1.0, 0.0]
    cam = Camera(default_intrinsics(W, H), FRONT_VIEW_R.copy(), np.array([0.0, 1.0, 3.0]), W, H)
    vc = R.to_camera(vw, cam.R, cam.t)
    nw, mask = R.render_normals(vc, sph.faces, cam.K, W, H, space="world", R=cam.R)
    nc, _ = R.render_normals(vc, sph.faces, cam.K, W, H, space="camera")
    assert np.allclose(nw[mask], nc[mask] @ cam.R, atol=1e-5)
    assert nw[H // 2, W // 2] @ [0, 0, 1] > 0.99  # sphere front faces world +Z (towards the camera)
    vn = R.vertex_normals(vw, sph.faces)
    radial = (vw - [0, 1, 0]) / 0.4
    assert np.einsum("ij,ij->i", vn, radial).min() > 0.99
    vt = R.vertex_normals(torch.tensor(vw), torch.tensor(sph.faces))
    assert np.allclose(vt.numpy(), vn, atol=1e-9)
    vb = R.vertex_normals(torch.tensor(np.stack([vw, vw * 2])), sph.faces)
    assert vb.shape == (2, len(vw), 3) and torch.allclose(vb[0], vt) and torch.allclose(vb[1], vt)
    with pytest.raises(ValueError):
        R.render_normals(vc, sph.faces, cam.K, W, H, space="world")


def test_vertex_visibility_matches_hemisphere():
    v, f = _sphere(sub=4)
    K = default_intrinsics(256, 256)
    vis = R.vertex_visibility(v, f, K, 256, 256)
    n = (v - [0, 0, 3.0]) / 0.5
    cos = np.einsum("ij,ij->i", n, v / np.linalg.norm(v, axis=1, keepdims=True))
    assert vis[cos < -0.15].all()  # clearly facing the camera
    assert not vis[cos > 0.15].any()  # clearly on the far side (only the rim is ambiguous)
    assert vis.sum() > 0.3 * len(v) and (~vis).sum() > 0.4 * len(v)
    # An occluder in front hides the centre of the sphere.
    qv, qf = _quad(-0.1, 0.1, -0.1, 0.1, 1.0)
    v2 = np.concatenate([v, qv])
    f2 = np.concatenate([f, qf + len(v)])
    vis2 = R.vertex_visibility(v2, f2, K, 256, 256)
    centre = np.argmin(np.linalg.norm(v - [0, 0, 2.5], axis=1))
    assert vis[centre] and not vis2[centre]


def test_shaded_and_colors():
    v, f = _sphere(sub=4)
    K = default_intrinsics(W, H)
    rgb, mask = R.render_shaded(v, f, K, W, H, colors=(255, 0, 0))
    # Headlight Lambert: ambient + (1 − ambient)·|n·ray| on the red channel, nothing elsewhere.
    n, _ = R.render_normals(v, f, K, W, H)
    cos = np.abs(np.sum(n * R.pixel_rays(K, W, H), axis=2))
    assert np.allclose(rgb[..., 0][mask], 0.35 + 0.65 * cos[mask], atol=1e-4)
    assert rgb[H // 2, W // 2, 0] > 0.99 and (rgb[..., 1:] == 0).all() and (rgb[~mask] == 0).all()
    assert rgb[..., 0][mask].min() < 0.6  # the rim is darker
    dark, _ = R.render_shaded(v, f, K, W, H, colors=np.array([2, 2, 2], dtype=np.uint8))
    assert dark[mask].max() < 0.01  # uint8 colours are 0–255 even when small
    cols = (v[:, 0:1] > 0).astype(float) * [0, 1, 0]
    img, m = R.render_colors(v, f, K, W, H, cols)
    assert img[H // 2, W // 2 + 20, 1] > 0.9 and img[H // 2, W // 2 - 20, 1] < 0.1
    assert (img[~m] == 0).all()


def test_soft_silhouette_matches_hard_mask_and_fd_gradient():
    sph = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    K = default_intrinsics(96, 96)
    v = torch.tensor(np.asarray(sph.vertices) + [0.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    sil = R.soft_silhouette(v, sph.faces, K, 96, 96, sigma=1.0)
    hard = R.render_mask(v.detach().numpy(), sph.faces, K, 96, 96)
    assert sil.shape == (96, 96)
    assert ((sil > 0.5).numpy() == hard).mean() > 0.995
    assert abs(float(sil.detach().sum()) - hard.sum()) < 0.02 * hard.sum()
    # Finite differences of a smooth loss w.r.t. a translation of all vertices.
    target = torch.zeros(96, 96, dtype=torch.float64)
    target[20:70, 30:80] = 1.0

    def loss_at(shift: torch.Tensor) -> torch.Tensor:
        return ((R.soft_silhouette(v + shift, sph.faces, K, 96, 96, sigma=1.0) - target) ** 2).sum()

    shift = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    loss_at(shift).backward()
    grad = shift.grad.numpy()
    eps = 1e-4
    for k in range(2):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = eps
        with torch.no_grad():
            fd = (loss_at(e) - loss_at(-e)).item() / (2 * eps)
        assert abs(fd - grad[k]) < 0.05 * abs(fd) + 1e-3, (k, fd, grad[k])


def test_soft_silhouette_optimisation_recovers_shift():
    sph = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    base = torch.tensor(np.asarray(sph.vertices) + [0.0, 0.0, 3.0], dtype=torch.float32)
    K = default_intrinsics(128, 128)
    true = torch.tensor([0.25, -0.15, 0.0])
    target = torch.tensor(R.render_mask((base + true).numpy(), sph.faces, K, 128, 128), dtype=torch.float32)
    shift = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([shift], lr=0.02)
    for _ in range(50):
        opt.zero_grad()
        sil = R.soft_silhouette((base + shift).unsqueeze(0), sph.faces, K, 128, 128, sigma=1.5)[0]
        loss = ((sil - target) ** 2).mean()
        loss.backward()
        opt.step()
    err = (shift.detach() - true)[:2].abs().max().item()
    assert err < 0.01, shift


def test_torch_input_empty_mesh_and_faces_behind_the_camera():
    v, f = _sphere(sub=3)
    K = default_intrinsics(64, 48)
    a = R.rasterize(v, f, K, 64, 48)
    b = R.rasterize(torch.tensor(v, dtype=torch.float32), torch.tensor(f), torch.tensor(K), 64, 48)
    assert (a.face_index == b.face_index).mean() > 0.999
    empty = R.rasterize(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), K, 64, 48)
    assert not empty.mask.any() and np.isinf(empty.depth).all()
    # A face with a corner behind the camera is skipped (no wrap-around smear); the rest still draws.
    behind = np.array([[-1.0, -1.0, -0.5], [1.0, -1.0, 2.0], [0.0, 1.0, 2.0]])
    v2 = np.concatenate([v, behind])
    f2 = np.concatenate([f, [[len(v), len(v) + 1, len(v) + 2]]])
    c = R.rasterize(v2, f2, K, 64, 48)
    assert (c.face_index == a.face_index).all()


def test_back_normals_equal_render_from_behind_flipped_for_orthographic_like_camera():
    """ICON's back map (rendered from behind, flipped horizontally) = our farthest layer, for a far-away camera."""
    torus = trimesh.creation.torus(major_radius=0.4, minor_radius=0.15)
    rot = trimesh.transformations.rotation_matrix(0.6, [1, 0.3, 0])[:3, :3]
    v = np.asarray(torus.vertices) @ rot.T + [0.1, 0.0, 0.0]
    f = np.asarray(torus.faces)
    c = np.array([0.0, 0.0, 200.0])
    K = np.array([[8000.0, 0, 48], [0, 8000.0, 48], [0, 0, 1]])  # ~orthographic: 1 m ≈ 40 px at 200 m
    front, back, mask = R.render_normal_pair(v + c, f, K, 96, 96)
    behind = v * [-1.0, 1.0, -1.0]  # the scene turned 180° about the vertical axis through its centre
    nb, mb = R.render_normals(behind + c, f, K, 96, 96)
    nb, mb = nb[:, ::-1] * [-1.0, 1.0, -1.0], mb[:, ::-1]  # flip the image and turn the normals back
    inner = mask & mb
    assert (mask != mb).mean() < 0.01
    agree = np.einsum("ijk,ijk->ij", back, nb)[inner] > 0.95
    assert agree.mean() > 0.97
    assert (np.einsum("ijk,ijk->ij", front, nb)[inner] > 0.95).mean() < 0.5  # and it is not the front layer
