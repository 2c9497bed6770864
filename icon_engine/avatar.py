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
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from .bundle.skeleton import NUM_JOINTS, PARENTS, forward_kinematics, skin_vertices
from .errors import EngineError
from .geometry.device import mesh_query
from .mesh_queries import MeshQuery, rasterize
from .rig import (
    MIN_BLEND_SINGULAR,
    Rig,
    _np,
    blended_transforms,
    check_rig_inputs,
    diffuse_weights,
    pose_relative_to_rest,
    rest_mesh_intersections,
    sparsify_weights,
    torn_faces,
    transfer_weights,
    unpose_vertices,
)
from .threads import map_rows

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

#: Canonical body vertices of each body part blended by the skinning field.
FIELD_NEIGHBOURS = 6
#: Width of the field's Gaussian falloff on the body (metres) and its growth per metre of distance to the body.
FIELD_SIGMA_M = 0.02
FIELD_SLOPE = 0.5
#: A body part whose nearest vertex weighs less than exp(−FIELD_CUTOFF) ≈ 1e-12 of the nearest vertex's weight in
#: :meth:`SkinningField.weights` is left out of a point's blend (it cannot change the weights).
FIELD_CUTOFF = 27.6
#: Cell size (metres) of the part-distance lower bounds that skip those parts' k-d searches.
FIELD_CELL_M = 0.04
#: Step (metres) of the forward differences of the warp's Jacobian (:meth:`SkinningField.jacobian_det`).
FOLD_STEP_M = 0.004
#: Compressed warp (the inside of a bend: an armpit under a lowered arm, the crook of a bent elbow or knee): where
#: the determinant of the forward warp's Jacobian falls from FOLD_FROM_DET to FOLD_FULL_DET, the occupancy turns
#: into the body prior as in a contact zone. There several canonical points land on one posed point and the
#: photo's surface, warped back, comes out pleated (ridges and dents of 1–3 cm in the rest pose); the outside of
#: the bend (stretched, det > 1), which the photo shows, keeps the photo's surface. (Tried 0.7 / 0.4 and 0.8 / 0.5:
#: the rendered set's Chamfer the same within 0.003 cm; the wider window smooths more and costs the dev photos'
#: posed IoU up to 0.007 at the bends' outlines, the narrower up to 0.003.)
FOLD_FROM_DET = 0.75
FOLD_FULL_DET = 0.45
#: Between the legs (:meth:`SkinningField.between_legs`: both legs' shares in a point's blend above LEGS_SHARE_FROM,
#: fully from LEGS_SHARE_FULL) the compression rule does not apply, nor (where the photo shows a skirt) the contact
#: rule (:data:`SKIRT_FROM_M`): a skirt or a dress spans the legs there, and the prior is two legs (with the
#: compression rule there, rendered subject_103's midi skirt and 107's dress lost 0.03 and 0.02 cm Chamfer).
LEGS_SHARE_FROM = 0.05
LEGS_SHARE_FULL = 0.2
#: Between the legs (:meth:`SkinningField.between_legs`) a point whose posed position lies farther than
#: SKIRT_FROM_M from one of the posed legs (metres; not at all in contact from SKIRT_FULL_M) is not in a contact
#: zone: there the photo's surface is a skirt or a dress spanning the legs, not the web of legs that touch (which
#: lies within a centimetre or two of both). Without it a walking dress's front was carved open between the legs,
#: posed and in the rest pose (subject_107: a slit from the hem to the thighs with a flap standing out of it).
SKIRT_FROM_M = 0.03
SKIRT_FULL_M = 0.05
#: Where the blended rotation's determinant is above 1 − FOLD_RIGID_TOL the warp's Jacobian is not evaluated (1).
FOLD_RIGID_TOL = 0.005
#: Cap of the cell bounds (metres): a far-away nearest-neighbour search is slow, a bounded one quick.
FIELD_BOUND_REACH_M = 0.4
#: Posed body vertices of each part examined for contact; a vertex counts when it is at most CONTACT_BAND_M
#: farther from x_p than the closest body vertex (metres) ...
CONTACT_NEIGHBOURS = 4
CONTACT_BAND_M = 0.03
#: ... or lies within this distance of x_p (weight 1 up to the first value, 0 beyond the second; metres): the gap
#: between two parts that the photo's clothing bridges.
CONTACT_RADIUS_M = 0.06
CONTACT_RADIUS_FAR_M = 0.10
#: A posed body vertex is *foreign* to x_c when its canonical distance exceeds its posed distance by this much
#: (weight 0 at the first value, 1 at the second; metres).
FOREIGN_FROM_M = 0.06
FOREIGN_FULL_M = 0.12
#: Contact is only looked for this close to the posed body (weight 1 up to the first, 0 beyond the second; metres).
CONTACT_NEAR_M = 0.10
CONTACT_FAR_M = 0.20
#: Compression weight: 0 when x_p is COMPRESSION_FROM_M closer to the posed body than x_c to the canonical body,
#: 1 at COMPRESSION_FULL_M (metres).
COMPRESSION_FROM_M = 0.015
COMPRESSION_FULL_M = 0.035
#: Body vertices closer than this to a foreign posed body vertex do not measure the clothing offset (metres).
OFFSET_CONTACT_M = 0.04
#: Smallest and largest clothing offset of the body prior (metres).
MIN_OFFSET_M = 0.004
MAX_OFFSET_M = 0.45
#: A limb segment the avatar lost: at least MISSING_FRACTION of the canonical body vertices led by one of
#: :data:`LIMB_SEGMENT_JOINTS` lie more than MISSING_OUTSIDE_M (metres) outside the meshed avatar. Such a segment
#: and every segment below it are meshed again with the body prior kept where they are outside
#: (:func:`missing_body`, :meth:`CanonicalOccupancy.keep_lost`). On the 12 dev photos at standard a present limb
#: leaves at most 0.48 of a palm's vertices outside (fingers the grid does not resolve), a lost one 0.65–1.0.
MISSING_FRACTION = 0.6
MISSING_OUTSIDE_M = 0.01
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
HAND_MAX_OFFSET_M = 0.008
#: Nodes re-evaluated at each finer grid level: |interpolated F| < FIELD_BAND_FACTOR × spacing. Measured on the
#: sample (docs/benchmarks.md, speed): 1.5 gives the same mesh as 3 (Chamfer 0.00 mm) with half the points; 1.0
#: starts to move it.
FIELD_BAND_FACTOR = 1.5
#: Canonical points per block of the field's evaluation (bounds its temporaries: ~2 kB per point).
FIELD_BLOCK_ROWS = 32_768
#: Fewest canonical points per thread of the field's evaluation: the coarse levels (5–11k points at standard)
#: split over the cores too.
FIELD_MIN_ROWS = 2048
#: Grid margin beyond the grown canonical body (metres).
GRID_MARGIN_M = 0.04
#: Torn face: its longest edge grows more than this factor and ends longer than TORN_MIN_M (see rig.torn_faces).
SILHOUETTE_TARGET = 0.95


@dataclass
class CanonicalBody:
    """The shaped body in canonical (T) space: ``vertices`` (V, 3), ``faces`` (F, 3), ``lbs_weights`` (V, 55),
    ``joints`` (55, 3) rest joints; ``parts`` (V,) body part of each vertex (:data:`PART_NAMES`)."""

    vertices: np.ndarray
    faces: np.ndarray
    lbs_weights: np.ndarray
    joints: np.ndarray
    parts: np.ndarray


@dataclass
class Avatar:
    """The canonical avatar: ``posed_vertices`` (N, 3) bundle world = LBS of ``rig.rest_vertices``;
    ``faces`` (M, 3); ``canonical_vertices`` (N, 3) and ``canonical_joints`` (55, 3) in the canonical pose
    (:func:`canonical_pose_angles`, model frame); ``vertex_parts`` (N,) int body part
    (:data:`PART_NAMES`) of each vertex; ``rig`` the skinning (rest mesh, weights, joints); ``stats``."""

    posed_vertices: np.ndarray
    faces: np.ndarray
    canonical_vertices: np.ndarray
    canonical_joints: np.ndarray
    vertex_parts: np.ndarray
    rig: Rig
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


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


#: Hip abduction of the canonical pose (degrees, each leg outward): the legs stand apart, so thighs that touched in
#: the photo are distant parts in canonical space and a skirt spans the gap as one surface.
CANONICAL_HIP_SPREAD_DEG = 0.0


def canonical_pose_angles() -> np.ndarray:
    """(55, 3) axis-angle of the canonical pose relative to the T pose: arms out, legs spread."""
    angles = np.zeros((NUM_JOINTS, 3))
    angles[1, 2] = np.radians(CANONICAL_HIP_SPREAD_DEG)  # left leg (+X) outward
    angles[2, 2] = -np.radians(CANONICAL_HIP_SPREAD_DEG)
    return angles


def pose_body(body: CanonicalBody, angles: np.ndarray) -> CanonicalBody:
    """``body`` (T pose) posed by ``angles`` (55, 3) without translation: its vertices and joints move, weights and
    parts stay."""
    _, joints = forward_kinematics(body.joints, np.asarray(PARENTS), angles)
    verts = skin_vertices(body.vertices, body.lbs_weights, body.joints, np.asarray(PARENTS), angles)
    return CanonicalBody(verts, body.faces, body.lbs_weights, joints, body.parts)


# ----------------------------------------------------------------------------------------------------------------
# Fields in canonical space


