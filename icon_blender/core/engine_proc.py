"""The engine subprocess: command lines, the JSON-lines protocol, and jobs Blender polls from a timer.

stdlib only. The engine runs as ``PYTHON -m icon_engine reconstruct PHOTO --out DIR --progress json ...`` in
its own environment (torch never loads into Blender). It prints one JSON object per line on stdout
(``icon_engine/progress.py``)::

    {"event": "progress", "photo", "stage", "fraction", "overall", "message"}
    {"event": "warning", "photo", "message"}
    {"event": "done", "photo", "bundle"}
    {"event": "error", "photo", "code", "message", "hint"}

:class:`EngineJob` starts the process, reads stdout on a helper thread (no bpy there) into a queue, and
:meth:`EngineJob.poll` — called from Blender's timer on the main thread, or from tests — drains it and updates
the job's state. :class:`JobQueue` runs several reconstructions one after another. Cancelling kills the
process; the engine writes bundles atomically, so nothing half-written remains.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

QUALITIES = ("preview", "standard", "high")
DEVICES = ("auto", "cpu", "cuda")
REST_POSES = ("T", "A")


@dataclass
class ReconstructOptions:
    """User options of one reconstruction (the sidebar's fields)."""

    quality: str = "standard"
    texture: bool = True
    rest_pose: str = "T"
    person: int = 0
    device: str = "auto"
    smplx_model: str = ""
    icon_data: str = ""


def reconstruct_command(python: str, photo: str | Path, out_dir: str | Path, options: ReconstructOptions) -> list[str]:
    """argv of one engine run. Only non-default texture/rest-pose choices add flags."""
    return [str(python), "-m", "icon_engine", "reconstruct", str(photo), *_option_args(out_dir, options)]


#: The most images one several-photo subject may have (the engine's ``subject.MAX_INPUTS``).
MAX_SUBJECT_INPUTS = 20
#: Files the engine reads as videos in a subject (their sharp frames become photos).
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v")


def subject_command(python: str, inputs: list[str | Path], out_dir: str | Path, options: ReconstructOptions,
                    frames: int = 12, name: str = "") -> list[str]:
    """argv of ``reconstruct --subject``: ONE avatar from several photos, folders or videos of one person.

    ``frames``: sharp frames taken from each video; ``name``: the bundle's folder name (default: the first
    input's stem)."""
    if not inputs:
        raise ValueError("choose at least one photo, folder or video")
    if not 1 <= int(frames) <= MAX_SUBJECT_INPUTS:
        raise ValueError(f"frames per video must be between 1 and {MAX_SUBJECT_INPUTS}, got {frames}")
    cmd = [str(python), "-m", "icon_engine", "reconstruct", "--subject", *[str(i) for i in inputs],
           *_option_args(out_dir, options), "--frames", str(int(frames))]
    if name:
        cmd += ["--name", name]
    return cmd


def _option_args(out_dir: str | Path, options: ReconstructOptions) -> list[str]:
    """The shared part of a ``reconstruct`` argv: output, JSON progress and the user's options (validated)."""
    if options.quality not in QUALITIES:
        raise ValueError(f"quality must be one of {QUALITIES}, got {options.quality!r}")
    if options.device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {options.device!r}")
    if options.rest_pose not in REST_POSES:
        raise ValueError(f"rest pose must be one of {REST_POSES}, got {options.rest_pose!r}")
    if options.person < 0:
        raise ValueError("person index must be ≥ 0")
    cmd = ["--out", str(out_dir), "--progress", "json", "--quality", options.quality, "--device", options.device]
    if options.person:
        cmd += ["--person", str(options.person)]
    if not options.texture:
        cmd.append("--no-texture")
    if options.rest_pose != "T":
        cmd += ["--rest-pose", options.rest_pose]
    if options.smplx_model:
        cmd += ["--smplx-model", str(options.smplx_model)]
    if options.icon_data:
        cmd += ["--icon-data", str(options.icon_data)]
    return cmd


def doctor_command(python: str) -> list[str]:
    """argv of ``python -m icon_engine doctor --json``."""
    return [str(python), "-m", "icon_engine", "doctor", "--json"]


def engine_env(engine_source: str | Path | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the engine process: the engine source first on PYTHONPATH, unbuffered output.

    Only the child's environment is changed; Blender's own ``sys.path`` is never touched.
    """
    env = dict(os.environ if base is None else base)
    if engine_source:
        parts = [str(engine_source)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONNOUSERSITE"] = "1"  # packages in the user's site-packages must not shadow the engine's pins
    env["PYTHONUTF8"] = "1"  # file names and messages in UTF-8 on every platform
    env.pop("PYTHONHOME", None)  # Blender's own PYTHONHOME must not leak into another interpreter
    return env


#: Protocol events: the reconstruct protocol, plus the warm engine's ``ready`` and per-job ``finished``.
_EVENTS = ("progress", "warning", "done", "error", "ready", "finished")


@dataclass
class EngineEvent:
    """One parsed protocol line. ``kind``: progress | warning | done | error | log (a non-JSON line)."""

    kind: str
    data: dict = field(default_factory=dict)


def parse_line(line: str) -> EngineEvent | None:
    """Parse one stdout line; blank → None, non-protocol text → a ``log`` event (kept for the log)."""
    text = line.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return EngineEvent("log", {"message": text})
    if not isinstance(obj, dict) or obj.get("event") not in _EVENTS:
        return EngineEvent("log", {"message": text})
    return EngineEvent(str(obj["event"]), obj)


#: A subject run names the photo it works on at the end of its progress messages in these stages:
#: "Fitting b.jpg (2/4)", "Clothed surface of b.jpg (2/4)" (other stages count other things: "Refining the
#: surface (2/3)" is a refinement level).
PHOTO_STAGES = ("fit", "surface")
_PHOTO_STEP = re.compile(r"\s*\((\d+)/(\d+)\)\s*$")


def photo_step(message: str) -> tuple[int, int, str] | None:
    """(photo number from 1, photo count, the message without the counter) of a several-photo run's progress
    message, or None when the message names no photo."""
    m = _PHOTO_STEP.search(message or "")
    if m is None:
        return None
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        return None
    return k, n, message[: m.start()].strip()


def progress_text(stage: str, message: str, subject: bool = False) -> str:
    """What the panel shows for a progress event: "photo 2/4: Fitting b.jpg" while a several-photo run
    (``subject``) works photo by photo (:data:`PHOTO_STAGES`), else the stage's message (or the stage's name)."""
    step = photo_step(message) if subject and stage in PHOTO_STAGES else None
    if step is not None:
        k, n, rest = step
        return f"photo {k}/{n}: {rest or stage}"
    return message or stage.replace("_", " ")


#: Job states.
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


@dataclass
class EngineJob:
    """One reconstruction in a subprocess. Call :meth:`start`, then :meth:`poll` until :attr:`finished`."""

    command: list[str]
    photo: str
    env: dict[str, str] | None = None
    log_path: Path | None = None
    out_dir: Path | None = None
    state: str = QUEUED
    stage: str = ""
    message: str = ""
    overall: float = 0.0
    bundles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: dict = field(default_factory=dict)
    returncode: int | None = None
    server: EngineServer | None = None  # run in the warm engine instead of a process of its own
    subject: bool = False  # one avatar from several photos (``reconstruct --subject``)
    step: tuple[int, int] | None = None  # a several-photo run: (photo number from 1, count) last reported

    @property
    def text(self) -> str:
        """The job's progress as the panel shows it ("photo 2/4: Fitting b.jpg", or the stage's message)."""
        return progress_text(self.stage, self.message, self.subject) if (self.message or self.stage) else "starting"

    def __post_init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._tail: deque[str] = deque(maxlen=40)
        self._log = None
        self.started_at = 0.0
        self.job_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED, CANCELLED)

    def start(self) -> None:
        """Launch the process (stdout piped, stderr to the log file or merged into the tail)."""
        if self.state != QUEUED:
            raise RuntimeError(f"job already {self.state}")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        if self.server is not None:
            self.job_id = self.server.submit(self.command[3:], self._lines)  # argv after "python -m icon_engine"
            if self.job_id is None:
                self._fail("engine_start", "Could not start the warm engine.",
                           "Set up the engine in the add-on preferences (Set up engine); see the engine log.")
                return
            self.state = RUNNING
            self.started_at = time.monotonic()
            return
        try:
            self._proc = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, text=True, encoding="utf-8", errors="replace", bufsize=1, **_new_group(),
            )
        except OSError as exc:
            self._fail("engine_start", f"Could not start the engine ({exc}).",
                       "Set up the engine in the add-on preferences (Set up engine), or point them to a Python "
                       "that has the engine installed.")
            return
        self.state = RUNNING
        self.started_at = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def poll(self) -> list[EngineEvent]:
        """Drain the process output (non-blocking), update the state; returns the new events."""
        events: list[EngineEvent] = []
        if self.state != RUNNING:
            return events
        eof = False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                eof = True
                break
            event = parse_line(line)
            if event is None:
                continue
            self._handle(event)
            events.append(event)
        if self.server is not None:
            if eof or self.returncode is not None:  # the warm engine died, or reported the job finished
                self._finish()
        elif eof or (self._proc is not None and self._proc.poll() is not None and self._lines.empty()):
            if eof or not (self._reader and self._reader.is_alive()):
                self._finish()
        return events

    def _handle(self, event: EngineEvent) -> None:
        d = event.data
        if self._log is not None:
            self._log.write((json.dumps(d) if event.kind != "log" else d["message"]) + "\n")
            self._log.flush()
        if event.kind == "progress":
            self.stage = str(d.get("stage", ""))
            self.message = str(d.get("message", ""))
            step = photo_step(self.message) if self.subject and self.stage in PHOTO_STAGES else None
            if step is not None:
                self.step = step[:2]
            try:
                overall = float(d.get("overall", self.overall))
            except (TypeError, ValueError):
                overall = math.nan
            if math.isfinite(overall):  # JSON's NaN and Infinity leave the bar where it was
                self.overall = max(0.0, min(1.0, overall))
        elif event.kind == "warning":
            self.warnings.append(str(d.get("message", "")))
        elif event.kind == "done":
            if d.get("bundle"):
                self.bundles.append(str(d["bundle"]))
        elif event.kind == "error":
            self.error = {k: str(d.get(k) or "") for k in ("code", "message", "hint")}
        elif event.kind == "finished":
            try:
                self.returncode = int(d.get("exit_code", 1))
            except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
                self.returncode = 1
        elif event.kind == "log":
            self._tail.append(d["message"])

    def _finish(self) -> None:
        if self._proc is not None:
            self.returncode = self._proc.wait()
        elif self.returncode is None:  # the warm engine ended without finishing this job
            self.returncode = -1
        self._close()
        if self.state != RUNNING:
            return
        if self.returncode == 0 and self.bundles and not self.error:
            self.state, self.overall = DONE, 1.0
        elif self.error:
            self.state = FAILED
        else:
            tail = " | ".join(list(self._tail)[-3:])
            self._fail("engine_crash", f"The engine stopped (exit status {self.returncode}) without a result"
                       + (f": {tail}" if tail else "."),
                       "See the log; check the engine with Preferences ▸ ICON for Blender ▸ Check.")

    def _fail(self, code: str, message: str, hint: str) -> None:
        self.error = {"code": code, "message": message, "hint": hint}
        self.state = FAILED
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def cancel(self, timeout: float = 5.0) -> None:
        """Kill the engine (and its process group); the job ends as cancelled."""
        if self.state == QUEUED:
            self.state = CANCELLED
            return
        if self.state != RUNNING:
            return
        self.state = CANCELLED
        if self.server is not None:
            self.server.cancel(self.job_id, grace=min(timeout, 1.0))
            self._close()
            return
        if self._proc is None:
            return
        _kill(self._proc, timeout)
        self.returncode = self._proc.returncode
        self._close()

    def wait(self, timeout: float = 60.0, interval: float = 0.02) -> None:
        """Poll until finished (headless use and tests)."""
        end = time.monotonic() + timeout
        while not self.finished:
            self.poll()
            if time.monotonic() > end:
                raise TimeoutError(f"engine job still {self.state} after {timeout} s")
            time.sleep(interval)

    @property
    def tail(self) -> list[str]:
        """The last non-protocol lines the engine printed (tracebacks, warnings)."""
        return list(self._tail)


def _new_group() -> dict:
    """Popen arguments that start the engine in a process group of its own (cancel kills it and its children)."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


