"""Reconstruction jobs as the sidebar runs them: a queue of engine processes polled from a Blender timer.

bpy-free: the UI's timer calls :meth:`Reconstructions.tick` and imports the bundles of finished jobs; tests call
the same methods directly (timers never fire headless).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .core import engine_proc as ep


@dataclass
class Finished:
    """A job that ended in the last tick: its bundles (done), or its error (failed), or cancelled."""

    job: ep.EngineJob
    bundles: list[str]
    error: dict
    cancelled: bool


class Reconstructions:
    """A queue of reconstructions writing bundles under ``results_dir``; logs under ``results_dir/logs``."""

    def __init__(self, results_dir: str | Path, warm: bool = False) -> None:
        self.results_dir = Path(results_dir)
        self.warm = warm  # run jobs in the session's warm engine (one process, models loaded once)
        self.queue = ep.JobQueue()
        self._reported: set[int] = set()
        self._count = 0

    def submit(self, python: str, photo: str | Path, options: ep.ReconstructOptions,
               engine_source: str | Path | None = None, command: list[str] | None = None) -> ep.EngineJob:
        """Queue one photo; its bundle goes to a fresh folder ``results_dir/<time>-<n>/<photo stem>``."""
        photo = Path(photo)
        if not photo.is_file():
            raise FileNotFoundError(f"Photo not found: {photo}. Pick an existing image file.")
        self._count += 1
        out = self.results_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{self._count}"
        cmd = command or ep.reconstruct_command(python, photo, out, options)
        env = ep.engine_env(engine_source)
        server = ep.shared_server(python, env, self.results_dir / "logs" / "engine.log") if self.warm else None
        job = ep.EngineJob(cmd, photo.name, env=env, server=server,
                           log_path=self.results_dir / "logs" / f"{out.name}-{photo.stem}.log", out_dir=out)
        out.mkdir(parents=True, exist_ok=True)
        return self.queue.add(job)

    def tick(self) -> list[Finished]:
        """Advance the queue; returns the jobs that finished since the last tick (each once)."""
        self.queue.poll()
        out = []
        for job in self.queue.jobs:
            if job.finished and id(job) not in self._reported:
                self._reported.add(id(job))
                if not job.bundles and job.out_dir is not None:
                    try:  # a cancelled or failed run leaves no empty result folder behind
                        job.out_dir.rmdir()
                    except OSError:
                        pass
                out.append(Finished(job, list(job.bundles), dict(job.error), job.state == ep.CANCELLED))
        return out

    def cancel(self, all_jobs: bool = True) -> None:
        """Cancel the running job (and the queued ones when ``all_jobs``)."""
        if all_jobs:
            self.queue.cancel_all()
        elif self.queue.current is not None:
            self.queue.current.cancel()

    @property
    def active(self) -> bool:
        return self.queue.active

    @property
    def current(self) -> ep.EngineJob | None:
        return self.queue.current

    @property
    def pending(self) -> list[ep.EngineJob]:
        return self.queue.pending

    def clear_finished(self) -> None:
        self.queue.clear_finished()
        self._reported = {i for i in self._reported if any(id(j) == i for j in self.queue.jobs)}
