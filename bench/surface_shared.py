"""The clothed surface alone on the shared rendered set (``../shared/bench/synthetic-dev``), oracle and fitted.

Two steps, so that surface changes can be measured without refitting:

- ``prepare``: per subject, detect the person (mediapipe) and fit the body (``fit_body``, standard quality) from
  ``photo.png`` exactly as ``python -m icon_engine reconstruct`` does, and cache the mask and the fit
  (``--cache DIR``, an ``.npz`` per subject; the shared data itself is never copied).
- ``run``: per subject, build the surface (``build_surface``) on
  - ``fitted``: the cached fit (as the pipeline does),
  - ``oracle``: the ground-truth body (``gt_body.ply``) seen by the ground-truth camera (``camera.json``; its
    pixel centres are at integers, ours at +0.5), with the fitted joints carried into the ground-truth world
    (through the photo, scaled about the camera centre to the GT body's depth) for the part labels,
  and scores both, and the naked bodies, like ``score_scale.py``: each fitted point is moved onto the GT camera
  ray through the pixel where the fit's camera sees it, then the best scale about the GT camera centre is
  applied; Chamfer (cm) against ``gt_clothed.ply``; silhouette IoU against ``mask.png`` (scoring only).

Usage: ``python bench/surface_shared.py prepare --cache /tmp/c`` then
``python bench/surface_shared.py run --cache /tmp/c [--subjects 101 104] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from icon_engine.camera import Camera  # noqa: E402

DEFAULT_BENCH = ROOT.parent / "shared" / "bench" / "synthetic-dev"


def _subjects(bench: Path, wanted: list[int] | None) -> list[Path]:
    dirs = sorted(p for p in bench.iterdir() if p.name.startswith("subject_"))
    return [p for p in dirs if not wanted or int(p.name.split("_")[1]) in wanted]


def prepare(bench: Path, cache: Path, wanted: list[int] | None, quality: str, gt_focal: bool = False) -> None:
    """Detect and fit every subject's photo; cache mask and fit (``cache/subject_1XX.npz``). ``gt_focal``: fit
    with the ground-truth focal length (what a photo's EXIF gives; the rendered set has none) instead of the
    default field of view."""
    from icon_engine.body_model import load_body_model
    from icon_engine.fit import fit_body
    from icon_engine.image_io import load_photo
    from icon_engine.person import detect_person

    cache.mkdir(parents=True, exist_ok=True)
    model = load_body_model()
    for sd in _subjects(bench, wanted):
        t0 = time.perf_counter()
        photo = load_photo(sd / "photo.png")
        obs = detect_person(photo)
        focal = None
        if gt_focal:
            focal = float(json.loads((sd / "camera.json").read_text())["K"][0][0]) * float(photo.scale)
        fit = fit_body(obs, model, photo, quality=quality, focal_px=focal)
        c = fit.camera
        np.savez_compressed(cache / f"{sd.name}.npz", mask=obs.mask, vertices=fit.vertices, faces=fit.faces,
                            joints=fit.joints, K=c.K, R=c.R, t=c.t, size=np.array([c.width, c.height]),
                            scale=np.array(photo.scale))
        print(sd.name, f"fit {time.perf_counter() - t0:.1f} s", flush=True)


def _gt_camera(sd: Path) -> Camera:
    cam = json.loads((sd / "camera.json").read_text())
    K = np.array(cam["K"], float)
    K[0, 2] += 0.5  # GT pixel centres at integers, ours at +0.5
    K[1, 2] += 0.5
    return Camera(K, np.array(cam["R"], float), np.array(cam["t"], float), int(cam["width"]), int(cam["height"]))


def to_gt_world(points: np.ndarray, cam: Camera, gt: Camera) -> np.ndarray:
    """Fit-world points → GT world: keep each point's depth, move it onto the GT ray through its pixel."""
    xc = cam.to_camera(points)
    A = np.linalg.inv(gt.K) @ cam.K
    return (xc @ A.T - gt.t) @ gt.R


def run(bench: Path, cache: Path, wanted: list[int] | None, quality: str, variants: list[str],
        out_dir: Path | None, regions: bool = False) -> list[dict[str, Any]]:
    sys.path.insert(0, str(bench.parent))
    import evaluate as ev  # the shared scorers
    from common import read_ply

    from icon_engine.surface import build_surface

    rows = []
    splits: dict[str, dict[str, Any]] = {}  # variant → subject → region_samples
    for sd in _subjects(bench, wanted):
        f = cache / f"{sd.name}.npz"
        if not f.exists():
            print(sd.name, "not prepared")
            continue
        z = np.load(f)
        W, H = (int(v) for v in z["size"])
        cam = Camera(z["K"], z["R"], z["t"], W, H)
        gt = _gt_camera(sd)
        mask = z["mask"]
        Vg, Fg = read_ply(str(sd / "gt_clothed.ply"))
        Vb, Fb = read_ply(str(sd / "gt_body.ply"))
        sid = int(sd.name.split("_")[1])
        tc = ev.Target(Vg, Fg, seed=11 + sid)
        gmask = ev.load_mask(str(sd / "mask.png"))
        row: dict[str, Any] = {"subject": sd.name}

        target = (tc, gt, gmask)
        fit_v_gt = to_gt_world(z["vertices"], cam, gt)
        fit_j_gt = to_gt_world(z["joints"], cam, gt) if regions else None
        if "fitted" in variants:
            if "naked" in variants:
                row["naked_fitted"] = _score(*target, fit_v_gt, z["faces"], fit_j_gt)
            fit = SimpleNamespace(vertices=z["vertices"], faces=z["faces"], joints=z["joints"], camera=cam)
            t0, c0 = time.perf_counter(), time.process_time()
            surf = build_surface(fit, SimpleNamespace(mask=mask), None, quality)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0  # the surface alone, not the scoring
            row["fitted"] = _score(*target, to_gt_world(surf.vertices, cam, gt), surf.faces, fit_j_gt)
            row["fitted"].update(wall_s=wall, cpu_s=cpu, own_iou=surf.stats["silhouette_iou"])
            if out_dir:
                _save(out_dir / f"{sd.name}_fitted.ply", to_gt_world(surf.vertices, cam, gt), surf.faces)
        if "oracle" in variants:
            # joints: the fit's, carried into the GT world and scaled about C to the GT body's depth
            zb = np.median(gt.to_camera(Vb)[:, 2])
            zf = np.median(gt.to_camera(fit_v_gt)[:, 2])
            C = gt.center
            joints = C + (zb / zf) * (to_gt_world(z["joints"], cam, gt) - C)
            fit = SimpleNamespace(vertices=Vb, faces=Fb, joints=joints, camera=gt)
            if "naked" in variants:
                row["naked_oracle"] = _score(*target, Vb, Fb, joints if regions else None)
            t0, c0 = time.perf_counter(), time.process_time()
            surf = build_surface(fit, SimpleNamespace(mask=mask), None, quality)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            row["oracle"] = _score(*target, surf.vertices, surf.faces, joints if regions else None)
            row["oracle"].update(wall_s=wall, cpu_s=cpu)
            if out_dir:
                _save(out_dir / f"{sd.name}_oracle.ply", surf.vertices, surf.faces)
        print(sd.name, "  ".join(f"{k} {v['chamfer_cm']:.2f}cm iou {v['iou']:.3f}" for k, v in row.items()
                                 if isinstance(v, dict)), flush=True)
        for k, v in row.items():
            if isinstance(v, dict) and "_split" in v:
                splits.setdefault(k, {})[sd.name] = v.pop("_split")
        rows.append(row)
    keys = [k for k in rows[0] if isinstance(rows[0][k], dict)] if rows else []
    for k in keys:
        print(f"MEAN {k:14s} chamfer {np.mean([r[k]['chamfer_cm'] for r in rows]):.3f} cm  "
              f"iou {np.mean([r[k]['iou'] for r in rows]):.3f}  scale {np.mean([r[k]['scale'] for r in rows]):.3f}  "
              + "  ".join(f"{e} {np.mean([r[k].get(e, np.nan) for r in rows]):+.2f}"
                          for e in ("front_cm", "back_cm", "side_cm")))
    for k, per_subject in splits.items():
        bounds = thickness_bounds(per_subject)
        for family, per in bounds.items():
            print(f"BOUND {k:14s} {family:20s} {per['mean']:.3f} cm  "
                  + " ".join(f"{n.split('_')[-1]} {c:.2f}" for n, c in per.items() if n != "mean"))
        for r in rows:
            if k in r:
                r[k]["thickness_bounds_cm"] = {f: per[r["subject"]] for f, per in bounds.items()}
    return rows


def _score(tc: Any, gt: Camera, gmask: np.ndarray, V: np.ndarray, F: np.ndarray,
           joints: np.ndarray | None = None) -> dict[str, Any]:
    """score_scale.py's figures for one mesh in the GT world: best scale about the GT camera centre, then
    Chamfer / P2S (cm) against the GT clothed target ``tc`` and the silhouette IoU against ``gmask``; and where the
    error lies (:func:`depth_errors`; with ``joints`` (55, 3) in the GT world, unscaled, also
    :func:`region_errors`)."""
    import evaluate as ev
    from score_scale import best_scale

    C = gt.center
    s = best_scale(V, F, tc, C)
    Va = C + s * (V - C)
    m = ev.surface_metrics(Va, F, tc)
    Kg = gt.K.copy()
    Kg[:2, 2] -= 0.5
    m["iou"] = ev.iou(ev.silhouette(Va, F, Kg, gt.R, gt.t, gt.height, gt.width), gmask)
    m["scale"] = s
    m.update(depth_errors(Va, F, tc, gt))
    if joints is not None:
        split = region_samples(Va, F, tc.V, tc.F, tc.samples, gt.R, C + s * (np.asarray(joints, float) - C))
        m["regions"] = region_errors(Va, F, tc.V, tc.F, tc.samples, gt.R, joints, split=split)
        m["_split"] = split  # for thickness_bounds; not written to the JSON
    return m


#: Body regions of :func:`region_errors` by the parent joint (SMPL-X) of the nearest skeleton bone.
REGIONS: dict[str, tuple[int, ...]] = {
    "head": (12, 15, 22, 23, 24),
    "torso": (0, 3, 6, 9, 13, 14),
    "arms": (16, 17, 18, 19, 20, 21, *range(25, 55)),
    "thighs": (1, 2),
    "shins": (4, 5, 7, 8, 10, 11),
}


def region_samples(V: np.ndarray, F: np.ndarray, gt_V: np.ndarray, gt_F: np.ndarray, gt_samples: np.ndarray,
                   view_R: np.ndarray, joints: np.ndarray, samples: int = 10_000,
                   seed: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per half of the Chamfer, ``g2r`` (the GT samples ``gt_samples`` → our mesh ``V``, ``F``) and ``r2g``
    (``samples`` of ours → the GT mesh ``gt_V``, ``gt_F``), all in one world (metres): (signed distances (N,) m,
    body region (N,) str, direction (N,) str). Signed distance of g2r: positive = the GT outside ours (our surface
    too thin or set back); of r2g: positive = ours outside the GT (too thick or set forward). Region: :data:`REGIONS`
    by the nearest bone of ``joints`` (55, 3), ``other`` elsewhere; direction to the camera (rotation ``view_R``,
    world → camera) by the surface's normal there: ``front`` (cosine with the view axis < −0.5, facing the
    camera), ``back`` (> 0.5), ``side``."""
    from fidelity import sample_surface

    from icon_engine.mesh_queries import MeshQuery
    from icon_engine.surface import bone_owner

    gq, rq = MeshQuery(gt_V, gt_F, k=2), MeshQuery(V, F, k=2)
    rs = sample_surface(V, F, samples, seed)
    halves = {"g2r": (gt_samples, rq.signed_distance(gt_samples), gq.query(gt_samples).normal),
              "r2g": (rs, gq.signed_distance(rs), rq.query(rs).normal)}
    out = {}
    for half, (pts, sd, nrm) in halves.items():
        owner = bone_owner(pts, joints)[0]
        region = np.full(len(pts), "other", dtype=object)
        for name, js in REGIONS.items():
            region[np.isin(owner, js)] = name
        nz = (nrm @ np.asarray(view_R, float).T)[:, 2]
        direction = np.where(nz < -0.5, "front", np.where(nz > 0.5, "back", "side")).astype(object)
        out[half] = (np.asarray(sd, float), region, direction)
    return out


def region_errors(V: np.ndarray, F: np.ndarray, gt_V: np.ndarray, gt_F: np.ndarray, gt_samples: np.ndarray,
                  view_R: np.ndarray, joints: np.ndarray, samples: int = 10_000, seed: int = 1,
                  split: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where the Chamfer's two halves come from (:func:`region_samples`; or its result ``split``): per cell
    ``half/region/direction``, ``share_cm`` = its |distances| summed / all of the half's samples (the cells add up
    to the half's mean, cm), ``signed_cm`` = mean signed distance there (g2r: positive = the GT outside ours; r2g:
    positive = ours outside the GT), ``n``."""
    split = split or region_samples(V, F, gt_V, gt_F, gt_samples, view_R, joints, samples, seed)
    out: dict[str, Any] = {}
    for half, (sd, region, direction) in split.items():
        for r in REGIONS:
            for d in ("front", "side", "back"):
                k = (region == r) & (direction == d)
                if k.any():
                    out[f"{half}/{r}/{d}"] = {"share_cm": float(100 * np.abs(sd[k]).sum() / len(sd)),
                                              "signed_cm": float(100 * sd[k].mean()), "n": int(k.sum())}
    return out


def thickness_bounds(splits: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """How much of the Chamfer any change of the surface's *thickness* could remove, per rule family, over
    subjects ``splits`` (name → :func:`region_samples`): the surface is moved along its normal by δ (outwards
    positive; first order: every g2r distance becomes d − δ, every r2g one d + δ) with the best δ (the weighted
    median) per cell of the family: ``none``; ``one`` δ for everything; ``region_dir`` (one per body region and
    direction, shared by all subjects: what a general rule can do); ``subject`` (one per subject: a uniform
    thickness, what the focal sets); ``subject_dir``; ``subject_region_dir`` (any thickness rule, per subject).
    Returns family → {subject: Chamfer cm, "mean": ...}; what stays under the last is the surface's placement."""
    keys = {
        "none": None, "one": lambda s, r, d: 0, "region_dir": lambda s, r, d: (r, d), "subject": lambda s, r, d: s,
        "subject_dir": lambda s, r, d: (s, d), "subject_region_dir": lambda s, r, d: (s, r, d),
    }
    # every sample as (subject, region, direction, d) with d > 0 meaning "the GT outside ours", weight 1/(2 n_half)
    cells: list[tuple[str, str, str, np.ndarray, np.ndarray]] = []
    for name, split in splits.items():
        for half, (sd, region, direction) in split.items():
            d = sd if half == "g2r" else -sd
            for r in np.unique(region):
                for di in ("front", "side", "back"):
                    k = (region == r) & (direction == di)
                    if k.any():
                        cells.append((name, str(r), di, d[k], np.full(int(k.sum()), 0.5 / len(sd))))
    out: dict[str, dict[str, float]] = {}
    for family, key in keys.items():
        groups: dict[Any, list[int]] = {}
        for i, (s, r, di, _, _) in enumerate(cells):
            groups.setdefault(None if key is None else key(s, r, di), []).append(i)
        delta: dict[int, float] = {}
        for g, idx in groups.items():
            if g is None:
                best = 0.0
            else:
                x = np.concatenate([cells[i][3] for i in idx])
                w = np.concatenate([cells[i][4] for i in idx])
                o = np.argsort(x)
                best = float(x[o][np.searchsorted(np.cumsum(w[o]), 0.5 * w.sum())])
            delta.update({i: best for i in idx})
        per: dict[str, float] = {}
        for i, (s, _, _, d, w) in enumerate(cells):
            per[s] = per.get(s, 0.0) + 100 * float((np.abs(d - delta[i]) * w).sum())
        per["mean"] = float(np.mean(list(per.values())))
        out[family] = per
    return out


def depth_errors(V: np.ndarray, F: np.ndarray, tc: Any, gt: Camera) -> dict[str, float]:
    """Signed distance (cm, positive: the GT surface is outside ours) of the GT clothed samples to the mesh (GT
    world, already scaled), averaged over samples whose GT normal faces the camera (``front_cm``), faces away
    (``back_cm``) or is sideways (``side_cm``; |cosine with the view axis| ≤ 0.5): the sides are what the
    silhouette fixes, front and back are depth. ``front_cm − back_cm``'s sign tells a shift along the view,
    their sum a surface too thin (> 0) or too thick (< 0) in depth."""
    from icon_engine.mesh_queries import MeshQuery

    g = tc.samples
    sd = MeshQuery(V, F, k=2).signed_distance(g)
    nz = (MeshQuery(tc.V, tc.F, k=2).query(g).normal @ gt.R.T)[:, 2]
    parts = {"front_cm": nz < -0.5, "back_cm": nz > 0.5, "side_cm": np.abs(nz) <= 0.5}
    return {k: float(100 * sd[sel].mean()) for k, sel in parts.items() if sel.any()}


def _save(path: Path, V: np.ndarray, F: np.ndarray) -> None:
    import trimesh

    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(V, F, process=False).export(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("prepare", "run"))
    ap.add_argument("--bench", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--subjects", type=int, nargs="*")
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--variants", nargs="*", default=["fitted", "oracle", "naked"],
                    help="fitted, oracle, naked (the naked bodies of those)")
    ap.add_argument("--meshes", type=Path, help="write the surfaces (GT world, .ply) here")
    ap.add_argument("--gt-focal", action="store_true",
                    help="prepare: fit with the ground-truth focal length (as EXIF would give) instead of the default")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--regions", action="store_true",
                    help="run: split each mesh's error by body region and front/back/side (region_errors, JSON) and "
                         "print what any thickness rule could remove (thickness_bounds)")
    a = ap.parse_args(argv)
    if not a.bench.is_dir():
        raise SystemExit(f"{a.bench} not found (the shared benchmark set)")
    if a.step == "prepare":
        prepare(a.bench, a.cache, a.subjects, a.quality, a.gt_focal)
        return
    rows = run(a.bench, a.cache, a.subjects, a.quality, a.variants, a.meshes, a.regions)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main()
