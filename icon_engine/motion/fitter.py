"""A lean per-frame SMPL-X fit for video: BlazePose keypoints and world landmarks → body pose and translation.

Each frame is fitted from the previous frame's result (warm start) with one shared body shape, a few Adam
steps on: the robust 2D reprojection of the mapped landmarks (the single-photo fit's landmark mapping,
:mod:`icon_engine.fit.landmarks`), 3D bone directions from BlazePose's world landmarks (limbs and torso sides),
the pose priors of :mod:`icon_engine.fit.priors`, and a weak pull towards the previous frame. No silhouette, no
vertices: only the skeleton and the regressed keypoints of :class:`~icon_engine.fit.fastbody.FastBody` are
evaluated, which keeps a frame at a few tens of milliseconds on one core.

Hands (``hands=True``): after the body, each hand seen in the frame (MediaPipe hand landmarks, see
:mod:`icon_engine.motion.hands`) is fitted by the photo fit's finger fit (:mod:`icon_engine.fit.hands`: the same
finger parametrisation, prior, robust 2D term and wrist-then-fingers steps) on the hand's own kinematic chain below
the fitted forearm (:class:`~icon_engine.fit.hands.HandChain`), warm-started from the hand's last fit (a few steps
and a weak pull to it) or, when the hand was not seen for a while, from a relaxed hand (the photo fit's steps).

Frames: the camera is fixed at ``R = FRONT_VIEW_R``, ``t = 0`` with the default intrinsics of the processing
frame, so the fitted body lives in the *camera world* (metres, Y up when the camera is level, the camera at the
origin looking along −Z). :mod:`icon_engine.motion.trajectory` moves it onto the floor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..camera import FRONT_VIEW_R, default_intrinsics
from ..fit import priors
from ..fit.core import _Adam, landmark_points
from ..fit.fastbody import FastBody
from ..fit.hands import (
    HandBasis,
    HandChain,
    hand_error_px,
    hand_targets,
    new_hand_params,
    observed_hands,
    optimise_hands,
)
from ..fit.init import blazepose_to_world, initial_pose, solve_translation
from ..fit.landmarks import BP, LIMB_BONES, TORSO, resolve_targets
from .track import Detection

#: Adam steps on the first frame (cold start) and on every later frame (warm start).
FIRST_ITERS = 80
FRAME_ITERS = 14
#: Loss weights.
W_KEYPOINT = 1.0
W_DIRECTION = 0.6
W_ANGLE = 1.0
W_REST = 0.03
W_PENETRATION = 200.0
W_TEMPORAL = 2.0  # |θ − θ_prev|² (radians²) per frame: a weak pull that damps flips, not motion
KP_SIGMA = 0.08  # robust scale of the 2D residual, fraction of the person's size
MIN_VISIBILITY = 0.3
#: Hands: Adam steps (wrist, then fingers) on a hand seen afresh and on a hand seen in the last
#: :data:`HAND_WARM_FRAMES` frames (warm start), and the weight of the pull to its last fit (radians²).
HAND_COLD_ITERS = (20, 40)
HAND_WARM_ITERS = (3, 8)
HAND_WARM_FRAMES = 5
#: A hand followed from frame to frame (warm) is fitted on every HAND_STRIDE-th frame only; the frames between
#: are interpolated (``smooth.fill_unseen``): fingers move smoothly at video rates and are low-passed at 4 Hz.
HAND_STRIDE = 2
W_HAND_TEMPORAL = 1.0
SIDES = ("left", "right")
#: Landmark pairs whose 3D direction BlazePose's world landmarks give: the limbs plus the torso's sides.
DIRECTION_PAIRS: tuple[tuple[int, int], ...] = tuple((a, b) for _, _, a, b in LIMB_BONES) + (
    (BP["right_hip"], BP["left_hip"]), (BP["right_shoulder"], BP["left_shoulder"]),
    (BP["left_hip"], BP["left_shoulder"]), (BP["right_hip"], BP["right_shoulder"]))


@dataclass
class FrameFit:
    """One frame's body: ``global_orient (3,)``, ``body_pose (21, 3)`` axis-angle (radians), ``transl (3,)``
    metres, ``joints (55, 3)`` camera world, ``error_px`` mean reprojection error of the visible landmarks;
    ``hands`` ``{"left"|"right": (15, 3)}`` axis-angle hand poses of the hands fitted in this frame (none when
    not seen, and every other frame of a hand followed from frame to frame: see :data:`HAND_STRIDE`),
    ``hand_error_px`` their weighted mean 2D error (palm-centred landmarks, px) and ``hands_seen`` the sides
    whose landmarks the frame had."""

    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    error_px: float
    hands: dict[str, np.ndarray] = field(default_factory=dict)
    hand_error_px: dict[str, float] = field(default_factory=dict)
    hands_seen: tuple[str, ...] = ()


class FrameFitter:
    """Fits frames of one video in order. ``betas`` (num_betas,) is the shared shape (zeros: the mean body);
    ``width``/``height`` the processing frame size in pixels; ``hands``: fit the hands the detections carry
    (needs a body model with fingertip keypoints; otherwise hands stay at rest)."""

    def __init__(self, body_model, width: int, height: int, betas: np.ndarray | None = None,
                 hands: bool = False) -> None:
        self.body = FastBody(body_model, np.zeros(0, dtype=np.int64))
        nb = self.body.num_betas
        b = np.zeros(nb, np.float32)
        if betas is not None:
            given = np.asarray(betas, np.float32).reshape(-1)[:nb]
            b[: len(given)] = given
        self.betas = torch.tensor(b)
        self.targets = resolve_targets(list(getattr(body_model, "keypoint_names", [])))
        self.K = default_intrinsics(width, height)
        self.K_t = torch.tensor(self.K, dtype=torch.float32)
        self.R_t = torch.tensor(FRONT_VIEW_R, dtype=torch.float32)
        slot = {int(lm): i for i, lm in enumerate(self.targets.landmarks)}
        self.pairs = torch.tensor([[slot[a], slot[b]] for a, b in DIRECTION_PAIRS])
        self.pair_landmarks = np.array(DIRECTION_PAIRS)
        with torch.no_grad():
            self.rest_joints = self.body.rest(self.betas)[1].double().numpy()
        self._prev: dict[str, torch.Tensor] | None = None
        names = list(getattr(body_model, "keypoint_names", []))
        self.hands = hands and all(f"{s}_{f}" in names for s in SIDES
                                   for f in ("thumb", "index", "middle", "ring", "pinky"))
        self._hand_pose = torch.zeros(30, 3)  # the hands' last fitted poses (left, right), used by the body
        self._hand_params: dict[str, list[torch.Tensor]] = {}
        self._hand_age: dict[str, int] = {}
        self.hand_seconds = 0.0  # CPU seconds of the finger fits (the calling thread's)
        self._frames = 0
        if self.hands:
            with torch.no_grad():
                _, j_rest, k_rest = self.body.rest(self.betas)
            self.chains = {s: HandChain(s, j_rest, k_rest, self.body.kw, names) for s in SIDES}
            self.basis = {s: HandBasis(s, j_rest.double().numpy(), k_rest.double().numpy(), names) for s in SIDES}

    def reset(self) -> None:
        """Forget the previous frame (after a gap: the next frame starts cold)."""
        self._prev = None
        self._hand_params.clear()
        self._hand_pose = torch.zeros(30, 3)

    # -- model ------------------------------------------------------------------------------------------
    def _forward(self, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pose = torch.cat([p["global_orient"][None], p["body_pose"], torch.zeros(3, 3), self._hand_pose])
        return self.body.forward(self.betas, pose, p["transl"], with_vertices=False)

    def _project(self, points: torch.Tensor) -> torch.Tensor:
        cam = points @ self.R_t.T
        z = cam[:, 2].clamp(min=1e-3)
        return torch.stack([self.K_t[0, 0] * cam[:, 0] / z + self.K_t[0, 2],
                            self.K_t[1, 1] * cam[:, 1] / z + self.K_t[1, 2]], -1)

    # -- fitting ----------------------------------------------------------------------------------------
    def _cold_start(self, det: Detection, px: np.ndarray, w: np.ndarray) -> dict[str, torch.Tensor]:
        pose = initial_pose(det.world, self.rest_joints)
        p = {"global_orient": torch.tensor(pose[0], dtype=torch.float32),
             "body_pose": torch.tensor(pose[1:22], dtype=torch.float32), "transl": torch.zeros(3)}
        with torch.no_grad():
            out = self._forward(p)
            pts = landmark_points(out["joints"], out["keypoints"], out["rotations"], self.targets).double().numpy()
        wt = w * np.where(np.isin(self.targets.landmarks, TORSO), 3.0, 1.0)
        p["transl"] = torch.tensor(solve_translation(pts, px, wt if wt.sum() > 1e-3 else np.ones_like(wt), self.K),
                                   dtype=torch.float32)
        return p

    def fit(self, det: Detection, iterations: int | None = None) -> FrameFit:
        """Fit one frame's detection, warm-started from the previous call (cold after :meth:`reset`)."""
        kp = np.asarray(det.keypoints, np.float64)
        t = self.targets
        vis = np.clip(kp[:, 2], 0.0, 1.0)
        conf = np.where(vis >= MIN_VISIBILITY, vis, 0.0)[t.landmarks] * t.weights
        px = kp[t.landmarks, :2]
        cold = self._prev is None
        p = self._cold_start(det, px, conf) if cold else {k: v.detach().clone() for k, v in self._prev.items()}
        iters = iterations if iterations is not None else (FIRST_ITERS if cold else FRAME_ITERS)
        prev = None if cold else {k: v.detach() for k, v in self._prev.items()}

        obs = torch.tensor(px, dtype=torch.float32)
        w_kp = torch.tensor(conf, dtype=torch.float32)
        vis_pts = kp[:, :2][vis > 0.5]
        size = float(max(np.ptp(vis_pts, 0).max() if len(vis_pts) > 2 else 0.0, 16.0))
        world = blazepose_to_world(det.world)
        dirs = world[self.pair_landmarks[:, 1]] - world[self.pair_landmarks[:, 0]]
        dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-9)
        w_dir = torch.tensor(np.clip(np.minimum(vis[self.pair_landmarks[:, 0]], vis[self.pair_landmarks[:, 1]]),
                                     0.2, 1.0), dtype=torch.float32)
        dirs_t = torch.tensor(dirs, dtype=torch.float32)
        s2 = KP_SIGMA**2

        def loss_fn() -> torch.Tensor:
            out = self._forward(p)
            points = landmark_points(out["joints"], out["keypoints"], out["rotations"], t)
            r2 = ((self._project(points) - obs) / size).pow(2).sum(-1)
            kp_loss = 1e3 * (w_kp * (s2 * r2 / (r2 + s2))).sum() / w_kp.sum().clamp(min=1e-6)
            d = points[self.pairs[:, 1]] - points[self.pairs[:, 0]]
            d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-6)
            dir_loss = (w_dir * (1.0 - (d * dirs_t).sum(-1))).sum() / w_dir.sum()
            bp = p["body_pose"][None]
            loss = (W_KEYPOINT * kp_loss + W_DIRECTION * 100.0 * dir_loss + W_ANGLE * priors.angle_limit_loss(bp)
                    + W_REST * priors.rest_pull_loss(bp)
                    + W_PENETRATION * priors.torso_penetration_loss(out["joints"][None]))
            if prev is not None:
                loss = loss + W_TEMPORAL * ((p["body_pose"] - prev["body_pose"]).pow(2).sum()
                                            + (p["global_orient"] - prev["global_orient"]).pow(2).sum())
            return loss

        names = ("global_orient", "body_pose", "transl")
        for k in names:
            p[k].requires_grad_(True)
        opt = _Adam([p[k] for k in names], b2=0.99)
        lr0 = 0.05 if cold else 0.02
        for i in range(iters):
            loss_fn().backward()
            opt.step(lr0 * (0.2 + 0.8 * (1.0 - i / max(iters, 1))))
        for k in names:
            p[k].requires_grad_(False)
        self._prev = {k: v.detach().clone() for k, v in p.items()}
        with torch.no_grad():
            out = self._forward(p)
            points = landmark_points(out["joints"], out["keypoints"], out["rotations"], t)
            err = (self._project(points) - obs).norm(dim=-1).numpy()
        good = conf > 0
        fit = FrameFit(p["global_orient"].numpy().copy(), p["body_pose"].numpy().copy(), p["transl"].numpy().copy(),
                       out["joints"].double().numpy(), float(err[good].mean()) if good.any() else float("nan"))
        if self.hands:
            t0 = time.thread_time()  # this thread's CPU only (the tracking thread runs beside it)
            self._fit_hands(fit, out, getattr(det, "hands", None))
            self.hand_seconds += time.thread_time() - t0
        return fit

    def _fit_hands(self, fit: FrameFit, out: dict[str, torch.Tensor], hands: dict[str, np.ndarray] | None) -> None:
        """Fit the hands seen in this frame below the fitted forearms; fills ``fit.hands`` and corrects the
        wrists in ``fit.body_pose`` (and in the warm start of the next frame)."""
        for s in SIDES:
            self._hand_age[s] = self._hand_age.get(s, 10**6) + 1
        seen = observed_hands(hands)
        fit.hands_seen = tuple(seen)
        self._frames += 1
        if not seen:
            return
        if self._frames % HAND_STRIDE and all(s in self._hand_params and self._hand_age[s] <= HAND_WARM_FRAMES
                                              for s in seen):
            return
        sides = list(seen)
        chain = {s: self.chains[s] for s in sides}
        with torch.no_grad():
            forearm = {s: out["rotations"][chain[s].forearm].detach() for s in sides}
            wrist_pos = {s: out["joints"][chain[s].wrist].detach() for s in sides}
            wrist_px = {s: self._project(wrist_pos[s][None])[0].double().numpy() for s in sides}
        wrist_pose = {s: torch.tensor(fit.body_pose[chain[s].wrist - 1], dtype=torch.float32) for s in sides}
        targets = {s: hand_targets(seen[s], wrist_px[s]) for s in sides}
        warm = {s: s in self._hand_params and self._hand_age[s] <= HAND_WARM_FRAMES for s in sides}
        params = {s: [t.clone() for t in self._hand_params[s]] if warm[s] else new_hand_params() for s in sides}
        previous = {s: [t.clone() for t in params[s]] for s in sides if warm[s]}
        wrist = {s: torch.zeros(3) for s in sides}

        def points(params: dict[str, list[torch.Tensor]], wrist: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {s: chain[s].points(forearm[s], wrist_pose[s] + wrist[s], wrist_pos[s],
                                       self.basis[s].pose(*params[s])) for s in sides}

        wrist_iters, iters = HAND_WARM_ITERS if all(warm.values()) else HAND_COLD_ITERS
        px = optimise_hands(points, self._project, targets, params, wrist, wrist_iters, iters, previous,
                            W_HAND_TEMPORAL)
        for s in sides:
            fit.hand_error_px[s] = hand_error_px(px[s], *targets[s][:2])
            pose = self.basis[s].pose(*params[s]).detach()
            fit.hands[s] = pose.numpy().astype(np.float64)
            j = chain[s].wrist - 1
            fit.body_pose[j] = fit.body_pose[j] + wrist[s].numpy()
            if self._prev is not None:
                self._prev["body_pose"][j] += wrist[s]
            self._hand_params[s] = [t.detach().clone() for t in params[s]]
            self._hand_age[s] = 0
            k = 0 if s == "left" else 15
            self._hand_pose[k:k + 15] = pose
