"""Mesh normals and orientation (numpy, or torch with autograd), in the frame of the given vertices.

Counter-clockwise faces seen from outside give outward normals and a positive signed volume.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .lengths import lengths

ArrayLike = np.ndarray | torch.Tensor


def vertex_normals(vertices: ArrayLike, faces: ArrayLike) -> np.ndarray | torch.Tensor:
    """Area-weighted unit vertex normals (V, 3), same frame as ``vertices``; keeps numpy/torch (and autograd).

    Works on (V, 3) or batched (B, V, 3) torch tensors. Counter-clockwise faces (seen from outside) give outward
    normals. Isolated vertices get (0, 0, 0).
    """
    if isinstance(vertices, torch.Tensor):
        f = torch.as_tensor(faces if isinstance(faces, torch.Tensor) else np.asarray(faces), dtype=torch.int64,
                            device=vertices.device)
        tri = vertices[..., f, :]  # (..., F, 3, 3)
        fn = torch.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :], dim=-1)
        vn = torch.zeros_like(vertices)
        idx = f.reshape(-1)
        contrib = fn.unsqueeze(-2).expand(*fn.shape[:-1], 3, 3).reshape(*fn.shape[:-2], -1, 3)
        vn = vn.index_add(vertices.dim() - 2, idx, contrib)
        return F.normalize(vn, dim=-1, eps=1e-12)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    norm = lengths(vn)[..., None]
    return vn / np.maximum(norm, 1e-12)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals (F, 3) of a numpy mesh (counter-clockwise = outward)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return fn / np.maximum(lengths(fn)[..., None], 1e-12)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume (cubic units of ``vertices``) enclosed by the triangles: positive when they wind outward.

    Computed about the corners' centroid, so it does not lose precision far from the origin; for a closed mesh it
    is the enclosed volume whatever the centre."""
    t = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    c = t - t.reshape(-1, 3).mean(axis=0)
    return float(np.einsum("ij,ij->i", c[:, 0], np.cross(c[:, 1], c[:, 2])).sum() / 6.0)


def outward_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) flipped, if needed, to point out of the closed mesh."""
    normals = vertex_normals(np.asarray(vertices, dtype=np.float64), faces)
    return -normals if signed_volume(vertices, faces) < 0 else normals
