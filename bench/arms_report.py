"""Where the fitted arms land, per arm, on the shared rendered set (issue 15, wave 6: arms).

Reads a ``bench/fidelity.py --fit-only`` results folder (``RESULTS/subject_1XX_body_gt_frame.npy``: the fitted
body in the GT camera's world, on the GT camera rays; ``RESULTS/_detections/subject_1XX.pkl``: BlazePose) and
the set's GT bodies. Joints of both bodies are regressed by the same regressor (:func:`fidelity.anny_regressor`).
Per arm (left/right) it reports, in the GT camera's frame (OpenCV: x right, y down, z away, metres):

- ``px_*``: 2-D distance (original photo px) of our shoulder/elbow/wrist projection from BlazePose's landmark,
  and of the GT's (BlazePose's own error, the floor of what the 2-D term can tell);
- ``dz_*``: depth error (cm) of our elbow/wrist relative to our shoulder, against the GT's, after the torso
  similarity alignment (``fit_split.similarity`` on the core vertices: camera and scale errors removed);
- ``bp_dz_*``: the same for BlazePose's world landmarks (its 3-D direction term's target: the depth component
  of its unit bone direction times the GT bone length), i.e. how far the direction term pulls the wrong way;
- ``len_upper`` / ``len_fore``: our bone lengths over the GT's, after the torso alignment's scale;
- ``len2d_ours`` / ``len2d_bp``: the 2-D shoulder→wrist length (photo px) of our projected joints and of
  BlazePose's landmarks, over the GT's projected joints' (wave 6b: is a short arm short in the image too?);
- ``along_ours_pct`` / ``along_bp_pct``: where our shoulder, elbow and wrist (and BlazePose's) lie along the GT's 2-D
  shoulder→wrist line, relative to the GT's joints, in % of that line's length (+ = towards the hand):
  a shoulder at −9 % sits above the joint, a wrist at −3 % up the forearm.

Caveat: the GT is a mesh, so both bodies' joints are regressed from posed vertices; on a bent elbow the regressed
elbow lies inside the bend (the fit's own forward-kinematics elbow is 38–69 px out from its regressed one on the
rendered set's bent arms, 102 left, 103, 106), so there ``px_*`` of the elbow and the bone lengths carry that
artefact on both sides; straight arms are unaffected (2–5 px).

Usage: ``python bench/arms_report.py --shared-set ../shared/bench/synthetic-dev --results R [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

#: (SMPL-X joint, BlazePose landmark) of shoulder, elbow, wrist per side.
ARM = {side: ((16 + k, 11 + k), (18 + k, 13 + k), (20 + k, 15 + k)) for k, side in enumerate(("left", "right"))}


def arm_rows(ours: np.ndarray, gt: np.ndarray, obs, scale: float, cam: dict, regressor: np.ndarray,
             seg: np.ndarray) -> dict:
    """Per-arm figures of one subject (see the module docstring). ``ours``/``gt``: (N, 3) vertices in the GT
    world; ``obs``: the cached ``PersonObservation``; ``scale``: processing px per original px."""
    from fit_split import CORE, similarity

    K, R, t = (np.asarray(cam[k], dtype=np.float64) for k in ("K", "R", "t"))
    n = len(gt)
    ours = ours[:n]
    aligned = similarity(ours, gt, fit=np.isin(seg, CORE))
    J_ours, J_al, J_gt = (regressor @ v for v in (ours, aligned, gt))

    def cam_frame(x: np.ndarray) -> np.ndarray:
        return x @ R.T + t

    def project(x: np.ndarray) -> np.ndarray:
        c = cam_frame(x)
        return (c[:, :2] / c[:, 2:3]) * np.diag(K)[:2] + K[:2, 2]

    kps = np.asarray(obs.keypoints, dtype=np.float64)
    wl = np.asarray(obs.world_landmarks, dtype=np.float64)
    out = {}
    for side, chain in ARM.items():
        joints = [j for j, _ in chain]
        lms = [b for _, b in chain]
        row: dict = {}
        p_ours, p_gt = project(J_ours[joints]), project(J_gt[joints])
        obs_px = kps[lms, :2] / scale
        row["px_ours"] = np.linalg.norm(p_ours - obs_px, axis=1).round(1).tolist()
        row["px_gt"] = np.linalg.norm(p_gt - obs_px, axis=1).round(1).tolist()
        row["vis"] = kps[lms, 2].round(2).tolist()
        c_al, c_gt = cam_frame(J_al[joints]), cam_frame(J_gt[joints])
        row["dz_ours_cm"] = (100 * ((c_al[1:, 2] - c_al[0, 2]) - (c_gt[1:, 2] - c_gt[0, 2]))).round(1).tolist()
        # BlazePose: the depth component of each unit bone direction, times the GT bone length, chained
        bp_rel, gt_rel = [0.0], [0.0]
        for i in (1, 2):
            d = wl[lms[i]] - wl[lms[i - 1]]
            d = d / max(np.linalg.norm(d), 1e-9)
            g = c_gt[i] - c_gt[i - 1]
            bp_rel.append(bp_rel[-1] + d[2] * np.linalg.norm(g))
            gt_rel.append(gt_rel[-1] + g[2])
        row["dz_bp_cm"] = (100 * (np.array(bp_rel[1:]) - np.array(gt_rel[1:]))).round(1).tolist()
        row["gt_dz_cm"] = (100 * (c_gt[1:, 2] - c_gt[0, 2])).round(1).tolist()
        g_line = p_gt[2] - p_gt[0]
        g_len = max(float(np.linalg.norm(g_line)), 1e-9)
        u = g_line / g_len
        row["len2d_ours"] = round(float(np.linalg.norm(p_ours[2] - p_ours[0])) / g_len, 3)
        row["len2d_bp"] = round(float(np.linalg.norm(obs_px[2] - obs_px[0])) / g_len, 3)
        for k, pts in (("along_ours_pct", p_ours), ("along_bp_pct", obs_px)):
            row[k] = [round(float(100.0 * (pts[i] - p_gt[i]) @ u / g_len), 1) for i in (0, 1, 2)]
        for k, (a, b) in (("len_upper", (0, 1)), ("len_fore", (1, 2))):
            row[k] = round(float(np.linalg.norm(J_al[joints[b]] - J_al[joints[a]])
                                 / np.linalg.norm(J_gt[joints[b]] - J_gt[joints[a]])), 3)
        out[side] = row
    trunk = (np.linalg.norm(J_al[12] - J_al[0]) / np.linalg.norm(J_gt[12] - J_gt[0]))
    out["trunk"] = round(float(trunk), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-set", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.shared_set.parent))
    from common import read_ply
    from fidelity import anny_regressor
    from fit_split import segments

    from icon_engine.body_model import load_body_model
    from icon_engine.image_io import load_photo

    model = load_body_model()
    rows = {}
    for npy in sorted(args.results.glob("subject_*_body_gt_frame.npy")):
        name = npy.name[: len("subject_1XX")]
        sd = args.shared_set / name
        gt, _ = read_ply(str(sd / "gt_body.ply"))
        obs = pickle.loads((args.results / "_detections" / f"{name}.pkl").read_bytes())
        photo = load_photo(sd / "photo.png")
        cam = json.loads((sd / "camera.json").read_text())
        rows[name] = arm_rows(np.load(npy), gt, obs, float(photo.scale), cam, anny_regressor(model, len(gt)),
                              segments(model, len(gt)))
        r = rows[name]
        print(f"{name} trunk {r['trunk']}")
        for side in ("left", "right"):
            a = r[side]
            print(f"  {side:5s} px ours {a['px_ours']} gt {a['px_gt']} vis {a['vis']} | dz ours {a['dz_ours_cm']} "
                  f"bp {a['dz_bp_cm']} (gt rel {a['gt_dz_cm']}) | len upper {a['len_upper']} fore {a['len_fore']} | "
                  f"2-D sh→wr ours {a['len2d_ours']} bp {a['len2d_bp']}, shoulder/elbow/wrist along the arm ours "
                  f"{a['along_ours_pct']} bp {a['along_bp_pct']} %")

    def mean(key: str, i: int | None = None) -> float:
        vals = [abs(r[s][key][i]) if i is not None else r[s][key] for r in rows.values() for s in ("left", "right")]
        return float(np.mean(vals))

    summary = {"px_ours_elbow": mean("px_ours", 1), "px_ours_wrist": mean("px_ours", 2),
               "px_gt_elbow": mean("px_gt", 1), "px_gt_wrist": mean("px_gt", 2),
               "abs_dz_ours_elbow_cm": mean("dz_ours_cm", 0), "abs_dz_ours_wrist_cm": mean("dz_ours_cm", 1),
               "abs_dz_bp_elbow_cm": mean("dz_bp_cm", 0), "abs_dz_bp_wrist_cm": mean("dz_bp_cm", 1),
               "len_upper": mean("len_upper"), "len_fore": mean("len_fore"),
               "len2d_ours": mean("len2d_ours"), "len2d_bp": mean("len2d_bp"),
               "trunk": float(np.mean([r["trunk"] for r in rows.values()]))}
    print(" ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
