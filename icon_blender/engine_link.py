"""Where the add-on finds the engine's torch-free bundle reader and the engine's source.

In the built extension zip the engine source is shipped inside the add-on under ``engine/`` and imported
relatively; in the source checkout the ``icon_engine`` package sits beside ``icon_blender``. Neither path
touches ``sys.path``: the engine process gets the source folder through its own PYTHONPATH.
"""

from __future__ import annotations

from pathlib import Path

try:  # built zip: <addon>/engine/icon_engine
    from .engine.icon_engine import bundle
    from .engine.icon_engine.bundle import Bundle, BundleError, read_bundle
    from .engine.icon_engine.bundle.skeleton import (
        JOINT_NAMES,
        PARENTS,
        axis_angle_to_matrix,
        forward_kinematics,
        matrix_to_quaternion,
    )
except ImportError:  # source checkout: icon_engine is importable beside icon_blender
    from icon_engine import bundle
    from icon_engine.bundle import Bundle, BundleError, read_bundle
    from icon_engine.bundle.skeleton import (
        JOINT_NAMES,
        PARENTS,
        axis_angle_to_matrix,
        forward_kinematics,
        matrix_to_quaternion,
    )


def engine_source_dir() -> Path:
    """The folder that holds the ``icon_engine`` package (goes on the engine process's PYTHONPATH)."""
    return Path(bundle.__file__).resolve().parents[2]


def engine_requirements() -> Path:
    """The engine's pinned requirements.txt (shipped beside the engine source)."""
    return engine_source_dir() / "requirements.txt"


__all__ = ["Bundle", "BundleError", "JOINT_NAMES", "PARENTS", "axis_angle_to_matrix", "engine_requirements",
           "engine_source_dir", "forward_kinematics", "matrix_to_quaternion", "read_bundle"]
