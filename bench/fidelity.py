"""Fidelity of the checkpoint-free clothed surface on synthetic dressed subjects (bench/synthetic.py).

Three variants per subject, side by side:

- ``baseline``: the fitted naked body alone;
- ``fitted``: our surface (icon_engine.surface.build_surface) on the fitted body;
- ``oracle``: our surface on the ground-truth body (exact pose, shape and camera).

The fit sees the subject's ground-truth landmarks (projected from the body, as BlazePose would report them) and
the rendered clothed silhouette as the mask (bench.lib.fit_cases.make_case with the mask replaced), so the
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

Shared rendered set (``--shared-set ../shared/bench/synthetic-dev --results RESULTS``): data we did not generate
(Cycles renders of clothed people, README in that folder). Each ``photo.png`` goes through the whole engine
(``icon_engine.reconstruct``, detector included) into ``RESULTS/subject_1XX/``; then both of the set's scorers run
(``evaluate.py``: known camera, depth search; ``score_scale.py``: camera and scale aligned) and this script adds
the fit's own figures (:func:`pose_errors`): fitted stature vs ``meta.json``'s ``stature_m``, and the torso pitch
and knee angles of the fitted body vs the GT body. ``--height`` gives each subject its true stature
(``--height``); ``--exif-focal`` writes the GT focal into the photo's EXIF (35 mm equivalent) first.
``--fit-only`` runs the body fit alone (detections cached) and scores the body like ``score_scale.py``
(:func:`fit_only_shared_set`): a few seconds per subject, for iterating on the fit.
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


def to_gt_rays(points: np.ndarray, fit_camera: Camera, gt_camera: Camera) -> np.ndarray:
    """Fit-world points → ground-truth world, each kept at its depth in the fit's camera and moved onto the
    ground-truth camera's ray through the pixel where the fit's camera sees it (a focal difference does not
    count: ``../shared/bench/score_scale.py``'s alignment). Both cameras in the same photo's pixels."""
    cam = fit_camera.to_camera(points) @ (np.linalg.inv(gt_camera.K) @ fit_camera.K).T
    return (cam - gt_camera.t) @ gt_camera.R


#: Scales tried by :func:`scale_about_centre` (a coarse grid, then a golden-section search around its best).
SCALE_RANGE = (0.75, 1.35)


def scale_about_centre(rv: np.ndarray, rf: np.ndarray, gt_points: np.ndarray, centre: np.ndarray,
                       samples: int = 10_000) -> float:
    """The scale about ``centre`` (metres, a camera centre; what one uncalibrated photo cannot know) that brings the
    reconstruction (rv, rf) nearest the ground-truth surface samples ``gt_points`` (N, 3) in the symmetric mean
    point-to-point distance."""
    from scipy.spatial import cKDTree

    rs = sample_surface(rv, rf, samples, 3) - centre
    gtree = cKDTree(gt_points)

    def cost(scale: float) -> float:
        a = centre + scale * rs
        return float(gtree.query(a)[0].mean() + cKDTree(a).query(gt_points)[0].mean())

    grid = np.linspace(*SCALE_RANGE, 61)
    best = float(grid[int(np.argmin([cost(x) for x in grid]))])
    lo, hi = best - 0.01, best + 0.01
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(20):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        lo, hi = (lo, b) if cost(a) < cost(b) else (a, hi)
    return 0.5 * (lo + hi)


def scale_aligned(rv: np.ndarray, rf: np.ndarray, fit_camera: Camera, s: SyntheticSubject, gt_camera: Camera,
                  gq: MeshQuery, samples: int = 10_000) -> dict[str, float]:
    """Chamfer and P2S (cm) of a reconstruction (rv, rf in the fit's world) against ``s``'s clothed surface after
    :func:`to_gt_rays` and :func:`scale_about_centre` about ``gt_camera``'s centre, and that scale: the shared set's
    ``score_scale.py`` protocol (the single-photo scale ambiguity removed)."""
    v = to_gt_rays(rv, fit_camera, gt_camera)
    centre = -gt_camera.R.T @ gt_camera.t
    scale = scale_about_centre(v, rf, sample_surface(s.clothed_vertices, s.clothed_faces, samples, 4), centre, samples)
    ch, p2s = chamfer_p2s(centre + scale * (v - centre), rf, s.clothed_vertices, s.clothed_faces, samples, gq)
    return {"chamfer_scaled_cm": ch, "p2s_scaled_cm": p2s, "scale": scale}


def fit_subject(s: SyntheticSubject, body_model: Any, quality: str) -> tuple[np.ndarray, np.ndarray, Camera,
                                                                            np.ndarray]:
    """Fit the body to the subject's landmarks and clothed mask; returns (vertices, faces, camera, joints)."""
    from bench.lib.fit_cases import make_case
    from icon_engine.fit import fit_body

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


# -- the shared rendered set (../shared/bench/synthetic-dev) -----------------------------------------------------

#: SMPL-X joint indices used by :func:`pose_errors`.
_PELVIS, _NECK = 0, 12
_LEGS = {"left": (1, 4, 7), "right": (2, 5, 8)}  # hip, knee, ankle


def regress_joints(vertices: np.ndarray, regressor: np.ndarray) -> np.ndarray:
    """(55, 3) joints of a posed anny-topology body (V ≥ regressor columns) by the open body's joint regressor."""
    return regressor @ np.asarray(vertices, dtype=np.float64)[: regressor.shape[1]]


def body_angles(joints: np.ndarray) -> dict[str, float]:
    """Torso pitch and knee flexion (degrees) of posed SMPL-X-layout joints (55, 3) in a Y-up world.

    ``torso_pitch_deg``: signed angle between world up and the pelvis→neck vector in the body's sagittal plane
    (up, forward), positive leaning forward; forward = horizontal part of (left hip − right hip) × up.
    ``knee_<side>_deg``: angle between thigh (hip→knee) and shank (knee→ankle), 0 = straight."""
    up = np.array([0.0, 1.0, 0.0])
    fwd = np.cross(joints[_LEGS["left"][0]] - joints[_LEGS["right"][0]], up)
    fwd[1] = 0.0
    fwd /= max(float(np.linalg.norm(fwd)), 1e-9)
    v = joints[_NECK] - joints[_PELVIS]
    out = {"torso_pitch_deg": float(np.degrees(np.arctan2(v @ fwd, v @ up)))}
    for side, (h, k, a) in _LEGS.items():
        thigh, shank = joints[k] - joints[h], joints[a] - joints[k]
        cos = thigh @ shank / max(float(np.linalg.norm(thigh) * np.linalg.norm(shank)), 1e-12)
        out[f"knee_{side}_deg"] = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return out


def pose_errors(ours: np.ndarray, gt: np.ndarray, regressor: np.ndarray) -> dict[str, float]:
    """Torso pitch and knee angle errors (degrees) of our fitted body vs the GT body (both anny topology).

    Each body's joints are regressed from its own posed vertices by the same regressor (so the regressor's own
    bias cancels) and measured in its own world (ours: the bundle world, whose up is the fit's; GT: the set's,
    true gravity): what an artist sees in a side view. Knee error: mean of both knees."""
    a, b = body_angles(regress_joints(ours, regressor)), body_angles(regress_joints(gt, regressor))
    return {
        "torso_pitch_deg": a["torso_pitch_deg"], "gt_torso_pitch_deg": b["torso_pitch_deg"],
        "torso_pitch_err_deg": abs(a["torso_pitch_deg"] - b["torso_pitch_deg"]),
        "knee_deg": [a["knee_left_deg"], a["knee_right_deg"]],
        "gt_knee_deg": [b["knee_left_deg"], b["knee_right_deg"]],
        "knee_err_deg": 0.5 * sum(abs(a[f"knee_{k}_deg"] - b[f"knee_{k}_deg"]) for k in ("left", "right")),
    }


def gt_distance(gt_body: np.ndarray, cam: dict[str, Any], regressor: np.ndarray) -> float:
    """Depth (metres) of the GT body's pelvis joint in the GT camera: the true camera distance that the fit's
    ``distance_m`` (its pelvis's depth in its own camera) estimates."""
    pelvis = regress_joints(np.asarray(gt_body, dtype=np.float64), regressor)[0]
    return float((np.asarray(cam["R"], dtype=np.float64) @ pelvis + np.asarray(cam["t"], dtype=np.float64))[2])


def anny_regressor(body_model: Any, num_vertices: int) -> np.ndarray:
    """The open body's joint regressor (55, num_vertices) over anny's first ``num_vertices`` vertices (the GT
    bodies lack the eyes), rows renormalised to sum to 1."""
    with np.load(body_model.path) as arrays:  # the model's own .npz (the module keeps only derived tensors)
        reg = np.asarray(arrays["J_regressor"], dtype=np.float64)[:, :num_vertices]
    return reg / np.maximum(reg.sum(1, keepdims=True), 1e-12)


def write_exif_focal(src: Path, dst: Path, focal_px: float) -> None:
    """Copy the PNG ``src`` to ``dst`` with EXIF FocalLengthIn35mmFilm set from ``focal_px`` (diagonal rule)."""
    from PIL import Image

    from icon_engine.camera import focal_px_to_35mm

    img = Image.open(src)
    exif = Image.Exif()
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0xA405] = int(round(focal_px_to_35mm(focal_px, img.width, img.height)))
    img.save(dst, exif=exif.tobytes())  # PNG writes an Exif object's tags only when given as bytes


def shared_subjects(bench_dir: Path, subjects: list[int] | None, inputs: Path,
                    exif_focal: bool) -> Any:
    """Yield ``(folder, number, meta, camera, photo path)`` per subject of the shared set (only ``subjects`` when
    given); with ``exif_focal`` the photo is a copy in ``inputs`` with the GT focal in its EXIF."""
    for sd in sorted(bench_dir.glob("subject_*")):
        sid = int(sd.name.split("_")[1])
        if subjects and sid not in subjects:
            continue
        meta = json.loads((sd / "meta.json").read_text())
        cam = json.loads((sd / "camera.json").read_text())
        photo = sd / "photo.png"
        if exif_focal:
            photo = inputs / f"{sd.name}.png"
            photo.parent.mkdir(parents=True, exist_ok=True)
            write_exif_focal(sd / "photo.png", photo, float(cam["K"][0][0]))
        yield sd, sid, meta, cam, photo


def run_shared_set(bench_dir: Path, results: Path, quality: str = "standard", subjects: list[int] | None = None,
                   with_height: bool = False, exif_focal: bool = False, log: Any = print,
                   scorers: tuple[str, ...] = ("evaluate", "score_scale")) -> dict[str, Any]:
    """Reconstruct every subject of the shared set into ``results/subject_1XX/``, run both scorers, add the
    stature and pose figures; returns the rows and means (also written to ``results/fit_summary.json``)."""
    import resource
    import subprocess

    import icon_engine
    from icon_engine.body_model import load_body_model
    from icon_engine.bundle import read_bundle
    from icon_engine.options import ReconstructOptions

    sys.path.insert(0, str(bench_dir.parent))
    from common import read_ply  # the set's own PLY reader

    results.mkdir(parents=True, exist_ok=True)
    body_model = load_body_model()
    rows = []
    for sd, _, meta, cam, photo in shared_subjects(bench_dir, subjects, results / "_inputs", exif_focal):
        options = ReconstructOptions(quality=quality, device="cpu",
                                     height_m=float(meta["stature_m"]) if with_height else None)
        t, c = time.perf_counter(), time.process_time()
        bundle_dir = icon_engine.reconstruct(photo, results / sd.name, options, body_model=body_model,
                                             bundle_name="photo")
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        bundle = read_bundle(bundle_dir)
        fit = dict(bundle.meta.get("fit", {}))
        gt_body, _ = read_ply(str(sd / "gt_body.ply"))
        ours = bundle.body_mesh.vertices
        row: dict[str, Any] = {"subject": sd.name, "wall_s": wall, "cpu_s": cpu,
                               "gt_stature_m": meta["stature_m"], "stature_m": fit.get("stature_m"),
                               "stature_source": fit.get("stature_source"), "focal_px": fit.get("focal_px"),
                               "focal_source": fit.get("focal_source"),
                               "gt_focal_px": cam["K"][0][0], "distance_m": fit.get("distance_m"),
                               "gt_distance_m": gt_distance(gt_body, cam, anny_regressor(body_model, len(gt_body)))}
        if len(ours) >= len(gt_body):
            row.update(pose_errors(ours, gt_body, anny_regressor(body_model, len(gt_body))))
        rows.append(row)
        log(f"{sd.name}: stature {row['stature_m']} (GT {row['gt_stature_m']:.3f}) focal {row['focal_px']} "
            f"(GT {row['gt_focal_px']:.0f}) torso {row.get('torso_pitch_err_deg', float('nan')):.1f}° "
            f"knee {row.get('knee_err_deg', float('nan')):.1f}°  {wall:.0f} s wall, {cpu:.0f} s CPU")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    outputs = {}
    py = sys.executable
    for name, args in (("evaluate", ["--out", str(results / "summary.json"), "--md", str(results / "table.md")]),
                       ("score_scale", ["--out", str(results / "scale.json")])):
        if name not in scorers:
            continue
        cmd = [py, str(bench_dir.parent / f"{name}.py"), "--bench", str(bench_dir), "--results", str(results), *args]
        log(f"running {name}.py")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        outputs[name] = proc.stdout[-4000:]
        if proc.returncode != 0:
            log(proc.stderr[-2000:])
    scale = json.loads((results / "scale.json").read_text()) if (results / "scale.json").exists() else None
    if scale:
        by_name = {r["subject"]: r for r in scale["rows"]}
        for row in rows:
            s = by_name.get(row["subject"])
            if s:
                row["scale"] = {k: {m: s[k][m] for m in ("chamfer_cm", "scale")} for k in ("clothed",
                                                                                       "body_as_clothed", "body")}
                row["scale"]["clothed"]["silhouette_iou"] = s["clothed"]["silhouette_iou"]
    summary = summarise_shared(rows)
    summary["peak_rss_mb"] = peak_mb
    summary["options"] = {"quality": quality, "height": with_height, "exif_focal": exif_focal}
    out = {"rows": rows, "summary": summary, "score_scale_mean": scale["mean"] if scale else None}
    (results / "fit_summary.json").write_text(json.dumps(out, indent=1))
    log(outputs.get("evaluate", "")[-1500:])
    log(format_shared(out))
    return out


def cached_detection(photo: Any, cached: Path, mirror_pass: bool = False) -> Any:
    """The detector's ``PersonObservation`` of ``photo``, from the pickle ``cached`` (which this benchmark wrote
    itself) or detected (``mirror_pass``: as ``detect_person``'s) and written there."""
    import pickle

    from icon_engine.person import detect_person

    if cached.exists():
        return pickle.loads(cached.read_bytes())
    obs = detect_person(photo, mirror_pass=mirror_pass)
    cached.write_bytes(pickle.dumps(obs))
    return obs


def fit_only_shared_set(bench_dir: Path, results: Path, quality: str = "standard", subjects: list[int] | None = None,
                        with_height: bool = False, exif_focal: bool = False, log: Any = print,
                        targets: tuple[str, ...] = ("body", "body_as_clothed"), gt_focal: bool = False,
                        ) -> dict[str, Any]:
    """The fit alone on the shared set (no surface, texture or rig): fast iteration on the body fit and scale.

    BlazePose and the mask detector run once per subject and are cached in ``results/_detections/`` (pickles
    this script writes itself; delete them after changing the detector). The body is scored the way
    ``score_scale.py`` scores it (points moved onto the GT camera rays at their own depth, best scale about the GT
    camera centre): ``body`` (vs GT body) and ``body_as_clothed`` (vs GT clothed), plus the stature, focal and
    pose figures of :func:`run_shared_set`. Rows and means go to ``results/fit_only.json``. ``gt_focal``: an
    oracle run, the fit is given the GT focal length (``focal_px``) instead of the EXIF or the prior."""
    from icon_engine.body_model import load_body_model
    from icon_engine.fit import fit_body
    from icon_engine.image_io import load_photo
    from icon_engine.person import mirror_pass_for

    sys.path.insert(0, str(bench_dir.parent))
    import evaluate as ev  # the set's own scorer helpers
    from common import read_ply
    from score_scale import best_scale

    cache = results / "_detections"
    cache.mkdir(parents=True, exist_ok=True)
    body_model = load_body_model()
    rows = []
    for sd, sid, meta, cam, photo_path in shared_subjects(bench_dir, subjects, cache / "exif", exif_focal):
        photo = load_photo(photo_path)
        mirror = mirror_pass_for(quality)  # as the pipeline; the cache keyed by it (a high run after a standard one)
        obs = cached_detection(photo, cache / f"{sd.name}{'_mirrored' if mirror else ''}.pkl", mirror_pass=mirror)
        t, c = time.perf_counter(), time.process_time()
        fit = fit_body(obs, body_model, photo, quality=quality,
                       height_m=float(meta["stature_m"]) if with_height else None,
                       focal_px=float(cam["K"][0][0]) * float(photo.scale) if gt_focal else None)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        cam_b = fit.camera.rescaled(1.0 / photo.scale, *photo.original_size)
        Kg, Rg, tg = (np.asarray(cam[k], dtype=np.float64) for k in ("K", "R", "t"))
        W, H = int(cam["width"]), int(cam["height"])
        V, _ = ev.to_gt_frame(np.asarray(fit.vertices), cam_b.K, cam_b.R, cam_b.t, Kg, Rg, tg, {}, True, (W, H))
        F = np.asarray(fit.faces)
        C = -Rg.T @ tg
        row: dict[str, Any] = {"subject": sd.name, "fit_wall_s": wall, "fit_cpu_s": cpu,
                               "gt_stature_m": meta["stature_m"], "stature_m": fit.metrics.get("stature_m"),
                               "focal_px": fit.metrics.get("focal_px"), "gt_focal_px": float(Kg[0, 0]),
                               "garments": meta["spec"], "betas": np.asarray(fit.betas).round(4).tolist(),
                               "camera_pitch_deg": fit.metrics.get("camera_pitch_deg"),
                               "gt_camera_pitch_deg": cam.get("pitch_deg_down"), "scale": {}}
        for name, ply in (("body", "gt_body.ply"), ("body_as_clothed", "gt_clothed.ply")):
            if name not in targets:
                row["scale"][name] = {"chamfer_cm": float("nan"), "scale": float("nan")}
                continue
            Vg, Fg = read_ply(str(sd / ply))
            tgt = ev.Target(Vg, Fg, seed=31 + sid if name == "body" else 11 + sid)
            s = best_scale(V, F, tgt, C)
            m = ev.surface_metrics(C + s * (V - C), F, tgt)
            row["scale"][name] = {"chamfer_cm": m["chamfer_cm"], "scale": s}
            if name == "body":
                np.save(results / f"{sd.name}_body_gt_frame.npy", C + s * (V - C))  # for inspection
        gt_body, _ = read_ply(str(sd / "gt_body.ply"))
        row.update(pose_errors(np.asarray(fit.vertices), gt_body, anny_regressor(body_model, len(gt_body))))
        row.update(focal_source=fit.metrics.get("focal_source"), distance_m=fit.metrics.get("distance_m"),
                   gt_distance_m=gt_distance(gt_body, cam, anny_regressor(body_model, len(gt_body))))
        rows.append(row)
        log(f"{sd.name}: body {row['scale']['body']['chamfer_cm']:.2f} cm (s {row['scale']['body']['scale']:.3f}) "
            f"as clothed {row['scale']['body_as_clothed']['chamfer_cm']:.2f} stature {row['stature_m']} "
            f"(GT {row['gt_stature_m']:.3f}) focal {row['focal_px']} (GT {row['gt_focal_px']:.0f}) "
            f"distance {row['distance_m']} (GT {row['gt_distance_m']:.2f}) "
            f"torso {row['torso_pitch_err_deg']:.1f} knee {row['knee_err_deg']:.1f}  fit {cpu:.1f} s CPU")
    def mean(fn) -> float:
        return float(np.mean([fn(r) for r in rows])) if rows else float("nan")

    summary = {
        "body_cm": mean(lambda r: r["scale"]["body"]["chamfer_cm"]),
        "body_as_clothed_cm": mean(lambda r: r["scale"]["body_as_clothed"]["chamfer_cm"]),
        "abs_scale_err": mean(lambda r: abs(r["scale"]["body"]["scale"] - 1.0)),
        "stature_err_m": mean(lambda r: abs(r["stature_m"] - r["gt_stature_m"])),
        "focal_ratio_err": mean(lambda r: abs(r["focal_px"] / r["gt_focal_px"] - 1.0)),
        "distance_ratio_err": mean(lambda r: abs(r["distance_m"] / r["gt_distance_m"] - 1.0)),
        "torso_pitch_err_deg": mean(lambda r: r["torso_pitch_err_deg"]),
        "knee_err_deg": mean(lambda r: r["knee_err_deg"]),
        "fit_cpu_s": mean(lambda r: r["fit_cpu_s"]),
    }
    log(" ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    out = {"rows": rows, "summary": summary, "options": {"quality": quality, "height": with_height,
                                                         "exif_focal": exif_focal, "gt_focal": gt_focal}}
    (results / "fit_only.json").write_text(json.dumps(out, indent=1))
    return out


