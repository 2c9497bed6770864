"""Joint fit of several photos of one person: one shared body shape, one pose, translation and camera per photo.

Frames and units: every photo keeps its own camera (OpenCV, processing pixels) and its own normalised bundle world
(lowest body vertex on y = 0, pelvis above the origin, :mod:`icon_engine.fit.core`); metres, radians.

Method (docs/multiview.md, "Joint fit"): each photo's own fit (``fit.fit_body``) is the warm start; the betas
start at the subject's shared estimate. The sum over the photos of the single-photo fit's objective (keypoints,
limb directions, pose priors, floor, silhouette inside/coverage at the finest window of the quality preset), plus
a robust agreement of the photos' body poses (:func:`pose_agreement_loss`: a person standing still for a
turnaround has one pose, so a side photo fixes an arm's depth that the front photo cannot see), is minimised over
**one** betas vector and the other photos' global orientation, body pose and translation at once. The first photo's
pose and translation stay as its own fit found them (``anchor_first``: the avatar is posed and framed like it,
and on bench/multiview.py refitting it against the other photos moved its body away from the truth). The losses
are the fit package's own (:func:`icon_engine.fit.core._loss_factory`), evaluated on a per-photo problem whose
fixed camera is the photo's fitted camera (its pitch included). Each photo's fit is then finished like a single
fit (metrics, normalised world).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Iterations of the joint stage per quality preset, and its Adam step (a warm start: smaller than a fresh fit's).
JOINT_ITERS = {"preview": 30, "standard": 50, "high": 80}
JOINT_LR = 0.01
#: Weight of :func:`pose_agreement_loss` and its robust scale (radians).
W_AGREE = 1.0
AGREE_SIGMA_RAD = 0.25


def pose_agreement_loss(body_poses: Any, sigma: float | None = None) -> Any:
    """Robust agreement of the photos' body poses (K, 21, 3) axis-angle (radians): per joint and photo the
    Geman-McClure penalty of its squared distance to the photos' mean, scale :data:`AGREE_SIGMA_RAD`, summed over
    joints and averaged over photos. Photos of a person standing still pull each other's joints together (a side
    photo fixes an arm's depth for the front one); a joint that differs a lot between photos (another pose) costs
    a bounded amount and is left to its own photo."""
    s2 = (AGREE_SIGMA_RAD if sigma is None else sigma) ** 2
    d2 = (body_poses - body_poses.mean(dim=0, keepdim=True)).pow(2).sum(-1)
    return (s2 * d2 / (d2 + s2)).sum(-1).mean() / s2


@dataclass
class JointFitResult:
    """The refitted photos' ``fits`` (one :class:`icon_engine.fit.core.BodyFit` per photo, same ``betas``),
    the shared ``betas`` and diagnostics ``stats`` (iterations, seconds, loss before and after)."""

    fits: list[Any]
    betas: np.ndarray
    stats: dict[str, Any]


def _problem(observation: Any, photo: Any, fit: Any, body_model: Any, quality: str, device: str,
             height_m: float | None) -> tuple[Any, dict[str, Any]]:
    """One photo's fit problem with its camera fixed at the fitted one, and its parameters (torch tensors) in the
    problem's camera-centred world (the fitted world shifted by ``Rᵀ t``, so the camera sits at the origin)."""
    import torch

    from .fit.core import QUALITY_PRESETS, _photo_size, _Problem

    width, height = _photo_size(photo, observation)
    cam = fit.camera
    prob = _Problem(observation, body_model, width, height, QUALITY_PRESETS[quality], device,
                    float(cam.K[0, 0]), height_m)
    prob.R = np.asarray(cam.R, dtype=np.float64).copy()
    prob.R_t = torch.tensor(prob.R, dtype=torch.float32)
    shift = prob.R.T @ np.asarray(cam.t, dtype=np.float64)  # x_problem = x_world + Rᵀ t
    pose = np.asarray(fit.full_pose, dtype=np.float64).reshape(55, 3)
    p = {
        "global_orient": torch.tensor(pose[0], dtype=torch.float32),
        "body_pose": torch.tensor(pose[1:22], dtype=torch.float32),
        "transl": torch.tensor(np.asarray(fit.transl, dtype=np.float64).reshape(3) + shift, dtype=torch.float32),
        "left_hand_pose": torch.tensor(pose[25:40], dtype=torch.float32),
        "right_hand_pose": torch.tensor(pose[40:55], dtype=torch.float32),
    }
    return prob, p


