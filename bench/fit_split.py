"""Where the body fit's error comes from, on the shared rendered set (issue 15): a per-subject split.

The GT bodies of ``../shared/bench/synthetic-dev`` are anny meshes with the topology of the open body's first
13,348 vertices, so our fitted body and the GT body correspond vertex by vertex. Starting from the fitted body as
``bench/fidelity.py --fit-only`` scores it (``RESULTS/subject_1XX_body_gt_frame.npy``: in the GT camera's world,
best scale about the GT camera centre applied), this script removes one error source at a time by aligning with
the correspondence and rescores the Chamfer to the GT body with the set's own scorer (``evaluate.surface_metrics``,
same target samples as ``score_scale.py``):

- ``scored``: the body as scored (score_scale.py's ``body``);
- ``global``: after the best similarity transform of the torso (pelvis, spine, collars, neck vertices) onto the GT
  torso, applied to the whole body (rotation, translation, scale: what the camera, the focal length, the stature
  and the global orientation can fix together; the torso alone, so that a wrong arm does not tilt it);
- ``+arms`` / ``+legs`` / ``+torso_head``: after ``global``, those segments (vertices by their dominant skin joint)
  each rigidly aligned to the GT (what a perfect pose of those joints would fix);
- ``shape``: every segment aligned: what remains is shape (betas) and the body model's own limits.

Per-vertex mean distances (cm) per region after ``global`` are reported beside it, and a second table gives each
subject's stride and the ankles' and wrists' leads over the pelvis (:func:`limb_leads`, cm, ours after ``global``
with the GT in brackets): a walker's stride and arm swing in depth. Usage::

    python bench/fidelity.py --shared-set ../shared/bench/synthetic-dev --results R --fit-only [--gt-focal]
    python bench/fit_split.py --shared-set ../shared/bench/synthetic-dev --results R [--md table.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: SMPL-X joints (indices) of each region; hands, jaw and eyes go with their wrist / head.
REGIONS = {
    "arms": (16, 17, 18, 19, 20, 21, *range(25, 55)),
    "legs": (1, 2, 4, 5, 7, 8, 10, 11),
    "torso_head": (0, 3, 6, 9, 12, 13, 14, 15, 22, 23, 24),
}
#: SMPL-X joints whose vertices define the global alignment (the rigid core of the body).
CORE = (0, 3, 6, 9, 12, 13, 14)
#: Rigid segments: each joint's vertices, hands merged into the wrist and jaw/eyes into the head.
_MERGE = {**{j: 20 for j in range(25, 40)}, **{j: 21 for j in range(40, 55)}, 22: 15, 23: 15, 24: 15}


def similarity(src: np.ndarray, dst: np.ndarray, with_scale: bool = True,
               fit: np.ndarray | None = None) -> np.ndarray:
    """``src`` (N, 3) moved by the least-squares similarity (Umeyama; rigid when ``with_scale`` is False) that
    takes ``src[fit]`` onto ``dst[fit]`` (``fit``: a boolean mask, default all points)."""
    fit = np.ones(len(src), bool) if fit is None else fit
    ms, md = src[fit].mean(0), dst[fit].mean(0)
    a, b = src[fit] - ms, dst[fit] - md
    u, sv, vt = np.linalg.svd(b.T @ a)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag(d) @ vt
    s = float((sv * d).sum() / (a**2).sum()) if with_scale else 1.0
    return md + s * (src - ms) @ rot.T


def segments(body_model, num_vertices: int) -> np.ndarray:
    """(num_vertices,) segment id (a body joint index) of each vertex: its dominant skin joint, merged."""
    w = body_model.lbs_weights.detach().cpu().numpy()[:num_vertices]
    seg = w.argmax(1)
    return np.array([_MERGE.get(int(j), int(j)) for j in seg])


def split_subject(ours: np.ndarray, faces: np.ndarray, gt: np.ndarray, tgt, seg: np.ndarray) -> dict:
    """Chamfers (cm) of ``ours`` (anny-topology vertices in the GT world) after each alignment, and per-region
    per-vertex distances after the global one. ``tgt``: the scorer's ``Target`` of the GT body."""
    import evaluate as ev

    n = len(gt)
    keep = np.all(faces < n, axis=1)
    F = faces[keep]
    ours = ours[:n]

    def chamfer(v: np.ndarray) -> float:
        return float(ev.surface_metrics(v, F, tgt)["chamfer_cm"])

    out = {"scored": chamfer(ours)}
    g = similarity(ours, gt, fit=np.isin(seg, CORE))
    out["global"] = chamfer(g)
    aligned = g.copy()
    for s in np.unique(seg):
        m = seg == s
        aligned[m] = similarity(g[m], gt[m], with_scale=False)
    for region, joints in REGIONS.items():
        v = g.copy()
        m = np.isin(seg, joints)
        v[m] = aligned[m]
        out[f"+{region}"] = chamfer(v)
    out["shape"] = chamfer(aligned)
    err = np.linalg.norm(g - gt, axis=1) * 100.0
    out["vertex_cm"] = {r: float(err[np.isin(seg, j)].mean()) for r, j in REGIONS.items()}
    out["vertex_cm"]["all"] = float(err.mean())
    return out


