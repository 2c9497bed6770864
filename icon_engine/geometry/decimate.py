"""Mesh decimation with its topology checks (numpy; quadric edge collapse by ``fast_simplification``).

A mesh is ``vertices`` (N, 3) float (any frame and unit) and ``faces`` (M, 3) int. **Watertight** here means
every edge is shared by exactly two faces with opposite orientations (closed and consistently oriented);
**edge-manifold** means no edge has more than two faces.
"""

from __future__ import annotations

import threading

import numpy as np

#: Aggressiveness values tried in turn (fast_simplification's ``agg``: higher is faster, coarser choices).
AGGRESSIVENESS = (7, 4, 2)

#: Face targets tried in turn, as fractions of the requested one (a lower target avoids a bad last collapse).
TARGET_FRACTIONS = (1.0, 0.97, 0.93)

#: A result may exceed the target by this factor (the simplifier stops near, not at, the target).
TARGET_SLACK = 1.05

#: fast_simplification keeps the mesh in C++ globals between its load, simplify and read-back calls (each holds
#: the GIL, but another thread's load can come in between): one simplification at a time in the process, or two
#: threads' meshes mix (measured: 8 of 20 concurrent pairs came back wrong).
_SIMPLIFY_LOCK = threading.Lock()


def directed_edges(faces: np.ndarray) -> np.ndarray:
    """(3F, 2) the faces' edges in their winding order: every face's (a, b), then every (b, c), then every (c, a)."""
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    return np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])


def is_watertight(faces: np.ndarray) -> bool:
    """Every edge is shared by exactly two faces with opposite orientations (closed, consistently oriented)."""
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) == 0:
        return False
    e = directed_edges(f)
    n = int(f.max()) + 1
    key = np.sort(e[:, 0] * n + e[:, 1])  # one int64 per directed edge, sorted once for both tests
    if (key[1:] == key[:-1]).any():  # a directed edge twice: two faces with the same orientation
        return False
    reverse = e[:, 1] * n + e[:, 0]
    pos = np.minimum(np.searchsorted(key, reverse), len(key) - 1)
    return bool((key[pos] == reverse).all())  # every edge's reverse is there


def is_edge_manifold(faces: np.ndarray) -> bool:
    """No undirected edge is shared by more than two faces."""
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(f) == 0:
        return True
    e = np.sort(directed_edges(f), axis=1)
    n = int(f.max()) + 1
    _, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
    return bool((counts <= 2).all())


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mesh without the vertices ``faces`` (M, 3) does not use: (its vertices, ``faces`` renumbered to them,
    (K,) the index in ``vertices`` of each kept vertex)."""
    faces = np.asarray(faces, dtype=np.int64)
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces], used


def drop_doubled_faces(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove degenerate faces and every copy of a face whose three vertices another face repeats (the
    zero-volume flaps an edge collapse can leave), then unused vertices."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    corners = np.sort(faces, axis=1)
    n = int(faces.max()) + 1 if len(faces) else 1
    if n < 2**21:  # one int64 per vertex triple: a 1-D unique, several times faster than unique(axis=0)
        _, inv, cnt = np.unique((corners[:, 0] * n + corners[:, 1]) * n + corners[:, 2], return_inverse=True,
                                return_counts=True)
    else:
        _, inv, cnt = np.unique(corners, axis=0, return_inverse=True, return_counts=True)
    keep &= cnt[inv.ravel()] == 1
    if keep.all():
        return vertices, faces
    return compact(vertices, faces[keep])[:2]


def decimate(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to about ``target`` faces that keeps the input's topology class.

    A watertight input must stay watertight, an edge-manifold one edge-manifold (a collapse can fold thin parts
    into non-manifold edges): the aggressiveness values :data:`AGGRESSIVENESS` and the targets
    :data:`TARGET_FRACTIONS` are tried in turn until the result passes and has at most :data:`TARGET_SLACK` ×
    ``target`` faces; else the input is returned unchanged. Returns (vertices (N', 3) float64, faces (M', 3)
    int64)."""
    v_in = np.asarray(vertices, dtype=np.float64)
    f_in = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if target <= 0 or len(f_in) <= target:
        return v_in, f_in
    import fast_simplification

    check = is_watertight if is_watertight(f_in) else is_edge_manifold if is_edge_manifold(f_in) else None
    for fraction in TARGET_FRACTIONS:
        goal = fraction * target
        for agg in AGGRESSIVENESS:
            with _SIMPLIFY_LOCK:
                v, f = fast_simplification.simplify(v_in.astype(np.float32), f_in.astype(np.int32),
                                                    target_reduction=1.0 - goal / len(f_in), agg=agg)
            v, f = drop_doubled_faces(np.asarray(v, np.float64), np.asarray(f, np.int64))
            if len(f) and (check is None or check(f)) and len(f) <= TARGET_SLACK * target:
                return v, f
    return v_in, f_in
