"""ICON inference path on CPU with random-weight stand-in networks: crop, body features, refinement loop,
coarse-to-fine occupancy and marching cubes yield a closed mesh around the body."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from bench.icon_path import sdf_readout
from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics
from icon_engine.icon import infer
from icon_engine.icon.checkpoints import IconNetworks
from icon_engine.icon.networks import ImplicitNet, NormalNet
from icon_engine.mesh_queries import MeshQuery
from icon_engine.render import render_mask
from icon_engine.surface import OFF_FRAME_TAPER_M

W, H = 192, 256


def _body() -> trimesh.Trimesh:
    """A standing stand-in body (capsule torso+legs and a head), 1.7 m tall, feet at y = 0, facing +Z."""
    torso = trimesh.creation.capsule(height=1.1, radius=0.18, count=[24, 24])
    torso.apply_translation([0, 0, 0.0])
    torso.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    torso.apply_translation([0, 0.73, 0])
    head = trimesh.creation.icosphere(subdivisions=3, radius=0.12)
    head.apply_translation([0, 1.58, 0])
    body = trimesh.util.concatenate([torso, head])
    body.apply_scale([1.0, 1.0, 0.7])
    return body


class TinyBody(torch.nn.Module):
    """Stand-in for a BodyModel: the template rotated by global_orient, scaled by betas[0], translated."""

    def __init__(self, template: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("template", torch.as_tensor(template, dtype=torch.float32))

    def forward(self, betas=None, global_orient=None, body_pose=None, transl=None, **_):
        v = self.template[None] * (1.0 + 0.01 * (betas[:, :1, None] if betas is not None else 0.0))
        if global_orient is not None:
            angle = global_orient.norm(dim=1, keepdim=True).clamp_min(1e-8)
            axis = global_orient / angle
            kx = torch.zeros(1, 3, 3)
            kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
            kx = kx - kx.transpose(1, 2)
            rot = torch.eye(3) + torch.sin(angle)[..., None] * kx + (1 - torch.cos(angle))[..., None] * kx @ kx
            v = v @ rot.transpose(1, 2)
        if transl is not None:
            v = v + transl[:, None]
        return SimpleNamespace(vertices=v, joints=v[:, :55])


def _scene():
    body = _body()
    K = default_intrinsics(W, H)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.85, 3.2]), W, H)
    mask = render_mask(cam.to_camera(body.vertices), body.faces, K, W, H)
    rng = np.random.default_rng(0)
    rgb = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    fit = SimpleNamespace(vertices=np.asarray(body.vertices), faces=np.asarray(body.faces, np.int64), camera=cam,
                          betas=np.zeros(10), full_pose=np.zeros((55, 3)), transl=np.zeros(3),
                          expression=np.zeros(10))
    return body, fit, SimpleNamespace(mask=mask), SimpleNamespace(rgb=rgb)


def _nets(use_filter: bool) -> IconNetworks:
    torch.manual_seed(0)
    return IconNetworks(NormalNet(ngf=4).eval(), ImplicitNet(use_filter).eval(),
                        "icon-filter" if use_filter else "icon-nofilter")


def test_crop_and_features_follow_icon_conventions() -> None:
    body, fit, mask, photo = _scene()
    crop = infer.make_crop(fit.camera, fit.vertices, mask.mask, 64)
    # the whole body lies inside ICON's cube and projects into the crop
    local = (crop.camera.to_camera(fit.vertices) - crop.center_cam) / crop.unit
    assert np.abs(local).max() < 1.0
    assert 0.8 < crop.unit < 1.2  # ≈ 1 m per ICON unit for a 1.7 m person (crop 1.11 × height)
    image, m = infer.crop_image(photo.rgb, mask.mask, crop, torch.device("cpu"))
    assert image.shape == (1, 3, 64, 64) and float(image.abs().max()) <= 1.0
    assert torch.all(image[0][:, m[0, 0] == 0] == 0) and m.sum() > 100
    feats = infer.BodyFeatures(fit.vertices, fit.faces, infer.canonical_code(fit.vertices), crop)
    centre = np.array([[0.0, 0.9, 0.0]])  # inside the torso
    front = np.array([[0.0, 0.9, 0.135]])  # just in front of the chest surface (z ≈ 0.126)
    far = np.array([[0.0, 0.9, 0.6]])
    xy, f, vis, cube = feats(np.concatenate([centre, front, far]))
    sdf, cmap, normal = f[0], f[1:4], f[4:7]
    assert sdf[0] == 1.0 and sdf[2] == -1.0  # clipped to the sign: positive inside
    assert -infer.SDF_CLIP < sdf[1] < 0  # a few mm outside, in ICON units
    assert normal[2, 1] > 0.9  # chest normal points to the viewer (+z in ICON's frame)
    assert vis[1] == 1.0 and cube.all()
    assert np.all((cmap >= 0) & (cmap <= 1))
    assert np.abs(xy).max() < 1.0


@pytest.mark.parametrize("use_filter", [True, False])
def test_full_icon_path_with_random_standins_yields_mesh(use_filter: bool) -> None:
    """Random weights everywhere, except that the MLP's last layer reads the sdf feature (``sdf_readout``): the
    whole path (normals, refinement, features, coarse-to-fine, marching cubes, world mapping) must then give back
    the body's surface, in the bundle world."""
    body, fit, mask, photo = _scene()
    nets = _nets(use_filter)
    sdf_readout(nets.implicit)
    settings = infer.IconSettings(image_res=64, refine_iters=2, normal_every=1, refine_res=64,
                                  resolutions=(17, 33, 65))
    events: list[float] = []
    progress = SimpleNamespace(update=lambda f, m="": events.append(f))
    model = TinyBody(fit.vertices)
    out = infer.build_icon_surface(fit, mask, photo, nets, "preview", progress, "cpu", body_model=model,
                                   settings=settings)
    assert out.method == f"icon:{nets.variant}"
    mesh = trimesh.Trimesh(out.vertices, out.faces, process=False)
    assert mesh.is_watertight and mesh.volume > 0
    refined = trimesh.Trimesh(out.refined_body.vertices, fit.faces, process=False)
    dist = np.abs(MeshQuery(refined.vertices, refined.faces).signed_distance(out.vertices))
    print(f"surface to body: median {np.median(dist):.4f} m, 95% {np.percentile(dist, 95):.4f} m, max {dist.max():.4f}")
    assert np.percentile(dist, 95) < 0.005 and dist.max() < 0.02  # metres; grid step ≈ 3 cm
    assert abs(mesh.volume - refined.volume) < 0.1 * refined.volume
    assert out.refined_body.vertices.shape == fit.vertices.shape
    assert out.stats["refine_iterations"] == 2 and np.isfinite(out.stats["refine_loss_last"])
    assert out.normal_front.shape == (3, 64, 64)
    assert events == sorted(events) and events[-1] == 1.0
    assert 17**3 < out.stats["points_queried"] < 17**3 + 33**3 + 65**3