def summarise_shared(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the subjects: Chamfers and scales (score_scale.py), |scale − 1|, stature, pose errors."""
    def mean(fn) -> float:
        vals = [fn(r) for r in rows]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else float("nan")

    def sc(kind: str, m: str):
        return lambda r: r.get("scale", {}).get(kind, {}).get(m)

    return {
        "clothed_cm": mean(sc("clothed", "chamfer_cm")),
        "body_as_clothed_cm": mean(sc("body_as_clothed", "chamfer_cm")),
        "body_cm": mean(sc("body", "chamfer_cm")), "iou": mean(sc("clothed", "silhouette_iou")),
        "scale": mean(sc("body", "scale")),
        "abs_scale_err": mean(lambda r: abs(r["scale"]["body"]["scale"] - 1.0) if "scale" in r else None),
        "max_abs_scale_err": max((abs(r["scale"]["body"]["scale"] - 1.0) for r in rows if "scale" in r),
                                 default=float("nan")),
        "stature_err_m": mean(lambda r: abs(r["stature_m"] - r["gt_stature_m"]) if r.get("stature_m") else None),
        "focal_ratio_err": mean(lambda r: abs(r["focal_px"] / r["gt_focal_px"] - 1.0) if r.get("focal_px") else None),
        "distance_ratio_err": mean(lambda r: abs(r["distance_m"] / r["gt_distance_m"] - 1.0)
                                   if r.get("distance_m") else None),
        "torso_pitch_err_deg": mean(lambda r: r.get("torso_pitch_err_deg")),
        "knee_err_deg": mean(lambda r: r.get("knee_err_deg")),
        "max_knee_err_deg": max((r["knee_err_deg"] for r in rows if "knee_err_deg" in r), default=float("nan")),
        "wall_s": mean(lambda r: r["wall_s"]), "cpu_s": mean(lambda r: r["cpu_s"]),
    }


def format_shared(result: dict[str, Any]) -> str:
    """Markdown table: per subject and mean."""
    lines = ["| subject | clothed (cm) | body as clothed (cm) | body vs GT body (cm) | scale | IoU | stature (GT) m "
             "| focal (GT) px | distance (GT) m | torso pitch err ° | knee err ° |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        s = r.get("scale", {})
        lines.append(
            f"| {r['subject']} | {s.get('clothed', {}).get('chamfer_cm', float('nan')):.2f} "
            f"| {s.get('body_as_clothed', {}).get('chamfer_cm', float('nan')):.2f} "
            f"| {s.get('body', {}).get('chamfer_cm', float('nan')):.2f} "
            f"| {s.get('body', {}).get('scale', float('nan')):.3f} "
            f"| {s.get('clothed', {}).get('silhouette_iou', float('nan')):.3f} "
            f"| {r['stature_m'] or float('nan'):.2f} ({r['gt_stature_m']:.2f}) "
            f"| {r['focal_px'] or float('nan'):.0f} ({r['gt_focal_px']:.0f}) "
            f"| {r.get('distance_m') or float('nan'):.2f} ({r.get('gt_distance_m', float('nan')):.2f}) "
            f"| {r.get('torso_pitch_err_deg', float('nan')):.1f} | {r.get('knee_err_deg', float('nan')):.1f} |")
    m = result["summary"]
    lines.append(f"| **mean** | {m['clothed_cm']:.2f} | {m['body_as_clothed_cm']:.2f} | {m['body_cm']:.2f} "
                 f"| {m['scale']:.3f} (mean abs err {m['abs_scale_err']:.3f}) | {m['iou']:.3f} "
                 f"| err {m['stature_err_m']:.3f} "
                 f"| err {m['focal_ratio_err']:.3f} | err {m.get('distance_ratio_err', float('nan')):.3f} "
                 f"| {m['torso_pitch_err_deg']:.1f} | {m['knee_err_deg']:.1f} |")
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
    ap.add_argument("--shared-set", type=Path, help="the shared rendered set (../shared/bench/synthetic-dev)")
    ap.add_argument("--results", type=Path, help="with --shared-set: where the bundles and scores go")
    ap.add_argument("--subjects", type=int, nargs="+", help="with --shared-set: only these subject numbers")
    ap.add_argument("--height", action="store_true", help="with --shared-set: give each subject its true stature")
    ap.add_argument("--exif-focal", action="store_true", help="with --shared-set: put the GT focal in the EXIF")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="with --shared-set: set constants for an A/B run (bench/lib/constants.py): a bare name in "
                         "icon_engine.fit.core, .fit.priors or .camera (e.g. W_GAIT=0), module.NAME for any "
                         "icon_engine module, preset.QUALITY.STAGE.FIELD for a quality preset "
                         "(preset.standard.fit.pose_iters=75)")
    ap.add_argument("--fit-only", action="store_true",
                    help="with --shared-set: only the body fit, scored like score_scale.py (detections cached)")
    ap.add_argument("--gt-focal", action="store_true",
                    help="with --fit-only: an oracle run, the fit gets each subject's GT focal length")
    ap.add_argument("--scorers", nargs="+", default=["evaluate", "score_scale"], choices=["evaluate", "score_scale"],
                    help="with --shared-set: which of the set's scorers to run")
    args = ap.parse_args(argv)
    if args.shared_set:
        if args.results is None:
            ap.error("--shared-set needs --results")
        from bench.lib.constants import set_constants

        for line in set_constants(args.set, ("fit.core", "fit.priors", "camera")):
            print(f"set {line}", flush=True)
        if args.fit_only:
            fit_only_shared_set(args.shared_set, args.results, args.quality, args.subjects, args.height,
                                args.exif_focal, gt_focal=args.gt_focal)
            return
        run_shared_set(args.shared_set, args.results, args.quality, args.subjects, args.height, args.exif_focal,
                       scorers=tuple(args.scorers))
        return
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
