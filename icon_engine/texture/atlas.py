"""The UV atlas: xatlas with fast settings, or the projection atlas for large meshes (charts by normal
direction, shelf-packed).

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from ..errors import EngineError
from ..geometry.normals import face_normals
from .uv import UVTexels, uv_texels

#: Atlas padding (texels) between charts.
ATLAS_PADDING = 4


def unwrap(vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """xatlas UV atlas with fast settings: per-corner UVs (M, 3, 2) in [0, 1], origin bottom-left."""
    import xatlas

    v = np.ascontiguousarray(vertices, dtype=np.float32)
    f = np.ascontiguousarray(faces, dtype=np.uint32)
    atlas = xatlas.Atlas()
    atlas.add_mesh(v, f)
    chart = xatlas.ChartOptions()
    chart.max_iterations = 1
    pack = xatlas.PackOptions()
    pack.resolution = int(size)
    pack.padding = ATLAS_PADDING
    pack.bilinear = True
    pack.blockAlign = True
    pack.bruteForce = False
    atlas.generate(chart, pack)
    _vmap, indices, uvs = atlas[0]
    if len(indices) != len(f):
        raise EngineError("internal", "The UV atlas lost faces of the mesh.", "Report this with the input photo.")
    uv = np.asarray(uvs, dtype=np.float64)[np.asarray(indices, dtype=np.int64)]
    uv[..., 1] = 1.0 - uv[..., 1]  # xatlas rows grow downwards; bundle UVs have their origin bottom-left
    return np.clip(uv, 0.0, 1.0)


#: Meshes with more faces than this get the projection atlas (xatlas' chart search takes minutes on 100k faces).
XATLAS_MAX_FACES = 30_000
#: Projection directions of the projection atlas and, per direction, (u axis, v axis) with u × v = direction,
#: so charts keep the counter-clockwise winding.
_AXES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
_UV_AXES = np.array([
    [[0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 1, 0]], [[1, 0, 0], [0, 0, -1]],
    [[1, 0, 0], [0, 0, 1]], [[1, 0, 0], [0, 1, 0]], [[-1, 0, 0], [0, 1, 0]],
], dtype=np.float64)  # fmt: skip


def _face_adjacency(faces: np.ndarray) -> np.ndarray:
    """(K, 2) pairs of faces sharing an edge."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    owner = np.tile(np.arange(len(f)), 3)
    key = e[:, 0] * (int(f.max()) + 1) + e[:, 1]
    order = np.argsort(key, kind="stable")
    key, owner = key[order], owner[order]
    same = key[1:] == key[:-1]
    return np.stack([owner[:-1][same], owner[1:][same]], axis=1)