@pytest.fixture(scope="module")
def open_body():
    from icon_engine.body_model import load_body_model

    return load_body_model()  # the real open body (SMPL-X layout), built into the cache on first use


def test_refinement_with_the_real_body_model_pulls_body_to_the_silhouette(open_body) -> None:
    """The open body fitted 6 cm too far left of the person: ICON's loss pulls it back (real BodyModel)."""
    with torch.no_grad():
        truth = open_body().vertices[0].numpy().astype(np.float64)
    faces = np.asarray(open_body.faces, np.int64)
    K = default_intrinsics(W, H)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.0, 3.6]), W, H)
    mask = render_mask(cam.to_camera(truth), faces, K, W, H)
    rgb = (np.random.default_rng(1).random((H, W, 3)) * 255).astype(np.uint8)
    shift = np.array([0.06, 0.0, 0.0])
    fit = SimpleNamespace(vertices=truth + shift, faces=faces, camera=cam, betas=np.zeros(open_body.num_betas),
                          full_pose=np.zeros((55, 3)), transl=shift.copy(),
                          expression=np.zeros(open_body.num_expression))
    nets = _nets(False)
    settings = infer.IconSettings(image_res=64, refine_iters=6, normal_every=100, refine_res=64, refine_lr=1.5e-2)
    crop = infer.make_crop(cam, truth, mask, 64)
    image, _ = infer.crop_image(rgb, mask, crop, torch.device("cpu"))
    bf, bb = infer.render_body_normals(fit.vertices, faces, crop.camera, torch.device("cpu"))
    normals = infer.predict_normals(nets.normal, image, bf, bb)
    refined, _, stats = infer.refine_body(fit, open_body, crop, image, nets, settings,
                                          SimpleNamespace(update=lambda *a: None), torch.device("cpu"), normals)
    before = abs(fit.vertices[:, 0].mean() - truth[:, 0].mean())
    after = abs(refined.vertices[:, 0].mean() - truth[:, 0].mean())
    print(f"shift before {before:.4f} m, after {after:.4f} m")
    assert after < 0.7 * before
    assert stats["refine_loss_last"] < stats["refine_loss_first"]
    assert refined.full_pose.shape == (55, 3) and refined.joints.shape == (55, 3)
    # the refined translation reproduces the refined vertices through the body model
    with torch.no_grad():
        again = open_body(betas=torch.as_tensor(refined.betas, dtype=torch.float32)[None],
                          global_orient=torch.as_tensor(refined.full_pose[0:1].reshape(1, 3), dtype=torch.float32),
                          body_pose=torch.as_tensor(refined.full_pose[1:22].reshape(1, 63), dtype=torch.float32),
                          transl=torch.as_tensor(refined.transl, dtype=torch.float32)[None]).vertices[0].numpy()
    assert np.abs(again - refined.vertices).max() < 1e-4


