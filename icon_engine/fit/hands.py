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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..bundle.skeleton import PARENTS
from ..geometry.device import constant
from ..geometry.torch_skinning import axis_angle_to_matrix, skin_points, skinning_transforms

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
CENTRE_ON_PALM = True


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

    def __init__(self, side: str, j_rest: np.ndarray, k_rest: np.ndarray, keypoint_names: list[str],
                 device: torch.device | str = "cpu") -> None:
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
        self.flex = torch.tensor(flex, dtype=torch.float32, device=device)
        self.spread = torch.tensor(spread, dtype=torch.float32, device=device)
        self.slots = [first + off + i - (25 if side == "left" else 40) for first, _ in _FINGERS for i in range(3)]
        self.thumb_slots = [_THUMB[0] + i - 25 for i in range(3)]

    def pose(self, angles: torch.Tensor, spread: torch.Tensor, thumb: torch.Tensor) -> torch.Tensor:
        """(15, 3) axis-angle hand pose (SMPL-X hand-joint order) from (12,) flexions, (4,) spreads, (3, 3) thumb."""
        dev = angles.device
        per_joint = angles[:, None] * self.flex
        knuckle = torch.zeros(12, 1, device=dev)
        knuckle = knuckle.index_put((constant([0, 3, 6, 9], torch.int64, dev),), spread[:, None])
        per_joint = per_joint + knuckle * self.spread.repeat_interleave(3, 0)
        out = torch.zeros(15, 3, device=dev)
        out = out.index_put((constant(self.slots, torch.int64, dev),), per_joint)
        return out.index_put((constant(self.thumb_slots, torch.int64, dev),), thumb)


def prior_loss(angles: torch.Tensor, spread: torch.Tensor, thumb: torch.Tensor) -> torch.Tensor:
    """Bounds (squared hinge) on flexion, spread and thumb rotation, plus a gentle pull to the flat hand."""
    lo = constant([b[0] for b in FLEX_BOUNDS] * 4, torch.float32, angles.device)
    hi = constant([b[1] for b in FLEX_BOUNDS] * 4, torch.float32, angles.device)
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


_PALM_MASK = torch.zeros(21)
_PALM_MASK[list(PALM)] = 1.0


def _palm_mask(device: torch.device) -> torch.Tensor:
    """:data:`_PALM_MASK` on ``device`` (made once per device)."""
    return constant(_PALM_ROWS, torch.float32, device)


_PALM_ROWS = tuple(_PALM_MASK.tolist())


