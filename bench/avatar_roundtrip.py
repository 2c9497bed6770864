"""What the canonical round trip costs (issue 15): the posed avatar vs the posed surface it was rebuilt from.

The pipeline's ``posed_mesh`` is not the clothed surface ``surface.build_surface`` made: the avatar stage un-poses
that surface to the rest pose, meshes it there, skins it and poses it back (icon_engine/avatar.py). Per subject of
the shared rendered set this script

1. runs the whole engine once (``icon_engine.reconstruct``) into ``RESULTS/avatar/subject_1XX/`` and keeps the
   fit and the pre-round-trip surface (``RESULTS/cache/subject_1XX.pkl``, this script's own file);
2. writes a second bundle ``RESULTS/surface/subject_1XX/`` whose ``posed_mesh`` is that surface (same camera and
   body), so ``score_scale.py`` scores the surface before the round trip with the same scorer;
3. measures the round trip itself: Chamfer both ways between the posed avatar and the surface (mean, p99, max,
   centimetres) and per region of the nearest fitted body vertex (hands, armpits, crotch, touching limbs, rest).

``--avatar-only`` re-runs only the avatar stage from the cache (the fit and surface do not depend on the avatar
code, so the scores are those of the whole pipeline; the texture is not baked) and rewrites
``RESULTS/avatar/*/posed_mesh.ply``: for iterating on the avatar stage.

Run: ``.venv/bin/python bench/avatar_roundtrip.py --shared-set ../shared/bench/synthetic-dev --results R``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from icon_engine.avatar import HAND_JOINTS, JOINT_PART  # noqa: E402

#: Regions of a point, by the fitted posed body vertex nearest to it (its dominant joint) and the other parts near.
REGIONS = ("hands", "armpits", "crotch", "touching", "other")
#: A point is *between touching limbs* when a body vertex of another part lies within this distance (metres).
TOUCH_M = 0.04
_ARMPIT_JOINTS = (13, 14, 16, 17)  # collars and shoulders
_CROTCH_JOINTS = (0, 1, 2)  # pelvis and hips


def body_regions(body_vertices: np.ndarray, lbs_weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) region index (:data:`REGIONS`) of ``points`` (N, 3) near the posed body ``body_vertices`` (V, 3) with
    ``lbs_weights`` (V, 55), metres: by the dominant joint of the nearest body vertex and whether a body vertex of
    another part lies within :data:`TOUCH_M` beyond it."""
    from scipy.spatial import cKDTree

    joint = lbs_weights.argmax(axis=1)
    part = JOINT_PART[joint]
    d1, nearest = cKDTree(body_vertices).query(points)
    # another part's body vertex within TOUCH_M of the point (beyond its nearest body vertex's distance)
    other_near = np.zeros(len(points), dtype=bool)
    for p in np.unique(part):
        dp, _ = cKDTree(body_vertices[part == p]).query(points, distance_upper_bound=TOUCH_M + 1e-6)
        other_near |= (part[nearest] != p) & (dp <= d1 + TOUCH_M) & np.isfinite(dp)
    j = joint[nearest]
    out = np.full(len(points), REGIONS.index("other"))
    out[other_near] = REGIONS.index("touching")
    out[np.isin(j, _CROTCH_JOINTS) & other_near] = REGIONS.index("crotch")
    out[np.isin(j, _ARMPIT_JOINTS) & other_near] = REGIONS.index("armpits")
    out[np.isin(j, HAND_JOINTS)] = REGIONS.index("hands")
    return out


def round_trip(avatar_v: np.ndarray, avatar_f: np.ndarray, surface_v: np.ndarray, surface_f: np.ndarray,
               body_v: np.ndarray, lbs: np.ndarray, samples: int = 50_000, seed: int = 0) -> dict[str, Any]:
    """Chamfer both ways (cm) between the posed avatar and the pre-round-trip surface (area-uniform samples, exact
    closest points), overall and per region (:func:`body_regions`); max and p99 too."""
    import trimesh

    from icon_engine.mesh_queries import MeshQuery

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for name, (va, fa, vb, fb) in {"avatar_to_surface": (avatar_v, avatar_f, surface_v, surface_f),
                                   "surface_to_avatar": (surface_v, surface_f, avatar_v, avatar_f)}.items():
        pts, _ = trimesh.sample.sample_surface(trimesh.Trimesh(va, fa, process=False), samples,
                                               seed=int(rng.integers(1 << 30)))
        d = np.abs(MeshQuery(vb, fb).query(np.asarray(pts)).distance) * 100.0
        reg = body_regions(body_v, lbs, np.asarray(pts))
        out[name] = {"mean_cm": float(d.mean()), "p99_cm": float(np.percentile(d, 99)), "max_cm": float(d.max()),
                     "over_2cm_pct": float((d > 2.0).mean() * 100),
                     "regions": {r: {"share_pct": float((reg == i).mean() * 100),
                                     "mean_cm": float(d[reg == i].mean()) if (reg == i).any() else None,
                                     "max_cm": float(d[reg == i].max()) if (reg == i).any() else None}
                                 for i, r in enumerate(REGIONS)}}
    out["chamfer_cm"] = 0.5 * (out["avatar_to_surface"]["mean_cm"] + out["surface_to_avatar"]["mean_cm"])
    return out