def test_canonical_code_from_the_real_template(open_body) -> None:
    with torch.no_grad():
        template = open_body().vertices[0].numpy()
    code = infer.canonical_code(template)
    assert code.shape == (open_body.num_vertices, 3)
    assert np.allclose(code.min(0), 0.0) and np.allclose(code.max(0), 1.0)
    head = np.argmax(template[:, 1])
    assert code[head, 1] == 1.0  # the top of the head has the largest y code


def test_no_surface_is_a_clear_error() -> None:
    crop = infer.make_crop(_scene()[1].camera, _scene()[1].vertices, None, 64)
    with pytest.raises(Exception) as info:
        infer.extract_mesh(np.zeros((9, 9, 9), np.float32), crop)
    assert "no surface" in str(info.value)


def test_cloth_refinement_moves_surface_towards_predicted_normals() -> None:
    """A sphere whose 'predicted' normals are those of a flatter ellipsoid: the normal loss falls, the topology and
    closure stay, the vertices move by millimetres to centimetres."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    target = sphere.copy()
    target.apply_scale([1.0, 1.0, 0.75])
    K = default_intrinsics(96, 96)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.0, 2.0]), 96, 96)
    crop = infer.make_crop(cam, np.asarray(sphere.vertices), None, 64)
    normals = infer.render_body_normals(np.asarray(target.vertices), np.asarray(target.faces), crop.camera,
                                        torch.device("cpu"))
    settings = infer.IconSettings(cloth_iters=8, cloth_res=64, cloth_lr=1e-3)
    verts, stats = infer.refine_cloth(np.asarray(sphere.vertices), np.asarray(sphere.faces), normals, crop, settings,
                                      SimpleNamespace(update=lambda *a: None), torch.device("cpu"))
    moved = np.linalg.norm(verts - sphere.vertices, axis=1)
    print(f"cloth loss {stats['cloth_normal_loss_first']:.4f} -> {stats['cloth_normal_loss_last']:.4f}, "
          f"moved max {moved.max():.4f} m")
    assert stats["cloth_normal_loss_last"] < 0.97 * stats["cloth_normal_loss_first"]
    assert 1e-4 < moved.max() < 0.05
    assert trimesh.Trimesh(verts, sphere.faces, process=False).is_watertight


def test_apply_refined_body_swaps_the_body_into_a_bodyfit() -> None:
    from icon_engine.fit import BodyFit

    body, fit_ns, _, _ = _scene()
    n = len(fit_ns.vertices)
    fit = BodyFit(betas=np.zeros(10), expression=np.zeros(10), full_pose=np.zeros((55, 3)), transl=np.zeros(3),
                  camera=fit_ns.camera, vertices=fit_ns.vertices, joints=np.zeros((55, 3)), faces=fit_ns.faces,
                  metrics={"iou": 0.9})
    plain = infer.IconSurface(vertices=np.zeros((3, 3)), faces=np.zeros((1, 3), np.int64), method="icon:x")
    assert infer.apply_refined_body(fit, plain) is fit
    pose = np.zeros((55, 3))
    pose[0] = [0.0, 0.1, 0.0]
    refined = infer.RefinedBody(fit.vertices + 0.01, fit.faces, np.ones(10), pose, np.array([0.01, 0, 0]),
                                np.ones((55, 3)))
    surf = infer.IconSurface(vertices=np.zeros((3, 3)), faces=np.zeros((1, 3), np.int64), method="icon:x",
                             stats={"refine_iterations": 3, "refine_loss_first": 1.0, "refine_loss_last": 0.5},
                             refined_body=refined)
    new = infer.apply_refined_body(fit, surf)
    assert isinstance(new, BodyFit) and new is not fit
    assert np.array_equal(new.vertices, refined.vertices) and new.vertices.shape == (n, 3)
    assert np.array_equal(new.full_pose, pose) and np.array_equal(new.joints, refined.joints)
    assert new.camera is fit.camera and np.array_equal(new.faces, fit.faces)
    assert new.metrics["iou"] == 0.9 and new.metrics["icon_refinement"]["refine_loss_last"] == 0.5
    assert fit.metrics == {"iou": 0.9}  # the original is untouched


class LooseWhereSeen(torch.nn.Module):
    """Stand-in implicit network with ICON's blind spot: clothing 3 cm loose around the body where the crop's
    predicted normals show the person, nothing where the crop is black (as beyond the photo's frame)."""

    use_filter = False

    def image_features(self, front: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
        return front

    def query(self, features, xy, body, vis):
        seen = torch.nn.functional.grid_sample(features, xy[:, :, None], align_corners=False)[..., 0]
        fg = (seen.norm(dim=1, keepdim=True) > 0.5).float()
        sdf = body[:, :1]  # ICON units (≈ metres here), positive inside, clipped to ±1 beyond ±SDF_CLIP
        return torch.clamp(0.5 + (sdf + 0.03) / 0.01, 0.0, 1.0) * fg


def _half_body_scene(cut: float = 0.55):
    """The stand-in body photographed from the head down to ``cut`` of the frame's height: the legs lie beyond the
    photo's bottom edge, with a landmark (a knee) below it."""
    body = _body()
    K = default_intrinsics(W, H)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.85, 3.2]), W, H)
    h = int(H * cut)
    small = Camera(K.copy(), cam.R, cam.t, W, h)
    mask = render_mask(small.to_camera(body.vertices), body.faces, K, W, h)
    rgb = (np.random.default_rng(0).random((h, W, 3)) * 255).astype(np.uint8)
    knee = np.array([W / 2, h + 40.0, 0.9])
    keypoints = np.vstack([np.tile([W / 2, h / 3, 0.9], (10, 1)), knee])
    fit = SimpleNamespace(vertices=np.asarray(body.vertices), faces=np.asarray(body.faces, np.int64), camera=small,
                          betas=np.zeros(10), full_pose=np.zeros((55, 3)), transl=np.zeros(3),
                          expression=np.zeros(10))
    return body, fit, SimpleNamespace(mask=mask, keypoints=keypoints), SimpleNamespace(rgb=rgb)


