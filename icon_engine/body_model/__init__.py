"""Body models in the SMPL-X layout: the built-in open body (generated from anny) or the user's SMPL-X file.

Entry point: :func:`load_body_model`. See docs/body_model.md and docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .model import BodyModel, BodyOutput, describe_body_model, load_body_model
    from .open_body import build_open_body, open_body_path

#: Public names → the submodule that defines them, imported on first use (PEP 562): importing the package (e.g.
#: for the CLI's ``body`` sub-command parser) must not import torch, which costs about a second at start-up.
_LAZY = {"BodyModel": "model", "BodyOutput": "model", "describe_body_model": "model", "load_body_model": "model",
         "build_open_body": "open_body", "open_body_path": "open_body"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def convert_pkl(src: Path, dst: Path | None = None) -> Path:
    """Convert the user's own official SMPL-X ``.pkl`` to ``.npz`` (this UNPICKLES ``src``). Returns ``dst``."""
    from .official import convert_pkl as _convert

    return _convert(Path(src), None if dst is None else Path(dst))


__all__ = [
    "BodyModel",
    "BodyOutput",
    "build_open_body",
    "convert_pkl",
    "describe_body_model",
    "load_body_model",
    "open_body_path",
]
