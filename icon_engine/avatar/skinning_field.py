"""The skinning field in canonical space: LBS weights for any point from the canonical body, the forward
warp and its folds (the Jacobian of the warp).

Frames and units: see :mod:`icon_engine.avatar`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from ..bundle.skeleton import PARENTS, forward_kinematics
from .body import _PART_MATRIX, HAND_JOINTS, PART_NAMES, CanonicalBody

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
#: Where the blended rotation's determinant is above 1 − FOLD_RIGID_TOL the warp's Jacobian is not evaluated (1).
FOLD_RIGID_TOL = 0.005
#: Cap of the cell bounds (metres): a far-away nearest-neighbour search is slow, a bounded one quick.
FIELD_BOUND_REACH_M = 0.4


class Neighbours(tuple):
    """(distances (N, K), body vertex indices (N, K)) of :meth:`SkinningField.neighbours` — a plain pair to unpack —
    that also keeps what a field made of it (the blend matrix, the blended transforms), so the field's other
    queries on the same points (warp, folds, legs: the occupancy asks for all of them) reuse it instead of making
    it again. A pair of arrays (a selection of the points) works the same, without the reuse."""

    def __new__(cls, distances: np.ndarray, indices: np.ndarray) -> Neighbours:
        pair = super().__new__(cls, (distances, indices))
        pair.made = {}  # (field, kind) -> what that field made of these neighbours
        return pair


class SkinningField:
    """Smooth LBS weights and forward warp of canonical points (:mod:`icon_engine.avatar`, steps 1–2)."""

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
        blend, d0 = self._blend(self.neighbours(points, k) if neighbours is None else neighbours)
        # Σ_k a_nk · lbs[idx_nk] as a sparse (N, V) blend matrix times the sparse body weights: the body's rows
        # hold a few joints each, so this never builds the dense (N, K, 55) gather
        return (blend @ self.lbs_sparse).toarray(), d0

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
        neighbours = self.neighbours(points) if neighbours is None else neighbours
        blend, d0 = self._blend(neighbours)
        return _transform(self._blended_transforms(neighbours), points), d0, blend @ self.hand_share

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
        t = self._blended_transforms(neighbours)
        det = np.ones(len(points))
        # where the blended transforms agree the warp is rigid there (det 1): a blend of rotations differing by
        # less than ≈ 8° keeps det(Σ w_j R_j) above 1 − FOLD_RIGID_TOL, and nothing folds
        sel = np.nonzero(np.linalg.det(t[:, :9].reshape(-1, 3, 3)) < 1.0 - FOLD_RIGID_TOL)[0]
        if not len(sel):
            return det
        p, d, idx = points[sel], d[sel], idx[sel]
        x_p = _transform(t[sel], p)
        finite = np.isfinite(d)
        near = self.body.vertices[idx]  # (n, K, 3); an unsearched slot (d = inf) stays inf
        # the offsets to the neighbours per axis, (n, K) each: one shifted point moves one of them (the sum of
        # squares in np.linalg.norm's order, without its slow reduction over an axis of 3)
        offsets = [p[:, None, a] - near[:, :, a] for a in range(3)]
        columns = []
        for axis in range(3):
            shifted = p.copy()
            shifted[:, axis] += step
            c = list(offsets)
            c[axis] = shifted[:, None, axis] - near[:, :, axis]
            ds = np.where(finite, np.sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]), np.inf)
            xs = self._apply(self._blend_matrix(_blend_weights(ds)[0], idx), shifted)
            columns.append((xs - x_p) / step)
        det[sel] = np.linalg.det(np.stack(columns, axis=2))
        return det

    def fold_weight(self, points: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray],
                    spanning: float = 1.0) -> np.ndarray:
        """(N,) weight in [0, 1] of the body prior at canonical points (N, 3) where the warp compresses
        (:func:`folded` of :meth:`jacobian_det`), except between the legs (:meth:`between_legs`) as far as the photo
        shows cloth spanning them (``spanning`` in [0, 1]: :func:`~.photo_occupancy.cloth_between_legs`): a skirt
        spans them there, and the prior is two legs with a gap. Trousers fold between the legs like anywhere else
        (the groin of a seated person or a high kick: before wave 21 its pleats stayed on the rest pose)."""
        fold = folded(self.jacobian_det(points, neighbours))
        sel = np.nonzero(fold > 0)[0]
        if len(sel) and spanning > 0.0:
            fold[sel] *= 1.0 - spanning * self.between_legs((neighbours[0][sel], neighbours[1][sel]))
        return fold

    def between_legs(self, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(N,) in [0, 1]: how far the points of these :meth:`neighbours` lie between the legs — 0 where one leg's
        share in the blend is below :data:`LEGS_SHARE_FROM`, 1 where both legs' are at least :data:`LEGS_SHARE_FULL`."""
        legs = self.legs(neighbours)
        return np.clip((legs.min(axis=1) - LEGS_SHARE_FROM) / (LEGS_SHARE_FULL - LEGS_SHARE_FROM), 0.0, 1.0)

    def legs(self, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(N, 2) share of the left and the right leg in the blend of the points of these :meth:`neighbours`."""
        if len(neighbours[0]) == 0:
            return np.zeros((0, 2))
        return np.asarray(self._blend(neighbours)[0] @ self.leg_shares)

    def _apply(self, blend: sp.csr_matrix, points: np.ndarray) -> np.ndarray:
        """Posed points (N, 3): the canonical ``points`` moved by the ``blend`` (N, V) of the body vertices' LBS."""
        return _transform(blend @ self._vertex_transforms, points)

    def _blend(self, neighbours: tuple[np.ndarray, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """(the blend (N, V) of body vertices, the distance to the nearest one (N,)) of these :meth:`neighbours`
        (:func:`_blend_weights`); made once per :class:`Neighbours`."""
        made = getattr(neighbours, "made", None)
        if made is not None and (self, "blend") in made:
            return made[self, "blend"]
        d, idx = neighbours
        a, d0 = _blend_weights(d)
        blend = (self._blend_matrix(a, idx), d0)
        if made is not None:
            made[self, "blend"] = blend
        return blend

    def _blended_transforms(self, neighbours: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(N, 12) the blend of the body vertices' LBS transforms ``[R | o]`` at these :meth:`neighbours`; made once
        per :class:`Neighbours`."""
        made = getattr(neighbours, "made", None)
        if made is not None and (self, "transforms") in made:
            return made[self, "transforms"]
        t = self._blend(neighbours)[0] @ self._vertex_transforms
        if made is not None:
            made[self, "transforms"] = t
        return t

    def _blend_matrix(self, a: np.ndarray, idx: np.ndarray) -> sp.csr_matrix:
        """Sparse (N, V) blend of body vertices from per-point weights ``a`` (N, K) of vertices ``idx`` (N, K)."""
        n = len(a)
        return sp.csr_matrix((a.ravel(), idx.ravel(), np.arange(0, n * a.shape[1] + 1, a.shape[1])),
                             shape=(n, len(self.body.vertices)))

    def neighbours(self, points: np.ndarray, k: int = FIELD_NEIGHBOURS) -> Neighbours:
        """(distances (N, K), body vertex indices (N, K)) of the canonical points' blend neighbours, K = ``k`` per
        body part; a part too far to weigh in is not searched (distance inf, index 0).

        Per body part, the ``k`` nearest vertices of that part; every vertex weighs
        ``exp(−(d² − d_min²) / 2σ²)`` with ``σ = FIELD_SIGMA_M + FIELD_SLOPE · d_min`` (``d_min`` over all parts),
        so a point between two legs blends both legs evenly and the field has no seam where the nearest part
        changes."""
        n = len(points)
        if n == 0:
            return Neighbours(np.zeros((0, k * len(self.part_trees))),
                              np.zeros((0, k * len(self.part_trees)), dtype=np.int64))
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
        return Neighbours(d, idx)

    def warp(self, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Canonical points (N, 3) → posed points (N, 3) by LBS with per-point ``weights`` (N, 55)."""
        return _transform(np.asarray(weights) @ self._transforms, points)  # blended [R | o] per point


def _transform(t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) moved by per-point affine maps ``t`` (N, 12): the 3×3 matrix (row-major) then the offset."""
    return np.einsum("nab,nb->na", t[:, :9].reshape(-1, 3, 3), points) + t[:, 9:]


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


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
