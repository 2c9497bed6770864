"""Pose and shape priors of the body fit (torch). Angles in radians, lengths in metres, SMPL-X joint indices.

- joint-angle limits: knees and elbows bend one way only and barely twist or abduct; every body joint has a
  generous box on its axis-angle components (feet cannot flip, the spine cannot fold);
- a weak pull of the less observable joints (spine, neck, head, collars, wrists, ankles) towards rest;
- no knee bend without evidence: the knees are pulled straight (a knee bent towards or away from the camera
  changes the image little, so only the landmarks' clear evidence of a bend should bend it);
- both feet on one floor plane when standing (:func:`floor_loss`);
- no limb through the torso: elbows, wrists, knees and forearm midpoints stay out of spheres around the spine;
- gait coupling: in a stride each arm swings opposite to the same-side leg (:func:`gait_loss`);
- the shape stays near the mean (``|betas|²``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..geometry.device import constant
from .landmarks import J

#: Box limits |component| ≤ limit (radians) on each body joint's axis-angle (x, y, z), joints 1..21.
_LIMITS = {
    "left_hip": (2.4, 1.0, 1.4), "right_hip": (2.4, 1.0, 1.4),
    "spine1": (0.7, 0.5, 0.4), "spine2": (0.4, 0.4, 0.3), "spine3": (0.4, 0.4, 0.3),
    "left_knee": (2.6, 0.2, 0.2), "right_knee": (2.6, 0.2, 0.2),
    "left_ankle": (0.8, 0.4, 0.4), "right_ankle": (0.8, 0.4, 0.4),
    "left_foot": (0.4, 0.2, 0.2), "right_foot": (0.4, 0.2, 0.2),
    "neck": (0.6, 0.7, 0.4), "head": (0.5, 0.7, 0.4),
    "left_collar": (0.3, 0.4, 0.4), "right_collar": (0.3, 0.4, 0.4),
    "left_shoulder": (1.6, 1.6, 1.8), "right_shoulder": (1.6, 1.6, 1.8),
    "left_elbow": (1.2, 2.6, 0.3), "right_elbow": (1.2, 2.6, 0.3),
    "left_wrist": (1.0, 0.8, 1.2), "right_wrist": (1.0, 0.8, 1.2),
}  # fmt: skip

#: Pull of a knee towards straight (per rad², times the fit's rest weight) when the photo shows that leg straight
#: (:func:`knee_pull_weights`): a bend towards or away from the camera is then unseen, and is straightened.
KNEE_PULL = 20.0
#: The photo's knee angle (hip–knee–ankle landmarks, degrees) below which the full pull applies and above which
#: none does (linear between): a leg the image shows bent keeps its bend.
KNEE_2D_STRAIGHT_DEG = (4.0, 10.0)

#: Weight of the pull towards rest per joint (1..21); well-observed limbs are free.
_REST_PULL = {
    "spine1": 1.0, "spine2": 2.0, "spine3": 2.0, "neck": 1.0, "head": 0.5, "left_collar": 3.0,
    "right_collar": 3.0, "left_ankle": 0.5, "right_ankle": 0.5, "left_foot": 3.0, "right_foot": 3.0,
    "left_wrist": 0.3, "right_wrist": 0.3, "left_hip": 0.02, "right_hip": 0.02, "left_shoulder": 0.02,
    "right_shoulder": 0.02, "left_knee": 0.02, "right_knee": 0.02, "left_elbow": 0.02,
    "right_elbow": 0.02,
}  # fmt: skip


def _per_joint(table: dict, default) -> np.ndarray:
    out = [table.get(name, default) for name in _BODY_NAMES]
    return np.asarray(out, dtype=np.float32)


_BODY_NAMES = sorted((n for n in J if 1 <= J[n] <= 21), key=lambda n: J[n])
LIMITS = torch.from_numpy(_per_joint(_LIMITS, (3.0, 3.0, 3.0)))  # (21, 3)
REST_PULL = torch.from_numpy(_per_joint(_REST_PULL, 0.1))  # (21,)
_LIMIT_ROWS = tuple(map(tuple, LIMITS.tolist()))  # the same values as nested tuples (:func:`constant`'s key)


#: The hinges of :func:`angle_limit_loss`, rows (left knee, right knee, left elbow, right elbow) of the body pose:
#: the component each may bend one way only, as the sign of its forbidden direction (knees flex about +x only,
#: the left elbow about −y and the right about +y), and the squared weight of the components it should not use
#: (a knee's twist and abduction; half for an elbow's abduction).
_HINGE_ROWS = (J["left_knee"] - 1, J["right_knee"] - 1, J["left_elbow"] - 1, J["right_elbow"] - 1)
_HINGE_ONE_WAY = ((-1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0))
_HINGE_SQUARED = ((0.0, 1.0, 1.0), (0.0, 1.0, 1.0), (0.0, 0.0, 0.5), (0.0, 0.0, 0.5))


def angle_limit_loss(body_pose: torch.Tensor) -> torch.Tensor:
    """One-way hinges for knees and elbows plus box limits; ``body_pose`` (B, 21, 3) axis-angle (joints 1..21)."""
    dev, dtype = body_pose.device, body_pose.dtype
    hinges = body_pose.index_select(1, constant(_HINGE_ROWS, torch.int64, dev))  # (B, 4, 3)
    hinge = (torch.relu(hinges * constant(_HINGE_ONE_WAY, dtype, dev)).pow(2)
             + hinges.pow(2) * constant(_HINGE_SQUARED, dtype, dev))
    box = torch.relu(body_pose.abs() - constant(_LIMIT_ROWS, LIMITS.dtype, dev)).pow(2)
    return 10.0 * (hinge.sum((-1, -2)) + box.sum((-1, -2))).mean()


def rest_pull_loss(body_pose: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted |θ|² towards the rest pose; ``body_pose`` (B, 21, 3); ``weights`` (21,), default ``REST_PULL``."""
    w = REST_PULL if weights is None else weights
    return (w * body_pose.pow(2).sum(-1)).sum(-1).mean()


