"""``python -m icon_blender``: the headless command line (see :mod:`icon_blender.cli`)."""

import sys

from .cli import main

sys.exit(main())
