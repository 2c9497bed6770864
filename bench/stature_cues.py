"""Can a photo's proportions tell a person's stature? What the open body's own population says (issue 15).

One photo does not show its scale: the fit's stature is the prior's 1.70 m unless ``--height`` is given
(docs/fit.md, *Scale*). The issue asks for "a stature estimate from the photo (proportions, head size, sex cues)".
This script measures how much such cues could carry, on anny's calibrated adult population (the model our open body
and the shared rendered set are built from):

- **Scale-free shape → stature**: each sampled adult's T-posed rest body divided by its stature (the shape a photo
  could show at best), its principal components, and a least-squares fit of log-stature on the first ``k`` of them
  (residual spread on held-out samples, against the population's spread).
- **Single ratios** (joint-to-joint lengths over the stature: head, limbs, torso, shoulder and hip width): each
  ratio's spread, the slope of log-stature on the log-ratio, what remains of the spread with the ratio known
  exactly, and with the ratio measured with a relative error of :data:`MEASUREMENT_ERRORS` (Gaussian noise on the
  log-ratio, the regression refitted on the noisy ratios: what a photo's landmarks could give).
- **Sex**: the statures of women and men (anny's gender phenotype above / below 0.5).
- ``--fit-results R [R ...]``: the betas a ``bench/fidelity.py --shared-set … --fit-only`` run fitted (its
  ``fit_only.json``) run through the same scale-free regression (stature and gender) against the set's truth.

Usage: ``python bench/stature_cues.py [--samples 600] [--fit-results R]``. Needs anny (the open body's source).
Figures: docs/benchmarks/fidelity.md, "Wave 34".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Adult ages sampled (years, uniform), anny's WHO-calibrated height, weight, muscle and proportion laws given age.
AGES = (18.0, 80.0)
#: Scale-free components used for the stature and gender regressions.
COMPONENTS = (3, 5, 9)
#: Relative measurement errors of a ratio (a landmark-based length over the person's height in the photo).
MEASUREMENT_ERRORS = (0.02, 0.05)
#: Joint-to-joint lengths (SMPL-X joint names; "top" is the body's highest point) whose ratios to the stature are
#: examined, each for the body's left side.
RATIOS = {
    "head (top − neck)": ("top", "neck"), "torso (neck − pelvis)": ("neck", "pelvis"),
    "thigh": ("left_hip", "left_knee"), "shin": ("left_knee", "left_ankle"),
    "upper arm": ("left_shoulder", "left_elbow"), "forearm": ("left_elbow", "left_wrist"),
    "shoulder width": ("left_shoulder", "right_shoulder"), "hip width": ("left_hip", "right_hip"),
}  # fmt: skip


def scale_free(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rest bodies (N, V, 3), Y up → (their shapes centred and divided by the stature (N, V·3), statures (N,))."""
    stature = vertices[:, :, 1].max(1) - vertices[:, :, 1].min(1)
    shape = (vertices - vertices.mean(1, keepdims=True)) / stature[:, None, None]
    return shape.reshape(len(vertices), -1), stature


