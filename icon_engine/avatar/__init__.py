"""The canonical (rest-pose) avatar: the clothed surface rebuilt in the body model's T-pose space, then posed.

Frames and units: metres. *Canonical space* is the SMPL-X model frame of the shaped body in the zero (T) pose
(Y-up, facing +Z, left = +X); *posed space* is the bundle world of the fit (``posed = LBS(canonical) + transl``).

Method (docs/method.md, "Canonical avatar"):

1. **Skinning field.** A canonical point ``x_c`` takes the soft blend of the LBS weights of its
   :data:`FIELD_NEIGHBOURS` nearest canonical body vertices, with a Gaussian falloff whose width grows with the
   distance to the body (:data:`FIELD_SIGMA_M` + :data:`FIELD_SLOPE` · d), so the field is smooth between legs.
2. **Forward warp.** ``x_p = LBS(x_c; w(x_c), θ_fit)`` (no root finding).
3. **Occupancy.** ``F(x_c) = −sd_clothed(x_p)`` (positive inside) where the warp is unambiguous; in a *contact
   zone* — ``x_p`` lies about as close to a posed body vertex whose canonical position is far from ``x_c`` as to
   the closest one (a hand on the hip, crossed arms, an arm against the torso) — the **body prior** takes over:
   the canonical body grown by the clothing offset measured on the same body vertex outside contact zones and
   harmonically filled into them. The two are blended by a smooth contact weight. Where the warp compresses
   space (the inside of a bend: the determinant of its Jacobian well below 1, :func:`folded`) the body prior
   replaces F: the photo's surface, warped back there, comes out pleated. Near the hands (by the share of
   the hand joints in the field's weights) F is capped at the body prior plus :data:`HAND_SLACK_M`: hands are
   bare, and a hand resting on the hip or the chest never takes the clothing it lies in (:func:`bare_hands`).
4. **Meshing.** Marching cubes on the canonical grid (coarse to fine), largest component, Taubin smoothing,
   decimation: one closed canonical mesh (surface.py's helpers). A limb the mesh lost is meshed again
   (:func:`missing_body`); each hand the fit agrees with the photo on is replaced by the body model's hand
   (:func:`graft_body_hands`): fingers, not the grid's mitten.
5. **Skin weights.** Transferred from the canonical body and diffused over the mesh (:mod:`icon_engine.rig`),
   restricted to the body parts the skinning field sees at the vertex, ≤ 8 influences, normalised.
6. **Posed mesh** = LBS(rest mesh, weights, rest joints, pose from rest, transl), exactly the bundle contract.

Modules, in the order the build uses them: :mod:`.body` (the canonical body, parts, limb segments),
:mod:`.skinning_field` (1.–2. and the folds), :mod:`.photo_occupancy` (3.: one photo's surface, the body prior, the
cloth between the legs), :mod:`.fusion` (several photos' occupancies into one), :mod:`.hand_graft` (4.: the body's
hands), :mod:`.skin_weights` (5., the skirt panel), :mod:`.build` (4. and 6.: :func:`build_avatar`,
:func:`build_fused_avatar`). The package exports the functions and classes other stages and the benchmarks use and
the body's structural tables; each tuning constant lives in the module that uses it (set it there:
``avatar.fusion.FIRST_PHOTO_WEIGHT``; the benchmarks' ``--set avatar.NAME=…`` finds it).
"""

from __future__ import annotations

from .body import (
    HAND_JOINTS,
    JOINT_PART,
    LIMB_SEGMENT_JOINTS,
    LIMB_SEGMENT_NAMES,
    PART_NAMES,
    CanonicalBody,
    canonical_body,
    canonical_pose_angles,
    part_shares,
    pose_body,
)
from .build import Avatar, build_avatar, build_fused_avatar
from .fusion import FusedOccupancy, fused_offsets
from .hand_graft import (
    HAND_SIDES,
    BodyHand,
    body_hand,
    graft_body_hands,
    graft_hand,
    hand_budget,
    hand_outside_fraction,
    relax_seam,
)
from .photo_occupancy import (
    CanonicalOccupancy,
    bare_hands,
    body_offsets,
    cloth_between_legs,
    missing_body,
    segment_outside_fractions,
)
from .skin_weights import canonical_skin_weights, panel_leg_split, skirt_panel
from .skinning_field import SkinningField, folded

__all__ = [
    "Avatar", "BodyHand", "CanonicalBody", "CanonicalOccupancy", "FusedOccupancy", "HAND_JOINTS", "HAND_SIDES",
    "JOINT_PART", "LIMB_SEGMENT_JOINTS", "LIMB_SEGMENT_NAMES", "PART_NAMES", "SkinningField", "bare_hands",
    "body_hand", "body_offsets", "build_avatar", "build_fused_avatar", "canonical_body", "canonical_pose_angles",
    "canonical_skin_weights", "cloth_between_legs", "folded", "fused_offsets", "graft_body_hands", "graft_hand",
    "hand_budget", "hand_outside_fraction", "missing_body", "panel_leg_split", "part_shares", "pose_body",
    "relax_seam", "segment_outside_fractions", "skirt_panel",
]