def _write_variant(bundle_dir: Path, target: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """``target``: a copy of the bundle's camera/body files with ``posed_mesh.ply`` replaced by the given mesh."""
    from icon_engine.bundle.meshio import TriMesh, write_ply

    target.mkdir(parents=True, exist_ok=True)
    for name in ("bundle.json", "body_mesh.ply"):
        shutil.copy2(bundle_dir / name, target / name)
    write_ply(target / "posed_mesh.ply", TriMesh(np.asarray(vertices, dtype=np.float64),
                                                 np.asarray(faces, dtype=np.int64)))


def reconstruct_and_cache(photo: Path, out: Path, cache: Path, quality: str, body_model: Any) -> dict[str, Any]:
    """The whole engine on ``photo`` into ``out``; the fit, mask, pre-round-trip surface and posed avatar go to
    ``cache``. Returns wall and CPU seconds."""
    import icon_engine
    from icon_engine import pipeline
    from icon_engine.options import ReconstructOptions

    kept: dict[str, Any] = {}
    original = pipeline.build_canonical_avatar

    def keep(surfaces, fits, masks, options, reporter, body_model):  # noqa: ANN001, ANN202
        av = original(surfaces, fits, masks, options, reporter, body_model)
        kept.update(surface_v=np.asarray(surfaces[0].vertices), surface_f=np.asarray(surfaces[0].faces),
                    fit=fits[0], mask=np.asarray(masks[0]), avatar_v=av.posed_vertices, avatar_f=av.faces,
                    avatar_stats=av.stats)
        return av

    pipeline.build_canonical_avatar = keep
    try:
        t, c = time.perf_counter(), time.process_time()
        bundle = icon_engine.reconstruct(photo, out.parent, ReconstructOptions(quality=quality, device="cpu"),
                                         body_model=body_model, bundle_name=out.name)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        pipeline.build_canonical_avatar = original
    kept["bundle"] = str(bundle)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(kept))
    return {"wall_s": wall, "cpu_s": cpu}


def avatar_again(cached: dict[str, Any], quality: str, body_model: Any) -> tuple[np.ndarray, np.ndarray, dict]:
    """The avatar stage alone on the cached surface and fit, with the pipeline's preset."""
    from icon_engine.avatar import build_fused_avatar
    from icon_engine.options import PRESETS, ReconstructOptions

    preset = PRESETS[quality].mesh
    options = ReconstructOptions(quality=quality, device="cpu")
    fit = cached["fit"]
    av = build_fused_avatar([cached["surface_v"]], [cached["surface_f"]], [fit], body_model,
                            resolution=preset.resolution, levels=preset.levels, smooth=preset.smooth,
                            face_count=options.resolved_face_count, rest_pose=options.rest_pose,
                            cameras=[fit.camera], mask=cached["mask"], masks=[cached["mask"]])
    return av.posed_vertices, av.faces, av.stats


