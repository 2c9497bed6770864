"""The canonical body: the fitted shape in its canonical (legs-spread T) pose, its body parts and limb segments.

Frames and units: see :mod:`icon_engine.avatar`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bundle.skeleton import NUM_JOINTS, PARENTS, forward_kinematics, skin_vertices
from ..errors import EngineError
from ..rig import _np

#: Body parts: 0 torso and head, 1 left arm and hand, 2 right arm and hand, 3 left leg, 4 right leg.
PART_NAMES = ("torso", "left_arm", "right_arm", "left_leg", "right_leg")
_PART_JOINTS = {
    0: (0, 3, 6, 9, 12, 13, 14, 15, 22, 23, 24),
    1: (16, 18, 20, *range(25, 40)),
    2: (17, 19, 21, *range(40, 55)),
    3: (1, 4, 7, 10),
    4: (2, 5, 8, 11),
}
#: (55,) part of each joint.
JOINT_PART = np.zeros(NUM_JOINTS, dtype=np.int64)
for _p, _js in _PART_JOINTS.items():
    JOINT_PART[list(_js)] = _p
#: (5, 55) one-hot joint → part matrix.
_PART_MATRIX = (JOINT_PART[None, :] == np.arange(len(PART_NAMES))[:, None]).astype(np.float64)
#: Joints that lead a limb segment: shoulders, elbows, wrists, hips, knees, ankles. Not the toes (the SMPL-X foot
#: joints): a shoe shorter or turned from the fitted foot leaves 0.7–0.97 of the toes 1 cm outside (front + back
#: avatars of the multiview bench) without losing the foot; they come back with a lost ankle.
LIMB_SEGMENT_JOINTS = (16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)
#: What each segment of :data:`LIMB_SEGMENT_JOINTS` is, for the warning a restored limb gives.
LIMB_SEGMENT_NAMES = {16: "left upper arm", 17: "right upper arm", 18: "left forearm", 19: "right forearm",
                      20: "left hand", 21: "right hand", 1: "left thigh", 2: "right thigh", 4: "left shin",
                      5: "right shin", 7: "left foot", 8: "right foot"}


#: Joints of the hands (wrists and fingers) and the largest clothing offset the body prior gives them (metres).
HAND_JOINTS = (20, 21, *range(25, 55))


@dataclass
class CanonicalBody:
    """The shaped body in canonical (T) space: ``vertices`` (V, 3), ``faces`` (F, 3), ``lbs_weights`` (V, 55),
    ``joints`` (55, 3) rest joints; ``parts`` (V,) body part of each vertex (:data:`PART_NAMES`)."""

    vertices: np.ndarray
    faces: np.ndarray
    lbs_weights: np.ndarray
    joints: np.ndarray
    parts: np.ndarray


def canonical_body(fit: Any, body_model: Any) -> CanonicalBody:
    """The fitted shape in the T pose from ``body_model`` (a BodyModel, or a stand-in with ``rest_vertices`` as an
    array and ``rest_joints(betas)``) and ``fit.betas``."""
    betas = _np(fit.betas).reshape(1, -1)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(body_model, torch.nn.Module):
        with torch.no_grad():
            param = next(iter(body_model.buffers()), None)
            b = torch.as_tensor(betas, dtype=torch.float32, device=param.device if param is not None else None)
            verts = _np(body_model.rest_vertices(b)).reshape(-1, 3)
            joints = _np(body_model.rest_joints(b)).reshape(-1, 3)[:NUM_JOINTS]
    else:
        rv = body_model.rest_vertices
        verts = _np(rv(betas) if callable(rv) else rv).reshape(-1, 3)
        joints = _np(body_model.rest_joints(betas)).reshape(-1, 3)[:NUM_JOINTS]
    faces = _np(body_model.faces, np.int64).reshape(-1, 3)
    lbs = _np(body_model.lbs_weights)
    if lbs.shape != (len(verts), NUM_JOINTS):
        raise EngineError("body_model", f"The body model's skin weights have shape {lbs.shape}, expected "
                          f"({len(verts)}, {NUM_JOINTS}).", "Use an SMPL-X layout body model.")
    parts = (lbs @ _PART_MATRIX.T).argmax(axis=1)
    return CanonicalBody(verts, faces, lbs, joints, parts)


#: Hip abduction of the canonical pose (degrees, each leg outward) when a photo shows cloth spanning the legs (a
#: skirt, a dress, a long coat: :func:`~icon_engine.avatar.photo_occupancy.cloth_between_legs`): legs together, so
#: the skirt's between-legs volume stays one surface (spread 15°, it became a contact zone and the front panel
#: folded inward).
CANONICAL_HIP_SPREAD_DEG = 0.0
#: ... and when none does (trousers, shorts; wave 27): the legs stand apart, so what the photo surface holds between
#: thighs seen crossed or touching (a stride seen from the side, a squat) is farther from both thighs in canonical
#: space, the leg tube cuts it back and the skin weights no longer split it between the legs: it is not stretched
#: into torn faces when the avatar walks (dev photos, `bench/avatar.py`: icon_5a6a2596 82 / 81 torn faces in the
#: two walks → 6 / 7, icon_003883 squat and sitting 52 / 56 → 14 / 23). 15° tore less still but grew a flag off
#: icon_fb9d20fd's foot (canonical points round the spread foot warped into the photo's hand beside it).
TROUSERS_HIP_SPREAD_DEG = 10.0


def canonical_pose_angles(hip_spread_deg: float = CANONICAL_HIP_SPREAD_DEG) -> np.ndarray:
    """(55, 3) axis-angle of the canonical pose relative to the T pose: arms out, each leg ``hip_spread_deg``
    (degrees) outward."""
    angles = np.zeros((NUM_JOINTS, 3))
    angles[1, 2] = np.radians(hip_spread_deg)  # left leg (+X) outward
    angles[2, 2] = -np.radians(hip_spread_deg)
    return angles


def pose_body(body: CanonicalBody, angles: np.ndarray) -> CanonicalBody:
    """``body`` (T pose) posed by ``angles`` (55, 3) without translation: its vertices and joints move, weights and
    parts stay."""
    _, joints = forward_kinematics(body.joints, np.asarray(PARENTS), angles)
    verts = skin_vertices(body.vertices, body.lbs_weights, body.joints, np.asarray(PARENTS), angles)
    return CanonicalBody(verts, body.faces, body.lbs_weights, joints, body.parts)


def part_shares(weights: np.ndarray) -> np.ndarray:
    """(N, 5): each body part's share of each row of ``weights`` (N, 55), rows summing to 1."""
    share = weights @ _PART_MATRIX.T
    return share / np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
