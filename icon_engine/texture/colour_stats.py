"""Colour statistics over the mesh: weighted medians and clusters, hair colour, harmonic fill and smoothing.

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..geometry.laplacian import adjacency, mesh_laplacian
from ..geometry.lengths import lengths

#: Window (fraction of the mesh's height) of the colour profile along a part's axis that fills its hidden side.
PROFILE_WINDOW = 0.02
#: Visible vertices a profile window takes at least (it widens where the part shows fewer).
PROFILE_MIN_SAMPLES = 10
#: Colour clusters of a part's seen samples (:func:`_colour_clusters`): at most this many, and clusters whose centres
#: are closer than PROFILE_CLUSTER_MERGE (RGB, 0–255) are one.
PROFILE_CLUSTERS = 6
PROFILE_CLUSTER_MERGE = 45.0
#: Smallest RGB distance (0–255) between the head's hair and face-skin colour clusters for a distinct hair colour.
HAIR_MIN_CONTRAST = 20.0


def harmonic_fill(values: np.ndarray, known: np.ndarray, faces: np.ndarray,
                  fallback_faces: np.ndarray | None = None) -> np.ndarray:
    """Fill ``values`` (N, C) at unknown vertices by solving Laplace's equation on the graph of ``faces``' edges
    with the known vertices fixed. Components without a known vertex take the mean of the known values, or, with
    ``fallback_faces`` (a larger graph, e.g. the whole mesh when ``faces`` is restricted to body parts), are
    filled a second time on that graph."""
    from scipy.sparse.csgraph import connected_components

    n = len(values)
    out = np.asarray(values, dtype=np.float64).copy()
    if known.all():
        return out
    if fallback_faces is not None:
        comp = connected_components(mesh_laplacian(n, faces), directed=False)[1]
        orphan = ~known & (np.bincount(comp, weights=known.astype(np.float64))[comp] == 0)
        if orphan.any():
            return harmonic_fill(harmonic_fill(out, known, faces), ~orphan, fallback_faces)
    fallback = out[known].mean(axis=0) if known.any() else np.full(out.shape[1], 128.0)
    if not known.any():
        out[:] = fallback
        return out
    lap = mesh_laplacian(n, faces)
    unk = np.nonzero(~known)[0]
    kn = np.nonzero(known)[0]
    # A tiny screening term keeps isolated unknown components solvable; they relax to the fallback colour.
    a = (lap[unk][:, unk] + sp.identity(len(unk)) * 1e-6).tocsc()
    rhs = -(lap[unk][:, kn] @ out[kn]) + 1e-6 * fallback[None]
    solve = spla.factorized(a)
    for c in range(out.shape[1]):
        out[unk, c] = solve(np.ascontiguousarray(rhs[:, c]))
    return out


def _smooth_on_mesh(colours: np.ndarray, weight: np.ndarray, faces: np.ndarray,
                    iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted neighbour averaging of vertex colours (N, 3) over the mesh, ``iterations`` times (a diffusion of
    about ``edge · sqrt(iterations / 2)``); colours of zero weight do not spread. Returns (colours, weight)."""
    n = len(colours)
    step = (adjacency(n, faces) + sp.identity(n)).tocsr()
    num = colours * weight[:, None]
    den = weight.astype(np.float64).copy()
    for _ in range(iterations):
        num = step @ num
        den = step @ den
        scale = np.maximum(den, 1e-300)
        num, den = num / scale[:, None] * np.minimum(den, 1.0)[:, None], np.minimum(den, 1.0)
    out = num / np.maximum(den, 1e-12)[:, None]
    return out, den


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-channel weighted median (C,) of ``values`` (K, C) with ``weights`` (K,) > 0."""
    order = np.argsort(values, axis=0)
    w = weights[order]  # (K, C)
    cum = np.cumsum(w, axis=0)
    idx = (cum < 0.5 * cum[-1]).sum(axis=0)
    return np.take_along_axis(values, order, axis=0)[idx, np.arange(values.shape[1])]


def _colour_clusters(colours: np.ndarray, weights: np.ndarray, count: int = PROFILE_CLUSTERS,
                     merge: float = PROFILE_CLUSTER_MERGE) -> np.ndarray:
    """Cluster label (K,) of colours (K, C) (0–255): weighted k-means from farthest-point seeds, then clusters whose
    centres lie within ``merge`` of each other are merged (one garment's lit and shaded sides stay one cluster)."""
    k = min(count, len(colours))
    centres = [colours[int(np.argmax(weights))]]
    for _ in range(k - 1):
        d = np.min(lengths(colours[:, None] - np.asarray(centres)[None]), axis=1)
        if d.max() < merge:
            break
        centres.append(colours[int(np.argmax(d))])
    cen = np.asarray(centres, dtype=np.float64)
    for _ in range(8):
        lab = lengths(colours[:, None] - cen[None]).argmin(axis=1)
        w = np.bincount(lab, weights=weights, minlength=len(cen))
        for j in np.nonzero(w > 0)[0]:
            cen[j] = (colours[lab == j] * weights[lab == j, None]).sum(axis=0) / w[j]
    lab = lengths(colours[:, None] - cen[None]).argmin(axis=1)
    root = np.arange(len(cen))  # merge close centres (union by the lower index)
    for a in range(len(cen)):
        for b in range(a + 1, len(cen)):
            if np.linalg.norm(cen[a] - cen[b]) < merge:
                root[root == root[b]] = root[a]
    return np.unique(root[lab], return_inverse=True)[1]


#: The head's lowest share of its height (the neck, what a collar or a turtleneck covers) is left out of the hair
#: and skin clusters of an upright head (:func:`_hair_colour` with ``upright``).
HAIR_NECK_SHARE = 0.3


def _hair_colour(points: np.ndarray, colours: np.ndarray,
                 upright: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
    """Hair and face-skin colours of a head's seen vertices (``points`` (K, 3) world, Y up; ``colours`` (K, 3)):
    two-means clustering started from the top band's median (hair) and the middle band's median (face). Returns
    (hair colour or None when the clusters are too alike — bald, or a hat the colour of the skin —, skin colour).
    ``upright``: the head stands upright (the rest pose): its neck (the lowest :data:`HAIR_NECK_SHARE` of the seen
    head) is left out — a turtleneck's yellow joined the blond hair's cluster and the back of the head took the
    sweater's colour (rendered subject_101)."""
    y = points[:, 1]
    lo, hi = float(y.min()), float(y.max())
    top = y >= hi - 0.2 * (hi - lo)
    face = (y >= lo + 0.3 * (hi - lo)) & (y <= lo + 0.65 * (hi - lo))
    if top.sum() < 5 or face.sum() < 5:
        return None, np.median(colours, axis=0)
    if upright:  # the face band starts above the neck: only the clusters' members change
        above = y >= lo + HAIR_NECK_SHARE * (hi - lo)
        colours, top, face = colours[above], top[above], face[above]
    centres = np.stack([np.median(colours[top], axis=0), np.median(colours[face], axis=0)])
    for _ in range(8):
        d = lengths(colours[:, None] - centres[None])
        lab = d.argmin(axis=1)
        if (lab == 0).sum() < 5 or (lab == 1).sum() < 5:
            break
        centres = np.stack([np.median(colours[lab == 0], axis=0), np.median(colours[lab == 1], axis=0)])
    hair, skin = centres
    # the hair cluster must own the top of the head
    top_hair = (np.linalg.norm(colours[top] - hair, axis=1) < np.linalg.norm(colours[top] - skin, axis=1)).mean()
    if np.linalg.norm(hair - skin) < HAIR_MIN_CONTRAST or top_hair < 0.5:
        return None, skin
    return hair, skin


#: Colour clusters holding less than this share of a part's samples are ignored (stray pixels).
REGISTRATION_CLUSTER_SHARE = 0.03


def _cluster_centres(colours: np.ndarray, min_share: float = REGISTRATION_CLUSTER_SHARE) -> np.ndarray:
    """Median colours (K, 3) of the colour clusters (:func:`_colour_clusters`) of ``colours`` (N, 3) holding at
    least ``min_share`` of them, largest first (at most ~3000 samples are clustered, evenly subsampled)."""
    c = np.asarray(colours, dtype=np.float64)[:: max(1, len(colours) // 3000)]
    if not len(c):
        return np.zeros((0, 3))
    lab = _colour_clusters(c, np.ones(len(c)))
    counts = np.bincount(lab)
    big = [j for j in np.argsort(-counts, kind="stable") if counts[j] >= min_share * len(c)]
    return np.stack([np.median(c[lab == j], axis=0) for j in big])


def _nearest_colour(colours: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(N,) RGB distance of each colour (N, 3) to the nearest of ``refs`` (K, 3) (inf when K = 0)."""
    if not len(refs):
        return np.full(len(colours), np.inf)
    return lengths(colours[:, None] - refs[None]).min(axis=1)
