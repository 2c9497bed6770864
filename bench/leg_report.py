"""What the fitted legs' error *is*, per subject of the shared rendered set (issue 15, wave 7: legs).

``bench/fit_split.py`` says how much of the body error perfect legs would remove; this script says what is wrong
with them. For each leg of each subject of a ``bench/fidelity.py --fit-only`` results folder it compares our fitted
body (``subject_1XX_body_gt_frame.npy``: in the GT camera's world, on the GT camera's rays) with the GT body
(vertex-corresponding, anny topology; joints of both by the open body's regressor) and BlazePose's landmarks (the
cached detection), in two frames:

- **2-D, the image** (original-photo pixels, GT camera): BlazePose's hip, knee, ankle, heel and toe against the GT
  joints/keypoints projected (``bp-gt``: where the landmarks sit on the body, the mapping's bias) and our fitted
  points projected against BlazePose (``fit-bp``: what the fit leaves), split into the body's up and across
  directions in the image (``_up``: + towards the head, ``_x``: + towards the body's left in the image).
- **3-D, after the torso alignment** (``fit_split.similarity`` of the pelvis/spine/collar/neck vertices, as the
  split's ``global``): each joint's error in the GT body's frame (``_l`` the body's left, ``_u`` up, ``_f``
  forward, cm) and along the GT camera's line of sight (``_d``: + away from the camera); the hips' width and
  height over the pelvis; thigh and shin pitch (forward swing in the sagittal plane, °, + forward) and roll
  (sideways, °, + outwards); knee bend (°); the foot's yaw (toe out, °) and pitch (toe up, °); segment lengths
  (ours / GT after the alignment's scale); the centre of mass's lead over the ankles (:func:`centre_of_mass`,
  along the GT body's forward axis); and the leg vertices' mean error split into the line of sight and the image
  plane.

Usage::

    python bench/fidelity.py --shared-set ../shared/bench/synthetic-dev --results R --fit-only [--gt-focal]
    python bench/leg_report.py --shared-set ../shared/bench/synthetic-dev --results R [--md table.md]
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fit_split import CORE, REGIONS, results_arguments, saved_bodies, segments, similarity, write_results  # noqa: E402

#: Per side: SMPL-X joints hip, knee, ankle, foot (toe base) and the model's heel / big-toe keypoint names.
LEG = {"left": (1, 4, 7, 10, "left_heel", "left_big_toe"), "right": (2, 5, 8, 11, "right_heel", "right_big_toe")}


#: The body's segments as (joint a, joint b, mass fraction), each segment's mass at the midpoint of its two SMPL-X
#: joints: Winter's segment masses (Biomechanics and Motor Control of Human Movement, table 4.1: trunk 0.497, head
#: and neck 0.081, upper arm 0.028, forearm 0.016, hand 0.006, thigh 0.100, leg 0.0465, foot 0.0145).
SEGMENT_MASS = ((0, 12, 0.497), (12, 15, 0.081), *(
    (a + s, b + s, m) for s in (0, 1) for a, b, m in ((16, 18, 0.028), (18, 20, 0.016), (1, 4, 0.100),
                                                      (4, 7, 0.0465), (7, 10, 0.0145))),
    (20, 28, 0.006), (21, 43, 0.006))


def centre_of_mass(joints: np.ndarray) -> np.ndarray:
    """(3,) the body's centre of mass from SMPL-X joints (55, 3), segment masses :data:`SEGMENT_MASS`."""
    a, b, m = (np.array(c) for c in zip(*SEGMENT_MASS, strict=True))
    return (m[:, None] * 0.5 * (joints[a.astype(int)] + joints[b.astype(int)])).sum(0) / m.sum()


def body_frame(joints: np.ndarray) -> np.ndarray:
    """(3, 3) rows: the body's left (hip line, horizontal), world up (+Y), forward; from SMPL-X joints (55, 3)."""
    up = np.array([0.0, 1.0, 0.0])
    left = joints[1] - joints[2]
    left[1] = 0.0
    left /= max(float(np.linalg.norm(left)), 1e-12)
    return np.stack([left, up, np.cross(left, up)])


def _angles(v: np.ndarray, frame: np.ndarray, outward: float) -> tuple[float, float]:
    """Pitch (forward swing, °) and roll (outwards, °) of a downward bone ``v`` in the body ``frame``;
    ``outward`` +1 for the left leg (its outside is +left), −1 for the right."""
    lt, u, f = frame @ v
    return float(np.degrees(np.arctan2(f, -u))), float(np.degrees(np.arctan2(outward * lt, -u)))


