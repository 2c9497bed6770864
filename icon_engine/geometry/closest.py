"""Closest-point queries against triangle meshes (numpy + scipy ``cKDTree``), in the caller's frame and units
(the engine: bundle world, metres).

- :func:`closest_point_on_triangles` — exact point–triangle closest points and barycentrics, vectorised.
- :class:`MeshQuery` — repeated queries against one fixed mesh: closest face, barycentrics, closest point,
  interpolated normal and signed distance (**positive outside**; ICON's feature uses the opposite sign). The
  candidate faces are the one-rings of the ``k`` nearest vertices; on well-shaped meshes (a body) this finds the
  true closest face (k = 1 agrees with brute force to ~1 mm on the open body, k = 2 to ~0.1 mm; ``dtype=
  np.float32`` halves the time). The sign is the side of the closest point's interpolated vertex normal: robust
  for closed, consistently oriented meshes, graceful on small holes (eyes, mouth of a body model).
- :func:`closest_points_on_mesh` — one-off queries whose candidates are the faces with the nearest centroids,
  with an optional normal-agreement penalty (skin-weight transfer: the underside of an arm takes the arm, not the
  torso).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..threads import map_rows
from .normals import vertex_normals

#: Query points processed at once by :class:`MeshQuery` (memory ≈ 1 kB per point with k = 1).
_CHUNK = 65536


def closest_point_on_triangles(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closest points of triangles (a, b, c) to points ``p`` (all (..., 3)), vectorised over the leading axes.

    Returns (closest (..., 3), barycentrics (..., 3)) with closest = u a + v b + w c.
    Region tests follow the classic Voronoi-region construction (Ericson, Real-Time Collision Detection 5.1.5).
    """
    ab, ac, ap = b - a, c - a, p - a
    d1 = np.einsum("...i,...i->...", ab, ap)
    d2 = np.einsum("...i,...i->...", ac, ap)
    bp = p - b
    d3 = np.einsum("...i,...i->...", ab, bp)
    d4 = np.einsum("...i,...i->...", ac, bp)
    cp = p - c
    d5 = np.einsum("...i,...i->...", ab, cp)
    d6 = np.einsum("...i,...i->...", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = 1e-30
    # Interior by default, then the Voronoi regions in reverse priority (later np.where calls win).
    denom = va + vb + vc
    denom = np.where(np.abs(denom) < eps, eps, denom)
    v = vb / denom
    w = vc / denom
    u = 1.0 - v - w
    m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)  # edge BC
    t = (d4 - d3) / np.maximum((d4 - d3) + (d5 - d6), eps)
    u, v, w = np.where(m, 0.0, u), np.where(m, 1 - t, v), np.where(m, t, w)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge AC
    t = d2 / np.maximum(d2 - d6, eps)
    u, v, w = np.where(m, 1 - t, u), np.where(m, 0.0, v), np.where(m, t, w)
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge AB
    t = d1 / np.maximum(d1 - d3, eps)
    u, v, w = np.where(m, 1 - t, u), np.where(m, t, v), np.where(m, 0.0, w)
    m = (d6 >= 0) & (d5 <= d6)  # vertex C
    u, v, w = np.where(m, 0.0, u), np.where(m, 0.0, v), np.where(m, 1.0, w)
    m = (d3 >= 0) & (d4 <= d3)  # vertex B
    u, v, w = np.where(m, 0.0, u), np.where(m, 1.0, v), np.where(m, 0.0, w)
    m = (d1 <= 0) & (d2 <= 0)  # vertex A
    u, v, w = np.where(m, 1.0, u), np.where(m, 0.0, v), np.where(m, 0.0, w)
    bary = np.stack([u, v, w], axis=-1)
    closest = bary[..., 0:1] * a + bary[..., 1:2] * b + bary[..., 2:3] * c
    return closest, bary


def _one_rings(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """(V, R) int64: the faces around each vertex, padded by repeating the first (vertices without faces: 0)."""
    corner_v = faces.reshape(-1)
    corner_f = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(corner_v, kind="stable")
    corner_v, corner_f = corner_v[order], corner_f[order]
    counts = np.bincount(corner_v, minlength=n_vertices)
    width = max(1, int(counts.max()))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(corner_v)) - starts[corner_v]
    ring = np.zeros((n_vertices, width), np.int64)
    ring[corner_v, rank] = corner_f
    first = ring[:, :1]
    pad = np.arange(width)[None, :] >= counts[:, None]
    return np.where(pad, first, ring)


@dataclass
class PointQuery:
    """Per-point answers: ``distance`` (N,) signed, positive outside (mesh units); ``face`` (N,) index of the
    closest face; ``bary`` (N, 3) barycentrics of the closest point; ``closest`` (N, 3); ``normal`` (N, 3) unit
    interpolated vertex normal at the closest point."""

    distance: np.ndarray
    face: np.ndarray
    bary: np.ndarray
    closest: np.ndarray
    normal: np.ndarray


