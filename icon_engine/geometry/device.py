"""What runs where under ``--device``: the one place where the surface, avatar and texture stages choose their
mesh query and hand their rasteriser inputs to the device (``docs/architecture.md``, "Devices").

On the CPU the stages keep their numpy/scipy code (:class:`~.closest.MeshQuery`, measured the fastest there); on a
GPU the closest-point queries run in :class:`~.torch_closest.TorchMeshQuery` and the rasteriser's fragments on the
device, each call with one upload and one download.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # imported where used: the fit needs this module's constants, not scipy's k-d trees
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
        from .closest import MeshQuery

        return MeshQuery(vertices, faces, k=k, dtype=dtype)
    from .torch_closest import TorchMeshQuery

    return TorchMeshQuery(vertices, faces, device=device)


def on_device(array: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray | torch.Tensor:
    """``array`` unchanged on the CPU (the numpy paths stay as they are), else a tensor on ``device`` (same dtype):
    the rasteriser (:mod:`.raster`) then runs where its input lives."""
    if is_cpu(device):
        return array
    return torch.as_tensor(np.asarray(array), device=device)


def searches_on_host(device: torch.device | str) -> bool:
    """Whether nearest-neighbour searches among tensors on ``device`` run on the host (a scipy k-d tree, the
    fastest on the CPU) rather than as a distance matrix on the device (no copy to the host: GPUs). The fit's
    silhouette coverage asks; the device tests switch it off to run the device path on the CPU."""
    return is_cpu(device)


def module_device(module: torch.nn.Module | object) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU when it has none, or is not a module)."""
    if isinstance(module, torch.nn.Module):
        for tensor in (*module.parameters(), *module.buffers()):
            return tensor.device
    return torch.device("cpu")


#: Cached constant tensors: (values, torch dtype, device) → tensor; numpy values keyed by (dtype, shape, bytes).
_CONSTANTS: dict[tuple, torch.Tensor] = {}
_MAX_CONSTANTS = 4096


def constant(values: object, dtype: torch.dtype | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Fixed ``values`` (numbers, a sequence of numbers, nested sequences or a numpy array) as a tensor on
    ``device`` (``dtype``: torch's default for them when None), made once per (values, dtype, device): the index
    lists and coefficients a loss term uses at every step cost no host-to-device copy per step (a copy from
    pageable host memory waits for the device), and on the CPU a dictionary look-up instead of a new tensor.
    Shared between callers: never modify the result in place."""
    try:
        flat = tuple(values) if isinstance(values, list) else values
        kinds = tuple(map(type, flat)) if dtype is None and isinstance(flat, tuple) else None  # 1 == 1.0 == True
        key: tuple = (flat, kinds, dtype, device)
        hit = _CONSTANTS.get(key)
    except TypeError:  # unhashable: a numpy array or nested lists
        array = np.asarray(values)
        key = (array.dtype.str, array.shape, array.tobytes(), dtype, device)
        hit = _CONSTANTS.get(key)
    if hit is None:
        if len(_CONSTANTS) >= _MAX_CONSTANTS:
            _CONSTANTS.clear()
        array = np.array(values)
        hit = _CONSTANTS[key] = torch.as_tensor(array, dtype=dtype, device=torch.device(device))
    return hit
