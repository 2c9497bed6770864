"""Test-time augmentation of BlazePose on the shared rendered set (issue 15, wave 8).

The engine keeps one form of it: the "high" quality averages the landmarks with the mirrored close-up's
(``person.with_mirrored_pass``); this script measures that and the forms that were not kept.

For each subject of ``../shared/bench/synthetic-dev`` the engine's detection runs as usual (whole photo, then two
close-ups: :func:`icon_engine.person.find_people`, pass ``final``); then extra BlazePose passes run on close-ups
around that detection: ``same`` (the 1.5× close-up again, re-centred on the final detection), ``mirror`` (that
close-up flipped left-right, the answer flipped back: pixels mirrored, world-landmark x negated, left and right
landmarks exchanged), ``wide`` (a 2× close-up) and ``wide_mirror``.

Each pass's world landmarks give the eight limb bones' directions (thighs, shins, upper arms, forearms), compared
with the GT body's (joints regressed from ``gt_body.ply`` by the open body's regressor, turned into the GT camera's
axes, which BlazePose's world axes follow): the angle error, and the error of the bone's angle out of the image
plane (its depth). Combinations (normalised means of passes' directions) and the Spearman rank correlation between
the passes' disagreement (final vs mirror) and the final pass's error tell whether the errors are random per input
(TTA helps) or shared (it cannot).

``--write-detections BASE OUT --passes final+mirror [--part 2d|3d]``: copies the detection cache of a
``bench/fidelity.py --fit-only`` run ``BASE/_detections`` to ``OUT/_detections`` with the keypoints (2-D and
visibility) and/or world landmarks replaced by the mean over the named passes, so that ``fidelity.py --fit-only
--results OUT`` fits the combined landmarks. ``--fit-uncertainty SIGMA_DEG OUT [fidelity args]``: runs
``fidelity.py --fit-only`` with the 3-D direction term's bone weights scaled by σ² / (σ² + d²), d the angle
between the final and mirrored passes' bone directions (the disagreement as uncertainty, no averaging).

Usage: ``python bench/tta_probe.py --shared-set ../shared/bench/synthetic-dev --out R/tta_probe.npz [--load]``.
Figures: docs/benchmarks/fidelity.md, "Wave 8: body".
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

#: (name, SMPL-X joint from, joint to, BlazePose landmark from, landmark to)
BONES = (
    ("thigh_l", 1, 4, 23, 25), ("thigh_r", 2, 5, 24, 26), ("shin_l", 4, 7, 25, 27), ("shin_r", 5, 8, 26, 28),
    ("upper_arm_l", 16, 18, 11, 13), ("upper_arm_r", 17, 19, 12, 14), ("forearm_l", 18, 20, 13, 15),
    ("forearm_r", 19, 21, 14, 16),
)
#: (pass name, close-up margin, mirrored); ``final`` is the engine's own detection.
EXTRA_PASSES = (("same", 1.5, False), ("mirror", 1.5, True), ("wide", 2.0, False), ("wide_mirror", 2.0, True))
PASSES = ("final", *(name for name, _, _ in EXTRA_PASSES))


def mirror_index() -> np.ndarray:
    """(33,) each BlazePose landmark's mirror image (the engine's ``person.MIRROR_INDEX``)."""
    from icon_engine.person import MIRROR_INDEX

    return MIRROR_INDEX


def closeup_pass(rgb: np.ndarray, raw, margin: float, mirror: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(keypoints (33, 3) photo px + visibility, world landmarks (33, 3) BlazePose axes) of one BlazePose pass on
    the ``margin``× close-up around detection ``raw`` (the engine's ``person._closeup_pass``), optionally on the
    mirrored close-up with the answer mirrored back; None when nobody is found."""
    from icon_engine.person import _closeup_pass

    found = _closeup_pass(rgb, raw, margin, mirror)
    return None if found is None else (found.keypoints, found.world)