def test_icon_surface_goes_on_in_tight_clothes_beyond_the_photos_frame() -> None:
    """ICON sees a black crop beyond the frame and finds no person there: a half-body photo lost its legs. Beyond
    the frame the surface now follows the frame's edge and tapers to the body (tight) over OFF_FRAME_TAPER_M."""
    body, fit, obs, photo = _half_body_scene()
    torch.manual_seed(0)
    nets = IconNetworks(NormalNet(ngf=4).eval(), LooseWhereSeen(), "icon-nofilter")
    settings = infer.IconSettings(image_res=64, refine_iters=0, resolutions=(17, 33, 65))
    out = infer.build_icon_surface(fit, obs, photo, nets, "preview", None, "cpu", settings=settings)
    assert out.stats["open_edges"] == ["bottom"]
    pix, depth = fit.camera.project(out.vertices)
    beyond_m = (pix[:, 1] - fit.camera.height) * depth / fit.camera.K[0, 0]
    dist = MeshQuery(body.vertices, body.faces).signed_distance(out.vertices)  # positive outside (metres)
    dist = -dist if np.median(dist) < 0 else dist
    print(f"lowest surface point {out.vertices[:, 1].min():.3f} m (body {body.vertices[:, 1].min():.3f}); offset "
          f"in the frame {np.median(dist[beyond_m < -0.1]):.4f}, far beyond {np.median(dist[beyond_m > 0.4]):.4f}")
    assert out.vertices[:, 1].min() < body.vertices[:, 1].min() + 0.03  # the legs go on to the feet
    assert np.median(dist[beyond_m < -0.1]) > 0.02  # the loose clothes the photo shows
    far = beyond_m > OFF_FRAME_TAPER_M + 0.05
    assert far.sum() > 50 and np.percentile(np.abs(dist[far]), 95) < 0.015  # tight beyond the taper


