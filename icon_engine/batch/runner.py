"""Run a batch: collect the photos, resume from the manifest, run the rest on local workers or Ray, record each
photo as it finishes. Torch-free in the driver except for the local device check."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..errors import EXIT_BATCH_FAILED, EXIT_OK, EngineError
from ..options import ReconstructOptions
from .jobs import BatchJob, assign_names, collect_photos
from .manifest import MANIFEST_NAME, ManifestWriter, read_manifest
from .report import BatchCounts, BatchReporter
from .worker import options_to_dict

LOCK_NAME = ".batch.lock"


@dataclass(frozen=True)
class BatchResult:
    """Outcome of :func:`run_batch`: counts over the whole batch (earlier runs included) and the exit status."""

    total: int
    done: int
    failed: int
    ran: int
    skipped: int
    manifest: Path
    exit_code: int


@dataclass(frozen=True)
class BatchPlan:
    """Which jobs run now and which earlier runs finished (``skipped_done``/``skipped_failed``)."""

    to_run: list[BatchJob]
    skipped_done: list[BatchJob]
    skipped_failed: list[BatchJob]


def plan_batch(jobs: Sequence[BatchJob], records: dict[str, dict[str, Any]], out_dir: Path,
               retry_failed: bool = False) -> BatchPlan:
    """Split ``jobs`` by their last manifest record: ``done`` with its bundle present is skipped, ``failed`` is
    skipped unless ``retry_failed``, everything else (never run, killed mid-way, bundle gone) runs."""
    to_run, done, failed = [], [], []
    for job in jobs:
        record = records.get(job.key)
        status = record.get("status") if record else None
        if status == "done" and (out_dir / job.name / "bundle.json").is_file():
            done.append(job)
        elif status == "failed" and not retry_failed:
            failed.append(job)
        else:
            to_run.append(job)
    return BatchPlan(to_run, done, failed)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


#: Memory one worker needs, GiB, per quality: peak RSS of one reconstruction (docs/benchmarks.md) plus a margin.
WORKER_MEMORY_GIB: dict[str, float] = {"preview": 1.2, "standard": 1.7, "high": 3.5}


def available_memory_gib() -> float | None:
    """Memory available to new processes on this machine, GiB (Linux ``MemAvailable``; None when unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def default_workers(cores: int, threads: int, memory_gib: float | None = None, quality: str = "standard") -> int:
    """Workers that fill ``cores`` with jobs of ``threads`` threads each, no more than ``memory_gib`` holds
    (:data:`WORKER_MEMORY_GIB` each); at least one."""
    workers = cores // max(1, threads)
    if memory_gib is not None:
        workers = min(workers, int(memory_gib // WORKER_MEMORY_GIB.get(quality, WORKER_MEMORY_GIB["high"])))
    return max(1, workers)


def _prepare_output(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise EngineError("output", f"Output path {out_dir} is a file, not a folder.", "Choose a folder for --out.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError("output", f"Cannot create the output folder {out_dir}: {exc}",
                          "Choose a folder you can write to for --out.") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise EngineError("output", f"Cannot write to {out_dir}.", "Choose a folder you can write to for --out.")


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold ``DIR/.batch.lock`` so that two batches never write the same folder and manifest at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        yield
        return
    with open(out_dir / LOCK_NAME, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise EngineError("output", f"Another batch is writing to {out_dir}.",
                              "Wait for it to finish, or choose another --out folder.") from exc
        yield


def _remove_partials(out_dir: Path, jobs: Sequence[BatchJob]) -> None:
    """Remove half-written bundles (``.NAME.partial-*``) that a killed run left for these jobs."""
    for job in jobs:
        for partial in out_dir.glob(f".{glob.escape(job.name)}.partial-*"):
            shutil.rmtree(partial, ignore_errors=True)


def _check_options(options: ReconstructOptions) -> None:
    for key, path in (("--smplx-model", options.smplx_model), ("--icon-data", options.icon_data)):
        if path is not None and not Path(path).exists():
            code = "body_model" if key == "--smplx-model" else "icon_data"
            raise EngineError(code, f"{key} {path} does not exist.", "Check the path, or leave the option out.")


def run_batch(inputs: Sequence[str | Path], out_dir: str | Path, options: ReconstructOptions | None = None, *,
              workers: int | None = None, threads: int | None = None, ray: str | None = None,
              gpus_per_job: float | None = None, retry_failed: bool = False, progress: str = "none",
              stream: TextIO | None = None) -> BatchResult:
    """Reconstruct every photo of ``inputs`` into ``out_dir/<name>/`` and record each in ``out_dir/batch.jsonl``.

    Args:
        inputs: photos, folders (searched recursively) and photo lists (.txt/.csv).
        out_dir: output folder (created); on Ray it must be the same path on every node.
        options: reconstruction options for every photo.
        workers: worker processes or Ray actors (default: cores / threads, or the cluster's CPUs / threads).
        threads: torch threads per job (default 1 on CPU).
        ray: ``None`` runs locally; ``local``, ``auto`` or a cluster address runs on Ray (reuses a connection
            already made with ``ray.init``).
        gpus_per_job: GPUs each Ray actor reserves (default 1 with ``device="cuda"``, else 0).
        retry_failed: run photos whose last record failed again (else they are skipped).
        progress: ``bar``, ``json`` or ``none`` (see :mod:`icon_engine.batch.report`).
    Returns:
        Counts over the whole batch and the exit status (0 all done, ``EXIT_BATCH_FAILED`` when any failed).
    Raises:
        EngineError for problems that stop the whole batch (no photos, output folder, model files, device).
    """
    options = options or ReconstructOptions()
    out_dir = Path(out_dir).absolute()
    photos = collect_photos(inputs)
    _check_options(options)
    _prepare_output(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    with _exclusive(out_dir):
        records = read_manifest(manifest_path)
        jobs = assign_names(photos, {key: rec["name"] for key, rec in records.items() if rec.get("name")}, out_dir)
        _remove_partials(out_dir, jobs)
        plan = plan_batch(jobs, records, out_dir, retry_failed)
        counts = BatchCounts(total=len(jobs), done=len(plan.skipped_done), failed=len(plan.skipped_failed))
        reporter = BatchReporter(progress, counts, stream)

        cuda = options.device == "cuda"
        threads = threads or 1
        if ray is None:
            from ..options import resolve_device

            cuda = resolve_device(options.device) == "cuda"  # fails at once when CUDA is missing
            if workers is None:
                workers = 1 if cuda else default_workers(usable_cores(), threads, available_memory_gib(),
                                                         options.quality)
            events = _local_events(plan.to_run, out_dir, options, workers, threads)
            backend = "local"
        else:
            from . import ray_backend

            gpus = gpus_per_job if gpus_per_job is not None else (1.0 if cuda else 0.0)
            started_ray = ray_backend.connect(ray, num_cpus=usable_cores() if ray == "local" else None) \
                if plan.to_run else False
            if workers is None:
                cpus, memory = ray_backend.cluster_capacity()
                workers = default_workers(cpus, threads, memory, options.quality) if plan.to_run else 1
            events = _ray_events(plan.to_run, out_dir, options, workers, threads, gpus, started_ray)
            backend = "ray"
        workers = max(1, min(workers, len(plan.to_run) or 1))
        reporter.start(len(plan.to_run), len(plan.skipped_done) + len(plan.skipped_failed), workers, backend)
        with ManifestWriter(manifest_path) as manifest, contextlib.closing(events):
            for kind, payload in events:
                if kind == "started":
                    job, worker = payload
                    reporter.started(job.photo, worker)
                else:
                    manifest.append(payload)
                    reporter.finished(payload)
        exit_code = EXIT_OK if counts.failed == 0 else EXIT_BATCH_FAILED
        reporter.end(exit_code, manifest_path)
    return BatchResult(total=counts.total, done=counts.done, failed=counts.failed, ran=len(plan.to_run),
                       skipped=len(plan.skipped_done) + len(plan.skipped_failed), manifest=manifest_path,
                       exit_code=exit_code)


def _local_events(jobs: list[BatchJob], out_dir: Path, options: ReconstructOptions, workers: int,
                  threads: int) -> Iterator[tuple[str, Any]]:
    if not jobs:
        return
    from .local import run_local

    yield from run_local(jobs, out_dir, options_to_dict(options), workers=workers, threads=threads)


def _ray_events(jobs: list[BatchJob], out_dir: Path, options: ReconstructOptions, workers: int, threads: int,
                gpus: float, shutdown: bool) -> Iterator[tuple[str, Any]]:
    if not jobs:
        return
    from .ray_backend import _import_ray, run_ray

    try:
        yield from run_ray(jobs, out_dir, options_to_dict(options), workers=workers, threads=threads,
                           gpus_per_job=gpus)
    finally:
        if shutdown:
            _import_ray().shutdown()
