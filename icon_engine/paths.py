"""Where the engine keeps generated data (the open body model, caches). Torch-free.

The cache folder is ``$ICON_ENGINE_CACHE`` if set, else ``$XDG_CACHE_HOME/icon_engine`` (Linux),
``~/Library/Caches/icon_engine`` (macOS) or ``%LOCALAPPDATA%\\icon_engine`` (Windows).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir(create: bool = True) -> Path:
    """The user's cache folder for the engine (created when ``create``)."""
    env = os.environ.get("ICON_ENGINE_CACHE")
    if env:
        path = Path(env)
    elif sys.platform == "win32":
        path = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "icon_engine"
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Caches" / "icon_engine"
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "icon_engine"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