#: Joints whose forward lead over the pelvis :func:`limb_leads` reports (SMPL-X indices).
LEAD_JOINTS = {"left_knee": 4, "right_knee": 5, "left_ankle": 7, "right_ankle": 8, "left_wrist": 20,
               "right_wrist": 21}


def limb_leads(joints: np.ndarray, frame: np.ndarray | None = None) -> dict[str, float]:
    """How far (cm) each of :data:`LEAD_JOINTS` lies ahead of the pelvis, and the ``stride`` (the left ankle's lead
    over the right, each relative to its hip), along a body's forward axis: the horizontal part of
    (left hip − right hip) × up of ``frame`` (default ``joints``), world Y up. ``joints``, ``frame``: (55, 3)
    SMPL-X-layout joints, metres."""
    frame = joints if frame is None else frame
    fwd = np.cross(frame[1] - frame[2], [0.0, 1.0, 0.0])
    fwd[1] = 0.0
    fwd /= max(float(np.linalg.norm(fwd)), 1e-12)
    out = {name: float(100.0 * (joints[j] - joints[0]) @ fwd) for name, j in LEAD_JOINTS.items()}
    out["stride"] = float(100.0 * ((joints[7] - joints[1]) - (joints[8] - joints[2])) @ fwd)
    return out


def results_arguments(doc: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the scripts that read a ``bench/fidelity.py --fit-only`` results folder (``--shared-set``,
    ``--results``, ``--md``; ``doc``'s first line describes it); puts the set's scorers on ``sys.path``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--shared-set", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True, help="a bench/fidelity.py --fit-only results folder")
    ap.add_argument("--md", type=Path, help="write the markdown table here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.shared_set.parent))
    return args


def saved_bodies(results: Path) -> list[tuple[str, Path]]:
    """``(subject name, path)`` of each fitted body a fit-only results folder saved (``subject_1XX_body_gt_frame.npy``,
    GT world), in subject order."""
    return [(npy.name[: len("subject_1XX")], npy) for npy in sorted(results.glob("subject_*_body_gt_frame.npy"))]


def main(argv: list[str] | None = None) -> None:
    args = results_arguments(__doc__, argv)
    import evaluate as ev
    from common import read_ply
    from fidelity import anny_regressor, regress_joints

    from icon_engine.body_model import load_body_model

    model = load_body_model()
    faces = np.asarray(model.faces, dtype=np.int64)
    rows = []
    regressor = None
    for name, npy in saved_bodies(args.results):
        sid = int(name.split("_")[1])
        gt, gf = read_ply(str(args.shared_set / name / "gt_body.ply"))
        tgt = ev.Target(gt, gf, seed=31 + sid)
        seg = segments(model, len(gt))
        row = {"subject": name, **split_subject(np.load(npy), faces, gt, tgt, seg)}
        # a walker's stride and arm swing: the limbs' forward leads over the pelvis, ours after the torso alignment,
        # both along the GT body's forward axis
        regressor = anny_regressor(model, len(gt)) if regressor is None else regressor
        gt_joints = regress_joints(gt, regressor)
        ours = regress_joints(similarity(np.load(npy)[: len(gt)], gt, fit=np.isin(seg, CORE)), regressor)
        row["leads_cm"] = {"ours": limb_leads(ours, gt_joints), "gt": limb_leads(gt_joints)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    keys = ["scored", "global", "+arms", "+legs", "+torso_head", "shape"]
    lines = ["| subject | " + " | ".join(keys) + " | vertex cm after global: arms / legs / torso+head |",
             "|---" * (len(keys) + 2) + "|"]
    for r in rows + [{"subject": "**mean**", **{k: np.mean([x[k] for x in rows]) for k in keys},
                      "vertex_cm": {k: np.mean([x["vertex_cm"][k] for x in rows]) for k in REGIONS}}]:
        v = r["vertex_cm"]
        lines.append(f"| {r['subject']} | " + " | ".join(f"{r[k]:.2f}" for k in keys)
                     + f" | {v['arms']:.1f} / {v['legs']:.1f} / {v['torso_head']:.1f} |")
    lines += ["", "| subject | stride | left ankle | right ankle | left wrist | right wrist |", "|---" * 6 + "|"]
    for r in rows:  # cm ahead of the pelvis: ours after the torso alignment (GT)
        o, g = r["leads_cm"]["ours"], r["leads_cm"]["gt"]
        lines.append(f"| {r['subject']} | " + " | ".join(f"{o[k]:+.1f} ({g[k]:+.1f})" for k in (
            "stride", "left_ankle", "right_ankle", "left_wrist", "right_wrist")) + " |")
    write_results(args, "\n".join(lines), rows, "split.json")


def write_results(args: argparse.Namespace, table: str, rows: list[dict], name: str) -> None:
    """Print the markdown ``table`` (and write it to ``--md``), and the ``rows`` as JSON ``name`` in ``--results``."""
    print(table)
    if args.md:
        args.md.write_text(table + "\n")
    (args.results / name).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
