"""Benchmark of the body fit (icon_engine.fit).

Synthetic: the open body in named poses × views (front, side, back three-quarter, …) with random shapes and
known cameras, observed through the same landmark mapping the fit uses (exact 2D landmarks, noisy 3D world
landmarks, rendered mask); optionally real BlazePose on photo-like renders of the same cases (--mediapipe:
icon_engine.sample's clothes, hair, painted face and background; with --grey: plain grey bodies). Reports MPJPE
and PA-MPJPE (mm, 22 body joints), 2D joint error (px in a 512 px crop), silhouette IoU and time per fit.

Real photos (../shared/images/dev when present): detection rate, IoU of the fitted body against the person
mask, keypoint error and time per photo.

    .venv/bin/python bench/fit.py                 # 40 synthetic cases + real photos, standard preset
    .venv/bin/python bench/fit.py --cases 10 --quality preview --no-photos
    .venv/bin/python bench/fit.py --overlays /tmp/fit_overlays
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lib.fit_cases import (  # noqa: E402
    POSE_NAMES,
    camera_for_body,
    facing_camera,
    joint_errors,
    make_case,
    named_pose,
    pose_body,
)
from icon_engine.fit import fit_body  # noqa: E402
from icon_engine.fit.silhouette import body_silhouette  # noqa: E402
from icon_engine.geometry.image_shift import mask_iou as iou  # noqa: E402

#: Views: (name, yaw degrees from the body's front, pitch degrees).
VIEWS = (("front", 0.0, 5.0), ("front_left", 30.0, 10.0), ("side", 90.0, 0.0), ("back_3q", 145.0, 5.0),
         ("front_right", -35.0, -5.0), ("back", 180.0, 10.0), ("side_left", -90.0, 5.0), ("high", 15.0, 35.0))


def synthetic_cases(n: int, seed: int = 7) -> list[dict]:
    """``n`` (pose, view, betas) combinations cycling poses and views."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pose_name = POSE_NAMES[i % len(POSE_NAMES)]
        view = VIEWS[(i * 3 + i // len(POSE_NAMES)) % len(VIEWS)]
        pose = named_pose(pose_name)
        pose[0] = (0.0, rng.uniform(-0.3, 0.3), 0.0)  # a little turn of the whole body
        pose[1:22] += rng.normal(0.0, 0.05, (21, 3))  # jitter
        out.append({"pose_name": pose_name, "view": view, "pose": pose, "betas": rng.normal(0.0, 0.8, 10)})
    return out


def run_synthetic(body, n: int, quality: str, use_mediapipe: bool, overlays: Path | None,
                  grey: bool = False) -> list[dict]:
    rows = []
    for i, spec in enumerate(synthetic_cases(n)):
        verts = pose_body(body, spec["pose"], spec["betas"])[0].vertices[0].numpy()
        name, yaw, pitch = spec["view"]
        cam = camera_for_body(verts, yaw, pitch, 512, 640, fill=0.85)
        case = make_case(body, spec["pose"], spec["betas"], cam, world_noise=0.03, seed=i)
        obs = case.observation
        if use_mediapipe:
            obs = _mediapipe_observation(body, case, grey)
            if obs is None:
                rows.append({"case": i, "pose": spec["pose_name"], "view": name, "detected": False})
                continue
        t0 = time.perf_counter()
        fit = fit_body(obs, body, case.photo, quality=quality)
        elapsed = time.perf_counter() - t0
        err = joint_errors(fit.joints, fit.camera, case.joints, case.camera)
        px_fit = fit.camera.project(fit.joints[:22])[0]
        px_gt = case.camera.project(case.joints[:22])[0]
        crop_scale = float(case.observation.crop_matrix[0, 0])  # crop px per processing px (512 crop)
        sil = body_silhouette(fit.camera.to_camera(fit.vertices), fit.faces, cam.K, cam.width, cam.height)
        row = {"case": i, "pose": spec["pose_name"], "view": name, "detected": True, **err,
               "kp2d_px512": float(np.linalg.norm(px_fit - px_gt, axis=1).mean() * crop_scale),
               "iou": iou(sil, case.observation.mask), "time_s": elapsed, "cpu_s": fit.metrics["cpu_s"],
               "faces_camera_ok": facing_camera(fit.full_pose, fit.camera) == facing_camera(case.full_pose, cam)}
        if use_mediapipe:  # how well the detector's person mask matches the body's silhouette (an IoU ceiling)
            row["detector_mask_iou"] = iou(np.asarray(obs.mask, bool), case.observation.mask)
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        if overlays is not None:
            base = case.photo.rgb if use_mediapipe else case.photo.rgb * 0 + 40
            _overlay(overlays / f"synthetic_{i:02d}_{spec['pose_name']}_{name}.png", base, fit,
                     None if use_mediapipe else case.observation.mask)
    return rows


def _mediapipe_observation(body, case, grey: bool = False):
    """Run the real detector on a render of the case: by default photo-like (``icon_engine.sample``'s look:
    clothes by region, hair, shoes, a painted face where it is in view, floor shadow, wall-and-floor background),
    with ``grey`` a plain shaded body on a mid-grey background (the earlier protocol)."""
    from icon_engine.person import detect_person

    if grey:
        from icon_engine.render import render_shaded

        rgb, mask = render_shaded(case.camera.to_camera(case.vertices), body.faces, case.camera.K,
                                  case.camera.width, case.camera.height, colors=(0.8, 0.65, 0.55))
        img = np.where(mask[..., None], rgb, 0.45)
        case.photo.rgb = np.clip(img * 255, 0, 255).astype(np.uint8)
    else:
        case.photo.rgb = _dressed_render(body, case)
    try:
        return detect_person(_PhotoLike(case.photo.rgb))
    except Exception as exc:  # no person found on the render
        print(f"  detection failed: {exc}", flush=True)
        return None


def _dressed_render(body, case) -> np.ndarray:
    """The case's body, pose, shape and camera rendered like the sample photo (H, W, 3) uint8. The sample scene
    lives in a world shifted to put the feet on the floor; the case's camera is moved with it."""
    from dataclasses import replace

    from icon_engine.camera import Camera
    from icon_engine.sample import build_scene, render_sample

    scene = build_scene(body, case.full_pose, case.betas)
    shift = (scene.vertices - case.vertices).mean(axis=0)  # scene world = case world + shift
    cam = case.camera
    moved = Camera(cam.K, cam.R, cam.t - cam.R @ shift, cam.width, cam.height)
    return render_sample(replace(scene, camera=moved), occlude_face=True)


class _PhotoLike:
    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.alpha = None
        self.scale = 1.0
        self.original_size = (rgb.shape[1], rgb.shape[0])
        self.path = Path("render.png")
        self.data = b""

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def calibrate(body, n: int, seed: int = 0, grey: bool = False) -> dict[str, list[float]]:
    """Where BlazePose puts hips, shoulders and other landmarks relative to the body's joints: BlazePose on ``n``
    shaded renders (near-front views, assorted poses and shapes); offsets back-projected at the joint's depth,
    in the pelvis (hips, legs, arms), spine3 (shoulders) or wrist (index, pinky: from the index1 / pinky1 knuckle
    joints; in the rest pose the left hand points along +x) frame, right side mirrored. Returns mean offsets (cm)."""
    from icon_engine.bundle.skeleton import PARENTS, forward_kinematics
    from icon_engine.fit.landmarks import BP

    rng = np.random.default_rng(seed)
    names = ("standing", "walking", "arms_raised", "hands_on_hips", "t_pose", "reaching", "one_leg", "sitting")
    probes = (("left_hip", 1, 0), ("right_hip", 2, 0), ("left_shoulder", 16, 9), ("right_shoulder", 17, 9),
              ("left_knee", 4, 0), ("left_ankle", 7, 0), ("left_elbow", 18, 0), ("left_wrist", 20, 0),
              ("left_index", 25, 20), ("right_index", 40, 21), ("left_pinky", 31, 20), ("right_pinky", 46, 21))
    found: dict[str, list[np.ndarray]] = {}
    for i in range(n):
        pose = named_pose(names[i % len(names)])
        pose[0] = (0.0, rng.uniform(-0.5, 0.5), 0.0)
        betas = rng.normal(0.0, 0.8, 10)
        verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
        cam = camera_for_body(verts, rng.uniform(-20, 20), 5.0, 512, 640, 0.85)
        case = make_case(body, pose, betas, cam)
        obs = _mediapipe_observation(body, case, grey)
        if obs is None:
            continue
        rots, _ = forward_kinematics(case.joints, np.asarray(PARENTS), pose)
        for name, joint, frame in probes:
            jc = cam.to_camera(case.joints[joint : joint + 1])[0]
            u, v, _ = obs.keypoints[BP[name]]
            seen = np.array([(u - cam.K[0, 2]) / cam.K[0, 0] * jc[2], (v - cam.K[1, 2]) / cam.K[1, 1] * jc[2], jc[2]])
            local = rots[frame].T @ (cam.R.T @ (seen - jc))
            if name.startswith("right"):
                local[0] = -local[0]
            found.setdefault(name, []).append(local)
    out = {k: [round(float(x), 1) for x in np.mean(v, 0) * 100] for k, v in found.items()}
    print("BlazePose landmark − body point (cm, x body-left/inward<0, y up):", json.dumps(out))
    return out


def run_photos(body, quality: str, overlays: Path | None) -> list[dict]:
    from icon_engine.image_io import load_photo
    from icon_engine.person import detect_person

    folder = ROOT.parent / "shared" / "images" / "dev"
    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    rows = []
    for path in photos:
        photo = load_photo(path)
        try:
            obs = detect_person(photo)
        except Exception as exc:
            rows.append({"photo": path.name, "detected": False, "error": str(exc)})
            continue
        t0 = time.perf_counter()
        fit = fit_body(obs, body, photo, quality=quality)
        elapsed = time.perf_counter() - t0
        row = {"photo": path.name, "detected": True, "iou": fit.metrics["silhouette_iou"],
               "keypoint_error_px": fit.metrics["keypoint_error_px"], "time_s": elapsed, "cpu_s": fit.metrics["cpu_s"],
               "faces_camera": fit.metrics["faces_camera"], "warnings": fit.warnings}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if overlays is not None:
            _overlay(overlays / f"photo_{path.stem[:20]}.png", photo.rgb, fit, None)
    return rows


def _overlay(path: Path, rgb: np.ndarray, fit, mask: np.ndarray | None) -> None:
    from icon_engine.preview import make_preview, save_png

    base = np.asarray(rgb, dtype=np.uint8).copy()
    if mask is not None:
        base[mask] = (110, 140, 110)
    save_png(path, make_preview(base, fit.vertices, fit.faces, fit.camera))


def summarise(rows: list[dict], keys: tuple[str, ...]) -> dict:
    ok = [r for r in rows if r.get("detected")]
    out = {"count": len(rows), "detected": len(ok)}
    for k in keys:
        vals = np.array([r[k] for r in ok if k in r], dtype=float)
        if len(vals):
            out[k] = {"mean": round(float(vals.mean()), 3), "median": round(float(np.median(vals)), 3),
                      "max": round(float(vals.max()), 3), "min": round(float(vals.min()), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--quality", default="standard", choices=("preview", "standard", "high"))
    ap.add_argument("--mediapipe", action="store_true", help="detect landmarks with BlazePose on photo-like renders")
    ap.add_argument("--grey", action="store_true", help="with --mediapipe/--calibrate: plain grey renders instead")
    ap.add_argument("--no-photos", action="store_true")
    ap.add_argument("--overlays", type=Path, default=None, help="write overlay PNGs here")
    ap.add_argument("--json", type=Path, default=None, help="write all rows and summaries here")
    ap.add_argument("--calibrate", type=int, default=0, help="measure BlazePose's landmark offsets on N renders")
    args = ap.parse_args()

    from icon_engine.body_model import load_body_model

    body = load_body_model()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}")
    report: dict = {"quality": args.quality}
    if args.calibrate:
        report["calibration_cm"] = calibrate(body, args.calibrate, grey=args.grey)
    if args.cases:
        rows = run_synthetic(body, args.cases, args.quality, args.mediapipe, args.overlays, args.grey)
        report["synthetic"] = rows
        report["synthetic_summary"] = summarise(rows, ("mpjpe_mm", "pa_mpjpe_mm", "kp2d_px512", "iou", "time_s",
                                                                 "cpu_s", "detector_mask_iou"))
        by_view: dict[str, list] = {}
        for r in rows:
            by_view.setdefault(r["view"], []).append(r)
        report["synthetic_by_view"] = {k: summarise(v, ("pa_mpjpe_mm", "iou")) for k, v in by_view.items()}
        report["facing_correct"] = sum(r.get("faces_camera_ok", False) for r in rows)
        print("synthetic:", json.dumps(report["synthetic_summary"]))
        print("by view:", json.dumps(report["synthetic_by_view"]))
        print("facing correct:", report["facing_correct"], "of", len(rows))
    if not args.no_photos:
        rows = run_photos(body, args.quality, args.overlays)
        report["photos"] = rows
        report["photos_summary"] = summarise(rows, ("iou", "keypoint_error_px", "time_s", "cpu_s"))
        print("photos:", json.dumps(report["photos_summary"]))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