class SkinningField:
    """Smooth LBS weights and forward warp of canonical points (see module docstring, step 1–2)."""

    def __init__(self, body: CanonicalBody, pose: np.ndarray, transl: np.ndarray) -> None:
        self.body = body
        self.lbs_sparse = sp.csr_matrix(np.asarray(body.lbs_weights, dtype=np.float64))  # (V, 55), ≤ ~4 per row
        self.tree = cKDTree(body.vertices)
        # leaf 32, unbalanced: 10–15 % faster 6-nearest queries near the body than the default (16, balanced)
        self.part_trees = [(cKDTree(body.vertices[body.parts == p], leafsize=32, balanced_tree=False),
                            np.nonzero(body.parts == p)[0]) for p in range(len(PART_NAMES)) if (body.parts == p).any()]
        glob_r, glob_t = forward_kinematics(body.joints, np.asarray(PARENTS), pose)
        # joint transforms x ↦ R_j x + o_j with o_j = G_j − R_j J_j + transl
        self.rot = glob_r
        self.off = glob_t - np.einsum("jab,jb->ja", glob_r, body.joints) + np.asarray(transl).reshape(1, 3)
        #: (55, 3) the joints in the posed space (metres)
        self.posed_joints = glob_t + np.asarray(transl).reshape(1, 3)
        self._transforms = np.concatenate([glob_r.reshape(-1, 9), self.off], axis=1)  # (55, 12) [R_j | o_j]
        self._vertex_transforms = np.asarray(self.lbs_sparse @ self._transforms)  # (V, 12): each vertex's LBS
        #: (V,) share of the hand joints (:data:`HAND_JOINTS`) in each body vertex's LBS weights
        self.hand_share = np.asarray(self.lbs_sparse[:, list(HAND_JOINTS)].sum(axis=1)).ravel()
        #: (V, 2) share of the left and the right leg in each body vertex's LBS weights
        self.leg_shares = np.asarray(self.lbs_sparse @ _PART_MATRIX[3:5].T)

    def weights(self, points: np.ndarray, k: int = FIELD_NEIGHBOURS,
                neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(weights (N, 55), distance to the nearest body vertex (N,)) of canonical points (N, 3): the blend
        (:meth:`neighbours` weighed by :func:`_blend_weights`) of the body vertices' LBS weights. ``neighbours``:
        the points' :meth:`neighbours` when already known."""
        points = np.asarray(points, dtype=np.float64)
        if len(points) == 0:
            return np.zeros((0, self.lbs_sparse.shape[1])), np.zeros(0)
        d, idx = self.neighbours(points, k) if neighbours is None else neighbours
        a, d0 = _blend_weights(d)
        # Σ_k a_nk · lbs[idx_nk] as a sparse (N, V) blend matrix times the sparse body weights: the body's rows
        # hold a few joints each, so this never builds the dense (N, K, 55) gather
        return (self._blend_matrix(a, idx) @ self.lbs_sparse).toarray(), d0

    def warp_points(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(posed points (N, 3), distance to the nearest body vertex (N,)) of canonical points (N, 3): the same as
        :meth:`warp` with :meth:`weights`, blending the body vertices' LBS transforms directly (no (N, 55))."""
        x_p, d0, _ = self.warp_points_hand(points)
        return x_p, d0

    def warp_points_hand(self, points: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray] | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`warp_points` and (N,) the share of the hand joints in the points' blended weights.
        ``neighbours``: the points' :meth:`neighbours` when already known."""
        points = np.asarray(points, dtype=np.float64)
        if len(points) == 0:
            return np.zeros((0, 3)), np.zeros(0), np.zeros(0)
        d, idx = self.neighbours(points) if neighbours is None else neighbours
        a, d0 = _blend_weights(d)
        blend = self._blend_matrix(a, idx)
        return self._apply(blend, points), d0, blend @ self.hand_share

    def jacobian_det(self, points: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray],
                     step: float = FOLD_STEP_M) -> np.ndarray:
        """(N,) determinant of the forward warp's Jacobian at canonical points (N, 3): 1 where it keeps volume,
        < 1 where it compresses (the inside of a bend), ≤ 0 where it folds. Forward differences of ``step`` metres
        along each axis with the points' ``neighbours`` (:meth:`neighbours`) held fixed: the blend weights'
        own change is included (a blended ``Σ w_j R_j`` alone misses the fold)."""
        points = np.asarray(points, dtype=np.float64)
        if len(points) == 0:
            return np.zeros(0)
        d, idx = neighbours
        t = self._blend_matrix(_blend_weights(d)[0], idx) @ self._vertex_transforms
        det = np.ones(len(points))
        # where the blended transforms agree the warp is rigid there (det 1): a blend of rotations differing by
        # less than ≈ 8° keeps det(Σ w_j R_j) above 1 − FOLD_RIGID_TOL, and nothing folds
        sel = np.nonzero(np.linalg.det(t[:, :9].reshape(-1, 3, 3)) < 1.0 - FOLD_RIGID_TOL)[0]
        if not len(sel):
            return det
        p, d, idx = points[sel], d[sel], idx[sel]
        x_p = np.einsum("nab,nb->na", t[sel, :9].reshape(-1, 3, 3), p) + t[sel, 9:]
        finite = np.isfinite(d)
        near = self.body.vertices[idx]  # (n, K, 3); an unsearched slot (d = inf) stays inf
        columns = []
        for axis in range(3):
            shifted = p.copy()
            shifted[:, axis] += step
            ds = np.where(finite, np.linalg.norm(shifted[:, None, :] - near, axis=2), np.inf)
            xs = self._apply(self._blend_matrix(_blend_weights(ds)[0], idx), shifted)
            columns.append((xs - x_p) / step)
        det[sel] = np.linalg.det(np.stack(columns, axis=2))
        return det

    def fold_weight(self, points: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(N,) weight in [0, 1] of the body prior at canonical points (N, 3) where the warp compresses
        (:func:`folded` of :meth:`jacobian_det`), except between the legs (:meth:`between_legs`): a skirt spans
        them there, and the prior is two legs with a gap."""
        fold = folded(self.jacobian_det(points, neighbours))
        sel = np.nonzero(fold > 0)[0]
        if len(sel):
            fold[sel] *= 1.0 - self.between_legs((neighbours[0][sel], neighbours[1][sel]))
        return fold

    def between_legs(self, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(N,) in [0, 1]: how far the points of these :meth:`neighbours` lie between the legs — 0 where one leg's
        share in the blend is below :data:`LEGS_SHARE_FROM`, 1 where both legs' are at least :data:`LEGS_SHARE_FULL`."""
        d, idx = neighbours
        if len(d) == 0:
            return np.zeros(0)
        legs = self._blend_matrix(_blend_weights(d)[0], idx) @ self.leg_shares
        return np.clip((legs.min(axis=1) - LEGS_SHARE_FROM) / (LEGS_SHARE_FULL - LEGS_SHARE_FROM), 0.0, 1.0)

    def _apply(self, blend: sp.csr_matrix, points: np.ndarray) -> np.ndarray:
        """Posed points (N, 3): the canonical ``points`` moved by the ``blend`` (N, V) of the body vertices' LBS."""
        t = blend @ self._vertex_transforms  # (N, 12)
        return np.einsum("nab,nb->na", t[:, :9].reshape(-1, 3, 3), points) + t[:, 9:]

    def _blend_matrix(self, a: np.ndarray, idx: np.ndarray) -> sp.csr_matrix:
        """Sparse (N, V) blend of body vertices from per-point weights ``a`` (N, K) of vertices ``idx`` (N, K)."""
        n = len(a)
        return sp.csr_matrix((a.ravel(), idx.ravel(), np.arange(0, n * a.shape[1] + 1, a.shape[1])),
                             shape=(n, len(self.body.vertices)))

    def neighbours(self, points: np.ndarray, k: int = FIELD_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
        """(distances (N, K), body vertex indices (N, K)) of the canonical points' blend neighbours, K = ``k`` per
        body part; a part too far to weigh in is not searched (distance inf, index 0).

        Per body part, the ``k`` nearest vertices of that part; every vertex weighs
        ``exp(−(d² − d_min²) / 2σ²)`` with ``σ = FIELD_SIGMA_M + FIELD_SLOPE · d_min`` (``d_min`` over all parts),
        so a point between two legs blends both legs evenly and the field has no seam where the nearest part
        changes."""
        n = len(points)
        if n == 0:
            return np.zeros((0, k * len(self.part_trees))), np.zeros((0, k * len(self.part_trees)), dtype=np.int64)
        # Parts that cannot weigh in are not searched: first the part nearest to the point's cell (lower bound,
        # 4 cm cells), whose nearest vertex bounds d_min from above; then every other part whose lower bound is
        # within the reach of that bound (beyond it a vertex weighs < exp(−FIELD_CUTOFF) ≈ 1e-12 of the nearest;
        # the part holding the nearest vertex is always searched, so d_min is exact).
        widths = [min(k, len(ids)) for _, ids in self.part_trees]
        starts = np.concatenate([[0], np.cumsum(widths)])
        d = np.full((n, int(starts[-1])), np.inf)
        idx = np.zeros((n, int(starts[-1])), dtype=np.int64)
        lower = _cell_lower_bounds(points, self.part_trees, FIELD_BOUND_REACH_M)
        first = lower.argmin(axis=1)

        def search(j: int, sel: np.ndarray) -> None:
            tree, ids = self.part_trees[j]
            if len(sel):
                dd, ii = tree.query(points[sel], k=widths[j])
                d[sel, starts[j]:starts[j + 1]] = dd.reshape(len(sel), widths[j])
                idx[sel, starts[j]:starts[j + 1]] = ids[ii.reshape(len(sel), widths[j])]

        for j in range(len(widths)):
            search(j, np.nonzero(first == j)[0])
        d_up = d.min(axis=1)
        sig = FIELD_SIGMA_M + FIELD_SLOPE * d_up
        reach2 = d_up * d_up + 2.0 * sig * sig * FIELD_CUTOFF
        for j in range(len(widths)):
            search(j, np.nonzero((first != j) & (lower[:, j] ** 2 <= reach2))[0])
        return d, idx

    def warp(self, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Canonical points (N, 3) → posed points (N, 3) by LBS with per-point ``weights`` (N, 55)."""
        t = np.asarray(weights) @ self._transforms  # (N, 12): blended [R | o] per point
        r = t[:, :9].reshape(-1, 3, 3)
        return np.einsum("nab,nb->na", r, points) + t[:, 9:]


#: :func:`cloth_between_legs`: (share of the way from hip to knee, smallest separation of the two legs' axes in metres
#: for a gap to show between trouser legs there).
SKIRT_LEVELS = ((0.5, 0.18), (1.0, 0.14))
#: :func:`cloth_between_legs`: the least width (metres) of picture between the fitted legs to judge.
SKIRT_GAP_M = 0.04
#: :func:`cloth_between_legs` judges only legs standing or walking: both thighs within this many degrees of down (−Y).
SKIRT_THIGH_DEG = 45.0


def cloth_between_legs(posed_joints: np.ndarray, camera: Any, mask: np.ndarray, body_mask: np.ndarray,
                       samples: int = 41) -> float:
    """[0, 1]: the photo shows cloth spanning the legs (a skirt, a dress, a long coat). At mid-thigh and at the
    knees (:data:`SKIRT_LEVELS`), where the two legs' axes lie far enough apart in the picture for trouser legs to
    show a gap between them, the segment joining them is sampled where the fitted body does not cover it
    (``body_mask``: the posed body's silhouette), if at least :data:`SKIRT_GAP_M` of it: 1 where all of that is the
    person (``mask``) at some level, 0 where a gap shows, the legs never stand apart or the body covers the
    segment; 0 too unless both thighs hang within :data:`SKIRT_THIGH_DEG` of down. ``mask``, ``body_mask``: (H, W)
    bool in the camera's pixels; ``posed_joints`` (55, 3): the fitted joints in the camera's world (metres, Y up)."""
    from .surface import thighs_hang_down

    if not thighs_hang_down(posed_joints, SKIRT_THIGH_DEG):
        return 0.0  # seated, kneeling, kicking: thighs apart in the picture need not hang a skirt between them
    best = 0.0
    h, w = mask.shape
    for share, apart in SKIRT_LEVELS:
        left = posed_joints[1] + share * (posed_joints[4] - posed_joints[1])
        right = posed_joints[2] + share * (posed_joints[5] - posed_joints[2])
        (ul, ur), depth = camera.project(np.stack([left, right]))
        px_per_m = float(camera.K[0, 0]) / max(float(depth.mean()), 1e-3)
        if np.linalg.norm(ur - ul) < apart * px_per_m:
            continue
        t = np.linspace(0.0, 1.0, samples)[:, None]
        uv = ul[None] + t * (ur - ul)[None]
        col = np.clip(uv[:, 0].astype(np.int64), 0, w - 1)
        row = np.clip(uv[:, 1].astype(np.int64), 0, h - 1)
        free = ~body_mask[row, col]
        # a gap between the fitted legs narrower than SKIRT_GAP_M is no evidence: the photo's legs lie a few
        # pixels off the fitted ones
        if free.sum() * np.linalg.norm(ur - ul) / (samples - 1) < SKIRT_GAP_M * px_per_m:
            continue
        filled = float(mask[row, col][free].mean())
        best = max(best, float(np.clip((filled - 0.8) / 0.2, 0.0, 1.0)))
    return best


def folded(det: np.ndarray) -> np.ndarray:
    """(N,) weight in [0, 1] of the body prior where the warp compresses: 0 at a Jacobian determinant ``det`` ≥
    :data:`FOLD_FROM_DET`, 1 at ≤ :data:`FOLD_FULL_DET`, smooth between."""
    return _smoothstep(np.clip((FOLD_FROM_DET - det) / (FOLD_FROM_DET - FOLD_FULL_DET), 0.0, 1.0))


def _blend_weights(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weights (N, K) summing to 1, d_min (N,)) of blend neighbours at distances ``d`` (N, K) metres, inf for
    none: ``exp(−(d² − d_min²) / 2σ²)`` with ``σ = FIELD_SIGMA_M + FIELD_SLOPE · d_min``."""
    d0 = d.min(axis=1, keepdims=True)
    sigma = FIELD_SIGMA_M + FIELD_SLOPE * d0
    a = np.exp(-(d * d - d0 * d0) / (2.0 * sigma * sigma))
    a /= a.sum(axis=1, keepdims=True)
    return a, d0[:, 0]


def _cell_lower_bounds(points: np.ndarray, trees: list[tuple[cKDTree, np.ndarray]], beyond: float,
                       cell_m: float = FIELD_CELL_M) -> np.ndarray:
    """(N, P) lower bounds (metres) of the distance from each of ``points`` (N, 3) to the points of each of the P
    ``trees``: the tree's distance from the centre of the point's cube of edge ``cell_m`` minus its half diagonal
    (one k-d query per occupied cell and tree instead of one per point), at most ``beyond`` (metres: the search
    is bounded there; an unbounded one from far away visits much of the tree)."""
    cell = np.floor(points / cell_m).astype(np.int64)
    low = cell.min(axis=0)
    span = cell.max(axis=0) - low + 1
    c = cell - low
    keys, inv = np.unique((c[:, 0] * span[1] + c[:, 1]) * span[2] + c[:, 2], return_inverse=True)
    inv = inv.ravel()
    first = np.zeros(len(keys), dtype=np.int64)
    first[inv] = np.arange(len(points))
    centres = (cell[first] + 0.5) * cell_m
    half = cell_m * np.sqrt(3.0) / 2.0
    return np.stack([np.clip(tree.query(centres, distance_upper_bound=beyond + half)[0] - half, 0.0, beyond)[inv]
                     for tree, _ in trees], axis=1)


def body_offsets(posed_body: np.ndarray, body: CanonicalBody, clothed: MeshQuery) -> tuple[np.ndarray, np.ndarray]:
    """Clothing offset (V,) metres on every body vertex and (V,) bool: measured (not in a contact zone).

    The offset of a body vertex is its depth inside the posed clothed surface; vertices within
    :data:`OFFSET_CONTACT_M` of a posed body vertex of another part whose canonical position is far away do not
    measure (there the surface bridges two parts) and are filled harmonically over the body mesh. A vertex outside
    the surface measures the smallest offset."""
    from .texture import harmonic_fill

    depth = -clothed.signed_distance(posed_body)
    pairs = _cross_part_pairs(posed_body, body.parts, OFFSET_CONTACT_M)
    contact = np.zeros(len(posed_body), dtype=bool)
    if len(pairs):
        a, b = pairs[:, 0], pairs[:, 1]
        dc = np.linalg.norm(body.vertices[a] - body.vertices[b], axis=1)
        dp = np.linalg.norm(posed_body[a] - posed_body[b], axis=1)
        far = dc - dp > FOREIGN_FULL_M
        contact[a[far]] = True
        contact[b[far]] = True
    known = ~contact
    off = np.clip(depth, MIN_OFFSET_M, MAX_OFFSET_M)
    filled = np.clip(harmonic_fill(off[:, None], known, body.faces)[:, 0], MIN_OFFSET_M, MAX_OFFSET_M)
    hands = np.isin(body.lbs_weights.argmax(axis=1), HAND_JOINTS)
    filled[hands] = np.minimum(filled[hands], HAND_MAX_OFFSET_M)  # bare hands: no sleeve offset spills onto them
    return filled, known


def segment_outside_fractions(outside: np.ndarray, lbs_weights: np.ndarray) -> dict[int, float]:
    """Per limb segment (:data:`LIMB_SEGMENT_JOINTS`), the share of the body vertices its joint leads (largest of
    ``lbs_weights`` (V, 55)) that are ``outside`` (V,) bool the avatar."""
    lead = np.asarray(lbs_weights).argmax(axis=1)
    return {j: float(outside[lead == j].mean()) for j in LIMB_SEGMENT_JOINTS if (lead == j).any()}


def missing_body(vertices: np.ndarray, faces: np.ndarray, body: CanonicalBody) -> tuple[np.ndarray, list[int]]:
    """Body vertices a canonical avatar mesh lost: ((V,) bool, the joints of the lost limb segments).

    A segment (:data:`LIMB_SEGMENT_JOINTS`: the body vertices its joint leads; fingers and toes are not judged,
    they come back with a lost wrist or ankle) is lost when at least :data:`MISSING_FRACTION` of them lie more
    than :data:`MISSING_OUTSIDE_M` outside the mesh (``vertices`` (N, 3), ``faces`` (F, 3), canonical metres).
    The vertices returned are those outside in the lost segments and every segment below them (a lost forearm
    takes its hand along, whatever is left of it), and every vertex outside that the body mesh connects to them
    through vertices outside (the end of the upper arm above a lost forearm: without it the restored forearm is a
    floater). Loose clothing is not a loss: a body inside a skirt or a sleeve is inside the mesh."""
    from scipy.sparse.csgraph import connected_components

    from .geometry.laplacian import mesh_edges

    outside = MeshQuery(vertices, faces).signed_distance(body.vertices) > MISSING_OUTSIDE_M
    lead = body.lbs_weights.argmax(axis=1)
    lost = [j for j, share in segment_outside_fractions(outside, body.lbs_weights).items() if share >= MISSING_FRACTION]
    if not lost:
        return np.zeros(len(outside), dtype=bool), lost
    below = set(lost)
    for j in range(NUM_JOINTS):  # PARENTS lists every joint after its parent
        if PARENTS[j] in below:
            below.add(j)
    seeds = outside & np.isin(lead, sorted(below))
    edges = mesh_edges(body.faces)
    edges = edges[outside[edges[:, 0]] & outside[edges[:, 1]]]
    graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(outside),) * 2)
    label = connected_components(graph, directed=False)[1]
    return outside & np.isin(label, np.unique(label[seeds])), lost


def _cross_part_pairs(points: np.ndarray, parts: np.ndarray, radius: float) -> np.ndarray:
    """(P, 2) indices of the point pairs (``points`` (V, 3)) at most ``radius`` apart whose ``parts`` (V,) differ:
    one k-d tree per part, searched against the others (a search over all pairs would find millions of
    same-part neighbours on a body, to drop them)."""
    groups = [np.nonzero(parts == p)[0] for p in np.unique(parts)]
    trees = [cKDTree(points[g]) for g in groups]
    out = [np.zeros((0, 2), dtype=np.int64)]
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            m = trees[i].sparse_distance_matrix(trees[j], radius, output_type="ndarray")
            out.append(np.stack([groups[i][m["i"]], groups[j][m["j"]]], axis=1))
    return np.concatenate(out)


#: Farthest posed body vertex that can weigh in :meth:`CanonicalOccupancy.contact` (metres): beyond
#: max(d_min + CONTACT_BAND_M, CONTACT_RADIUS_FAR_M) a vertex is not *near*, and d_min > CONTACT_FAR_M means no contact.
_CONTACT_REACH_M = CONTACT_FAR_M + CONTACT_BAND_M + 1e-6


class CanonicalOccupancy:
    """F(x_c) in metres, positive inside (module docstring, step 3); counts evaluated points and contact points."""

    def __init__(self, skin: SkinningField, posed_body: np.ndarray, clothed: MeshQuery, offsets: np.ndarray,
                 device: str = "cpu") -> None:
        self.skin, self.clothed, self.offsets = skin, clothed, offsets
        self.posed_body = posed_body
        parts = skin.body.parts
        present = [p for p in range(len(PART_NAMES)) if (parts == p).any()]
        self.part_trees = [(cKDTree(posed_body[parts == p]), np.nonzero(parts == p)[0]) for p in present]
        #: position in :attr:`part_trees` of the left and the right leg (None: the body has none)
        self.leg_trees = tuple(present.index(p) if p in present else None for p in (3, 4))
        self.tree = cKDTree(posed_body)
        self.body_query = mesh_query(skin.body.vertices, skin.body.faces, device)
        self.count = 0
        self.contact_count = 0
        # (V,) weight of the body vertices a first meshing lost (:func:`missing_body`): the body prior is kept
        # around them; None until then
        self.lost: np.ndarray | None = None
        self.lost_count = 0
        #: [0, 1]: the photo shows cloth spanning the legs (:func:`cloth_between_legs`); only then is a point
        #: between the legs away from them exempt from contact (:meth:`contact`)
        self.skirt = 0.0

    def contact(self, x_c: np.ndarray, x_p: np.ndarray, d_c: np.ndarray | None = None,
                legs: np.ndarray | None = None) -> np.ndarray:
        """(N,) contact weight in [0, 1] of canonical points ``x_c`` warped to ``x_p``: the largest, over the
        :data:`CONTACT_NEIGHBOURS` nearest posed body vertices of every part, of *near* × *foreign*. ``d_c`` (N,):
        the points' distance to the nearest canonical body vertex when already known (:meth:`SkinningField.weights`
        returns it). ``legs`` (N,): :meth:`SkinningField.between_legs` of the points; where given and the photo
        shows cloth spanning the legs (:attr:`skirt`), a point between the legs farther than :data:`SKIRT_FROM_M`
        from one of the posed legs is not in contact (a skirt's or a dress's volume, not the web of touching legs,
        which lies near both)."""
        n = len(x_p)
        if n == 0:
            return np.zeros(0)
        d_glob, _ = self.tree.query(x_p, distance_upper_bound=_CONTACT_REACH_M)
        dmin = np.minimum(d_glob, _CONTACT_REACH_M)[:, None]  # finite: no inf − inf below
        # a body vertex weighs in only when *near*: closer than max(d_min + CONTACT_BAND_M, CONTACT_RADIUS_FAR_M);
        # a part whose lower-bound distance (2 cm cells) is beyond that, or a point with d_min ≥ CONTACT_FAR_M
        # (close = 0), gives 0 and is not searched
        reach = np.maximum(dmin[:, 0] + CONTACT_BAND_M, CONTACT_RADIUS_FAR_M)
        lower = _cell_lower_bounds(x_p, self.part_trees, float(reach.max()))
        widths = [min(CONTACT_NEIGHBOURS, len(ids)) for _, ids in self.part_trees]
        dp, dc = np.full((n, sum(widths)), np.inf), np.zeros((n, sum(widths)))
        col = 0
        for j, ((tree, ids), k) in enumerate(zip(self.part_trees, widths, strict=True)):
            sel = np.nonzero((lower[:, j] < reach) & (dmin[:, 0] < CONTACT_FAR_M))[0]
            if len(sel):
                # body vertices beyond _CONTACT_REACH_M weigh nothing (near = 0, or close = 0 for every neighbour):
                # the bounded search skips them (distance inf, index len(ids))
                d, idx = tree.query(x_p[sel], k=k, distance_upper_bound=_CONTACT_REACH_M)
                idx = ids[np.minimum(idx.reshape(len(sel), k), len(ids) - 1)]
                dp[sel, col:col + k] = d.reshape(len(sel), k)
                diff = self.skin.body.vertices[idx] - x_c[sel, None, :]
                dc[sel, col:col + k] = np.sqrt(np.einsum("nki,nki->nk", diff, diff))
            col += k
        # near: the larger of two ramps falling with dp (max before clip: one clip); foreign; both in [0, 1]
        near = np.maximum((dmin + CONTACT_BAND_M - dp) / CONTACT_BAND_M,
                          (CONTACT_RADIUS_FAR_M - dp) / (CONTACT_RADIUS_FAR_M - CONTACT_RADIUS_M))
        np.clip(near, 0.0, 1.0, out=near)
        foreign = np.clip((dc - dp - FOREIGN_FROM_M) / (FOREIGN_FULL_M - FOREIGN_FROM_M), 0.0, 1.0)
        c = (near * foreign).max(axis=1)
        # Compression: x_p lies much closer to the posed body than x_c to the canonical body (inside a bent elbow
        # or knee, under a lowered arm): several canonical points map there, the photo cannot tell them apart.
        if d_c is None:
            d_c, _ = self.skin.tree.query(x_c)
        squeeze = np.clip((d_c - dmin[:, 0] - COMPRESSION_FROM_M) / (COMPRESSION_FULL_M - COMPRESSION_FROM_M), 0, 1)
        close = np.clip((CONTACT_FAR_M - dmin[:, 0]) / (CONTACT_FAR_M - CONTACT_NEAR_M), 0.0, 1.0)
        weight = np.maximum(c, squeeze) * close
        if legs is not None:
            # the farther of the two posed legs: a web of touching legs lies near both, a skirt's panel not
            starts = np.concatenate([[0], np.cumsum(widths)])
            apart = np.max([np.full(n, np.inf) if j is None else dp[:, starts[j]:starts[j + 1]].min(axis=1)
                            for j in self.leg_trees], axis=0)
            skirt = np.clip((apart - SKIRT_FROM_M) / (SKIRT_FULL_M - SKIRT_FROM_M), 0.0, 1.0)
            weight *= 1.0 - self.skirt * legs * skirt
        return _smoothstep(weight)

    def prior(self, x_c: np.ndarray) -> np.ndarray:
        """Body prior: (N,) offset of the closest canonical body point minus the signed distance to the body."""
        return self._prior_lost(x_c, False)[0]

    def _prior_lost(self, x_c: np.ndarray, with_lost: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(body prior (N,), the lost weight (N,) at the closest canonical body point or None)."""
        q = self.body_query.query(x_c)
        corners = self.body_query.faces[q.face]
        off = np.einsum("ni,ni->n", q.bary, self.offsets[corners])
        lost = np.einsum("ni,ni->n", q.bary, self.lost[corners]) if with_lost and self.lost is not None else None
        return off - q.distance, lost

    def keep_lost(self, f: np.ndarray, x_c: np.ndarray, d_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Occupancy ``f`` (N,) with the body prior united in around the body vertices a first meshing lost
        (:attr:`lost`, :func:`missing_body`), blended by their weight; ``d_c`` (N,) the points' distance to the
        canonical body (farther than the largest offset plus a grid margin the prior is negative: not evaluated).
        Returns (f, (N,) bool: the union grew f there)."""
        grown = np.zeros(len(f), dtype=bool)
        if self.lost is None:
            return f, grown
        sel = np.nonzero(d_c < float(self.offsets.max()) + GRID_MARGIN_M)[0]
        if not len(sel):
            return f, grown
        prior, lost = self._prior_lost(x_c[sel])
        grow = lost * np.maximum(prior - f[sel], 0.0)
        out = f.copy()
        out[sel] += grow
        grown[sel] = grow > 0
        return out, grown

    def __call__(self, x_c: np.ndarray) -> np.ndarray:
        """F (N,) at canonical points (N, 3), blocks of rows evaluated on :func:`~icon_engine.threads.cpu_workers`
        threads (k-d tree queries and numpy release the GIL)."""
        out = map_rows(self._evaluate, np.asarray(x_c, dtype=np.float64), min_rows=FIELD_MIN_ROWS,
                       max_rows=FIELD_BLOCK_ROWS)
        self.count += len(x_c)
        self.contact_count += int(out[:, 1].sum())
        self.lost_count += int(out[:, 2].sum())
        return out[:, 0]

    def _evaluate(self, x_c: np.ndarray) -> np.ndarray:
        """(N, 3): F, whether the point is in a contact zone (weight > 0.5) and whether the body prior grew F there
        around body vertices the surface lost (:meth:`keep_lost`)."""
        neighbours = self.skin.neighbours(x_c)
        x_p, d_c, hand = self.skin.warp_points_hand(x_c, neighbours)
        f = -self.clothed.signed_distance(x_p)
        c = self.contact(x_c, x_p, d_c, self.skin.between_legs(neighbours) if self.skirt > 0 else None)
        fold = self.skin.fold_weight(x_c, neighbours)
        sel = np.nonzero(c > 0)[0]
        if len(sel):
            # The prior only carves: the photo surface is the union of the touching parts (and the web between
            # them), so nothing outside it is the person; min() keeps the gaps the photo shows open.
            f[sel] = (1.0 - c[sel]) * f[sel] + c[sel] * np.minimum(self.prior(x_c[sel]), f[sel])
        sel = np.nonzero(fold > 0)[0]
        if len(sel):
            # a compressed warp pleats the photo's surface both ways (ridges and dents): the prior replaces it
            f[sel] = (1.0 - fold[sel]) * f[sel] + fold[sel] * self.prior(x_c[sel])
        f, grown = self.keep_lost(f, x_c, d_c)
        return np.stack([bare_hands(f, x_c, hand, self.prior), c > 0.5, grown], axis=1)


#: Hands are bare (wave 6): where the share of the hand joints in a canonical point's field weights ramps from
#: HAND_SHARE_FROM to HAND_SHARE_FULL, the occupancy is capped at the body prior (the hand grown by at most
#: HAND_MAX_OFFSET_M) plus HAND_SLACK_M (metres). Without it a hand resting on or beside the hip, or in front of
#: the chest, took the clothing its posed position lies in onto the canonical hand: a lump of hip or coat 3–11 cm
#: thick (shared set: 103's right hand, 107's left), posed back inside the surface and carried along in every other
#: pose; its size flipped with small changes elsewhere (104's right hand moved 10 cm when the throat changed).
HAND_SHARE_FROM = 0.5
HAND_SHARE_FULL = 0.9
HAND_SLACK_M = 0.01


def bare_hands(f: np.ndarray, x_c: np.ndarray, hand: np.ndarray, prior: Any) -> np.ndarray:
    """Occupancy ``f`` (N,) metres at canonical points ``x_c`` (N, 3) capped on the hands: blended by the smoothed
    hand share ``hand`` (N,) with ``min(f, prior(x_c) + HAND_SLACK_M)`` (``prior``: the body prior, called only on
    the points near a hand)."""
    h = _smoothstep((hand - HAND_SHARE_FROM) / (HAND_SHARE_FULL - HAND_SHARE_FROM))
    sel = np.nonzero(h > 0)[0]
    if not len(sel):
        return f
    out = f.copy()
    capped = np.minimum(f[sel], prior(x_c[sel]) + HAND_SLACK_M)
    out[sel] = (1.0 - h[sel]) * f[sel] + h[sel] * capped
    return out


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ----------------------------------------------------------------------------------------------------------------
# Several photos: fusion in canonical space

#: Confidence of a photo's surface at a point: RIM_FLOOR + rim², rim = 1 − |cos(normal, view ray)|. A photo's
#: silhouette pins the surface where it is seen edge-on (its rim); where the surface faces its camera (front or
#: back), its depth is the body-guided guess of the checkpoint-free surface.
RIM_FLOOR = 0.05
#: Carving: the fused occupancy never exceeds a photo's silhouette signed distance (metres at the point's depth)
#: by more than CARVE_SLACK_M (the first photo, which the avatar is posed and framed like), CARVE_OTHERS times that
#: plus CARVE_CONTACT_M in their contact zones (the other photos, whose fits register less exactly with the first
#: photo's pose): a visual hull.
CARVE_SLACK_M = 0.004
CARVE_OTHERS = 6.0
CARVE_CONTACT_M = 0.10
#: The first photo (the avatar is posed and framed like it) weighs this much more than the others.
FIRST_PHOTO_WEIGHT = 4.0
#: Confidence factor of a surface point a photo does not see (another part hides it), and the depth tolerance
#: (metres) of that visibility test.
HIDDEN_WEIGHT = 0.1
SEEN_DEPTH_M = 0.02


class FusedOccupancy:
    """Canonical occupancy of several photos (metres, positive inside): the confidence-weighted mean of every
    photo's observed occupancy at its warped point, where the confidence of photo i is
    ``(1 − contact_i) · (RIM_FLOOR + rim_i²)``, capped by every photo's carving bound (:data:`CARVE_SLACK_M`);
    where every photo is in a contact zone the body prior (the canonical body grown by the clothing offsets measured
    over all photos) takes over.

    ``occupancies``: one :class:`CanonicalOccupancy` per photo, all over the same canonical body (one shape);
    ``centres``: each photo's camera centre in its own bundle world (metres)."""

    def __init__(self, occupancies: list[Any], cameras: list[Any], masks: list[np.ndarray]) -> None:
        from .surface import mask_signed_distance

        if not occupancies or len(occupancies) != len(cameras) or len(masks) != len(cameras):
            raise ValueError("one camera and one person mask per occupancy, at least one")
        self.occupancies = occupancies
        self.cameras = cameras
        self.mask_sd = [mask_signed_distance(np.asarray(m, dtype=bool)) for m in masks]
        self.centres = [np.asarray(c.center, dtype=np.float64).reshape(1, 3) for c in cameras]
        # each photo's depth map of its own clothed surface: a surface point hidden behind another part (the far
        # arm in a side view) is a guess of that photo, not an observation
        self.depths = [rasterize(o.clothed.vertices, o.clothed.faces, c).depth for o, c in zip(occupancies, cameras,
                                                                                                strict=True)]
        self.count = 0
        self.contact_count = 0

    def _silhouette(self, i: int, points: np.ndarray) -> np.ndarray:
        """(N,) signed distance (metres at each point's depth, positive inside) of the points' pixels in photo
        ``i`` to its person mask's outline; points off the image are not bounded by it."""
        from .surface import _sample

        cam = self.cameras[i]
        uv, z = cam.project(points)
        sd_px = _sample(self.mask_sd[i], uv, outside=np.inf)
        return sd_px * np.maximum(z, 1e-3) / float(cam.K[0, 0])

    def _seen(self, i: int, points: np.ndarray) -> np.ndarray:
        """(N,) 1 where photo ``i`` sees the surface points (N, 3) (nearest at their pixel), falling smoothly to
        HIDDEN_WEIGHT for points more than 2 × SEEN_DEPTH_M behind the nearest surface."""
        cam, depth = self.cameras[i], self.depths[i]
        uv, z = cam.project(points)
        col = np.clip(uv[:, 0].astype(np.int64), 0, cam.width - 1)
        row = np.clip(uv[:, 1].astype(np.int64), 0, cam.height - 1)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
        behind = np.where(inside, z - depth[row, col], np.inf)  # metres behind the nearest surface at the pixel
        ramp = np.clip((behind - SEEN_DEPTH_M) / SEEN_DEPTH_M, 0.0, 1.0)  # smooth: no step in the fused field
        return 1.0 - (1.0 - HIDDEN_WEIGHT) * ramp

    def __call__(self, x_c: np.ndarray) -> np.ndarray:
        self.count += len(x_c)
        first = self.occupancies[0]
        neighbours = first.skin.neighbours(x_c)  # the skinning field depends on the canonical body alone
        weights, d_c = first.skin.weights(x_c, neighbours=neighbours)
        legs = first.skin.between_legs(neighbours) if any(o.skirt > 0 for o in self.occupancies) else None
        num = np.zeros(len(x_c))
        den = np.zeros(len(x_c))
        free = np.zeros(len(x_c))
        unfolded = np.zeros(len(x_c))
        bound = np.full(len(x_c), np.inf)
        for i, (occ, centre) in enumerate(zip(self.occupancies, self.centres, strict=True)):
            x_p = occ.skin.warp(x_c, weights)
            q = occ.clothed.query(x_p)
            contact = occ.contact(x_c, x_p, legs=legs)
            # a photo whose pose compresses the warp there (the inside of its bends) does not vote; where every
            # photo's does, the body prior replaces the surface (as for one photo)
            fold = occ.skin.fold_weight(x_c, neighbours)
            unfolded = np.maximum(unfolded, 1.0 - fold)
            ray = x_p - centre
            ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-12)
            rim = 1.0 - np.abs(np.einsum("ni,ni->n", q.normal, ray))
            seen = self._seen(i, q.closest)
            rim = rim * (seen - HIDDEN_WEIGHT) / (1.0 - HIDDEN_WEIGHT)  # a hidden rim is no silhouette
            conf = ((1.0 - contact) * (1.0 - fold) * (RIM_FLOOR + rim * rim) * seen
                    * (FIRST_PHOTO_WEIGHT if i == 0 else 1.0))
            num += conf * -q.distance
            den += conf
            free = np.maximum(free, 1.0 - contact)
            # each photo's silhouette bounds the volume (a visual hull), loosely for the photos the avatar is not
            # posed in (their fits register less exactly with the first photo's) and in contact zones
            slack = CARVE_SLACK_M if i == 0 else CARVE_SLACK_M * CARVE_OTHERS + CARVE_CONTACT_M * contact
            bound = np.minimum(bound, self._silhouette(i, x_p) + slack)
        observed = np.minimum(num / np.maximum(den, 1e-12), bound)
        out = observed.copy()
        blend = np.nonzero(free < 1.0)[0]
        if len(blend):
            self.contact_count += int((free < 0.5).sum())
            prior = np.minimum(first.prior(x_c[blend]), observed[blend])  # the prior only carves (as for one photo)
            out[blend] = free[blend] * observed[blend] + (1.0 - free[blend]) * prior
        folds = np.nonzero(unfolded < 1.0)[0]
        if len(folds):
            out[folds] = unfolded[folds] * out[folds] + (1.0 - unfolded[folds]) * first.prior(x_c[folds])
        # a limb a first meshing lost is kept as the body prior (first photo's occupancy: the avatar is posed in it)
        out, grown = first.keep_lost(out, x_c, d_c)
        first.lost_count += int(grown.sum())
        return bare_hands(out, x_c, weights[:, list(HAND_JOINTS)].sum(axis=1), first.prior)


def fused_offsets(per_photo: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Clothing offsets (V,) of the body prior from every photo's (offsets, measured) (:func:`body_offsets`):
    the mean over the photos that measured a body vertex; a vertex no photo measured keeps the first photo's
    harmonically filled value. Returns (offsets, measured by any photo)."""
    offsets = np.stack([o for o, _ in per_photo])
    measured = np.stack([m for _, m in per_photo]).astype(np.float64)
    count = measured.sum(axis=0)
    mean = (offsets * measured).sum(axis=0) / np.maximum(count, 1.0)
    return np.where(count > 0, mean, offsets[0]), count > 0


# ----------------------------------------------------------------------------------------------------------------
# Skin weights on the canonical mesh


def part_support(weights: np.ndarray, min_share: float = 0.02) -> np.ndarray:
    """(N, 5) bool: the body parts holding at least ``min_share`` of each row of ``weights`` (N, 55)."""
    share = weights @ _PART_MATRIX.T
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
    return share >= min_share


def canonical_skin_weights(vertices: np.ndarray, faces: np.ndarray, body: CanonicalBody, skin: SkinningField,
                           max_influences: int = 8, skirt: bool = False
                           ) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
    """Skin weights (N, 55) float32 of the canonical mesh, stats, the skirt panel (N,) bool and the weights
    without the panel's blend (N, 55): transfer from the canonical body, screened-Laplace
    diffusion over the mesh (:mod:`icon_engine.rig`), then every joint of a part the skinning field does not see at
    the vertex is dropped; with ``skirt`` (a photo shows cloth spanning the legs) the split between the legs of
    that cloth's panel (:func:`skirt_panel`) is made harmonic (:func:`panel_leg_split`); ≤ ``max_influences``
    joints, rows normalised."""
    w0, dist = transfer_weights(vertices, body.vertices, body.faces, body.lbs_weights, faces=faces)
    # the field's weights at the vertices on a second thread while SuperLU factors and solves (it releases the GIL)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="icon-field-weights") as pool:
        field_job = pool.submit(skin.weights, vertices)
        w = diffuse_weights(w0, faces, dist)
        field_w, _ = field_job.result()
    allowed = part_support(field_w) | part_support(w0)
    joint_ok = allowed[:, JOINT_PART]
    dropped = float((np.clip(w, 0, None) * ~joint_ok).sum() / max(np.clip(w, 0, None).sum(), 1e-12))
    w = np.where(joint_ok, w, 0.0)
    panel = skirt_panel(vertices, w, dist, body.joints) if skirt else np.zeros(len(vertices), dtype=bool)
    legs_w = sparsify_weights(w, max_influences)
    w = sparsify_weights(panel_leg_split(w, faces, panel), max_influences) if panel.any() else legs_w
    return w, {"transfer_distance_mean_cm": float(dist.mean() * 100),
                      "transfer_distance_p95_cm": float(np.percentile(dist, 95) * 100),
                      "loose_vertices": int((dist > 0.06).sum()), "foreign_weight_dropped": dropped}, panel, legs_w


#: Cloth spanning the legs (a skirt, a dress, a long coat) is skinned as one panel (wave 16): a vertex below the hip
#: joints and more than SKIRT_CLOTH_M (metres, canonical) from the body is cloth; where such cloth crosses the
#: midline between the legs (:data:`SKIRT_MIDLINE_M`, both legs at least :data:`LEGS_SHARE_FROM` of its weights) it
#: spans them, and its lowest such vertex is the hem. Between the hips and the hem every cloth vertex with some leg
#: weight belongs to the panel.
SKIRT_CLOTH_M = 0.012
#: Cloth spans the legs where it crosses the body's midline (metres either side of the pelvis joint): a skirt's
#: front and back do down to the hem, trouser legs only at the crotch.
SKIRT_MIDLINE_M = 0.02
#: The panel is skinned only where a photo shows cloth spanning the legs at least this clearly
#: (:func:`cloth_between_legs`).
SKIRT_EVIDENCE = 0.5


def skirt_panel(vertices: np.ndarray, weights: np.ndarray, distance: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(N,) bool: the canonical mesh's vertices (N, 3, metres, Y up) of cloth spanning the legs, from their weights
    (N, 55), their distance to the canonical body (N,) and the body's joints (55, 3) (:data:`SKIRT_CLOTH_M`)."""
    legs = weights @ _PART_MATRIX[3:5].T  # (N, 2) left and right leg shares
    cloth = (distance > SKIRT_CLOTH_M) & (vertices[:, 1] < joints[[1, 2], 1].mean())
    midline = np.abs(vertices[:, 0] - joints[0, 0]) < SKIRT_MIDLINE_M
    spanning = cloth & midline & (legs.min(axis=1) >= LEGS_SHARE_FROM)
    if not spanning.any():
        return np.zeros(len(vertices), dtype=bool)
    hem = vertices[spanning, 1].min()
    return cloth & (vertices[:, 1] >= hem) & (legs.sum(axis=1) >= LEGS_SHARE_FROM)


#: The legs' joints, left and right in the same order (hip, knee, ankle, foot).
_LEFT_LEG, _RIGHT_LEG = np.array(_PART_JOINTS[3]), np.array(_PART_JOINTS[4])


def panel_leg_split(weights: np.ndarray, faces: np.ndarray, panel: np.ndarray) -> np.ndarray:
    """``weights`` (N, 55) with the skirt ``panel``'s (N,) bool split between the legs made harmonic: each panel
    vertex keeps its legs' total share (and the rest of its row: the waist's share), and the left leg's part of that
    total is the harmonic interpolation (:func:`icon_engine.texture.harmonic_fill`) of the part around the panel,
    over the mesh's vertices that carry leg weight. Within a leg the joints keep the vertex's own proportions (hip,
    knee, …), or the other leg's mirrored where the vertex had none of that leg. So the panel drapes from one leg
    to the other across its front and back, and still follows the legs as far as it did: a stride does not split
    it, and sitting (both legs turned alike) does not pull it back to the waist."""
    from .texture import harmonic_fill

    w = np.array(weights, dtype=np.float64, copy=True)
    left, right = w[:, _LEFT_LEG], w[:, _RIGHT_LEG]
    sl, sr = left.sum(axis=1), right.sum(axis=1)
    total = sl + sr
    legs = total > 1e-6
    if not (panel & legs).any():
        return w
    sub = np.flatnonzero(legs)  # the leg-carrying part of the mesh: the split is interpolated over it
    where = np.full(len(w), -1)
    where[sub] = np.arange(len(sub))
    f = faces[(where[faces] >= 0).all(axis=1)]
    share = (sl[sub] / total[sub])[:, None]
    split = harmonic_fill(share, ~panel[sub], where[f])[:, 0]
    rows = sub[panel[sub]]
    s = np.clip(split[panel[sub]], 0.0, 1.0)
    pl = np.where(sl[rows, None] > 1e-9, left[rows] / np.maximum(sl[rows], 1e-12)[:, None],
                  right[rows] / np.maximum(sr[rows], 1e-12)[:, None])
    pr = np.where(sr[rows, None] > 1e-9, right[rows] / np.maximum(sr[rows], 1e-12)[:, None], pl)
    w[np.ix_(rows, _LEFT_LEG)] = (s * total[rows])[:, None] * pl
    w[np.ix_(rows, _RIGHT_LEG)] = ((1.0 - s) * total[rows])[:, None] * pr
    return w


def _keep_panel_posed(canonical: np.ndarray, weights: np.ndarray, panel: np.ndarray, legs_weights: np.ndarray,
                      skin: SkinningField, canonical_joints: np.ndarray, to_rest: np.ndarray,
                      rest_joints: np.ndarray, pose_rel: np.ndarray, transl: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canonical vertices (N, 3) of the skirt ``panel`` moved so that the panel, skinned with its new
    ``weights`` (N, 55), lands in the first photo's pose where the canonical occupancy put it (the first photo's
    skinning field ``skin`` warps the vertex there): the avatar reproduces the photo, and its rest shape is the
    photo's skirt un-posed as one panel. Vertices whose new blend is near-singular in that pose
    (:data:`icon_engine.rig.MIN_BLEND_SINGULAR`) keep their place and the weights without the panel's blend
    (``legs_weights``). Returns (canonical, weights, panel) updated; ``to_rest``, ``pose_rel`` (55, 3): canonical →
    rest and rest → photo pose."""
    idx = np.flatnonzero(panel)
    w_new = np.asarray(weights[idx], dtype=np.float64)
    blend, _ = blended_transforms(w_new, rest_joints, pose_rel)
    ok = np.linalg.svd(blend, compute_uv=False)[:, -1] >= MIN_BLEND_SINGULAR
    keep = idx[ok]
    target = skin.warp_points(canonical[keep])[0]  # where the occupancy put the panel in the photo
    rest = unpose_vertices(target, w_new[ok], rest_joints, pose_rel, transl)
    canonical = np.array(canonical, copy=True)
    canonical[keep] = unpose_vertices(rest, w_new[ok], canonical_joints, to_rest, np.zeros(3))
    weights = np.array(weights, copy=True)
    weights[idx[~ok]] = legs_weights[idx[~ok]]
    panel = np.zeros_like(panel)
    panel[keep] = True
    return canonical, weights, panel


# ----------------------------------------------------------------------------------------------------------------
# Hands from the body model

#: The avatar's hands are the body model's own (wave 13): at the canonical grid's spacing (7 mm at standard) the
#: fingers the occupancy keeps bare (:func:`bare_hands`) mesh as a mitten — fingers fused, webs, fins and knobs —
#: which the finger bones then bend as one lump. Each hand beyond its wrist (:data:`HAND_CUTS_M` along the forearm)
#: is cut off the meshed avatar and the body's hand, cut :data:`HAND_GRAFT_GAP_M` further on, is joined to the
#: rim by a strip (:func:`~icon_engine.geometry.graft.join_rims`); its vertices keep the body's skin weights, so
#: the fingers bend like the fitted body's. A hand whose cut does not leave one clean rim round the forearm keeps
#: its meshed shape (``stats["hands_grafted"]`` names the grafted ones).
GRAFT_HANDS = True
#: Where the avatar is cut (metres past the wrist joint along the forearm), tried in turn until the cut leaves one
#: rim round the forearm: a cuff or a flap at the wrist can make the first cut's rim fold on itself (icon_44c0f84c's
#: right jacket cuff).
HAND_CUTS_M = (0.0, 0.015, 0.03)
HAND_GRAFT_GAP_M = 0.01
#: Faces farther than this from the wrist joint are never cut (metres; the fingertips lie ~0.2 m beyond it).
HAND_REACH_M = 0.3
#: The vertices within this distance (metres, along the forearm) of the join's middle are relaxed towards their
#: neighbours' mean (:data:`HAND_SEAM_ITERS` rounds, the rest held): the clothed wrist tapers into the body's.
HAND_SEAM_M = 0.02
HAND_SEAM_ITERS = 60
#: Wrist and elbow joints of each side.
HAND_SIDES = {"left": (20, 18), "right": (21, 19)}
#: A hand is grafted only where the fitted hand agrees with the (first) photo's clothed surface: at most
#: :data:`HAND_OUTSIDE_MAX` of the posed body hand's vertices lie more than :data:`HAND_OUTSIDE_M` outside it. A
#: hand fitted turned or bent off the photo's hand keeps the meshed mitten, which the photo's surface shaped: the
#: body's hand there left the photo's outline by up to 4 cm (wave 13: posed IoU −0.014 on icon_003883, −0.026 on
#: icon_fb9d20fd).
HAND_OUTSIDE_M = 0.01
HAND_OUTSIDE_MAX = 0.15


def _hand_axis(body: CanonicalBody, side: str) -> tuple[np.ndarray, np.ndarray]:
    """The wrist joint of ``side`` (3,) and the unit forearm direction elbow → wrist (3,), canonical space."""
    wrist, elbow = HAND_SIDES[side]
    axis = body.joints[wrist] - body.joints[elbow]
    return body.joints[wrist], axis / np.linalg.norm(axis)


class BodyHand(NamedTuple):
    """The body's hand beyond a cut: ``vertices`` (n, 3) canonical metres, ``faces`` (m, 3), its one ``rim`` (k,)
    (indices into ``vertices``) and ``body_index`` (n,) the body vertex of each of its vertices."""

    vertices: np.ndarray
    faces: np.ndarray
    rim: np.ndarray
    body_index: np.ndarray


def body_hand(body: CanonicalBody, side: str, cut_m: float = HAND_CUTS_M[0]) -> BodyHand | None:
    """The body's ``side`` hand beyond its cut (``cut_m`` + :data:`HAND_GRAFT_GAP_M` past the wrist); None when the
    cut does not leave one rim."""
    from .geometry.decimate import compact
    from .geometry.graft import beyond_plane, boundary_loops

    wrist, axis = _hand_axis(body, side)
    keep = beyond_plane(body.vertices, body.faces, wrist + (cut_m + HAND_GRAFT_GAP_M) * axis, axis,
                        HAND_REACH_M, every=True)
    if not keep.any():
        return None
    verts, faces, used = compact(body.vertices, body.faces[keep])
    rims = boundary_loops(faces)
    return BodyHand(verts, faces, rims[0], used) if rims is not None and len(rims) == 1 else None


def hand_outside_fraction(piece: BodyHand, posed_body: np.ndarray, clothed: Any) -> float:
    """Share of a body hand's vertices (``piece`` from :func:`body_hand`; ``posed_body`` (V, 3) the body posed
    into a photo, bundle world) lying more than :data:`HAND_OUTSIDE_M` outside that photo's clothed surface
    (``clothed``: its signed-distance query)."""
    d = np.asarray(clothed.signed_distance(posed_body[piece.body_index]), dtype=np.float64)
    return float((d > HAND_OUTSIDE_M).mean())


def hand_budget(vertices: np.ndarray, faces: np.ndarray, body: CanonicalBody,
                hands: dict[str, BodyHand | None], face_count: int) -> int:
    """The decimation target of the canonical mesh (``vertices``, ``faces``) such that, once the ``hands`` (of
    :func:`body_hand`, by side) replace its own, the avatar has about ``face_count`` faces: the hands' faces come
    out of the budget and the faces the cuts remove (their share of the mesh, decimated alike) back into it."""
    from .geometry.graft import beyond_plane

    added = sum(len(h.faces) for h in hands.values() if h is not None)
    if not added:
        return face_count
    cut = sum(int(beyond_plane(vertices, faces, w + HAND_CUTS_M[0] * a, a, HAND_REACH_M).sum())
              for w, a in (_hand_axis(body, side) for side, h in hands.items() if h is not None))
    share = min(cut / max(len(faces), 1), 0.5)
    return max(int(round((face_count - added) / (1.0 - share))), face_count // 2)


def graft_body_hands(vertices: np.ndarray, faces: np.ndarray, body: CanonicalBody,
                     hands: dict[str, BodyHand | None] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The closed canonical mesh (``vertices`` (N, 3), ``faces`` (M, 3)) with each hand replaced by the body's
    (:func:`body_hand`; ``hands``: the sides to graft, with their pieces at the first cut): faces beyond the wrist
    cut removed, the body's hand added and joined to the rim (:func:`graft_hand`, at each cut of
    :data:`HAND_CUTS_M` in turn until one works). Returns the mesh and the sides grafted; a side none of whose cuts
    leaves one rim round the forearm and a closed joined mesh is left as it was."""
    grafted = []
    for side in HAND_SIDES:
        first = body_hand(body, side) if hands is None else hands.get(side)
        if first is None:
            continue
        for cut_m in HAND_CUTS_M:
            piece = first if cut_m == HAND_CUTS_M[0] else body_hand(body, side, cut_m)
            done = None if piece is None else graft_hand(vertices, faces, body, side, piece, cut_m)
            if done is not None:
                vertices, faces = done
                grafted.append(side)
                break
    return vertices, faces, grafted


def graft_hand(vertices: np.ndarray, faces: np.ndarray, body: CanonicalBody, side: str,
               piece: BodyHand, cut_m: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The closed mesh with its ``side`` hand (faces within :data:`HAND_REACH_M` of the wrist with a corner
    ``cut_m`` past it) replaced by the body's ``piece`` (:func:`body_hand` at the same cut), joined and relaxed
    (:func:`relax_seam`); None when the cut leaves anything but one rim round the forearm or the result is not
    closed."""
    from .geometry.decimate import compact, is_watertight
    from .geometry.graft import beyond_plane, boundary_loops, join_rims
    from .surface import _largest_component

    wrist, axis = _hand_axis(body, side)
    cut = wrist + cut_m * axis
    drop = beyond_plane(vertices, faces, cut, axis, HAND_REACH_M)
    if not drop.any():
        return None
    v, f, _ = _largest_component(*compact(vertices, faces[~drop])[:2])
    rims = boundary_loops(f)
    if rims is None or len(rims) != 1:
        return None
    both = np.concatenate([v, piece.vertices])
    strip = join_rims(both, rims[0], piece.rim + len(v), cut, axis)
    if strip is None:
        return None
    joined = np.concatenate([f, piece.faces + len(v), strip])
    if not is_watertight(joined):
        return None
    return relax_seam(both, joined, cut + 0.5 * HAND_GRAFT_GAP_M * axis, axis), joined


def relax_seam(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``vertices`` with those within :data:`HAND_SEAM_M` of the plane through ``centre`` normal to ``axis`` (and
    within :data:`HAND_REACH_M` / 2 of ``centre``) moved to the harmonic blend of the held ones around them
    (:data:`HAND_SEAM_ITERS` Jacobi rounds of the neighbour mean)."""
    from .geometry.laplacian import neighbour_mean

    band = (np.abs((vertices - centre) @ axis) < HAND_SEAM_M) & (
        np.linalg.norm(vertices - centre, axis=1) < 0.5 * HAND_REACH_M)
    if not band.any():
        return vertices
    w = neighbour_mean(len(vertices), faces)[band]
    out = np.array(vertices, dtype=np.float64)
    for _ in range(HAND_SEAM_ITERS):
        out[band] = w @ out
    return out


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def build_avatar(posed_vertices: np.ndarray, posed_faces: np.ndarray, fit: Any, body_model: Any, *,
                 resolution: int = 256, levels: int = 4, smooth: int = 8, face_count: int | None = None,
                 rest_pose: str = "T", max_influences: int = 8, camera: Any = None, mask: np.ndarray | None = None,
                 progress: Any = None) -> Avatar:
    """Rebuild the posed clothed surface (``posed_vertices`` (N, 3) bundle world, ``posed_faces`` (M, 3), closed)
    as a canonical avatar skinned to the fitted skeleton.

    ``fit`` needs ``betas``, ``full_pose`` (55, 3) and ``transl`` (3,); ``body_model`` the SMPL-X layout body it
    was fitted with. ``resolution``: grid nodes along the longest side of the canonical box; ``levels``: coarse-to-
    fine levels; ``smooth``: Taubin iterations; ``face_count``: decimation target. With ``camera`` and ``mask``
    (processing pixels) the posed mesh's silhouette IoU is measured (a warning below 0.95).
    """
    return build_fused_avatar([posed_vertices], [posed_faces], [fit], body_model, resolution=resolution,
                              levels=levels, smooth=smooth, face_count=face_count, rest_pose=rest_pose,
                              max_influences=max_influences, cameras=[camera], mask=mask, progress=progress)


def build_fused_avatar(posed_vertices: list[np.ndarray], posed_faces: list[np.ndarray], fits: list[Any],
                       body_model: Any, *, resolution: int = 256, levels: int = 4, smooth: int = 8,
                       face_count: int | None = None, rest_pose: str = "T", max_influences: int = 8,
                       cameras: list[Any] | None = None, mask: np.ndarray | None = None,
                       masks: list[np.ndarray] | None = None, progress: Any = None, device: str = "cpu") -> Avatar:
    """One canonical avatar from the clothed surfaces of several photos of one person (same shape ``betas`` in
    every fit; each photo its own pose, translation and camera): every photo's canonical occupancy
    (:class:`CanonicalOccupancy`) is fused by :class:`FusedOccupancy` (one photo: its occupancy as it is), then
    meshed, skinned and posed into the **first** photo, whose ``cameras[0]`` and ``mask`` check the silhouette.
    Arguments as in :func:`build_avatar`, one list entry per photo; ``cameras`` and ``masks`` (every photo's person
    mask, processing pixels) are needed for several photos. ``device``: where the closest-point queries against
    the clothed surfaces and the canonical body run (:func:`~icon_engine.geometry.torch_closest.mesh_query`).
    """
    from .geometry.decimate import decimate
    from .geometry.laplacian import taubin_smooth
    from .surface import _largest_component, evaluate_coarse_to_fine, mesh_zero_level

    t_start, cpu_start = time.perf_counter(), time.process_time()
    if not fits or len(fits) != len(posed_vertices) or len(fits) != len(posed_faces):
        raise ValueError("one clothed surface per fit, at least one")
    surfaces = []
    for v, f in zip(posed_vertices, posed_faces, strict=True):
        angles, pv, pf = check_rig_inputs(v, f, rest_pose, max_influences)
        surfaces.append((pv, pf))
    cameras = list(cameras) if cameras is not None else [None] * len(fits)
    camera = cameras[0]
    fit = fits[0]

    def report(frac: float, text: str) -> None:
        if progress is not None:
            progress.update(frac, text)

    timings: dict[str, float] = {}
    t = time.perf_counter()
    report(0.02, "Preparing the canonical body")
    body_t = canonical_body(fit, body_model)
    canon_angles = canonical_pose_angles()
    body = pose_body(body_t, canon_angles)
    full_pose = _np(fit.full_pose).reshape(NUM_JOINTS, 3)
    transl = _np(fit.transl).reshape(3)
    views = []  # (skinning field, posed body, clothed query, offsets, measured) per photo
    for (pv, pf), f in zip(surfaces, fits, strict=True):
        pose_f = pose_relative_to_rest(_np(f.full_pose).reshape(NUM_JOINTS, 3), canon_angles)
        skin_f = SkinningField(body, pose_f, _np(f.transl).reshape(3))
        posed_f = skin_f.warp(body.vertices, body.lbs_weights)
        clothed_f = mesh_query(pv, pf, device)
        views.append((skin_f, posed_f, clothed_f, *body_offsets(posed_f, body, clothed_f)))
    skin = views[0][0]
    offsets, measured = fused_offsets([(v[3], v[4]) for v in views])
    occupancies = [CanonicalOccupancy(sk, pb, cq, offsets, device) for sk, pb, cq, _, _ in views]
    photo_masks = list(masks) if masks is not None else [mask] + [None] * (len(fits) - 1)
    for occ, cam, m in zip(occupancies, cameras, photo_masks, strict=True):
        if cam is not None and m is not None:
            body_mask = rasterize(occ.posed_body, body.faces, cam).mask
            occ.skirt = cloth_between_legs(occ.skin.posed_joints, cam, np.asarray(m, bool), body_mask)
    if len(occupancies) == 1:
        occupancy = occupancies[0]
    else:
        if any(c is None for c in cameras):
            raise ValueError("fusing several photos needs every photo's camera")
        if masks is None or len(masks) != len(cameras):
            raise ValueError("fusing several photos needs every photo's person mask")
        occupancy = FusedOccupancy(occupancies, cameras, masks)
    timings["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    reach = float(np.percentile(offsets, 99.5)) + GRID_MARGIN_M
    lo, hi = body.vertices.min(0) - reach, body.vertices.max(0) + reach
    h = float((hi - lo).max()) / resolution
    vol, origin = evaluate_coarse_to_fine(occupancy, lo, hi, h, levels, progress, 0.05, 0.6,
                                          band_factor=FIELD_BAND_FACTOR)
    timings["field"] = time.perf_counter() - t

    t = time.perf_counter()
    report(0.62, "Meshing the canonical avatar")
    verts, tris = mesh_zero_level(vol, origin, h)
    verts, tris, floaters = _largest_component(verts, tris)
    # a limb the photo surface lost (fitted off it, cut by a contact zone) is meshed again as the body prior
    lost, restored = missing_body(verts, tris, body)
    if restored:
        occupancies[0].lost = lost.astype(np.float64)
        report(0.63, "Restoring a limb the photo surface lost")
        t2 = time.perf_counter()
        vol, origin = evaluate_coarse_to_fine(occupancy, lo, hi, h, levels, None, 0.0, 0.0,
                                              band_factor=FIELD_BAND_FACTOR)
        timings["field_restore"] = time.perf_counter() - t2
        verts, tris = mesh_zero_level(vol, origin, h)
        verts, tris, floaters = _largest_component(verts, tris)
    verts = taubin_smooth(verts, tris, smooth)
    hands = {side: body_hand(body, side) for side in HAND_SIDES} if GRAFT_HANDS else {}
    hand_outside = {side: round(hand_outside_fraction(h, views[0][1], views[0][2]), 3)
                    for side, h in hands.items() if h is not None}
    hands = {side: h for side, h in hands.items() if h is not None and hand_outside[side] <= HAND_OUTSIDE_MAX}
    if face_count:  # the grafted hands' faces come out of the budget, the cut ones' back into it
        verts, tris = decimate(verts, tris, hand_budget(verts, tris, body, hands, int(face_count)))
    grafted: list[str] = []
    if hands:
        verts, tris, grafted = graft_body_hands(verts, tris, body, hands)
    timings["mesh"] = time.perf_counter() - t

    t = time.perf_counter()
    report(0.75, "Skinning the canonical avatar")
    skirt = max(float(o.skirt) for o in occupancies) >= SKIRT_EVIDENCE
    weights, wstats, panel, legs_weights = canonical_skin_weights(verts, tris, body, skin, max_influences, skirt)
    # canonical (legs spread) → rest pose (T or A), then rest → photo pose: posed is exactly LBS of the rest mesh
    to_rest = pose_relative_to_rest(angles, canon_angles)
    _, rest_joints = forward_kinematics(body_t.joints, np.asarray(PARENTS), angles)
    pose_rel = pose_relative_to_rest(full_pose, angles)
    if panel.any():  # the panel keeps its place in the photo: its rest shape is un-posed with its new weights
        verts, weights, panel = _keep_panel_posed(verts, weights, panel, legs_weights, skin, body.joints, to_rest,
                                                  rest_joints, pose_rel, transl)
    parts = (weights.astype(np.float64) @ _PART_MATRIX.T).argmax(axis=1)  # each vertex's part, from its weights
    rest = skin_vertices(verts, weights, body.joints, np.asarray(PARENTS), to_rest)
    posed = skin_vertices(rest, weights, rest_joints, np.asarray(PARENTS), pose_rel, transl)
    wstats["skirt_panel_vertices"] = int(panel.sum())
    timings["skin"] = time.perf_counter() - t

    report(0.9, "Checking the avatar")
    warnings: list[str] = []
    if restored:
        limbs = ", ".join(LIMB_SEGMENT_NAMES[j] for j in restored)
        warnings.append(f"The fitted {limbs} lay outside the photo's clothed surface (fitted off the person's "
                        "outline or at the wrong depth): the avatar keeps the body model's limb there, in the fitted "
                        "pose, which may differ from the photo's.")
    iou = None
    if camera is not None and mask is not None:
        from .surface import silhouette_iou

        iou = silhouette_iou(posed, tris, camera, np.asarray(mask, dtype=bool))
        if iou < SILHOUETTE_TARGET:
            warnings.append(f"The posed avatar matches the person's outline only approximately "
                            f"(silhouette IoU {iou:.3f}).")
    nnz = (weights > 0).sum(axis=1)
    stats: dict[str, Any] = {
        "method": "canonical",
        "vertices": int(len(verts)),
        "faces": int(len(tris)),
        "grid_spacing_m": h,
        "photos_fused": len(fits),
        "points_evaluated": occupancy.count,
        "contact_zone_fraction": occupancy.contact_count / max(occupancy.count, 1),
        "body_vertices_in_contact": int((~measured).sum()),
        "limb_segments_restored": restored,
        "cloth_between_legs": [round(float(o.skirt), 3) for o in occupancies],
        "body_vertices_restored": 0 if occupancies[0].lost is None else int((occupancies[0].lost > 0).sum()),
        "points_grown_by_restored_body": occupancies[0].lost_count,
        "floaters_removed": int(floaters),
        "hands_grafted": grafted,
        "hand_outside_fraction": hand_outside,
        "posed_silhouette_iou": iou,
        "reproduction_error_max_mm": 0.0,
        "influences_max": int(nnz.max()),
        "influences_mean": float(nnz.mean()),
        "rest_torn_faces": int(torn_faces(posed, rest, tris).sum()),
        "rest_intersections": rest_mesh_intersections(rest, tris, rest_joints),
        **wstats,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "time_s": round(time.perf_counter() - t_start, 3),
        "cpu_s": round(time.process_time() - cpu_start, 3),
    }
    rig = Rig(skin_weights=weights, rest_vertices=rest, rest_joints=np.asarray(rest_joints, dtype=np.float64),
              rest_pose=rest_pose, rest_pose_angles=angles, pose_from_rest=pose_rel, stats=stats)
    report(1.0, "Avatar done")
    return Avatar(posed, tris, verts, body.joints, parts, rig, warnings, stats)
