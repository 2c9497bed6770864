"""Pose correctives (issue 13): do they bring the avatar closer to a photo in a pose they were not fitted on?

Synthetic dressed subjects with ground truth (bench/synthetic.py; one shape and outfit, the garment rebuilt on the
posed body, so clothes deform with the pose) are rendered from the front in ``--poses`` random standing poses and
reconstructed end to end as ONE avatar (:func:`icon_engine.subject.reconstruct_subject`: BlazePose, the joint fit,
per-photo surfaces, fusion). The run's correctives hook is wrapped to keep what it was given (the rig, every
photo's fit and clothed surface). Then, leaving each photo h out in turn, correctives are fitted on the other
photos exactly as the run fits them (:func:`icon_engine.correctives.correctives_from_samples`, with its own
leave-one-out region selection) and the avatar is posed into photo h's fitted pose with and without them; both are
scored against photo h's ground-truth clothed mesh like bench/fidelity.py (Chamfer, P2S; aligned through photo
h's camera with the same depth alignment as bench/multiview.py). Photo h still took part in the fused canonical
shape (one run per subject keeps the bench affordable): the figures measure the correctives, not the fusion.

Usage: ``python bench/correctives.py --count 2 --poses 6 --quality preview`` (Markdown table; ``--json`` keeps all).
"""

from __future__ import annotations

import argparse
import json
import resource
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

from fidelity import chamfer_p2s, to_gt_world  # noqa: E402
from synthetic import load_open_body, make_subject, random_pose  # noqa: E402

from icon_engine import correctives as corr_mod  # noqa: E402
from icon_engine.bundle import PARENTS, skin_vertices  # noqa: E402
from icon_engine.mesh_queries import MeshQuery  # noqa: E402


def subject_in_poses(bm: Any, index: int, seed: int, size: tuple[int, int], kind: str, count: int) -> list[Any]:
    """One subject (shape, outfit) in ``count`` random standing poses, each rendered from the front."""
    poses = [random_pose(np.random.default_rng([seed, index, 100 + k])) for k in range(count)]
    return [make_subject(bm, index, seed=seed, size=size, kind=kind, pose=p) for p in poses]


def capture_run(paths: list[Path], out: Path, options: Any, bm: Any) -> dict[str, Any]:
    """Run the subject reconstruction, keeping what its correctives hook receives."""
    from icon_engine.subject import reconstruct_subject

    seen: dict[str, Any] = {}
    original = corr_mod.attach_correctives

    def spy(content: Any, rig: Any, fits: list[Any], surfaces: list[Any]) -> Any:
        used = [p for p in content.metadata["subject"]["photos"] if p["status"] == "used"]
        seen.update(rig=rig, fits=fits, surfaces=surfaces, labels=[p["label"] for p in used])
        result = original(content, rig, fits, surfaces)
        seen["runtime"] = None if result is None else dict(result.stats, keys=result.count)
        return result

    corr_mod.attach_correctives = spy
    try:
        seen["bundle"] = reconstruct_subject(paths, out, options, body_model=bm, bundle_name="avatar")
    finally:
        corr_mod.attach_correctives = original
    return seen


def held_out_scores(seen: dict[str, Any], subjects: list[Any], names: list[str], samples: int,
                    margins: tuple[float, ...] = (corr_mod.KEEP_MARGIN,)) -> list[dict]:
    """Per used photo h: Chamfer/P2S (cm) of the avatar posed into h without and with correctives fitted on the
    other photos (for each region-selection margin: ``with``, ``with@<margin>``), against h's ground truth."""
    from icon_engine.rig import pose_relative_to_rest

    rig, fits, surfaces = seen["rig"], seen["fits"], seen["surfaces"]
    mesh_faces = np.asarray(seen["avatar_faces"])
    rest = np.asarray(rig.rest_vertices, dtype=np.float64)
    weights = np.asarray(rig.skin_weights, dtype=np.float64)
    joints = np.asarray(rig.rest_joints, dtype=np.float64)
    angles = np.asarray(rig.rest_pose_angles, dtype=np.float64).reshape(55, 3)
    poses = [pose_relative_to_rest(np.asarray(f.full_pose, np.float64).reshape(55, 3), angles) for f in fits]
    transls = [np.asarray(f.transl, np.float64).reshape(3) for f in fits]
    drivers = corr_mod.driving_joints(weights)
    photo_samples = [corr_mod.photo_samples(rest, mesh_faces, weights, joints, p, t, s.vertices, s.faces, f.camera)
                     for p, t, s, f in zip(poses, transls, surfaces, fits, strict=True)]
    rows = []
    for h, label in enumerate(seen["labels"]):
        others = [k for k in range(len(fits)) if k != h]
        fitted = {}
        default = corr_mod.KEEP_MARGIN
        try:
            for margin in margins:
                corr_mod.KEEP_MARGIN = margin
                fitted[margin] = corr_mod.correctives_from_samples([photo_samples[k] for k in others], drivers,
                                                                   mesh_faces, [poses[k] for k in others])
        finally:
            corr_mod.KEEP_MARGIN = default
        corr = fitted[margins[0]]
        if corr is None:
            continue
        s = subjects[names.index(label)]
        gq = MeshQuery(s.clothed_vertices, s.clothed_faces, k=2)
        cam = fits[h].camera
        dz = float(s.camera.to_camera(s.body_vertices)[:, 2].mean() - cam.to_camera(fits[h].vertices)[:, 2].mean())
        row: dict[str, Any] = {"photo": label, "keys": corr.count, "kept": corr.stats["kept"]}
        variants = [("without", rest), ("with", rest + corr.displacement(poses[h]))]
        for margin in margins[1:]:
            variants.append((f"with@{margin:g}", rest + fitted[margin].displacement(poses[h])))
            row[f"keys@{margin:g}"] = fitted[margin].count
        for name, moved in variants:
            posed = skin_vertices(moved, weights, joints, np.asarray(PARENTS), poses[h], transls[h])
            ch, p2s = chamfer_p2s(to_gt_world(posed, cam, s.camera, dz), mesh_faces, s.clothed_vertices,
                                  s.clothed_faces, samples, gq)
            row[name] = {"chamfer_cm": ch, "p2s_cm": p2s}
        rows.append(row)
    return rows


