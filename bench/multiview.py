"""Several photos of one person → one avatar: fidelity of the fused avatar against the front photo alone.

Synthetic dressed subjects with ground truth (bench/synthetic.py: the open body in varied shapes, tight and loose
clothing, skirts) are rendered

- from 4 cameras around them (0°, 90°, 180°, 270° about +Y, the subject standing still), and
- in 4 different poses, each seen from the front,

and reconstructed end to end (BlazePose, fit, surface, fusion) with ``python -m icon_engine reconstruct
--subject`` semantics (:func:`icon_engine.subject.reconstruct_subject`) from: the front photo alone, front + back,
the 4 views, the 4 poses. The bundle's posed mesh (in the first photo's pose and camera) is scored against the
first photo's ground truth like bench/fidelity.py (Chamfer, P2S, normal error over 4 views, silhouette IoU), after
the same depth alignment along the first camera's axis (one photo cannot tell distance from size).

The texture part renders the bundle's textured posed mesh (aligned as above) in the front (0°) and back (180°)
ground-truth views and reports the mean absolute colour error (0–255) on the pixels of the person, after one
least-squares gain per channel (the texture takes the first photo's exposure; the renders are lit from the front,
so the back photo is darker) and raw, and the ratio back/front of the former (target: back ≤ 1.5 × front); and,
for sets with a back photo, the same error (after the gain; raw in brackets) of the avatar posed and seen as in the
front and back photos by their own fits against those photos (the texture without the first fit's misplacement of
the geometry).

Usage: ``python bench/multiview.py --count 3 --quality standard`` (prints a Markdown table; ``--json`` keeps all).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fidelity import metrics, sample_surface, scale_aligned, to_gt_world, write_exif_focal  # noqa: E402
from synthetic import (  # noqa: E402
    L_ANKLE,
    L_HIP,
    L_KNEE,
    R_ANKLE,
    R_HIP,
    R_KNEE,
    SyntheticSubject,
    front_camera,
    load_open_body,
    make_subject,
    pose_body,
    render_subject,
    vertex_regions,
)

from icon_engine.camera import Camera  # noqa: E402
from icon_engine.mesh_queries import MeshQuery  # noqa: E402

VIEW_YAWS = (0.0, 90.0, 180.0, 270.0)
#: The views' cameras look at the body's bounding-box centre from this many degrees above (bench/synthetic.py
#: ``front_camera``): 3° puts them at ≈ 0.59 × the stature above the floor (hip height); ≈ 8° at 0.75 × (chest
#: height, the fit's camera-height prior and the shared rendered set's cameras). ``--camera-pitch``.
VIEW_PITCH_DEG = 3.0
#: Photos of each set: indices into the 4 views (0°, 90°, 180°, 270°), then (4, 5, 6) the subject in 3 other poses
#: seen from the front (the first photo, view 0, is the same for every set: every set is scored against it).
SETS = {"front": (0,), "front+back": (0, 2), "4 views": (0, 1, 2, 3), "4 poses": (0, 4, 5, 6)}
#: Other poses of the "4 poses" set (random standing poses, series of the subject's own).
OTHER_POSES = 3


def render_views(s: SyntheticSubject, size: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray, Camera]]:
    """``s`` seen from :data:`VIEW_YAWS`: (rgb, mask, camera) each."""
    out = []
    for yaw in VIEW_YAWS:
        cam = front_camera(s.clothed_vertices, size[0], size[1], yaw_deg=yaw, pitch_deg=VIEW_PITCH_DEG)
        rgb, mask = render_subject(s.clothed_vertices, s.clothed_faces, s.clothed_colors, cam)
        out.append((rgb, mask, cam))
    return out


#: Whether the subjects' random standing poses are balanced (:func:`balanced_pose`); ``--balanced``.
BALANCED = False


def balanced_pose(bm: Any, pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """``pose`` (55, 3) with its global orientation turned so that the posed body's centre (the mean of its
    vertices) stands straight above the midpoint of its ankles: a person standing in balance. The random standing
    poses flex both hips alike, so the whole body leans up to 7° (wave 17), which no standing person does."""
    from icon_engine.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    verts, joints = pose_body(bm, pose, betas)
    d = verts.mean(axis=0) - 0.5 * (joints[L_ANKLE] + joints[R_ANKLE])
    d /= np.linalg.norm(d)
    axis = np.cross(d, [0.0, 1.0, 0.0])
    angle = float(np.arctan2(np.linalg.norm(axis), d[1]))
    if angle < 1e-9:
        return pose
    out = np.asarray(pose, dtype=np.float64).copy()
    tilt = axis_angle_to_matrix(axis / np.linalg.norm(axis) * angle)
    out[0] = matrix_to_axis_angle(tilt @ axis_angle_to_matrix(out[0]))
    return out


#: Whether the subjects stand naturally (:func:`natural_stance`); ``--natural``.
NATURAL = False


def natural_stance(pose: np.ndarray) -> np.ndarray:
    """``pose`` (55, 3) standing as people stand: the two hips' common flexion removed (a step forward stays a
    step: each thigh keeps its difference from the other) and the knees bent half as much; the pelvis stays
    upright. The random standing poses flex both hips by up to 15° each (a half squat), and balanced
    (:func:`balanced_pose`) they tilt the pelvis by 2–15° instead."""
    out = np.asarray(pose, dtype=np.float64).copy()
    common = 0.5 * (out[L_HIP, 0] + out[R_HIP, 0])
    out[[L_HIP, R_HIP], 0] -= common
    out[[L_KNEE, R_KNEE], 0] *= 0.5
    return out


def subject_in_poses(bm: Any, index: int, seed: int, size: tuple[int, int], kind: str) -> list[SyntheticSubject]:
    """The subject (one shape and outfit) in its own random standing pose, then in :data:`OTHER_POSES` others
    (each rendered from the front); with :data:`NATURAL` each stands naturally (:func:`natural_stance`), with
    :data:`BALANCED` each is balanced (:func:`balanced_pose`)."""
    from synthetic import random_betas, random_pose

    rng = np.random.default_rng([seed, index])
    betas = random_betas(rng, int(getattr(bm, "num_betas", 10)))  # make_subject's draws before the pose
    poses = [random_pose(rng)] + [random_pose(np.random.default_rng([seed, index, k])) for k in range(OTHER_POSES)]
    if NATURAL:
        poses = [natural_stance(p) for p in poses]
    if BALANCED:
        poses = [balanced_pose(bm, p, betas) for p in poses]
    return [make_subject(bm, index, seed=seed, size=size, kind=kind, pose=p) for p in poses]


def view_index(label: str) -> int:
    """The view of a bench photo from its label (``<subject>_view<k>.png`` → k; −1 for another name)."""
    stem = label.rsplit(".", 1)[0]
    head, sep, tail = stem.rpartition("_view")
    return int(tail) if sep and tail.isdigit() else -1


def colour_error(rgb: np.ndarray, covered: np.ndarray, truth_rgb: np.ndarray,
                 truth_mask: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(raw, after one gain per channel, per-pixel error (H, W) after the gain — 0 off the scored pixels —, the
    gain (3,)): mean
    absolute colour error (0–255, RGB mean) of a render ``rgb`` (H, W, 3) float with its ``covered`` (H, W) pixels
    against ``truth_rgb`` (H, W, 3), over the pixels both cover (``truth_mask`` eroded by 2 px: outline pixels mix
    in the background). The gain is the least-squares one per channel: the texture takes the first photo's
    exposure, and each photo is lit differently (the bench's renders are lit from their camera), so without it an
    exposure difference reads as a colour error."""
    from scipy import ndimage

    sel = covered & ndimage.binary_erosion(truth_mask, iterations=2)
    per = np.zeros(sel.shape)
    if not sel.any():
        return float("nan"), float("nan"), per, np.ones(3)
    ours, truth = rgb[sel].astype(np.float64), truth_rgb[sel].astype(np.float64)
    gain = (ours * truth).sum(axis=0) / np.maximum((ours * ours).sum(axis=0), 1e-9)
    per[sel] = np.abs(ours * gain - truth).mean(axis=1)
    return float(np.abs(ours - truth).mean()), float(per[sel].mean()), per, gain


