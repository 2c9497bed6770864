"""``python -m icon_engine``: see :mod:`icon_engine.cli`."""

import os
import sys

# numpy's and scipy's OpenBLAS threads, idle between the engine's many small matrix products, spin on the cores the
# engine's own worker threads need (2 cores: 18–20 % of the job's CPU, and its wall time with it; docs/benchmarks.md,
# wave 35). The engine's process runs BLAS on one thread unless the caller chose a count; set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .cli import main  # noqa: E402
from .errors import EXIT_CANCELLED  # noqa: E402

status = main()
if status == EXIT_CANCELLED:  # cancelled: everything is cleaned up and reported; skip the slow interpreter teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
sys.exit(status)