class EngineServer:
    """The warm engine (``python -m icon_engine serve``): one process for the whole Blender session.

    It loads torch, mediapipe and the body model once, so only the first job pays the start-up. Jobs are sent as
    ``{"op": "run", "job": ID, "argv": [...]}`` lines on its stdin; a reader thread routes its event lines to each
    job's queue by ``job`` id. If it dies, the jobs it was running see the end of their output (they fail as a
    crash) and the next :meth:`submit` starts a new one. A cancelled job that does not stop within the grace time
    has the process killed (it restarts for the next job). Closing the pipe ends it: Blender quitting or crashing
    never leaves it behind.
    """

    def __init__(self, python: str, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.python = str(python)
        self.env = env
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None
        self._sinks: dict[str, queue.Queue] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()
        self._count = 0
        self.starts = 0  # how many processes were started (1 for a session without crashes)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> bool:
        log = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", "icon_engine", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log if log is not None else subprocess.DEVNULL, env=self.env, text=True, encoding="utf-8",
                errors="replace", bufsize=1, **_new_group(),
            )
        except OSError:
            self._proc = None
            return False
        finally:
            if log is not None:
                log.close()  # the child keeps its own handle
        self.starts += 1
        threading.Thread(target=self._read, args=(self._proc,), daemon=True).start()
        return True

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = parse_line(line)
            if event is None:
                continue
            job = event.data.get("job")
            with self._lock:
                sink = self._sinks.get(str(job)) if job is not None else None
                if event.kind == "finished" and job is not None:
                    self._finished.add(str(job))
                    self._sinks.pop(str(job), None)
            if sink is not None:
                sink.put(line)
        with self._lock:  # the process ended: every job still waiting sees the end of its output
            sinks = [s for s in self._sinks.values()]
            self._sinks.clear()
        for sink in sinks:
            sink.put(None)

    def submit(self, argv: list[str], sink: queue.Queue) -> str | None:
        """Send one ``reconstruct`` argv; its event lines (then None if the engine dies) go to ``sink``.
        Returns the job id, or None when no engine process could be started."""
        with self._lock:
            if not self.alive and not self._start():
                return None
            self._count += 1
            job_id = f"job-{os.getpid()}-{self._count}"
            self._sinks[job_id] = sink
            proc = self._proc
        try:
            assert proc is not None and proc.stdin is not None
            proc.stdin.write(json.dumps({"op": "run", "job": job_id, "argv": [str(a) for a in argv]}) + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            with self._lock:
                self._sinks.pop(job_id, None)
            sink.put(None)
        return job_id

    def cancel(self, job_id: str | None, grace: float = 1.0) -> None:
        """Ask the engine to stop ``job_id``; if it has not finished after ``grace`` seconds, kill the engine."""
        if job_id is None or not self.alive:
            return
        proc = self._proc
        try:
            assert proc is not None and proc.stdin is not None
            proc.stdin.write(json.dumps({"op": "cancel", "job": job_id}) + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            return

        def watchdog() -> None:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                with self._lock:
                    if job_id in self._finished:
                        return
                time.sleep(0.02)
            if proc is self._proc and proc.poll() is None:
                _kill(proc, 5.0)  # stuck in a long step: restart for the next job

        threading.Thread(target=watchdog, daemon=True).start()

    def close(self, timeout: float = 5.0) -> None:
        """End the engine: close its input (it stops after cancelling its job), kill it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            _kill(proc, timeout)


_SHARED: EngineServer | None = None


def shared_server(python: str, env: dict[str, str] | None = None, log_path: Path | None = None) -> EngineServer:
    """The session's warm engine for ``python`` (a new one when the engine's Python changed)."""
    global _SHARED
    if _SHARED is None or _SHARED.python != str(python) or _SHARED.env != env:
        close_shared_server()
        _SHARED = EngineServer(python, env, log_path)
    return _SHARED


def close_shared_server() -> None:
    """End the session's warm engine (add-on unregistered, Blender quitting)."""
    global _SHARED
    if _SHARED is not None:
        _SHARED.close()
        _SHARED = None


atexit.register(close_shared_server)


def _kill(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is not None:
        return
    try:
        if sys.platform == "win32":
            proc.kill()
        else:
            import signal

            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError, PermissionError):
        try:
            if sys.platform != "win32":
                import signal

                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=timeout)