class MeshQuery:
    """Closest-point / signed-distance queries against a fixed triangle mesh (vertices (N, 3), faces (M, 3))."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, k: int = 1, dtype: type = np.float64) -> None:
        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError("faces must be a non-empty (M, 3) array")
        self.tri = self.vertices[self.faces].astype(dtype)  # (M, 3, 3)
        self.vertex_normals = vertex_normals(self.vertices, self.faces)
        self.ring = _one_rings(self.faces, len(self.vertices))  # (V, R) faces around each vertex, padded
        used = np.unique(self.faces)
        self._tree_ids = used
        self.tree = cKDTree(self.vertices[used])
        self.k = int(max(1, min(k, len(used))))

    def query(self, points: np.ndarray) -> PointQuery:
        """Closest face, barycentrics, closest point, interpolated normal and signed distance for points (N, 3)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        n = len(pts)
        out = PointQuery(np.empty(n), np.empty(n, np.int64), np.empty((n, 3)), np.empty((n, 3)), np.empty((n, 3)))
        for s in range(0, n, _CHUNK):
            sl = slice(s, min(n, s + _CHUNK))
            self._query_chunk(pts[sl], out, sl)
        return out

    def _query_chunk(self, p: np.ndarray, out: PointQuery, sl: slice) -> None:
        _, near = self.tree.query(p, k=self.k)
        near = self._tree_ids[np.asarray(near).reshape(len(p), self.k)]
        cand = self.ring[near].reshape(len(p), -1)  # candidate faces: one-rings of the k nearest vertices
        tri = self.tri[cand]  # (n, c, 3, 3)
        pk = np.broadcast_to(p.astype(tri.dtype)[:, None, :], (len(p), cand.shape[1], 3))
        closest, bary = closest_point_on_triangles(pk, tri[:, :, 0], tri[:, :, 1], tri[:, :, 2])
        d2 = ((closest - pk) ** 2).sum(-1)
        best = np.argmin(d2, axis=1)
        rows = np.arange(len(p))
        face = cand[rows, best]
        cb = closest[rows, best]
        bb = bary[rows, best]
        nrm = np.einsum("ni,nij->nj", bb.astype(np.float64), self.vertex_normals[self.faces[face]])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-20)
        dist = np.sqrt(d2[rows, best].astype(np.float64))
        cb = cb.astype(np.float64)
        bb = bb.astype(np.float64)
        side = np.einsum("ni,ni->n", p - cb, nrm)
        out.distance[sl] = np.where(side >= 0, dist, -dist)
        out.face[sl] = face
        out.bary[sl] = bb
        out.closest[sl] = cb
        out.normal[sl] = nrm

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (N,) of points (N, 3): positive outside, negative inside, in mesh units."""
        return self.query(points).distance

    def interpolate(self, values: np.ndarray, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """Barycentric interpolation of per-vertex ``values`` (V, C) at (face, bary) from :meth:`query`."""
        vals = np.asarray(values)
        return np.einsum("ni,nic->nc", bary, vals[self.faces[face]].reshape(len(face), 3, -1))


def closest_points_on_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, candidates: int = 16,
                           point_normals: np.ndarray | None = None,
                           normal_penalty: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point of a mesh for each query point.

    Candidates are the ``candidates`` faces with the nearest centroids; exact point–triangle distances pick
    the best. With ``point_normals`` (N, 3) the choice minimises ``distance + normal_penalty · (1 − cos) / 2``
    (cos between the query normal and the face normal), so a point on the underside of an arm takes the arm,
    not the closer side of the torso. Row blocks run on the cores (``threads.map_rows``: numpy and the k-d tree
    release the GIL). Returns (face index (N,), barycentric (N, 3), distance (N,) metres).
    """
    p = np.asarray(points, dtype=np.float64)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    k = int(min(candidates, len(f)))
    tree = cKDTree(v[f].mean(axis=1))
    fn = None
    rows = p
    if point_normals is not None and normal_penalty > 0:
        t = v[f]
        fn = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
        fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-20)
        rows = np.concatenate([p, np.asarray(point_normals, dtype=np.float64).reshape(-1, 3)], axis=1)

    def solve(block: np.ndarray) -> np.ndarray:
        """(n, 3 or 6) points [and normals] → (n, 5): face, barycentrics, distance."""
        face, bary, dist = _closest_candidates(block[:, :3], block[:, 3:] if fn is not None else None, v, f, tree,
                                               k, fn, normal_penalty)
        return np.concatenate([face[:, None].astype(np.float64), bary, dist[:, None]], axis=1)

    out = map_rows(solve, rows)
    return out[:, 0].astype(np.int64), out[:, 1:4], out[:, 4]


def _closest_candidates(p: np.ndarray, point_normals: np.ndarray | None, v: np.ndarray, f: np.ndarray,
                        tree: cKDTree, k: int, fn: np.ndarray | None,
                        normal_penalty: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`closest_points_on_mesh` for one block of points, the face-centroid tree and face normals given."""
    _, cand = tree.query(p, k=k)
    cand = cand.reshape(len(p), k)
    best_c = np.full(len(p), np.inf)
    best_d = np.full(len(p), np.inf)
    best_f = np.zeros(len(p), dtype=np.int64)
    best_b = np.zeros((len(p), 3))
    for i in range(k):
        fi = cand[:, i]
        tri = v[f[fi]]
        q, b = closest_point_on_triangles(p, tri[:, 0], tri[:, 1], tri[:, 2])
        d = np.linalg.norm(p - q, axis=1)
        cost = d
        if fn is not None:
            cost = d + normal_penalty * (1.0 - np.einsum("ij,ij->i", point_normals, fn[fi])) / 2.0
        better = cost < best_c
        best_c[better], best_d[better], best_f[better], best_b[better] = cost[better], d[better], fi[better], b[better]
    return best_f, best_b, best_d
