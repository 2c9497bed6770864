"""ICON for Blender's engine: one photo of a person → a clothed, textured, SMPL-X-rigged result bundle.

Importing this package is cheap and torch-free; :func:`reconstruct` loads the heavy stages on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path


def reconstruct(*args: Any, **kwargs: Any) -> Path:
    """Photo → bundle folder. See :func:`icon_engine.pipeline.reconstruct`."""
    from .pipeline import reconstruct as _reconstruct

    return _reconstruct(*args, **kwargs)


__all__ = ["__version__", "reconstruct"]
