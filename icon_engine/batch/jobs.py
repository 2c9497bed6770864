"""Batch inputs → jobs: expand photos, folders (recursively) and photo lists; give each photo a bundle name.

Torch-free. A job's bundle goes to ``DIR/<name>/``; names come from the photo's stem and are unique within the
batch (case-insensitively, so they also stay apart on macOS and Windows file systems). Names already recorded in
the manifest are reused, so a rerun with more inputs never renames an earlier photo's bundle.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle.writer import check_target, default_folder_name, folder_safe
from ..errors import EngineError
from ..image_io import IMAGE_SUFFIXES

#: Suffixes of photo lists: one photo (or folder) per line; CSV takes the ``photo``/``path`` column or the first.
LIST_SUFFIXES: frozenset[str] = frozenset({".txt", ".csv", ".lst"})
#: Header names of the photo column in a CSV list (lower case).
CSV_PHOTO_COLUMNS: tuple[str, ...] = ("photo", "path", "file", "image", "filename")
#: Names in the output folder that bundles must not take.
RESERVED_NAMES: frozenset[str] = frozenset({"batch.jsonl", ".batch.lock"})


@dataclass(frozen=True)
class BatchJob:
    """One photo of a batch: ``photo`` is its absolute path, ``name`` its bundle folder under the output folder."""

    photo: Path
    name: str

    @property
    def key(self) -> str:
        """The manifest key of this photo (its absolute path as text)."""
        return str(self.photo)


def _photos_in_folder(folder: Path) -> list[Path]:
    """Image files under ``folder`` at any depth, sorted by relative path; hidden files and folders skipped."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    if not found:
        raise EngineError("photo_missing", f"The folder {folder} contains no photos.",
                          "Put PNG, JPEG, WebP, BMP or TIFF files in it (subfolders are searched too).")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def read_photo_list(path: Path) -> list[Path]:
    """Entries of a photo list file; relative entries are relative to the list's folder.

    ``.txt``/``.lst``: one path per line. ``.csv``: the column headed ``photo``, ``path``, ``file``, ``image`` or
    ``filename`` (any case), else the first column (then a first row that is not an existing path is taken for a
    header). Blank lines and lines starting with ``#`` are skipped. Entries are not checked here: a missing one
    fails that photo alone (``photo_missing`` in the manifest).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError("bad_image", f"Cannot read the photo list {path}: {exc}",
                          "Give a UTF-8 text or CSV file with one photo path per line.") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if path.suffix.lower() == ".csv":
        try:
            rows = [row for row in csv.reader(lines) if row]
        except csv.Error as exc:  # e.g. a field beyond csv's size limit: not a list of photos
            raise EngineError("bad_image", f"Cannot read the photo list {path}: {exc}",
                              "Give a CSV file with one photo path per row.") from exc
        column = 0
        if rows:
            header = [cell.strip().lower() for cell in rows[0]]
            named = [i for i, cell in enumerate(header) if cell in CSV_PHOTO_COLUMNS]
            if named:
                column, rows = named[0], rows[1:]
            elif not (path.parent / rows[0][0].strip()).exists():
                rows = rows[1:]  # a header row with other names
        entries = [row[column].strip() for row in rows if len(row) > column and row[column].strip()]
    else:
        entries = [line.strip() for line in lines]
    return [p if p.is_absolute() else path.parent / p for p in (_expand_user(e) for e in entries)]


def _expand_user(text: str | Path) -> Path:
    """``text`` with a leading ``~`` or ``~user`` expanded; left as it is when that user has no home (the entry
    then fails as a missing photo, not the batch)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def collect_photos(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand batch inputs into absolute photo paths, in order, each photo once.

    An input is a photo, a folder (its photos at any depth, sorted) or a list file (:data:`LIST_SUFFIXES`; its
    entries may be photos or folders). A command-line input that does not exist is an ``EngineError``
    (``photo_missing``); so is a batch without any photo.
    """
    result: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        path = path.absolute()
        if path not in seen:
            seen.add(path)
            result.append(path)

    for item in inputs:
        path = _expand_user(item)
        if path.is_dir():
            for photo in _photos_in_folder(path):
                add(photo)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for entry in read_photo_list(path):
                for photo in _photos_in_folder(entry) if entry.is_dir() else [entry]:
                    add(photo)
        elif path.exists():
            add(path)
        else:
            raise EngineError("photo_missing", f"The input {path} does not exist.",
                              "Check the path: give photos, folders of photos or a .txt/.csv list of photos.")
    if not result:
        raise EngineError("photo_missing", "The batch has no photos.", "Give photos, folders or a list of photos.")
    return result


def assign_names(photos: Iterable[Path], known: Mapping[str, Any] | None = None,
                 out_dir: Path | None = None) -> list[BatchJob]:
    """Jobs for ``photos`` with unique bundle names: ``known`` (photo key → name, from the manifest) first, then
    the stem, then ``stem-2``, ``stem-3``… in input order. The manifest is a file like any other: a known name is
    kept only when it is a folder-safe name (:func:`_folder_safe` leaves it unchanged: no ``..``, no separator,
    not absolute), not reserved and not another photo's; otherwise the photo is named afresh. With ``out_dir``, a
    new name is never one that something other than a result bundle holds there (the user's ``holiday/`` of
    photos beside ``holiday.jpg``: :func:`~icon_engine.bundle.writer.check_target` would refuse it, and the photo
    fails; it becomes ``holiday-2``)."""
    photos = list(photos)
    used = {name.lower() for name in RESERVED_NAMES}
    checked: dict[str, str] = {}
    for photo in photos:
        name = (known or {}).get(str(photo))
        if isinstance(name, str) and name and folder_safe(name) == name and name.lower() not in used:
            checked[str(photo)] = name
            used.add(name.lower())
    known = checked
    jobs = []
    for photo in photos:
        name = known.get(str(photo))
        if name is None:
            base = name = default_folder_name(photo)
            n = 2
            while name.lower() in used or (out_dir is not None and _taken(Path(out_dir) / name)):
                name, n = f"{base}-{n}", n + 1
            used.add(name.lower())
        jobs.append(BatchJob(photo, name))
    return jobs


def _taken(target: Path) -> bool:
    """Whether ``target`` holds something a new bundle may not replace (:func:`check_target` refuses it)."""
    try:
        check_target(target)
    except EngineError:
        return True
    return False
