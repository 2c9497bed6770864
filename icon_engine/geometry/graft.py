"""Grafting the end of one closed mesh onto another: cut both across an axis and join the two cut rims.

Meshes are (V, 3) float vertices (metres, any frame) and (F, 3) int faces, counter-clockwise seen from outside
(consistently oriented, closed). A *rim* is a boundary loop left by a cut, as vertex indices in the order its
faces use its edges. Small functions over arrays: :func:`beyond_plane` picks the faces a cut removes,
:func:`boundary_loops` finds the rims, :func:`join_rims` triangulates the strip between two rims around an axis.
"""

from __future__ import annotations

import numpy as np

from .decimate import directed_edges


def beyond_plane(vertices: np.ndarray, faces: np.ndarray, point: np.ndarray, axis: np.ndarray,
                 radius: float, every: bool = False) -> np.ndarray:
    """(F,) bool: the faces with a corner (all corners with ``every``) on the ``axis`` side of the plane through
    ``point`` normal to ``axis`` (unit), among the faces whose centroid lies within ``radius`` of ``point``."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    ahead = ((v - point) @ axis > 0.0)[f]
    near = np.linalg.norm(v[f].mean(axis=1) - point, axis=1) < radius
    return near & (ahead.all(axis=1) if every else ahead.any(axis=1))


def boundary_loops(faces: np.ndarray) -> list[np.ndarray] | None:
    """The boundary loops of ``faces``: each an (n,) array of vertex indices ordered along the boundary half-edges
    (the direction their faces traverse them). None when the boundary is not a set of simple loops (a vertex with
    two boundary edges leaving it)."""
    e = directed_edges(faces)
    if len(e) == 0:
        return []
    n = int(e.max()) + 1
    key = e[:, 0] * n + e[:, 1]
    open_ = ~np.isin(e[:, 1] * n + e[:, 0], key)
    starts, ends = e[open_, 0], e[open_, 1]
    if len(np.unique(starts)) != len(starts):
        return None
    following = dict(zip(starts.tolist(), ends.tolist(), strict=True))
    loops, seen = [], set()
    for s in starts.tolist():
        if s in seen:
            continue
        loop = [s]
        seen.add(s)
        nxt = following[s]
        while nxt != s:
            if nxt in seen or nxt not in following:
                return None
            loop.append(nxt)
            seen.add(nxt)
            nxt = following[nxt]
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def _angles(points: np.ndarray, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """(n,) angle (radians) of each point about the line through ``centre`` along ``axis`` (unit)."""
    u = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    d = points - centre
    return np.arctan2(d @ w, d @ u)


def loop_turn(points: np.ndarray, centre: np.ndarray, axis: np.ndarray) -> float:
    """Total turn (radians) of a closed loop of ``points`` about the line through ``centre`` along ``axis``:
    ±2π for a loop once round it (the sign its direction), about 0 for one beside it."""
    a = _angles(points, centre, axis)
    step = np.diff(np.append(a, a[0]))
    return float(((step + np.pi) % (2 * np.pi) - np.pi).sum())


def loop_backtrack(points: np.ndarray, centre: np.ndarray, axis: np.ndarray) -> float:
    """Total angle (radians) by which a closed loop of ``points`` steps backwards round the line through ``centre``
    along ``axis`` (against its overall direction): about 0 for a rim that goes round once, more where it folds."""
    a = _angles(points, centre, axis)
    step = (np.diff(np.append(a, a[0])) + np.pi) % (2 * np.pi) - np.pi
    step *= np.sign(step.sum()) or 1.0
    return float(-step[step < 0].sum())


#: A rim stepping backwards round the axis by more than this in total (radians) folds on itself (a cuff or flap):
#: a strip to it would fold too. Clean wrist rims of the dev photos: ≤ 0.09; a folded cuff 1.3.
MAX_BACKTRACK_RAD = 0.25


def join_rims(vertices: np.ndarray, rim_a: np.ndarray, rim_b: np.ndarray, centre: np.ndarray,
              axis: np.ndarray) -> np.ndarray | None:
    """(len(rim_a) + len(rim_b), 3) faces of the strip joining two rims that each go once round the line through
    ``centre`` along ``axis``, in opposite directions (the open ends of two consistently oriented pieces facing each
    other): vertices are taken in order of their angle about the axis, every strip face using a rim edge opposite
    to the face it borders, so the joined mesh stays consistently oriented. None when a rim does not go once round
    the axis, folds back round it by more than :data:`MAX_BACKTRACK_RAD`, or both go the same way."""
    v = np.asarray(vertices, dtype=np.float64)
    turn_a = loop_turn(v[rim_a], centre, axis)
    turn_b = loop_turn(v[rim_b], centre, axis)
    if abs(abs(turn_a) - 2 * np.pi) > 0.5 or abs(abs(turn_b) - 2 * np.pi) > 0.5 or turn_a * turn_b > 0:
        return None
    if max(loop_backtrack(v[rim_a], centre, axis), loop_backtrack(v[rim_b], centre, axis)) > MAX_BACKTRACK_RAD:
        return None
    sign = np.sign(turn_a)
    rim_b = rim_b[::-1]  # now both go the same way round
    ang_a = sign * _angles(v[rim_a], centre, axis)
    ang_b = sign * _angles(v[rim_b], centre, axis)
    start_b = int(np.argmin(np.abs((ang_b - ang_a[0] + np.pi) % (2 * np.pi) - np.pi)))
    rim_b = np.roll(rim_b, -start_b)
    ang_b = np.roll(ang_b, -start_b)

    def unwrapped(ang: np.ndarray, origin: float) -> np.ndarray:
        step = (np.diff(np.append(ang, ang[0])) + np.pi) % (2 * np.pi) - np.pi
        first = (ang[0] - origin + np.pi) % (2 * np.pi) - np.pi
        return first + np.concatenate([[0.0], np.cumsum(step)])  # (n + 1,): back at the start, one turn on

    ta, tb = unwrapped(ang_a, ang_a[0]), unwrapped(ang_b, ang_a[0])
    n, m = len(rim_a), len(rim_b)
    out = []
    i = k = 0
    while i < n or k < m:
        if k == m or (i < n and ta[i + 1] <= tb[k + 1]):
            out.append((rim_a[(i + 1) % n], rim_a[i], rim_b[k % m]))
            i += 1
        else:
            out.append((rim_b[k], rim_b[(k + 1) % m], rim_a[i % n]))
            k += 1
    return np.asarray(out, dtype=np.int64)