def knee_pull_weights(knee_angles_2d_deg: dict[str, float | None]) -> torch.Tensor:
    """``REST_PULL`` with each knee's pull raised towards :data:`KNEE_PULL` when the photo shows that leg straight:
    ``knee_angles_2d_deg`` maps "left"/"right" to the image angle (degrees) between hip→knee and knee→ankle, or
    None when those landmarks are not seen (then the knee keeps the weak pull)."""
    w = REST_PULL.clone()
    lo, hi = KNEE_2D_STRAIGHT_DEG
    for side, angle in knee_angles_2d_deg.items():
        if angle is not None:
            t = min(max((hi - angle) / (hi - lo), 0.0), 1.0)
            w[J[f"{side}_knee"] - 1] = REST_PULL[J[f"{side}_knee"] - 1] + t * KNEE_PULL
    return w


#: Torso spheres: (joint a, joint b, t along a→b, radius in metres).
_TORSO_SPHERES = ((J["pelvis"], J["spine1"], 0.5, 0.085), (J["spine1"], J["spine2"], 0.5, 0.085),
                  (J["spine2"], J["spine3"], 0.5, 0.09), (J["spine3"], J["neck"], 0.3, 0.085))
#: Limb points that must stay outside the torso: (joint a, joint b, t along a→b).
_LIMB_POINTS = tuple((a, b, t) for a, b in ((J["left_elbow"], J["left_wrist"]), (J["right_elbow"], J["right_wrist"]))
                     for t in (0.0, 0.5, 1.0)) + ((J["left_knee"], J["left_knee"], 0.0),
                                                   (J["right_knee"], J["right_knee"], 0.0))


def _points(joints: torch.Tensor, spec) -> torch.Tensor:
    a = constant([s[0] for s in spec], torch.int64, joints.device)
    b = constant([s[1] for s in spec], torch.int64, joints.device)
    t = constant([s[2] for s in spec], joints.dtype, joints.device)[:, None]
    return joints[:, a] * (1 - t) + joints[:, b] * t


