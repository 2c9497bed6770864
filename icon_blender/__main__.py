"""``python -m icon_blender``: the headless command line (see :mod:`icon_blender.cli`)."""

import os
import shutil
import sys

from .cli import main


def _remove_blender_session_dir() -> None:
    """Delete the ``blender_XXXXXX`` folder bpy makes in the system temp folder for its session.

    bpy removes it in the interpreter's teardown, which this command skips (below): without this every run left
    an empty folder behind, thousands of them in a batch.
    """
    bpy = sys.modules.get("bpy")
    if bpy is None:
        return
    session_dir = bpy.app.tempdir.rstrip(os.sep)
    if os.path.basename(session_dir).startswith("blender_"):
        shutil.rmtree(session_dir, ignore_errors=True)


code = main()
sys.stdout.flush()
sys.stderr.flush()
_remove_blender_session_dir()
# Leave without the interpreter's teardown: the bpy 4.2 module can crash while shutting down after its glTF
# exporter ran (exit status -11 although every file was written and renamed into place).
os._exit(code)
