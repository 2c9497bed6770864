"""Head fit: the head's rotation that puts the body model's face onto the photo's face, after the body fit.

The body fit places the head from BlazePose's nose, eyes and ears (:mod:`.landmarks`); on the dev photos its eye
corners, nose tip and mouth corners then land 10–30 % of the eye-to-eye distance off the photo's (a tilted head
resting on a hand, a head bent forward under a hand at the brow), and the texture paints the photo's eyes onto the
mesh's cheek or brow: a smeared face in every other view. Here the 7 face points MediaPipe's face mesh finds
(:func:`icon_engine.person.detect_face`: eye corners, nose tip, mouth corners; processing px) pull the body model's
static face landmarks at the same iBUG-68 points onto them by turning the head (joint 15, about itself: the head
stays where the body fit put it) by a bounded rotation; shape, camera and every other joint stay as the body fit
left them. Turning the neck as well (the face could then also shift) lowered the face error only a little more on
the rendered set (2.23 → 2.15 px) and moved the head against the silhouette (clothed Chamfer 1.724 → 1.738 cm).

The face's landmarks move rigidly with the head joint (the face is skinned to the head, the mouth to the jaw, whose
rotation is zero here), so each step costs one pass of the fast body's kinematics. The data term is Geman-McClure on
the distance in units of the photo's eye-to-eye distance (outer corners), its scale shrinking from 4× to 1×
:data:`FACE_SIGMA`; a pull of the rotation change to zero and a bound (:data:`FACE_LIMIT`) keep the head from
turning to explain a detector's error. The change is kept only when it lowers the mean distance. Units: metres,
radians, processing pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..geometry.device import constant
from ..person import FACE_POINTS

#: Whether the fits (one photo, and both joint fits) turn the head onto the photo's face points (off: as before
#: wave 25, for A/B runs: ``--set fit.face.FIT_FACE=false``).
FIT_FACE = True
#: The SMPL-X joint the head fit turns (its ``body_pose`` row is joint − 1).
HEAD = 15
FACE_ITERS = 40
FACE_LR = 0.02
#: Robust scale of the face term, fraction of the photo's eye-to-eye distance (outer corners, px).
FACE_SIGMA = 0.15
#: Largest change of the head's rotation (radians, ≈ 20°) ...
FACE_LIMIT = 0.35
W_FACE_BOUNDS = 50.0
#: ... and the pull of the change towards zero (per radian², against the data term's 1e2 scale).
W_FACE_REST = 2.0


def face_error(px: torch.Tensor, target: torch.Tensor) -> float:
    """Mean distance (processing px) between projected face points ``px`` (7, 2) and ``target`` (7, 2)."""
    return float((px - target).norm(dim=-1).mean())


def fit_face(prob: Any, p: dict[str, torch.Tensor], face: np.ndarray | None,
             iters: int = FACE_ITERS) -> dict[str, float]:
    """Turn the head (``p["body_pose"]`` row 14, changed in place) so that the body model's
    face points project onto ``face`` ((7, ≥ 2) processing px, :data:`icon_engine.person.FACE_POINTS` order), the
    rest of ``p`` fixed. ``prob``: the fit's ``_Problem``. Returns ``{"before_px", "after_px",
    "eye_distance_px"}`` (mean distance before and after; the photo's eye-to-eye distance), or ``{}`` when there is
    no face, the body model has no face landmarks or :data:`FIT_FACE` is off. A change that does not lower the
    distance is not kept."""
    if not FIT_FACE or face is None or len(face) != len(FACE_POINTS):
        return {}
    target_np = np.asarray(face, dtype=np.float64)[:, :2]
    eye_px = float(np.linalg.norm(target_np[0] - target_np[3]))
    if not np.isfinite(target_np).all() or eye_px < 4.0:
        return {}
    dev = p["body_pose"].device
    with torch.no_grad():
        betas = prob.shape(p["betas"])
        rest = prob.model(betas=betas[None])
        landmarks = getattr(rest, "face_landmarks", None)
        if landmarks is None or landmarks.shape[1] < 51:
            return {}
        ibug = constant(np.array([i - 17 for _, _, i in FACE_POINTS]), torch.int64, landmarks.device)
        j_rest = prob.body.rest(betas)[1]
        offsets = landmarks[0, ibug].to(dev, torch.float32) - j_rest[HEAD]  # (7, 3), rest, from the head joint
    target = torch.as_tensor(target_np, dtype=torch.float32, device=dev)
    body_pose0 = p["body_pose"].detach().clone()
    delta = torch.zeros(3, device=dev)
    row = constant(np.array([HEAD - 1]), torch.int64, dev)

    def turned(change: torch.Tensor) -> torch.Tensor:
        return body_pose0.index_put((row,), body_pose0[HEAD - 1][None] + change[None])

    fixed = {k: v.detach() if torch.is_tensor(v) else v for k, v in p.items()}  # no gradient to the rest of p

    def project(change: torch.Tensor) -> torch.Tensor:
        out = prob.forward(dict(fixed, body_pose=turned(change)))
        points = out["joints"][HEAD] + offsets @ out["rotations"][HEAD].T
        return prob.project(points)

    from .core import minimise

    with torch.no_grad():
        before = face_error(project(delta), target)
    steps = iter(range(iters))

    def loss() -> torch.Tensor:
        i = next(steps)
        sigma = FACE_SIGMA * (1.0 + 3.0 * max(0.0, 1.0 - 2.0 * i / iters))  # wide → robust
        r2 = ((project(delta) - target) / eye_px).pow(2).sum(-1)
        data = 1e2 * (sigma**2 * r2 / (r2 + sigma**2)).mean()
        bound = (delta.norm() - FACE_LIMIT).clamp(min=0).pow(2)
        return data + W_FACE_REST * delta.pow(2).sum() + W_FACE_BOUNDS * bound

    minimise([delta], loss, iters, FACE_LR)
    with torch.no_grad():
        after = face_error(project(delta), target)
        if after < before:
            p["body_pose"] = turned(delta)
        else:
            after = before
    return {"before_px": round(before, 3), "after_px": round(after, 3), "eye_distance_px": round(eye_px, 3)}
