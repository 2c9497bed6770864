"""Reconstruction jobs as the sidebar runs them: a queue of engine processes polled from a Blender timer.

bpy-free: the UI's timer calls :meth:`Reconstructions.tick` and imports the bundles of finished jobs; tests call
the same methods directly (timers never fire headless).
"""

from __future__ import annotations

import json
import re
import shutil
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
        out = self._fresh_run_dir()
        cmd = command or ep.reconstruct_command(python, photo, out, options)
        return self._add(python, cmd, photo.name, photo.stem, out, engine_source)

    def submit_subject(self, python: str, inputs: list[str | Path], options: ep.ReconstructOptions,
                       engine_source: str | Path | None = None, frames: int = 12) -> ep.EngineJob:
        """Queue ONE avatar from several photos, folders or videos of one person (``reconstruct --subject``);
        its bundle goes to ``results_dir/<time>-<n>/<first input's stem>``. Raises FileNotFoundError naming a
        missing input, ValueError for more than the engine takes."""
        paths = [Path(p) for p in inputs]
        missing = [p for p in paths if not p.exists()]
        if not paths or missing:
            raise FileNotFoundError(f"Not found: {missing[0] if missing else 'no photo chosen'}. Pick existing "
                                    "photos, a folder of photos or a video.")
        n_photos = sum(1 for p in paths if p.is_file() and p.suffix.lower() not in ep.VIDEO_SUFFIXES)
        n_videos = sum(1 for p in paths if p.is_file() and p.suffix.lower() in ep.VIDEO_SUFFIXES)
        if n_photos + n_videos * frames > ep.MAX_SUBJECT_INPUTS:
            raise ValueError(f"{n_photos} photo(s) and {n_videos} video(s) × {frames} frames make more than the "
                             f"{ep.MAX_SUBJECT_INPUTS} images one avatar takes: choose fewer photos or frames.")
        out = self._fresh_run_dir()
        cmd = ep.subject_command(python, paths, out, options, frames=frames)
        job = self._add(python, cmd, subject_label(paths), paths[0].stem, out, engine_source)
        job.subject = True
        return job

    def _fresh_run_dir(self) -> Path:
        """A new ``results_dir/<time>-<n>``, created here (another queue, an earlier session or a second Blender
        on the same results folder may have used the name: creating it is what claims it)."""
        stamp = time.strftime('%Y%m%d-%H%M%S')
        while True:
            self._count += 1
            out = self.results_dir / f"{stamp}-{self._count}"
            try:
                out.mkdir(parents=True)
            except FileExistsError:
                continue
            return out

    def _add(self, python: str, cmd: list[str], label: str, stem: str, out: Path,
             engine_source: str | Path | None) -> ep.EngineJob:
        env = ep.engine_env(engine_source)
        server = ep.shared_server(python, env, self.results_dir / "logs" / "engine.log") if self.warm else None
        job = ep.EngineJob(cmd, label, env=env, server=server,
                           log_path=self.results_dir / "logs" / f"{out.name}-{stem}.log", out_dir=out)
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


def subject_label(paths: list[Path]) -> str:
    """How the panel names a several-photo job: "front.jpg + 3 more" (a folder shows as "shots/")."""
    first = paths[0].name + ("/" if paths[0].is_dir() else "")
    return first if len(paths) == 1 else f"{first} + {len(paths) - 1} more"


@dataclass
class PastResult:
    """One finished reconstruction under the results folder: its bundle folder, photo name and time."""

    bundle: Path
    photo: str
    created: float  # seconds since the epoch (the bundle.json's modification time)

    @property
    def run_dir(self) -> Path:
        """The run's folder (``<results>/<time>-<n>``), what Delete removes."""
        return self.bundle.parent


#: The name of a run folder the add-on makes (:meth:`Reconstructions._fresh_run_dir`): ``<date>-<time>-<n>``.
RUN_FOLDER = re.compile(r"\d{8}-\d{6}-\d+")


def _is_run_folder(run: Path) -> bool:
    """Whether ``run`` is a run folder the add-on made: its name (:data:`RUN_FOLDER`), and nothing in it but result
    bundles and the engine's hidden leftovers. The output folder is the user's choice (it may be ~/Pictures), so a
    folder of theirs that happens to hold a bundle is neither listed nor deletable."""
    if not RUN_FOLDER.fullmatch(run.name) or run.is_symlink() or not run.is_dir():
        return False
    try:
        entries = list(run.iterdir())
    except OSError:
        return False
    return all(e.name.startswith(".") or (e.is_dir() and not e.is_symlink() and (e / "bundle.json").is_file())
               for e in entries)


def list_results(results_dir: str | Path, limit: int = 50) -> list[PastResult]:
    """Finished results under ``results_dir`` (``<time>-<n>/<photo stem>/bundle.json``, in run folders the add-on
    made: :func:`_is_run_folder`), newest first."""
    found = []
    for meta in Path(results_dir).glob("*/*/bundle.json"):
        if not _is_run_folder(meta.parent.parent):
            continue
        try:
            photo = str((json.loads(meta.read_text(encoding="utf-8")).get("photo") or {}).get("name") or "")
        except (OSError, ValueError, AttributeError, RecursionError):  # not ours, or damaged: named by its folder
            photo = ""
        try:
            created = meta.stat().st_mtime
        except OSError:  # deleted meanwhile
            continue
        found.append(PastResult(meta.parent, photo or meta.parent.name, created))
    found.sort(key=lambda r: r.created, reverse=True)
    return found[:limit]


def delete_result(bundle: str | Path, results_dir: str | Path) -> Path:
    """Delete the run folder of ``bundle``; refuses anything that is not a result inside ``results_dir`` in a run
    folder the add-on made (:func:`_is_run_folder`: a folder of the user's holding a bundle is left alone), and a
    result whose bundle folders hold files their bundles did not write (a .blend the artist saved there, exports:
    :func:`user_files`)."""
    root = Path(results_dir).resolve()
    bundle = Path(bundle).resolve()
    run = bundle.parent
    if run.parent != root or not (bundle / "bundle.json").is_file() or not _is_run_folder(run):
        raise ValueError(f"{bundle} is not a result in {root}; nothing was deleted.")
    theirs = user_files(run)
    if theirs:
        names = ", ".join(str(p.relative_to(run)) for p in theirs[:3]) + (" …" if len(theirs) > 3 else "")
        raise ValueError(f"{run} holds files that are not part of the result ({names}); move them out of it, then "
                         "delete the result. Nothing was deleted.")
    shutil.rmtree(run)
    return run


def user_files(run: Path) -> list[Path]:
    """Entries of the run folder's bundle folders that their bundle did not write (the engine's
    ``bundle.writer.bundle_owned_names``; hidden entries aside), sorted."""
    from .engine_link import bundle as bundle_pkg

    found = []
    for folder in sorted(run.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or folder.is_symlink():
            continue
        owned = bundle_pkg.writer.bundle_owned_names(folder)
        found += [e for e in sorted(folder.iterdir()) if not e.name.startswith(".") and e.name not in owned]
    return found


def engine_supports(engine_source: str | Path | None, option: str) -> bool:
    """Whether the engine's command line knows ``option`` (read from its cli.py: the engine refuses unknown
    options, so the add-on passes newer ones only to an engine that has them)."""
    if engine_source is None:
        return False
    try:
        text = (Path(engine_source) / "icon_engine" / "cli.py").read_text(encoding="utf-8")
    except OSError:
        return False
    return f'"{option}"' in text