def _chart_labels(normals: np.ndarray, adjacency: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Projection direction per face: the best-aligned axis, then a few majority votes over neighbours (fewer
    tiny charts), never picking a direction the face turns away from."""
    score = normals @ _AXES.T  # (M, 6)
    label = score.argmax(axis=1)
    m = len(normals)
    for _ in range(rounds):  # neighbour votes per (face, direction) counted by bincount (np.add.at is ~10× slower)
        votes = (np.bincount(adjacency[:, 0] * 6 + label[adjacency[:, 1]], minlength=m * 6)
                 + np.bincount(adjacency[:, 1] * 6 + label[adjacency[:, 0]], minlength=m * 6)).reshape(m, 6)
        votes = votes.astype(np.float64)
        votes[np.arange(m), label] += 1.5
        votes[score < 0.2] = -1.0  # keep each face well in front of its projection plane
        label = votes.argmax(axis=1)
    return label


def _charts(label: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """Chart id per face: connected components of edge-adjacent faces with the same label."""
    from scipy.sparse.csgraph import connected_components

    keep = label[adjacency[:, 0]] == label[adjacency[:, 1]]
    a = adjacency[keep]
    m = len(label)
    graph = sp.coo_matrix((np.ones(len(a)), (a[:, 0], a[:, 1])), shape=(m, m))
    return connected_components(graph, directed=False)[1]


def _shelf_pack(sizes: np.ndarray, atlas: float) -> tuple[np.ndarray, float] | None:
    """Place boxes (C, 2) (width, height) on shelves in an ``atlas`` × ``atlas`` square: offsets (C, 2) and the
    used height, or None when they do not fit."""
    placed = _shelf_pack_free(sizes, atlas)
    return None if placed is None else placed[:2]


def _shelf_pack_free(sizes: np.ndarray, atlas: float) -> tuple[np.ndarray, float, list[list[float]]] | None:
    """:func:`_shelf_pack` and the free rectangles it leaves, [x, y, width, height] (texels): the rest of each
    shelf to its right and the space below the last shelf."""
    order = np.argsort(-sizes[:, 1], kind="stable")  # tallest first: a shelf's first box sets its height
    width, height = sizes[order, 0], sizes[order, 1]
    if len(order) and float(width.max()) > atlas:
        return None
    placed = np.zeros((len(order), 2), dtype=np.float64)
    free: list[list[float]] = []
    y = shelf = x_end = 0.0
    start = 0
    while start < len(order):  # one shelf at a time: boxes while their running width stays within the atlas
        run = np.add.accumulate(width[start:])  # sequential sums: the x a box-by-box loop reaches
        end = start + int(np.searchsorted(run, atlas, side="right"))
        shelf = float(height[start])
        if y + shelf > atlas:
            return None
        placed[start + 1:end, 0] = run[:end - start - 1]
        placed[start:end, 1] = y
        x_end = float(run[end - start - 1])
        start = end
        if start < len(order):
            free.append([x_end, y, atlas - x_end, shelf])
            y += shelf
    pos = np.zeros_like(sizes)
    pos[order] = placed
    free.append([x_end, y, atlas - x_end, shelf])
    free.append([0.0, y + shelf, atlas, atlas - y - shelf])
    return pos, y + shelf, free


def projection_atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int = 2,
                     rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fast UV atlas: faces grouped by their best axis-aligned view direction (±X, ±Y, ±Z) into connected charts,
    each chart projected orthographically on its plane, charts shelf-packed with ``padding`` texels around each.
    Faces of a chart that folds over itself (found by rasterising the atlas) move to their next-best direction
    once; the folds left after that become single-face charts in the space the layout left free (no room: the
    atlas is packed again with them), so no two faces share a texel.

    Returns (per-corner UVs (M, 3, 2) in [0, 1], origin bottom-left; chart id per face (M,))."""
    uv, chart, _ = _projection_atlas(vertices, faces, size, padding, rounds)
    return uv, chart


def _projection_atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int = 2,
                      rounds: int = 3, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, UVTexels]:
    """:func:`projection_atlas` and the texels of its final layout (the last fold check's raster, which the bake
    reuses instead of rasterising the atlas again; that full-size check runs on ``device``)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = face_normals(v, f)
    adj = _face_adjacency(f)
    label = _chart_labels(n, adj)
    score = n @ _AXES.T
    single = np.zeros(len(f), dtype=bool)
    moved = np.zeros(len(f), dtype=bool)
    last = False
    for attempt in range(rounds + 2):
        chart = _charts(np.where(single, -1 - np.arange(len(f)), label), adj)
        local = np.einsum("mkc,mdc->mkd", v[f], _UV_AXES[label])  # (M, 3, 2) metres in each face's plane
        local[single] = _own_plane(v[f[single]], n[single])
        uv, scale, free = _pack_charts_layout(local, chart, size, padding)
        last = last or attempt == rounds + 1
        texels = uv_texels(uv, size, device)  # the fold check's raster, which the bake reuses
        if last:
            break
        bad = _overlapping_faces(uv, f, size, texels)
        if not bad.any():
            break
        if attempt > 0:  # the folds left after the first round become single-face charts in the space the
            idx = np.nonzero(bad)[0]  # layout left free, at its scale, and only they are rasterised again (the
            placed = _place_in_free(_own_plane(v[f[idx]], n[idx]), scale, free, size, padding)  # other charts
            if placed is not None:  # only lost faces, so nothing else overlaps)
                uv[idx] = placed
                chart = np.where(bad, int(chart.max()) + 1 + np.cumsum(bad) - 1, chart)
                texels = _replace_faces(texels, idx, uv_texels(placed, size, device))
                break
            single |= bad  # no room left: single charts, and the next layout is the last (a chart of one face
            last = True  # cannot fold, and the other charts only lost faces: overlaps in a chart's plane do not
            continue  # depend on the scale)
        # a folded face moves to its next-best direction once; folded again, or without a direction it faces
        # well, or after ``rounds`` rounds, it becomes a chart of its own
        idx = np.nonzero(bad)[0]
        s2 = score[idx].copy()
        s2[np.arange(len(idx)), label[idx]] = -np.inf
        nxt = s2.argmax(axis=1)
        ok = (s2[np.arange(len(idx)), nxt] >= 0.2) & ~moved[idx] & (attempt < rounds)
        label[idx[ok]] = nxt[ok]
        moved[idx[ok]] = True
        single[idx[~ok]] = True
    return uv, chart, texels


def _replace_faces(texels: UVTexels, idx: np.ndarray, new: UVTexels) -> UVTexels:
    """``texels`` with the fragments of faces ``idx`` (K,) replaced by ``new`` (the :func:`uv_texels` of those K
    faces alone, face k ↦ idx[k])."""
    replaced = np.zeros(int(max(texels.face.max(initial=-1), idx.max(initial=-1))) + 1, dtype=bool)
    replaced[idx] = True
    keep = ~replaced[texels.face]  # a lookup table instead of np.isin's sort
    return UVTexels(np.concatenate([texels.face[keep], idx[new.face]]),
                    np.concatenate([texels.texel[keep], new.texel]),
                    np.concatenate([texels.bary[keep], new.bary]), texels.size)


def _own_plane(tri: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Triangles (K, 3, 3) in their own plane: (K, 3, 2) coordinates with counter-clockwise winding kept."""
    e1 = tri[:, 1] - tri[:, 0]
    e1 /= np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-20)
    e2 = np.cross(normals, e1)
    rel = tri - tri[:, :1]
    return np.stack([np.einsum("kic,kc->ki", rel, e1), np.einsum("kic,kc->ki", rel, e2)], axis=-1)


