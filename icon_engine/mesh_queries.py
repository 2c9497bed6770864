"""Mesh queries seen through the engine's camera: the z-buffer of a mesh (:func:`rasterize`, an adapter over
:func:`icon_engine.geometry.raster.rasterize` for bundle-world vertices and an OpenCV
``icon_engine.camera.Camera``) and per-vertex visibility. Closest points and signed distance
(:class:`MeshQuery`) live in :mod:`icon_engine.geometry.closest`, normals in :mod:`icon_engine.geometry.normals`;
both are re-exported here. Frames: bundle world in, OpenCV camera for the raster (metres).
"""

from __future__ import annotations

import numpy as np

from . import render
from .camera import Camera
from .geometry.closest import MeshQuery, PointQuery, closest_point_on_triangles
from .geometry.normals import face_normals, vertex_normals
from .geometry.raster import one_torch_thread

__all__ = [
    "MeshQuery", "PointQuery", "Raster", "closest_point_on_triangles", "face_normals", "rasterize",
    "vertex_normals", "vertex_visibility",
]


class Raster(render.Raster):
    """Z-buffer of a mesh seen by a camera (a :class:`icon_engine.render.Raster`): ``depth`` (H, W) float64 camera
    z in metres (inf where empty), ``face`` (H, W) int64 (-1 where empty; alias of ``face_index``), ``bary``
    (H, W, 3) float64 perspective-correct barycentrics of the pixel centre, ``mask`` (H, W) bool."""

    @property
    def face(self) -> np.ndarray:
        return self.face_index


def rasterize(vertices: np.ndarray, faces: np.ndarray, camera: Camera, cull_backfaces: bool = False) -> Raster:
    """Rasterise a triangle mesh (world coordinates) with ``camera``: nearest surface per pixel centre.

    A thin adapter over :func:`icon_engine.render.rasterize` (pixel centres at integer + 0.5). Triangles with a
    corner at camera z ≤ 1 mm are skipped; ``cull_backfaces`` also skips faces turned away from the camera
    (counter-clockwise = outward). Depth and barycentrics are returned in float64, the depth being the
    barycentric interpolation of the corners' depths.
    """
    v_cam = camera.to_camera(vertices)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    keep = (v_cam[f, 2] > 1e-3).all(axis=1)
    if cull_backfaces:
        keep &= _front_facing(v_cam, f)
    fids = np.nonzero(keep)[0]
    with one_torch_thread():
        r = render.rasterize(v_cam, f[fids], camera.K, camera.width, camera.height)
    shape = r.face_index.shape
    face = r.face_index.reshape(-1)
    hit = np.flatnonzero(face >= 0)
    if len(fids) < len(f):  # back to the caller's face ids
        face[hit] = fids[face[hit]]
    b = r.bary.reshape(-1, 3)[hit].astype(np.float64)
    b /= b.sum(axis=1, keepdims=True)
    bary = np.zeros((face.size, 3))
    bary[hit] = b
    depth = np.full(face.size, np.inf)
    depth[hit] = np.einsum("pk,pk->p", b, v_cam[f[face[hit]], 2])
    return Raster(face_index=face.reshape(shape), bary=bary.reshape(shape + (3,)), depth=depth.reshape(shape), faces=f)


def _front_facing(v_cam: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(M,) bool: counter-clockwise (outward) faces turned towards the camera (camera frame, camera at 0)."""
    n = render.face_normals(v_cam, faces)
    return np.einsum("ij,ij->i", n, v_cam[faces[:, 0]]) < 0


def vertex_visibility(
    vertices: np.ndarray, faces: np.ndarray, camera: Camera, tolerance: float = 0.01, raster: Raster | None = None
) -> np.ndarray:
    """(N,) bool: vertex (bundle world) is seen by ``camera`` (:func:`icon_engine.geometry.raster.vertex_visibility`
    on this module's z-buffer: a corner of a face that wins a pixel, or no more than ``tolerance`` metres behind
    the z-buffer where it projects, inside the image)."""
    f = np.asarray(faces, dtype=np.int64)
    r = raster if raster is not None else rasterize(vertices, f, camera)
    return render.vertex_visibility(camera.to_camera(np.asarray(vertices, dtype=np.float64)), f, camera.K,
                                    camera.width, camera.height, tolerance, raster=r)