def leg_geometry(joints: np.ndarray, kp: dict[str, np.ndarray], frame: np.ndarray) -> dict[str, float]:
    """Angles (°) and lengths (m) of both legs of SMPL-X ``joints`` (55, 3) and heel/toe keypoints ``kp`` in the
    body ``frame`` (:func:`body_frame`)."""
    out: dict[str, float] = {"hip_width": float(np.linalg.norm(joints[1] - joints[2]))}
    for side, (h, k, a, _, heel, toe) in LEG.items():
        s = 1.0 if side == "left" else -1.0
        thigh, shin = joints[k] - joints[h], joints[a] - joints[k]
        out[f"{side}_hip_up"] = float(frame[1] @ (joints[h] - joints[0]))
        out[f"{side}_thigh_pitch"], out[f"{side}_thigh_roll"] = _angles(thigh, frame, s)
        out[f"{side}_shin_pitch"], out[f"{side}_shin_roll"] = _angles(shin, frame, s)
        cos = thigh @ shin / max(float(np.linalg.norm(thigh) * np.linalg.norm(shin)), 1e-12)
        out[f"{side}_knee_bend"] = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
        foot = frame @ (kp[toe] - kp[heel])
        out[f"{side}_foot_yaw"] = float(np.degrees(np.arctan2(s * foot[0], foot[2])))
        out[f"{side}_foot_pitch"] = float(np.degrees(np.arctan2(foot[1], np.hypot(foot[0], foot[2]))))
        out[f"{side}_thigh_len"], out[f"{side}_shin_len"] = float(np.linalg.norm(thigh)), float(np.linalg.norm(shin))
    return out


def project(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 2) pixels of world points (N, 3) in the OpenCV camera ``K, R, t``."""
    c = points @ R.T + t
    return (c[:, :2] / c[:, 2:3]) @ K[:2, :2].T + K[:2, 2]


def image_axes(px: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Unit image directions (px frame): the body's up (mid-ankles → mid-hips of ``px``, GT projected) and across
    (perpendicular, towards the body's left hip)."""
    up = 0.5 * (px["left_hip"] + px["right_hip"]) - 0.5 * (px["left_ankle"] + px["right_ankle"])
    up /= max(float(np.linalg.norm(up)), 1e-12)
    across = np.array([-up[1], up[0]])
    if across @ (px["left_hip"] - px["right_hip"]) < 0:
        across = -across
    return up, across


