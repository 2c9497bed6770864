"""Finger fit: the SMPL-X hand poses (15 joints per hand) from MediaPipe hand landmarks, after the body fit.

Each observed hand's 21 landmarks (processing px; MediaPipe order: 0 wrist, 1–4 thumb CMC/MCP/IP/tip, 5–8 index
MCP/PIP/DIP/tip, 9–12 middle, 13–16 ring, 17–20 pinky) are moved so that their wrist sits on the fitted body's
projected wrist, then the finger joints and fingertip keypoints of the body are pulled onto them (Geman-McClure,
scaled by the hand's size in px, weighted by the hand detector's confidence), in two steps: first the wrist's
rotation alone turns the palm (wrist, thumb base and the four knuckles, rigid with the wrist) onto the observed
palm (a bounded change, ≤ 0.6 rad), then the fingers bend with the wrist fixed (fitting both at once lets a
twisted wrist and wrongly bent fingers explain the 2D hand). The body's other joints, shape, translation and the
camera stay as the body fit left them.

Sides: ``observation.hands`` is keyed by the person's anatomical side (the detector looks next to BlazePose's left
or right wrist, whatever MediaPipe's mirror-image handedness label says), so "left" drives ``left_hand_pose``.

Prior (radians, joint frames = model axes in the flat-hand T-pose): the four fingers bend about one axis per joint
(palm normal × bone), within [-0.3, 1.6] (knuckle), [-0.1, 1.9] (middle) and [-0.1, 1.4] (end joint); knuckles
also spread within ±0.35 about the palm normal; the thumb's three joints are free but pulled to zero and kept
under 1.2 rad; everything is pulled gently towards the flat hand. Units: metres, radians, processing pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

#: SMPL-X joint of each MediaPipe hand landmark for the left hand (index into the 55 joints), or the name of a
#: fingertip keypoint of the body model (``left_``/``right_`` prefix added per side).
_LEFT_JOINTS: tuple[int | str, ...] = (
    20,  # wrist
    37, 38, 39, "thumb",
    25, 26, 27, "index",
    28, 29, 30, "middle",
    34, 35, 36, "ring",
    31, 32, 33, "pinky",
)  # fmt: skip
_RIGHT_OFFSET = 15  # right finger joints = left + 15; right wrist = 21
#: Fingers other than the thumb: first joint (SMPL-X, left hand) and fingertip keypoint name.
_FINGERS = ((25, "index"), (28, "middle"), (34, "ring"), (31, "pinky"))
_THUMB = (37, "thumb")
#: Flexion bounds (radians) of the knuckle, middle and end joints of a finger.
FLEX_BOUNDS = ((-0.3, 1.6), (-0.1, 1.9), (-0.1, 1.4))
SPREAD_LIMIT = 0.35
THUMB_LIMIT = 1.2
HAND_ITERS = 60
WRIST_ITERS = 20
WRIST_LIMIT = 0.6  # largest change of a wrist's rotation (radians)
W_WRIST = 0.5
PALM = (1, 5, 9, 13, 17)  # MediaPipe landmarks rigid with the wrist: thumb CMC and the four knuckles
HAND_LR = 0.1
HAND_SIGMA = 0.15  # robust scale, fraction of the hand's size (wrist → middle knuckle, px)
MIN_HAND_SCORE = 0.5
W_BOUNDS = 50.0
W_REST = 0.02


def hand_model_indices(side: str, keypoint_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """For the 21 MediaPipe landmarks of ``side``: (21,) index into joints (55) or keypoints, (21,) 1 where the
    index is a keypoint. Raises KeyError when the body model has no fingertip keypoints."""
    index, is_kp = [], []
    for item in _LEFT_JOINTS:
        if isinstance(item, str):
            index.append(keypoint_names.index(f"{side}_{item}"))
            is_kp.append(1)
        elif item == 20:
            index.append(20 if side == "left" else 21)
            is_kp.append(0)
        else:
            index.append(item if side == "left" else item + _RIGHT_OFFSET)
            is_kp.append(0)
    return np.array(index), np.array(is_kp)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


class HandBasis:
    """Axes of one hand's finger joints in the rest pose: flexion (palm normal × bone) and spread (palm normal)."""

    def __init__(self, side: str, j_rest: np.ndarray, k_rest: np.ndarray, keypoint_names: list[str]) -> None:
        off = 0 if side == "left" else _RIGHT_OFFSET
        palmar = np.array([0.0, -1.0, 0.0])  # flat-hand T-pose: palms face down
        flex, spread = np.zeros((12, 3)), np.zeros((4, 3))
        for f, (first, name) in enumerate(_FINGERS):
            chain = [j_rest[first + off + i] for i in range(3)] + [k_rest[keypoint_names.index(f"{side}_{name}")]]
            for i in range(3):
                d = _unit(chain[i + 1] - chain[i])
                n = _unit(palmar - d * float(palmar @ d))
                flex[3 * f + i] = _unit(np.cross(d, n))  # positive angle bends towards the palm
            spread[f] = _unit(palmar - _unit(chain[1] - chain[0]) * float(palmar @ _unit(chain[1] - chain[0])))
        self.flex = torch.tensor(flex, dtype=torch.float32)
        self.spread = torch.tensor(spread, dtype=torch.float32)
        self.slots = [first + off + i - (25 if side == "left" else 40) for first, _ in _FINGERS for i in range(3)]
        self.thumb_slots = [_THUMB[0] + i - 25 for i in range(3)]

    def pose(self, angles: torch.Tensor, spread: torch.Tensor, thumb: torch.Tensor) -> torch.Tensor:
        """(15, 3) axis-angle hand pose (SMPL-X hand-joint order) from (12,) flexions, (4,) spreads, (3, 3) thumb."""
        per_joint = angles[:, None] * self.flex
        knuckle = torch.zeros(12, 1)
        knuckle = knuckle.index_put((torch.tensor([0, 3, 6, 9]),), spread[:, None])
        per_joint = per_joint + knuckle * self.spread.repeat_interleave(3, 0)
        out = torch.zeros(15, 3)
        out = out.index_put((torch.tensor(self.slots),), per_joint)
        return out.index_put((torch.tensor(self.thumb_slots),), thumb)


