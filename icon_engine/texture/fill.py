"""The unseen sides: each part's colour profile along its axis, hair, counterpart limbs and the seam blend.

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..camera import Camera
from ..geometry.lengths import lengths
from . import colour_stats, sampling
from .colour_stats import (
    _colour_clusters,
    _hair_colour,
    _smooth_on_mesh,
    _weighted_median,
    harmonic_fill,
)
from .face_mirror import reflect
from .parts import (
    LIMB_COUNTERPART,
    PART_HEAD,
    PART_LEFT_ARM,
    PART_LEFT_LEG,
    PART_NAMES,
    PART_RIGHT_ARM,
    PART_RIGHT_LEG,
    PART_TORSO,
    _limb_end,
    _limb_fraction,
    _profile_axis,
    _same_part_faces,
)

#: Exponent of the profile's preference for seen samples towards the silhouette: weight (1.05 − cos)^p.
SIDE_WEIGHT_POWER = 1.0
#: RGB radius (0–255) around the winning cluster's median whose samples set the profile colour (plain median).
PROFILE_MODE_RADIUS = 90.0
#: ... and whose hue and saturation lie within this of the cluster median's (:func:`_chroma`): the garment's lit
#: and shaded samples, not a print's pale edges of another hue.
PROFILE_MODE_CHROMA = 0.06
#: Those samples' colour is their median weighted by (cosine to the camera) ** FACE_ON_POWER (and their light): the
#: garment as the photo shows it face-on sets the hidden side's brightness, not its shaded flanks, which the
#: side-weighted clusters are mostly made of (:func:`unseen_side_fill`).
FACE_ON_POWER = 2.0
#: Brightness (mean of R, G, B, 0–255) below which :func:`_chroma` measures a colour's deviation from grey against
#: this instead of its own brightness (a dark colour's hue is noise).
CHROMA_FLOOR = 60.0
#: Share of a profile window's (side-weighted) samples from which a colour cluster counts as present there.
PROFILE_MIN_SHARE = 0.2
#: At each position the cluster with the largest share × persistence ** PROFILE_PERSISTENCE_POWER wins: a garment
#: seen along most of the part beats a print that covers most of one band.
PROFILE_PERSISTENCE_POWER = 2.0
#: The profile is a running median over ± this many windows (:func:`_steady_runs`): the hidden side of a garment
#: takes no rings from the folds and shadows the photo shows at one height.
PROFILE_STEADY_WINDOWS = 4
#: A profile sample in the photo's shadow (:mod:`icon_engine.lighting`: brightness below the median, factor < 1)
#: weighs factor ** SHADOW_POWER (:func:`unseen_side_fill`). 3 since wave 27 (2 before): icon_fb9d20fd's grey shirt,
#: seen from behind with its underside in the sun's shadow, took the shadow's brown across the chest and the back
#: at rest once its mesh changed (the legs apart in the canonical pose); the rendered set's back errors unchanged.
SHADOW_POWER = 3.0
#: Width (fraction of the mesh's height) of the band between the seen and the filled side that is blended
#: harmonically, so the front/back boundary shows no seam.
SEAM_BAND = 0.025
#: The head part's lower part (fraction of its height from its lowest point: the neck) keeps the profile fill;
#: above it the hidden side takes the hair colour.
HAIR_FROM = 0.3
#: Hidden head vertices facing the camera more than this (cosine of the view angle) keep the profile, not the hair:
#: the front of a face the photo's frame cut off (icon_003883) is skin, its back and sides hair.
HAIR_MAX_COS = 0.3
#: ... below this fraction of the head's height from its lowest point (above it, the skull: hair all round).
HAIR_SKULL = 0.75
#: A limb's end (fraction of the mesh's height from its far end along the limb: a foot with its shoe, a hand)
#: takes the local majority colour in its profile (:func:`_colour_profile`), not the colour persistent along the limb.
LIMB_END = 0.06


def _chroma(colours: np.ndarray) -> np.ndarray:
    """(..., 3) each colour's deviation from the grey of its brightness, relative to that brightness (at least
    :data:`CHROMA_FLOOR`): hue and saturation without the shading's brightness."""
    c = np.asarray(colours, dtype=np.float64)
    mean = c.mean(axis=-1, keepdims=True)
    return (c - mean) / np.maximum(mean, CHROMA_FLOOR)


