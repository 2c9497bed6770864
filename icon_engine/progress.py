"""Progress reporting and cancellation for long engine runs. Torch-free.

A run is a sequence of named stages (:data:`STAGES`), each reporting a fraction in [0, 1]. A
:class:`ProgressReporter` turns stage fractions into an overall fraction (weighted by
:data:`STAGE_WEIGHTS`) and hands :class:`ProgressEvent` objects to a callback. Two callbacks ship:
:func:`json_lines_sink` (one JSON object per line, the protocol the Blender add-on reads) and
:class:`TerminalBar` (a readable bar on stderr).

JSON-lines protocol (``--progress json``), one object per line on stdout:

- ``{"event": "progress", "photo": str, "stage": str, "fraction": float, "overall": float, "message": str}``
- ``{"event": "warning", "photo": str, "message": str}``
- ``{"event": "done", "photo": str, "bundle": str}``  (absolute path of the finished bundle)
- ``{"event": "error", "photo": str | null, "code": str, "message": str, "hint": str}``
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TextIO

from .errors import Cancelled

#: Stages of one reconstruction, in order.
STAGES: tuple[str, ...] = ("load", "detect", "body_model", "fit", "surface", "rig", "texture", "bundle")

#: Rough share of the run's time per stage (sums to 1), for the overall fraction.
STAGE_WEIGHTS: dict[str, float] = {
    "load": 0.02,
    "detect": 0.08,
    "body_model": 0.05,
    "fit": 0.30,
    "surface": 0.22,
    "rig": 0.16,
    "texture": 0.12,
    "bundle": 0.05,
}


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report. ``fraction`` is the stage's progress, ``overall`` the run's, both in [0, 1]."""

    photo: str
    stage: str
    fraction: float
    overall: float
    message: str


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Thread-safe cancel flag; the engine calls :meth:`check` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`~icon_engine.errors.Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled()


class NoProgress:
    """A progress sink that reports nothing: a stage run without a reporter, or sub-steps whose own fractions would
    jump back and forth (the photos of a subject)."""

    def update(self, fraction: float, message: str = "") -> None:
        pass


class ProgressReporter:
    """Reports stage progress of one photo to ``callback`` and checks ``cancel`` on every report."""

    def __init__(
        self,
        photo: str,
        callback: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.photo = photo
        self.callback = callback
        self.cancel = cancel
        self.timings: dict[str, float] = {}
        self._stage: str | None = None
        self._stage_start = 0.0

    def _overall(self, stage: str, fraction: float) -> float:
        done = 0.0
        for name in STAGES:
            if name == stage:
                return min(1.0, done + STAGE_WEIGHTS[name] * fraction)
            done += STAGE_WEIGHTS[name]
        return min(1.0, done)

    def stage(self, stage: str, message: str = "") -> None:
        """Start ``stage`` (closing the previous one's timer)."""
        if stage not in STAGE_WEIGHTS:
            raise ValueError(f"unknown stage {stage!r}")
        self._close_stage()
        self._stage = stage
        self._stage_start = time.perf_counter()
        self.update(0.0, message or stage.replace("_", " ").capitalize())

    def update(self, fraction: float, message: str = "") -> None:
        """Report progress within the current stage; raises ``Cancelled`` if cancelled."""
        if self.cancel is not None:
            self.cancel.check()
        if self._stage is None:
            raise RuntimeError("update() before stage()")
        fraction = float(min(1.0, max(0.0, fraction)))
        if self.callback is not None:
            self.callback(
                ProgressEvent(self.photo, self._stage, fraction, self._overall(self._stage, fraction), message)
            )

    def finish(self) -> dict[str, float]:
        """Close the last stage; returns per-stage wall times in seconds."""
        self._close_stage()
        return dict(self.timings)

    def _close_stage(self) -> None:
        if self._stage is not None and self._stage not in self.timings:
            self.timings[self._stage] = round(time.perf_counter() - self._stage_start, 4)


def emit_json(obj: dict, stream: TextIO | None = None) -> None:
    """Write one JSON line and flush (the add-on reads the stream line by line)."""
    stream = stream or sys.stdout
    stream.write(json.dumps(obj, separators=(",", ":")) + "\n")
    stream.flush()


def protocol_sink(emit: Callable[[dict], None]) -> ProgressCallback:
    """A callback that hands each event to ``emit`` as a ``{"event": "progress", ...}`` protocol object."""

    def sink(event: ProgressEvent) -> None:
        emit({"event": "progress", **asdict(event)})

    return sink


def json_lines_sink(stream: TextIO | None = None) -> ProgressCallback:
    """A callback that writes each event as a ``{"event": "progress", ...}`` JSON line."""
    return protocol_sink(lambda obj: emit_json(obj, stream))


class TerminalBar:
    """A one-line progress bar per photo and stage on a terminal stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._last: tuple[str, str] | None = None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, event: ProgressEvent) -> None:
        filled = int(round(event.overall * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{event.photo[:24]:<24} [{bar}] {event.overall * 100:5.1f}%  {event.stage:<10} {event.message[:40]}"
        key = (event.photo, event.stage)
        if self._tty:
            self.stream.write("\r" + line.ljust(110))
        elif key != self._last:  # not a terminal: one line per stage
            self.stream.write(line + "\n")
        self._last = key
        self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