def texture_error(bundle_dir: Path, s: SyntheticSubject, gt_camera: Camera, views: list[tuple[np.ndarray, np.ndarray,
                  Camera]], dz: float) -> dict[str, float]:
    """Colour error (:func:`colour_error`: raw ``tex_<view>``, after one gain per channel ``tex_<view>_gain``) of
    the bundle's textured posed mesh rendered in the front (0°) and back (180°) ground-truth views against those
    renders; and, for the photos of the set that are those views, the same error (after the gain:
    ``tex_<view>_own``, raw ``tex_<view>_own_raw``) of the avatar posed and seen as that photo's own fit sees it,
    against that photo: the texture without the first fit's misplacement of the avatar's back."""
    from PIL import Image

    from icon_engine.bundle import read_bundle
    from icon_engine.texture import render_textured

    b = read_bundle(bundle_dir)
    path = b.file("texture")
    if path is None or b.posed_mesh.uv is None:
        return {}
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    cam = Camera(np.asarray(b.meta["camera"]["K"]), np.asarray(b.meta["camera"]["R"]),
                 np.asarray(b.meta["camera"]["t"]), int(b.meta["camera"]["width"]), int(b.meta["camera"]["height"]))
    v = to_gt_world(b.posed_mesh.vertices, cam, gt_camera, dz)
    out = {}
    for name, k in (("front", 0), ("back", 2)):
        rgb_gt, mask_gt, cam_k = views[k]
        rgb, covered = render_textured(v, b.posed_mesh.faces, b.posed_mesh.uv, image, cam_k)
        out[f"tex_{name}"], out[f"tex_{name}_gain"], _, _ = colour_error(rgb, covered, rgb_gt, mask_gt)
    out["tex_back_vs_front"] = out["tex_back_gain"] / max(out["tex_front_gain"], 1e-9)
    # through the photos' own fits: the avatar posed and seen as in the front photo and in the back photo (when the
    # set has it), against those photos — the texture's error without the fit's misplacement of the geometry
    from icon_engine.bundle import skin_vertices
    from icon_engine.rig import pose_relative_to_rest, rest_pose_angles

    rest_angles = rest_pose_angles(b.meta.get("rig", {}).get("rest_pose", "T"))
    for view in b.views:
        k = view_index(view.label)
        if view.status != "used" or k not in (0, 2):
            continue
        pose = pose_relative_to_rest(view.full_pose, rest_angles)
        vk = skin_vertices(b.rest_mesh.vertices, b.skin_weights, b.rest_joints, b.parents, pose, view.transl)
        rgb, covered = render_textured(vk, b.posed_mesh.faces, b.posed_mesh.uv, image,
                                       Camera(view.K, view.R, view.t, *view.image_size))
        rgb_gt, mask_gt, _ = views[k]
        name = "front" if k == 0 else "back"
        out[f"tex_{name}_own_raw"], out[f"tex_{name}_own"], _, _ = colour_error(rgb, covered, rgb_gt, mask_gt)
    return out