def _colour_profile(s_seen: np.ndarray, colours: np.ndarray, weights: np.ndarray, s_query: np.ndarray,
                    window: float, end_band: tuple[float, float] | None = None,
                    colour_weights: np.ndarray | None = None) -> np.ndarray:
    """Garment colour (C,) at each query position along an axis from the seen samples within ``window`` (metres)
    (at least :data:`PROFILE_MIN_SAMPLES` nearest ones). The part's seen colours are clustered
    (:func:`_colour_clusters`); a cluster's **persistence** is the fraction of the positions where it holds at
    least :data:`PROFILE_MIN_SHARE` of the (``weights``-weighted: towards the silhouette, which continues into the
    back) samples. At each position the cluster with the largest share × persistence **
    :data:`PROFILE_PERSISTENCE_POWER` wins; the plain median of the window's samples within
    :data:`PROFILE_MODE_RADIUS` of that cluster's median, and of its hue (:func:`_chroma`, within
    :data:`PROFILE_MODE_CHROMA`; not at a limb's end), is the colour (the better lit front of that garment sets
    the brightness; a print's pale parts, near in RGB but of another hue, do not tint it); with
    ``colour_weights`` (K,) that median is weighted by them (:func:`unseen_side_fill`: the samples' facing). A
    garment runs along the part, a print or a face is a short band: where a print covers most of the seen width (a
    chest print between hanging arms), the shirt's persistence still wins, so the back gets the shirt (dev photo
    icon_003883). A pattern (stripes, checks) takes its winning colour here; the pattern itself is added back on the
    legs by :func:`_see_through_detail`. The profile is then a running median over ±
    :data:`PROFILE_STEADY_WINDOWS` windows (:func:`_steady_runs`), so the hidden side takes no rings from folds,
    shadows and the switch between a garment's lit and shaded clusters. Within ``end_band``
    (positions (low, high): a limb's end, the foot or the hand) persistence is measured within that band only: a
    shoe or a hand is a short band at the end of its limb, not a print, and the leg's skin or trousers, persistent
    along the whole leg, would otherwise take the heel. Evaluated on a grid and interpolated."""
    order = np.argsort(s_seen)
    s, c, w = s_seen[order], colours[order], weights[order]
    cw = None if colour_weights is None else np.asarray(colour_weights, dtype=np.float64)[order]
    lab = _colour_clusters(c, w)
    n_lab = int(lab.max()) + 1
    grid = np.arange(s_query.min() - window, s_query.max() + 2 * window, window / 2)
    grid = np.clip(grid, s[0], s[-1])
    k = min(colour_stats.PROFILE_MIN_SAMPLES, len(s))
    lo_all = np.searchsorted(s, grid - window)
    hi_all = np.searchsorted(s, grid + window)
    short = hi_all - lo_all < k  # widen to the k nearest samples
    mid = np.searchsorted(s, grid[short])
    hi_all[short] = np.minimum(len(s), np.maximum(0, mid - k // 2) + k)
    lo_all[short] = np.maximum(0, hi_all[short] - k)
    # ... and to every sample at the same position as the widened window's ends: which of several samples at one
    # position (a ring of vertices) came first in the sort must not decide the window (it differed between CPUs)
    lo_all[short] = np.searchsorted(s, s[lo_all[short]], side="left")
    hi_all[short] = np.searchsorted(s, s[hi_all[short] - 1], side="right")
    share = np.zeros((len(grid), n_lab))
    cum = np.zeros((len(s) + 1, n_lab))  # prefix sums of each cluster's weight along the axis
    cum[1:] = np.cumsum(np.eye(n_lab)[lab] * w[:, None], axis=0)
    share = cum[hi_all] - cum[lo_all]
    share /= np.maximum(share.sum(axis=1, keepdims=True), 1e-12)
    persistence = (share >= PROFILE_MIN_SHARE).mean(axis=0)
    best = np.argmax(share * persistence[None] ** PROFILE_PERSISTENCE_POWER, axis=1)
    end = np.zeros(len(grid), dtype=bool) if end_band is None else (grid >= end_band[0]) & (grid <= end_band[1])
    if end.any():  # a limb's end (foot, hand): persistence measured within that band (a shoe runs along the foot)
        end_persistence = (share[end] >= PROFILE_MIN_SHARE).mean(axis=0)
        best[end] = np.argmax(share[end] * end_persistence[None] ** PROFILE_PERSISTENCE_POWER, axis=1)
    prof = np.empty((len(grid), c.shape[1]))
    hue = _chroma(c)
    for g, (lo, hi) in enumerate(zip(lo_all, hi_all, strict=True)):
        own = c[lo:hi][lab[lo:hi] == best[g]]
        centre = np.median(own, axis=0) if len(own) else _weighted_median(c[lo:hi], w[lo:hi])
        # that garment's samples, all counted: the better lit front of it sets the brightness (its shaded sides
        # may form a cluster of their own)
        near = lengths(c[lo:hi] - centre) < PROFILE_MODE_RADIUS
        if not end[g]:  # along the part (not a shoe or a hand): the garment's hue, not a print's pale edges
            near &= lengths(hue[lo:hi] - _chroma(centre)) < PROFILE_MODE_CHROMA
        if near.sum() < 3:
            prof[g] = centre
        elif cw is None:
            prof[g] = np.median(c[lo:hi][near], axis=0)
        else:
            prof[g] = _weighted_median(c[lo:hi][near], cw[lo:hi][near])
    prof = _steady_runs(prof, ~end, PROFILE_STEADY_WINDOWS * 2)
    return np.stack([np.interp(s_query, grid, prof[:, ch]) for ch in range(c.shape[1])], axis=1)


def _steady_runs(prof: np.ndarray, keep: np.ndarray, half: int) -> np.ndarray:
    """``prof`` (G, C) along its grid, running median over ``2 half + 1`` positions on the ``keep`` (G,) positions
    (a limb's end band is left as it is; the ends repeat their value): a step from one garment to the next stays a
    step, a band shorter than about ``half`` positions (a fold's shadow or highlight the photo shows at one height,
    a switch between a garment's lit and shaded clusters) goes. The median of colours is the window's medoid (the
    colour with the least summed RGB distance to the others there), always one of the profile's own colours: a
    median per channel mixed the window's garments into one none of them has (icon_5a6a2596's forearm between the
    wrist's white tape, the skin and the grey sleeve: the skin's red with the sleeve's blue, a pink arm)."""
    from numpy.lib.stride_tricks import sliding_window_view

    out = prof.copy()
    idx = np.nonzero(keep)[0]
    if half < 1 or len(idx) < 3:
        return out
    padded = np.pad(prof[idx], ((half, half), (0, 0)), mode="edge")
    windows = sliding_window_view(padded, 2 * half + 1, axis=0).transpose(0, 2, 1)  # (n, 2 half + 1, C)
    spread = lengths(windows[:, :, None, :] - windows[:, None, :, :]).sum(axis=2)
    out[idx] = windows[np.arange(len(idx)), spread.argmin(axis=1)]
    return out


def _clear_first_profile(s_seen: np.ndarray, colours: np.ndarray, weights: np.ndarray, clear: np.ndarray,
                         s_query: np.ndarray, window: float, end_band: tuple[float, float] | None = None) -> np.ndarray:
    """:func:`_colour_profile` of the ``clear`` (bool per sample) samples at the query positions whose window holds
    at least :data:`BEHIND_CLEAR_MIN` of them, of all samples elsewhere (where an occluder's outline covers the
    part's whole seen width, its samples are all there is)."""
    out = _colour_profile(s_seen, colours, weights, s_query, window, end_band)
    if clear.all() or clear.sum() < BEHIND_CLEAR_MIN:
        return out
    s_clear = np.sort(s_seen[clear])
    ok = np.searchsorted(s_clear, s_query + window) - np.searchsorted(s_clear, s_query - window) >= BEHIND_CLEAR_MIN
    if ok.any():
        out[ok] = _colour_profile(s_seen[clear], colours[clear], weights[clear], s_query[ok], window, end_band)
    return out


#: The profile of a region behind another part is made of the samples away from the occluder's outline wherever
#: the profile's window holds at least this many of them (:func:`_clear_first_profile`).
BEHIND_CLEAR_MIN = 3
#: A head whose seen samples stop this far (fraction of the head's height) below its top was cut off by the photo's
#: frame or hidden: its hair was not seen (:func:`_unseen_hair_colour`).
HAIR_TOP_UNSEEN = 0.25
#: Hair colour (RGB, 0–255) of a head whose top was not seen and whose visible top shows no hairline: a dark
#: neutral brown (most hair; far less wrong than skin over the whole back of the head).
HAIR_FALLBACK = (45.0, 35.0, 30.0)


def _unseen_hair_colour(head_y: np.ndarray, points: np.ndarray, colours: np.ndarray,
                        clusters: tuple[np.ndarray | None, np.ndarray] | None = None) -> np.ndarray | None:
    """Hair colour (3,) for the hidden side of a head, or None (bald: keep the profile, skin). ``head_y`` (K,) the
    heights of all the head's vertices (metres, Y up), ``points`` (S, 3) / ``colours`` (S, 3) its seen ones.

    The hair cluster of :func:`_hair_colour` when the seen head shows both hair and face. When the seen samples
    stop more than :data:`HAIR_TOP_UNSEEN` of the head's height below its top (a head cut off by the photo's
    frame, icon_003883), a bald head cannot be told: the colour is the hairline's (the median of the seen top
    band's samples farther than 2 × :data:`HAIR_MIN_CONTRAST` from the face's skin, when at least 5), else
    :data:`HAIR_FALLBACK`, never the skin. ``clusters``: :func:`_hair_colour` of these samples when already known."""
    hair, skin = clusters if clusters is not None else _hair_colour(points, colours, upright=True)
    if hair is not None:
        return hair
    top, lo = float(head_y.max()), float(head_y.min())
    if float(np.percentile(points[:, 1], 98)) >= top - HAIR_TOP_UNSEEN * (top - lo):
        return None  # the top of the head was seen and shows no hair: bald
    y = points[:, 1]
    band = y >= y.max() - 0.2 * np.ptp(y)
    hairline = band & (np.linalg.norm(colours - skin, axis=1) > 2 * colour_stats.HAIR_MIN_CONTRAST)
    if hairline.sum() >= 5:
        return np.median(colours[hairline], axis=0)
    return np.asarray(HAIR_FALLBACK)


#: The front of the face (:func:`_face_front`): head vertices whose normal's cosine with the face's forward
#: direction is above the first value are skin in part, above the second fully (60° and 37°).
FACE_FRONT_COS = (0.5, 0.8)
#: ... fading to hair over this fraction of the head's height below the skull (:data:`HAIR_SKULL`).
FACE_FRONT_FADE = 0.1
#: Below the eyes (this fraction of the head part's height from its lowest vertex: the template's eyes lie at 0.59)
#: the cheeks and the jaw in front of the ears keep the head's profile (the colour the photo shows round the head
#: at that height: the seen cheek's skin, or a beard), never the hair colour, however far they turn to the side:
#: fully from FACE_JAW_FRONT_M in front of the head's middle depth at that height (the ears' plane), fading over
#: the same distance above the eyes' line (:func:`_jaw_front`; a side view's hidden cheek took the hair colour: a
#: sideburn from the temple to the jaw).
FACE_EYE_LINE = 0.6
FACE_JAW_FRONT_M = 0.03


def _face_front(vertices: np.ndarray, faces: np.ndarray, hid: np.ndarray, forward: np.ndarray,
                head: np.ndarray) -> np.ndarray:
    """(len(hid),) share in [0, 1] of the face's skin for each of the hidden head vertices ``hid``: 1 on the front
    of the face (normal of ``vertices`` (N, 3), the rest pose, facing ``forward`` (3,)) below the skull, fading to 0
    towards its sides and up to the skull. ``head`` (K,) the head's vertex indices."""
    from ..geometry.normals import vertex_normals

    forward = np.asarray(forward, dtype=np.float64)
    normals = np.asarray(vertex_normals(vertices, faces))[hid]
    facing = np.clip((normals @ forward - FACE_FRONT_COS[0]) / (FACE_FRONT_COS[1] - FACE_FRONT_COS[0]), 0.0, 1.0)
    head_y = vertices[head, 1]
    skull = head_y.min() + HAIR_SKULL * np.ptp(head_y)
    below = np.clip((skull - vertices[hid, 1]) / (FACE_FRONT_FADE * np.ptp(head_y)), 0.0, 1.0)
    return facing * below


def _jaw_front(vertices: np.ndarray, hid: np.ndarray, forward: np.ndarray, head: np.ndarray) -> np.ndarray:
    """(len(hid),) share in [0, 1] of the head's profile (not the hair) for each hidden head vertex ``hid``: the
    cheeks and the jaw in front of the ears below the eyes (:data:`FACE_EYE_LINE`, :data:`FACE_JAW_FRONT_M`) in the
    rest pose (``vertices`` (N, 3), the face looking along ``forward`` (3,)); ``head`` (K,) the head's vertex
    indices."""
    forward = np.asarray(forward, dtype=np.float64)
    head_y = vertices[head, 1]
    lo, span = float(head_y.min()), float(np.ptp(head_y))
    jaw = np.clip(_before_the_ears(vertices, hid, forward, head) / FACE_JAW_FRONT_M, 0.0, 1.0)
    return jaw * np.clip((lo + FACE_EYE_LINE * span - vertices[hid, 1]) / FACE_JAW_FRONT_M + 1.0, 0.0, 1.0)


def _before_the_ears(vertices: np.ndarray, idx: np.ndarray, forward: np.ndarray, head: np.ndarray) -> np.ndarray:
    """(len(idx),) metres: how far the vertices ``idx`` lie in front of the ears' plane — the head's middle depth
    along ``forward`` (3,, unit) at their height, from the head's vertices ``head`` in 20 height bands (rest pose,
    ``vertices`` (N, 3), +Y up)."""
    head_y = vertices[head, 1]
    lo, span = float(head_y.min()), float(np.ptp(head_y))
    depth = vertices[head] @ forward
    edges = np.linspace(lo, lo + span, 21)
    rows = np.clip(np.searchsorted(edges, head_y) - 1, 0, 19)
    mid = np.array([(depth[rows == r].min() + depth[rows == r].max()) / 2 if (rows == r).any() else np.nan
                    for r in range(20)])
    centres = (edges[:-1] + edges[1:]) / 2
    ok = np.isfinite(mid)
    return vertices[idx] @ forward - np.interp(vertices[idx, 1], centres[ok], mid[ok])


#: A face is left-right symmetric (wave 22, :func:`_mirrored_head`): a hidden head vertex on the face's side of the
#: ears' plane (less than HEAD_MIRROR_BEHIND_M behind it: the front half of the ear on) and below the skull
#: (:data:`HAIR_SKULL`), whose mirror image through the head's midline plane (rest pose) lies within HEAD_MIRROR_M
#: (metres) of a head vertex the photo shows well (cosine to the camera above HEAD_MIRROR_MIN_COS), takes that
#: vertex's photo colour — the far cheek, eye and ear of a face seen in three-quarter or in profile — before the
#: hair and profile rules. Not behind the ears: mirrored there, the seen side's registration errors at the hair
#: line (a skin-coloured temple, a collar) became skin patches on the back of the hair (rendered subjects 102 and
#: 106: back-of-head error 17.8 / 13.9 → 28.0 / 24.3 with the whole head mirrored).
HEAD_MIRROR_M = 0.02
HEAD_MIRROR_MIN_COS = 0.2
#: The midline plane is searched within this distance (metres) of the head's median lateral position.
HEAD_MIRROR_SEARCH_M = 0.02
#: Metres behind the ears' plane the mirror still reaches (rendered set, before the midline search: +1 cm put 0.3 and
#: 0.6 more error on the skull regions of the two turned subjects, 0 only 0.3 on one, −1 cm none; the far cheek
#: gained as much with each; 0 keeps the ear's front half).
HEAD_MIRROR_BEHIND_M = 0.0


def face_region(vertices: np.ndarray, head: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """(N,) bool: the face — of the head's vertices ``head`` (indices), those on the face's side of the ears' plane
    (:data:`HEAD_MIRROR_BEHIND_M`) and below the skull (:data:`HAIR_SKULL`); ``vertices`` (N, 3) in the rest
    pose, the face towards ``forward``."""
    out = np.zeros(len(vertices), dtype=bool)
    if not len(head):
        return out
    y = vertices[head, 1]
    out[head] = ((_before_the_ears(vertices, head, np.asarray(forward, dtype=np.float64), head) > -HEAD_MIRROR_BEHIND_M)
                 & (y < y.min() + HAIR_SKULL * np.ptp(y)))
    return out


def _mirrored_head(vertices: np.ndarray, head: np.ndarray, hid: np.ndarray, donors: np.ndarray,
                   forward: np.ndarray, plane: tuple[np.ndarray, float] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(positions in ``hid`` that take a mirror donor's colour, the donors' vertex indices): the head's hidden
    vertices ``hid`` on the face's side of the ears' plane (:data:`HEAD_MIRROR_BEHIND_M`) and below the skull
    (:data:`HAIR_SKULL`), mirrored through ``plane`` (unit normal, offset: the photo's face midline,
    :func:`icon_engine.texture.face_mirror.face_mirror_plane`) or else the plane of the head (``head``, its vertex
    indices in ``vertices`` (N, 3), the rest pose) that contains the up axis (+Y) and the face's ``forward``
    direction, at the lateral position (within :data:`HEAD_MIRROR_SEARCH_M` of the median) that maps the head
    closest onto itself; a donor is the nearest of ``donors`` (vertex indices) within :data:`HEAD_MIRROR_M`."""
    from scipy.spatial import cKDTree

    none = np.zeros(0, dtype=np.int64)
    forward = np.asarray(forward, dtype=np.float64)
    side = np.cross([0.0, 1.0, 0.0], forward)
    norm = float(np.linalg.norm(side))
    if norm < 1e-9 or not len(donors) or not len(hid):
        return none, none
    side /= norm
    face_side = np.nonzero(face_region(vertices, head, forward)[hid])[0]
    if not len(face_side):
        return none, none

    if plane is not None:
        side, centre = np.asarray(plane[0], dtype=np.float64), float(plane[1])
    else:  # the midline plane: the lateral position whose mirror image of the head lies closest to the head
        # itself (a ponytail, a bun or a fuller side of the hair moves the median by a centimetre)
        pts = vertices[head]
        tree = cKDTree(pts)
        candidates = float(np.median(pts @ side)) + np.linspace(-HEAD_MIRROR_SEARCH_M, HEAD_MIRROR_SEARCH_M, 21)
        centre = candidates[int(np.argmin([np.median(tree.query(reflect(pts, side, c))[0]) for c in candidates]))]
    dist, idx = cKDTree(vertices[donors]).query(reflect(vertices[hid[face_side]], side, centre),
                                                distance_upper_bound=HEAD_MIRROR_M)
    found = np.isfinite(dist)
    return face_side[found], donors[idx[found]]


#: Colour (RGB, 0–255) of legs the photo does not show at all, neither of them (a portrait, a photo cut at the
#: waist): a dark neutral grey, plain trousers, instead of the top's colour spread down from the waist.
UNSEEN_LEGS_COLOUR = (58.0, 58.0, 62.0)
#: A part with fewer seen samples than this is treated as not shown (its own profile would rest on a few pixels).
PART_MIN_SEEN = 8
#: Along a limb, a stretch farther than this (fraction of the mesh's height) from every seen sample of the limb
#: takes the counterpart's profile there: the far leg of a side view shows only its shoe, whose colour the own
#: profile would otherwise stretch up to the hip.
COUNTERPART_GAP = 0.1


def hips_below_legs(vertices: np.ndarray, parts: np.ndarray, sample: np.ndarray) -> np.ndarray | None:
    """(N,) bool: the torso's vertices below the legs' top (``vertices`` (N, 3), +Y up: the rest pose), whose hidden
    side takes the legs' garment (:func:`_hips_from_legs`); None when the legs show fewer than
    :data:`PART_MIN_SEEN` samples (``sample`` (N,) bool)."""
    legs = np.isin(parts, (PART_LEFT_LEG, PART_RIGHT_LEG))
    if (legs & sample).sum() < PART_MIN_SEEN:
        return None
    return (parts == PART_TORSO) & (vertices[:, 1] < float(vertices[legs, 1].max()))


def _hips_from_legs(v: np.ndarray, parts: np.ndarray, sample: np.ndarray, colours: np.ndarray, weights: np.ndarray,
                    hid: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The hidden hips: torso vertices ``hid`` below the legs' top. The torso's own profile carries the colour of
    what the photo shows of the torso there (often only the top, above a seated person's lap or a jumper's
    crotch) down to the crotch, and the top ends in a bodysuit's V along the legs' part boundary. A hem runs round
    the body: the hips take the profile by height of the torso's and both legs' samples together (``sample``
    vertices, ``weights`` each), whose upper thighs show the garment at that height. Returns (which of ``hid``,
    their colours (M, 3)), or None when no hidden vertex is that low or the legs show too little."""
    hips = hips_below_legs(v, parts, sample)
    if hips is None:
        return None
    below = hips[hid]
    if not below.any():
        return None
    y = v[:, 1]
    legs = np.isin(parts, (PART_LEFT_LEG, PART_RIGHT_LEG))
    pooled = np.nonzero((legs | (parts == PART_TORSO)) & sample)[0]
    fill = _colour_profile(y[pooled], colours[pooled], weights[pooled], y[hid[below]],
                           colour_stats.PROFILE_WINDOW * height)
    return below, fill


#: A hidden vertex of the seat (:func:`_seat_garment`) whose fill lies within this RGB distance (0–255) of the
#: face's skin is bare skin carried up from the thighs.
SEAT_SKIN_RGB = 25.0
#: ... replaced by the garment at the hips only when that garment is at least this far (RGB) from the skin: a
#: garment of about the skin's colour (khaki trousers on brown skin, dev photo icon_slack_trial2) is left alone.
SEAT_GARMENT_RGB = 60.0
#: The seat rule needs the face seen: this many (:data:`PART_MIN_SEEN`) seen head vertices this far (metres) in front
#: of the ears' plane (:func:`_before_the_ears`; a back view's head is hair: its "skin" cluster is not skin).
SEAT_FACE_M = 0.03
#: The hips' profile (:func:`_seat_garment`) is taken over the heights from the crotch to the legs' top, each end
#: widened by this fraction of the mesh's height (the profile's persistence is measured over that range).
SEAT_MARGIN = 0.05


def _seat_garment(v: np.ndarray, parts: np.ndarray, sample: np.ndarray, colours: np.ndarray, weights: np.ndarray,
                  height: float, skin: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """The garment the photo shows round the hips, which covers the seat. Shorts, trousers and skirts cover the
    seat down to the crotch (the torso's lowest point in the rest pose ``v`` (N, 3), Y up), but a hidden seat takes
    its colour from profiles by height (the hips, :func:`_hips_from_legs`) and along the legs (the buttocks belong
    to the legs), which on a raised leg show the thigh's bare skin up to the groin: dev photo icon_22097467 (a
    jumper in black shorts that rode up her raised thigh) had a bare bottom. Returns (crotch height, legs' top
    height, the garment's colour (3,): the pooled torso-and-legs profile at the legs' top, as
    :func:`_hips_from_legs` pools them: ``sample`` (N,) bool, ``colours`` (N, 3) 0–255, ``weights`` (N,)), or None
    when that colour is within :data:`SEAT_GARMENT_RGB` of the face's ``skin`` (3,) (bare hips, a bikini, trousers
    the colour of the skin) or the legs show too little."""
    legs = np.isin(parts, (PART_LEFT_LEG, PART_RIGHT_LEG))
    torso = parts == PART_TORSO
    pooled = np.nonzero((legs | torso) & sample)[0]
    if (legs & sample).sum() < PART_MIN_SEEN or len(pooled) < colour_stats.PROFILE_MIN_SAMPLES or not torso.any():
        return None
    y = v[:, 1]
    crotch, top = float(y[torso].min()), float(y[legs].max())
    margin = SEAT_MARGIN * height
    garment = _colour_profile(y[pooled], colours[pooled], weights[pooled],
                              np.array([crotch - margin, top, top + margin]),
                              colour_stats.PROFILE_WINDOW * height)[1]
    if np.linalg.norm(garment - np.asarray(skin, dtype=np.float64)) < SEAT_GARMENT_RGB:
        return None
    return crotch, top, garment


def _side_weight(view_cos: np.ndarray) -> np.ndarray:
    """Profile sample weights towards the silhouette (:data:`SIDE_WEIGHT_POWER`): the seen side's edge continues
    into the hidden side."""
    return np.clip(1.05 - view_cos, 0.05, 1.0) ** SIDE_WEIGHT_POWER


def counterpart_limb_fill(vertices: np.ndarray, parts: np.ndarray, part: int, samples: np.ndarray,
                          colours: np.ndarray, view_cos: np.ndarray, height: float,
                          lit: np.ndarray | None = None) -> np.ndarray | None:
    """Colours (N, 3) for limb ``part`` from its counterpart's (:data:`LIMB_COUNTERPART`) seen samples at the same
    fraction of the limb's length (:func:`_limb_fraction`: hip to foot, shoulder to hand), profiled like a limb's
    own (:func:`_colour_profile`, its end band included); None for the torso and head or when the counterpart has
    fewer than :data:`PROFILE_MIN_SAMPLES` samples; the colours weighed face-on like a limb's own (cosine **
    :data:`FACE_ON_POWER` × light). ``samples`` (N,) bool the vertices that give samples,
    ``colours`` (N, 3) their colours (0–255), ``view_cos`` (N,) as in :func:`unseen_side_fill`, ``height`` the
    mesh's height (metres), ``lit`` (N,) extra sample weights (:func:`unseen_side_fill`'s light weights). ``vertices``
    in the rest pose (straight limbs)."""
    other = LIMB_COUNTERPART.get(int(part))
    if other is None:
        return None
    vis = np.nonzero((parts == other) & samples)[0]
    if len(vis) < colour_stats.PROFILE_MIN_SAMPLES:
        return None
    t_other, length = _limb_fraction(vertices, parts, other)
    t_own = _limb_fraction(vertices, parts, part)[0]
    light = np.ones(len(vis)) if lit is None else lit[vis]
    end = 1.0 - LIMB_END * height / length
    return _colour_profile(t_other[vis], colours[vis], _side_weight(view_cos[vis]) * light, t_own,
                           colour_stats.PROFILE_WINDOW * height / length, (end, np.inf),
                           colour_weights=np.clip(view_cos[vis], 0.05, 1.0) ** FACE_ON_POWER * light)


def mirror_donors(vertices: np.ndarray, parts: np.ndarray, part: int) -> np.ndarray:
    """(N,) for each vertex of limb ``part`` the index of its counterpart's (:data:`LIMB_COUNTERPART`) vertex
    nearest to its mirror image through the torso's midline (the plane x = the median x of the torso's vertices;
    ``vertices`` (N, 3) in the rest pose, metres: SMPL-X's +X is the body's left, and the rest pose is symmetric),
    every other vertex its own index: ``colours[mirror_donors(...)]`` gives the limb the other's look, the photo's
    side of one arm and its filled hidden side, front for front and back for back."""
    from scipy.spatial import cKDTree

    donor = np.arange(len(vertices))
    others = np.nonzero(parts == LIMB_COUNTERPART[int(part)])[0]
    limb = np.nonzero(parts == part)[0]
    if not len(others) or not len(limb):
        return donor
    centre = float(np.median(vertices[parts == PART_TORSO, 0])) if (parts == PART_TORSO).any() else 0.0
    mirrored = reflect(vertices[others], np.array([1.0, 0.0, 0.0]), centre)
    donor[limb] = others[cKDTree(mirrored).query(vertices[limb], k=1)[1]]
    return donor


def _end_samples(vertices: np.ndarray, parts: np.ndarray, part: int, samples: np.ndarray, height: float) -> int:
    """How many of limb ``part``'s sample vertices (``samples`` (N,) bool) lie in its end band (the last
    :data:`LIMB_END` × ``height`` metres along the limb: the foot with its shoe, the hand); 0 without samples."""
    if not ((parts == part) & samples).any():
        return 0
    t, length = _limb_fraction(vertices, parts, part)
    return int(((parts == part) & samples & (t >= 1.0 - LIMB_END * height / length)).sum())


def _fill_shading(normals: np.ndarray, colours: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                  camera: Camera) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(shading factors (N,) or None, stats) of one photo's directional light (:mod:`icon_engine.lighting`),
    fitted on the seen vertices (``alpha`` > :data:`SEEN_ALPHA`) of every part but the head (hair above a face is
    darker whatever the light) with one albedo per part; ``normals`` (N, 3) in the photo's pose (bundle world),
    ``colours`` (N, 3) their photo colours. None when the light is too weak to matter (soft or frontal light)."""
    from ..lighting import fit_directional_light, shading_factors

    seen = alpha > sampling.SEEN_ALPHA
    sel = seen & (parts != PART_HEAD)
    light = fit_directional_light(normals[sel], colours[sel], parts[sel], view_axis=camera.R[2])
    if light is None:
        return None, {"light": None}
    stats = {"light": {"vector": np.round(light.vector, 3).tolist(), "strength": round(light.strength, 3),
                       "explained": round(light.explained, 3), "used": light.significant}}
    return (shading_factors(normals, light, seen) if light.significant else None), stats


def unseen_side_fill(vertices: np.ndarray, faces: np.ndarray, parts: np.ndarray, alpha: np.ndarray,
                     photo_colours: np.ndarray, view_cos: np.ndarray,
                     own_pixel: np.ndarray | None = None,
                     shading: np.ndarray | None = None, behind: np.ndarray | None = None,
                     fade: np.ndarray | None = None,
                     face_forward: np.ndarray | None = None,
                     mirror_plane: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Fill colours (N, 3) of every vertex for its unseen side, per body part (``parts`` (N,)).

    Seen vertices (``alpha`` > :data:`SEEN_ALPHA`) keep their ``photo_colours``. A hidden vertex takes the
    colour profile (:func:`_colour_profile`) of its own part's seen vertices at the same position along the
    part's axis (vertical for the head, the principal axis for the torso and limbs), with samples weighted
    towards the silhouette (``view_cos`` (N,): cosine between the normal and the direction to the camera;
    weight (1.05 − cos) ** :data:`SIDE_WEIGHT_POWER`): the back of the torso gets the garment colour at the
    same height, a foot its shoe colour, an arm its sleeve or skin. The head's hidden side above its neck
    (:data:`HAIR_FROM`) takes the hair colour (:func:`_hair_colour`), never the face; with ``face_forward`` (3,), the
    direction the face points in ``vertices``' frame (the rest pose: +Z), the front of the face
    (:func:`_face_front`) takes the face's skin instead, never hair. Hidden vertices within
    :data:`SEAM_BAND` of the seen ones (same part) are filled harmonically on the part-restricted mesh graph, so
    the front/back boundary is a smooth blend. A limb with fewer than :data:`PART_MIN_SEEN` samples, and the stretches
    of a limb farther than :data:`COUNTERPART_GAP` from its samples, take its counterpart limb's profile
    (:func:`counterpart_limb_fill`), and such a limb then takes the counterpart's final colours at its mirror image
    (:func:`mirror_donors`, in the rest pose: with ``face_forward``; it looks like the limb the photo shows; so
    does a hidden foot below a shown leg); legs neither of which is seen take :data:`UNSEEN_LEGS_COLOUR`, and so do the
    torso's hidden vertices below the legs' top (the hips: trousers, not the top carried down to the crotch); other
    parts with nothing seen are filled harmonically (whole mesh where a part has nothing known). The hidden seat (crotch
    to the legs' top) whose fill came out as the face's skin takes the garment the hips show (:func:`_seat_garment`:
    shorts cover the seat even where a raised thigh shows its skin up to the groin).
    ``own_pixel`` (N,) bool: the nearest surface at the vertex's pixel belongs to its own part (a torso vertex
    just behind crossed arms shows the arms: it keeps that photo colour but gives no sample). ``shading`` (N,):
    each vertex's brightness under the photo's directional light relative to the median
    (:func:`icon_engine.lighting.shading_factors`); a sample in shadow (below 1) weighs ``shading **
    SHADOW_POWER`` in the profiles, so a hidden side next to a shadowed silhouette (a jumper's belly facing the
    ground in sunlight) takes the garment's colour where it is lit, not its shadow's.
    Only the weights change: no colour is brightened (a deep shadow's hue is noise) and seen vertices keep theirs.
    ``behind`` (N,) bool: hidden vertices behind another part (:func:`behind_other_part`), ``fade`` (N,) the seen
    vertices' share of their photo colour next to them (:func:`behind_fade`): both take their part's profile as the
    photo shows it head-on (samples weighted by their cosine to the camera, the faded ones left out where the
    position along the part has enough others: :func:`_clear_first_profile`) directly, without the seam band's
    blend from the occluder's outline (which would draw the limb's shape in its shadow's colour on the body). The
    hidden side's own profile is unchanged by them. ``mirror_plane`` (unit normal (3,), offset): the face's mirror
    plane from the photo's face points (:func:`icon_engine.texture.face_mirror.face_mirror_plane`) for the far
    side of a face seen turned (:func:`_mirrored_head`).
    """
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, dtype=np.float64)
    height = float(np.ptp(v[:, 1])) or 1.0
    seen = alpha > sampling.SEEN_ALPHA
    # samples in the photo's shadow count less (their colour is the shadow's, not the garment's)
    lit = np.ones(len(v)) if shading is None else np.minimum(np.asarray(shading, dtype=np.float64), 1.0) ** SHADOW_POWER
    # hidden behind another part, or seen next to such a region: the part's face-on profile without the seam band
    unfaded = np.ones(len(v), dtype=bool) if fade is None else np.asarray(fade) >= 1.0
    direct = seen & ~unfaded
    if behind is not None:
        direct |= np.asarray(behind, dtype=bool)
    filled = ~seen | direct
    seed = np.asarray(photo_colours, dtype=np.float64).copy()
    known = ~filled
    hips_filled = np.zeros(len(v), dtype=bool)  # the hidden hips the legs' garment filled (:func:`_hips_from_legs`)
    unshown_limbs: list[int] = []  # limbs the photo does not show at all (their counterpart's colours mirrored)
    unshown_ends: list[tuple[int, np.ndarray, np.ndarray]] = []  # hidden feet: (leg, vertices, share)
    stats: dict[str, Any] = {"hair_colour": None}
    sample = seen if own_pixel is None else seen & own_pixel
    legs = np.isin(parts, (PART_LEFT_LEG, PART_RIGHT_LEG))
    # neither leg shown (a portrait): the hidden hips below the legs' top are the trousers' too, not the top's
    # colour carried down to the crotch
    legs_top = float(v[legs, 1].max()) if legs.any() and all(
        ((parts == leg) & sample).sum() < PART_MIN_SEEN for leg in (PART_LEFT_LEG, PART_RIGHT_LEG)) else None
    head_all = np.nonzero(parts == PART_HEAD)[0]
    head_vis = head_all[sample[head_all]]
    # the seen head's hair and skin clusters, for the head's hidden side and the seat's skin
    clusters = _hair_colour(v[head_vis], seed[head_vis], upright=True) if len(head_vis) >= PART_MIN_SEEN else None
    seat, skin = None, None
    if clusters is not None and legs_top is None and face_forward is not None:  # the seat under shorts (rest pose)
        face_seen = _before_the_ears(v, head_vis, face_forward, head_all) > SEAT_FACE_M
        if face_seen.sum() >= PART_MIN_SEEN:  # the skin of a face the photo shows (not a back view's hair)
            skin = clusters[1]
            seat = _seat_garment(v, parts, sample, seed, _side_weight(view_cos) * lit, height, skin)
    for part in np.unique(parts):
        sel = parts == part
        vis, hid = np.nonzero(sel & sample)[0], np.nonzero(sel & filled)[0]
        if not len(hid):
            continue
        if len(vis) < PART_MIN_SEEN:  # a limb not shown: its counterpart's profile (else the harmonic fill)
            mirrored = counterpart_limb_fill(v, parts, int(part), sample, seed, view_cos, height, lit)
            if mirrored is not None:
                seed[hid], known[hid] = mirrored[hid], True
                stats.setdefault("counterpart_filled", []).append(PART_NAMES[int(part)])
                unshown_limbs.append(int(part))
            elif part in (PART_LEFT_LEG, PART_RIGHT_LEG):  # neither leg shown (a portrait): plain dark trousers
                seed[hid], known[hid] = np.asarray(UNSEEN_LEGS_COLOUR), True
                stats.setdefault("unseen_legs", []).append(PART_NAMES[int(part)])
            continue
        axis = _profile_axis(v, parts, int(part))
        s = v @ axis
        weight = _side_weight(view_cos[vis])
        sign = _limb_end(v, parts, part, axis)  # a limb's end (foot, hand): its own garment
        band = None
        if sign > 0:
            band = (float(s[sel].max()) - LIMB_END * height, np.inf)
        elif sign < 0:
            band = (-np.inf, float(s[sel].min()) + LIMB_END * height)
        facing = np.clip(view_cos[vis], 0.05, 1.0)
        fill = _colour_profile(s[vis], seed[vis], weight * lit[vis], s[hid], colour_stats.PROFILE_WINDOW * height, band,
                               colour_weights=facing**FACE_ON_POWER * lit[vis])
        front = np.nonzero(direct[hid])[0]
        if len(front):  # behind a limb, facing the camera: the part as the photo shows it head-on, not its sides,
            # from the samples away from any occluder's outline (its shadow, its colour's bleed) where there are some
            fill[front] = _clear_first_profile(s[vis], seed[vis], facing**SIDE_WEIGHT_POWER * lit[vis], unfaded[vis],
                                               s[hid[front]], colour_stats.PROFILE_WINDOW * height, band)
        if part == PART_HEAD:
            head = head_all
            y = v[head, 1]
            hair = _unseen_hair_colour(y, v[vis], seed[vis], clusters)
            if hair is not None:
                upper = v[hid, 1] >= y.min() + HAIR_FROM * np.ptp(y)
                # a face cut off by the frame faces the camera: skin profile there, hair on the skull above it (the
                # cosine smoothed over the head, so eye sockets and the nose's sides do not count as its sides)
                head_faces = _same_part_faces(np.asarray(faces, dtype=np.int64), parts)
                head_faces = head_faces[parts[head_faces[:, 0]] == PART_HEAD]
                cos_head = _smooth_on_mesh(view_cos[:, None], sel.astype(np.float64), head_faces, 20)[0][:, 0]
                upper &= (cos_head[hid] < HAIR_MAX_COS) | (v[hid, 1] >= y.min() + HAIR_SKULL * np.ptp(y))
                skin = clusters[1]
                around = np.broadcast_to(hair, (int(upper.sum()), 3))
                if face_forward is not None:  # the cheeks and the jaw keep the profile: skin or a beard, not hair
                    jaw = _jaw_front(v, hid[upper], face_forward, head)[:, None]
                    around = jaw * fill[upper] + (1.0 - jaw) * around
                    stats["jaw_profile_vertices"] = int((jaw > 0.5).sum())
                face = None if face_forward is None else _face_front(v, faces, hid, face_forward, head)
                if face is not None and np.linalg.norm(hair - skin) >= colour_stats.HAIR_MIN_CONTRAST:
                    # the front of the face below the skull is skin however the photo hid it (a face turned
                    # away or down: dev photo icon_e1e7622a's face was hair from the front), blended into the hair
                    # around it
                    share = face[upper, None]
                    fill[upper] = share * skin + (1.0 - share) * around
                    stats["hidden_face_vertices"] = int((face[upper] > 0.5).sum())
                else:
                    fill[upper] = around
                stats["hair_colour"] = [round(float(x), 1) for x in hair]
            if face_forward is not None:  # the far side of a face seen turned: the near side's photo colours
                found, donor = _mirrored_head(v, head, hid, vis[view_cos[vis] > HEAD_MIRROR_MIN_COS], face_forward,
                                              mirror_plane)
                fill[found] = seed[donor]
                stats["head_mirrored_vertices"] = int(len(found))
        if part in LIMB_COUNTERPART:  # stretches of the limb the photo does not show: the counterpart's profile
            t_own, length = _limb_fraction(v, parts, int(part))
            gap = cKDTree(t_own[vis, None]).query(t_own[hid, None], k=1)[0] * length
            unshown = gap > COUNTERPART_GAP * height
            # a hidden foot or hand (fewer than PART_MIN_SEEN samples in the limb's end band) whose counterpart's
            # shows: the other's shoe or hand, not the limb's own colour stretched over it (dev photo icon_5a6a2596:
            # a far foot behind the near shin took the shin's skin and became a bare foot beside a boot)
            end = t_own[hid] >= 1.0 - LIMB_END * height / length
            other = LIMB_COUNTERPART[int(part)]
            if (end.any() and (t_own[vis] >= 1.0 - LIMB_END * height / length).sum() < PART_MIN_SEEN
                    and _end_samples(v, parts, other, sample, height) >= colour_stats.PROFILE_MIN_SAMPLES):
                unshown |= end
                if part in (PART_LEFT_LEG, PART_RIGHT_LEG):  # a hidden foot: like the other one after the fill
                    # (not a hand: fitted fingers and cuffs are not mirror images of the other hand's)
                    band = LIMB_END * height / length
                    share = np.clip((t_own[hid] - (1.0 - band)) / (END_MIRROR_FADE * band), 0.0, 1.0)
                    unshown_ends.append((int(part), hid[end], share[end]))
            if unshown.any():
                mirrored = counterpart_limb_fill(v, parts, int(part), sample, seed, view_cos, height, lit)
                if mirrored is not None:
                    fill[unshown] = mirrored[hid[unshown]]
                    stats.setdefault("counterpart_filled", []).append(PART_NAMES[int(part)])
        if legs_top is not None and part == PART_TORSO:
            fill[v[hid, 1] < legs_top] = UNSEEN_LEGS_COLOUR
        elif part == PART_TORSO:  # the hidden hips: the garment round the body at that height, not the top's V
            hips = _hips_from_legs(v, parts, sample, seed, _side_weight(view_cos) * lit, hid, height)
            if hips is not None:
                fill[hips[0]] = hips[1]
                hips_filled[hid[hips[0]]] = True
                stats["hips_from_legs"] = int(hips[0].sum())
        if seat is not None and part in (PART_TORSO, PART_LEFT_LEG, PART_RIGHT_LEG):
            in_seat = ((v[hid, 1] >= seat[0]) & (v[hid, 1] <= seat[1])
                       & (np.linalg.norm(fill - skin, axis=1) < SEAT_SKIN_RGB))
            fill[in_seat] = seat[2]
            stats["seat_vertices"] = stats.get("seat_vertices", 0) + int(in_seat.sum())
        # the band next to the seen side is left to the harmonic blend
        dist = cKDTree(v[vis]).query(v[hid], k=1)[0]
        far = (dist >= SEAM_BAND * height) | direct[hid]
        seed[hid[far]] = fill[far]
        known[hid[far]] = True
    same = _same_part_faces(np.asarray(faces, dtype=np.int64), parts)
    out = harmonic_fill(seed, known, same, fallback_faces=faces)
    stats["profile_vertex_fraction"] = float((known & filled).mean())
    for part in unshown_limbs if face_forward is not None else ():  # (the rest pose: symmetric about x)
        # a limb the photo does not show looks like the one it shows, all round
        limb = np.nonzero((parts == part) & ~seen)[0]
        out[limb] = out[mirror_donors(v, parts, part)[limb]]
        stats["mirrored_limb_vertices"] = stats.get("mirrored_limb_vertices", 0) + len(limb)
    for part, idx, share in unshown_ends if face_forward is not None else ():  # a hidden foot likewise
        out[idx] += share[:, None] * (out[mirror_donors(v, parts, part)[idx]] - out[idx])
        stats["mirrored_end_vertices"] = stats.get("mirrored_end_vertices", 0) + int((share > 0).sum())
    # the limbs of a pair levelled first, then the steps between neighbouring parts (a levelled leg's to the hips)
    out, stats["counterpart_levelled_vertices"] = level_counterparts(out, ~seen & ~direct, seen, parts, v, height)
    out, stats["hips_levelled_vertices"] = level_hips(out, hips_filled & ~seen & ~direct, seen, parts, v, height)
    out, stats["part_seam_vertices"] = blend_part_seams(out, ~seen & ~direct, parts, faces, v, height)
    return out, stats


#: A hidden foot takes the other foot's colours at its mirror image (:func:`mirror_donors`) fully from this
#: share of the leg's end band below the band's top, faded in above it.
END_MIRROR_FADE = 0.3
#: Bins along a limb (fraction of its length from its root) in which the two limbs of a pair compare their hidden
#: sides (:func:`level_counterparts`).
COUNTERPART_BINS = 20
#: Two limbs' hidden sides in one bin show the same garment when their medians' hues lie within this of each other
#: (:func:`_chroma`) ...
COUNTERPART_CHROMA = 0.08
#: ... and their brightnesses (mean of R, G, B) within this ratio: one trouser leg in the photo's light, the other
#: in its shadow (rendered subject_100: 1.5–1.8 along the thighs).
COUNTERPART_BRIGHTNESS = 2.5
#: Fewest hidden vertices of each limb in a bin for it to be compared.
COUNTERPART_MIN_VERTICES = 5


def _same_garment(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two colours (3,) (0–255) show one garment under different light: hues within
    :data:`COUNTERPART_CHROMA` (:func:`_chroma`) and brightnesses within :data:`COUNTERPART_BRIGHTNESS`."""
    light = np.maximum([np.mean(a), np.mean(b)], 1.0)
    return bool(np.linalg.norm(_chroma(a) - _chroma(b)) < COUNTERPART_CHROMA
                and light.max() / light.min() < COUNTERPART_BRIGHTNESS)


def _fade_from_seen(vertices: np.ndarray, seen: np.ndarray, idx: np.ndarray, height: float) -> np.ndarray:
    """(len(idx),) 0 at the ``seen`` (indices) vertices rising to 1 at :data:`SEAM_BAND` × ``height`` (metres) from
    them, for the vertices ``idx``: a shift of the hidden side leaves what the photo shows, and the blend next to
    it, as they are (all 1 without seen vertices)."""
    from scipy.spatial import cKDTree

    if not len(seen):
        return np.ones(len(idx))
    return np.clip(cKDTree(vertices[seen]).query(vertices[idx], k=1)[0] / (SEAM_BAND * height), 0.0, 1.0)


def level_counterparts(colours: np.ndarray, hidden: np.ndarray, seen: np.ndarray, parts: np.ndarray,
                       vertices: np.ndarray, height: float) -> tuple[np.ndarray, int]:
    """``colours`` (N, 3) with the hidden sides of a pair of limbs that wear one garment levelled to the better lit
    of the two. Each limb's profile comes from its own samples, so a trouser leg the photo shows in shadow took
    its shadow's colour all round while the other leg took the garment as lit (rendered subject_100: the right
    leg's back dark blue, the left's light). Along both limbs (:func:`_limb_fraction`, :data:`COUNTERPART_BINS`
    bins) the medians of the two limbs' ``hidden`` (N,) bool vertices are compared; where their hues and
    brightnesses agree (:data:`COUNTERPART_CHROMA`, :data:`COUNTERPART_BRIGHTNESS`) both take the brighter median:
    every hidden vertex of the darker limb there moves by the difference (so its own variation, a fold, a seam,
    stays), interpolated along the limb between the centres of the bins holding at least
    :data:`COUNTERPART_MIN_VERTICES` of both limbs, and faded in from its limb's ``seen`` (N,) bool
    vertices over :data:`SEAM_BAND` × ``height`` (what the photo shows, and the blend next to it, keep their
    colour). Legs and arms; ``vertices`` (N, 3) metres (the rest pose: straight limbs). Returns (colours, how many
    vertices moved by more than 1)."""

    out = np.asarray(colours, dtype=np.float64).copy()
    moved = 0
    centres = (np.arange(COUNTERPART_BINS) + 0.5) / COUNTERPART_BINS
    for a, b in ((PART_LEFT_LEG, PART_RIGHT_LEG), (PART_LEFT_ARM, PART_RIGHT_ARM)):
        if min(int((hidden & (parts == part)).sum()) for part in (a, b)) < PART_MIN_SEEN:
            continue
        limbs = []
        for part in (a, b):
            idx = np.nonzero(hidden & (parts == part))[0]
            t = _limb_fraction(vertices, parts, part)[0][idx]
            limbs.append((part, idx, t, np.clip((t * COUNTERPART_BINS).astype(int), 0, COUNTERPART_BINS - 1)))
        shifts = np.zeros((2, COUNTERPART_BINS, 3))
        compared = np.zeros(COUNTERPART_BINS, dtype=bool)  # bins with enough of both limbs (the others interpolate)
        for k in range(COUNTERPART_BINS):
            inside = [out[idx[bins == k]] for _, idx, _, bins in limbs]
            if min(len(c) for c in inside) < COUNTERPART_MIN_VERTICES:
                continue
            compared[k] = True
            medians = np.stack([np.median(c, axis=0) for c in inside])
            if _same_garment(medians[0], medians[1]):
                shifts[:, k] = medians[int(np.argmax(medians.mean(axis=1)))] - medians
        for (part, idx, t, _), shift in zip(limbs, shifts, strict=True):
            if not np.abs(shift).any():
                continue
            delta = np.stack([np.interp(t, centres[compared], shift[compared, ch]) for ch in range(3)], axis=1)
            delta *= _fade_from_seen(vertices, np.nonzero(seen & (parts == part))[0], idx, height)[:, None]
            out[idx] = np.clip(out[idx] + delta, 0.0, 255.0)
            moved += int((np.abs(delta).max(axis=1) > 1.0).sum())
    return out, moved


#: The legs' top (fraction of each leg's length from the hip) whose hidden side the hidden hips are compared with
#: (:func:`level_hips`).
HIPS_LEGS_TOP = 0.1


def level_hips(colours: np.ndarray, hips: np.ndarray, seen: np.ndarray, parts: np.ndarray, vertices: np.ndarray,
               height: float) -> tuple[np.ndarray, int]:
    """``colours`` (N, 3) with the hidden hips (``hips`` (N,) bool: the torso's hidden vertices below the legs' top
    that took the garment round the body at that height, :func:`_hips_from_legs`) moved to the legs' hidden side at
    their top (the first :data:`HIPS_LEGS_TOP` of their length) after :func:`level_counterparts`: the hips' profile
    pooled both legs' samples, the shaded one's too, and stayed darker than the levelled trousers below them
    (rendered subject_100's seat). All of the hips move by the difference of the two medians, when their hues and
    brightnesses agree as :func:`level_counterparts` asks (another garment, shorts under a long top, keeps its
    own), faded in from the torso's ``seen`` (N,) bool vertices over :data:`SEAM_BAND` × ``height`` (metres).
    Returns (colours, how many vertices moved by more than 1)."""

    out = np.asarray(colours, dtype=np.float64).copy()
    legs = []
    for leg in (PART_LEFT_LEG, PART_RIGHT_LEG):
        if not (parts == leg).any():
            continue
        idx = np.nonzero(~seen & (parts == leg))[0]
        legs.append(idx[_limb_fraction(vertices, parts, leg)[0][idx] < HIPS_LEGS_TOP])
    top = np.concatenate(legs) if legs else np.zeros(0, dtype=np.int64)
    idx = np.nonzero(hips)[0]
    if min(len(top), len(idx)) < COUNTERPART_MIN_VERTICES:
        return out, 0
    target, own = np.median(out[top], axis=0), np.median(out[idx], axis=0)
    if not _same_garment(target, own):
        return out, 0
    delta = (target - own)[None] * _fade_from_seen(vertices, np.nonzero(seen & (parts == PART_TORSO))[0], idx,
                                                   height)[:, None]
    out[idx] = np.clip(out[idx] + delta, 0.0, 255.0)
    return out, int((np.abs(delta).max(axis=1) > 1.0).sum())


#: Hidden vertices of two parts that meet (a dress over the hips and both thighs, a coat's tail, a sleeve at the
#: shoulder) whose fills differ by less than this (RGB distance, 0–255) show one garment ...
PART_SEAM_MAX_RGB = 60.0
#: ... whose two profiles, each from its own part's samples, meet in a step along the parts' boundary: within this
#: distance of it (fraction of the mesh's height) both sides are shifted towards their mean (:func:`blend_part_seams`).
PART_SEAM_BAND = 0.03
#: A hidden vertex in the band takes the shift when its colour lies within this (RGB distance) of its side of the
#: seam: the same garment, not the next one (the top above a waistband, the skin below a hem).
PART_SEAM_SAME_RGB = 30.0
#: The step across the seam is the mean over this many nearest seam edges (it varies along the seam).
PART_SEAM_EDGES = 8


def blend_part_seams(colours: np.ndarray, hidden: np.ndarray, parts: np.ndarray, faces: np.ndarray,
                     vertices: np.ndarray, height: float) -> tuple[np.ndarray, int]:
    """``colours`` (N, 3) with the hidden side's steps between parts faded out: each part's profile comes from its
    own samples, so one garment over two parts (subject_107's dress over the hips and the thighs: three greys meeting
    along the parts' boundaries) showed a seam where the parts meet. A *seam edge* joins two ``hidden`` (N,) bool
    vertices of different parts whose colours differ by less than :data:`PART_SEAM_MAX_RGB`; its step is the mean
    colour difference over the :data:`PART_SEAM_EDGES` nearest seam edges between the same two parts. A hidden
    vertex of either part within :data:`PART_SEAM_BAND` × ``height`` (metres) of a seam edge, and within
    :data:`PART_SEAM_SAME_RGB` of that edge's vertex on its side, moves by half the step towards the other side
    (the seam edge's own vertices the whole half), fading linearly to nothing at the band's edge: the two sides
    meet at their mean and the step becomes a gradient across the band; a step to another garment stays a step.
    ``vertices`` (N, 3) metres (the rest pose). Returns (colours, how many vertices moved)."""
    from scipy.spatial import cKDTree

    from ..geometry.laplacian import mesh_edges

    out = np.asarray(colours, dtype=np.float64).copy()
    edges = mesh_edges(np.asarray(faces, dtype=np.int64))
    pa, pb = parts[edges[:, 0]], parts[edges[:, 1]]
    diff = out[edges[:, 0]] - out[edges[:, 1]]
    seam = (pa != pb) & hidden[edges].all(axis=1) & (np.linalg.norm(diff, axis=1) < PART_SEAM_MAX_RGB)
    if not seam.any():
        return out, 0
    flip = pa > pb  # each seam edge as (lower part, higher part)
    lo = np.where(flip, edges[:, 1], edges[:, 0])[seam]
    hi = np.where(flip, edges[:, 0], edges[:, 1])[seam]
    step = (out[lo] - out[hi])
    middle = 0.5 * (vertices[lo] + vertices[hi])
    half = 0.5 * np.linalg.norm(vertices[lo] - vertices[hi], axis=1)  # the seam's own vertices take the whole shift
    band = PART_SEAM_BAND * height
    moved = np.zeros(len(out), dtype=bool)
    shift = np.zeros_like(out)
    reach = np.full(len(out), np.inf)
    for pair in np.unique(np.stack([parts[lo], parts[hi]], axis=1), axis=0):
        mine = np.nonzero((parts[lo] == pair[0]) & (parts[hi] == pair[1]))[0]
        tree = cKDTree(middle[mine])
        k = min(PART_SEAM_EDGES, len(mine))
        near = tree.query(middle[mine], k=k)[1].reshape(len(mine), k)
        local = step[mine][near].mean(axis=1)  # the step along the seam, smoothed
        for side, sign, end in ((pair[0], -0.5, lo), (pair[1], 0.5, hi)):
            cand = np.nonzero(hidden & (parts == side))[0]
            dist, j = tree.query(vertices[cand], distance_upper_bound=band + half[mine].max())
            ok = np.isfinite(dist)
            cand, dist, j = cand[ok], dist[ok], j[ok]
            same = np.linalg.norm(out[cand] - out[end[mine][j]], axis=1) < PART_SEAM_SAME_RGB
            nearer = dist < reach[cand]  # a vertex near two seams follows the nearer
            fade = np.clip(1.0 - (dist - half[mine][j]) / band, 0.0, 1.0)
            take = same & nearer & (fade > 0.0)
            cand, dist, j, fade = cand[take], dist[take], j[take], fade[take]
            shift[cand] = sign * local[j] * fade[:, None]
            reach[cand] = dist
            moved[cand] = True
    out[moved] = np.clip(out[moved] + shift[moved], 0.0, 255.0)
    return out, int(moved.sum())
