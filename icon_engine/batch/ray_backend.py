"""Ray batch backend: a pool of Ray actors, each loading the models once, one photo per actor at a time.

Every actor declares its resources (``num_cpus`` = threads per job, ``num_gpus`` with ``--device cuda``), so
Ray places as many actors per node as fit. An actor writes its bundle straight into the output folder, which
must be the same path on every node (a shared file system: NFS, Lustre, a mounted bucket); only the small status
record travels back to the driver, which alone writes the manifest. Transient failures are Ray's to retry: a dead
actor is restarted (``max_restarts``) and its photo is retried once (``max_task_retries``); a photo that kills
its actor again is recorded as failed (``worker_crash``). When this module connects, the driver's ``icon_engine`` is
shipped to the workers (job ``runtime_env`` ``py_modules``, :func:`job_runtime_env`), so the cluster runs the
same engine version; its dependencies (the engine's requirements.txt) must be installed on every node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import EngineError
from .jobs import BatchJob
from .worker import error_record, thread_environment

#: Restarts of a dead actor, and retries of the photo it held (transient failures: node lost, out of memory).
MAX_RESTARTS = 2
MAX_TASK_RETRIES = 1


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise EngineError("usage", "--ray needs the 'ray' package, which is not installed.",
                          "Install it with: pip install ray==2.60.0 (the project's 'ray' extra).") from exc
    return ray


class _BatchActor:
    """Ray actor body: one :class:`~icon_engine.batch.worker.Worker`."""

    def __init__(self, options: dict[str, Any], threads: int) -> None:
        import os

        from .worker import Worker, options_from_dict

        try:
            self.worker = Worker(options_from_dict(options), threads)
            self.init_error: dict[str, str] | None = None
            self.name = self.worker.name
        except EngineError as err:
            self.worker, self.init_error, self.name = None, err.to_dict(), str(os.getpid())

    def ready(self) -> tuple[str, dict[str, str] | None]:
        return self.name, self.init_error

    def run(self, job: BatchJob, out_dir: str) -> dict[str, Any]:
        if self.worker is None:
            return error_record(job, self.init_error or {"code": "internal", "message": "No worker.", "hint": ""},
                                worker=self.name)
        return self.worker.run(job, out_dir)


def job_runtime_env() -> dict[str, Any]:
    """Ray job ``runtime_env`` that ships this ``icon_engine`` package to every worker (pass it to ``ray.init``)."""
    import icon_engine

    return {"py_modules": [str(Path(icon_engine.__file__).parent)]}


def connect(address: str, num_cpus: int | None = None) -> bool:
    """Connect to Ray unless already connected; returns whether this call did (and should shut it down).

    ``address``: ``local`` starts a private single-machine Ray (``num_cpus`` CPUs, no dashboard), ``auto`` joins
    the cluster this machine belongs to (``ray start``), anything else is a cluster address (``HOST:6379`` or
    ``ray://HOST:10001``).
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     runtime_env=job_runtime_env())
        else:
            ray.init(address=address, log_to_driver=False, runtime_env=job_runtime_env())
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EngineError("usage", f"Cannot connect to the Ray cluster at {address!r}: {exc}",
                          "Start one with 'ray start --head' (or give its address), or use --ray local.") from exc
    return True


def cluster_capacity() -> tuple[int, float | None]:
    """CPUs and memory (GiB, None when Ray does not say) of the connected Ray cluster."""
    resources = _import_ray().cluster_resources()
    memory = resources.get("memory")
    return int(resources.get("CPU", 1)), (memory / 2**30 if memory else None)


def run_ray(jobs: list[BatchJob], out_dir: Path, options: dict[str, Any], *, workers: int, threads: int,
            gpus_per_job: float = 0.0) -> Iterator[tuple[str, Any]]:
    """Run ``jobs`` on ``workers`` Ray actors (Ray must be connected); yields ``("started", (job, worker))`` and
    ``("finished", record)`` events. Raises ``EngineError`` when the actors cannot load the models."""
    ray = _import_ray()
    from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

    actor_class = ray.remote(_BatchActor).options(
        num_cpus=threads, num_gpus=gpus_per_job, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
        runtime_env={"env_vars": thread_environment(threads)},  # OpenBLAS's count too: read when numpy loads
    )
    actors = [actor_class.remote(options, threads) for _ in range(max(1, min(workers, len(jobs))))]
    try:
        names = {}
        for actor, (name, init_error) in zip(actors, ray.get([a.ready.remote() for a in actors]), strict=True):
            if init_error is not None:
                raise EngineError(init_error["code"], init_error["message"], init_error["hint"])
            names[actor] = name
        pending = list(reversed(jobs))
        idle = list(actors)
        running: dict[Any, tuple[Any, BatchJob]] = {}
        while pending or running:
            while idle and pending:
                actor, job = idle.pop(), pending.pop()
                running[actor.run.remote(job, str(out_dir))] = (actor, job)
                yield "started", (job, names[actor])
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                actor, job = running.pop(ref)
                idle.append(actor)
                try:
                    yield "finished", ray.get(ref)
                except (RayActorError, WorkerCrashedError) as exc:
                    yield "finished", error_record(job, {
                        "code": "worker_crash", "message": f"The Ray worker died on this photo: {type(exc).__name__}.",
                        "hint": "Often out of memory: lower --workers or raise --threads. Rerun with --retry-failed."},
                        worker=names[actor])
                except RayTaskError as exc:
                    yield "finished", error_record(job, {"code": "internal", "message": f"Internal error: {exc}",
                                                         "hint": "Please report this with the worker's log."},
                                                   worker=names[actor])
    finally:
        for actor in actors:
            ray.kill(actor)
