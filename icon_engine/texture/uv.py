"""Rasterised fragments for the bake: the photo's depth layers (camera pixels) and the texels of a UV atlas.

Frames and units: see :mod:`icon_engine.texture`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Camera
from ..geometry.device import on_device
from ..geometry.normals import face_normals
from ..geometry.raster import fragments


@dataclass
class DepthLayers:
    """Every surface fragment seen by a camera, sorted by (pixel, depth). ``zbuf`` (H·W,) nearest depth (inf =
    background), ``face`` (H·W,) nearest face (−1 = background); ``pix``/``depth``/``front``/``frag_face`` per
    fragment."""

    zbuf: np.ndarray
    face: np.ndarray
    pix: np.ndarray
    depth: np.ndarray
    front: np.ndarray
    frag_face: np.ndarray
    width: int
    height: int


def depth_layers(vertices: np.ndarray, faces: np.ndarray, camera: Camera, device: str = "cpu") -> DepthLayers:
    """Rasterise the mesh (bundle world) in ``camera``: z-buffer plus all fragments (depth-peeling queries).

    Deliberately not :func:`icon_engine.render.rasterize`: the mirror query peels every camera-facing fragment
    along a pixel ray, which render's nearest/farthest layers cannot give, and the z-buffer comes free from the
    same fragments (an extra render pass measured +0.1 s per bake on the sample photo). Same pixel-centre
    convention as render (centre of pixel (i, j) at (i + 0.5, j + 0.5)); tests/test_texture.py checks they agree.
    """
    pix2d, z = camera.project(vertices)
    f = np.asarray(faces, dtype=np.int64)
    ok = (z[f] > 1e-4).all(axis=1)
    fid = np.nonzero(ok)[0]
    frag_f, frag_p, bary = _fragments(pix2d[f[fid]], camera.width, camera.height, device)
    frag_f = fid[frag_f]
    depth = 1.0 / (bary / z[f[frag_f]]).sum(axis=1)  # perspective-correct
    normals = face_normals(vertices, f)
    centre = np.asarray(vertices)[f].mean(axis=1)
    facing = np.einsum("ij,ij->i", normals, camera.center[None] - centre) > 0
    order = np.lexsort((depth, frag_p))
    frag_f, frag_p, depth = frag_f[order], frag_p[order], depth[order]
    n = camera.width * camera.height
    zbuf = np.full(n, np.inf)
    face = np.full(n, -1, dtype=np.int64)
    first = np.ones(len(frag_p), dtype=bool)
    first[1:] = frag_p[1:] != frag_p[:-1]
    zbuf[frag_p[first]] = depth[first]
    face[frag_p[first]] = frag_f[first]
    return DepthLayers(zbuf, face, frag_p, depth, facing[frag_f], frag_f, camera.width, camera.height)


@dataclass
class UVTexels:
    """Every texel centre covered by the UV triangles of an S × S atlas (:func:`uv_texels`): ``face`` (P,) face
    index, ``texel`` (P,) flat texel index row · S + column (row 0 at the top: v = 1), ``bary`` (P, 3) float32
    barycentrics of the face's corners. A texel on an edge shared by two faces appears once per face."""

    face: np.ndarray
    texel: np.ndarray
    bary: np.ndarray
    size: int


def uv_texels(uv: np.ndarray, size: int, device: str = "cpu") -> UVTexels:
    """Rasterise per-corner UVs (M, 3, 2) (origin bottom-left) into an S × S atlas (all fragments, no test);
    ``device``: where the rasteriser runs."""
    xy = np.empty(np.shape(uv), dtype=np.float64)
    xy[..., 0] = np.asarray(uv)[..., 0] * size
    xy[..., 1] = (1.0 - np.asarray(uv)[..., 1]) * size
    ff, fp, bary = _fragments(xy, size, size, device)
    return UVTexels(ff, fp, bary.astype(np.float32), int(size))


def _fragments(tri: np.ndarray, width: int, height: int,
               device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`icon_engine.geometry.raster.fragments` of 2-D triangles (F, 3, 2) pixels, run on ``device``."""
    return fragments(on_device(tri, device), width, height)


def rasterize_uv(uv: np.ndarray, size: int, texels: UVTexels | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Texels covered by per-corner UVs (M, 3, 2) in an S × S atlas: (face (S, S) int, −1 = empty; bary (S, S, 3)
    float32). ``texels``: the atlas' :func:`uv_texels` when already at hand (the projection atlas' last check)."""
    t = uv_texels(uv, size) if texels is None else texels
    face = np.full(size * size, -1, dtype=np.int64)
    bimg = np.zeros((size * size, 3), dtype=np.float32)
    face[t.texel] = t.face
    bimg[t.texel] = t.bary
    return face.reshape(size, size), bimg.reshape(size, size, 3)


def _one_fragment_per_texel(texels: UVTexels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(texel (T,), face (T,), barycentrics (T, 3)) with one fragment per covered texel: a texel on an edge shared
    by two faces keeps the last one."""
    last = np.full(texels.size * texels.size, -1, dtype=np.int64)
    last[texels.texel] = np.arange(len(texels.texel))
    pick = last[last >= 0]
    return texels.texel[pick], texels.face[pick], np.take(texels.bary, pick, axis=0)


def _dilate(image: np.ndarray, covered: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge padding: empty texels within ``steps`` texels of an island copy the nearest covered texel
    (``image`` (S, S, C) uint8, ``covered`` (S, S) bool). Returns (padded image, covered or padded)."""
    import cv2

    if covered.all() or not covered.any():
        return image, covered.copy()
    # distance of every empty texel to the nearest covered one (5 × 5 chamfer mask: within 2 % of Euclidean),
    # labelled with that texel; covered texels carry their own labels, which map back to their positions
    dist, labels = cv2.distanceTransformWithLabels((~covered).astype(np.uint8), cv2.DIST_L2, 5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    flat_cov = np.flatnonzero(covered)
    where = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    where[labels.reshape(-1)[flat_cov]] = flat_cov
    grow = (~covered) & (dist <= steps)
    img = image.reshape(-1, image.shape[-1]).copy()
    g = np.flatnonzero(grow)
    img[g] = np.take(img, where[labels.reshape(-1)[g]], axis=0)
    return img.reshape(image.shape), covered | grow
