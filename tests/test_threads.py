"""Scoped compute threads (icon_engine.threads): torch's count is restored, row-parallel maps equal serial ones."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from icon_engine.threads import WORKERS_ENV, cpu_workers, map_rows, task_pool, torch_threads, with_torch_threads


def test_torch_threads_is_scoped_and_restores_on_error() -> None:
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with torch_threads(other):
        assert torch.get_num_threads() == other
        with torch_threads(before):
            assert torch.get_num_threads() == before
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(other):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_with_torch_threads_decorator() -> None:
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2

    @with_torch_threads(other)
    def inside() -> int:
        return torch.get_num_threads()

    assert inside() == other
    assert torch.get_num_threads() == before


def test_cpu_workers_honours_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert cpu_workers() == 1
    monkeypatch.delenv(WORKERS_ENV)
    assert cpu_workers() >= 1


def test_map_rows_matches_the_serial_result_and_uses_threads() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50_000, 3))
    seen: set[str] = set()
    barrier: list[threading.Barrier] = []

    def fn(x: np.ndarray) -> np.ndarray:
        seen.add(threading.current_thread().name)
        if barrier:
            barrier[0].wait()  # the blocks run at the same time, on 3 threads
        return np.stack([np.linalg.norm(x, axis=1), x.sum(axis=1)], axis=1)

    serial = fn(pts)
    seen.clear()
    barrier.append(threading.Barrier(3, timeout=10))
    out = map_rows(fn, pts, workers=3, min_rows=1000)
    assert np.array_equal(out, serial)
    assert len(seen) == 3 and all(name.startswith("icon-rows") for name in seen)
    seen.clear()
    barrier.clear()
    assert np.array_equal(map_rows(fn, pts[:500], workers=3, min_rows=1000), serial[:500])
    assert len(seen) == 1  # too few rows: inline


def test_map_rows_bounds_the_block_size() -> None:
    sizes: list[int] = []

    def fn(x: np.ndarray) -> np.ndarray:
        sizes.append(len(x))
        return x * 2.0

    pts = np.arange(10_000, dtype=np.float64).reshape(-1, 1)
    for workers in (1, 2):
        sizes.clear()
        assert np.array_equal(map_rows(fn, pts, workers=workers, max_rows=3000), pts * 2.0)
        assert len(sizes) == 4 and max(sizes) <= 3000 and sum(sizes) == 10_000


def test_task_pool_runs_inline_with_one_worker_and_beside_the_caller_with_two() -> None:
    """One worker: each task runs in ``submit``, on the caller's thread; two: on the pool's threads at once."""
    with task_pool(workers=1) as submit:
        job = submit(threading.current_thread)
        assert job.done() and job.result() is threading.current_thread()
    barrier = threading.Barrier(2, timeout=10)

    def meet() -> str:
        barrier.wait()  # both tasks run at the same time
        return threading.current_thread().name

    with task_pool(workers=2, name="icon-test") as submit:
        jobs = [submit(meet) for _ in range(2)]
    assert all(j.done() for j in jobs)  # the block's end waits for every task
    assert len({j.result() for j in jobs}) == 2 and all(j.result().startswith("icon-test") for j in jobs)


def test_task_pool_hands_errors_back_and_drops_queued_tasks_on_an_error() -> None:
    ran: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def task(k: int) -> int:
        if k == 0:
            started.set()
            release.wait(10)
            raise ValueError("fit failed")
        ran.append(k)
        return k

    with pytest.raises(RuntimeError, match="cancelled"), task_pool(workers=2) as submit:
        first = submit(task, 0)
        started.wait(10)
        blocker = submit(release.wait, 10)  # the second worker waits for the release, the next task queues
        queued = submit(task, 2)
        release.set()
        raise RuntimeError("cancelled")
    assert blocker.done() and queued.cancelled() and ran == []
    with pytest.raises(ValueError, match="fit failed"):
        first.result()
    for workers in (1, 2):
        with task_pool(workers=workers) as submit:
            job = submit(task, 1)
        assert job.result() == 1


def test_task_pool_keeps_the_callers_torch_thread_count_for_new_threads() -> None:
    """Setting a thread's torch count also sets the default of threads started later (a task left in the count of
    its :func:`torch_threads`, or of two of them overlapping): the pool makes the caller's the default again."""
    count = torch.get_num_threads()

    def one_thread() -> int:
        torch.set_num_threads(1)  # this thread's own count, and the default of new threads
        return torch.get_num_threads()

    with task_pool(workers=2) as submit:
        assert submit(one_thread).result() == 1
    assert torch.get_num_threads() == count
    seen: list[int] = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert seen == [count]


def test_task_pool_tasks_run_with_the_callers_torch_thread_count() -> None:
    """A task runs with the caller's torch count even when another thread set a different default meanwhile."""
    count = torch.get_num_threads()
    other = 1 if count != 1 else 2
    try:
        with task_pool(workers=2) as submit:
            torch.set_num_threads(other)  # the default new threads start with; the pool's tasks keep the caller's
            counts = [submit(torch.get_num_threads).result() for _ in range(2)]
    finally:
        torch.set_num_threads(count)
    assert counts == [count, count]