@dataclass
class _TrueFit:
    """The ground-truth body of one photo in the shape of a fit (what the surface and the avatar read)."""

    vertices: np.ndarray
    faces: np.ndarray
    camera: Camera
    joints: np.ndarray
    betas: np.ndarray
    full_pose: np.ndarray
    transl: np.ndarray


def oracle(bm: Any, photos: list[tuple[SyntheticSubject, np.ndarray, Camera]], quality: str, s: SyntheticSubject,
           gq: MeshQuery, samples: int) -> dict[str, float]:
    """Fusion with perfect registration: every photo's surface built on its ground-truth body, pose and camera
    (``photos``: (subject as posed in that photo, its mask, its camera)), fused and posed into the first photo,
    scored in the ground-truth world (no alignment). What the fusion gives when the fit is exact."""
    from fidelity import _Obs, _Photo

    from icon_engine.avatar import build_fused_avatar
    from icon_engine.surface import QUALITY_PRESETS, build_surface, silhouette_iou

    t0, c0 = time.perf_counter(), time.process_time()
    fits, surfaces, masks = [], [], []
    for sub, mask, cam in photos:
        fit = _TrueFit(sub.body_vertices, sub.body_faces, cam, sub.joints, sub.betas, sub.full_pose, sub.offset)
        rgb = render_subject(sub.clothed_vertices, sub.clothed_faces, sub.clothed_colors, cam)[0]
        surfaces.append(build_surface(fit, _Obs(mask), _Photo(rgb), quality))
        fits.append(fit)
        masks.append(mask)
    preset = QUALITY_PRESETS[quality]
    av = build_fused_avatar([x.vertices for x in surfaces], [x.faces for x in surfaces], fits, bm,
                            resolution=preset.resolution, levels=preset.levels, smooth=preset.smooth,
                            cameras=[f.camera for f in fits], mask=masks[0], masks=masks)
    s_view = SyntheticSubject(**{**s.__dict__, "camera": photos[0][2], "mask": masks[0]})
    iou = silhouette_iou(av.posed_vertices, av.faces, photos[0][2], masks[0])
    out = metrics(av.posed_vertices, av.faces, s_view, gq, samples, iou)
    out.update(seconds=time.perf_counter() - t0, cpu_s=time.process_time() - c0)
    return out