def _overlapping_faces(uv: np.ndarray, faces: np.ndarray, size: int,
                       texels: UVTexels | None = None) -> np.ndarray:
    """(M,) bool: faces sharing a texel centre with another face that has no vertex in common with it
    (``texels``: :func:`uv_texels` of ``uv`` at ``size`` when already at hand)."""
    t = uv_texels(uv, size) if texels is None else texels
    shared = np.bincount(t.texel, minlength=size * size)[t.texel] > 1  # only texels with several fragments
    fp, ff = t.texel[shared], t.face[shared]
    order = np.lexsort((ff, fp))
    fp, ff = fp[order], ff[order]
    same = fp[1:] == fp[:-1]
    a, b = ff[:-1][same], ff[1:][same]
    touching = (faces[a][:, :, None] == faces[b][:, None, :]).any(axis=(1, 2))
    bad = np.zeros(len(faces), dtype=bool)
    bad[a[~touching]] = True
    bad[b[~touching]] = True
    return bad


def _pack_charts(local: np.ndarray, chart: np.ndarray, size: int, padding: int) -> np.ndarray:
    """Scale and shelf-pack charts (per-corner plane coordinates (M, 3, 2) metres, chart id per face) into [0, 1]².

    Tall charts are turned by 90° (winding kept) so shelves stay low; the largest scale that fits is found by
    bisection."""
    return _pack_charts_layout(local, chart, size, padding)[0]