class JobQueue:
    """Several reconstructions, one at a time, in the order they were added."""

    def __init__(self) -> None:
        self.jobs: list[EngineJob] = []

    def add(self, job: EngineJob) -> EngineJob:
        self.jobs.append(job)
        return job

    @property
    def current(self) -> EngineJob | None:
        return next((j for j in self.jobs if j.state == RUNNING), None)

    @property
    def pending(self) -> list[EngineJob]:
        return [j for j in self.jobs if j.state == QUEUED]

    @property
    def active(self) -> bool:
        return any(not j.finished for j in self.jobs)

    def poll(self) -> list[tuple[EngineJob, list[EngineEvent]]]:
        """Advance the running job, start the next one when it ends; returns (job, events) for finished jobs
        and for the running one. A job that finished in this call appears once with ``finished`` True."""
        out: list[tuple[EngineJob, list[EngineEvent]]] = []
        job = self.current
        if job is None and self.pending:
            job = self.pending[0]
            job.start()
        if job is not None:
            events = job.poll()
            out.append((job, events))
            if job.finished and self.pending:
                self.pending[0].start()
        return out

    def cancel_all(self) -> None:
        for job in self.jobs:
            if not job.finished:
                job.cancel()

    def clear_finished(self) -> None:
        self.jobs = [j for j in self.jobs if not j.finished]


