"""Rendering helpers on the engine's one rasteriser (:mod:`icon_engine.geometry.raster`): normals, normal maps,
colours, Lambert shading.

Frames and units follow ``docs/architecture.md``: vertices are given in the **OpenCV camera frame** (x right,
y down, z forward, metres; use :func:`to_camera` or ``Camera.to_camera`` for bundle-world points), ``K`` is a 3×3
pinhole intrinsic matrix in pixels, and pixel (i, j) — column i, row j — covers [i, i+1) × [j, j+1) with its
centre at (i + 0.5, j + 0.5). Images are indexed ``[row, column]`` = ``[j, i]``. The rasteriser, the soft
silhouette and vertex visibility live in :mod:`icon_engine.geometry.raster` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .geometry.barycentric import barycentric_blend
from .geometry.normals import face_normals, vertex_normals
from .geometry.raster import (
    CHUNK_PAIRS,
    NEAR,
    ArrayLike,
    Raster,
    _to_numpy,
    project,
    rasterize,
    rasterize_torch,
    soft_silhouette,
    to_camera,
    vertex_visibility,
)

__all__ = [
    "CHUNK_PAIRS", "NEAR", "Raster", "ShadedPixels", "face_normals", "normals_to_rgb", "pixel_rays", "project",
    "raster_normals", "rasterize", "rasterize_torch", "render_colors", "render_depth", "render_mask",
    "render_normal_pair", "render_normals", "render_shaded", "shade", "soft_silhouette", "to_camera",
    "vertex_normals", "vertex_visibility",
]


# ----------------------------------------------------------------------------------------------------------------
# Helpers built on the raster


def _np(x: ArrayLike) -> np.ndarray:
    return _to_numpy(x) if isinstance(x, torch.Tensor) else np.asarray(x)


def render_mask(vertices_cam: ArrayLike, faces: ArrayLike, K: ArrayLike, width: int, height: int) -> np.ndarray:
    """(H, W) bool silhouette of the mesh."""
    return rasterize(vertices_cam, faces, K, width, height).mask


def render_depth(vertices_cam: ArrayLike, faces: ArrayLike, K: ArrayLike, width: int, height: int) -> np.ndarray:
    """(H, W) float32 camera-frame z of the nearest surface (metres), ``inf`` on background."""
    return rasterize(vertices_cam, faces, K, width, height).depth


def raster_normals(raster: Raster, vertices_cam: np.ndarray, faces: np.ndarray, space: str = "camera",
                   R: ArrayLike | None = None) -> np.ndarray:
    """Unit normals (H, W, 3) float32 of ``raster`` (made from these vertices/faces), background 0.

    Interpolated area-weighted vertex normals, in the camera frame or (``space="world"``, needs ``R``) the world.
    """
    if space not in ("camera", "world"):
        raise ValueError(f"space must be 'camera' or 'world', not {space!r}")
    vn = vertex_normals(vertices_cam, faces)
    if space == "world":
        if R is None:
            raise ValueError("space='world' needs the camera rotation R (world → camera)")
        vn = vn @ np.asarray(R, dtype=np.float64)  # R^T n for row vectors
    img = raster.interpolate(vn)
    norm = np.linalg.norm(img, axis=2, keepdims=True)
    return np.where(norm > 1e-12, img / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def render_normals(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    space: str = "camera",
    R: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel interpolated, re-normalised vertex normals → (normals (H, W, 3) float32, mask (H, W) bool).

    ``space="camera"``: OpenCV camera frame (a surface facing the camera has n_z < 0); ``space="world"``: the
    bundle world, which needs the camera rotation ``R`` (world → camera). Background is 0.
    """
    v = _np(vertices_cam).astype(np.float64)
    f = _np(faces).astype(np.int64)
    raster = rasterize(v, f, K, width, height)
    return raster_normals(raster, v, f, space, R), raster.mask