def detect_passes(photo_path: Path) -> dict[str, np.ndarray]:
    """``{pass}_kp`` / ``{pass}_world`` of every pass (NaN where nobody was found) and ``{pass}_cpu_s``."""
    from icon_engine.image_io import load_photo
    from icon_engine.person import find_people

    rgb = load_photo(photo_path).rgb
    raw = find_people(rgb, 1)[0]
    out = {"final_kp": raw.keypoints, "final_world": raw.world}
    for name, margin, mirror in EXTRA_PASSES:
        cpu = time.process_time()
        found = closeup_pass(rgb, raw, margin, mirror)
        out[f"{name}_cpu_s"] = np.array(time.process_time() - cpu)
        out[f"{name}_kp"], out[f"{name}_world"] = found if found is not None else (np.full((33, 3), np.nan),) * 2
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def bone_dirs(world: np.ndarray) -> np.ndarray:
    """(8, 3) unit limb directions from BlazePose world landmarks (BlazePose axes)."""
    return _unit(np.array([world[b] - world[a] for _, _, _, a, b in BONES]))


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((_unit(a) * _unit(b)).sum(-1), -1.0, 1.0)))


def depth_angle_err_deg(d: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """|error| of each unit direction's angle out of the image plane (towards/away from the camera), degrees."""
    return np.degrees(np.abs(np.arcsin(np.clip(d[:, 2], -1, 1)) - np.arcsin(np.clip(gt[:, 2], -1, 1))))


def gt_dirs(sd: Path, regressor: np.ndarray) -> np.ndarray:
    """(8, 3) the GT body's limb directions in the GT camera's axes (x right, y down, z forward)."""
    from common import read_ply
    from fidelity import regress_joints

    verts, _ = read_ply(str(sd / "gt_body.ply"))
    cam = json.loads((sd / "camera.json").read_text())
    joints = regress_joints(verts, regressor) @ np.asarray(cam["R"], dtype=np.float64).T
    return _unit(np.array([joints[b] - joints[a] for _, a, b, _, _ in BONES]))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def report(bench_dir: Path, data: dict[str, np.ndarray]) -> None:
    """Print the per-pass and combined direction errors against the GT bodies."""
    from common import read_ply
    from fidelity import anny_regressor

    from icon_engine.body_model import load_body_model

    model = load_body_model()
    combos = {"mean_final_mirror": ("final", "mirror"), "mean_all": PASSES}
    errs = {name: [] for name in (*PASSES, *combos)}
    depth = {name: [] for name in errs}
    spread, final_err = [], []
    for sd in sorted(bench_dir.glob("subject_*")):
        gt = gt_dirs(sd, anny_regressor(model, len(read_ply(str(sd / "gt_body.ply"))[0])))
        dirs = {name: bone_dirs(data[f"{sd.name}/{name}_world"]) for name in PASSES}
        for name, members in combos.items():
            dirs[name] = _unit(sum(dirs[p] for p in members if np.isfinite(dirs[p]).all()))
        for name, d in dirs.items():
            errs[name].append(angle_deg(d, gt))
            depth[name].append(depth_angle_err_deg(d, gt))
        spread.append(angle_deg(dirs["final"], dirs["mirror"]))
        final_err.append(angle_deg(dirs["final"], gt))
        print(sd.name, " ".join(f"{name} {np.nanmean(e[-1]):.1f}" for name, e in errs.items()))
    for title, table in (("angle error", errs), ("depth (out-of-image-plane angle) error", depth)):
        print(f"mean {title} per bone (deg):", " ".join(b[0] for b in BONES))
        for name, e in table.items():
            e = np.array(e)
            print(f"  {name:18s} {np.nanmean(e):5.1f} |", " ".join(f"{v:5.1f}" for v in np.nanmean(e, 0)))
    s, f = np.concatenate(spread), np.concatenate(final_err)
    print(f"final vs mirror disagreement: mean {s.mean():.1f} deg; Spearman with the final pass's error "
          f"{spearman(s, f):.2f}")
    cpu = [float(data[k]) for k in data if k.endswith("mirror_cpu_s") and "wide" not in k]
    if cpu:
        print(f"one mirrored close-up pass: {np.mean(cpu):.3f} s CPU on average")


def write_detections(data: dict[str, np.ndarray], base: Path, out: Path, passes: list[str], part: str) -> None:
    """``out/_detections`` = ``base/_detections`` with the landmarks averaged over ``passes`` (``part``: "2d"
    keypoints only, "3d" world landmarks only, "both"); visibility: the lower of the engine's (its out-of-frame
    cap) and the passes' mean."""
    (out / "_detections").mkdir(parents=True, exist_ok=True)
    for f in sorted((base / "_detections").glob("subject_*.pkl")):
        obs = pickle.loads(f.read_bytes())  # written by bench/fidelity.py itself
        kps = np.stack([data[f"{f.stem}/{p}_kp"] for p in passes])
        worlds = np.stack([data[f"{f.stem}/{p}_world"] for p in passes])
        if part != "3d":
            kp = obs.keypoints.copy()
            kp[:, :2] = kps[:, :, :2].mean(0)
            kp[:, 2] = np.minimum(kp[:, 2], kps[:, :, 2].mean(0))
            obs.keypoints = kp
        if part != "2d":
            obs.world_landmarks = worlds.mean(0)
        (out / "_detections" / f.name).write_bytes(pickle.dumps(obs))


def fit_with_uncertainty(data: dict[str, np.ndarray], sigma_deg: float, fidelity_args: list[str]) -> None:
    """``fidelity.py --fit-only`` with each limb's 3-D direction weight × σ² / (σ² + d²), d the final vs mirrored
    passes' angle between that bone's directions (an A/B patch of ``icon_engine.fit.core``, not the engine)."""
    import fidelity
    import torch

    import icon_engine.fit.core as core
    from icon_engine.fit.landmarks import LIMB_BONES

    sigma = np.radians(sigma_deg)
    bone_dirs_orig, init_orig, detection_orig = core._Problem._bone_dirs, core._Problem.__init__, \
        fidelity.cached_detection

    def bone_dirs_patched(self) -> None:
        bone_dirs_orig(self)
        a, b = data[f"{self._subject}/final_world"], data[f"{self._subject}/mirror_world"]
        d = np.radians([angle_deg(a[j] - a[i], b[j] - b[i]) for _, _, i, j in LIMB_BONES])
        self.bone_w = self.bone_w * torch.tensor(sigma**2 / (sigma**2 + d**2), dtype=torch.float32)

    def init_patched(self, observation, *args, **kwargs) -> None:
        self._subject = observation._subject
        init_orig(self, observation, *args, **kwargs)

    def detection_patched(photo, cached: Path):
        obs = detection_orig(photo, cached)
        obs._subject = cached.stem
        return obs

    core._Problem._bone_dirs, core._Problem.__init__ = bone_dirs_patched, init_patched
    fidelity.cached_detection = detection_patched
    fidelity.main(["--fit-only", *fidelity_args])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared-set", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="npz of the raw passes (written, or read with --load)")
    ap.add_argument("--load", action="store_true", help="read the passes from --out instead of detecting")
    ap.add_argument("--write-detections", type=Path, nargs=2, metavar=("BASE", "OUT"))
    ap.add_argument("--passes", default="final+mirror", help="with --write-detections: passes to average (a+b)")
    ap.add_argument("--part", default="both", choices=("both", "2d", "3d"))
    ap.add_argument("--fit-uncertainty", type=float, metavar="SIGMA_DEG")
    ap.add_argument("fidelity_args", nargs="*", help="with --fit-uncertainty: fidelity.py arguments (after --)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.shared_set.parent))
    if args.load:
        data = dict(np.load(args.out))
    else:
        data = {}
        for sd in sorted(args.shared_set.glob("subject_*")):
            data.update({f"{sd.name}/{k}": v for k, v in detect_passes(sd / "photo.png").items()})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.out, **data)
    if args.write_detections:
        write_detections(data, *args.write_detections, args.passes.split("+"), args.part)
    elif args.fit_uncertainty is not None:
        fit_with_uncertainty(data, args.fit_uncertainty, ["--shared-set", str(args.shared_set), *args.fidelity_args])
    else:
        report(args.shared_set, data)


if __name__ == "__main__":
    main()