def torso_penetration_loss(joints: torch.Tensor) -> torch.Tensor:
    """Squared depth (metres) of limb points inside torso spheres; ``joints`` (B, 55, 3)."""
    centres = _points(joints, _TORSO_SPHERES)  # (B, S, 3)
    radii = constant([s[3] for s in _TORSO_SPHERES], joints.dtype, joints.device)
    limbs = _points(joints, _LIMB_POINTS)  # (B, L, 3)
    d = torch.cdist(limbs, centres)  # (B, L, S)
    legs = (torch.relu(0.08 - (joints[:, J["left_knee"]] - joints[:, J["right_knee"]]).norm(dim=-1)) ** 2
            + torch.relu(0.06 - (joints[:, J["left_ankle"]] - joints[:, J["right_ankle"]]).norm(dim=-1)) ** 2)
    return (torch.relu(radii - d) ** 2).sum((-1, -2)).mean() + legs.mean()


def lean_loss(pelvis_rotation: torch.Tensor) -> torch.Tensor:
    """Squared forward/backward lean (radians²) of the pelvis's up axis (the rotation's second column; world Y
    up) in the world's Y-Z plane: a standing person's pelvis is upright (gravity)."""
    up = pelvis_rotation[..., :, 1]
    return torch.atan2(up[..., 2], up[..., 1]) ** 2


#: Softness (metres) of the lowest-point of a foot in :func:`floor_loss`.
FOOT_SOFTMIN_M = 0.01


def floor_loss(left_foot_y: torch.Tensor, right_foot_y: torch.Tensor, robust_cm: float | None = None) -> torch.Tensor:
    """Squared height difference (in centimetres²) between the lowest points of the two feet (soft minimum over
    each foot's points, world Y up): a standing person has both feet on one floor plane. With ``robust_cm`` the
    square is Geman–McClure robust beyond that many centimetres (``c² d² / (d² + c²)``): a foot clearly lifted
    (a stride's swing foot) pays little more than ``c²``."""
    def low(y: torch.Tensor) -> torch.Tensor:
        return -FOOT_SOFTMIN_M * torch.logsumexp(-y / FOOT_SOFTMIN_M, dim=-1)

    d2 = (100.0 * (low(left_foot_y) - low(right_foot_y))) ** 2
    return d2 if robust_cm is None else robust_cm**2 * d2 / (d2 + robust_cm**2)


#: Gait coupling (:func:`gait_loss`): in a walker's stride the arms swing opposite to the legs, the wrists' forward
#: difference at least this fraction of the ankles' (normal walking: wrist excursion ≈ 0.3–0.4 m peak to peak
#: against a 0.6–0.8 m step, about half) ...
GAIT_ARM_RATIO = 0.5
#: ... once the ankles' forward difference (metres, in the pelvis frame) exceeds the first value, fully by the
#: second: feet side by side or one foot a little ahead (a relaxed stance) leave the arms free. (From 0.10 m the
#: rendered set's non-walkers got it while their pose settled, their stride passing 13–18 cm on the way.)
GAIT_STRIDE_M = (0.20, 0.30)


def gait_loss(joints: torch.Tensor, pelvis_rotation: torch.Tensor) -> torch.Tensor:
    """Gait coupling (metres²): in a stride (the left ankle ``s`` metres ahead of the right, relative to their hips,
    along the pelvis's forward axis) the right wrist should be at least ``GAIT_ARM_RATIO × s`` ahead of the left
    (relative to their shoulders), and mirrored; a swing in the stride's own sense or a smaller one pays the
    square of the shortfall. One-sided: a bigger arm swing is free. ``joints`` (B, 55, 3) world; ``pelvis_rotation``
    (B, 3, 3) the pelvis's global rotation (its third column is the body's forward, +Z in the rest pose). The
    stride is taken as given (no gradient): the floor and the landmarks order the legs, this orders the arms by
    them. Weighted by the stride's size (:data:`GAIT_STRIDE_M`)."""

    stride, weight = stride_of(joints, pelvis_rotation)
    swing = _ahead(joints, pelvis_rotation, "right_wrist", "right_shoulder") - _ahead(
        joints, pelvis_rotation, "left_wrist", "left_shoulder")
    short = torch.relu(GAIT_ARM_RATIO * stride.abs() - torch.sign(stride) * swing)
    return (weight * short**2).mean()