def joint_fit(views: list[tuple[Any, Any, Any]], body_model: Any, betas: np.ndarray, quality: str = "standard",
              device: str = "cpu", height_m: float | None = None, iterations: int | None = None,
              silhouette: bool = True, window: int | None = None, lr: float | None = None,
              couple: float | None = None, anchor_first: bool = True, free_shape: bool = True) -> JointFitResult:
    """Refit every photo with one shared shape (module docstring).

    ``views``: (observation, photo, fit) per photo, ``fit`` its own (or shared-shape) fit as the warm start;
    ``betas``: the shared shape's starting value; ``height_m``: the known stature (the betas stay on it);
    ``iterations``, ``lr``: the Adam schedule (default :data:`JOINT_ITERS`, :data:`JOINT_LR`); ``silhouette``,
    ``window``: with the silhouette term, at that window size (default the preset's finest); ``couple``: weight of
    the pose agreement (default :data:`W_AGREE`); ``anchor_first``: keep the first photo's pose and translation;
    ``free_shape``: optimise the betas (else they stay at ``betas``).
    Returns the finished fits in ``views``' order; their ``metrics`` hold the photo's keypoint error (px) and
    silhouette IoU with the shared shape, and ``joint_fit`` (loss before/after)."""
    import torch

    from .fit.core import QUALITY_PRESETS, _Adam, _decide_standing, _finish, _loss_factory
    from .fit.silhouette import make_target

    start, cpu0 = time.perf_counter(), time.process_time()
    settings = QUALITY_PRESETS[quality]
    iters = JOINT_ITERS.get(quality, 50) if iterations is None else int(iterations)
    size = settings.silhouette[-1][0] if window is None else int(window)
    lr = JOINT_LR if lr is None else lr
    couple = W_AGREE if couple is None else float(couple)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread (as fit_body)
    try:
        shared = torch.tensor(np.asarray(betas, dtype=np.float32).reshape(-1))
        problems = []
        for observation, photo, fit in views:
            prob, p = _problem(observation, photo, fit, body_model, quality, device, height_m)
            nb = prob.body.num_betas
            if shared.numel() != nb:  # the body's betas count (the fits were made with this body)
                shared = torch.nn.functional.pad(shared[:nb], (0, max(0, nb - shared.numel())))
            problems.append((prob, p))
        for prob, p in problems:
            p["betas"] = shared
            _decide_standing(prob, p)
        losses = [_loss_factory(prob, "pose", make_target(prob.mask, prob.bbox, size) if silhouette else None,
                                tolerance=0.012 * size) for prob, _ in problems]

        def total() -> Any:
            loss = sum(fn(p) for fn, (_, p) in zip(losses, problems, strict=True)) / len(problems)
            if couple > 0 and len(problems) > 1:
                loss = loss + couple * pose_agreement_loss(torch.stack([p["body_pose"] for _, p in problems]))
            return loss

        with torch.no_grad():
            before = float(total())
        names = ("global_orient", "body_pose", "transl")
        leaves = ([shared] if free_shape else []) + [p[k] for i, (_, p) in enumerate(problems) for k in names
                                                     if i > 0 or not anchor_first]
        for q in leaves:
            q.requires_grad_(True)
        opt = _Adam(leaves)
        for i in range(iters):
            loss = total()
            loss.backward()
            opt.step(lr * (0.1 + 0.45 * (1 + math.cos(math.pi * i / max(iters, 1)))))
        for q in leaves:
            q.requires_grad_(False)
            q.grad = None
        with torch.no_grad():
            after = float(total())
            final = problems[0][0].shape(shared).detach().clone()  # exactly on the known stature, if any
        fits = []
        for (prob, p), (_, _, own) in zip(problems, views, strict=True):
            p["betas"] = final
            done = _finish(prob, p, start, iters)
            done.metrics = {**dict(getattr(own, "metrics", {}) or {}), **done.metrics, "joint_fit": True}
            done.warnings = list(getattr(own, "warnings", []))
            fits.append(done)
    finally:
        torch.set_num_threads(threads)
    stats = {"iterations": iters, "loss_before": round(before, 4), "loss_after": round(after, 4),
             "time_s": round(time.perf_counter() - start, 3), "cpu_s": round(time.process_time() - cpu0, 3)}
    return JointFitResult(fits, final.double().numpy(), stats)
