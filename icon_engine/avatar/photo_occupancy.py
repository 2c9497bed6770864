"""One photo's clothed surface as an occupancy in canonical space: the photo surface warped back, the body prior
in contact zones, folds and near the hands, and the cloth between the legs.

Frames and units: see :mod:`icon_engine.avatar`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from ..bundle.skeleton import NUM_JOINTS, PARENTS
from ..geometry.device import mesh_query
from ..mesh_queries import MeshQuery
from ..threads import map_rows
from . import skinning_field
from .body import HAND_JOINTS, LIMB_SEGMENT_JOINTS, PART_NAMES, CanonicalBody
from .skinning_field import SkinningField, _smoothstep

#: Between the legs (:meth:`SkinningField.between_legs`) a point whose posed position lies farther than
#: SKIRT_FROM_M from one of the posed legs (metres; not at all in contact from SKIRT_FULL_M) is not in a contact
#: zone: there the photo's surface is a skirt or a dress spanning the legs, not the web of legs that touch (which
#: lies within a centimetre or two of both). Without it a walking dress's front was carved open between the legs,
#: posed and in the rest pose (subject_107: a slit from the hem to the thighs with a flap standing out of it).
SKIRT_FROM_M = 0.03
SKIRT_FULL_M = 0.05
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
HAND_MAX_OFFSET_M = 0.008
#: A trouser leg in the rest pose (wave 22, :func:`leg_tube_offsets`): on each leg, from hip to ankle in
#: LEG_TUBE_BINS slices, the clothing offset stands at most LEG_BULGE_M (metres) above the slice's lower quartile
#: (its closer sides), and the leg's occupancy is capped at the body grown by that tube (:func:`leg_tube`). A photo
#: of a thigh raised towards the camera in loose shorts (dev photo icon_5a6a2596) showed the cloth 9–11 cm off the
#: thigh on one side and 3 cm on the others: un-posed, that side became a sack hanging off the rest pose's thigh;
#: wide trousers in a lunge (icon_c9856a2b) left flaps standing off the calves. No cap where the photo shows cloth
#: spanning the legs (a skirt, a dress, a coat: :func:`cloth_between_legs`).
LEG_TUBE_BINS = 12
LEG_BULGE_M = 0.03
#: The cap weighs in as a point's share of the legs in its blend goes from the first value to the second (the
#: pelvis and the crotch above the thighs keep the photo's surface).
LEG_TUBE_SHARE = (0.5, 0.9)
#: Each leg's joints (SMPL-X): hip, knee, ankle (the thigh's and the shin's bones, then the foot).
LEG_CHAINS = ((1, 4, 7), (2, 5, 8))
#: Canonical points per block of the field's evaluation (bounds its temporaries: ~2 kB per point).
FIELD_BLOCK_ROWS = 32_768
#: Fewest canonical points per thread of the field's evaluation: the coarse levels (5–11k points at standard)
#: split over the cores too.
FIELD_MIN_ROWS = 2048
#: Grid margin beyond the grown canonical body (metres).
GRID_MARGIN_M = 0.04
#: :func:`cloth_between_legs`: (share of the way from hip to knee, smallest separation of the two legs' axes in metres
#: for a gap to show between trouser legs there).
SKIRT_LEVELS = ((0.5, 0.18), (1.0, 0.14))
#: :func:`cloth_between_legs`: the least width (metres) of picture between the fitted legs to judge.
SKIRT_GAP_M = 0.04
#: :func:`cloth_between_legs` judges only legs standing or walking: both thighs within this many degrees of down (−Y).
SKIRT_THIGH_DEG = 45.0


def cloth_between_legs(posed_joints: np.ndarray, camera: Any, mask: np.ndarray,
                       body_mask: np.ndarray | Callable[[], np.ndarray], samples: int = 41) -> float:
    """[0, 1]: the photo shows cloth spanning the legs (a skirt, a dress, a long coat). At mid-thigh and at the
    knees (:data:`SKIRT_LEVELS`), where the two legs' axes lie far enough apart in the picture for trouser legs to
    show a gap between them, the segment joining them is sampled where the fitted body does not cover it
    (``body_mask``: the posed body's silhouette), if at least :data:`SKIRT_GAP_M` of it: 1 where all of that is the
    person (``mask``) at some level, 0 where a gap shows, the legs never stand apart or the body covers the
    segment; 0 too unless both thighs hang within :data:`SKIRT_THIGH_DEG` of down. ``mask``, ``body_mask``: (H, W)
    bool in the camera's pixels (``body_mask`` may be a function making it: called once, and only when a level is
    judged — a rasterised body costs ~0.1 s); ``posed_joints`` (55, 3): the fitted joints in the camera's world
    (metres, Y up)."""
    from ..surface import thighs_hang_down

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
        if callable(body_mask):
            body_mask = body_mask()
        free = ~body_mask[row, col]
        # a gap between the fitted legs narrower than SKIRT_GAP_M is no evidence: the photo's legs lie a few
        # pixels off the fitted ones
        if free.sum() * np.linalg.norm(ur - ul) / (samples - 1) < SKIRT_GAP_M * px_per_m:
            continue
        filled = float(mask[row, col][free].mean())
        best = max(best, float(np.clip((filled - 0.8) / 0.2, 0.0, 1.0)))
    return best


def body_offsets(posed_body: np.ndarray, body: CanonicalBody, clothed: MeshQuery) -> tuple[np.ndarray, np.ndarray]:
    """Clothing offset (V,) metres on every body vertex and (V,) bool: measured (not in a contact zone).

    The offset of a body vertex is its depth inside the posed clothed surface; vertices within
    :data:`OFFSET_CONTACT_M` of a posed body vertex of another part whose canonical position is far away do not
    measure (there the surface bridges two parts) and are filled harmonically over the body mesh. A vertex outside
    the surface measures the smallest offset."""
    from ..texture import harmonic_fill

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


def leg_tube_offsets(body: CanonicalBody, offsets: np.ndarray) -> np.ndarray:
    """(V,) metres: on each leg (:data:`LEG_CHAINS`; thigh and shin: vertices whose largest LBS weight is the hip's
    or the knee's) the lower quartile of the clothing ``offsets`` (V,) in its slice plus
    :data:`LEG_BULGE_M` — the leg from hip to ankle in :data:`LEG_TUBE_BINS` slices by arc length along its two
    bones, interpolated between slice centres (no step at the knee), the foot the ankle's slice (a shoe stands well
    within it); :data:`MAX_OFFSET_M` elsewhere (no cap)."""
    caps = np.full(len(offsets), MAX_OFFSET_M)
    owner = body.lbs_weights.argmax(axis=1)
    for hip, knee, ankle in LEG_CHAINS:
        a, b, c = body.joints[hip], body.joints[knee], body.joints[ankle]
        thigh, shin = float(np.linalg.norm(b - a)), float(np.linalg.norm(c - b))
        sel, along = [], []
        for joint, start, end, before in ((hip, a, b, 0.0), (knee, b, c, thigh)):
            idx = np.nonzero(owner == joint)[0]
            axis = end - start
            t = np.clip((body.vertices[idx] - start) @ axis / max(float(axis @ axis), 1e-12), 0.0, 1.0)
            sel.append(idx)
            along.append(before + t * float(np.linalg.norm(axis)))
        sel, along = np.concatenate(sel), np.concatenate(along) / max(thigh + shin, 1e-9)
        if len(sel) < 4 * LEG_TUBE_BINS:
            continue
        foot = np.nonzero(owner == ankle)[0]  # the foot (and its shoe) takes the ankle's slice: a hem's flap there
        edges = np.linspace(0.0, 1.0, LEG_TUBE_BINS + 1)
        slot = np.minimum(np.searchsorted(edges, along, side="right") - 1, LEG_TUBE_BINS - 1)
        lower = np.array([np.percentile(offsets[sel][slot == k], 25) if (slot == k).any() else np.nan
                          for k in range(LEG_TUBE_BINS)])
        ok = ~np.isnan(lower)
        centres = 0.5 * (edges[:-1] + edges[1:])
        caps[sel] = np.interp(along, centres[ok], lower[ok]) + LEG_BULGE_M
        caps[foot] = lower[ok][-1] + LEG_BULGE_M
    return caps


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

    from ..geometry.laplacian import mesh_edges

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
    """F(x_c) in metres, positive inside (:mod:`icon_engine.avatar`, step 3); counts evaluated points and contact
    points."""

    def __init__(self, skin: SkinningField, posed_body: np.ndarray, clothed: MeshQuery, offsets: np.ndarray,
                 device: str = "cpu") -> None:
        self.skin, self.clothed, self.offsets = skin, clothed, offsets
        #: (V,) the largest clothing offset of the thighs and shins in the rest pose (:func:`leg_tube_offsets`)
        self.leg_offsets = leg_tube_offsets(skin.body, offsets)
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
        lower = skinning_field._cell_lower_bounds(x_p, self.part_trees, float(reach.max()))
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

    def leg_tube(self, f: np.ndarray, x_c: np.ndarray, legs: np.ndarray) -> np.ndarray:
        """Occupancy ``f`` (N,) capped on the legs at the body grown by :attr:`leg_offsets` (cloth standing off a
        thigh or a shin farther than its slice's tube; a leg within it is unchanged), blended in by the
        points' total leg share ``legs`` (N,) (:data:`LEG_TUBE_SHARE`) and not at all where the photo shows cloth
        spanning the legs (:attr:`skirt`)."""
        w = _smoothstep((legs - LEG_TUBE_SHARE[0]) / (LEG_TUBE_SHARE[1] - LEG_TUBE_SHARE[0])) * (1.0 - self.skirt)
        sel = np.nonzero(w > 0)[0]
        if not len(sel):
            return f
        q = self.body_query.query(x_c[sel])
        corners = self.body_query.faces[q.face]
        tube = np.einsum("ni,ni->n", q.bary, self.leg_offsets[corners]) - q.distance
        out = f.copy()
        out[sel] = (1.0 - w[sel]) * f[sel] + w[sel] * np.minimum(f[sel], tube)
        return out

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
        fold = self.skin.fold_weight(x_c, neighbours, self.skirt)
        sel = np.nonzero(c > 0)[0]
        if len(sel):
            # The prior only carves: the photo surface is the union of the touching parts (and the web between
            # them), so nothing outside it is the person; min() keeps the gaps the photo shows open.
            f[sel] = (1.0 - c[sel]) * f[sel] + c[sel] * np.minimum(self.prior(x_c[sel]), f[sel])
        sel = np.nonzero(fold > 0)[0]
        if len(sel):
            # a compressed warp pleats the photo's surface both ways (ridges and dents): the prior replaces it
            f[sel] = (1.0 - fold[sel]) * f[sel] + fold[sel] * self.prior(x_c[sel])
        f = self.leg_tube(f, x_c, self.skin.legs(neighbours).sum(axis=1))
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
