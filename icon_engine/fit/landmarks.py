"""BlazePose's 33 landmarks and where they sit on an SMPL-X-layout body.

BlazePose landmarks are surface-ish anatomical points labelled like COCO, not the SMPL-X skeleton's joint
centres. Each landmark is matched to a *model point*: a skeleton joint, a regressed keypoint of the body model
(nose, eyes, ears, heels, toes) or a joint plus a small offset in a bone's frame (hips, shoulders, ankles). See
docs/fit.md for the reasoning behind each choice.

Frames: model points are in the body world (SMPL-X frame, metres). BlazePose world landmarks use BlazePose axes
(x to the image's right, y down, z away from the camera), i.e. the axes of an OpenCV camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..person import LANDMARK_NAMES

#: BlazePose landmark names, index order of ``PersonObservation.keypoints`` (defined by the detector).
BLAZEPOSE_NAMES: tuple[str, ...] = LANDMARK_NAMES

BP = {name: i for i, name in enumerate(BLAZEPOSE_NAMES)}

#: SMPL-X joint indices used here (see icon_engine.bundle.skeleton.JOINT_NAMES).
J = {
    "pelvis": 0, "left_hip": 1, "right_hip": 2, "spine1": 3, "left_knee": 4, "right_knee": 5, "spine2": 6,
    "left_ankle": 7, "right_ankle": 8, "spine3": 9, "left_foot": 10, "right_foot": 11, "neck": 12,
    "left_collar": 13, "right_collar": 14, "head": 15, "left_shoulder": 16, "right_shoulder": 17,
    "left_elbow": 18, "right_elbow": 19, "left_wrist": 20, "right_wrist": 21,
    "left_index1": 25, "left_middle1": 28, "left_pinky1": 31, "left_thumb2": 38,
    "right_index1": 40, "right_middle1": 43, "right_pinky1": 46, "right_thumb2": 53,
}  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where one BlazePose landmark sits on the body.

    ``kind``: "joint" (``index`` is an SMPL-X joint), "keypoint" (``names`` are candidate names of a regressed
    keypoint of the body model, first match wins; falls back to joint ``index`` when none exists) or
    "offset" (joint ``index`` plus ``offset`` metres in the frame of joint ``frame``'s global rotation).
    ``weight`` scales the landmark's confidence in the 2D term.
    """

    landmark: int
    kind: str
    index: int
    weight: float
    names: tuple[str, ...] = ()
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frame: int = 0


# Where BlazePose puts hips and shoulders relative to the body's hip and shoulder joint centres. BlazePose run on
# shaded renders of the open body (bench/fit.py --calibrate 16) put its hips about 2 cm above the hip joints (and
# 2-4 cm inwards) and its shoulders 1-2 cm above the shoulder joints (1-3 cm inwards). Only the vertical part is
# used: the inward part shortened the hip baseline and fitted worse in the benchmark. Metres, in the pelvis frame
# (hips) and the spine3 frame (shoulders), for the left side (+x = the body's left; mirrored for the right).
HIP_OFFSET = (0.0, 0.025, 0.0)
SHOULDER_OFFSET = (0.0, 0.02, 0.0)
# BlazePose's ankle sits about 3.4 cm above the ankle joint, along the shin (bench/fit.py --calibrate 16, wave 5b:
# BlazePose on the open body's shaded renders; knee −1.8, elbow 0.0, wrist −0.5 cm, not used). Mapping the ankle
# landmark to the joint itself fitted the legs short and the ankles high (rendered set: body 2.15 → 2.07 cm).
# Metres, in the frame of the knee's global rotation (the shin: +y from the ankle towards the knee).
ANKLE_OFFSET = (0.0, 0.034, 0.0)
# Weight of BlazePose's index and pinky landmarks (mapped to the index1 / pinky1 joints). On the rendered clothed
# set (wave 6b) they lie up the arm from those joints on 15 of 16 arms (≈ 2 cm; naked-body calibration 0.6–1.7 cm).
# Measured and not kept: weight 0 gave body 1.96 → 1.89 cm, but 0.1 gave 1.97 and mapping the points 2 cm nearer the
# wrist (the fix the explanation predicts) 1.99, a real photo's pocket hand moved behind the hip, and two fit tests
# lost their margins: docs/benchmarks/fidelity.md "Wave 6b".
HAND_POINT_WEIGHT = 0.3


def _mirror(offset: tuple[float, float, float]) -> tuple[float, float, float]:
    return (-offset[0], offset[1], offset[2])


