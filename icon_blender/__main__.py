"""``python -m icon_blender``: the headless command line (see :mod:`icon_blender.cli`)."""

import os
import sys

from .cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# Leave without the interpreter's teardown: the bpy 4.2 module can crash while shutting down after its glTF
# exporter ran (exit status -11 although every file was written and renamed into place).
os._exit(code)