def _pack_charts_layout(local: np.ndarray, chart: np.ndarray, size: int,
                        padding: int) -> tuple[np.ndarray, float, list[list[float]]]:
    """:func:`_pack_charts` and its layout: the scale (texels per metre) and the free rectangles it leaves
    ([x, y, width, height] texels, y down from the top: :func:`_shelf_pack_free`)."""
    local = local.copy()
    n_charts = int(chart.max()) + 1

    order = np.argsort(chart, kind="stable")
    starts = np.searchsorted(chart[order], np.arange(n_charts))  # every chart id up to the max has a face

    def bounds(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo = np.minimum.reduceat(np.take(np.minimum(np.minimum(pts[:, 0], pts[:, 1]), pts[:, 2]), order, axis=0),
                                 starts, axis=0)  # corner-wise min/max: faster than .min(axis=1) over 3 corners
        hi = np.maximum.reduceat(np.take(np.maximum(np.maximum(pts[:, 0], pts[:, 1]), pts[:, 2]), order, axis=0),
                                 starts, axis=0)
        return lo, hi

    lo, hi = bounds(local)
    tall = (hi - lo)[:, 1] > (hi - lo)[:, 0]
    turn = tall[chart]
    local[turn] = np.stack([local[turn][..., 1], -local[turn][..., 0]], axis=-1)  # rotate by −90°
    lo, hi = bounds(local)
    extent = hi - lo
    area = float((extent[:, 0] * extent[:, 1]).sum())

    def attempt(scale: float) -> tuple[np.ndarray, float, list[list[float]]] | None:
        return _shelf_pack_free(np.ceil(extent * scale) + 2 * padding + 1, float(size))

    good, bad = 0.0, 1.2 * size / np.sqrt(max(area, 1e-12))  # texels per metre: the upper bound never fits
    while attempt(bad) is not None:
        good, bad = bad, bad * 1.5
    for _ in range(18):
        mid = 0.5 * (good + bad)
        if attempt(mid) is not None:
            good = mid
        else:
            bad = mid
    placed = attempt(good) if good > 0 else None
    if placed is None:
        raise EngineError("internal", "The UV charts did not fit the texture.", "Use a larger texture size.")
    pos, _, free = placed
    # texel coordinates: x to the right, y down from the top; chart plane v axis points up
    tx = pos[chart][:, None, 0] + padding + (local[..., 0] - lo[chart][:, None, 0]) * good
    ty = pos[chart][:, None, 1] + padding + (hi[chart][:, None, 1] - local[..., 1]) * good
    uv = np.stack([tx / size, 1.0 - ty / size], axis=-1)
    return np.clip(uv, 0.0, 1.0), good, free


def _place_in_free(local: np.ndarray, scale: float, free: list[list[float]], size: int,
                   padding: int) -> np.ndarray | None:
    """Per-corner UVs (K, 3, 2) of K single-face charts (their own plane coordinates (K, 3, 2) metres) placed at
    ``scale`` (texels per metre) into the ``free`` rectangles an atlas layout left (:func:`_pack_charts_layout`;
    used space is taken from them), each with ``padding`` texels around it as in the packing; None when they do
    not all fit (then the whole atlas is packed again)."""
    lo, hi = local.min(axis=1), local.max(axis=1)
    boxes = np.ceil((hi - lo) * scale) + 2 * padding + 1
    pos = np.zeros_like(boxes)
    for i in np.argsort(-boxes[:, 1], kind="stable"):
        w, h = boxes[i]
        for rect in free:
            if w <= rect[2] and h <= rect[3]:
                pos[i] = rect[:2]
                rect[0] += w  # the rest of the rectangle to the right stays free (its full height)
                rect[2] -= w
                break
        else:
            return None
    tx = pos[:, None, 0] + padding + (local[..., 0] - lo[:, None, 0]) * scale
    ty = pos[:, None, 1] + padding + (hi[:, None, 1] - local[..., 1]) * scale
    return np.clip(np.stack([tx / size, 1.0 - ty / size], axis=-1), 0.0, 1.0)


def _atlas(v: np.ndarray, f: np.ndarray, size: int, atlas: str,
           device: str) -> tuple[np.ndarray, UVTexels, float, float]:
    """The bake's UV atlas (per-corner UVs (M, 3, 2)) and its texels (:func:`uv_texels`), with the wall and the
    CPU (this thread's) seconds it took: xatlas up to :data:`XATLAS_MAX_FACES` faces with ``atlas="auto"``, else
    the projection atlas."""
    t0, c0 = time.perf_counter(), time.thread_time()
    if atlas == "auto" and len(f) <= XATLAS_MAX_FACES:
        uv = unwrap(v, f, size)
        texels = uv_texels(uv, size, device)
    else:
        uv, _, texels = _projection_atlas(v, f, size, device=device)
    return uv, texels, time.perf_counter() - t0, time.thread_time() - c0
