"""Exposure equalisation between photos: one gain per photo and channel from pairs of points both see.

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

import numpy as np

#: Exposure equalisation (:func:`exposure_gains`): points count when a photo's weight exceeds EXPOSURE_ALPHA; a
#: point is paired with the nearest point another photo sees within EXPOSURE_RADIUS_M (metres); fewest pairs for
#: a least-squares gain (fewer give the ratio of medians).
EXPOSURE_ALPHA = 0.02
EXPOSURE_RADIUS_M = 0.06
MIN_OVERLAP = 40
#: Pairs count only when both photos see their points at view-angle cosines this close (camera-fixed shading).
EXPOSURE_COS_BAND = 0.15
#: Range of the gains (about ± half a stop: cameras' auto-exposure between shots of one session); beyond it the
#: difference is lighting that follows the camera (a person turning in front of a fixed light), which a gain would
#: only move to the wrong side (bench/multiview.py's renders: back photo ×0.56).
GAIN_RANGE = (0.7, 1.45)


def _fit_gain(x: np.ndarray, y: np.ndarray) -> float:
    """One channel's gain ``g`` with ``y ≈ g · x`` (colours 0–255 of paired points): least squares, twice more
    without residuals beyond 2.5 robust sigmas (pairs that straddle two garments); with fewer than
    :data:`MIN_OVERLAP` pairs the ratio of medians."""
    g = float(np.median(y) / max(float(np.median(x)), 1.0))
    if len(x) < MIN_OVERLAP:
        return g
    keep = np.ones(len(x), dtype=bool)
    for _ in range(3):
        if keep.sum() < MIN_OVERLAP // 2:
            break
        xk, yk = x[keep], y[keep]
        g = float(xk @ yk / max(float(xk @ xk), 1e-9))
        r = y - g * x
        mad = float(np.median(np.abs(r - np.median(r)))) * 1.4826 + 1.0
        keep = np.abs(r) <= 2.5 * mad
    return g


def _pair_gains(colours: np.ndarray, alphas: np.ndarray, seen: np.ndarray, points: np.ndarray, cos: np.ndarray,
                j: int, k: int) -> tuple[int, int, np.ndarray]:
    """(pairs, pairs of the same point, per-channel gain (3,) mapping photo ``k``'s colours onto photo ``j``'s) from
    the points photo k sees paired with the nearest point photo j sees within :data:`EXPOSURE_RADIUS_M` at a
    view-angle cosine within :data:`EXPOSURE_COS_BAND` (arguments as :func:`exposure_gains`'s, ``seen`` (K, N)
    bool)."""
    from scipy.spatial import cKDTree

    ref_ok, mine = np.nonzero(seen[j])[0], np.nonzero(seen[k])[0]
    if not len(ref_ok) or not len(mine):
        return 0, 0, np.ones(3)
    dist, idx = cKDTree(points[ref_ok]).query(points[mine], distance_upper_bound=EXPOSURE_RADIUS_M)
    hit = np.isfinite(dist)
    near, mine, dist = ref_ok[idx[hit]], mine[hit], dist[hit]
    alike = np.abs(cos[k][mine] - cos[j][near]) <= EXPOSURE_COS_BAND
    near, mine, dist = near[alike], mine[alike], dist[alike]
    if not len(mine):
        return 0, 0, np.ones(3)
    src, ref = colours[k][mine], colours[j][near]
    return len(mine), int((dist == 0).sum()), np.array([_fit_gain(src[:, c], ref[:, c]) for c in range(3)])


def exposure_gains(colours: np.ndarray, alphas: np.ndarray, points: np.ndarray,
                   cosines: np.ndarray | None = None) -> np.ndarray:
    """(K, 2, 3) per-photo, per-channel (gain, offset) mapping photo k's colours onto the first photo's exposure:
    ``c' = gain · c + offset`` (the offset is 0: a gain per channel — exposure, white balance — is what differs
    between photos of one shoot; a fitted offset tinted dark garments, bench/multiview.py wave 5). ``colours``
    (K, N, 3) and ``alphas`` (K, N): every photo's colour and photo weight of the same surface points ``points``
    (N, 3, metres); a point counts for a photo when its weight exceeds :data:`EXPOSURE_ALPHA`.

    Every pair of photos (j, k) gives a gain from its point pairs (:func:`_pair_gains`: the same point where the
    photos overlap, the neighbouring surface across the seam where they do not, as front and back photos), and the
    photos' log-gains are solved together by least squares over the pairs, each weighted by its number of point
    pairs, the first photo's held at 0 (and each photo pulled to 0 with the weight of one pair, so a photo that
    shares nothing with the others keeps gain 1). A pair that meets only across a seam (fewer than
    :data:`MIN_OVERLAP` pairs of the same point) counts only between photos that no chain of same-point pairs
    links (front and back alone; not the front and the back of a turnaround, whose sides link them). Pairs that go
    round the person (front → side → back → other side
    → front) close a loop: shading that follows each camera (a light on the camera, off its axis) biases each
    pair's gain one way round the loop and cancels in the joint solve, where chaining each photo to the ones
    before it multiplied the biases (bench/multiview.py, 4 views: every other photo at the lowest gain, 0.70; wave
    7). With ``cosines`` (K, N) (cos of each photo's view angle) only pairs seen at similar angles count. Gains are
    clipped to :data:`GAIN_RANGE`; two photos give (nearly) the pair's gain."""
    k_views = len(colours)
    out = np.zeros((k_views, 2, 3))
    out[:, 0] = 1.0
    if k_views < 2:
        return out
    seen = alphas > EXPOSURE_ALPHA
    pts = np.asarray(points, dtype=np.float64)
    cos = np.zeros(alphas.shape) if cosines is None else np.asarray(cosines, dtype=np.float64)
    pairs = {(j, k): _pair_gains(colours, alphas, seen, pts, cos, j, k) for k in range(1, k_views) for j in range(k)}
    group = list(range(k_views))  # photos linked by pairs that see the same points (union-find)

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for (j, k), (_, same, _) in pairs.items():
        if same >= MIN_OVERLAP:
            group[root(k)] = root(j)
    rows, rhs, weights = [], [], []
    for (j, k), (n, same, g) in pairs.items():
        if n == 0 or (same < MIN_OVERLAP and root(j) == root(k)):
            continue  # across a seam only between photos that no chain of shared points links
        row = np.zeros(k_views - 1)  # unknowns: log-gains of photos 1..K-1 (photo 0's is 0)
        row[k - 1] += 1.0
        if j > 0:
            row[j - 1] -= 1.0
        rows.append(row)
        rhs.append(np.log(np.maximum(g, 1e-6)))
        weights.append(float(n))
    if not rows:
        return out
    prior = np.eye(k_views - 1)  # each photo's log-gain pulled to 0 with the weight of one pair
    a = np.concatenate([np.asarray(rows), prior])
    b = np.concatenate([np.asarray(rhs), np.zeros((k_views - 1, 3))])
    sw = np.sqrt(np.concatenate([np.asarray(weights), np.ones(k_views - 1)]))[:, None]
    log_gain = np.linalg.lstsq(a * sw, b * sw, rcond=None)[0]  # (K-1, 3)
    out[1:, 0] = np.clip(np.exp(log_gain), *GAIN_RANGE)
    return out
