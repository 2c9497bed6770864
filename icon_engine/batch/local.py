"""Local batch backend: N worker processes on this machine, each loading the models once.

Each worker is a fresh (``spawn``) process with its own MediaPipe graphs and a torch thread pool of
``threads`` threads, fed one photo at a time over a pipe, so a worker that dies (out of memory, a native crash,
killed) costs only the photo it held: that photo is recorded as failed (``worker_crash``) and a new worker takes
its place. Workers die with the batch (``PR_SET_PDEATHSIG`` on Linux; elsewhere they stop at their next photo).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Iterator
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..errors import EngineError
from .jobs import BatchJob
from .worker import child_thread_environment, error_record, options_from_dict

#: Seconds a stopping worker gets to exit before it is killed.
STOP_GRACE_S = 5.0


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - unusual libc
        pass


def _worker_main(conn: Connection, options: dict[str, Any], threads: int, out_dir: str) -> None:
    """Worker process: load the models, then answer each ``BatchJob`` with its manifest record."""
    _die_with_parent()
    os.dup2(2, 1)  # keep the driver's stdout (JSON lines) clean: worker output goes to stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    from .worker import Worker

    try:
        worker = Worker(options_from_dict(options), threads)
    except EngineError as err:
        conn.send(("init_error", err.to_dict()))
        return
    conn.send(("ready", worker.name))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        record = worker.run(job, out_dir)
        try:
            conn.send(("result", record))
        except (BrokenPipeError, OSError):
            return


class _Slot:
    """A worker process, its pipe and the job it holds."""

    def __init__(self, ctx: Any, options: dict[str, Any], threads: int, out_dir: str) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, options, threads, out_dir), daemon=True)
        self.process.start()
        child.close()
        self.job: BatchJob | None = None
        self.ready = False  # the worker loaded its models
        self.name = f"{socket.gethostname()}:{self.process.pid}"

    def stop(self) -> None:
        """Let an idle worker exit; kill one still on a photo (the batch was interrupted: it reruns next time)."""
        if self.job is not None:
            self.process.kill()
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(STOP_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _crash_error(exitcode: int | None) -> dict[str, str]:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with status {exitcode}"
    return {"code": "worker_crash", "message": f"The worker process {how} while reconstructing this photo.",
            "hint": "Often out of memory: use fewer --workers. Rerun with --retry-failed to try it again."}


def _drain(slot: _Slot) -> Iterator[tuple[str, Any]]:
    """Handle every message waiting on ``slot``'s pipe; yields ``("finished", record)`` for results."""
    while True:
        try:
            if not slot.conn.poll():
                return
            kind, payload = slot.conn.recv()
        except (EOFError, OSError):
            return  # the worker is gone: the caller sees its exit
        if kind == "init_error":
            raise EngineError(payload["code"], payload["message"], payload["hint"])
        if kind == "ready":
            slot.ready = True
        elif kind == "result" and slot.job is not None:
            slot.job = None
            yield "finished", payload


def run_local(jobs: list[BatchJob], out_dir: Path, options: dict[str, Any], *, workers: int,
              threads: int) -> Iterator[tuple[str, Any]]:
    """Run ``jobs`` on ``workers`` local processes; yields ``("started", (job, worker))`` and
    ``("finished", record)`` events as they happen. Raises ``EngineError`` when a worker cannot load the models."""
    ctx = get_context("spawn")
    pending = deque(jobs)
    slots: list[_Slot] = []
    try:
        with child_thread_environment(threads):  # the workers' BLAS pools sized before their numpy loads
            slots = [_Slot(ctx, options, threads, str(out_dir)) for _ in range(max(1, min(workers, len(jobs))))]
        while pending or any(s.job is not None for s in slots):
            for slot in slots:
                if slot.job is None and pending:
                    slot.job = pending.popleft()
                    slot.conn.send(slot.job)
                    yield "started", (slot.job, slot.name)
            by_handle: dict[Any, _Slot] = {}
            for slot in slots:
                by_handle[slot.conn] = slot
                by_handle[slot.process.sentinel] = slot
            woken = list(dict.fromkeys(by_handle[h] for h in wait(list(by_handle))))
            for slot in woken:
                yield from _drain(slot)  # messages first: a worker may answer and then die
                if slot.process.is_alive():
                    continue
                slot.process.join()
                if not slot.ready:
                    raise EngineError("internal", f"A batch worker could not start (exit status "
                                      f"{slot.process.exitcode}).", "See the worker's error above; please report it.")
                if slot.job is not None:
                    yield "finished", error_record(slot.job, _crash_error(slot.process.exitcode), worker=slot.name)
                slot.conn.close()
                slots.remove(slot)
                if pending:
                    slots.append(_Slot(ctx, options, threads, str(out_dir)))
    finally:
        for slot in slots:
            slot.stop()
