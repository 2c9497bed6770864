"""ICON's learned networks (Xiu et al., CVPR 2022) loaded from the user's official checkpoints.

Clean-room re-implementation: module names and tensor shapes match the released checkpoints
(``normal.ckpt``, ``icon-filter.ckpt``, ``icon-nofilter.ckpt``) so that they load strictly; the code is ours.

- :mod:`icon_engine.icon.networks` — the normal generators, the hourglass filter and the implicit MLP.
- :mod:`icon_engine.icon.checkpoints` — safe loading, validation, :func:`find_icon_data`, :func:`describe_icon_data`.
- :mod:`icon_engine.icon.infer` — ICON's inference path, ``build_icon_surface``.

See docs/icon_networks.md.
"""

from __future__ import annotations

from .checkpoints import (
    IconData,
    IconNetworks,
    describe_icon_data,
    find_icon_data,
    load_icon_networks,
    require_icon_data,
)

__all__ = [
    "IconData",
    "IconNetworks",
    "describe_icon_data",
    "find_icon_data",
    "load_icon_networks",
    "require_icon_data",
]
