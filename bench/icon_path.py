"""Speed of ICON's path per stage with full-size random-weight networks: ``python bench/icon_path.py``.

Prints one JSON object: seconds per normal-network pass (both generators, 512²), per filter pass (front + back),
per body-refinement iteration (without the normal networks), per million occupancy queries (body features + MLP)
and per marching-cubes extraction. Random weights time the same arithmetic as the official ones. The stand-in
body is a closed mesh of SMPL-X's size (≈10k vertices, ≈20k faces). Figures: docs/benchmarks/icon.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icon_engine.icon.networks import ImplicitNet  # noqa: E402


def _body(subdivisions: int = 5):
    import trimesh

    body = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)  # 10242 vertices, 20480 faces
    body.apply_scale([0.22, 0.85, 0.15])
    body.apply_translation([0.0, 0.85, 0.0])
    return body


def _scene(res: int):
    from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics
    from icon_engine.icon import infer
    from icon_engine.render import render_mask

    body = _body()
    W, H = 768, 1024
    K = default_intrinsics(W, H)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.85, 3.2]), W, H)
    mask = render_mask(cam.to_camera(body.vertices), body.faces, K, W, H)
    crop = infer.make_crop(cam, np.asarray(body.vertices), mask, res)
    return body, cam, mask, crop


class TemplateBody(torch.nn.Module):
    """A rigid stand-in body model: the template rotated by ``global_orient`` (axis-angle) and translated."""

    def __init__(self, template: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("template", torch.as_tensor(np.asarray(template), dtype=torch.float32))

    def forward(self, global_orient=None, transl=None, **_) -> SimpleNamespace:
        v = self.template[None]
        if global_orient is not None:
            angle = global_orient.norm(dim=1).clamp_min(1e-8)[:, None, None]
            k = global_orient / angle[:, 0]
            zero = torch.zeros_like(k[:, 0])
            kx = torch.stack([zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0], -k[:, 1], k[:, 0], zero], 1)
            kx = kx.view(-1, 3, 3)
            rot = torch.eye(3) + torch.sin(angle) * kx + (1 - torch.cos(angle)) * kx @ kx
            v = v @ rot.transpose(1, 2)
        if transl is not None:
            v = v + transl[:, None]
        return SimpleNamespace(vertices=v, joints=v[:, :55])


def sdf_readout(net: ImplicitNet, gain: float = 10.0) -> ImplicitNet:
    """Make a random-weight implicit net read its occupancy off the body's sdf feature: the last layer's weights
    become 0 except ``gain`` on the sdf input (re-fed through the skip connection), bias 0.5, so the surface is
    the body's. All layers still run, so timings are those of the real network."""
    last = net.if_regressor.filters[-1]
    sdf_channel = last.in_channels - 7  # [..., image features, sdf, cmap (3), normal (3)]
    with torch.no_grad():
        last.weight.zero_()
        last.weight[0, sdf_channel, 0] = gain
        last.bias.fill_(0.5)
    return net


def _timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


class _cpu:
    """Records the process CPU time (all threads) of a block into ``out["process_cpu_s"][name]``."""

    def __init__(self, out: dict, name: str) -> None:
        self.out, self.name = out, name

    def __enter__(self) -> None:
        self.t = time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.out.setdefault("process_cpu_s", {})[self.name] = round(time.process_time() - self.t, 2)


def _load() -> float | None:
    try:
        import os

        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _whole(dev: torch.device, quality: str) -> dict:
    """The whole ICON path (``build_icon_surface``) with full-size random networks and the real open body."""
    from icon_engine.body_model import load_body_model
    from icon_engine.camera import FRONT_VIEW_R, Camera, default_intrinsics
    from icon_engine.icon import infer
    from icon_engine.icon.checkpoints import IconNetworks
    from icon_engine.icon.networks import ImplicitNet, NormalNet
    from icon_engine.render import render_mask

    model = load_body_model(device=str(dev))
    with torch.no_grad():
        verts = model().vertices[0].cpu().numpy().astype(np.float64)
    faces = np.asarray(model.faces, np.int64)
    W, H = 768, 1024
    K = default_intrinsics(W, H)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.0, 3.6]), W, H)
    mask = render_mask(cam.to_camera(verts), faces, K, W, H)
    rgb = (np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)
    fit = SimpleNamespace(vertices=verts, faces=faces, camera=cam, betas=np.zeros(model.num_betas),
                          full_pose=np.zeros((55, 3)), transl=np.zeros(3), expression=np.zeros(model.num_expression))
    nets = IconNetworks(NormalNet().eval(), sdf_readout(ImplicitNet(True).eval()), "icon-filter")
    t = time.perf_counter()
    surf = infer.build_icon_surface(fit, SimpleNamespace(mask=mask), SimpleNamespace(rgb=rgb), nets, quality,
                                    None, dev, body_model=model)
    return {f"whole_{quality}_s": round(time.perf_counter() - t, 1), f"whole_{quality}_stats": surf.stats}