def render_normal_pair(vertices_cam: ArrayLike, faces: ArrayLike, K: ArrayLike, width: int, height: int,
                       space: str = "camera", R: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ICON-style front/back normal maps, pixel-aligned with the photo → (front, back (H, W, 3), mask (H, W)).

    ``front`` holds the normals of the nearest surface along each pixel ray, ``back`` those of the farthest
    surface along the same ray (what a camera behind the body sees, mirrored horizontally). For ICON's orthographic
    cameras this equals "render from behind and flip horizontally"; for a perspective camera it is the exactly
    pixel-aligned version. Both are in the same frame (``space``, see :func:`render_normals`): front-facing
    normals have n_z < 0 in camera space, back ones n_z > 0. Both maps share one silhouette ``mask``.
    """
    v = _np(vertices_cam).astype(np.float64)
    f = _np(faces).astype(np.int64)
    front = rasterize(v, f, K, width, height)
    back = rasterize(v, f, K, width, height, farthest=True)
    return raster_normals(front, v, f, space, R), raster_normals(back, v, f, space, R), front.mask


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray | None = None, background: int = 128) -> np.ndarray:
    """Normal image (H, W, 3) in [−1, 1] → uint8 colours ``(n + 1) / 2 · 255``; background grey."""
    rgb = np.clip((normals + 1.0) * 127.5, 0, 255).astype(np.uint8)
    if mask is not None:
        rgb[~mask] = background
    return rgb


def _colors01(colors: ArrayLike | None, n: int) -> np.ndarray:
    if colors is None:
        return np.full((n, 3), 0.75, dtype=np.float32)
    raw = _np(colors)
    c = raw.astype(np.float32)
    if c.ndim == 1:
        c = np.broadcast_to(c, (n, c.shape[0]))
    if np.issubdtype(raw.dtype, np.integer) or c.max(initial=0.0) > 1.0:  # 0–255 colours
        c = c / 255.0
    return np.ascontiguousarray(c[:, :3])


def render_colors(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    colors: ArrayLike,
    background: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated per-vertex colours ``colors`` (V, C) → (image (H, W, C) float32, mask (H, W) bool)."""
    raster = rasterize(vertices_cam, faces, K, width, height)
    return raster.interpolate(colors, background), raster.mask


def shade(normals_cam: np.ndarray, colors: np.ndarray, rays: np.ndarray, light_dir: np.ndarray | None = None,
          ambient: float = 0.35) -> np.ndarray:
    """Lambert shading of ``colors`` (..., 3) with normals and unit view ``rays`` (..., 3) in camera space.

    ``light_dir`` (3,) is the direction light travels (camera frame); ``None`` = a headlight along each ray.
    Two-sided: a normal facing away is lit like its flip.
    """
    if light_dir is None:
        lam = np.abs(np.sum(normals_cam * rays, axis=-1))
    else:
        d = np.asarray(light_dir, dtype=np.float64)
        d = d / np.linalg.norm(d)
        facing = np.sign(-np.sum(normals_cam * rays, axis=-1, keepdims=True))
        facing[facing == 0] = 1.0
        lam = np.clip(np.sum(normals_cam * facing * -d, axis=-1), 0.0, 1.0)
    return colors * (ambient + (1.0 - ambient) * lam)[..., None]


def pixel_rays(K: ArrayLike, width: int, height: int) -> np.ndarray:
    """Unit camera-frame view rays (H, W, 3) through every pixel centre."""
    Kinv = np.linalg.inv(np.asarray(K, dtype=np.float64))
    i, j = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pts = np.stack([i, j, np.ones_like(i)], axis=-1) @ Kinv.T
    return pts / np.linalg.norm(pts, axis=-1, keepdims=True)


def render_shaded(
    vertices_cam: ArrayLike,
    faces: ArrayLike,
    K: ArrayLike,
    width: int,
    height: int,
    colors: ArrayLike | None = None,
    light_dir: ArrayLike | None = None,
    ambient: float = 0.35,
) -> tuple[np.ndarray, np.ndarray]:
    """Lambert-shaded render → (rgb (H, W, 3) float32 in [0, 1], mask (H, W) bool).

    ``colors``: per-vertex (V, 3) or one (3,) colour: integers (e.g. uint8) are 0–255, floats [0, 1] (or
    0–255 when any exceeds 1); default light grey. ``light_dir``
    (camera frame, direction the light travels) defaults to a headlight.
    """
    v = _np(vertices_cam).astype(np.float64)
    f = _np(faces).astype(np.int64)
    raster = rasterize(v, f, K, width, height)
    shading = ShadedPixels.of(raster, v, K, light_dir, ambient)
    rgb = np.zeros((int(height), int(width), 3), dtype=np.float32)
    rgb[shading.rows, shading.cols] = shading.colored(colors)
    return rgb, raster.mask


@dataclass
class ShadedPixels:
    """The covered pixels of a raster with their Lambert factors: everything of a shaded render but the colours
    (:meth:`colored` adds those), computed on the covered pixels only.

    ``rows``, ``cols`` (P,) pixel indices; ``corners`` (P, 3) the covering face's vertex ids; ``bary`` (P, 3)
    float32 perspective-correct weights; ``light`` (P,) float32 ``ambient + (1 − ambient)·λ`` (see :func:`shade`).
    """

    rows: np.ndarray
    cols: np.ndarray
    corners: np.ndarray
    bary: np.ndarray
    light: np.ndarray
    vertex_count: int

    @classmethod
    def of(cls, raster: Raster, vertices_cam: np.ndarray, K: ArrayLike, light_dir: ArrayLike | None = None,
           ambient: float = 0.35) -> ShadedPixels:
        """Shade the covered pixels of ``raster`` (numpy, made from ``vertices_cam`` (V, 3) camera frame and its
        faces through ``K``) as :func:`render_shaded` does: interpolated, re-normalised vertex normals, view rays
        through the pixel centres, ``light_dir`` (camera frame, direction light travels; None = headlight)."""
        faces = np.asarray(raster.faces, dtype=np.int64)
        rows, cols = np.nonzero(raster.mask)
        corners = faces[raster.face_index[rows, cols]]
        bary = raster.bary[rows, cols]
        vn = vertex_normals(vertices_cam, faces).astype(np.float32)
        n = barycentric_blend(bary, corners, vn)
        norm = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), 0.0).astype(np.float32).astype(np.float64)
        Kinv = np.linalg.inv(np.asarray(K, dtype=np.float64))
        pts = np.stack([cols + 0.5, rows + 0.5, np.ones(len(rows))], axis=1) @ Kinv.T
        rays = pts / np.linalg.norm(pts, axis=1, keepdims=True)
        light = shade(n, np.ones((len(rows), 1)), rays, light_dir, ambient)[:, 0]
        return cls(rows, cols, corners, bary, light.astype(np.float32), len(vertices_cam))

    def colored(self, colors: ArrayLike | None = None) -> np.ndarray:
        """(P, 3) float32 shaded colours in [0, 1] of per-vertex ``colors`` (as :func:`render_shaded` takes them)."""
        albedo = barycentric_blend(self.bary, self.corners, _colors01(colors, self.vertex_count))
        return np.clip(albedo * self.light[:, None], 0.0, 1.0)
