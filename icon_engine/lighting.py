"""The photo's directional light, estimated from the seen surface: how much brighter a surface facing one way is.

A photo in sunlight (or under one strong lamp) shows one garment lit on one side and in deep shadow on the other.
The texture's fill of the hidden side (:func:`icon_engine.texture.unseen_side_fill`) copies the colours seen near the
silhouette; where the silhouette lies in shadow (a jumper's belly facing the ground, icon_fb9d20fd) the hidden side
would take the shadow's colour. :func:`fit_directional_light` measures the light from the seen vertices and
:func:`shading_factors` tells how lit each vertex is; the fill then weighs samples in shadow less.

Model: the log-luminance of a seen vertex is its garment's log-albedo plus ``b · n`` (``n`` its unit normal, Y up):
one offset per group (body part) and one light vector ``b`` for the whole photo, solved by robust (Huber) least
squares. ``exp(b · n)`` is then the relative brightness of a surface facing ``n``. The component of ``b`` along the
camera's viewing axis is left out: what faces the camera is also where prints and faces are, so brightness
towards the camera says as much about the albedo as about the light. Frames: normals in the bundle world (the
photo's pose), the viewing axis in the same frame; luminance from RGB in 0–255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .image_io import LUMA_WEIGHTS

#: Samples darker than this luminance (0–255) are left out of the fit: their logarithm is noise.
MIN_LUMINANCE = 8.0
#: A light counts only when ``|b|`` (natural-log brightness per unit of normal) reaches this (exp(0.3) = 1.35×
#: between a surface facing the light and one at right angles to it) ...
MIN_STRENGTH = 0.3
#: ... and it explains at least this fraction of the samples' log-luminance variance within their groups.
MIN_EXPLAINED = 0.08
#: ... and it comes from above the horizon or at most this far below it (sine of the elevation of ``b`` in the Y-up
#: bundle world: −0.2 ≈ 12° below): sunlight, skylight, ceiling and studio key lights all come from above or the
#: side. A "light" from below is the albedo of a part (black shorts above bare legs in a raised-leg pose), not light.
MIN_ELEVATION_SIN = -0.2
#: Shading factors are kept within [1 / MAX_FACTOR, MAX_FACTOR] (a deep shadow's colour is mostly noise and
#: bounce light, not albedo × light).
MAX_FACTOR = 2.5
#: Fewer seen samples than this: no estimate.
MIN_SAMPLES = 200


@dataclass
class DirectionalLight:
    """``vector``: ``b`` (3,) in the normals' frame (log brightness per unit of normal, direction towards the light);
    ``explained``: fraction of the within-group log-luminance variance it explains; ``samples``: how many."""

    vector: np.ndarray
    explained: float
    samples: int

    @property
    def strength(self) -> float:
        """``|b|``: log brightness ratio between a surface facing the light and one at right angles to it."""
        return float(np.linalg.norm(self.vector))

    @property
    def elevation_sin(self) -> float:
        """Sine of the light's elevation above the horizon (normals in the Y-up bundle world)."""
        return float(self.vector[1]) / max(self.strength, 1e-12)

    @property
    def significant(self) -> bool:
        """Strong enough, explaining enough and from above (:data:`MIN_STRENGTH`, :data:`MIN_EXPLAINED`,
        :data:`MIN_ELEVATION_SIN`) to be used."""
        return (self.strength >= MIN_STRENGTH and self.explained >= MIN_EXPLAINED
                and self.elevation_sin >= MIN_ELEVATION_SIN)


def fit_directional_light(normals: np.ndarray, colours: np.ndarray, groups: np.ndarray,
                          view_axis: np.ndarray | None = None, iterations: int = 6) -> DirectionalLight | None:
    """The light (:class:`DirectionalLight`) that best explains the seen samples' brightness, or None with fewer than
    :data:`MIN_SAMPLES` usable samples.

    ``normals`` (K, 3) unit normals of the seen samples; ``colours`` (K, 3) their RGB (0–255); ``groups`` (K,) int:
    one albedo per group (e.g. body part); ``view_axis`` (3,): the camera's viewing direction in the normals' frame,
    whose component of the light is left out. Robust: Huber weights at 1.5 robust standard deviations."""
    n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    lum = np.asarray(colours, dtype=np.float64).reshape(-1, 3) @ LUMA_WEIGHTS
    g = np.asarray(groups).reshape(-1)
    ok = lum > MIN_LUMINANCE
    if ok.sum() < MIN_SAMPLES:
        return None
    n, y, g = n[ok], np.log(lum[ok]), np.unique(g[ok], return_inverse=True)[1]
    basis = np.eye(3)
    if view_axis is not None:  # the two directions across the viewing axis
        d = np.asarray(view_axis, dtype=np.float64) / max(float(np.linalg.norm(view_axis)), 1e-12)
        u = np.cross(d, [0.0, 1.0, 0.0] if abs(d[1]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        basis = np.stack([u, np.cross(d, u)])
    x = np.concatenate([np.eye(int(g.max()) + 1)[g], n @ basis.T], axis=1)
    w = np.ones(len(y))
    coef = np.zeros(x.shape[1])
    for _ in range(iterations):
        coef = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)[0]
        r = y - x @ coef
        scale = max(1.4826 * float(np.median(np.abs(r))), 1e-6)
        w = 1.0 / np.maximum(1.0, np.abs(r) / (1.5 * scale))
    k = len(basis)
    light = coef[-k:] @ basis
    within = y - x[:, :-k] @ coef[:-k]  # log-luminance less each group's albedo
    total = float(np.var(within))
    explained = float(np.var(n @ light)) / total if total > 1e-12 else 0.0
    return DirectionalLight(light, min(explained, 1.0), int(len(y)))


def shading_factors(normals: np.ndarray, light: DirectionalLight | None,
                    reference: np.ndarray | None = None) -> np.ndarray:
    """(N,) brightness of surfaces facing ``normals`` (N, 3) under ``light`` relative to the median one of
    ``reference`` (N,) bool (e.g. the seen vertices; all by default), within [1 / :data:`MAX_FACTOR`,
    :data:`MAX_FACTOR`]; ones when there is no significant light. Dividing a seen colour by its factor gives the
    colour it would have under the median lighting."""
    n = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    if light is None or not light.significant or not len(n):
        return np.ones(len(n))
    log_f = n @ light.vector
    ref = log_f if reference is None or not np.any(reference) else log_f[np.asarray(reference, dtype=bool)]
    return np.clip(np.exp(log_f - np.median(ref)), 1.0 / MAX_FACTOR, MAX_FACTOR)