def run_doctor(python: str, env: dict[str, str] | None = None, timeout: float = 180.0) -> dict:
    """Run ``python -m icon_engine doctor --json`` and return its report (a dict).

    A report that cannot be produced becomes ``{"problem": message, "hint": fix}``.
    """
    try:
        proc = subprocess.run(doctor_command(python), capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"problem": f"Could not run the engine's doctor ({exc}).",
                "hint": "Set up the engine in the preferences, or point them to a Python with the engine installed."}
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"problem": f"The engine's doctor failed (exit status {proc.returncode}): {' | '.join(tail)}",
                "hint": "Run 'Set up engine' again; the set-up log names the failing package."}
    return report if isinstance(report, dict) else {"problem": "The doctor's output is not a JSON object.",
                                                    "hint": "Update the engine."}


def doctor_lines(report: dict) -> list[tuple[str, str, bool]]:
    """Readable (label, text, ok) lines of a doctor report for the preferences panel."""
    lines: list[tuple[str, str, bool]] = []
    for key, value in report.items():
        label = key.replace("_", " ").capitalize()
        if isinstance(value, dict):
            if value.get("problem"):
                lines.append((label, str(value["problem"]), False))
            elif "note" in value:
                lines.append((label, str(value["note"]), True))
            elif "how_to_enable" in value and not value.get("active"):
                lines.append((label, str(value.get("surface") or "not configured"), True))
            else:
                shown = ", ".join(f"{k} {v}" for k, v in value.items() if isinstance(v, (str, int, float, bool)))
                lines.append((label, shown[:200], True))
        elif key in ("problem", "hint"):
            lines.append((label, str(value), key != "problem"))
        else:
            lines.append((label, str(value), True))
    return lines
