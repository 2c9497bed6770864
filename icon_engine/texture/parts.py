"""Body parts of the textured mesh: labels from the skin weights, part geometry (axes, limb lengths, ends).

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import EngineError
from ..geometry.laplacian import adjacency

#: Body-part labels of ``vertex_parts`` (see :func:`parts_from_skin_weights`): the hidden side of a vertex only
#: takes colours from vertices with the same label.
PART_TORSO, PART_LEFT_ARM, PART_RIGHT_ARM, PART_LEFT_LEG, PART_RIGHT_LEG, PART_HEAD = range(6)


PART_NAMES = ("torso", "left_arm", "right_arm", "left_leg", "right_leg", "head")
#: SMPL-X joints that start each part; a joint belongs to the part of its nearest listed ancestor (the pelvis,
#: spine and collars: torso). The neck goes with the head: the torso's colour profile then stops at the collar.
_PART_ROOTS = {"left_shoulder": PART_LEFT_ARM, "right_shoulder": PART_RIGHT_ARM, "left_hip": PART_LEFT_LEG,
               "right_hip": PART_RIGHT_LEG, "neck": PART_HEAD}


def _ring_count(vertices: np.ndarray, faces: np.ndarray, radius: float) -> int:
    """Edge rings (1–12) that cover about ``radius`` metres on the mesh (from its mean edge length)."""
    t = np.asarray(vertices)[np.asarray(faces[: min(len(faces), 20000)])]
    edge = float(np.linalg.norm(t[:, 1] - t[:, 0], axis=1).mean())
    return int(np.clip(np.ceil(radius / max(edge, 1e-6)), 1, 12))


def _near_parts(parts: np.ndarray, faces: np.ndarray, rings: int) -> np.ndarray:
    """(N,) int bit masks of the body parts within ``rings`` edge rings of each vertex on the mesh (bit p: part p):
    a vertex's own part and, near a part boundary (shoulder, neck, hips), its neighbour, whose surface may be the
    nearest at the vertex's pixel without hiding it."""
    n = len(parts)
    step = (adjacency(n, faces) + sp.identity(n)).tocsr()
    near = np.zeros((n, len(PART_NAMES)), dtype=np.float32)
    near[np.arange(n), parts] = 1.0
    for _ in range(rings):
        near = np.minimum(step @ near, 1.0)
    return ((near > 0) * (1 << np.arange(len(PART_NAMES)))).sum(axis=1).astype(np.int64)


def parts_from_skin_weights(skin_weights: np.ndarray) -> np.ndarray:
    """Body-part label per vertex (N,) int from skin weights (N, 55) in the SMPL-X joint order
    (``bundle.skeleton.JOINT_NAMES``): the part (:data:`PART_NAMES`: 0 torso with pelvis, spine and collars;
    1 left arm from the shoulder to the fingers; 2 right arm; 3 left leg from the hip to the toes; 4 right leg;
    5 head with neck, jaw and eyes) holding the largest sum of the vertex's weights."""
    return part_weights_from_skin_weights(skin_weights).argmax(axis=1)


