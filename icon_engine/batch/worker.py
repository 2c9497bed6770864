"""One batch worker: loads the models once, then reconstructs photos one at a time into small status records.

Used by the local worker processes (:mod:`icon_engine.batch.local`) and by the Ray actors
(:mod:`icon_engine.batch.ray_backend`). Importing this module does not import torch: :func:`limit_threads` must
run before torch is loaded so that the thread-pool size applies to every library.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import EngineError
from ..options import ReconstructOptions
from .jobs import BatchJob
from .manifest import utc_now

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that size a worker's OpenMP, MKL, OpenBLAS and numexpr pools to ``threads``. They
    must be in the worker process's environment when it starts: OpenBLAS reads its count once, when numpy loads it
    (importing this module already did), so :func:`limit_threads` alone leaves it at every core of the machine."""
    return {name: str(int(threads)) for name in _THREAD_VARIABLES}


@contextmanager
def child_thread_environment(threads: int) -> Iterator[None]:
    """Worker processes started inside the block begin with :func:`thread_environment` ``(threads)``; this process's
    own environment is restored after it."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(thread_environment(threads))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def limit_threads(threads: int) -> None:
    """Limit this process to ``threads`` compute threads (torch intra-op, OpenMP, BLAS; BLAS only when the process
    started with :func:`thread_environment`, see there)."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass


def options_to_dict(options: ReconstructOptions) -> dict[str, Any]:
    """Plain (picklable, JSON-able) form of ``options`` for sending to workers."""
    out = asdict(options)
    for key in ("smplx_model", "icon_data"):
        out[key] = str(out[key]) if out[key] is not None else None
    return out


def options_from_dict(data: dict[str, Any]) -> ReconstructOptions:
    data = dict(data)
    for key in ("smplx_model", "icon_data"):
        data[key] = Path(data[key]) if data.get(key) else None
    return ReconstructOptions(**data)


def error_record(job: BatchJob, error: dict[str, str], seconds: float = 0.0, worker: str = "") -> dict[str, Any]:
    """A ``failed`` manifest record for ``job`` with ``error`` (``code``, ``message``, ``hint``)."""
    return {"photo": job.key, "name": job.name, "status": "failed", "seconds": round(seconds, 3),
            "cpu_seconds": None, "warnings": [], "error": error, "bundle": None, "worker": worker,
            "finished": utc_now()}


class Worker:
    """Holds the options, the device and the loaded body model of one worker process or actor."""

    def __init__(self, options: ReconstructOptions, threads: int | None = None) -> None:
        if threads:
            limit_threads(threads)
        from ..options import resolve_device
        from ..pipeline import load_body

        self.options = options
        self.device = resolve_device(options.device)
        self.body_model = load_body(options, self.device)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, job: BatchJob, out_dir: str | Path) -> dict[str, Any]:
        """Reconstruct ``job`` into ``out_dir/<job.name>``; returns its manifest record (never raises for a photo's
        own failure: bad image, no person and engine bugs become ``failed`` records)."""
        from ..pipeline import reconstruct

        wall, cpu = time.perf_counter(), time.process_time()
        record: dict[str, Any] = {"photo": job.key, "name": job.name, "worker": self.name}
        try:
            bundle = reconstruct(job.photo, out_dir, self.options, bundle_name=job.name, body_model=self.body_model)
            meta = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
            record.update(status="done", warnings=[str(w) for w in meta.get("warnings", [])], error=None,
                          bundle=str(bundle))
        except EngineError as err:
            record.update(status="failed", warnings=[], error=err.to_dict(), bundle=None)
        except Exception as exc:  # an engine bug on this photo: fail it alone, keep the traceback on stderr
            traceback.print_exc(file=sys.stderr)
            record.update(status="failed", warnings=[], bundle=None, error={
                "code": "internal", "message": f"Internal error: {type(exc).__name__}: {exc}",
                "hint": "Please report this with the worker's log."})
        record.update(seconds=round(time.perf_counter() - wall, 3),
                      cpu_seconds=round(time.process_time() - cpu, 3), finished=utc_now())
        return record
