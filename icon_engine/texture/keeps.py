"""Which photo samples a vertex keeps: the limb rules (registration, outlines, occluders, hands, unshown
limbs) and the limb alignment of one photo.

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

import numpy as np

from ..camera import Camera
from ..errors import EngineError
from ..geometry.image_fields import bilinear, hull_zone
from ..geometry.laplacian import adjacency
from ..geometry.lengths import lengths
from . import colour_stats, sampling
from .colour_stats import _cluster_centres, _hair_colour, _nearest_colour
from .parts import (
    HAND_FINGERS,
    HAND_PALM,
    LIMB_COUNTERPART,
    PART_HEAD,
    PART_LEFT_ARM,
    PART_LEFT_LEG,
    PART_RIGHT_ARM,
    PART_RIGHT_LEG,
    PART_TORSO,
    _part_axis,
    _profile_axis,
)
from .sampling import _pixels, _View

#: Limbs over the hair (:func:`limb_registration_keep`): the limbs checked; the registration uncertainty (fraction
#: of the person's height in the photo, pixels) within which a limb's pixel may show the hair instead; a limb sample
#: within REGISTRATION_MATCH_RGB of a hair shade and farther than REGISTRATION_MIN_RGB from the skin is the hair
#: (RGB, 0–255); at most REGISTRATION_MAX_DROP of a limb's seen vertices are dropped; a limb whose samples away
#: from the head match the hair this often (REGISTRATION_HAIR_SHARE) is itself hair-coloured and keeps them.
REGISTRATION_PARTS = (PART_LEFT_ARM, PART_RIGHT_ARM, PART_LEFT_LEG, PART_RIGHT_LEG)
REGISTRATION_UNCERTAINTY = 0.04
REGISTRATION_MATCH_RGB = 30.0
REGISTRATION_MIN_RGB = 40.0
REGISTRATION_MAX_DROP = 0.6
REGISTRATION_HAIR_SHARE = 0.2
#: The hair's shades also count darkened by this factor (hair in shadow: its darkest strands).
REGISTRATION_HAIR_SHADOW = 0.6


def limb_registration_keep(view: _View, posed: np.ndarray, faces: np.ndarray, parts: np.ndarray,
                           alpha: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the limb vertices whose photo colour is most likely the hair, because the fitted limb
    lies off the photo's limb over the hair (icon_028009: a raised arm, hand on the head) or long hair hangs over
    it. Neither the mask nor the per-part visibility notices: the limb's own surface is the nearest one there, and
    the hair is not a part of the model. ``view`` with its parts set (:meth:`_View.set_parts`); ``posed`` (N, 3)
    the vertices in the photo's pose (metres), ``faces`` (M, 3); ``alpha`` (N,) photo weights; ``colours`` (N, 3)
    photo colours (0–255).

    The hair's shades are the head's colour clusters (its own seen samples, :func:`_colour_clusters`) nearer the
    hair colour than the face's skin (:func:`_hair_colour`; none on a bald head), and the same in shadow
    (× :data:`REGISTRATION_HAIR_SHADOW`). A seen limb vertex
    (:data:`REGISTRATION_PARTS`) is dropped when its pixel lies within :data:`REGISTRATION_UNCERTAINTY` × the
    person's height of the head's projection or of person pixels no part covers (hair hanging down), its colour
    lies within :data:`REGISTRATION_MATCH_RGB` of a hair shade and farther than :data:`REGISTRATION_MIN_RGB` from
    the skin, and so is every hair-coloured seen vertex of the limb connected to one on the mesh through
    hair-coloured seen vertices (the middle of a limb lying over the hair is farther from the hair's edge).
    Guards: nothing is dropped when the torso's main colour is a hair shade (a black shirt and black
    hair: the sleeve may be that colour), on a limb whose samples away from the head match the hair in
    :data:`REGISTRATION_HAIR_SHARE` of cases (black trousers), or where more than :data:`REGISTRATION_MAX_DROP` of
    the limb's seen vertices would go. A dropped vertex takes its limb's fill like a hidden one (the profile of
    the limb's other samples at its place: sleeve or skin)."""
    import cv2

    keep = np.ones(len(posed), dtype=bool)
    if view.face_part is None:
        return keep
    cam = view.camera
    col = np.asarray(colours, dtype=np.float64)
    _, _, inside, pix = _pixels(cam, posed)
    front = view.layers.face
    shown = np.where(front >= 0, view.face_part[np.maximum(front, 0)], -1)
    seen = (alpha > sampling.SEEN_ALPHA) & inside
    head = seen & (shown[pix] == parts) & (parts == PART_HEAD)
    rows = np.nonzero((shown >= 0).reshape(cam.height, cam.width).any(axis=1))[0]
    if head.sum() < 10 or not len(rows):
        return keep
    hair, skin = _hair_colour(posed[head], col[head])
    if hair is None:
        return keep
    shades = _cluster_centres(col[head])
    hair = np.concatenate([hair[None], shades[np.linalg.norm(shades - hair, axis=1)
                                              < np.linalg.norm(shades - skin, axis=1)]])
    hair = np.concatenate([hair, REGISTRATION_HAIR_SHADOW * hair])  # and the same hair in shadow
    torso = seen & (shown[pix] == parts) & (parts == PART_TORSO)
    if torso.sum() >= 10 and _nearest_colour(_cluster_centres(col[torso])[:1], hair)[0] <= REGISTRATION_MIN_RGB:
        return keep
    # pixels of the head's projection or of the person that no part covers (hair hanging down)
    hairy_px = (shown == PART_HEAD) | (view.mask.reshape(-1) & (shown < 0))
    reach = REGISTRATION_UNCERTAINTY * float(rows[-1] - rows[0] + 1)
    near = cv2.distanceTransform((~hairy_px).reshape(cam.height, cam.width).astype(np.uint8), cv2.DIST_L2,
                                 3).reshape(-1)[pix] < reach
    hairy = (_nearest_colour(col, hair) < REGISTRATION_MATCH_RGB) & (_nearest_colour(col, skin[None])
                                                                     > REGISTRATION_MIN_RGB)
    step = None
    for part in REGISTRATION_PARTS:
        mine = seen & (parts == part)
        far = mine & ~near
        if far.sum() >= 10 and hairy[far].mean() >= REGISTRATION_HAIR_SHARE:
            continue  # the limb itself has the hair's colour
        drop = mine & near & hairy
        if not drop.any():
            continue
        step = adjacency(len(posed), faces).tocsr() if step is None else step
        for _ in range(64):  # grow through the limb's hair-coloured seen vertices
            grown = drop | (mine & hairy & (step @ drop.astype(np.float32) > 0))
            if (grown == drop).all():
                break
            drop = grown
        if drop.sum() <= REGISTRATION_MAX_DROP * mine.sum():
            keep &= ~drop
    return keep


