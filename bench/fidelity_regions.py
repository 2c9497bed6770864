"""Where the single-photo avatar lies off the shared rendered set's ground truth: per body region and side.

Reads the bundles a ``bench/fidelity.py --shared-set DIR --results RESULTS`` run wrote and aligns each one the way
``../shared/bench/score_scale.py`` does (each point moved onto the GT camera ray through the pixel where the
bundle's own camera sees it, then the best scale about the GT camera centre). Then, per height band of the true
stature (:data:`bench.lib.metrics.HEIGHT_BANDS`) and per side (the true surface facing the camera or not), it
reports how far the true clothed surface lies from our clothed ``posed_mesh`` and from our fitted naked body (the
same protocol's ``body_as_clothed``), unsigned and signed (negative: ours lies inside the truth)
(:func:`bench.lib.metrics.region_errors`). Pooled over the subjects, each region weighted by its points.

Usage: ``python bench/fidelity_regions.py --results RESULTS [--shared-set ../shared/bench/synthetic-dev]
[--subjects 101 107] [--json out.json]``. Needs ``../shared`` (its scorers and data; nothing is copied).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.lib.metrics import HEIGHT_BANDS, region_errors  # noqa: E402

DEFAULT_BENCH = ROOT.parent / "shared" / "bench" / "synthetic-dev"
#: Surface samples per mesh.
SAMPLES = 60_000


def subject_regions(bench_dir: Path, bundle_path: Path, sid: int) -> dict[str, Any]:
    """Region errors of one subject's bundle: ``{"clothed": …, "naked": …, "scale": s}`` (see the module)."""
    import evaluate as ev  # the set's own scorer helpers (on sys.path from main)
    from common import read_ply, vertex_normals
    from scipy.spatial import cKDTree
    from score_scale import best_scale

    sd = bench_dir / f"subject_{sid}"
    bundle = json.loads(bundle_path.read_text())
    Kb, Rb, tb, info = ev.parse_camera(bundle)
    Kg, Rg, tg, cam = ev.load_camera(str(sd / "camera.json"))
    W, H = int(cam["width"]), int(cam["height"])
    centre = -Rg.T @ tg
    Vg, Fg = read_ply(str(sd / "gt_clothed.ply"))
    target = ev.Target(Vg, Fg, seed=11 + sid)
    stature = float(json.loads((sd / "meta.json").read_text())["stature_m"])
    gt_points, _ = ev.sample_surface(Vg, Fg, SAMPLES, seed=5)
    gt_normals = vertex_normals(Vg, Fg)[cKDTree(Vg).query(gt_points)[1]]
    out: dict[str, Any] = {}
    for name, kind in (("clothed", "posed"), ("naked", "body")):
        V, F = ev.load_mesh(ev.parse_mesh_path(bundle, str(bundle_path.parent), kind))
        V, F = ev.clean_mesh(V, F)
        V, _ = ev.to_gt_frame(V, Kb, Rb, tb, Kg, Rg, tg, info, True, (W, H))
        s = best_scale(V, F, target, centre)
        points, _ = ev.sample_surface(centre + s * (V - centre), F, SAMPLES, seed=6)
        out[name] = region_errors(gt_points, gt_normals, points, centre, float(Vg[:, 1].min()), stature)
        out[f"{name}_scale"] = s
    return out


def pooled(rows: list[dict[str, Any]], name: str) -> dict[str, dict[str, float]]:
    """Each region's errors over all subjects, weighted by its share of each subject's points."""
    out = {}
    for region in rows[0][name]:
        w = np.array([r[name][region]["share"] for r in rows])
        keep = w > 0
        out[region] = {k: float(np.average([r[name][region][k] for r, ok in zip(rows, keep, strict=True) if ok],
                                           weights=w[keep])) if keep.any() else float("nan")
                       for k in ("mean_cm", "signed_cm")}
        out[region]["share"] = float(w.mean())
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, required=True, help="a bench/fidelity.py --shared-set results folder")
    ap.add_argument("--shared-set", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--subjects", type=int, nargs="+")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if not (a.shared_set / "subject_100").is_dir():
        sys.exit(f"{a.shared_set} is not the shared rendered set (../shared/bench/synthetic-dev): pass --shared-set")
    sys.path.insert(0, str(a.shared_set.parent))
    import evaluate as ev

    bundles = ev.find_bundles(str(a.results))
    sids = a.subjects or sorted(bundles)
    rows = []
    for sid in sids:
        if sid not in bundles:
            print(f"subject_{sid}: no bundle under {a.results}")
            continue
        row = {"subject": f"subject_{sid}", **subject_regions(a.shared_set, Path(bundles[sid]), sid)}
        worst = sorted(row["clothed"].items(), key=lambda kv: -kv[1]["mean_cm"] if kv[1]["share"] else 0)[:3]
        print(f"{row['subject']}: scale {row['clothed_scale']:.3f}; farthest regions (clothed): "
              + ", ".join(f"{k} {v['mean_cm']:.2f} cm ({v['signed_cm']:+.2f})" for k, v in worst), flush=True)
        rows.append(row)
    if not rows:
        sys.exit("no bundles scored")
    table = {name: pooled(rows, name) for name in ("clothed", "naked")}
    print(f"\nPooled over {len(rows)} subjects (true clothed surface → ours, cm; signed: − ours inside)\n")
    print("| region | share | clothed | clothed signed | naked body | naked signed |")
    print("|---|---|---|---|---|---|")
    for band, _, _ in HEIGHT_BANDS:
        for side in ("front", "back"):
            c, n = table["clothed"][f"{band} {side}"], table["naked"][f"{band} {side}"]
            print(f"| {band} {side} | {c['share']:.3f} | {c['mean_cm']:.2f} | {c['signed_cm']:+.2f} | "
                  f"{n['mean_cm']:.2f} | {n['signed_cm']:+.2f} |")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "pooled": table}, indent=1))


if __name__ == "__main__":
    main()