def score(bench: Path, results: Path) -> dict[str, Any]:
    """``score_scale.py`` of the set on ``results``: {subject: clothed Chamfer cm} and the mean."""
    cmd = [sys.executable, str(bench.parent / "score_scale.py"), "--bench", str(bench), "--results", str(results),
           "--out", str(results / "scale.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    scale = json.loads((results / "scale.json").read_text())
    return {r["subject"]: {k: r[k]["chamfer_cm"] for k in ("clothed", "body_as_clothed")} for r in scale["rows"]}


def main(argv: list[str] | None = None) -> None:
    from icon_engine.body_model import load_body_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-set", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--subjects", type=int, nargs="*")
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--avatar-only", action="store_true", help="re-run the avatar stage from the cache")
    ap.add_argument("--tag", default="", help="with --avatar-only: write RESULTS/avatar<TAG> instead")
    a = ap.parse_args(argv)
    body_model = load_body_model()
    rows = []
    tag = a.tag
    for sd in sorted(a.shared_set.glob("subject_*")):
        sid = int(sd.name.split("_")[1])
        if a.subjects and sid not in a.subjects:
            continue
        cache = a.results / "cache" / f"{sd.name}.pkl"
        row: dict[str, Any] = {"subject": sd.name}
        if not a.avatar_only:
            row.update(reconstruct_and_cache(sd / "photo.png", a.results / "avatar" / sd.name, cache, a.quality,
                                             body_model))
        cached = pickle.loads(cache.read_bytes())  # this script's own cache file
        if a.avatar_only:
            t, c = time.perf_counter(), time.process_time()
            av_v, av_f, stats = avatar_again(cached, a.quality, body_model)
            row.update(avatar_wall_s=time.perf_counter() - t, avatar_cpu_s=time.process_time() - c)
            _write_variant(Path(cached["bundle"]), a.results / f"avatar{tag}" / sd.name, av_v, av_f)
        else:
            av_v, av_f, stats = cached["avatar_v"], cached["avatar_f"], cached["avatar_stats"]
            _write_variant(Path(cached["bundle"]), a.results / "surface" / sd.name, cached["surface_v"],
                           cached["surface_f"])
        fit = cached["fit"]
        lbs = np.asarray(body_model.lbs_weights.detach().cpu() if hasattr(body_model.lbs_weights, "detach")
                         else body_model.lbs_weights)
        row["round_trip"] = round_trip(av_v, av_f, cached["surface_v"], cached["surface_f"],
                                       np.asarray(fit.vertices).reshape(-1, 3), lbs)
        row["avatar_stats"] = {k: stats.get(k) for k in ("vertices", "faces", "grid_spacing_m", "time_s", "cpu_s",
                                                         "contact_zone_fraction", "posed_silhouette_iou")}
        rt = row["round_trip"]
        print(f"{sd.name}: round trip Chamfer {rt['chamfer_cm']:.3f} cm, avatar→surface max "
              f"{rt['avatar_to_surface']['max_cm']:.2f}, surface→avatar max {rt['surface_to_avatar']['max_cm']:.2f}",
              flush=True)
        rows.append(row)
    scores = {"avatar" + tag: score(a.shared_set, a.results / f"avatar{tag}")}
    if (a.results / "surface").exists():
        scores["surface"] = score(a.shared_set, a.results / "surface")
    out = {"rows": rows, "scores": scores}
    name = f"roundtrip{tag}.json" if a.avatar_only else "roundtrip.json"
    (a.results / name).write_text(json.dumps(out, indent=1, default=float))
    print(format_table(out))


def format_table(out: dict[str, Any]) -> str:
    """Markdown table: per subject, the scored clothed Chamfer of the avatar and the surface and the round trip."""
    keys = list(out["scores"])
    lines = ["| subject | " + " | ".join(f"{k} clothed cm" for k in keys) + " | round trip Chamfer cm | "
             "avatar→surface max cm | surface→avatar max cm | worst region (surface→avatar mean cm) |",
             "|---" * (len(keys) + 5) + "|"]
    for r in out["rows"]:
        rt = r["round_trip"]
        reg = {k: v["mean_cm"] for k, v in rt["surface_to_avatar"]["regions"].items() if v["mean_cm"] is not None}
        worst = max(reg, key=reg.get)
        cells = [f"{out['scores'][k].get(r['subject'], {}).get('clothed', float('nan')):.3f}" for k in keys]
        lines.append(f"| {r['subject']} | " + " | ".join(cells) + f" | {rt['chamfer_cm']:.3f} | "
                     f"{rt['avatar_to_surface']['max_cm']:.2f} | {rt['surface_to_avatar']['max_cm']:.2f} | "
                     f"{worst} {reg[worst]:.2f} |")
    for k in keys:
        vals = [v["clothed"] for v in out["scores"][k].values()]
        body = [v["body_as_clothed"] for v in out["scores"][k].values()]
        lines.append(f"\n{k}: clothed mean {np.mean(vals):.3f} cm, naked body {np.mean(body):.3f} cm, "
                     f"{(1 - np.mean(vals) / np.mean(body)) * 100:.1f} % below")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