#: Limb outlines (:func:`limb_outline_keep`): the band (fraction of the person's height in the photo) along a limb's
#: projected outline where the photo may show the neighbouring region instead (the fit a few pixels off); a seen
#: sample there whose colour lies farther than OUTLINE_MIN_RGB (RGB, 0–255) from every sample the limb shows away
#: from its outline at the same place along it (within PROFILE_WINDOW) is dropped.
OUTLINE_UNCERTAINTY = 0.015
OUTLINE_MIN_RGB = 45.0
#: Interior samples of a window compared at most (evenly subsampled).
_OUTLINE_REFS = 300


def _interior_distance(s: np.ndarray, colours: np.ndarray, interior: np.ndarray, window: float) -> np.ndarray:
    """(K,) RGB distance (0–255) from each sample outside ``interior`` to the nearest ``interior`` sample at the same
    place along their part; 0 for the interior samples and where no interior sample lies there (no evidence).
    ``s`` (K,) positions along the part's axis (metres), ``colours`` (K, 3) (0–255), ``interior`` (K,) bool the
    samples trusted as the part's own, ``window`` metres. Positions are compared in bins of half a window, each
    with the two next to it (half a window to a window and a half either side)."""
    out = np.zeros(len(s))
    if interior.sum() < colour_stats.PROFILE_MIN_SAMPLES or interior.all():
        return out
    order = np.argsort(s[interior])
    s_in, c_in = s[interior][order], colours[interior][order]
    edge = np.nonzero(~interior)[0]
    bin_in = np.floor((s_in - s_in[0]) / (0.5 * window)).astype(np.int64)
    bin_edge = np.floor((s[edge] - s_in[0]) / (0.5 * window)).astype(np.int64)
    starts = np.searchsorted(bin_in, np.arange(bin_in[-1] + 2))
    for b in np.unique(bin_edge):
        lo, hi = starts[int(np.clip(b - 1, 0, len(starts) - 1))], starts[int(np.clip(b + 2, 0, len(starts) - 1))]
        if hi <= lo:
            continue  # nothing trusted there: no evidence
        ref = c_in[lo:hi:max(1, (hi - lo) // _OUTLINE_REFS)]
        here = edge[bin_edge == b]
        out[here] = lengths(colours[here][:, None] - ref[None]).min(axis=1)
    return out


def limb_outline_keep(view: _View, posed: np.ndarray, positions: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                      colours: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the limb vertices along a limb's projected outline whose photo colour the limb shows
    nowhere else at that place along it: the neighbouring region seen because the fitted limb lies a few pixels
    off the photo's (a raised thigh over the shorts, dev photo icon_22097467; a hanging hand over the trousers).
    ``view`` with its parts set (:meth:`_View.set_parts`); ``posed`` (N, 3) the vertices in the photo's pose and
    ``positions`` (N, 3) where they are compared along the limb (the rest pose, where a limb is straight; metres);
    ``alpha`` (N,) photo weights; ``colours`` (N, 3) photo colours (0–255).

    For each limb (:data:`REGISTRATION_PARTS`), a seen vertex whose pixel lies within :data:`OUTLINE_UNCERTAINTY` ×
    the person's height of a pixel the limb's surface does not cover is on the outline; the others are its
    interior. An outline vertex is dropped when interior vertices lie within :data:`PROFILE_WINDOW` × the mesh's
    height of it along the limb's axis (the principal axis of its ``positions``) and its colour lies farther than
    :data:`OUTLINE_MIN_RGB` from all of them: a garment runs around the limb (a hem is a ring), so a colour only
    its outline shows is the neighbour's. A stripe or print seen inside the limb at that place is kept."""
    import cv2

    keep = np.ones(len(posed), dtype=bool)
    if view.face_part is None:
        return keep
    cam = view.camera
    col = np.asarray(colours, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    _, _, inside, pix = _pixels(cam, posed)
    front = view.layers.face
    shown = np.where(front >= 0, view.face_part[np.maximum(front, 0)], -1)
    rows = np.nonzero((shown >= 0).reshape(cam.height, cam.width).any(axis=1))[0]
    if not len(rows):
        return keep
    band = OUTLINE_UNCERTAINTY * float(rows[-1] - rows[0] + 1)
    window = colour_stats.PROFILE_WINDOW * (float(np.ptp(pos[:, 1])) or 1.0)
    seen = (alpha > sampling.SEEN_ALPHA) & inside
    for part in REGISTRATION_PARTS:
        mine = np.nonzero(seen & (parts == part))[0]
        if len(mine) < colour_stats.PROFILE_MIN_SAMPLES:
            continue
        to_edge = cv2.distanceTransform((shown == part).reshape(cam.height, cam.width).astype(np.uint8),
                                        cv2.DIST_L2, 3).reshape(-1)[pix[mine]]
        interior = (to_edge > band) & (shown[pix[mine]] == part)
        if interior.sum() < colour_stats.PROFILE_MIN_SAMPLES or interior.all():
            continue
        far = _interior_distance(pos[mine] @ _part_axis(pos, parts, part), col[mine], interior, window)
        keep[mine[far > OUTLINE_MIN_RGB]] = False
    return keep


#: Occluder edges (:func:`occluder_edge_keep`): a seen sample whose pixel lies within OCCLUDER_BAND × the person's
#: height in the photo (a square window) of the projection of another part's surface lying more than
#: OCCLUDER_DEPTH metres nearer the camera may show that occluder instead (the photo's limb a few pixels wider or
#: off the fitted one); it is dropped when its colour lies farther than OUTLINE_MIN_RGB from every sample of its
#: part away from such edges at the same place along the part.
OCCLUDER_BAND = 0.03
OCCLUDER_DEPTH = 0.08
#: A hidden vertex lies *behind another part* (:func:`behind_other_part`) when the surface its pixel shows belongs
#: to another part and lies more than this (metres) nearer the camera: a forearm across the chest, a hand on a hip
#: or over the face (parts touching at a seam lie at about the same depth).
BEHIND_DEPTH = 0.03
#: Seen vertices within this fraction of the person's height (rest pose) of a region hidden behind another part
#: fade from their photo colour to their part's fill (:func:`behind_fade`): the occluder's shadow and colour bleed
#: at its outline do not draw the limb's shape on the body once the limb has moved away.
BEHIND_FADE = 0.04
#: ... unless the part would keep fewer than this share of its seen vertices unfaded.
BEHIND_MIN_KEPT = 0.5


def _nearby_distance(xy: np.ndarray, colours: np.ndarray, ref_xy: np.ndarray, ref_colours: np.ndarray,
                     reach: float, k: int = 16) -> np.ndarray:
    """(N,) RGB distance (0–255) from each point (pixels ``xy`` (N, 2), ``colours`` (N, 3)) to the nearest in colour
    of the ``k`` reference samples (``ref_xy`` (R, 2), ``ref_colours`` (R, 3)) nearest to it in the image within
    ``reach`` pixels; inf where none lies that near."""
    from scipy.spatial import cKDTree

    dist, near = cKDTree(ref_xy).query(xy, k=min(k, len(ref_xy)), distance_upper_bound=reach)
    dist, near = dist.reshape(len(xy), -1), near.reshape(len(xy), -1)
    ok = np.isfinite(dist)
    ref = np.take(ref_colours, np.where(ok, near, 0), axis=0)
    return np.where(ok, lengths(ref - colours[:, None]), np.inf).min(axis=1)


def _parts_image(view: _View, posed: np.ndarray, alpha: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray] | None:
    """What the keeps that compare a vertex with the parts around its pixel read from the photo's view (``view``
    with its parts set; ``posed`` (N, 3) the vertices in the photo's pose, ``alpha`` (N,) photo weights): (pixel
    coordinates (N, 2), camera depths (N,), flat pixel indices (N,), the part the nearest surface shows at each
    pixel (H·W,) (−1: none), the person's height in the photo (px: the rows any part shows), seen (N,) bool);
    None without parts, without any part shown or without a seen vertex."""
    if view.face_part is None:
        return None
    xy, z, inside, pix = _pixels(view.camera, posed)
    front = view.layers.face
    shown = np.where(front >= 0, view.face_part[np.maximum(front, 0)], -1)
    rows = np.nonzero((shown >= 0).reshape(view.camera.height, view.camera.width).any(axis=1))[0]
    seen = (alpha > sampling.SEEN_ALPHA) & inside
    if not len(rows) or not seen.any():
        return None
    return xy, z, pix, shown, float(rows[-1] - rows[0] + 1), seen


def occluder_edge_keep(view: _View, posed: np.ndarray, positions: np.ndarray, parts: np.ndarray,
                       alpha: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the seen vertices next to the outline of a part lying well in front of them whose
    photo colour their own part shows nowhere away from such outlines at that place: the occluder's colour, read
    because the photo's occluder is wider or lies a few pixels off the fitted one (icon_22097467: the crotch of
    the shorts beside the raised thigh takes the thigh's skin, which the shorts' front then inherits through the
    fill). ``view`` with its parts set (:meth:`_View.set_parts`); ``posed`` (N, 3) the vertices in the photo's
    pose, ``positions`` (N, 3) where they are compared along their part (the rest pose; metres); ``alpha`` (N,)
    photo weights; ``colours`` (N, 3) photo colours (0–255).

    A seen vertex is *at an occluder's edge* when, within :data:`OCCLUDER_BAND` × the person's height (pixels,
    square window) of its pixel, the nearest surface belongs to another part and lies more than
    :data:`OCCLUDER_DEPTH` in front of the vertex: a limb crossing in front of the body. (A neighbour touching it
    across a seam lies at its depth; the crotch is next to both thighs on the mesh, so the raised thigh is told by
    its depth, not by the mesh's adjacency.) Per part, the seen vertices not at such an edge are its trusted
    samples; a vertex at an edge is dropped when its colour lies farther than :data:`OUTLINE_MIN_RGB` from all of
    them at its place along the part (:func:`_interior_distance`; none there: kept) and nearer to a sample the
    occluder shows nearby than to them (its own seen vertices whose pixel shows it, within twice the band, as its
    outline's vertices are not seen: :func:`_nearby_distance`). The sample then looks like the occluder, or a
    blend of the two at its outline, not like its own part (a hand on the head keeps its skin). Every part, the
    torso and head too: the occluded part is the one whose samples go wrong. A dropped vertex takes its part's
    fill like a hidden one."""
    import cv2

    keep = np.ones(len(posed), dtype=bool)
    image = _parts_image(view, posed, alpha)
    if image is None:
        return keep
    xy, z, pix, shown, height_px, seen = image
    h, w = view.camera.height, view.camera.width
    reach = max(1, int(round(OCCLUDER_BAND * height_px)))
    grow = np.ones((2 * reach + 1,) * 2, dtype=np.uint8)
    zbuf = view.layers.zbuf
    col = np.asarray(colours, dtype=np.float64)
    at_edge = np.zeros(len(posed), dtype=bool)
    to_occluder = np.full(len(posed), np.inf)  # RGB distance to the nearest-coloured occluder sample nearby
    idx = np.nonzero(seen)[0]
    for part in np.unique(shown[shown >= 0]):
        cand = idx[parts[idx] != part]
        if not len(cand):
            continue
        # nearest depth of this part's surface within the window (a min filter: erosion of a float image)
        depth = np.where(shown == part, zbuf, np.inf).astype(np.float32).reshape(h, w)
        nearest = cv2.erode(np.where(np.isfinite(depth), depth, np.float32(1e6)), grow).reshape(-1)
        cand = cand[nearest[pix[cand]] < z[cand] - OCCLUDER_DEPTH]
        occluder = np.nonzero(seen & (parts == part) & (shown[pix] == part))[0]
        if not len(cand) or not len(occluder):
            continue
        at_edge[cand] = True
        to_occluder[cand] = np.minimum(to_occluder[cand],
                                       _nearby_distance(xy[cand], col[cand], xy[occluder], col[occluder],
                                                        2 * reach))
    if not np.isfinite(to_occluder).any():
        return keep
    pos = np.asarray(positions, dtype=np.float64)
    window = colour_stats.PROFILE_WINDOW * (float(np.ptp(pos[:, 1])) or 1.0)
    for part in np.unique(parts[np.isfinite(to_occluder)]):
        mine = np.nonzero(seen & (parts == part))[0]
        if len(mine) < colour_stats.PROFILE_MIN_SAMPLES:
            continue
        axis = _profile_axis(pos, parts, int(part))
        to_own = _interior_distance(pos[mine] @ axis, col[mine], ~at_edge[mine], window)
        keep[mine[(to_own > OUTLINE_MIN_RGB) & (to_occluder[mine] < to_own)]] = False
    return keep


#: A limb in front of the body (:func:`limb_front_keep`): the band (fraction of the person's height in the photo)
#: along the outline of a limb lying more than OCCLUDER_DEPTH in front of the part beside it in the photo, where the
#: photo may show that part instead (the clothed limb's outline wider than the photo's limb: icon_22097467's raised
#: thigh lies up to 28 px of a 546 px person over the waistband) ...
LIMB_FRONT_BAND = 0.06
#: ... the part beside the limb is behind it when its farthest surface within this many pixels of the nearest pixel
#: showing it is (at a seam the part's own surface next to the limb lies at the limb's depth) ...
SEAM_PIXELS = 3
#: ... and a sample over the part whose colour is neither the limb's nor the part's nearby goes with the samples
#: over the part within this share of the band when most of them were dropped (the lettering of the waistband the
#: thigh's outline shows).
FOREIGN_NEIGHBOURHOOD = 0.25


def limb_front_keep(view: _View, posed: np.ndarray, positions: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                    colours: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the limb vertices along the outline of a limb lying in front of another part whose
    photo colour is that part's: the clothed limb's outline is wider than the photo's limb, or lies off it, and
    its band over the body shows the body (icon_22097467: a raised thigh's upper outline over the waistband, a
    black streak down the thigh's front in the rest pose). ``view`` with its parts set (:meth:`_View.set_parts`);
    ``posed`` (N, 3) the vertices in the photo's pose, ``positions`` (N, 3) where they are compared along their limb
    (the rest pose; metres); ``alpha`` (N,) photo weights; ``colours`` (N, 3) photo colours (0–255).

    A limb's seen vertex (:data:`REGISTRATION_PARTS`, its pixel showing its own surface) is *over* the part its
    nearest pixel of another part shows when that pixel lies within :data:`LIMB_FRONT_BAND` × the person's height of
    its pixel and the farthest surface of the other parts within :data:`SEAM_PIXELS` of it lies more than
    :data:`OCCLUDER_DEPTH` behind the vertex. The band may be as wide as the limb, so the samples over a part are
    judged from the limb's middle outwards: per limb and place along it (bins of half a :data:`PROFILE_WINDOW`, each
    with the two next to it, as :func:`_interior_distance`), in order of their distance to the part behind,
    farthest first, a sample over a part is *the limb's own* when its colour lies
    within :data:`OUTLINE_MIN_RGB` of a sample of the limb's own there that is not over a part or lies farther from
    it; otherwise it is dropped when its colour is nearer to a sample the part behind shows nearby (within twice
    the band; :func:`_nearby_distance`). A colour the limb shows right across itself at that place (shorts over the
    thigh's top, a sleeve) is kept; one that reaches in only from the outline over the body, and is the body's
    colour there, is the body's. A sample like neither goes with the samples over the part around it
    (:data:`FOREIGN_NEIGHBOURHOOD`) when most of them were dropped. Without any sample of its own there the limb
    keeps its samples (no evidence). A dropped vertex takes its limb's fill like a hidden one."""
    keep = np.ones(len(posed), dtype=bool)
    image = _parts_image(view, posed, alpha)
    if image is None:
        return keep
    xy, z, pix, shown, height_px, seen = image
    band = LIMB_FRONT_BAND * height_px
    col = np.asarray(colours, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    window = colour_stats.PROFILE_WINDOW * (float(np.ptp(pos[:, 1])) or 1.0)
    import cv2

    h, w = view.camera.height, view.camera.width
    for limb in REGISTRATION_PARTS:
        mine = np.nonzero(seen & (parts == limb) & (shown[pix] == limb))[0]
        others = (shown >= 0) & (shown != limb)
        if len(mine) < colour_stats.PROFILE_MIN_SAMPLES or not others.any():
            continue
        # each pixel's distance to the nearest pixel showing another part, and that pixel (its label's)
        dist, label = cv2.distanceTransformWithLabels((~others).reshape(h, w).astype(np.uint8), cv2.DIST_L2, 5,
                                                      labelType=cv2.DIST_LABEL_PIXEL)
        label = label.reshape(-1)
        at = np.zeros(int(label.max()) + 1, dtype=np.int64)
        at[label[others]] = np.nonzero(others)[0]
        nearest = at[label[pix[mine]]]
        d = dist.reshape(-1)[pix[mine]]
        # the farthest surface of another part within a few pixels of that pixel (the seam's own surface next to
        # the part behind it does not hide the part)
        far = np.where(others, view.layers.zbuf, 0.0).astype(np.float32).reshape(h, w)
        far = cv2.dilate(far, np.ones((2 * SEAM_PIXELS + 1,) * 2, dtype=np.uint8)).reshape(-1)
        over = (d <= band) & (far[nearest] > z[mine] + OCCLUDER_DEPTH)
        if not over.any() or over.all():
            continue
        to_part = np.full(len(mine), np.inf)  # RGB distance to the nearest-coloured sample of the part behind
        for part in np.unique(shown[nearest[over]]):
            cand = np.nonzero(over & (shown[nearest] == part))[0]
            ref = np.nonzero(seen & (parts == part) & (shown[pix] == part))[0]
            if len(ref):
                to_part[cand] = _nearby_distance(xy[mine[cand]], col[mine[cand]], xy[ref], col[ref], 2 * band)
        bins = np.floor((pos[mine] @ _part_axis(pos, parts, limb)) / (0.5 * window)).astype(np.int64)
        own = ~over  # the limb's own colours: its samples not over a part, and those over one that match them
        dropped = np.zeros(len(mine), dtype=bool)
        for b in np.unique(bins[over]):
            pool = np.nonzero(np.abs(bins - b) <= 1)[0]
            here = np.nonzero(over & (bins == b))[0]
            for i in here[np.argsort(-d[here])]:  # farthest from the part behind first
                ref = pool[own[pool] & (~over[pool] | (d[pool] > d[i]))]
                if not len(ref):
                    continue  # no evidence
                to_own = float(np.linalg.norm(col[mine[ref]] - col[mine[i]], axis=1).min())
                own[i] = to_own <= OUTLINE_MIN_RGB
                dropped[i] = not own[i] and to_part[i] < to_own
        # an unexplained colour (neither the limb's nor, nearby, the part's) amid the part's samples is the part's
        # own detail (a waistband's lettering): it goes with them
        odd = np.nonzero(over & ~own & ~dropped)[0]
        if len(odd) and dropped.any():
            from scipy.spatial import cKDTree

            over_idx = np.nonzero(over)[0]
            near = cKDTree(xy[mine[over_idx]]).query_ball_point(xy[mine[odd]], r=FOREIGN_NEIGHBOURHOOD * band)
            share = np.array([dropped[over_idx[n]].mean() if len(n) else 0.0 for n in near])
            dropped[odd[share > 0.5]] = True
        keep[mine[dropped]] = False
    return keep


def behind_other_part(view: _View, posed: np.ndarray, view_cos: np.ndarray, parts: np.ndarray,
                      alpha: np.ndarray) -> np.ndarray:
    """(N,) bool: the vertices (``posed`` (N, 3) in the photo's pose, ``parts`` (N,)) facing the camera
    (``view_cos`` (N,) > 0, as :func:`_view_cos_own` gives it) that the photo does not see (``alpha`` ≤
    :data:`SEEN_ALPHA`) because the surface their pixel shows belongs to another part lying more than
    :data:`BEHIND_DEPTH` nearer the camera (``view`` with its parts set): the chest behind crossed forearms, a hip
    under a hand, a face behind a hand. In the rest pose these face the viewer with nothing in front of them."""
    out = np.zeros(len(posed), dtype=bool)
    if view.face_part is None:
        return out
    _, z, inside, pix = _pixels(view.camera, posed)
    front = view.layers.face[pix]
    other = inside & (front >= 0) & (view.face_part[np.maximum(front, 0)] != parts)
    other &= view_cos > 0.0
    return other & (view.layers.zbuf[pix] < z - BEHIND_DEPTH) & (alpha <= sampling.SEEN_ALPHA)


def behind_fade(positions: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                behind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much of its photo colour each seen vertex keeps next to a region of its own part hidden behind another
    part (``behind`` (N,) bool, :func:`behind_other_part`): 0 at the region, rising linearly to 1 at
    :data:`BEHIND_FADE` × the person's height (``positions`` (N, 3), the rest pose, metres). The photo there shows
    the occluder's shadow and its outline's colour; the vertex takes its part's fill instead, so the limb leaves no
    outline on the body when it moves. A part that would keep under :data:`BEHIND_MIN_KEPT` of its seen vertices
    unfaded (a head mostly behind a raised arm) is left as it was: its few samples could not make its profile.
    Returns (``behind`` without those parts (N,) bool, fade (N,) float in [0, 1], 1 everywhere else)."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    behind = np.asarray(behind, dtype=bool).copy()
    fade = np.ones(len(pos))
    reach = BEHIND_FADE * (float(np.ptp(pos[:, 1])) or 1.0)
    seen = alpha > sampling.SEEN_ALPHA
    for part in np.unique(parts[behind]):
        mine = np.nonzero(seen & (parts == part))[0]
        if not len(mine):
            continue
        dist = cKDTree(pos[behind & (parts == part)]).query(pos[mine], k=1, distance_upper_bound=reach)[0]
        if (dist >= reach).mean() < BEHIND_MIN_KEPT:
            behind[parts == part] = False
            continue
        fade[mine] = np.clip(dist / reach, 0.0, 1.0)
    return behind, fade


#: The photo's hands (:func:`under_photo_hand`): the zone round each hand's landmarks is their hull grown by this
#: share of the hand's size in the photo (the fingers beyond the landmarks, the hand's outline) ...
PHOTO_HAND_GROW = 0.1
#: ... and a surface point there lies under the photo's hand unless it is more than this (metres) nearer the camera
#: than the fitted hand (a face in front of hands clasped behind the head) ...
PHOTO_HAND_FRONT_M = 0.05
#: ... or, off the head, its photo colour is nearer the hand's than its part's and the two lie at least this far
#: apart (RGB, 0–255): the fit put the hand well behind what the photo shows it lying on (icon_8da7ceb9's hand on
#: his knee, fitted 18 cm behind it), and a trouser leg cannot look like the hand's skin unless the hand is there.
PHOTO_HAND_COLOUR_GAP = 40.0


def under_photo_hand(view: _View, posed: np.ndarray, parts: np.ndarray, hands: np.ndarray,
                     photo_hands: dict[str, np.ndarray], alpha: np.ndarray,
                     colours: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the seen vertices (``alpha`` > :data:`SEEN_ALPHA`) of the other parts whose pixel lies under a
    hand the photo shows: a hand on the forehead, on a cheek, on a hip. The fit rarely puts the hand exactly where
    the photo has it, so those vertices look seen and would take the hand's skin (dev photos icon_44c0f84c, a hand
    across the forehead; icon_8da7ceb9, a cheek resting on a hand): the hand's print would stay on the face once
    the hand moves. ``posed`` (N, 3) the vertices in the photo's pose; ``parts`` (N,) (:data:`PART_NAMES`);
    ``hands`` (N,) the hand labels (:func:`hand_labels_from_skin_weights`); ``photo_hands`` ``{"left"|"right":
    (21, ≥ 2)}`` the photo's hand landmarks (processing pixels, MediaPipe order).

    A hand's zone is its landmarks' hull grown by :data:`PHOTO_HAND_GROW` × its size (:func:`hull_zone`). A
    vertex under it is neither of that hand's arm nor of a hand, and it is not more than
    :data:`PHOTO_HAND_FRONT_M` nearer the camera than the fitted hand (the median depth of its vertices): what lies
    well in front of the hand in the fit (a face before hands clasped behind the head) still shows itself, unless
    (``colours`` (N, 3), the vertices' photo colours, 0–255) it is not of the head and its colour says the photo's
    hand lies on it: nearer the hand's colour (the photo's median at its landmarks) than its part's (the median of
    the part's seen samples outside the hands' zones), the two at least :data:`PHOTO_HAND_COLOUR_GAP` apart. The
    head keeps the depth rule alone: a face's skin cannot be told from a hand's."""
    out = np.zeros(len(posed), dtype=bool)
    if not photo_hands:
        return out
    cam = view.camera
    _, z, inside, pix = _pixels(cam, posed)
    seen = (alpha > sampling.SEEN_ALPHA) & inside & (hands == 0)
    zones = {side: hull_zone((cam.height, cam.width), np.asarray(points, np.float64)[:, :2],
                             PHOTO_HAND_GROW).reshape(-1)[pix] for side, points in photo_hands.items()}
    own = to_own = None  # each vertex's part colour (NaN: none seen) and its colour's distance to it
    if colours is not None:
        outside = seen & ~np.any(list(zones.values()), axis=0)
        part_colour = np.full((int(parts.max()) + 1, 3), np.nan)
        for p in np.unique(parts[outside]):
            part_colour[p] = np.median(colours[outside & (parts == p)], axis=0)
        own = part_colour[parts]
        to_own = np.linalg.norm(colours - own, axis=1)
    for side, points in photo_hands.items():
        fitted = np.isin(hands, (HAND_PALM[side], HAND_FINGERS[side]))
        if not fitted.any():
            continue
        arm = PART_LEFT_ARM if side == "left" else PART_RIGHT_ARM
        hand_z = float(np.median(z[fitted]))
        lies_on = z > hand_z - PHOTO_HAND_FRONT_M
        if own is not None:
            hand_colour = np.median(bilinear(view.photo, np.asarray(points, np.float64)[:, :2]), axis=0)
            with np.errstate(invalid="ignore"):
                lies_on |= ((parts != PART_HEAD)
                            & (np.linalg.norm(own - hand_colour, axis=1) >= PHOTO_HAND_COLOUR_GAP)
                            & (np.linalg.norm(colours - hand_colour, axis=1) < to_own))
        out |= seen & (parts != arm) & zones[side] & lies_on
    return out


#: Limb alignment (:func:`limb_alignment`): each limb's joint chain, root first, as (SMPL-X joint, BlazePose
#: landmark) pairs (bundle.skeleton.JOINT_NAMES / person.LANDMARK_NAMES: shoulder, elbow, wrist; hip, knee, ankle).
LIMB_CHAINS: dict[int, tuple[tuple[int, int], ...]] = {
    PART_LEFT_ARM: ((16, 11), (18, 13), (20, 15)), PART_RIGHT_ARM: ((17, 12), (19, 14), (21, 16)),
    PART_LEFT_LEG: ((1, 23), (4, 25), (7, 27)), PART_RIGHT_LEG: ((2, 24), (5, 26), (8, 28)),
}
#: ... a landmark counts with at least this BlazePose visibility; a joint's 2-D offset is shortened by
#: LIMB_DEAD_ZONE (BlazePose's knee/ankle and SMPL-X's differ by up to ~1.5 % of the height on well-fitted
#: synthetic subjects: a definition difference, not a misregistration) and capped at LIMB_MAX_SHIFT, both
#: fractions of the person's height in the photo (pixels).
LIMB_MIN_VISIBILITY = 0.5
LIMB_DEAD_ZONE = 0.015
LIMB_MAX_SHIFT = 0.06


def limb_alignment(camera: Camera, posed: np.ndarray, parts: np.ndarray, keypoints: np.ndarray,
                   joints: np.ndarray, height_px: float) -> np.ndarray:
    """(N, 2) float32 pixel offsets that move where each limb vertex reads the photo onto the photo's limb: the fit
    leaves a limb 20–30 px off (icon_028009's raised forearm over the hair; a jumper's front thigh), and its samples
    would show what lies beside it. ``camera`` the photo's (processing pixels); ``posed`` (N, 3) the vertices in the
    photo's pose and ``joints`` (≥ 22, 3) the fitted posed SMPL-X joints (bundle world, metres); ``parts`` (N,)
    (:data:`PART_NAMES`); ``keypoints`` (33, 3) BlazePose landmarks (x, y pixels, visibility); ``height_px`` the
    person's height in the photo (pixels).

    Per limb (:data:`LIMB_CHAINS`), each joint's offset is its landmark minus its projection, shortened by
    :data:`LIMB_DEAD_ZONE` × ``height_px`` (zero when shorter) and capped at :data:`LIMB_MAX_SHIFT` ×
    ``height_px``; the root joint's (shoulder, hip) is zero so the seam with the torso stays put. The middle
    joint (elbow, knee) takes its offset where it and the root's landmark are confident
    (:data:`LIMB_MIN_VISIBILITY`), else none; the end joint (wrist, ankle) where it and the middle one's are, else
    the middle joint's. A vertex takes the offset blended linearly between the two joints of its nearest segment
    (3-D, posed) at its position along it; beyond the end joint (hand, foot) the end joint's. Zero elsewhere."""
    kp = np.asarray(keypoints, dtype=np.float64)
    jt = np.asarray(joints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] < 33 or kp.shape[1] < 3 or jt.ndim != 2 or jt.shape[0] < 22 or jt.shape[1] != 3:
        raise EngineError("internal", f"Limb keypoints {kp.shape} / joints {jt.shape} are not BlazePose's (33, 3) "
                          "and SMPL-X's (55, 3).", "Pass observation.keypoints and fit.joints.")
    out = np.zeros((len(posed), 2), dtype=np.float32)
    cap, dead = LIMB_MAX_SHIFT * float(height_px), LIMB_DEAD_ZONE * float(height_px)
    for part, chain in LIMB_CHAINS.items():
        sel = np.nonzero(parts == part)[0]
        if not len(sel):
            continue
        jid, lid = [c[0] for c in chain], [c[1] for c in chain]
        proj, z = camera.project(jt[jid])
        ok = (kp[lid, 2] >= LIMB_MIN_VISIBILITY) & (z > 1e-4) & np.isfinite(kp[lid, :2]).all(axis=1)
        d = kp[lid, :2] - proj
        length = np.linalg.norm(d, axis=1)
        d *= (np.clip(length - dead, 0.0, cap) / np.maximum(length, 1e-9))[:, None]
        d_mid = d[1] if ok[0] and ok[1] else np.zeros(2)
        d_end = d[2] if ok[1] and ok[2] else d_mid
        if not (d_mid.any() or d_end.any()):
            continue
        ends = ((np.zeros(2), d_mid), (d_mid, d_end))
        p = posed[sel]
        best = np.full(len(sel), np.inf)
        for k, (a, b) in enumerate(((jt[jid[0]], jt[jid[1]]), (jt[jid[1]], jt[jid[2]]))):
            ab = b - a
            t = np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
            dist = np.linalg.norm(p - (a + t[:, None] * ab), axis=1)
            closer = dist < best
            best = np.where(closer, dist, best)
            off = (1 - t)[:, None] * ends[k][0] + t[:, None] * ends[k][1]
            out[sel[closer]] = off[closer]
    return out


#: A limb with seen vertices below this fraction of its own, whose counterpart shows at least
#: :data:`UNSHOWN_RATIO` times that fraction, counts as not shown (:func:`unshown_limb_keep`).
UNSHOWN_FRACTION = 0.05
UNSHOWN_RATIO = 4.0
#: Fingers (the body model's, grafted onto the avatar: docs/method.md, "The canonical avatar", step 4) keep a photo
#: sample only when it looks like their hand: a finger vertex whose sample lies more than FINGER_COLOUR (RGB,
#: 0–255) from the median of its hand's seen palm samples drops it and takes the fill, its hand's colour. Fingers
#: fitted a little off the photo's read the background between the photo's fingers, which the person mask drawn
#: round a spread hand holds (icon_fb9d20fd's raised hand against the sky: blue fingertips).
FINGER_COLOUR = 60.0
#: Seen palm samples a hand needs before its fingers are judged.
FINGER_MIN_PALM = 10


def finger_colour_keep(hands: np.ndarray, alpha: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """(N,) bool: False for the finger vertices (``hands`` (N,) of :func:`hand_labels_from_skin_weights`) whose
    photo sample (``photo`` (N, 3), weight ``alpha`` (N,)) lies more than :data:`FINGER_COLOUR` from their hand's
    median seen palm colour; True elsewhere (and for a hand with fewer than :data:`FINGER_MIN_PALM` seen palm
    vertices)."""
    keep = np.ones(len(hands), dtype=bool)
    for side in ("left", "right"):
        palm = (hands == HAND_PALM[side]) & (alpha > sampling.SEEN_ALPHA)
        if palm.sum() < FINGER_MIN_PALM:
            continue
        reference = np.median(photo[palm], axis=0)
        fingers = np.nonzero((hands == HAND_FINGERS[side]) & (alpha > 0))[0]
        keep[fingers] = np.linalg.norm(photo[fingers] - reference, axis=1) <= FINGER_COLOUR
    return keep


def unshown_limb_keep(parts: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(N,) bool: False for every vertex of a limb the photo barely shows — seen vertices (``alpha`` (N,) >
    :data:`SEEN_ALPHA`) under :data:`UNSHOWN_FRACTION` of the limb's, while its counterpart
    (:data:`LIMB_COUNTERPART`) shows :data:`UNSHOWN_RATIO` times that share. What such a limb shows are slivers
    along its outline, where the fitted limb lying a few pixels off the photo's lets the background or the limb
    in front through (dev photo icon_923d65f7, a backflip seen from the side: the far leg's slivers show the dark
    doorway, and its profile turned the whole grey trouser leg black); it then takes its counterpart's profile
    whole (:func:`counterpart_limb_fill`)."""
    keep = np.ones(len(parts), dtype=bool)
    seen = alpha > sampling.SEEN_ALPHA
    share = {p: float(seen[parts == p].mean()) if (parts == p).any() else 0.0 for p in LIMB_COUNTERPART}
    for part, other in LIMB_COUNTERPART.items():
        if share[part] < UNSHOWN_FRACTION and share[other] >= UNSHOWN_RATIO * max(share[part], 1e-3):
            keep[parts == part] = False
    return keep
