"""ICON for Blender: one photo of a person → a clothed, textured avatar rigged to an SMPL-X armature.

The add-on runs the ICON engine in its own Python process, reads the result bundle and builds Blender data.
Importing this package does not import bpy: the Blender-free core (``icon_blender.core``) is usable and
tested on its own; :func:`register` loads the bpy parts.
"""

from __future__ import annotations

__version__ = "0.1.0"


def register() -> None:
    """Register preferences, properties, operators and the sidebar panel (Blender calls this)."""
    from . import ui

    ui.register(__package__)


def unregister() -> None:
    """Remove everything :func:`register` added (Blender calls this)."""
    from . import ui

    ui.unregister()