def run(parts: set[str], device: str = "cpu", points: int = 200_000, mc: int = 257,
        quality: str = "standard") -> dict:
    from icon_engine.icon import infer
    from icon_engine.icon.checkpoints import IconNetworks
    from icon_engine.icon.networks import ImplicitNet, NormalNet

    dev = torch.device(device)
    out: dict = {"machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
                 "device": str(dev), "load_average_1min_at_start": _load()}
    body, cam, mask, crop = _scene(512)
    rng = np.random.default_rng(0)
    rgb = (rng.random((cam.height, cam.width, 3)) * 255).astype(np.uint8)
    image, _ = infer.crop_image(rgb, mask, crop, dev)
    bf, bb = infer.render_body_normals(np.asarray(body.vertices), np.asarray(body.faces), crop.camera, dev)
    implicit = ImplicitNet(use_filter=True).eval().to(dev)
    nf, nb = bf, bb
    if "normal" in parts:
        normal = NormalNet().eval().to(dev)
        with torch.no_grad(), _cpu(out, "normal_nets_512"):
            out["normal_nets_512_s"] = round(_timed(lambda: normal(image, bf, bb)), 3)
        del normal
    if "filter" in parts:
        with torch.no_grad(), _cpu(out, "filter_front_back_512"):
            out["filter_front_back_512_s"] = round(_timed(lambda: implicit.image_features(nf, nb)), 3)
    if "refine" in parts:
        fit = SimpleNamespace(vertices=np.asarray(body.vertices), faces=np.asarray(body.faces, np.int64),
                              camera=cam, betas=np.zeros(10), full_pose=np.zeros((55, 3)), transl=np.zeros(3))
        nets = IconNetworks(NormalNet(ngf=4).eval(), implicit, "icon-filter")
        for rr in (256, 512):
            settings = infer.IconSettings(refine_iters=3, normal_every=1000, refine_res=rr)
            t = time.perf_counter()
            with _cpu(out, f"refine_3_iterations_{rr}"):
                infer.refine_body(fit, TemplateBody(fit.vertices), crop, image, nets, settings,
                                  SimpleNamespace(update=lambda *a: None), dev, (nf, nb))
            out[f"refine_iteration_{rr}_s"] = round((time.perf_counter() - t) / 3, 3)
    if "occupancy" in parts:
        with torch.no_grad():
            feats = implicit.image_features(nf, nb)
        t = time.perf_counter()
        bodyf = infer.BodyFeatures(np.asarray(body.vertices), np.asarray(body.faces),
                                   infer.canonical_code(body.vertices), crop)
        out["body_feature_setup_s"] = round(time.perf_counter() - t, 3)
        pts = infer.grid_points(crop, 65)
        pts = pts[rng.choice(len(pts), size=min(points, len(pts)), replace=False)]
        pts = np.concatenate([pts] * max(1, points // len(pts)))[:points]
        t = time.perf_counter()
        with _cpu(out, f"body_features_{len(pts)}_points"):
            xy, f, vis, cube = bodyf(pts)
        t_feat = time.perf_counter() - t
        t = time.perf_counter()
        with torch.no_grad(), _cpu(out, f"mlp_{len(pts)}_points"):
            for s in range(0, len(pts), 131072):
                implicit.query(feats, torch.as_tensor(xy[s:s + 131072], dtype=torch.float32, device=dev)[None],
                               torch.as_tensor(f[:, s:s + 131072], dtype=torch.float32, device=dev)[None],
                               torch.as_tensor(vis[s:s + 131072], dtype=torch.float32, device=dev)[None, None])
        t_mlp = time.perf_counter() - t
        scale = 1e6 / len(pts)
        out["occupancy_per_million_points_s"] = {"body_features": round(t_feat * scale, 2),
                                                 "mlp": round(t_mlp * scale, 2),
                                                 "total": round((t_feat + t_mlp) * scale, 2)}
    if "whole" in parts:
        with _cpu(out, f"whole_{quality}"):
            out.update(_whole(dev, quality))
    if "mc" in parts:
        sdf_n = mc
        axes = np.linspace(-1, 1, sdf_n)
        x, y, z = np.meshgrid(axes, axes, axes, indexing="ij")
        values = (0.5 + 0.6 - np.sqrt((x / 0.3) ** 2 + (y / 0.9) ** 2 + (z / 0.2) ** 2) * 0.6).astype(np.float32)
        t = time.perf_counter()
        with _cpu(out, f"marching_cubes_{mc - 1}"):
            v, fcs = infer.extract_mesh(values, crop)
        out[f"marching_cubes_{mc - 1}_s"] = round(time.perf_counter() - t, 3)
        out[f"marching_cubes_{mc - 1}_faces"] = int(len(fcs))
    out["load_average_1min_at_end"] = _load()
    out.setdefault("process_cpu_s", {})["total"] = round(time.process_time(), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="normal,filter,refine,occupancy,mc,whole")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--mc", type=int, default=257)
    parser.add_argument("--quality", default="standard")
    args = parser.parse_args()
    print(json.dumps(run(set(args.parts.split(",")), args.device, args.points, args.mc, args.quality), indent=1))


if __name__ == "__main__":
    main()