def subject_report(ours_v: np.ndarray, gt_v: np.ndarray, regressor: np.ndarray, model, seg: np.ndarray,
                   keypoints_px: np.ndarray, cam: dict) -> dict:
    """The legs' diagnosis of one subject (see the module docstring); ``keypoints_px`` (33, 3) BlazePose in
    original-photo pixels + visibility; ``cam`` the set's camera.json."""
    from fidelity import regress_joints

    from icon_engine.fit.landmarks import BP

    K, R, t = (np.asarray(cam[k], dtype=np.float64) for k in ("K", "R", "t"))
    n = len(gt_v)
    names = list(model.keypoint_names)
    ids = model.keypoint_vertex_ids.cpu().numpy()
    kp_of = {nm: ids[names.index(nm)] for side in LEG.values() for nm in side[4:]}

    def points(v: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return regress_joints(v, regressor), {nm: v[i] for nm, i in kp_of.items()}

    oj, okp = points(ours_v[:n])
    gj, gkp = points(gt_v)
    out: dict = {}
    # 2-D: where BlazePose's leg landmarks sit on the GT body, and what the fit leaves of them
    pts = {}
    for side, (h, k, a, _, heel, toe) in LEG.items():
        for part, (j_gt, j_ours) in {"hip": (gj[h], oj[h]), "knee": (gj[k], oj[k]), "ankle": (gj[a], oj[a]),
                                     "heel": (gkp[heel], okp[heel]), "foot_index": (gkp[toe], okp[toe])}.items():
            pts[f"{side}_{part}"] = (j_gt, j_ours)
    for side, j in (("left", 16), ("right", 17)):
        pts[f"{side}_shoulder"] = (gj[j], oj[j])
    gt_px = {nm: project(p[0][None], K, R, t)[0] for nm, p in pts.items()}
    ours_px = {nm: project(p[1][None], K, R, t)[0] for nm, p in pts.items()}
    up, across = image_axes(gt_px)
    for nm in pts:
        bp = keypoints_px[BP[nm], :2]
        for tag, d in (("bp-gt", bp - gt_px[nm]), ("fit-bp", ours_px[nm] - bp)):
            out[f"2d_{tag}_{nm}_up"], out[f"2d_{tag}_{nm}_x"] = float(d @ up), float(d @ across)
        # px → cm at the joint's depth
        out[f"cm_per_px_{nm}"] = float(100.0 * (R @ pts[nm][0] + t)[2] / K[0, 0])
    # 3-D after the torso alignment
    g = similarity(ours_v[:n], gt_v, fit=np.isin(seg, CORE))
    aj, akp = points(g)
    frame = body_frame(gj)
    sight = R[2]
    for side, (h, k, a, _, _, toe) in LEG.items():
        for part, (pa, pg) in {"hip": (aj[h], gj[h]), "knee": (aj[k], gj[k]), "ankle": (aj[a], gj[a]),
                               "toe": (akp[toe], gkp[toe])}.items():
            d = 100.0 * (pa - pg)
            el, eu, ef = frame @ d
            out[f"3d_{side}_{part}_l"] = float(el if side == "left" else -el)  # + outwards for both legs
            out[f"3d_{side}_{part}_u"], out[f"3d_{side}_{part}_f"] = float(eu), float(ef)
            out[f"3d_{side}_{part}_d"] = float(d @ sight)
    geo_o, geo_g = leg_geometry(aj, akp, frame), leg_geometry(gj, gkp, frame)
    for key in geo_o:
        out[f"geo_{key}"], out[f"gt_{key}"] = geo_o[key], geo_g[key]
    for tag, j in (("ours", aj), ("gt", gj)):  # quiet standing: the centre of mass ~5 cm ahead of the ankles
        com = centre_of_mass(j)
        out[f"com_ahead_{tag}"] = float(100.0 * frame[2] @ (com - 0.5 * (j[7] + j[8])))
    for tag, j in (("ours", oj), ("gt", gj)):  # trunk (mid-hips → mid-shoulders) and legs (hip → ankle), metres
        out[f"trunk_{tag}"] = float(np.linalg.norm(0.5 * (j[16] + j[17] - j[1] - j[2])))
        out[f"leg_{tag}"] = float(0.5 * (np.linalg.norm(j[1] - j[7]) + np.linalg.norm(j[2] - j[8])))
    legs = np.isin(seg, REGIONS["legs"])
    err = 100.0 * (g - gt_v)[legs]
    depth = err @ sight
    out["legs_vertex_cm"] = float(np.linalg.norm(err, axis=1).mean())
    out["legs_depth_cm"] = float(np.abs(depth).mean())
    out["legs_image_cm"] = float(np.linalg.norm(err - depth[:, None] * sight, axis=1).mean())
    return out


def _row(r: dict, side: str) -> str:
    s = r["subject"][-3:]

    def d(key: str) -> float:
        return r[f"geo_{side}_{key}"] - r[f"gt_{side}_{key}"]

    ratio = (r[f"geo_{side}_thigh_len"] + r[f"geo_{side}_shin_len"]) / (r[f"gt_{side}_thigh_len"]
                                                                        + r[f"gt_{side}_shin_len"])
    return (f"| {s} {side[0].upper()} | " + " / ".join(f"{r[f'3d_{side}_hip_{c}']:+.1f}" for c in "luf")
            + f" | {d('thigh_pitch'):+.0f} ({r[f'gt_{side}_thigh_pitch']:+.0f}) | {d('thigh_roll'):+.0f}"
            + f" | {d('knee_bend'):+.0f} ({r[f'gt_{side}_knee_bend']:.0f}) | {d('shin_pitch'):+.0f}"
            + f" | {d('shin_roll'):+.0f} | {d('foot_yaw'):+.0f} / {d('foot_pitch'):+.0f} | {ratio:.3f} | "
            + " / ".join(f"{r[f'3d_{side}_ankle_{c}']:+.1f}" for c in "lufd") + " | "
            + " / ".join(f"{r[f'2d_bp-gt_{side}_{p}_up']:+.0f}" for p in ("hip", "knee", "ankle")) + " | "
            + " / ".join(f"{r[f'2d_fit-bp_{side}_{p}_up']:+.0f}, {r[f'2d_fit-bp_{side}_{p}_x']:+.0f}"
                         for p in ("hip", "knee", "ankle")) + " |")


def table(rows: list[dict]) -> str:
    """Markdown: one row per leg, then the per-subject vertex split and the means."""
    lines = ["| leg | hip 3-D err l/u/f cm | thigh pitch err ° (GT) | thigh roll err ° | knee bend err ° (GT) "
             "| shin pitch err ° | shin roll err ° | foot yaw / pitch err ° | leg length ratio "
             "| ankle 3-D err l/u/f/depth cm | 2-D BP−GT up px: hip/knee/ankle | 2-D fit−BP px (up, x): "
             "hip / knee / ankle |", "|---" * 12 + "|"]
    for r in rows:
        for side in LEG:
            lines.append(_row(r, side))
    lines += ["", "| subject | legs vertex cm | of which depth (line of sight) | image plane | hip width ours/GT "
              "| cm per px at the hips | legs / trunk, ours / GT | centre of mass ahead of the ankles, cm: ours (GT) |",
              "|---" * 8 + "|"]
    for r in rows:
        lines.append(f"| {r['subject']} | {r['legs_vertex_cm']:.1f} | {r['legs_depth_cm']:.1f} | "
                     f"{r['legs_image_cm']:.1f} | {r['geo_hip_width']:.3f} / {r['gt_hip_width']:.3f} | "
                     f"{r['cm_per_px_left_hip']:.2f} | "
                     f"{r['leg_ours'] / r['trunk_ours'] / (r['leg_gt'] / r['trunk_gt']):.3f} | "
                     f"{r['com_ahead_ours']:+.1f} ({r['com_ahead_gt']:+.1f}) |")
    keys = [k for k in rows[0] if isinstance(rows[0][k], float)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    lines += ["", f"Means: legs vertex {mean['legs_vertex_cm']:.2f} cm (depth {mean['legs_depth_cm']:.2f}, image "
              f"plane {mean['legs_image_cm']:.2f}); BlazePose − GT, up (px; both legs): "
              + ", ".join(f"{p} {np.mean([mean[f'2d_bp-gt_{s}_{p}_up'] for s in LEG]):+.1f}"
                          for p in ("shoulder", "hip", "knee", "ankle", "heel", "foot_index"))
              + "; across, outwards: "
              + ", ".join(f"{p} {np.mean([mean[f'2d_bp-gt_left_{p}_x'], -mean[f'2d_bp-gt_right_{p}_x']]):+.1f}"
                          for p in ("shoulder", "hip", "knee", "ankle")) + "; fit − BlazePose, up (px): "
              + ", ".join(f"{p} {np.mean([mean[f'2d_fit-bp_{s}_{p}_up'] for s in LEG]):+.1f}"
                          for p in ("shoulder", "hip", "knee", "ankle", "heel", "foot_index")) + "."]
    for k in ("thigh_pitch", "thigh_roll", "knee_bend", "shin_pitch", "shin_roll", "foot_yaw", "foot_pitch"):
        errs = [r[f"geo_{s}_{k}"] - r[f"gt_{s}_{k}"] for r in rows for s in LEG]
        lines.append(f"- {k}: mean error {np.mean(errs):+.1f}°, mean |error| {np.mean(np.abs(errs)):.1f}°")
    for part in ("hip", "knee", "ankle", "toe"):
        comps = {c: [r[f"3d_{s}_{part}_{c}"] for r in rows for s in LEG] for c in "lufd"}
        lines.append(f"- {part} 3-D error (cm, mean signed / mean |·|): " + ", ".join(
            f"{c} {np.mean(v):+.1f} / {np.mean(np.abs(v)):.1f}" for c, v in comps.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = results_arguments(__doc__, argv)
    from common import read_ply
    from fidelity import anny_regressor

    from icon_engine.body_model import load_body_model
    from icon_engine.image_io import load_photo

    model = load_body_model()
    rows, regressor = [], None
    for name, npy in saved_bodies(args.results):
        sd = args.shared_set / name
        gt, _ = read_ply(str(sd / "gt_body.ply"))
        regressor = anny_regressor(model, len(gt)) if regressor is None else regressor
        obs = pickle.loads((args.results / "_detections" / f"{name}.pkl").read_bytes())  # written by fidelity.py
        kp = np.asarray(obs.keypoints, dtype=np.float64).copy()
        kp[:, :2] /= float(load_photo(sd / "photo.png").scale)
        cam = json.loads((sd / "camera.json").read_text())
        row = {"subject": name, **subject_report(np.load(npy), gt, regressor, model, segments(model, len(gt)), kp,
                                                 cam)}
        rows.append(row)
    write_results(args, table(rows), rows, "legs.json")


if __name__ == "__main__":
    main()