def test_icon_refinement_leaves_a_half_body_photos_legs_where_they_are(open_body) -> None:
    """The crop is black beyond the photo's bottom edge: counted, ICON's silhouette and normal losses fold the legs
    up into the picture. Beyond an open edge they count nothing, as in the fit."""
    with torch.no_grad():
        truth = open_body().vertices[0].numpy().astype(np.float64)
    faces = np.asarray(open_body.faces, np.int64)
    K = default_intrinsics(W, H)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.0, 3.6]), W, H)
    h = int(H * 0.55)
    small = Camera(K.copy(), cam.R, cam.t, W, h)
    mask = render_mask(small.to_camera(truth), faces, K, W, h)
    rgb = (np.random.default_rng(1).random((h, W, 3)) * 255).astype(np.uint8)
    fit = SimpleNamespace(vertices=truth, faces=faces, camera=small, betas=np.zeros(open_body.num_betas),
                          full_pose=np.zeros((55, 3)), transl=np.zeros(3),
                          expression=np.zeros(open_body.num_expression))
    nets = _nets(False)
    settings = infer.IconSettings(image_res=64, refine_iters=8, normal_every=100, refine_res=64, refine_lr=1.5e-2)
    crop = infer.make_crop(small, truth, mask, 64)
    image, seen = infer.crop_image(rgb, mask, crop, torch.device("cpu"))
    bf, bb = infer.render_body_normals(truth, faces, crop.camera, torch.device("cpu"))
    normals = (bf * seen, bb * seen)  # the body's own normals where the photo shows it: only the frame misleads
    frame = infer.PhotoFrame(W, h, frozenset({"bottom"}))
    feet = truth[:, 1] < truth[:, 1].min() + 0.3
    moved = {}
    for name, f in (("counted", None), ("left out", frame)):
        refined, _, _ = infer.refine_body(fit, open_body, crop, image, nets, settings,
                                          SimpleNamespace(update=lambda *a: None), torch.device("cpu"), normals, f)
        moved[name] = float(np.linalg.norm(refined.vertices[feet] - truth[feet], axis=1).mean())
    print(f"feet moved: beyond the frame counted {moved['counted']:.4f} m, left out {moved['left out']:.4f} m")
    assert moved["counted"] > 0.02
    assert moved["left out"] < 0.3 * moved["counted"]


def test_frame_weight_marks_the_crop_beyond_the_given_edges() -> None:
    K = default_intrinsics(W, H)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.85, 3.2]), W, H)
    body = _body()
    h = H // 2
    crop = infer.make_crop(Camera(K.copy(), cam.R, cam.t, W, h), np.asarray(body.vertices), None, 64)
    frame = infer.PhotoFrame(W, h, frozenset({"bottom"}))
    weight = infer.frame_weight(crop, frame, 32, frame.open_edges).numpy()
    # rows of the crop below the photo's bottom edge are 0, rows inside it 1; the sides stay 1 (closed edges)
    src_y = ((np.arange(32) + 0.5) * (64 / 32) - crop.affine[1, 2]) / crop.affine[1, 1]
    assert np.all(weight[src_y > h + 1] == 0) and np.all(weight[src_y < h - 1] == 1)
    every = infer.frame_weight(crop, frame, 32, ("top", "bottom", "left", "right")).numpy()
    assert every.sum() <= weight.sum() and every[src_y < h - 1].min() >= 0