def ratios(vertices: np.ndarray, joints: np.ndarray, stature: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`RATIOS` of rest bodies (N, V, 3) with joints (N, 55, 3): length / stature, per body."""
    from icon_engine.bundle.skeleton import JOINT_NAMES

    col = {name: i for i, name in enumerate(JOINT_NAMES)}
    out = {}
    for label, (a, b) in RATIOS.items():
        pa = vertices[np.arange(len(vertices)), vertices[:, :, 1].argmax(1)] if a == "top" else joints[:, col[a]]
        length = (pa[:, 1] - joints[:, col[b], 1]) if a == "top" else np.linalg.norm(pa - joints[:, col[b]], axis=1)
        out[label] = length / stature
    return out


def linear_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``y ≈ c0 + x @ c[1:]``; ``x`` (N, K)."""
    return np.linalg.lstsq(np.c_[np.ones(len(x)), x], y, rcond=None)[0]


def linear_predict(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.c_[np.ones(len(x)), x] @ coef


def study(n: int, seed: int) -> dict[str, Any]:
    """Sample ``n`` adults and measure every cue (see the module). Returns the figures and the regression model."""
    from icon_engine.body_model import open_body

    with contextlib.redirect_stdout(sys.stderr):  # anny's dependencies print banners on stdout
        src = open_body._Anny()
    phen = open_body.sample_phenotypes(src.model, n, seed, ages=AGES)
    vertices, joints = open_body.t_posed_bodies(src, phen)
    gender = phen[:, list(src.phenotype_labels).index("gender")]
    shape, stature = scale_free(vertices)
    log_s = np.log(stature)
    train = np.arange(n) < int(0.7 * n)
    mean = shape[train].mean(0)
    basis = np.linalg.svd(shape[train] - mean, full_matrices=False)[2][: max(COMPONENTS)]
    out: dict[str, Any] = {"samples": n, "stature_mean_m": float(stature.mean()), "stature_std_m": float(stature.std()),
                           "log_stature_std": float(log_s[~train].std()), "shape": {}, "ratios": {}}
    female = gender > 0.5
    out["sex"] = {"women_mean_m": float(stature[female].mean()), "women_std_m": float(stature[female].std()),
                  "men_mean_m": float(stature[~female].mean()), "men_std_m": float(stature[~female].std())}
    for k in COMPONENTS:
        x = (shape - mean) @ basis[:k].T
        coef = linear_fit(x[train], log_s[train])
        g_coef = linear_fit(x[train], gender[train])
        rest = log_s[~train] - linear_predict(coef, x[~train])
        g = linear_predict(g_coef, x[~train])
        out["shape"][k] = {"log_stature_residual": float(rest.std()),
                           "sex_accuracy": float(((g > 0.5) == female[~train]).mean())}
    rng = np.random.default_rng(seed)
    for label, r in ratios(vertices, joints, stature).items():
        coef = linear_fit(np.log(r)[:, None], log_s)
        rest = float((log_s - linear_predict(coef, np.log(r)[:, None])).std())
        noisy = {}
        for err in MEASUREMENT_ERRORS:
            x = (np.log(r) + rng.normal(0.0, err, n))[:, None]
            noisy[err] = float((log_s - linear_predict(linear_fit(x, log_s), x)).std())
        out["ratios"][label] = {"mean": float(r.mean()), "relative_spread": float(r.std() / r.mean()),
                                "slope": float(coef[1]), "log_stature_residual": rest,
                                "residual_measured": noisy}
    k = max(COMPONENTS)
    x = (shape - mean) @ basis[:k].T
    model = {"mean": mean, "basis": basis[:k], "stature": linear_fit(x, log_s), "gender": linear_fit(x, gender)}
    return {"figures": out, "model": model}


def predict_fitted(model: dict[str, np.ndarray], run: Path) -> list[dict[str, Any]]:
    """The scale-free regression applied to the betas a fit-only run fitted (its ``fit_only.json``)."""
    import torch

    from icon_engine.body_model import load_body_model

    body = load_body_model()
    rows = []
    for row in json.loads((run / "fit_only.json").read_text())["rows"]:
        betas = torch.tensor(np.asarray(row["betas"])[None], dtype=body.v_template.dtype)
        with torch.no_grad():
            rest = body.rest_vertices(betas).double().numpy()
        shape, fitted = scale_free(rest)
        x = (shape - model["mean"]) @ model["basis"].T
        rows.append({"subject": row["subject"], "sex": row["garments"].get("sex"), "gt_stature_m": row["gt_stature_m"],
                     "fitted_stature_m": float(fitted[0]),
                     "predicted_stature_m": float(np.exp(linear_predict(model["stature"], x)[0])),
                     "predicted_gender": float(linear_predict(model["gender"], x)[0])})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fit-results", type=Path, nargs="*", default=[],
                    help="bench/fidelity.py --shared-set … --fit-only result folders")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = study(args.samples, args.seed)
    f = result["figures"]
    print(f"{f['samples']} adults (ages {AGES[0]:.0f}–{AGES[1]:.0f}): stature {f['stature_mean_m']:.3f} ± "
          f"{f['stature_std_m']:.3f} m (log spread {f['log_stature_std']:.4f}); women {f['sex']['women_mean_m']:.3f} ± "
          f"{f['sex']['women_std_m']:.3f}, men {f['sex']['men_mean_m']:.3f} ± {f['sex']['men_std_m']:.3f}\n")
    print("| scale-free shape components | log-stature residual (held out) | sex from the shape (held out) |")
    print("|---|---|---|")
    for k, v in f["shape"].items():
        print(f"| {k} | {v['log_stature_residual']:.4f} | {100 * v['sex_accuracy']:.1f} % |")
    errs = " | ".join(f"measured to {100 * e:.0f} %" for e in MEASUREMENT_ERRORS)
    print("\n| ratio to the stature | mean | spread | slope d log S / d log ratio | log-stature residual: exact | "
          f"{errs} |")
    print("|---|---|---|---|---|" + "---|" * len(MEASUREMENT_ERRORS))
    for label, v in f["ratios"].items():
        measured = " | ".join(f"{v['residual_measured'][e]:.4f}" for e in MEASUREMENT_ERRORS)
        print(f"| {label} | {v['mean']:.3f} | {100 * v['relative_spread']:.1f} % | {v['slope']:+.2f} | "
              f"{v['log_stature_residual']:.4f} | {measured} |")
    runs = {}
    for run in args.fit_results:
        rows = predict_fitted(result["model"], run)
        runs[str(run)] = rows
        print(f"\n{run}: | subject | sex | stature (GT) m | fitted m | from the fitted shape m | gender from the shape "
              "(0 man, 1 woman) |")
        for r in rows:
            print(f"| {r['subject']} | {r['sex']} | {r['gt_stature_m']:.3f} | {r['fitted_stature_m']:.3f} | "
                  f"{r['predicted_stature_m']:.3f} | {r['predicted_gender']:.2f} |")
        err = np.mean([abs(r["predicted_stature_m"] / r["gt_stature_m"] - 1.0) for r in rows])
        err_fit = np.mean([abs(r["fitted_stature_m"] / r["gt_stature_m"] - 1.0) for r in rows])
        print(f"mean |stature error|: fitted {100 * err_fit:.1f} %, from the fitted shape {100 * err:.1f} %")
    if args.json:
        args.json.write_text(json.dumps({"figures": f, "fitted": runs}, indent=1))


if __name__ == "__main__":
    main()