def prior_loss(angles: torch.Tensor, spread: torch.Tensor, thumb: torch.Tensor) -> torch.Tensor:
    """Bounds (squared hinge) on flexion, spread and thumb rotation, plus a gentle pull to the flat hand."""
    lo = torch.tensor([b[0] for b in FLEX_BOUNDS] * 4)
    hi = torch.tensor([b[1] for b in FLEX_BOUNDS] * 4)
    bounds = ((lo - angles).clamp(min=0).pow(2).sum() + (angles - hi).clamp(min=0).pow(2).sum()
              + (spread.abs() - SPREAD_LIMIT).clamp(min=0).pow(2).sum()
              + (thumb.norm(dim=-1) - THUMB_LIMIT).clamp(min=0).pow(2).sum())
    rest = angles.pow(2).sum() * 0.1 + spread.pow(2).sum() + thumb.pow(2).sum()
    return W_BOUNDS * bounds + W_REST * rest


def observed_hands(hands: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The usable hands of ``observation.hands``: finite (21, 3) arrays with a detector score ≥ MIN_HAND_SCORE."""
    out = {}
    for side in ("left", "right"):
        pts = None if not hands else hands.get(side)
        if pts is None:
            continue
        pts = np.asarray(pts, dtype=np.float64)
        if pts.shape == (21, 3) and np.isfinite(pts).all() and float(np.median(pts[:, 2])) >= MIN_HAND_SCORE:
            out[side] = pts
    return out


def _hand_error(px: np.ndarray, obs: np.ndarray, weights: np.ndarray) -> float:
    err = np.linalg.norm(px - obs, axis=1)
    return float((err * weights).sum() / max(weights.sum(), 1e-9))


def fit_hands(prob: Any, p: dict[str, torch.Tensor], hands: dict[str, np.ndarray] | None,
              iters: int = HAND_ITERS) -> dict[str, dict[str, float]]:
    """Fit ``p["left_hand_pose"]``/``p["right_hand_pose"]`` ((15, 3), set here; zero for unobserved hands) with
    a bounded correction of the observed hands' wrist rotations in ``p["body_pose"]``; the rest of ``p`` is
    fixed. ``prob``: the fit's ``_Problem``.

    Returns per observed side ``{"before_px", "after_px"}``: the confidence-weighted mean distance (processing
    px) of the 21 wrist-aligned landmarks before (flat hand) and after. A hand whose error does not drop is
    left flat with its wrist unchanged."""
    from .core import _Adam

    p["left_hand_pose"] = torch.zeros(15, 3)
    p["right_hand_pose"] = torch.zeros(15, 3)
    seen = observed_hands(hands)
    names = list(getattr(prob.model, "keypoint_names", []))
    if not seen or any(f"{s}_{f}" not in names for s in seen for f in ("thumb", "index", "middle", "ring", "pinky")):
        return {}
    with torch.no_grad():
        j_rest, k_rest = (x.double().cpu().numpy() for x in prob.body.rest(p["betas"])[1:])
        base = prob.forward(p)
    sides = list(seen)
    idx = {s: hand_model_indices(s, names) for s in sides}
    basis = {s: HandBasis(s, j_rest, k_rest, names) for s in sides}
    wrist_joint = {"left": 20, "right": 21}
    targets, weights, scale = {}, {}, {}
    for s in sides:
        obs = seen[s]
        model_wrist = prob.project(base["joints"][wrist_joint[s]][None])[0].double().cpu().numpy()
        targets[s] = torch.tensor(obs[:, :2] - obs[0, :2] + model_wrist, dtype=torch.float32)
        w = np.clip(obs[:, 2], 0.0, 1.0)
        w[0] = 0.0  # the wrist is aligned, not fitted
        weights[s] = torch.tensor(w, dtype=torch.float32)
        scale[s] = max(float(np.linalg.norm(obs[9, :2] - obs[0, :2])), 4.0)
    # start slightly bent (a relaxed hand; also, an exactly flat hand takes the model's rigid-hand shortcut)
    params = {s: [torch.full((12,), 0.1), torch.zeros(4), torch.zeros(3, 3)] for s in sides}
    wrist = {s: torch.zeros(3) for s in sides}
    body_pose0 = p["body_pose"].detach().clone()
    palm = np.zeros(21)
    palm[list(PALM)] = 1.0

    def evaluate(sigma: float = HAND_SIGMA, palm_only: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hand = {s: basis[s].pose(*params[s]) if s in params else torch.zeros(15, 3) for s in ("left", "right")}
        body_pose = body_pose0
        for s in sides:
            j = wrist_joint[s] - 1
            body_pose = body_pose.index_put((torch.tensor([j]),), body_pose0[j][None] + wrist[s][None])
        q = dict(p, body_pose=body_pose, left_hand_pose=hand["left"], right_hand_pose=hand["right"])
        out = prob.forward(q)
        loss = torch.zeros(())
        pxs = {}
        for s in sides:
            index, is_kp = idx[s]
            pts = torch.where(torch.tensor(is_kp, dtype=torch.bool)[:, None], out["keypoints"][index.clip(
                max=out["keypoints"].shape[0] - 1)], out["joints"][index])
            px = prob.project(pts)
            pxs[s] = px
            r2 = ((px - targets[s]) / scale[s]).pow(2).sum(-1)
            s2 = sigma**2
            w = weights[s] * torch.tensor(palm, dtype=torch.float32) if palm_only else weights[s]
            data = 1e2 * (w * s2 * r2 / (r2 + s2)).sum() / w.sum().clamp(min=1e-6)
            loss = loss + data + prior_loss(*params[s]) + W_WRIST * wrist[s].pow(2).sum() \
                + W_BOUNDS * (wrist[s].norm() - WRIST_LIMIT).clamp(min=0).pow(2)
        return loss, pxs

    start = [t.clone() for s in sides for t in params[s]]
    for s in sides:  # the error of the flat hand
        params[s][0].zero_()
    with torch.no_grad():
        _, px0 = evaluate()
    for t, t0 in zip([t for s in sides for t in params[s]], start, strict=True):
        t.copy_(t0)
    before = {s: _hand_error(px0[s].double().cpu().numpy(), targets[s].double().cpu().numpy(),
                             weights[s].double().cpu().numpy()) for s in sides}
    for leaves, n, palm_only in (([wrist[s] for s in sides], WRIST_ITERS, True),
                                 ([t for s in sides for t in params[s]], iters, False)):
        for t in leaves:
            t.requires_grad_(True)
        opt = _Adam(leaves)
        for i in range(n):
            loss, _ = evaluate(HAND_SIGMA * (1.0 + 3.0 * max(0.0, 1.0 - 2.0 * i / n)), palm_only)  # wide → robust
            loss.backward()
            opt.step(HAND_LR * (0.1 + 0.45 * (1 + math.cos(math.pi * i / n))))
        for t in leaves:
            t.requires_grad_(False)
            t.grad = None
    with torch.no_grad():
        _, px1 = evaluate()
    metrics = {}
    body_pose = body_pose0.clone()
    for s in sides:
        after = _hand_error(px1[s].double().cpu().numpy(), targets[s].double().cpu().numpy(),
                            weights[s].double().cpu().numpy())
        keep = after < before[s]
        if keep:
            p[f"{s}_hand_pose"] = basis[s].pose(*params[s]).detach()
            body_pose[wrist_joint[s] - 1] += wrist[s]
        metrics[s] = {"before_px": round(before[s], 3), "after_px": round(after if keep else before[s], 3)}
    p["body_pose"] = body_pose
    return metrics
