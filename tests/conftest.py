"""Shared pytest set-up: repository root on sys.path, paths to optional shared data."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_PHOTOS = ROOT.parent / "shared" / "images" / "dev"

# bpy reads this at import: keep Blender's user folders (extensions, config) out of the real home, in a folder
# removed when the session ends (subprocesses inherit the variable and make none).
if "BLENDER_USER_RESOURCES" not in os.environ:
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="icon-tests-blender-")
    atexit.register(shutil.rmtree, os.environ["BLENDER_USER_RESOURCES"], ignore_errors=True)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_photos() -> list[Path]:
    """The development photos in ../shared/images/dev; skips the test when that folder is absent."""
    photos = sorted(p for p in SHARED_PHOTOS.glob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not photos:
        pytest.skip("../shared/images/dev is absent: this case needs the real development photos")
    return photos