def score(bundle_dir: Path, s: SyntheticSubject, gt_camera: Camera, gt_mask: np.ndarray, gq: MeshQuery,
          samples: int, views: list[tuple[np.ndarray, np.ndarray, Camera]] | None = None) -> dict[str, float]:
    """The bundle's posed mesh against ``s``'s ground truth, aligned through the first photo's camera (and its
    depth to the ground truth's); also scale-aligned (``fidelity.scale_aligned``, the shared set's score_scale
    protocol: photos without a known distance cannot know the scale); with the ground truth's ``views`` also the
    texture's colour error (:func:`texture_error`)."""
    from icon_engine.bundle import read_bundle
    from icon_engine.surface import silhouette_iou

    b = read_bundle(bundle_dir)
    cam = Camera(np.asarray(b.meta["camera"]["K"]), np.asarray(b.meta["camera"]["R"]),
                 np.asarray(b.meta["camera"]["t"]), int(b.meta["camera"]["width"]), int(b.meta["camera"]["height"]))
    body_v = b.body_mesh.vertices
    dz = float(gt_camera.to_camera(s.body_vertices)[:, 2].mean() - cam.to_camera(body_v)[:, 2].mean())
    v = to_gt_world(b.posed_mesh.vertices, cam, gt_camera, dz)
    s_view = SyntheticSubject(**{**s.__dict__, "camera": gt_camera, "mask": gt_mask})
    iou = silhouette_iou(b.posed_mesh.vertices, b.posed_mesh.faces, cam, gt_mask)
    out = metrics(v, b.posed_mesh.faces, s_view, gq, samples, iou)
    out.update(scale_aligned(b.posed_mesh.vertices, b.posed_mesh.faces, cam, s, gt_camera, gq, samples))
    out["regions"] = region_errors(v, b.posed_mesh.faces, s, gt_camera)
    if views is not None:
        out.update(texture_error(bundle_dir, s, gt_camera, views, dz))
    return out


#: Ground-truth surface samples of the per-region breakdown (:func:`region_errors`).
REGION_SAMPLES = 20_000


@functools.cache
def _body_regions() -> np.ndarray:
    """(V,) region name of every vertex of the body model the subjects are made with."""
    return vertex_regions(np.asarray(load_open_body().lbs_weights))


def region_errors(v: np.ndarray, faces: np.ndarray, s: SyntheticSubject, gt_camera: Camera,
                  samples: int = REGION_SAMPLES) -> dict[str, dict[str, float]]:
    """Where a reconstruction (``v`` (N, 3) in the ground-truth world, ``faces``) misses ``s``'s clothed surface:
    per body region of the nearest ground-truth body vertex (bench/synthetic.py's regions: torso, thigh, shin, foot,
    upper arm, forearm, hand, neck, head), the mean distance (cm) of area-uniform ground-truth samples to the
    reconstruction, split into its component along ``gt_camera``'s viewing axis (depth) and across it (lateral),
    and the region's share of the samples."""
    from scipy.spatial import cKDTree

    gs = sample_surface(s.clothed_vertices, s.clothed_faces, samples, 2)
    region = _body_regions()[cKDTree(s.body_vertices).query(gs)[1]]
    gap = MeshQuery(v, faces).query(gs).closest - gs
    axis = np.asarray(gt_camera.R[2], dtype=np.float64)
    along = gap @ axis
    depth, lateral = np.abs(along), np.linalg.norm(gap - np.outer(along, axis), axis=1)
    dist = np.linalg.norm(gap, axis=1)
    return {str(r): {"cm": 100.0 * float(dist[m].mean()), "depth_cm": 100.0 * float(depth[m].mean()),
                     "lateral_cm": 100.0 * float(lateral[m].mean()), "share": float(m.mean())}
            for r in np.unique(region) for m in [region == r]}


