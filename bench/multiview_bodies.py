"""The photos' fitted bodies against the truth, for joint-fit variants on cached own fits (issue 13).

Renders bench/multiview.py's subjects from its 4 views (0°, 90°, 180°, 270°), detects and fits every photo on its
own once (cached under ``--cache``: our own bench data, pickled), then runs :func:`icon_engine.joint_fit.
shared_pose_fit` variants on those fits and reports, per photo, the mean per-vertex distance of its fitted body to
the true one (cm, after the depth alignment along that photo's camera axis) and its pelvis orientation error in
that camera's frame, split into pitch (about the camera's x axis, + = top towards the camera) and yaw (about the
vertical, degrees).

Usage: ``python bench/multiview_bodies.py --count 2 --quality preview --sets "4 views" "front+back"``;
``--count 3 --side-figure out.png`` draws the first photos' bodies from the side (truth, free orientations, the
default quarter-turn rig) instead.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from multiview import SETS, render_views, subject_in_poses  # noqa: E402
from synthetic import load_open_body  # noqa: E402

from icon_engine.bundle.skeleton import axis_angle_to_matrix  # noqa: E402

#: Joint-fit variants: keyword arguments of shared_pose_fit ("_module": joint_fit constants set for the run). The
#: wave-5 rig variants keep free camera turns and no re-registration of the first photo, as they were measured.
_WAVE5 = {"quarter_turns": False, "_module": {"REFINE_FIRST_ITERS": 0}}
VARIANTS: dict[str, dict[str, Any]] = {
    "own fits": {},
    "free orientations": {"gravity": False},
    "shared gravity": {**_WAVE5, "gravity": True, "height_agree": 0.0},
    "gravity, heights 100": {**_WAVE5, "gravity": True, "height_agree": 100.0},
    "gravity, one height": {**_WAVE5, "gravity": True, "height_agree": math.inf},
    "one height, turns 1": {**_WAVE5, "gravity": True, "height_agree": math.inf, "turn_prior": 1.0},
    "one height, turns 5": {**_WAVE5, "gravity": True, "height_agree": math.inf, "turn_prior": 5.0},
    "one height, 80 steps": {**_WAVE5, "gravity": True, "height_agree": math.inf, "iterations": 80},
    "quarter turns, not re-registered": {"quarter_turns": True, "_module": {"REFINE_FIRST_ITERS": 0}},
    "quarter turns, first weighs 3": {"quarter_turns": True, "_module": {"REFINE_FIRST_ITERS": 0,
                                                                         "GRAVITY_FIRST_WEIGHT": 3.0}},
    "quarter turns, 50 steps": {"quarter_turns": True, "iterations": 50, "_module": {"REFINE_FIRST_ITERS": 0}},
    "default": {},  # quarter turns held when found, the first photo re-registered (front + back included)
    "front + back, free turns": {"gravity": True, "require_side": False, **_WAVE5},
    # wave 6b: each rigged photo's say in the shared pose, pitch and height (joint_fit.rig_photo_weights)
    "back view weighs 0.5": {"_module": {"BACK_VIEW_WEIGHT": 0.5}},
    "back view weighs 0.25": {"_module": {"BACK_VIEW_WEIGHT": 0.25}},
    "first not re-registered": {"_module": {"REFINE_FIRST_ITERS": 0}},
    # wave 7: front + back's shared orientation starts at the first photo's (before joint_fit.YAW_VOTE)
    "no yaw vote": {"_module": {"YAW_VOTE": False}},
}


def own_views(bm: Any, index: int, quality: str, size: tuple[int, int], cache: Path
              ) -> tuple[Any, list[Any], list[Any]]:
    """(true subject, its 4 views' (rgb, mask, camera), the subject views with own fits reposed to the median
    shape), cached per subject and quality."""
    from PIL import Image

    from icon_engine.subject import SubjectInput, fit_subject

    posed = subject_in_poses(bm, index, 11, size, ("loose", "tight", "skirt", "coat")[index % 4])
    s = posed[0]
    views = render_views(s, size)
    path = cache / f"{s.name}_{quality}_{size[0]}x{size[1]}.pkl"
    if path.exists():
        with path.open("rb") as f:
            return s, views, pickle.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for k, (rgb, _, _) in enumerate(views):
            p = Path(tmp) / f"{s.name}_view{k}.png"
            Image.fromarray(rgb).save(p)
            inputs.append(SubjectInput(p, p.name, p))
        subject_views, _, _ = fit_subject(inputs, bm, quality=quality, joint=False)
    cache.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(subject_views, f)
    return s, views, subject_views


def orientation_deg(camera_R: np.ndarray, global_orient: np.ndarray) -> tuple[float, float]:
    """(pitch, yaw) of the pelvis in the camera's frame, degrees: pitch the body's up axis towards the camera
    (rotation about the camera's x axis), yaw its forward axis about the camera's vertical (0 = facing it)."""
    rot = camera_R @ axis_angle_to_matrix(np.asarray(global_orient, dtype=np.float64))
    up, fwd = rot[:, 1], rot[:, 2]
    return (math.degrees(math.atan2(-up[2], -up[1])), math.degrees(math.atan2(fwd[0], -fwd[2])))


def body_error(fit: Any, s: Any, camera: Any) -> dict[str, float]:
    """The fitted body against the true one in ``camera``'s frame (the view that photo was rendered from)."""
    a = fit.camera.to_camera(np.asarray(fit.vertices, dtype=np.float64))
    b = camera.to_camera(np.asarray(s.body_vertices, dtype=np.float64))
    a = a + np.array([0.0, 0.0, float(np.mean(b[:, 2] - a[:, 2]))])
    pf, yf = orientation_deg(fit.camera.R, np.asarray(fit.full_pose)[0])
    pt, yt = orientation_deg(camera.R, np.asarray(s.full_pose)[0])
    return {"cm": float(np.linalg.norm(a - b, axis=1).mean() * 100), "pitch": pf - pt,
            "yaw": (yf - yt + 180.0) % 360.0 - 180.0}


def camera_pose(camera: Any, body_vertices: np.ndarray, pelvis: np.ndarray) -> dict[str, float]:
    """Where ``camera`` stands relative to the body in its world (Y up): its pitch (degrees, + looking down), its
    height above the body's lowest vertex and its distance to the pelvis (metres)."""
    view = np.asarray(camera.R, dtype=np.float64)[2]  # the viewing axis in the world
    centre = -np.asarray(camera.R, dtype=np.float64).T @ np.asarray(camera.t, dtype=np.float64)
    return {"pitch": math.degrees(math.asin(float(np.clip(-view[1], -1.0, 1.0)))),
            "height": float(centre[1] - np.min(body_vertices[:, 1])),
            "distance": float(np.linalg.norm(centre - pelvis))}


def split_error(fit: Any, s: Any, camera: Any, seg: np.ndarray) -> dict[str, float]:
    """:func:`body_error` plus where the error comes from, like bench/fit_split.py: the per-vertex error (cm, in
    the photo's camera frame after the depth alignment) after the best similarity of the torso core onto the truth
    (``global``: what the camera, the orientation and the scale fix), then per region after it (arms, legs,
    torso and head), and the fitted camera's pitch (degrees), height above the floor and distance to the pelvis
    (cm) minus the true camera's, each in its own world."""
    from fit_split import CORE, REGIONS, similarity

    out = body_error(fit, s, camera)
    a = fit.camera.to_camera(np.asarray(fit.vertices, dtype=np.float64))
    b = camera.to_camera(np.asarray(s.body_vertices, dtype=np.float64))
    g = similarity(a, b, fit=np.isin(seg, CORE))
    err = np.linalg.norm(g - b, axis=1) * 100.0
    out["global_cm"] = out["cm"] - float(err.mean())  # what the global alignment removed
    out.update({f"{r}_cm": float(err[np.isin(seg, j)].mean()) for r, j in REGIONS.items()})
    ours = camera_pose(fit.camera, np.asarray(fit.vertices, dtype=np.float64), np.asarray(fit.joints)[0])
    truth = camera_pose(camera, np.asarray(s.body_vertices, dtype=np.float64), np.asarray(s.joints)[0])
    out.update(cam_pitch=ours["pitch"] - truth["pitch"], cam_height_cm=100 * (ours["height"] - truth["height"]),
               cam_distance_cm=100 * (ours["distance"] - truth["distance"]))
    return out


def side_figure(bm: Any, count: int, quality: str, size: tuple[int, int], cache: Path, out: Path) -> None:
    """The first photo's body seen from the side of its camera (camera frame: depth z across, -y up, metres;
    orthographic): the truth (black), the wave-5 joint fit (free orientations, blue) and the default (the rig with
    quarter turns held, red), after the depth alignment, one panel per subject; written to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from icon_engine.joint_fit import shared_pose_fit

    fig, axes = plt.subplots(1, count, figsize=(4 * count, 7), squeeze=False)
    for i, ax in enumerate(axes[0]):
        s, views, sv = own_views(bm, i, quality, size, cache)
        cam = views[0][2]
        truth = cam.to_camera(np.asarray(s.body_vertices, dtype=np.float64))
        ax.scatter(truth[::7, 2], -truth[::7, 1], s=1, c="k", label="truth")
        for name, kw, colour in (("free orientations (wave 5)", {"gravity": False}, "tab:blue"),
                                 ("quarter turns (default)", {}, "tab:red")):
            fit = shared_pose_fit([(v.observation, v.photo, v.fit) for v in sv], bm, np.asarray(sv[0].fit.betas),
                                  quality=quality, **kw).fits[0]
            ours = fit.camera.to_camera(np.asarray(fit.vertices, dtype=np.float64))
            ours[:, 2] += float(np.mean(truth[:, 2] - ours[:, 2]))
            e = body_error(fit, s, cam)
            ax.scatter(ours[::7, 2], -ours[::7, 1], s=1, c=colour, alpha=0.5,
                       label=f"{name}: {e['cm']:.2f} cm, pitch {e['pitch']:+.1f}°")
        ax.set_aspect("equal")
        ax.set_title(f"{s.name}: first photo, seen from its side", fontsize=9)
        ax.set_xlabel("depth z (m)")
        ax.legend(fontsize=7, markerscale=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main(argv: list[str] | None = None) -> None:
    import icon_engine.joint_fit as joint_fit
    from icon_engine.joint_fit import shared_pose_fit

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--quality", default="preview")
    ap.add_argument("--sets", nargs="+", default=["4 views", "front+back"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "icon_multiview_bodies")
    ap.add_argument("--side-figure", type=Path, help="only draw the first photos' bodies from the side to this file")
    args = ap.parse_args(argv)
    bm = load_open_body()
    size = (448, 640)
    if args.side_figure:
        side_figure(bm, args.count, args.quality, size, args.cache, args.side_figure)
        return
    from fit_split import segments

    from icon_engine.fit.stature import stature_of

    for i in range(args.count):
        s, views, subject_views = own_views(bm, i, args.quality, size, args.cache)
        betas = np.asarray(subject_views[0].fit.betas)
        seg = segments(bm, len(s.body_vertices))
        true_stature = stature_of(bm, s.betas)
        for name in args.sets:
            idx = [k for k in SETS[name] if k < 4]
            chosen = [subject_views[k] for k in idx]
            for variant in args.variants:
                t0, c0 = time.perf_counter(), time.process_time()
                if variant == "own fits":
                    fits = [v.fit for v in chosen]
                else:
                    kw = dict(VARIANTS[variant])
                    saved = {k: getattr(joint_fit, k) for k in kw.get("_module", {})}
                    for k, v in kw.pop("_module", {}).items():  # module constants the variant sets
                        setattr(joint_fit, k, v)
                    try:
                        result = shared_pose_fit([(v.observation, v.photo, v.fit) for v in chosen], bm, betas,
                                                 quality=args.quality, **kw)
                    finally:
                        for k, v in saved.items():
                            setattr(joint_fit, k, v)
                    fits = result.fits
                errs = [split_error(f, s, views[k][2], seg) for f, k in zip(fits, idx, strict=True)]
                cells = " / ".join(f"{e['cm']:.2f}" for e in errs)
                first = errs[0]
                mean = np.mean([e["cm"] for e in errs])
                print(f"{s.name:10s} {name:10s} {variant:18s} bodies {cells} (mean {mean:.2f})"
                      f"  first: pitch {first['pitch']:+.1f}° yaw {first['yaw']:+.1f}°  others' yaw "
                      + " ".join(f"{e['yaw']:+.1f}" for e in errs[1:])
                      + f"  [{time.perf_counter() - t0:.0f} s, cpu {time.process_time() - c0:.0f} s]", flush=True)
                print(f"   stature {stature_of(bm, fits[0].betas) * 100:.1f} cm (truth {true_stature * 100:.1f}); "
                      "per photo: after global arms/legs/torso cm, global removed cm, pelvis pitch/yaw °, "
                      "camera pitch °/height cm/distance cm errors", flush=True)
                for k, e in zip(idx, errs, strict=True):
                    print(f"   view {k}: {e['arms_cm']:.2f}/{e['legs_cm']:.2f}/{e['torso_head_cm']:.2f}  global "
                          f"{e['global_cm']:.2f}  pelvis {e['pitch']:+.1f}/{e['yaw']:+.1f}  camera "
                          f"{e['cam_pitch']:+.1f}/{e['cam_height_cm']:+.0f}/{e['cam_distance_cm']:+.0f}", flush=True)
                if variant != "own fits":
                    print("   rig:", result.stats.get("shared_gravity"), flush=True)


if __name__ == "__main__":
    main()