def part_weights_from_skin_weights(skin_weights: np.ndarray) -> np.ndarray:
    """(N, len(PART_NAMES)) each vertex's skin weights summed per body part (:func:`parts_from_skin_weights`)."""
    from ..bundle.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

    w = np.asarray(skin_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != NUM_JOINTS:
        raise EngineError("internal", f"Skin weights have shape {w.shape}, not (N, {NUM_JOINTS}).",
                          "Pass the rig's skin_weights (SMPL-X joint order).")
    joint_part = np.full(NUM_JOINTS, PART_TORSO, dtype=np.int64)
    for j in range(NUM_JOINTS):  # parents come before children in SMPL-X order
        name = JOINT_NAMES[j]
        joint_part[j] = _PART_ROOTS.get(name, joint_part[PARENTS[j]] if PARENTS[j] >= 0 else PART_TORSO)
    sums = np.zeros((len(w), len(PART_NAMES)))
    for part in range(len(PART_NAMES)):
        sums[:, part] = w[:, joint_part == part].sum(axis=1)
    return sums


def _check_parts(vertex_parts: np.ndarray | None, n: int, name: str = "vertex_parts",
                 source: str = "parts_from_skin_weights") -> np.ndarray | None:
    """``vertex_parts`` as (n,) int64 labels (None stays None); a clear error otherwise (``name`` and the
    ``source`` function that makes them, for the message)."""
    if vertex_parts is None:
        return None
    parts = np.asarray(vertex_parts)
    if parts.shape != (n,) or not np.issubdtype(parts.dtype, np.integer):
        raise EngineError("internal", f"{name} has shape {parts.shape} and type {parts.dtype}, not ({n},) "
                          "integers.", f"Pass one label per vertex (texture.{source}).")
    return parts.astype(np.int64)


def _same_part_faces(faces: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Faces whose three vertices carry the same part label: their edges form the part-restricted graph."""
    lab = parts[faces]
    return faces[(lab == lab[:, :1]).all(axis=1)]


def _part_axis(positions: np.ndarray, parts: np.ndarray, part: int) -> np.ndarray:
    """Unit principal axis (3,) of the vertices ``positions`` (N, 3) labelled ``part``."""
    mine = positions[parts == part]
    return np.linalg.svd(mine - mine.mean(axis=0), full_matrices=False)[2][0]


def _profile_axis(positions: np.ndarray, parts: np.ndarray, part: int) -> np.ndarray:
    """Unit axis (3,) a part's colour profile runs along: vertical (+Y) for the head, else the part's long axis
    (a leaning torso, a raised arm; :func:`_part_axis`)."""
    return np.array([0.0, 1.0, 0.0]) if part == PART_HEAD else _part_axis(positions, parts, part)




def _limb_end(vertices: np.ndarray, parts: np.ndarray, part: int, axis: np.ndarray) -> float:
    """+1 when a limb's far end (its extreme along ``axis`` farther from the torso's centroid: the foot, the
    hand) lies at the largest positions along ``axis``, −1 when at the smallest, 0 for the torso and head or
    without a torso."""
    if part not in (PART_LEFT_ARM, PART_RIGHT_ARM, PART_LEFT_LEG, PART_RIGHT_LEG) or not (parts == PART_TORSO).any():
        return 0.0
    s = vertices[parts == part] @ axis
    centre = float(vertices[parts == PART_TORSO].mean(axis=0) @ axis)
    return 1.0 if abs(float(s.max()) - centre) >= abs(float(s.min()) - centre) else -1.0


#: Each limb's left/right counterpart: a limb the photo does not show at all (the far leg of a side view, hidden
#: behind the near one) takes its counterpart's colour profile, since clothes are mostly alike on both sides (both
#: trouser legs, both sleeves, both shoes) — not a colour diffused in from the torso across the hip.
LIMB_COUNTERPART = {PART_LEFT_ARM: PART_RIGHT_ARM, PART_RIGHT_ARM: PART_LEFT_ARM,
                    PART_LEFT_LEG: PART_RIGHT_LEG, PART_RIGHT_LEG: PART_LEFT_LEG}


def _limb_fraction(vertices: np.ndarray, parts: np.ndarray, part: int) -> tuple[np.ndarray, float]:
    """(N,) every vertex's position along limb ``part``'s principal axis as a fraction of the limb's length, 0 at
    its root (the end nearer the torso) and 1 at its far end (foot, hand), and that length (metres)."""
    axis = _part_axis(vertices, parts, part)
    s = vertices @ axis
    lo, hi = float(s[parts == part].min()), float(s[parts == part].max())
    length = max(hi - lo, 1e-6)
    t = (s - lo) / length if _limb_end(vertices, parts, part, axis) >= 0 else (hi - s) / length
    return t, length


#: Hand labels of :func:`hand_labels_from_skin_weights`: 0 not a hand, 1 / 2 the left / right hand's palm (the
#: wrist and the fingers' roots), 3 / 4 the left / right fingers.
HAND_PALM = {"left": 1, "right": 2}
HAND_FINGERS = {"left": 3, "right": 4}


def hand_labels_from_skin_weights(skin_weights: np.ndarray) -> np.ndarray:
    """(N,) int8 hand label per vertex (:data:`HAND_PALM`, :data:`HAND_FINGERS`, 0 elsewhere) from skin weights
    (N, 55) in the SMPL-X joint order: fingers where a hand's finger joints hold more than half of the weight,
    the palm where its wrist and finger joints together do."""
    w = np.asarray(skin_weights, dtype=np.float64)
    out = np.zeros(len(w), dtype=np.int8)
    for side, wrist, first in (("left", 20, 25), ("right", 21, 40)):
        fingers = w[:, first:first + 15].sum(axis=1)
        out[(fingers + w[:, wrist] > 0.5) & (fingers <= 0.5)] = HAND_PALM[side]
        out[fingers > 0.5] = HAND_FINGERS[side]
    return out
