"""The body model's hands grafted onto the canonical mesh: fingers instead of the grid's mitten.

Frames and units: see :mod:`icon_engine.avatar`."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .body import CanonicalBody

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
    from ..geometry.decimate import compact
    from ..geometry.graft import beyond_plane, boundary_loops

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
    from ..geometry.graft import beyond_plane

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
    from ..geometry.decimate import compact, is_watertight
    from ..geometry.graft import beyond_plane, boundary_loops, join_rims
    from ..geometry.implicit import largest_component

    wrist, axis = _hand_axis(body, side)
    cut = wrist + cut_m * axis
    drop = beyond_plane(vertices, faces, cut, axis, HAND_REACH_M)
    if not drop.any():
        return None
    v, f, _ = largest_component(*compact(vertices, faces[~drop])[:2])
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
    from ..geometry.laplacian import neighbour_mean

    band = (np.abs((vertices - centre) @ axis) < HAND_SEAM_M) & (
        np.linalg.norm(vertices - centre, axis=1) < 0.5 * HAND_REACH_M)
    if not band.any():
        return vertices
    w = neighbour_mean(len(vertices), faces)[band]
    out = np.array(vertices, dtype=np.float64)
    for _ in range(HAND_SEAM_ITERS):
        out[band] = w @ out
    return out