#: The landmark mapping. Mouth corners and inner/outer eye corners are left out (the eyes carry that).
TARGETS: tuple[Target, ...] = (
    Target(BP["nose"], "keypoint", J["head"], 0.6, ("nose",)),
    Target(BP["left_eye"], "keypoint", J["head"], 0.4, ("left_eye", "left_eye_smplhf")),
    Target(BP["right_eye"], "keypoint", J["head"], 0.4, ("right_eye", "right_eye_smplhf")),
    Target(BP["left_ear"], "keypoint", J["head"], 0.4, ("left_ear",)),
    Target(BP["right_ear"], "keypoint", J["head"], 0.4, ("right_ear",)),
    Target(BP["left_shoulder"], "offset", J["left_shoulder"], 1.0, offset=SHOULDER_OFFSET, frame=J["spine3"]),
    Target(BP["right_shoulder"], "offset", J["right_shoulder"], 1.0, offset=_mirror(SHOULDER_OFFSET),
           frame=J["spine3"]),
    Target(BP["left_elbow"], "joint", J["left_elbow"], 1.0),
    Target(BP["right_elbow"], "joint", J["right_elbow"], 1.0),
    Target(BP["left_wrist"], "joint", J["left_wrist"], 1.0),
    Target(BP["right_wrist"], "joint", J["right_wrist"], 1.0),
    Target(BP["left_pinky"], "joint", J["left_pinky1"], HAND_POINT_WEIGHT),
    Target(BP["right_pinky"], "joint", J["right_pinky1"], HAND_POINT_WEIGHT),
    Target(BP["left_index"], "joint", J["left_index1"], HAND_POINT_WEIGHT),
    Target(BP["right_index"], "joint", J["right_index1"], HAND_POINT_WEIGHT),
    Target(BP["left_thumb"], "joint", J["left_thumb2"], 0.2),
    Target(BP["right_thumb"], "joint", J["right_thumb2"], 0.2),
    Target(BP["left_hip"], "offset", J["left_hip"], 0.8, offset=HIP_OFFSET, frame=J["pelvis"]),
    Target(BP["right_hip"], "offset", J["right_hip"], 0.8, offset=_mirror(HIP_OFFSET), frame=J["pelvis"]),
    Target(BP["left_knee"], "joint", J["left_knee"], 1.0),
    Target(BP["right_knee"], "joint", J["right_knee"], 1.0),
    Target(BP["left_ankle"], "offset", J["left_ankle"], 1.0, offset=ANKLE_OFFSET, frame=J["left_knee"]),
    Target(BP["right_ankle"], "offset", J["right_ankle"], 1.0, offset=_mirror(ANKLE_OFFSET), frame=J["right_knee"]),
    Target(BP["left_heel"], "keypoint", J["left_ankle"], 0.5, ("left_heel",)),
    Target(BP["right_heel"], "keypoint", J["right_ankle"], 0.5, ("right_heel",)),
    Target(BP["left_foot_index"], "keypoint", J["left_foot"], 0.5, ("left_big_toe", "left_toe", "left_foot_index")),
    Target(BP["right_foot_index"], "keypoint", J["right_foot"], 0.5,
           ("right_big_toe", "right_toe", "right_foot_index")),
)


@dataclass(frozen=True)
class ResolvedTargets:
    """The mapping resolved against one body model's keypoint names (arrays for vectorised evaluation)."""

    landmarks: np.ndarray  # (T,) BlazePose indices
    weights: np.ndarray  # (T,)
    source: np.ndarray  # (T,) 0 = joint, 1 = keypoint
    index: np.ndarray  # (T,) joint or keypoint index
    offsets: np.ndarray  # (T, 3) metres in the frame of joint ``frames``
    frames: np.ndarray  # (T,) joint whose global rotation carries the offset (-1: none)


def resolve_targets(keypoint_names: list[str] | tuple[str, ...]) -> ResolvedTargets:
    """Resolve :data:`TARGETS` against a body model's regressed keypoint names."""
    lookup = {name: i for i, name in enumerate(keypoint_names)}
    lms, ws, src, idx, offs, frames = [], [], [], [], [], []
    for t in TARGETS:
        lms.append(t.landmark)
        ws.append(t.weight)
        offs.append(t.offset)
        frames.append(t.frame if t.kind == "offset" else -1)
        found = next((lookup[n] for n in t.names if n in lookup), None) if t.kind == "keypoint" else None
        if found is not None:
            src.append(1)
            idx.append(found)
        else:
            src.append(0)
            idx.append(t.index)
            if t.kind == "keypoint":  # a joint stands in for a missing keypoint: trust it less
                ws[-1] *= 0.3
    return ResolvedTargets(np.array(lms), np.array(ws, dtype=np.float32), np.array(src), np.array(idx),
                           np.array(offs, dtype=np.float32), np.array(frames))


#: Bones whose directions BlazePose's 3D world landmarks tell us: (SMPL-X joint, child joint, landmark from,
#: landmark to). Used for the initial pose and a weak 3D direction term.
LIMB_BONES: tuple[tuple[int, int, int, int], ...] = (
    (J["left_hip"], J["left_knee"], BP["left_hip"], BP["left_knee"]),
    (J["right_hip"], J["right_knee"], BP["right_hip"], BP["right_knee"]),
    (J["left_knee"], J["left_ankle"], BP["left_knee"], BP["left_ankle"]),
    (J["right_knee"], J["right_ankle"], BP["right_knee"], BP["right_ankle"]),
    (J["left_shoulder"], J["left_elbow"], BP["left_shoulder"], BP["left_elbow"]),
    (J["right_shoulder"], J["right_elbow"], BP["right_shoulder"], BP["right_elbow"]),
    (J["left_elbow"], J["left_wrist"], BP["left_elbow"], BP["left_wrist"]),
    (J["right_elbow"], J["right_wrist"], BP["right_elbow"], BP["right_wrist"]),
)

#: Landmarks that define the torso (shoulders and hips).
TORSO = (BP["left_shoulder"], BP["right_shoulder"], BP["left_hip"], BP["right_hip"])
