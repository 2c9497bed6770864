"""Fidelity of the checkpoint-free clothed surface on synthetic dressed subjects (bench/synthetic.py).

Three variants per subject, side by side:

- ``baseline``: the fitted naked body alone;
- ``fitted``: our surface (icon_engine.surface.build_surface) on the fitted body;
- ``oracle``: our surface on the ground-truth body (exact pose, shape and camera).

The fit sees the subject's ground-truth landmarks (projected from the body, as BlazePose would report them) and
the rendered clothed silhouette as the mask (icon_engine.fit.synthetic.make_case with the mask replaced), so the
figures measure fit + surface, not the detector. When the fit is unavailable a ``perturbed`` variant (ground-truth
body with pose/shape noise) stands in for ``fitted``.

Metrics (like ICON's papers; all in the ground-truth world):

- ``chamfer_cm``: mean of the two directed mean distances (reconstruction samples → ground truth, ground truth
  samples → reconstruction), ``samples`` area-uniform points on each surface (default 10,000), centimetres;
- ``p2s_cm``: mean distance of reconstruction samples to the ground-truth surface, centimetres;
- ``normal``: mean L2 difference of unit world normals over the union of the two silhouettes, averaged over 4
  views (0°, 90°, 180°, 270° about +Y); background counts as a zero normal;
- ``iou``: silhouette IoU of the reconstruction reprojected by its own camera (the fit's for fitted meshes)
  against the ground-truth mask.

Fitted meshes live in the fit's normalised world; they are brought to the ground-truth world through the camera
frame (the photo is the shared reference) and shifted along the viewing axis so that the fitted body's mean depth
matches the ground-truth body's (one photo cannot tell distance from size). No rotation or scale alignment.

Usage: ``python bench/fidelity.py --quick`` (3 subjects) or ``python bench/fidelity.py --count 30``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from synthetic import SyntheticSubject, load_open_body, make_subject  # noqa: E402

from icon_engine.camera import Camera, default_intrinsics  # noqa: E402
from icon_engine.mesh_queries import MeshQuery, face_normals, rasterize  # noqa: E402
from icon_engine.surface import build_surface, silhouette_iou  # noqa: E402


@dataclass
class _Obs:
    mask: np.ndarray


@dataclass
class _Fit:
    vertices: np.ndarray
    faces: np.ndarray
    camera: Camera
    joints: np.ndarray | None = None


@dataclass
class _Photo:
    rgb: np.ndarray


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` area-uniform random points (n, 3) on a triangle mesh."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    idx = rng.choice(len(faces), n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    u, v, w = 1 - s, s * (1 - r2), s * r2
    t = tri[idx]
    return u[:, None] * t[:, 0] + v[:, None] * t[:, 1] + w[:, None] * t[:, 2]


def chamfer_p2s(rv: np.ndarray, rf: np.ndarray, gv: np.ndarray, gf: np.ndarray, samples: int = 10_000,
                gt_query: MeshQuery | None = None) -> tuple[float, float]:
    """(Chamfer, P2S) in centimetres between a reconstruction (rv, rf) and the ground truth (gv, gf)."""
    gq = gt_query or MeshQuery(gv, gf, k=2)
    rq = MeshQuery(rv, rf, k=2)
    r2g = np.abs(gq.signed_distance(sample_surface(rv, rf, samples, 1))).mean()
    g2r = np.abs(rq.signed_distance(sample_surface(gv, gf, samples, 2))).mean()
    return float(100.0 * 0.5 * (r2g + g2r)), float(100.0 * r2g)


def orbit_camera(center: np.ndarray, yaw_deg: float, size: int = 384, distance: float = 4.0) -> Camera:
    """Camera at ``distance`` from ``center`` on the horizontal circle, ``yaw_deg`` about +Y from the front (+Z)."""
    yaw = math.radians(yaw_deg)
    eye = center + distance * np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    z = (center - eye) / np.linalg.norm(center - eye)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return Camera(default_intrinsics(size, size, 32.0), R, -R @ eye, size, size)


def normal_image(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
    """(H, W, 3) unit world face normals seen by ``camera`` (zeros on the background)."""
    r = rasterize(vertices, faces, camera)
    img = np.zeros(r.depth.shape + (3,))
    img[r.mask] = face_normals(vertices, faces)[r.face[r.mask]]
    return img


def normal_error(rv: np.ndarray, rf: np.ndarray, gv: np.ndarray, gf: np.ndarray, views: int = 4) -> float:
    """Mean L2 normal difference over the union of silhouettes, averaged over ``views`` views about +Y."""
    center = 0.5 * (gv.min(0) + gv.max(0))
    errs = []
    for k in range(views):
        cam = orbit_camera(center, 360.0 * k / views)
        a, b = normal_image(rv, rf, cam), normal_image(gv, gf, cam)
        union = (np.abs(a).sum(-1) > 0) | (np.abs(b).sum(-1) > 0)
        errs.append(float(np.linalg.norm(a - b, axis=-1)[union].mean()))
    return float(np.mean(errs))


def metrics(rv: np.ndarray, rf: np.ndarray, s: SyntheticSubject, gq: MeshQuery, samples: int,
            iou: float | None = None) -> dict[str, float]:
    """Chamfer, P2S, normal error of a reconstruction in the ground-truth world; ``iou`` if already measured."""
    ch, p2s = chamfer_p2s(rv, rf, s.clothed_vertices, s.clothed_faces, samples, gq)
    return {
        "chamfer_cm": ch,
        "p2s_cm": p2s,
        "normal": normal_error(rv, rf, s.clothed_vertices, s.clothed_faces),
        "iou": silhouette_iou(rv, rf, s.camera, s.mask) if iou is None else iou,
    }


def to_gt_world(points: np.ndarray, fit_camera: Camera, gt_camera: Camera, dz: float = 0.0) -> np.ndarray:
    """Fit-world points → ground-truth world through the shared camera frame, shifted ``dz`` metres along it."""
    cam = fit_camera.to_camera(points) + np.array([0.0, 0.0, dz])
    return (cam - gt_camera.t) @ gt_camera.R


def fit_subject(s: SyntheticSubject, body_model: Any, quality: str) -> tuple[np.ndarray, np.ndarray, Camera,
                                                                            np.ndarray]:
    """Fit the body to the subject's landmarks and clothed mask; returns (vertices, faces, camera, joints)."""
    from icon_engine.fit import fit_body
    from icon_engine.fit.synthetic import make_case

    cam_posed = s.camera.translated_world(-s.offset)  # the body model's own (un-normalised) world
    case = make_case(body_model, s.full_pose, s.betas, cam_posed)
    obs = case.observation
    obs.mask = s.mask.copy()
    rows, cols = np.nonzero(s.mask)
    obs.bbox = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)
    fit = fit_body(obs, body_model, _Photo(s.rgb), quality=quality)
    return np.asarray(fit.vertices, np.float64), np.asarray(fit.faces, np.int64), fit.camera, np.asarray(fit.joints)


