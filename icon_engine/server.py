"""The warm engine: one long-lived process that runs reconstructions sent as JSON lines on stdin.

``python -m icon_engine serve`` loads Python, torch and mediapipe once and keeps body models loaded between jobs, so
the second reconstruction of a Blender session starts at once (the add-on's ``WarmEngine``). Torch-free at import.

Requests, one JSON object per line on stdin::

    {"op": "run", "job": "ID", "argv": ["reconstruct", PHOTO, "--out", DIR, ...]}   (the CLI's own arguments)
    {"op": "cancel", "job": "ID"}
    {"op": "quit"}

Replies on stdout: ``{"event": "ready", "engine_version": ...}`` once, ``{"event": "warm"}`` when torch, the
detector and the default body model are loaded (jobs sent earlier wait for it), then per job the ``reconstruct``
protocol (:mod:`icon_engine.progress`: progress, warning, done, error) with a ``"job"`` field added, and finally
``{"event": "finished", "job": ID, "status": "done" | "failed" | "cancelled", "exit_code": N}``. Jobs run one at
a time in the order received; a cancel stops its job at the next progress step (or drops it from the queue).
End of stdin (the add-on quit or crashed) ends the process after the running job is cancelled.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import __version__
from .errors import EXIT_CANCELLED, EXIT_INTERNAL, EXIT_OK, EngineError
from .progress import CancelToken, emit_json


@dataclass
class _Job:
    job_id: str
    argv: list[str]
    cancel: CancelToken = field(default_factory=CancelToken)


class WarmEngine:
    """Reads requests from ``stdin``, runs jobs on a worker thread, writes events to ``stdout`` (thread-safe)."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._by_id: dict[str, _Job] = {}
        self._current: _Job | None = None
        self._write_lock = threading.Lock()
        self.body_models: dict[Any, Any] = {}  # kept across jobs

    def emit(self, obj: dict) -> None:
        with self._write_lock:
            emit_json(obj, self.stdout)

    def serve(self) -> int:
        """Run until ``quit`` or the end of stdin; returns the exit status."""
        worker = threading.Thread(target=self._work, name="icon-engine-jobs", daemon=True)
        worker.start()
        self.emit({"event": "ready", "engine_version": __version__})
        for line in self.stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError) as exc:  # RecursionError: nested past json's depth limit
                self.emit({"event": "error", "job": None, "code": "usage", "message": f"Bad request ({exc}).",
                           "hint": "Send one JSON object per line."})
                continue
            op = request.get("op")
            if op == "quit":
                break
            if op == "run":
                self._submit(request)
            elif op == "cancel":
                job = self._by_id.get(str(request.get("job")))
                if job is not None:
                    job.cancel.cancel()
            else:
                self.emit({"event": "error", "job": request.get("job"), "code": "usage",
                           "message": f"Unknown request {op!r}.", "hint": "Use run, cancel or quit."})
        # quit or end of input: stop the running job, drop the queued ones, let the worker finish
        for job in list(self._by_id.values()):
            job.cancel.cancel()
        self._jobs.put(None)
        worker.join()
        return EXIT_OK

    def _submit(self, request: dict) -> None:
        job_id = str(request.get("job") or "")
        argv = request.get("argv")
        if not job_id or job_id in self._by_id or not isinstance(argv, list) or not argv or argv[0] != "reconstruct":
            self.emit({"event": "error", "job": job_id or None, "code": "usage",
                       "message": "A run request needs a new job id and argv starting with 'reconstruct'.",
                       "hint": "Send the arguments of 'python -m icon_engine reconstruct'."})
            return
        job = _Job(job_id, [str(a) for a in argv])
        self._by_id[job_id] = job
        self._jobs.put(job)

    def _warm_up(self) -> None:
        """Load what every job needs (torch, mediapipe's models, the default body model) before the first one."""
        try:
            from .options import ReconstructOptions, resolve_device
            from .person import warm_up as warm_up_detector
            from .pipeline import load_body

            options = ReconstructOptions()
            device = resolve_device(options.device)
            self.body_models[(str(options.smplx_model), device)] = load_body(options, device)
            warm_up_detector()
            import_stages()
        except Exception as exc:  # a job will report the real problem with its own message
            print(f"warm-up skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        self.emit({"event": "warm"})

    def _work(self) -> None:
        self._warm_up()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._current = job
            status = self._run(job)
            name = {EXIT_OK: "done", EXIT_CANCELLED: "cancelled"}.get(status, "failed")
            self.emit({"event": "finished", "job": job.job_id, "status": name, "exit_code": status})
            self._by_id.pop(job.job_id, None)
            self._current = None

    def _run(self, job: _Job) -> int:
        """One job, exactly as ``python -m icon_engine reconstruct ARGS --progress json`` would run it."""
        from .cli import _report_error, build_parser, run_reconstruct

        def emit(obj: dict) -> None:
            self.emit({**obj, "job": job.job_id})

        try:
            if job.cancel.cancelled:
                raise EngineError("cancelled", "Cancelled before it started.", "")
            args = build_parser().parse_args(job.argv)
            return run_reconstruct(args, emit, job.cancel, self.body_models)
        except EngineError as err:
            _report_error(err, emit)
            return err.exit_code
        except Exception as exc:  # an engine bug: report it, keep serving
            import traceback

            traceback.print_exc(file=sys.stderr)
            _report_error(EngineError("internal", f"Internal error: {type(exc).__name__}: {exc}",
                                      "Please report this with the engine log."), emit)
            return EXIT_INTERNAL


#: Modules every job imports on first use; the warm-up imports them so the first job does not pay for it.
STAGE_MODULES = ("icon_engine.fit", "icon_engine.surface", "icon_engine.avatar", "icon_engine.texture",
                 "icon_engine.preview", "icon_engine.bundle", "skimage.measure", "fast_simplification",
                 "scipy.sparse.csgraph", "scipy.sparse.linalg", "scipy.ndimage", "PIL.PngImagePlugin")


def import_stages() -> None:
    """Import the pipeline's stage modules (:data:`STAGE_MODULES`)."""
    import importlib

    for name in STAGE_MODULES:
        importlib.import_module(name)


def serve(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the warm engine on the given streams (default: the process's stdin/stdout)."""
    return WarmEngine(stdin, stdout).serve()