def hand_residuals(px: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(21, 2) px: projected model hand points minus their targets, less the residuals' weighted mean over the
    palm points (with :data:`CENTRE_ON_PALM`): MediaPipe's wrist landmark sits at the wrist crease, not on the
    model's wrist joint, so the palm, not the wrist, places the hand."""
    res = px - target
    if CENTRE_ON_PALM:
        wp = weight * _palm_mask(weight.device)
        res = res - (wp[:, None] * res).sum(0) / wp.sum().clamp(min=1e-6)
    return res


def hand_error_px(px: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> float:
    """The weighted mean length (px) of :func:`hand_residuals`."""
    err = hand_residuals(px, target, weight).norm(dim=-1)
    return float((err * weight).sum() / weight.sum().clamp(min=1e-9))


def hand_targets(obs: np.ndarray, model_wrist_px: np.ndarray,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, float]:
    """One observed hand (21, 3) (px + score) → its landmarks moved so that the wrist sits on the model's
    projected wrist (21, 2) px, their weights (21,) (the score; 0 for the aligned wrist) and the hand's size in
    px (wrist → middle knuckle, at least 4); tensors on ``device``."""
    target = torch.tensor(obs[:, :2] - obs[0, :2] + np.asarray(model_wrist_px, np.float64), dtype=torch.float32,
                          device=device)
    w = np.clip(obs[:, 2], 0.0, 1.0)
    w[0] = 0.0  # the wrist is aligned, not fitted
    return (target, torch.tensor(w, dtype=torch.float32, device=device),
            max(float(np.linalg.norm(obs[9, :2] - obs[0, :2])), 4.0))


def new_hand_params(device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Starting hand parameters [flexions (12,), spreads (4,), thumb (3, 3)] on ``device``: slightly bent (a
    relaxed hand; an exactly flat hand also takes the model's rigid-hand shortcut)."""
    return [torch.full((12,), 0.1, device=device), torch.zeros(4, device=device), torch.zeros(3, 3, device=device)]


#: Callable: (hand params per side, wrist change per side) → world points (21, 3) per side, MediaPipe order.
HandPoints = Callable[[dict[str, list[torch.Tensor]], dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def optimise_hands(points: HandPoints, project: Callable[[torch.Tensor], torch.Tensor],
                   targets: dict[str, tuple[torch.Tensor, torch.Tensor, float]],
                   params: dict[str, list[torch.Tensor]], wrist: dict[str, torch.Tensor],
                   wrist_iters: int = WRIST_ITERS, iters: int = HAND_ITERS,
                   previous: dict[str, list[torch.Tensor]] | None = None, w_previous: float = 0.0,
                   ) -> dict[str, torch.Tensor]:
    """The finger fit's two steps, in place on ``params`` and ``wrist`` ((3,) axis-angle change of each side's
    wrist): ``wrist_iters`` Adam steps of the wrist alone on the palm landmarks, then ``iters`` steps of the
    fingers with the wrist fixed. Robust (Geman-McClure, scale shrinking from 4× to 1× :data:`HAND_SIGMA` of the
    hand's size) 2D distance of ``points`` (projected by ``project``, world → px) to ``targets`` (of
    :func:`hand_targets`), plus :func:`prior_loss`, a pull of the wrist change to zero (bounded by
    :data:`WRIST_LIMIT`) and, with ``previous``, ``w_previous`` × the squared change from those parameters (a
    warm-started video frame). Returns the final projected points (21, 2) px per side."""
    from .core import _Adam

    sides = list(targets)

    def evaluate(sigma: float = HAND_SIGMA, palm_only: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pts = points(params, wrist)
        loss = torch.zeros((), device=pts[sides[0]].device)
        pxs = {}
        for s in sides:
            target, weight, scale = targets[s]
            px = project(pts[s])
            pxs[s] = px
            r2 = (hand_residuals(px, target, weight) / scale).pow(2).sum(-1)
            s2 = sigma**2
            w = weight * _palm_mask(weight.device) if palm_only else weight
            data = 1e2 * (w * s2 * r2 / (r2 + s2)).sum() / w.sum().clamp(min=1e-6)
            loss = loss + data + prior_loss(*params[s]) + W_WRIST * wrist[s].pow(2).sum() \
                + W_BOUNDS * (wrist[s].norm() - WRIST_LIMIT).clamp(min=0).pow(2)
            if previous is not None and s in previous and w_previous > 0:
                loss = loss + w_previous * sum((a - b).pow(2).sum() for a, b in zip(params[s], previous[s],
                                                                                     strict=True))
        return loss, pxs

    for leaves, n, palm_only in (([wrist[s] for s in sides], wrist_iters, True),
                                 ([t for s in sides for t in params[s]], iters, False)):
        if n <= 0:
            continue
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
        return evaluate()[1]


def fit_hands(prob: Any, p: dict[str, torch.Tensor], hands: dict[str, np.ndarray] | None,
              iters: int = HAND_ITERS) -> dict[str, dict[str, float]]:
    """Fit ``p["left_hand_pose"]``/``p["right_hand_pose"]`` ((15, 3), set here; zero for unobserved hands) with
    a bounded correction of the observed hands' wrist rotations in ``p["body_pose"]``; the rest of ``p`` is
    fixed. ``prob``: the fit's ``_Problem``.

    Returns per observed side ``{"before_px", "after_px"}``: the confidence-weighted mean distance (processing
    px) of the 21 wrist-aligned landmarks before (flat hand) and after. A hand whose error does not drop is
    left flat with its wrist unchanged."""
    dev = p["body_pose"].device
    p["left_hand_pose"] = torch.zeros(15, 3, device=dev)
    p["right_hand_pose"] = torch.zeros(15, 3, device=dev)
    seen = observed_hands(hands)
    names = list(getattr(prob.model, "keypoint_names", []))
    if not seen or any(f"{s}_{f}" not in names for s in seen for f in ("thumb", "index", "middle", "ring", "pinky")):
        return {}
    with torch.no_grad():
        j_rest, k_rest = (x.double().cpu().numpy() for x in prob.body.rest(p["betas"])[1:])
        base = prob.forward(p)
    sides = list(seen)
    idx = {s: hand_model_indices(s, names) for s in sides}
    basis = {s: HandBasis(s, j_rest, k_rest, names, dev) for s in sides}
    wrist_joint = {"left": 20, "right": 21}
    targets = {s: hand_targets(seen[s], prob.project(base["joints"][wrist_joint[s]][None])[0].double().cpu().numpy(),
                               dev) for s in sides}
    params = {s: new_hand_params(dev) for s in sides}
    wrist = {s: torch.zeros(3, device=dev) for s in sides}
    body_pose0 = p["body_pose"].detach().clone()
    flat_hand = torch.zeros(15, 3, device=dev)

    def points(params: dict[str, list[torch.Tensor]], wrist: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hand = {s: basis[s].pose(*params[s]) if s in params else flat_hand for s in ("left", "right")}
        body_pose = body_pose0
        for s in sides:
            j = wrist_joint[s] - 1
            body_pose = body_pose.index_put((constant([j], torch.int64, dev),), body_pose0[j][None] + wrist[s][None])
        out = prob.forward(dict(p, body_pose=body_pose, left_hand_pose=hand["left"], right_hand_pose=hand["right"]))
        return {s: model_hand_points(out["joints"], out["keypoints"], *idx[s]) for s in sides}

    flat = {s: [torch.zeros(12, device=dev), *new_hand_params(dev)[1:]] for s in sides}
    with torch.no_grad():
        px0 = {s: prob.project(q) for s, q in points(flat, wrist).items()}
    before = {s: hand_error_px(px0[s], *targets[s][:2]) for s in sides}
    px1 = optimise_hands(points, prob.project, targets, params, wrist, iters=iters)
    metrics = {}
    body_pose = body_pose0.clone()
    for s in sides:
        after = hand_error_px(px1[s], *targets[s][:2])
        keep = after < before[s]
        if keep:
            p[f"{s}_hand_pose"] = basis[s].pose(*params[s]).detach()
            body_pose[wrist_joint[s] - 1] += wrist[s]
        metrics[s] = {"before_px": round(before[s], 3), "after_px": round(after if keep else before[s], 3)}
    p["body_pose"] = body_pose
    return metrics


def model_hand_points(joints: torch.Tensor, keypoints: torch.Tensor, index: np.ndarray,
                      is_kp: np.ndarray) -> torch.Tensor:
    """The model's 21 hand points (MediaPipe order) from posed ``joints`` and ``keypoints`` and the
    (index, is-keypoint) pair of :func:`hand_model_indices`."""
    kp = constant(np.asarray(is_kp, dtype=bool), torch.bool, joints.device)[:, None]
    index_t = constant(np.asarray(index, dtype=np.int64), torch.int64, joints.device)
    return torch.where(kp, keypoints[index_t.clamp(max=max(keypoints.shape[0] - 1, 0))],
                       joints[index_t.clamp(max=joints.shape[0] - 1)])


class HandChain:
    """One hand's forward kinematics below the posed forearm: the wrist, its 15 finger joints and the 5 fingertip
    keypoints (skinned with the body's keypoint weights, restricted to the hand's joints). Four kinematic
    levels instead of the body's whole tree: what a video needs to fit hands frame after frame.

    ``j_rest`` (55, 3), ``k_rest`` (K, 3) rest joints and keypoints of the shaped body (model frame, metres),
    ``keypoint_weights`` (K, 55) the keypoints' skinning weights (``FastBody.kw``)."""

    def __init__(self, side: str, j_rest: torch.Tensor, k_rest: torch.Tensor, keypoint_weights: torch.Tensor,
                 keypoint_names: list[str]) -> None:
        self.wrist = 20 if side == "left" else 21
        first = 25 if side == "left" else 40
        self.joints = [self.wrist, *range(first, first + 15)]  # five fingers of three joints, each in a row
        pos = {j: i for i, j in enumerate(self.joints)}
        assert all(int(PARENTS[j]) == (self.wrist if (j - first) % 3 == 0 else j - 1) for j in self.joints[1:])
        self.forearm = int(PARENTS[self.wrist])
        index, is_kp = hand_model_indices(side, keypoint_names)
        self.j_rest = j_rest[self.joints].float()
        chain = self.j_rest[1:].reshape(5, 3, 3)  # (finger, joint, xyz)
        self.bones = (chain - torch.cat([self.j_rest[:1].expand(5, 1, 3), chain[:, :2]], 1))[..., None]
        tips = index[is_kp == 1]
        self.k_rest = k_rest[tips].float()
        w = keypoint_weights[tips][:, self.joints].float()
        self.kw = w / w.sum(-1, keepdim=True).clamp(min=1e-6)
        # MediaPipe landmark → row of cat([chain joints (16), fingertips (5)])
        tip_row = {int(k): 16 + i for i, k in enumerate(tips)}
        self.rows = torch.tensor([tip_row[int(i)] if k else pos[int(i)] for i, k in zip(index, is_kp, strict=True)],
                                 device=j_rest.device)

    def points(self, forearm_rotation: torch.Tensor, wrist_pose: torch.Tensor, wrist_position: torch.Tensor,
               hand_pose: torch.Tensor) -> torch.Tensor:
        """The 21 hand points (MediaPipe order; world, metres) for the forearm's global rotation (3, 3), the
        wrist's local axis-angle (3,), the posed wrist joint (3,) (world) and the hand pose (15, 3). Forward
        kinematics one finger level at a time (the five fingers at once)."""
        local = axis_angle_to_matrix(torch.cat([wrist_pose[None], hand_pose]))
        g = forearm_rotation @ local[0]
        fingers = local[1:].reshape(5, 3, 3, 3)
        rots, locs = [], []
        r, t = g.expand(5, 3, 3), wrist_position.expand(5, 3)
        for k in range(3):
            t = t + (r @ self.bones[:, k])[..., 0]
            r = r @ fingers[:, k]
            rots.append(r)
            locs.append(t)
        G = torch.cat([g[None], torch.stack(rots, 1).reshape(15, 3, 3)])
        T = torch.cat([wrist_position[None], torch.stack(locs, 1).reshape(15, 3)])
        tips = skin_points(self.kw, skinning_transforms(G, T, self.j_rest), self.k_rest)
        return torch.cat([T, tips])[self.rows]