def perturbed_body(s: SyntheticSubject, body_model: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth body with pose noise (0.08 rad per body joint) and shape noise (0.4 σ), same placement."""
    from synthetic import pose_body

    rng = np.random.default_rng(seed)
    pose = s.full_pose.copy()
    pose[1:22] += rng.normal(0, 0.08, (21, 3))
    betas = s.betas + rng.normal(0, 0.4, s.betas.shape)
    v, j = pose_body(body_model, pose, betas)
    v0, j0 = pose_body(body_model, s.full_pose, s.betas)
    return v - j[0] + j0[0] + s.offset, j - j[0] + j0[0] + s.offset


def run(count: int, seed: int = 0, quality: str = "standard", samples: int = 10_000, use_fit: bool = True,
        body_model: Any = None, log: Any = print, partial: Path | None = None, size: tuple[int, int] = (448, 640),
        spacing: float = 0.007, kinds: tuple[str, ...] | None = None, start: int = 0) -> dict[str, Any]:
    """Evaluate ``count`` subjects; returns per-subject rows and per-variant means (also written to ``partial``
    after every subject when given)."""
    bm = body_model or load_open_body()
    rows = []
    for i in range(start, start + count):
        t0 = time.perf_counter()
        s = make_subject(bm, i, seed, size=size, spacing=spacing, kind=kinds[i % len(kinds)] if kinds else None)
        gq = MeshQuery(s.clothed_vertices, s.clothed_faces, k=2)
        row: dict[str, Any] = {"subject": s.name}
        photo = _Photo(s.rgb)
        obs = _Obs(s.mask)
        # oracle
        surf = build_surface(_Fit(s.body_vertices, s.body_faces, s.camera, s.joints), obs, photo, quality)
        row["oracle"] = metrics(surf.vertices, surf.faces, s, gq, samples)
        row["oracle"]["time_s"] = surf.stats["time_s"]
        # fitted (or perturbed) body
        variant = "fitted"
        try:
            if not use_fit:
                raise ImportError("fit disabled")
            fv, ff, fcam, fj = fit_subject(s, bm, quality)
        except ImportError:
            variant = "perturbed"
            (fv, fj), ff, fcam = perturbed_body(s, bm, seed * 1000 + i), s.body_faces, s.camera
        surf = build_surface(_Fit(fv, ff, fcam, fj), obs, photo, quality)
        gz = s.camera.to_camera(s.body_vertices)[:, 2].mean()
        fz = fcam.to_camera(fv)[:, 2].mean()
        dz = float(gz - fz)
        body_gt = to_gt_world(fv, fcam, s.camera, dz)
        surf_gt = to_gt_world(surf.vertices, fcam, s.camera, dz)
        # IoU: reprojection through the fit's own camera (before the depth alignment).
        row["baseline"] = metrics(body_gt, ff, s, gq, samples, silhouette_iou(fv, ff, fcam, s.mask))
        row[variant] = metrics(surf_gt, surf.faces, s, gq, samples, silhouette_iou(surf.vertices, surf.faces, fcam,
                                                                                   s.mask))
        row[variant]["time_s"] = surf.stats["time_s"]
        row["depth_shift_cm"] = 100.0 * dz
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        log(f"{s.name:24s} base {row['baseline']['chamfer_cm']:.2f}  {variant} {row[variant]['chamfer_cm']:.2f}  "
            f"oracle {row['oracle']['chamfer_cm']:.2f} cm  iou {row[variant]['iou']:.3f}/{row['oracle']['iou']:.3f}"
            f"  ({row['seconds']:.0f} s)")
        if partial is not None:
            partial.write_text(json.dumps(summarise(rows, count, quality, samples), indent=1))
    return summarise(rows, count, quality, samples)


def summarise(rows: list[dict[str, Any]], count: int, quality: str, samples: int) -> dict[str, Any]:
    """Per-variant means over ``rows``."""
    variants = [v for v in ("baseline", "fitted", "perturbed", "oracle") if any(v in r for r in rows)]
    summary = {
        v: {m: float(np.mean([r[v][m] for r in rows if v in r])) for m in ("chamfer_cm", "p2s_cm", "normal", "iou")}
        for v in variants
    }
    return {"rows": rows, "summary": summary, "count": count, "done": len(rows), "quality": quality,
            "samples": samples}


def query_throughput(body_model: Any = None, n: int = 200_000) -> dict[str, float]:
    """Points per second of :class:`MeshQuery` on the open body (near the surface: ±2 cm; in the body's box)."""
    from synthetic import pose_body

    bm = body_model or load_open_body()
    v, _ = pose_body(bm, np.zeros((55, 3)), np.zeros(int(getattr(bm, "num_betas", 10))))
    f = np.asarray(bm.faces, np.int64)
    rng = np.random.default_rng(0)
    near = v[f[rng.integers(0, len(f), n)]].mean(1) + rng.normal(0, 0.02, (n, 3))
    box = rng.uniform(v.min(0) - 0.2, v.max(0) + 0.2, (n // 2, 3))
    out = {}
    for name, k, dt in (("k1_float32", 1, np.float32), ("k2_float64", 2, np.float64)):
        q = MeshQuery(v, f, k=k, dtype=dt)
        for label, pts in (("near", near), ("box", box)):
            t = time.perf_counter()
            q.query(pts)
            out[f"{name}_{label}_pts_per_s"] = len(pts) / (time.perf_counter() - t)
    return out


def format_table(result: dict[str, Any]) -> str:
    lines = ["| variant | Chamfer (cm) | P2S (cm) | normal (4 views) | IoU |", "|---|---|---|---|---|"]
    for v, m in result["summary"].items():
        lines.append(f"| {v} | {m['chamfer_cm']:.2f} | {m['p2s_cm']:.2f} | {m['normal']:.3f} | {m['iou']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fidelity of the checkpoint-free surface on synthetic subjects")
    ap.add_argument("--quick", action="store_true", help="3 subjects")
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="index of the first subject (to split a run)")
    ap.add_argument("--merge", type=Path, nargs="+", help="merge the JSON results of split runs and print the table")
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--no-fit", action="store_true", help="use the perturbed ground-truth body instead of the fit")
    ap.add_argument("--json", type=Path, help="write the full result here")
    ap.add_argument("--throughput", action="store_true", help="only measure MeshQuery points/second")
    args = ap.parse_args(argv)
    if args.throughput:
        for key, val in query_throughput().items():
            print(f"{key}: {val:,.0f}")
        return
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        rows = [r for p in parts for r in p["rows"]]
        result = summarise(rows, len(rows), parts[0]["quality"], parts[0]["samples"])
        print(format_table(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return
    count = 3 if args.quick else args.count
    result = run(count, args.seed, args.quality, args.samples, use_fit=not args.no_fit, partial=args.json,
                 start=args.start)
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