def _ahead(joints: torch.Tensor, pelvis_rotation: torch.Tensor, a: str, b: str) -> torch.Tensor:
    """(B,) how far joint ``a`` lies ahead of joint ``b`` (metres) along the pelvis's forward axis."""
    return ((joints[:, J[a]] - joints[:, J[b]]) * pelvis_rotation[:, :, 2]).sum(-1)


def _stride(joints: torch.Tensor, pelvis_rotation: torch.Tensor) -> torch.Tensor:
    """(B,) metres: the left ankle's lead over the right (each relative to its hip) along the pelvis's forward."""
    return _ahead(joints, pelvis_rotation, "left_ankle", "left_hip") - _ahead(
        joints, pelvis_rotation, "right_ankle", "right_hip")


def _stride_weight(stride: torch.Tensor) -> torch.Tensor:
    """(B,) rising from 0 to 1 over :data:`GAIT_STRIDE_M` of ``|stride|``: how surely this is a walker's stride
    rather than a relaxed stance."""
    lo, hi = GAIT_STRIDE_M
    return ((stride.abs() - lo) / (hi - lo)).clamp(0.0, 1.0)


def stride_of(joints: torch.Tensor, pelvis_rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A standing person's stride (no gradient): ``(s, weight)``, each (B,). ``s`` (metres): the left ankle's lead
    over the right (each relative to its hip) along the pelvis's forward axis (the third column of
    ``pelvis_rotation`` (B, 3, 3)); ``weight``: :func:`_stride_weight`."""
    s = _stride(joints, pelvis_rotation).detach()
    return s, _stride_weight(s)


#: A walker's stride (:func:`stride_loss`): at least this fraction of the stature, ankle to ankle front to back.
STRIDE_MIN_RATIO = 0.25


#: The stride prior needs the feet apart in the image: the ankles at least this fraction of the hips' width apart
#: across the image, on the hips' side order (:func:`feet_apart_in_image`). Feet crossed or touching (a fashion
#: stance, one leg crossed in front) say nothing of a stride in depth: on the dev photo icon_028009 (ankles 0.19 ×
#: the hips' width apart) the prior made a 40 cm stride and a forward lean of a crossed-leg stance. The shared set's
#: walkers: 1.15 (100) and 0.70 (107).
STRIDE_MIN_ANKLE_SPREAD = 0.5


def feet_apart_in_image(keypoints: np.ndarray) -> bool:
    """Whether BlazePose's ankles (``keypoints`` (33, 3): px and visibility) lie at least
    :data:`STRIDE_MIN_ANKLE_SPREAD` × the hips' width apart across the image, in the hips' left/right order; True
    when the hips overlap (a side view: the order cannot be told)."""
    from .landmarks import BP

    k = np.asarray(keypoints, dtype=np.float64)
    hips = k[BP["left_hip"], 0] - k[BP["right_hip"], 0]
    ankles = k[BP["left_ankle"], 0] - k[BP["right_ankle"], 0]
    if abs(hips) < 1e-6:
        return True
    return bool(ankles / hips >= STRIDE_MIN_ANKLE_SPREAD)


def stride_loss(joints: torch.Tensor, pelvis_rotation: torch.Tensor, stature: torch.Tensor | float) -> torch.Tensor:
    """Squared shortfall (metres²) of a walker's stride below ``STRIDE_MIN_RATIO × stature`` (metres; give it
    without gradient), weighted by the stride's weight (:func:`stride_of`): zero for feet side by side."""
    stride = _stride(joints, pelvis_rotation)
    s = stride.detach()
    return (_stride_weight(s) * torch.relu(STRIDE_MIN_RATIO * stature - torch.sign(s) * stride) ** 2).mean()


