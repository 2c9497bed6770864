"""Scoped compute threads: torch intra-op threads for one block, and the worker count of CPU-parallel queries.

The engine's code never sets a process-wide thread count (the add-on's warm engine and the batch workers choose
theirs; the process entry ``python -m icon_engine`` only puts OpenBLAS on one thread when no count is set):
a stage that measured a gain from another count wraps its work in :func:`torch_threads`, which restores the
previous count on the way out. Measurements (docs/benchmarks.md, speed section): the body fit's and the
rasteriser's small tensors run faster on one torch thread; scipy's k-d tree queries and the canonical avatar's
field split over :func:`cpu_workers` threads (numpy and scipy release the GIL).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Environment variable that caps :func:`cpu_workers` (e.g. 1 in batch workers that run one photo per core).
WORKERS_ENV = "ICON_ENGINE_WORKERS"


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads (≥ 1), then restore the previous count.

    With torch's OpenMP backend the count is the calling thread's (OpenMP's and MKL's settings are per thread),
    but setting it also sets the default that threads starting later begin with: two threads inside and leaving
    the block at once each keep their own count, and :func:`task_pool` makes its caller's count the default again
    when its tasks are done."""
    import torch

    before = torch.get_num_threads()
    if count == before:
        yield
        return
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def with_torch_threads(count: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the function runs inside :func:`torch_threads` ``(count)``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with torch_threads(count):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def cpu_workers() -> int:
    """Threads for CPU-parallel numpy/scipy work: the cores this process may use, capped by ``ICON_ENGINE_WORKERS``
    and by the torch thread count a batch worker set (``OMP_NUM_THREADS``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    for name in (WORKERS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            cores = min(cores, int(value))
    return max(1, cores)


def map_rows(fn: Callable[[np.ndarray], np.ndarray], points: np.ndarray, workers: int | None = None,
             min_rows: int = 20_000, max_rows: int | None = None) -> np.ndarray:
    """``fn`` over the rows of ``points`` (N, …) → (N, …), in contiguous blocks run on ``workers`` threads
    (default :func:`cpu_workers`). Blocks hold at least ``min_rows`` rows (fewer rows, or one worker, run
    inline) and at most ``max_rows`` (bounds the temporaries of ``fn``: peak memory). ``fn`` must be row-wise
    (each output row depends on its input row only) and thread-safe."""
    workers = cpu_workers() if workers is None else max(1, int(workers))
    n = len(points)
    blocks = min(workers, n // max(1, min_rows))
    if max_rows:
        blocks = max(blocks, -(-n // int(max_rows)))
    if blocks <= 1:
        return fn(points)
    edges = np.linspace(0, n, blocks + 1).astype(int)
    if workers <= 1:
        return np.concatenate([fn(points[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=0)
    with ThreadPoolExecutor(max_workers=min(workers, blocks), thread_name_prefix="icon-rows") as pool:
        parts = list(pool.map(fn, [points[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]))
    return np.concatenate(parts, axis=0)


def _inline(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` run now, on the calling thread, as a finished :class:`Future` (its result or its error)."""
    done: Future = Future()
    try:
        done.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
        done.set_exception(exc)
    return done


def _with_torch_count(count: int | None, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with ``count`` torch threads on this thread (None: as it is)."""
    if count is None:
        return fn(*args)
    with torch_threads(count):
        return fn(*args)


@contextmanager
def task_pool(workers: int | None = None, name: str = "icon-task") -> Iterator[Callable[..., Future]]:
    """``submit(fn, *args) → Future`` for independent tasks run on ``workers`` threads (default
    :func:`cpu_workers`) while the caller's thread goes on (the next photo's detection beside a photo's fit);
    ``result()`` waits for a task and raises its error. With one worker each task runs inline, in ``submit``: the
    serial order of a loop without the pool.

    On leaving the block every task has ended: an error in the block (a cancel too) drops the tasks not yet
    started, waits for the running ones and propagates. The tasks must be thread-safe. torch's thread count is
    per thread (:func:`torch_threads`): each task runs with the caller's count at the pool's start, as it would
    inline (a new thread would start with whatever count another thread set last), and on leaving the caller's
    count becomes again the default of threads started later."""
    workers = cpu_workers() if workers is None else max(1, int(workers))
    if workers < 2:
        yield _inline
        return
    torch = sys.modules.get("torch")
    count = torch.get_num_threads() if torch is not None else None
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def submit(fn: Callable[..., Any], *args: Any) -> Future:
        return pool.submit(_with_torch_count, count, fn, *args)

    try:
        yield submit
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        torch = sys.modules.get("torch")  # a task's torch_threads left its count as the default for new threads
        if torch is not None:
            torch.set_num_threads(torch.get_num_threads())


def in_background(fn: Callable[..., Any], *args: Any) -> Future:
    """Start ``fn(*args)`` on a thread of its own and return its :class:`~concurrent.futures.Future` (``result()``
    waits for it and raises its error); with one worker (:func:`cpu_workers`) it runs inline, before returning.

    For a stage's independent branch (the texture's atlas beside its photo sampling): numpy, OpenCV and torch
    release the GIL in their kernels, so the two branches share the cores. If the caller fails before asking for
    the result, the thread still runs ``fn`` to its end (its result is dropped)."""
    if cpu_workers() < 2:
        return _inline(fn, *args)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="icon-background")
    job = pool.submit(fn, *args)
    pool.shutdown(wait=False)  # the thread ends with the job
    return job
