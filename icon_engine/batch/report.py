"""Batch progress: counts, throughput and ETA, shown as one terminal bar or as JSON lines. Torch-free.

JSON lines (``--progress json``, one object per line on stdout, the conventions of :mod:`icon_engine.progress`):

- ``{"event": "batch_start", "total": int, "to_run": int, "skipped": int, "workers": int, "backend": str}``
- ``{"event": "started", "photo": str, "worker": str}``
- ``{"event": "done", "photo": str, "bundle": str}`` and ``{"event": "warning", "photo": str, "message": str}``
- ``{"event": "error", "photo": str, "code": str, "message": str, "hint": str}``
- ``{"event": "batch", "total", "done", "failed", "remaining", "photos_per_minute", "eta_s", "elapsed_s"}``
  after every finished photo (``eta_s`` is null until the first photo of this run finishes)
- ``{"event": "batch_end", ... the same counts ..., "exit_code": int}``
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..progress import emit_json


@dataclass
class BatchCounts:
    """Photo counts of a batch. ``done``/``failed`` include photos finished by earlier runs."""

    total: int
    done: int = 0
    failed: int = 0
    started_at: float = field(default_factory=time.perf_counter)
    finished_this_run: int = 0

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def elapsed_s(self, now: float | None = None) -> float:
        return (now if now is not None else time.perf_counter()) - self.started_at

    def photos_per_minute(self, now: float | None = None) -> float:
        """Photos finished by this run per minute of its wall time (0 before the first)."""
        elapsed = self.elapsed_s(now)
        return 60.0 * self.finished_this_run / elapsed if elapsed > 0 and self.finished_this_run else 0.0

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds until the remaining photos are finished at the current rate (None before the first)."""
        rate = self.photos_per_minute(now)
        return 60.0 * self.remaining / rate if rate > 0 else None

    def to_json(self) -> dict[str, Any]:
        now = time.perf_counter()
        eta = self.eta_s(now)
        return {"total": self.total, "done": self.done, "failed": self.failed, "remaining": self.remaining,
                "photos_per_minute": round(self.photos_per_minute(now), 3),
                "eta_s": None if eta is None else round(eta, 1), "elapsed_s": round(self.elapsed_s(now), 1)}


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``--`` when unknown."""
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def bar_line(counts: BatchCounts, width: int = 24) -> str:
    """One line: ``[####----] 5/12  done 4  failed 1  left 7  3.2 photos/min  ETA 2m11s``."""
    finished = counts.done + counts.failed
    filled = int(round(width * finished / counts.total)) if counts.total else width
    return (f"[{'#' * filled}{'-' * (width - filled)}] {finished}/{counts.total}  done {counts.done}  "
            f"failed {counts.failed}  left {counts.remaining}  {counts.photos_per_minute():.1f} photos/min  "
            f"ETA {format_duration(counts.eta_s())}")


class BatchReporter:
    """Reports a batch's events as JSON lines (``json``), one overall terminal bar (``bar``) or not (``none``)."""

    def __init__(self, mode: str, counts: BatchCounts, stream: TextIO | None = None) -> None:
        self.mode = mode
        self.counts = counts
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _bar(self, final: bool = False) -> None:
        line = bar_line(self.counts)
        if self._tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _note(self, text: str) -> None:
        """A line above the bar (terminal mode)."""
        if self._tty:
            self.stream.write("\r" + " " * 100 + "\r")
        self.stream.write(text + "\n")

    def start(self, to_run: int, skipped: int, workers: int, backend: str) -> None:
        if self.mode == "json":
            emit_json({"event": "batch_start", "total": self.counts.total, "to_run": to_run, "skipped": skipped,
                       "workers": workers, "backend": backend}, self.stream)
        elif self.mode == "bar":
            if to_run:
                self._note(f"batch: {self.counts.total} photos, {to_run} to run, {skipped} finished earlier; "
                           f"{workers} {backend} worker{'s' if workers > 1 else ''}")
                self._bar()
            else:
                self._note(f"batch: all {self.counts.total} photos finished earlier; nothing to run")

    def started(self, photo: Path, worker: str) -> None:
        if self.mode == "json":
            emit_json({"event": "started", "photo": str(photo), "worker": worker}, self.stream)

    def finished(self, record: dict[str, Any]) -> None:
        if record["status"] == "done":
            self.counts.done += 1
        else:
            self.counts.failed += 1
        self.counts.finished_this_run += 1
        photo = record["photo"]
        if self.mode == "json":
            for warning in record.get("warnings") or []:
                emit_json({"event": "warning", "photo": photo, "message": warning}, self.stream)
            if record["status"] == "done":
                emit_json({"event": "done", "photo": photo, "bundle": record["bundle"]}, self.stream)
            else:
                emit_json({"event": "error", "photo": photo, **record["error"]}, self.stream)
            emit_json({"event": "batch", **self.counts.to_json()}, self.stream)
        elif self.mode == "bar":
            if record["status"] != "done":
                self._note(f"failed: {Path(photo).name}: {record['error']['message']}")
            self._bar()

    def end(self, exit_code: int, manifest: Path) -> None:
        if self.mode == "json":
            emit_json({"event": "batch_end", **self.counts.to_json(), "exit_code": exit_code}, self.stream)
        elif self.mode == "bar":
            if self.counts.finished_this_run:
                self._bar(final=True)
            retry = " (rerun with --retry-failed to try the failed ones again)" if self.counts.failed else ""
            self.stream.write(f"batch: {self.counts.done} done, {self.counts.failed} failed; manifest {manifest}"
                              f"{retry}\n")
            self.stream.flush()
