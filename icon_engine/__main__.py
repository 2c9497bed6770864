"""``python -m icon_engine``: see :mod:`icon_engine.cli`."""

import sys

from .cli import main

sys.exit(main())
