"""The batch manifest ``DIR/batch.jsonl``: one JSON record per finished photo, appended as photos finish.

Torch-free. Only the batch's driver process writes it. Each record is one ``write`` of a whole line on a file
opened for appending, followed by ``fsync``, so a killed batch leaves every finished photo recorded and at most
a torn last line, which :func:`read_manifest` skips (and the next append starts on a fresh line). The file is
append-only: a photo run again gets a new record and the last record of a photo wins.

Record fields: ``photo`` (absolute path), ``name`` (bundle folder under DIR), ``status`` (``done``/``failed``),
``seconds`` (wall time of the photo on its worker), ``cpu_seconds`` (the worker's CPU time for it, all threads),
``warnings`` (list of text), ``error`` (``null`` or ``{"code", "message", "hint"}``), ``bundle`` (absolute path
or ``null``), ``worker`` (``host:pid``), ``finished`` (UTC, ISO 8601).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

MANIFEST_NAME = "batch.jsonl"
STATUSES = ("done", "failed")


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each photo (key: the photo's absolute path); unreadable lines are skipped."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a torn line from a killed batch (or not ours: nested past the parser's depth)
            if isinstance(record, dict) and isinstance(record.get("photo"), str) and record.get("status") in STATUSES:
                records[record["photo"]] = record
    return records


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class ManifestWriter:
    """Appends records to the manifest, one durable line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:  # make the new file's name durable too
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            except OSError:  # pragma: no cover - some file systems refuse fsync on folders
                pass
            finally:
                os.close(dir_fd)
        self._needs_newline = self._ends_torn()

    def _ends_torn(self) -> bool:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return False
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            return fh.read(1) != b"\n"

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and fsync it."""
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        if self._needs_newline:
            data = b"\n" + data
            self._needs_newline = False
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