def run(count: int, poses: int, quality: str, samples: int, size: tuple[int, int], log: Any = print,
        margins: tuple[float, ...] = (corr_mod.KEEP_MARGIN,)) -> dict[str, Any]:
    from PIL import Image

    from icon_engine.options import ReconstructOptions

    bm = load_open_body()
    options = ReconstructOptions(quality=quality)
    result: dict[str, Any] = {"subjects": [], "quality": quality, "poses": poses}
    for i in range(count):
        kind = ("loose", "skirt", "coat", "tight")[i % 4]
        subjects = subject_in_poses(bm, i, 13, size, kind, poses)
        with tempfile.TemporaryDirectory() as tmp:
            paths, names = [], []
            for k, s in enumerate(subjects):
                path = Path(tmp) / f"{s.name}_pose{k}.png"
                Image.fromarray(s.rgb).save(path)
                paths.append(path)
                names.append(path.name)
            t0, c0 = time.perf_counter(), time.process_time()
            seen = capture_run(paths, Path(tmp) / "out", options, bm)
            run_s, run_cpu = time.perf_counter() - t0, time.process_time() - c0
            from icon_engine.bundle import read_bundle

            seen["avatar_faces"] = read_bundle(seen["bundle"]).rest_mesh.faces
            t1 = time.process_time()
            rows = held_out_scores(seen, subjects, names, samples, margins)
        entry = {"subject": subjects[0].name, "used": len(seen["labels"]), "rows": rows, "run_s": run_s,
                 "run_cpu_s": run_cpu, "held_out_cpu_s": time.process_time() - t1, "runtime": seen.get("runtime")}
        result["subjects"].append(entry)
        for r in rows:
            log(f"{entry['subject']:20s} {r['photo']:28s} chamfer {r['without']['chamfer_cm']:.3f} → "
                f"{r['with']['chamfer_cm']:.3f} cm  keys {r['keys']}  kept {','.join(r['kept']) or '-'}")
    all_rows = [r for e in result["subjects"] for r in e["rows"]]
    if all_rows:
        names_ = ["without", "with"] + [f"with@{m:g}" for m in margins[1:]]
        result["summary"] = {
            name: {m: float(np.mean([r[name][m] for r in all_rows])) for m in ("chamfer_cm", "p2s_cm")}
            for name in names_}
        for m in margins[1:]:
            result["summary"][f"with@{m:g}"]["keys"] = float(np.mean([r[f"keys@{m:g}"] for r in all_rows]))
            result["summary"][f"with@{m:g}"]["improved"] = int(sum(
                r[f"with@{m:g}"]["chamfer_cm"] < r["without"]["chamfer_cm"] for r in all_rows))
        result["summary"]["held_out_photos"] = len(all_rows)
        result["summary"]["improved"] = int(sum(r["with"]["chamfer_cm"] < r["without"]["chamfer_cm"] for r in all_rows))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = ["| subject | held-out photo | Chamfer without (cm) | with (cm) | P2S without | with | keys | kept |",
             "|---|---|---|---|---|---|---|---|"]
    for e in result["subjects"]:
        for r in e["rows"]:
            lines.append(f"| {e['subject']} | {r['photo'].split('_')[-1]} | {r['without']['chamfer_cm']:.3f} | "
                         f"{r['with']['chamfer_cm']:.3f} | {r['without']['p2s_cm']:.3f} | {r['with']['p2s_cm']:.3f} | "
                         f"{r['keys']} | {', '.join(r['kept']) or '—'} |")
    s = result.get("summary")
    if s:
        lines.append(f"| **mean** | {s['held_out_photos']} photos | {s['without']['chamfer_cm']:.3f} | "
                     f"{s['with']['chamfer_cm']:.3f} | {s['without']['p2s_cm']:.3f} | {s['with']['p2s_cm']:.3f} | | "
                     f"better on {s['improved']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Pose correctives: held-out photo error with and without them")
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--poses", type=int, default=6)
    ap.add_argument("--quality", default="preview")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--margins", type=float, nargs="+", default=[corr_mod.KEEP_MARGIN],
                    help="region-selection margins to compare (the first is the main one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = run(args.count, args.poses, args.quality, args.samples, (448, 640), margins=tuple(args.margins))
    print(format_table(result))
    for name, m in result.get("summary", {}).items():
        if isinstance(m, dict):
            print(f"{name}: mean Chamfer {m['chamfer_cm']:.3f} cm, P2S {m['p2s_cm']:.3f} cm", m)
    for e in result["subjects"]:
        print(f"{e['subject']}: {e['used']} photos used, run {e['run_s']:.0f} s wall / {e['run_cpu_s']:.0f} s CPU, "
              f"held-out fits {e['held_out_cpu_s']:.0f} s CPU; the run's own selection: {e['runtime']}")
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
