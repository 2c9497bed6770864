"""Closest points and signed distance against a triangle mesh in torch, on any device: the GPU counterpart of
:class:`~.closest.MeshQuery` (same answers, same sign convention: **positive outside**);
:func:`icon_engine.geometry.device.mesh_query` picks between the two for a device.

Frames and units: the caller's (the engine: bundle world or canonical SMPL-X frame, metres).

Candidate pruning is a two-level hierarchy built once on the device: faces sorted along a Morton curve of their
centroids are cut into blocks of :data:`BLOCK_FACES`, blocks into groups of :data:`GROUP_BLOCKS`, each with its
axis-aligned box. A point searches the faces of the blocks nearest by box distance among the groups nearest by box
distance, all with fixed-size ``topk`` (no Python loop per point, no host read inside the chunk loop). The answer
is **exact** when the best distance found is at most the box distance of everything not searched; the few points
where that is not proven (deep inside a thick part) are searched again with wider candidate lists — one host read
per round, at most a handful of rounds per query, the last one searching every block.

Every answer stays on the device in :meth:`TorchMeshQuery.query_tensors`; :meth:`TorchMeshQuery.query` takes and
returns numpy like :class:`~.closest.MeshQuery` (one upload and one download per call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .closest import MeshQuery, PointQuery
from .normals import vertex_normals
from .raster import one_torch_thread

#: Faces per leaf block and blocks per group of the candidate hierarchy.
BLOCK_FACES = 8
GROUP_BLOCKS = 16
#: Groups, then blocks, searched per point in the first round (on the open body, bench/device_query.py: proven
#: exact for 93 % of points within 2 cm of the surface, 81 % of points anywhere in its box); every further round
#: searches :data:`WIDEN` times more of both for the points whose answer is not yet proven exact.
FIRST_GROUPS = 12
FIRST_BLOCKS = 32
WIDEN = 3
#: Point–face pairs evaluated per chunk (memory ≈ 200 bytes per pair in float32): GPU and CPU.
PAIRS_GPU = 1 << 23
PAIRS_CPU = 1 << 17
#: Squared edge length below which a segment counts as a point, and squared doubled area below which a triangle
#: counts as degenerate (its interior is never the answer, its edges are), in squared mesh units.
_TINY = 1e-30
#: Triangles with ab·ab ac·ac − (ab·ac)² below this many float epsilons of ab·ab ac·ac count as slivers.
_SLIVER = 64


@dataclass
class TorchPointQuery:
    """Per-point answers as tensors on the query's device (the fields of :class:`~.closest.PointQuery`):
    ``distance`` (N,) signed, positive outside; ``face`` (N,) int64; ``bary`` (N, 3); ``closest`` (N, 3);
    ``normal`` (N, 3) unit interpolated vertex normal at the closest point."""

    distance: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    closest: torch.Tensor
    normal: torch.Tensor

    def numpy(self) -> PointQuery:
        """The same answers as a numpy :class:`~.closest.PointQuery` (float64; one host copy per field)."""
        def host(x: torch.Tensor) -> np.ndarray:
            return x.detach().cpu().numpy()

        return PointQuery(host(self.distance).astype(np.float64), host(self.face).astype(np.int64),
                          host(self.bary).astype(np.float64), host(self.closest).astype(np.float64),
                          host(self.normal).astype(np.float64))


def _closest_in_slots(p: torch.Tensor, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances (n, c) of points ``p`` (n, 3) to candidate triangles given by their slot data (n, c, 12)
    (corner a, edges ab and ac, ab·ab, ab·ac, ac·ac), and the closest points' parameters (n, c, 2): closest =
    a + s·ab + t·ac: the projection onto the triangle's plane when it falls inside, else the nearest of the three
    edges' closest points (segments clamped to their ends; degenerate triangles answer with their edges). Only
    ap·ab, ap·ac and |ap|² are computed per pair; the candidates are compared by the quadratic form of the
    squared distance in (s, t)."""
    ap = p[:, None, :] - data[..., 0:3]
    e = (ap * data[..., 3:6]).sum(-1)  # ap·ab
    g = (ap * data[..., 6:9]).sum(-1)  # ap·ac
    pp = (ap * ap).sum(-1)
    d00, d01, d11 = data[..., 9], data[..., 10], data[..., 11]

    def dist2(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return pp - 2.0 * (s * e + t * g) + s * s * d00 + 2.0 * s * t * d01 + t * t * d11

    def safe(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > _TINY, x, torch.ones_like(x))

    det = d00 * d11 - d01 * d01
    s_in = (d11 * e - d01 * g) / safe(det)
    t_in = (d00 * g - d01 * e) / safe(det)
    # slivers (sin² of the corner angle below a few float epsilons) answer with their edges: their projection is
    # ill-conditioned, and the edges are within the sliver's width of the true answer
    sliver = det <= _SLIVER * torch.finfo(det.dtype).eps * d00 * d11 + _TINY
    inside = ~sliver & (s_in >= 0) & (t_in >= 0) & (s_in + t_in <= 1)
    zero = torch.zeros_like(e)
    s_ab = (e / safe(d00)).clamp(0.0, 1.0)  # edge ab: (s, 0)
    t_ac = (g / safe(d11)).clamp(0.0, 1.0)  # edge ac: (0, t)
    bc2 = d00 - 2.0 * d01 + d11  # edge bc: (1 − u, u)
    u_bc = ((g - e - d01 + d00) / safe(bc2)).clamp(0.0, 1.0)
    cand_s = torch.stack([s_ab, zero, 1.0 - u_bc], -1)
    cand_t = torch.stack([zero, t_ac, u_bc], -1)
    cand_d = torch.stack([dist2(s_ab, zero), dist2(zero, t_ac), dist2(1.0 - u_bc, u_bc)], -1)
    k = cand_d.argmin(-1, keepdim=True)
    s = torch.where(inside, s_in, torch.gather(cand_s, -1, k).squeeze(-1))
    t = torch.where(inside, t_in, torch.gather(cand_t, -1, k).squeeze(-1))
    d = torch.where(inside, dist2(s_in, t_in), torch.gather(cand_d, -1, k).squeeze(-1))
    return d.clamp(min=0.0), torch.stack([s, t], -1)


def _box_distance2(p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Squared distance of points ``p`` (..., 3) to axis-aligned boxes [lo, hi] (..., 3) (0 inside)."""
    gap = torch.clamp(torch.maximum(lo - p, p - hi), min=0.0)
    return (gap * gap).sum(-1)


def _spread_bits(x: torch.Tensor) -> torch.Tensor:
    """10-bit integers → their bits spread to every third bit (Morton interleave)."""
    x = (x | (x << 16)) & 0x030000FF
    x = (x | (x << 8)) & 0x0300F00F
    x = (x | (x << 4)) & 0x030C30C3
    return (x | (x << 2)) & 0x09249249


def _smallest(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` smallest entries per row of ``values`` (n, m) → (their column ids (n, k), the (k+1)-th smallest
    (n,): a lower bound on every column left out; inf when none is left out)."""
    m = values.shape[1]
    if k >= m:
        ids = torch.arange(m, device=values.device).expand(values.shape[0], m)
        return ids, torch.full(values.shape[:1], float("inf"), dtype=values.dtype, device=values.device), values
    vals, ids = torch.topk(values, k + 1, dim=1, largest=False, sorted=True)
    return ids[:, :k], vals[:, k], vals[:, :k]


class TorchMeshQuery:
    """Closest-point / signed-distance queries against a fixed triangle mesh (vertices (N, 3), faces (M, 3)) on
    ``device``, in ``dtype`` (float32 by default: ~1e-6 of the mesh's size). The interface of
    :class:`~.closest.MeshQuery` (``query``, ``signed_distance``, ``interpolate``, numpy ``vertices``/``faces``/
    ``vertex_normals``) plus :meth:`query_tensors` for callers that keep their data on the device."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError("faces must be a non-empty (M, 3) array")
        if self.faces.min() < 0 or self.faces.max() >= len(self.vertices):
            raise ValueError(f"face indices must lie in [0, {len(self.vertices)})")
        self.vertex_normals = vertex_normals(self.vertices, self.faces)
        self.device, self.dtype = torch.device(device), dtype
        # Coordinates relative to the mesh's box centre: float32 keeps its precision for meshes far from 0.
        self.origin = 0.5 * (self.vertices.min(0) + self.vertices.max(0))
        dev = self.device
        v = torch.as_tensor(self.vertices - self.origin, dtype=dtype, device=dev)
        f = torch.as_tensor(self.faces, device=dev)
        self.faces_t = f
        self.normals_t = torch.as_tensor(self.vertex_normals, dtype=dtype, device=dev)
        self._origin_t = torch.as_tensor(self.origin, dtype=dtype, device=dev)
        self._build(v[f])

    def _build(self, tri: torch.Tensor) -> None:
        """The candidate hierarchy from the triangles (M, 3, 3): Morton-sorted faces, block and group boxes, and
        per slot the edge data of :func:`_closest_in_slots`."""
        m = tri.shape[0]
        centre = tri.mean(dim=1)
        lo, hi = centre.min(0).values, centre.max(0).values
        q = ((centre - lo) / torch.clamp(hi - lo, min=1e-12) * 1023).long().clamp(0, 1023)
        code = _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << 1) | (_spread_bits(q[:, 2]) << 2)
        order = torch.argsort(code)
        n_blocks = -(-m // BLOCK_FACES)
        n_groups = -(-n_blocks // GROUP_BLOCKS)
        pad = n_groups * GROUP_BLOCKS * BLOCK_FACES - m
        if pad:  # repeat the last face: a duplicate candidate changes no answer
            order = torch.cat([order, order[-1:].expand(pad)])
        self.order = order  # (G·B·S,) face id of each slot
        t = tri[order]  # (G·B·S, 3, 3)
        corners = t.reshape(n_groups * GROUP_BLOCKS, BLOCK_FACES * 3, 3)
        self.block_lo, self.block_hi = corners.min(1).values, corners.max(1).values
        self.group_lo = self.block_lo.reshape(n_groups, GROUP_BLOCKS, 3).min(1).values
        self.group_hi = self.block_hi.reshape(n_groups, GROUP_BLOCKS, 3).max(1).values
        self.n_groups = n_groups
        ab, ac = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
        d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
        # per slot: a, ab, ac, ab·ab, ab·ac, ac·ac (the rest of the closest-point maths derives from these)
        self.slot_data = torch.cat([t[:, 0], ab, ac, torch.stack([d00, d01, d11], -1)], dim=1)  # (G·B·S, 12)

    def _search(self, p: torch.Tensor, k_groups: int, k_blocks: int) -> tuple[torch.Tensor, ...]:
        """Best face among the candidates of points ``p`` (n, 3) (mesh-centred): (slot (n,), barycentrics (n, 3),
        closest (n, 3), squared distance (n,), exact (n,) bool: nothing left out can be nearer)."""
        lb_g = _box_distance2(p[:, None, :], self.group_lo[None], self.group_hi[None])  # (n, G)
        groups, bound_g, _ = _smallest(lb_g, k_groups)
        blocks = (groups[:, :, None] * GROUP_BLOCKS + torch.arange(GROUP_BLOCKS, device=p.device)).flatten(1)
        lb_b = _box_distance2(p[:, None, :], self.block_lo[blocks], self.block_hi[blocks])  # (n, kg·B)
        pick, bound_b, _ = _smallest(lb_b, k_blocks)
        blocks = torch.gather(blocks, 1, pick)
        slots = (blocks[:, :, None] * BLOCK_FACES + torch.arange(BLOCK_FACES, device=p.device)).flatten(1)
        d2, st = _closest_in_slots(p, self.slot_data[slots])  # (n, c), (n, c, 2)
        best_d2, j = d2.min(1)
        rows = torch.arange(len(p), device=p.device)
        data = self.slot_data[slots[rows, j]]
        s, t = st[rows, j, 0], st[rows, j, 1]
        closest = data[:, 0:3] + s[:, None] * data[:, 3:6] + t[:, None] * data[:, 6:9]
        bary = torch.stack([1.0 - s - t, s, t], dim=1)
        best_d2 = ((closest - p) ** 2).sum(-1)
        exact = best_d2 <= torch.minimum(bound_g, bound_b)
        return slots[rows, j], bary, closest, best_d2, exact

    def _search_all(self, p: torch.Tensor, k_groups: int, k_blocks: int) -> tuple[torch.Tensor, ...]:
        """:meth:`_search` over ``p`` in chunks sized to the device's pair budget (no host reads)."""
        budget = PAIRS_CPU if self.device.type == "cpu" else PAIRS_GPU
        per_point = k_blocks * BLOCK_FACES + k_groups * GROUP_BLOCKS + self.n_groups
        chunk = max(1, budget // per_point)
        # at least one (possibly empty) chunk: an empty point set gets empty answers of the right shapes
        parts = [self._search(p[s:s + chunk], k_groups, k_blocks) for s in range(0, max(len(p), 1), chunk)]
        return tuple(torch.cat(xs) for xs in zip(*parts, strict=True))

    @torch.no_grad()
    def query_tensors(self, points: torch.Tensor) -> TorchPointQuery:
        """Closest face, barycentrics, closest point, interpolated normal and signed distance of points (N, 3)
        (any float tensor; moved to the query's device) → :class:`TorchPointQuery` on the device."""
        pts = points.reshape(-1, 3).to(device=self.device)
        p = (pts - torch.as_tensor(self.origin, dtype=pts.dtype, device=self.device)).to(self.dtype)  # centred first
        with one_torch_thread(self.device):
            q = self._answer(p)
        q.closest += self._origin_t
        return q

    def query(self, points: np.ndarray) -> PointQuery:
        """Numpy points (N, 3) → numpy :class:`~.closest.PointQuery` (float64), like :meth:`MeshQuery.query
        <.closest.MeshQuery.query>`: one upload, one download (the points are made mesh-centred in float64)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.origin
        with torch.no_grad(), one_torch_thread(self.device):
            out = self._answer(torch.as_tensor(pts, dtype=self.dtype, device=self.device)).numpy()
        out.closest += self.origin
        return out

    def _answer(self, p: torch.Tensor) -> TorchPointQuery:
        """The answers for mesh-centred points ``p`` (N, 3) (closest points mesh-centred too)."""
        total_blocks = self.n_groups * GROUP_BLOCKS
        kg, kb = min(FIRST_GROUPS, self.n_groups), min(FIRST_BLOCKS, total_blocks)
        slot, bary, closest, d2, exact = self._search_all(p, kg, kb)
        todo = torch.nonzero(~exact).squeeze(1)  # host read: how many points need a wider search
        while len(todo) and (kg < self.n_groups or kb < total_blocks):
            kg, kb = min(self.n_groups, kg * WIDEN), min(total_blocks, kb * WIDEN)
            s2, b2, c2, dd, ex = self._search_all(p[todo], kg, kb)
            slot[todo], bary[todo], closest[todo], d2[todo] = s2, b2, c2, dd
            todo = todo[~ex]
        face = self.order[slot]
        normal = torch.einsum("ni,nic->nc", bary, self.normals_t[self.faces_t[face]])
        normal = normal / torch.clamp(torch.linalg.vector_norm(normal, dim=1, keepdim=True), min=1e-20)
        dist = torch.sqrt(d2)
        side = ((p - closest) * normal).sum(-1)
        return TorchPointQuery(torch.where(side >= 0, dist, -dist), face, bary, closest, normal)

    signed_distance = MeshQuery.signed_distance
    interpolate = MeshQuery.interpolate