def format_regions(result: dict[str, Any]) -> str:
    """Per region and photo set, the mean ground-truth-to-reconstruction distance (cm, depth / lateral) over the
    subjects (:func:`region_errors`)."""
    sets = [name for name in result["summary"] if all("regions" in r.get(name, {}) for r in result["rows"])]
    if not sets:
        return ""
    regions = sorted({k for r in result["rows"] for k in r[sets[0]]["regions"]})
    lines = ["| region | share | " + " | ".join(f"{name}: cm (depth / lateral)" for name in sets) + " |",
             "|---" * (len(sets) + 2) + "|"]
    for reg in regions:
        cells = []
        for name in sets:
            vals = [r[name]["regions"][reg] for r in result["rows"] if reg in r[name]["regions"]]
            cells.append(f"{np.mean([x['cm'] for x in vals]):.2f} ({np.mean([x['depth_cm'] for x in vals]):.2f} / "
                         f"{np.mean([x['lateral_cm'] for x in vals]):.2f})")
        share = np.mean([r[sets[0]]["regions"][reg]["share"] for r in result["rows"] if reg in r[sets[0]]["regions"]])
        lines.append(f"| {reg} | {share:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextmanager
def _first_surface_only() -> Iterator[None]:
    """Within the block the subject's avatar is built from its first photo's surface alone (on the joint fit's
    body): what the joint fit alone does to the first photo, without the fusion."""
    import icon_engine.pipeline as pipeline

    build = pipeline.build_canonical_avatar

    def first_only(surfaces: list[Any], fits: list[Any], masks: list[np.ndarray], *args: Any) -> Any:
        return build(surfaces[:1], fits[:1], masks[:1], *args)

    pipeline.build_canonical_avatar = first_only
    try:
        yield
    finally:
        pipeline.build_canonical_avatar = build


def run(count: int, quality: str, samples: int, size: tuple[int, int], log: Any = print,
        sets: tuple[str, ...] = tuple(SETS), keep: Path | None = None, with_oracle: bool = False,
        first_only: bool = False, exif_focal: bool = False, subjects: list[int] | None = None) -> dict[str, Any]:
    """Reconstruct and score the first ``count`` subjects (or the bench's subjects numbered ``subjects``) for
    ``sets``; returns the per-subject rows and their means (``summary``)."""
    from PIL import Image

    from icon_engine.options import ReconstructOptions
    from icon_engine.subject import reconstruct_subject

    bm = load_open_body()
    rows = []
    options = ReconstructOptions(quality=quality)
    for i in range(count) if subjects is None else subjects:
        posed = subject_in_poses(bm, i, 11, size, ("loose", "tight", "skirt", "coat")[i % 4])
        s = posed[0]
        gq = MeshQuery(s.clothed_vertices, s.clothed_faces, k=2)
        views = render_views(s, size)
        row: dict[str, Any] = {"subject": s.name}
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            images = [rgb for rgb, _, _ in views] + [o.rgb for o in posed[1:]]
            focals = [c.K[0, 0] for _, _, c in views] + [o.camera.K[0, 0] for o in posed[1:]]
            for k, (rgb, focal) in enumerate(zip(images, focals, strict=True)):
                path = Path(tmp) / f"{s.name}_view{k}.png"
                if exif_focal:  # as a phone's photos: the focal in the EXIF (35 mm equivalent, whole mm)
                    raw = Path(tmp) / "raw.png"
                    Image.fromarray(rgb).save(raw)
                    write_exif_focal(raw, path, float(focal))
                else:
                    Image.fromarray(rgb).save(path)
                paths.append(path)
            for name in sets:
                idx = SETS[name]
                t0, c0 = time.perf_counter(), time.process_time()
                where = (keep / s.name if keep is not None else Path(tmp)) / name.replace(" ", "_").replace("+", "_")
                out = reconstruct_subject([paths[k] for k in idx], where, options, body_model=bm,
                                          bundle_name="avatar")
                # the reconstruction's own time (issue 13's target), not the bench's scoring after it
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                row[name] = score(out, s, views[0][2], views[0][1], gq, samples, views)
                row[name].update(seconds=wall, cpu_s=cpu, scored_s=time.perf_counter() - t0)
                log(f"{s.name:22s} {name:11s} chamfer {row[name]['chamfer_cm']:.2f} cm  p2s "
                    f"{row[name]['p2s_cm']:.2f}  iou {row[name]['iou']:.3f}  tex front/back "
                    f"{row[name].get('tex_front_gain', np.nan):.1f}/{row[name].get('tex_back_gain', np.nan):.1f}  "
                    f"{row[name]['seconds']:.0f} s  cpu {row[name]['cpu_s']:.0f} s  "
                    f"(scored {row[name]['scored_s']:.0f} s)")
                if first_only and len(idx) > 1:  # the set's joint fit, the first photo's surface alone
                    key = f"{name}, first only"
                    with _first_surface_only():
                        out = reconstruct_subject([paths[k] for k in idx], Path(tmp) / "first_only", options,
                                                  body_model=bm, bundle_name="avatar")
                    row[key] = score(out, s, views[0][2], views[0][1], gq, samples)
                    log(f"{s.name:22s} {key:11s} chamfer {row[key]['chamfer_cm']:.2f} cm")
            if with_oracle:  # the same sets on ground-truth bodies and cameras
                photos = [(s, m, c) for _, m, c in views] + [(o, o.mask, o.camera) for o in posed[1:]]
                for name in sets:
                    row[f"oracle {name}"] = oracle(bm, [photos[k] for k in SETS[name]], quality, s, gq, samples)
                    log(f"{s.name:22s} oracle {name:11s} chamfer {row[f'oracle {name}']['chamfer_cm']:.2f} cm  iou "
                        f"{row[f'oracle {name}']['iou']:.3f}")
        rows.append(row)
    if first_only:
        sets = tuple(sets) + tuple(f"{name}, first only" for name in sets if len(SETS[name]) > 1)
    if with_oracle:
        sets = tuple(sets) + tuple(f"oracle {name}" for name in sets if name in SETS)
    summary = {name: {m: float(np.mean([r[name].get(m, np.nan) for r in rows]))
                      for m in ("chamfer_cm", "p2s_cm", "chamfer_scaled_cm", "scale", "normal", "iou", "tex_front",
                                "tex_back", "tex_front_gain", "tex_back_gain", "tex_front_own", "tex_back_own",
                                "tex_front_own_raw", "tex_back_own_raw", "seconds", "cpu_s")}
               for name in sets}
    for name in sets:
        summary[name]["tex_back_vs_front"] = summary[name]["tex_back_gain"] / summary[name]["tex_front_gain"]
        summary[name]["seconds_max"] = float(np.max([r[name].get("seconds", np.nan) for r in rows]))
    base = summary["front"]["chamfer_cm"] if "front" in summary else float("nan")
    for name in sets:
        ref = summary.get("oracle front", {}).get("chamfer_cm", base) if name.startswith("oracle") else base
        summary[name]["vs_front"] = summary[name]["chamfer_cm"] / ref - 1.0
        if not name.startswith("oracle") and "front" in summary:
            summary[name]["scaled_vs_front"] = (summary[name]["chamfer_scaled_cm"]
                                                / summary["front"]["chamfer_scaled_cm"] - 1.0)
            summary[name]["abs_scale_err"] = float(np.mean([abs(r[name]["scale"] - 1.0) for r in rows]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"rows": rows, "summary": summary, "quality": quality, "count": count, "peak_rss_mb": peak_mb}


def format_table(result: dict[str, Any]) -> str:
    lines = ["| photos | Chamfer (cm) | vs front | scale-aligned (cm) | vs front | \\|s − 1\\| | P2S (cm) | normal "
             "| IoU | colour front | colour back | back/front | own fits: front, back "
             "| reconstruction wall (s), mean (max) | CPU (s) |",
             "|---" * 15 + "|"]
    for name, m in result["summary"].items():
        own = (f"{m['tex_front_own']:.1f} ({m['tex_front_own_raw']:.1f}), {m['tex_back_own']:.1f} "
               f"({m['tex_back_own_raw']:.1f})" if np.isfinite(m["tex_back_own"]) else "–")
        scaled = (f"{m['chamfer_scaled_cm']:.2f} | {100 * m['scaled_vs_front']:+.0f} % | {m['abs_scale_err']:.3f}"
                  if "scaled_vs_front" in m else "– | – | –")
        lines.append(f"| {name} | {m['chamfer_cm']:.2f} | {100 * m['vs_front']:+.0f} % | {scaled} | "
                     f"{m['p2s_cm']:.2f} | {m['normal']:.3f} | {m['iou']:.3f} | "
                     f"{m['tex_front_gain']:.1f} ({m['tex_front']:.1f}) | "
                     f"{m['tex_back_gain']:.1f} ({m['tex_back']:.1f}) | {m['tex_back_vs_front']:.2f} | {own} | "
                     f"{m['seconds']:.0f} ({m['seconds_max']:.0f}) | {m['cpu_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    global VIEW_PITCH_DEG, BALANCED, NATURAL
    ap = argparse.ArgumentParser(description="Multi-photo avatar fidelity on synthetic subjects")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--subjects", type=int, nargs="+", help="only these subjects (0-based; instead of --count)")
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--sets", nargs="+", choices=tuple(SETS), default=list(SETS))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="keep the bundles under this folder (to look at them)")
    ap.add_argument("--oracle", action="store_true",
                    help="also fuse the ground-truth bodies and cameras (what perfect registration would give)")
    ap.add_argument("--first-only", action="store_true",
                    help="also build each several-photo set's avatar from its first photo's surface alone (on the "
                         "joint fit's body): the joint fit's effect without the fusion")
    ap.add_argument("--regions", action="store_true",
                    help="also print, per body region, how far the ground truth lies from each set's avatar (depth / "
                         "lateral to the first camera)")
    ap.add_argument("--gravity", action="store_true",
                    help="a turnaround's photos share one body orientation under turned cameras (joint_fit.GravityRig)")
    ap.add_argument("--free-heights", action="store_true",
                    help="with --gravity: each camera keeps its own height above the floor (joint_fit.W_HEIGHT_AGREE)")
    ap.add_argument("--free-turns", action="store_true",
                    help="a turnaround in quarter turns keeps free camera turns (joint_fit.QUARTER_TURNS off)")
    ap.add_argument("--balanced", action="store_true",
                    help="balance each subject's random standing pose (its centre above its ankles; they lean up "
                         "to 7° otherwise)")
    ap.add_argument("--natural", action="store_true",
                    help="stand each subject naturally (hips' common flexion removed: a step stays a step; the "
                         "knees bent half as much, the pelvis upright)")
    ap.add_argument("--camera-pitch", type=float, default=VIEW_PITCH_DEG,
                    help="the views' cameras look down at the body's centre by this many degrees (3: hip height; "
                         "8: chest height, as the fit's camera-height prior assumes)")
    ap.add_argument("--exif-focal", action="store_true",
                    help="write each render's true focal into its EXIF, as a phone's photos carry it (without it the "
                         "fit takes the framing prior's focal, 10-16 %% off on these renders)")
    ap.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                    help="set constants for the run (bench/lib/constants.py; joint_fit's by default: "
                         "BACK_VIEW_WEIGHT=0.5, avatar.FIRST_PHOTO_WEIGHT=8, preset.preview.fit.pose_iters=60)")
    args = ap.parse_args(argv)
    from bench.lib.constants import set_constants

    for line in set_constants(args.set, ("joint_fit",)):
        print(f"set {line}", flush=True)
    if args.free_turns:
        import icon_engine.joint_fit as joint_fit

        joint_fit.QUARTER_TURNS = False
    if args.gravity:
        import icon_engine.joint_fit as joint_fit

        joint_fit.SHARED_GRAVITY = True
        if args.free_heights:
            joint_fit.W_HEIGHT_AGREE = 0.0
    VIEW_PITCH_DEG = args.camera_pitch
    BALANCED = args.balanced
    NATURAL = args.natural
    result = run(args.count, args.quality, args.samples, (448, 640), sets=tuple(args.sets), keep=args.keep,
                 with_oracle=args.oracle, first_only=args.first_only, exif_focal=args.exif_focal,
                 subjects=args.subjects)
    print(format_table(result))
    if args.regions:
        print("\n" + format_regions(result))
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
