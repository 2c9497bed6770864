"""``python -m icon_engine``: see :mod:`icon_engine.cli`."""

import os
import sys

from .cli import main
from .errors import EXIT_CANCELLED

status = main()
if status == EXIT_CANCELLED:  # cancelled: everything is cleaned up and reported; skip the slow interpreter teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
sys.exit(status)