def shape_loss(betas: torch.Tensor) -> torch.Tensor:
    """|betas|² (betas in standard deviations of the body model's shape space)."""
    return betas.pow(2).sum(-1).mean()


#: BlazePose landmarks by body part, for :func:`occlusion_pairs` (limb points hidden by the head or the torso).
_PARTS = {
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left", "mouth_right"),
    "torso": ("left_shoulder", "right_shoulder", "left_hip", "right_hip"),
    "left_arm": ("left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb"),
    "right_arm": ("right_elbow", "right_wrist", "right_pinky", "right_index", "right_thumb"),
    "left_leg": ("left_knee", "left_ankle", "left_heel", "left_foot_index"),
    "right_leg": ("right_knee", "right_ankle", "right_heel", "right_foot_index"),
}
#: A limb landmark below this BlazePose visibility counts as hidden (full weight at ``HIDDEN_VIS[0]`` and below) ...
HIDDEN_VIS = (0.55, 0.8)
#: ... and a landmark of these parts above this visibility as a possible occluder (not the other limbs: on crossed
#: arms a hand hidden under the other forearm lies at about its depth, and holding it behind that forearm's
#: landmarks made subject 106 of the rendered set worse, 2.04 → 2.34 cm), ...
OCCLUDER_PARTS = ("head", "torso")
OCCLUDER_VIS = 0.9
#: ... when it lies within this fraction of the person's size of the hidden landmark in the photo.
OCCLUSION_RADIUS = 0.05
#: The hidden point may lie this far (metres) in front of the mean of its occluders' model points (surface points:
#: a hand in the hair beside the ear lies about level with the face's landmarks).
OCCLUSION_MARGIN_M = 0.05


def occlusion_pairs(keypoints: np.ndarray, landmarks: np.ndarray, person_size: float,
                    ) -> list[tuple[int, list[int], float]]:
    """Depth order from occlusion: ``(row, occluder rows, weight)`` for each mapped limb landmark that BlazePose
    reports hidden (low visibility) while the photo puts it on well-seen head or torso landmarks (within
    :data:`OCCLUSION_RADIUS` × ``person_size`` pixels), which must then be in front of it.

    ``keypoints`` (33, 3): pixels + visibility; ``landmarks`` (T,): the BlazePose index of each model-point row.
    The weight rises from 0 at ``HIDDEN_VIS[1]`` to 1 at ``HIDDEN_VIS[0]``."""
    from .landmarks import BP

    part_of = {BP[n]: part for part, names in _PARTS.items() for n in names}
    row_of = {int(lm): i for i, lm in enumerate(landmarks)}
    lo, hi = HIDDEN_VIS
    out = []
    for lm, row in row_of.items():
        part = part_of.get(lm)
        if part is None or part in ("head", "torso") or keypoints[lm, 2] >= hi:
            continue
        occluders = [row_of[o] for o in row_of if part_of.get(o) in OCCLUDER_PARTS and keypoints[o, 2] >= OCCLUDER_VIS
                     and np.linalg.norm(keypoints[o, :2] - keypoints[lm, :2]) < OCCLUSION_RADIUS * person_size]
        if occluders:
            out.append((row, occluders, float(min((hi - keypoints[lm, 2]) / (hi - lo), 1.0))))
    return out


def occlusion_loss(depth: torch.Tensor, pairs: list[tuple[int, list[int], float]]) -> torch.Tensor:
    """Squared distance (metres²) by which hidden points lie in front of their occluders (less the margin):
    ``depth`` (T,) camera-frame depth (z, metres, away from the camera) of the model points; ``pairs`` from
    :func:`occlusion_pairs`. Weighted mean over the pairs; zero without pairs."""
    if not pairs:
        return depth.new_zeros(())
    total = depth.new_zeros(())
    for row, occ, w in pairs:
        total = total + w * torch.relu(depth[occ].mean() - OCCLUSION_MARGIN_M - depth[row]) ** 2
    return total / sum(w for _, _, w in pairs)
