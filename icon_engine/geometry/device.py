"""What runs where under ``--device``: the one place where the surface, avatar and texture stages choose their
mesh query and hand their rasteriser inputs to the device (``docs/architecture.md``, "Devices").

On the CPU the stages keep their numpy/scipy code (:class:`~.closest.MeshQuery`, measured the fastest there); on a
GPU the closest-point queries run in :class:`~.torch_closest.TorchMeshQuery` and the rasteriser's fragments on the
device, each call with one upload and one download.
"""

from __future__ import annotations

import numpy as np
import torch

from .closest import MeshQuery
from .torch_closest import TorchMeshQuery


def is_cpu(device: torch.device | str) -> bool:
    """Whether ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a :class:`torch.device`) is the CPU."""
    return torch.device(device).type == "cpu"


def mesh_query(vertices: np.ndarray, faces: np.ndarray, device: torch.device | str = "cpu", k: int = 1,
               dtype: type = np.float32) -> MeshQuery | TorchMeshQuery:
    """The closest-point / signed-distance query of a mesh (vertices (V, 3), faces (F, 3), the caller's frame) for
    ``device``: the numpy/k-d tree :class:`~.closest.MeshQuery` (one-rings of the ``k`` nearest vertices, in
    ``dtype``) on the CPU, the exact :class:`~.torch_closest.TorchMeshQuery` (float32) elsewhere. Both answer
    ``query``, ``signed_distance`` and ``interpolate`` with numpy arrays (signed distance positive outside)."""
    if is_cpu(device):
        return MeshQuery(vertices, faces, k=k, dtype=dtype)
    return TorchMeshQuery(vertices, faces, device=device)


def on_device(array: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray | torch.Tensor:
    """``array`` unchanged on the CPU (the numpy paths stay as they are), else a tensor on ``device`` (same dtype):
    the rasteriser (:mod:`.raster`) then runs where its input lives."""
    if is_cpu(device):
        return array
    return torch.as_tensor(np.asarray(array), device=device)
