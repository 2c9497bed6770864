"""Atomic bundle writing: build the folder beside the target, then rename it into place.

A failed or cancelled write leaves no partial bundle (the temporary folder is removed); an existing bundle
at the target is replaced only once the new one is complete. A target is claimed by one process at a time
(:func:`claim_target`: ``.<name>.lock`` beside it holds the owner's pid under an OS file lock, which dies with
the process); whoever claims it removes the temporary folders a killed run left (``.<name>.partial-*``).
A full disk or an unwritable folder raises ``EngineError("output")`` (exit 6) with nothing left behind.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineError
from .format import CORRECTIVES_VERSION, FORMAT_NAME, FORMAT_VERSION, OPTIONAL_FILES, REQUIRED_FILES
from .meshio import TriMesh, write_ply
from .skeleton import JOINT_NAMES, PARENTS


@dataclass
class BundleContent:
    """Everything a bundle holds. Frames: bundle world = SMPL-X frame (Y-up, metres); camera = OpenCV.

    ``metadata`` carries the JSON fields (photo, options, camera, body, timings, warnings, …) without
    ``format``/``files``, which the writer adds.
    """

    metadata: dict[str, Any]
    posed_mesh: TriMesh
    body_mesh: TriMesh
    rest_mesh: TriMesh
    skin_weights: np.ndarray  # (N, 55) float32, rows sum to 1
    rest_joints: np.ndarray  # (55, 3) metres, rest pose, model frame
    mask: np.ndarray  # (H, W) bool, person mask in original-photo pixels
    texture: np.ndarray | None = None  # (S, S, 3) uint8
    photo_bytes: bytes | None = None  # the original photo file, for the camera background
    photo_suffix: str = ".jpg"  # unused: the stored photo's suffix follows its content (upright_photo)
    #: Other files (name → bytes, or the Future of the bytes: the writer waits for it after the other files).
    extra_files: dict[str, bytes | Future] = field(default_factory=dict)
    #: Pose correctives (:class:`icon_engine.bundle.correctives.Correctives`); with shape keys the bundle is
    #: version 3 and ``posed_mesh`` must include them (``rest + displacement(pose_from_rest)``, skinned).
    correctives: Any = None


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image  # engine-side only; the reader never decodes images

    Image.fromarray(np.ascontiguousarray(image)).save(path, optimize=False, compress_level=4)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


#: errno values that mean "the disk is full" / "this place cannot be written".
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENOENT}
_MB = 1 << 20


def disk_space(folder: str | Path) -> tuple[int, int] | None:
    """(total, free) bytes of the file system holding ``folder`` or its nearest existing parent; None if unknown.
    A total of 0 means a virtual file system (/proc, /sys) that holds no files."""
    probe = Path(folder).absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return None
    return usage.total, usage.free


def free_bytes(folder: str | Path) -> int | None:
    """Free space (bytes) on the file system holding ``folder``; None if unknown."""
    space = disk_space(folder)
    return None if space is None else space[1]


def output_error(exc: OSError, what: str, where: str | Path) -> EngineError | None:
    """The user-facing ``EngineError("output")`` for a failed write of ``what`` into ``where``; None when the
    OSError is not about space or permissions (a bug, reported as such)."""
    short_write = exc.errno is None and "requested and" in str(exc)  # numpy's tofile: "N requested and M written"
    if exc.errno in _NO_SPACE or short_write:
        free = free_bytes(where)
        left = f" ({free / _MB:.0f} MB free)" if free is not None else ""
        return EngineError("output", f"Not enough disk space to write {what} in {where}{left}.",
                           "Free some disk space or choose a folder on another disk for --out; nothing was written.")
    if exc.errno in _NOT_WRITABLE:
        return EngineError("output", f"Cannot write {what} in {where}: {exc.strerror or exc}.",
                           "Choose a folder you can write to for --out; nothing was written.")
    return None


def estimate_bundle_bytes(face_count: int, texture_size: int | None, photo_bytes: int,
                          photo_size: tuple[int, int]) -> int:
    """An upper estimate of one bundle's size on disk (bytes), for the free-space check before a run.

    ``face_count`` faces of the clothed mesh (≈ half as many vertices), ``texture_size`` the texture edge (None:
    no texture), ``photo_bytes`` the photo file's size, ``photo_size`` (W, H) pixels."""
    vertices = face_count // 2 + 1
    textured = texture_size is not None
    clothed_ply = vertices * (12 + 3) + face_count * (13 + (25 if textured else 0))
    body_ply = 1 * _MB
    weights = vertices * 55 * 4
    mask = photo_size[0] * photo_size[1] // 4  # a binary mask compresses far below 2 bits per pixel
    texture = texture_size * texture_size * 3 if textured else 0
    preview = 2 * 1024 * 1024 * 3
    # re-encoded when its EXIF orientation is applied; a HEIC or AVIF becomes a JPEG (< 1 byte per pixel at quality 95)
    photo = max(2 * photo_bytes, photo_size[0] * photo_size[1])
    return int(1.2 * (2 * clothed_ply + body_ply + weights + mask + texture + preview + photo)) + 4 * _MB


def upright_photo(data: bytes) -> tuple[bytes, str]:
    """The photo as a bundle stores it: a PNG or JPEG whose pixels are upright; returns (bytes, suffix).

    A PNG or JPEG without an EXIF rotation is kept byte for byte; a rotated one is re-encoded with the rotation
    applied (Blender ignores EXIF orientation, so a stored rotation would show the photo sideways behind the
    camera); an AVIF without transparency (lossy already, and not a format Blender reads) becomes a JPEG; other
    formats become PNG (a HEIC reaches here as the JPEG ``image_io.load_photo`` made of it). An EXIF block that
    cannot be read keeps the photo as stored, as ``image_io.load_photo`` does."""
    from PIL import Image, ImageOps

    if _png_without_metadata(data):  # nothing can rotate it: no need to decode it (Pillow would, for its EXIF)
        return data, ".png"
    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format
        try:
            orientation = int(image.getexif().get(0x0112, 1))
        except Exception:  # noqa: BLE001 - unreadable EXIF: as stored
            orientation = 1
        if fmt in ("PNG", "JPEG", "MPO") and orientation in (0, 1):
            return data, ".png" if fmt == "PNG" else ".jpg"
        image.load()
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001
            upright = image
        out = io.BytesIO()
        if fmt in ("JPEG", "MPO") or (fmt == "AVIF" and "A" not in upright.getbands()):
            upright = upright if upright.mode in ("RGB", "L") else upright.convert("RGB")
            upright.save(out, format="JPEG", quality=95, icc_profile=image.info.get("icc_profile"))
            return out.getvalue(), ".jpg"
        if upright.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
            upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
        upright.save(out, format="PNG", compress_level=4, icc_profile=image.info.get("icc_profile"))
        return out.getvalue(), ".png"


#: PNG chunks that can carry an EXIF orientation (eXIf, or text chunks: "Raw profile type exif", XMP).
_PNG_METADATA_CHUNKS = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")


def _png_without_metadata(data: bytes) -> bool:
    """True when ``data`` is a well-formed PNG none of whose chunks could hold an orientation (walks the chunk
    headers only)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    at = 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind in _PNG_METADATA_CHUNKS:
            return False
        if kind == b"IEND":
            return True
        at += 12 + length
    return False  # truncated: let Pillow judge it


#: Targets this process has claimed → nesting depth (claims are re-entrant within a process).
_CLAIMED: dict[str, int] = {}


#: Longest bundle folder name (characters).
MAX_FOLDER_NAME = 100


def folder_safe(text: str) -> str:
    """``text`` as one folder name: each run of separators, control or reserved characters (``/ \\ : * ? " < > |``)
    becomes ``_``, leading and trailing dots and spaces go (so no ``.``, ``..`` or hidden folder), at most
    :data:`MAX_FOLDER_NAME` characters; may be empty."""
    return re.sub(r"[\x00-\x1f/\\:*?\"<>|]+", "_", text).strip(" .")[:MAX_FOLDER_NAME]


def bundle_folder(out_dir: str | Path, name: str | None, source: str | Path) -> Path:
    """``out_dir`` / the bundle's folder: ``name`` when given (a user's ``--name``: refused with ``bad_option`` unless
    it is already a plain folder name, :func:`folder_safe`), else the folder-safe stem of ``source`` (a photo or
    video; ``photo`` when nothing is left: a photo named ``..jpg`` has the stem ``.``, which named ``out_dir``
    itself and replaced it)."""
    if name is not None:
        if not isinstance(name, str) or not name or folder_safe(name) != name:
            raise EngineError("bad_option", f"The bundle name {name!r} is not a plain folder name.",
                              f"Use a name without / \\ : * ? \" < > |, leading or trailing dots and spaces, of at "
                              f"most {MAX_FOLDER_NAME} characters.")
        return Path(out_dir) / name
    return Path(out_dir) / default_folder_name(source)


def default_folder_name(source: str | Path) -> str:
    """The folder name of ``source``'s bundle (a photo or video): its stem made folder-safe (:func:`folder_safe`),
    ``photo`` when nothing is left."""
    return folder_safe(Path(source).stem) or "photo"


def check_target(target: str | Path) -> None:
    """Refuse (``EngineError("output")``) a bundle target that holds something a new bundle must not replace: a
    folder that is not empty and has no ``bundle.json`` (``reconstruct holiday.jpg --out ~/Pictures`` next to the
    user's ``~/Pictures/holiday/`` of photos would have replaced it, photos and all), a file or a symbolic link.
    A missing target, an empty folder or an earlier result bundle may be replaced."""
    target = Path(target)
    hint = "Move it away, or choose another --out folder (a bundle's folder is named after its photo)."
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        kind = "a symbolic link" if target.is_symlink() else "a file"
        raise EngineError("output", f"{target} is {kind}, not a result bundle; it was left as it is and nothing was "
                          "written.", hint)
    if target.is_dir() and not (target / "bundle.json").is_file() and any(target.iterdir()):
        raise EngineError("output", f"{target} is a folder that is not a result bundle; it was left as it is and "
                          "nothing was written.", hint)


@contextmanager
def claim_target(target: str | Path) -> Iterator[Path]:
    """Hold the bundle target ``target`` for this process: ``.<name>.lock`` beside it holds the pid under an OS
    file lock (``flock`` / ``msvcrt.locking``), which the kernel drops when the process dies, even by SIGKILL, so
    a lock file left behind never blocks a later run. Claiming removes the temporary folders that killed runs of
    the same target left (no live run owns them: a live run holds the lock). Re-entrant within a process.

    Raises ``EngineError("output")`` when another live process holds the target, or when the target holds
    something other than a result bundle (:func:`check_target`)."""
    target = Path(target).absolute()
    key = str(target)
    if key in _CLAIMED:
        _CLAIMED[key] += 1
        try:
            yield target
        finally:
            _CLAIMED[key] -= 1
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / f".{target.name}.lock"
    fh = _lock_file(path, target)
    _CLAIMED[key] = 1
    try:
        remove_stale_partials(target)
        check_target(target)
        yield target
    finally:
        del _CLAIMED[key]
        try:
            path.unlink(missing_ok=True)  # before unlocking, so no one locks a file about to vanish
        except OSError:
            pass
        _unlock(fh)
        fh.close()


def _lock_file(path: Path, target: Path) -> Any:
    """Open and lock ``path`` (retrying when its previous owner removed it meanwhile); write our pid into it."""
    for _ in range(20):
        fh = open(path, "a+b")  # noqa: SIM115 - kept open while held
        if not _try_lock(fh):
            fh.seek(0)
            owner = fh.read(64).decode("ascii", "replace").strip() or "unknown"
            fh.close()
            raise EngineError("output", f"{target} is being written by another reconstruction (process {owner}).",
                              "Wait for it to finish, or choose another --out folder.")
        try:
            same = os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()).encode("ascii"))
            fh.flush()
            return fh
        _unlock(fh)
        fh.close()
    raise EngineError("output", f"Could not claim {target}: its lock file keeps changing.", "Try again.")


def _try_lock(fh: Any) -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fh: Any) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def remove_stale_partials(target: str | Path) -> list[Path]:
    """Remove the temporary folders killed writes of ``target`` left beside it; returns what was removed.

    ``.<name>.partial-*`` are removed; a ``.<name>.old-*`` (a previous bundle moved aside during a replace) is
    put back when the target itself is missing, else removed. Call only while holding the target's lock."""
    target = Path(target).absolute()
    removed: list[Path] = []
    try:
        entries = sorted(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(f".{target.name}.partial-") and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    for entry in entries:
        if entry.name.startswith(f".{target.name}.old-") and entry.is_dir() and not entry.is_symlink():
            if not target.exists():
                os.replace(entry, target)
            else:  # the replace finished; the run died before it had moved the user's files over
                _remove_replaced(entry, target)
                if not entry.exists():
                    removed.append(entry)
    return removed


def write_bundle(target: str | Path, content: BundleContent) -> Path:
    """Write ``content`` as a bundle folder at ``target`` atomically; returns the absolute target path.

    Raises ``EngineError("output")`` when the disk is full or the folder cannot be written (nothing is left
    behind, not even a folder this call created) or when another process is writing the same target."""
    target = Path(target).absolute()
    created = _missing_parents(target.parent)
    try:
        with claim_target(target):
            return _write_locked(target, content)
    except OSError as exc:
        _remove_empty(created)
        err = output_error(exc, f"the bundle {target.name}", target.parent)
        if err is None:
            raise
        raise err from exc
    except BaseException:
        _remove_empty(created)
        raise


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    out = []
    while not folder.exists() and folder.parent != folder:
        out.append(folder)
        folder = folder.parent
    return out


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _write_locked(target: Path, content: BundleContent) -> Path:
    tmp = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        # The texture's PNG encoding (zlib, outside the GIL) runs on a worker thread beside the other files.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="icon-bundle") as pool:
            files = _write_files(tmp, content, pool)
        version, extra_meta = FORMAT_VERSION, {}
        corr = content.correctives
        if corr is not None:
            extra_meta["correctives"] = corr.metadata
            if corr.count:
                files["corrective_offsets"] = OPTIONAL_FILES["corrective_offsets"]
                np.save(tmp / files["corrective_offsets"], np.asarray(corr.offsets, dtype=np.float16),
                        allow_pickle=False)  # offsets of a few cm: float16 keeps them to ~0.01 mm, half the size
                version = CORRECTIVES_VERSION
        meta = {
            "format": FORMAT_NAME,
            "format_version": version,
            **_jsonable(content.metadata),
            **_jsonable(extra_meta),
            "files": files,
        }
        meta.setdefault("skeleton", {"joint_names": list(JOINT_NAMES), "parents": list(PARENTS)})
        with open(tmp / "bundle.json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _write_files(tmp: Path, content: BundleContent, pool: ThreadPoolExecutor) -> dict[str, str]:
    """Write the data files of ``content`` into ``tmp`` (the texture on ``pool``); returns the files map.

    ``extra_files`` values may be Futures of their bytes (the pipeline's preview image, made on another thread):
    they are waited for last."""
    files = dict(REQUIRED_FILES)
    pending = []
    if content.texture is not None:
        files["texture"] = OPTIONAL_FILES["texture"]
        pending.append(pool.submit(_write_png, tmp / files["texture"], content.texture))
    write_ply(tmp / files["posed_mesh"], content.posed_mesh)
    write_ply(tmp / files["body_mesh"], content.body_mesh)
    write_ply(tmp / files["rest_mesh"], content.rest_mesh)
    np.save(tmp / files["skin_weights"], np.asarray(content.skin_weights, dtype=np.float32), allow_pickle=False)
    np.save(tmp / files["rest_joints"], np.asarray(content.rest_joints, dtype=np.float32), allow_pickle=False)
    _write_png(tmp / files["mask"], np.asarray(content.mask, dtype=bool).astype(np.uint8) * 255)
    if content.photo_bytes is not None:
        photo, suffix = upright_photo(content.photo_bytes)
        files["photo"] = "photo" + suffix
        (tmp / files["photo"]).write_bytes(photo)
    for name, data in content.extra_files.items():
        (tmp / name).write_bytes(data.result() if isinstance(data, Future) else data)
        files[Path(name).stem] = name
    for job in pending:
        job.result()
    return files


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` (an earlier bundle: :func:`check_target` refused anything
    else) is moved aside first and removed after, once :func:`carry_user_files` has moved what the user put in it
    (their .blend, exports) into the new bundle."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old, dst)
        raise
    _remove_replaced(old, dst)


def _remove_replaced(old: Path, new: Path) -> None:
    """Move the user's files from the replaced bundle ``old`` into ``new``, then remove ``old`` unless one of them
    could not be moved (it then stays, hidden, as ``.<name>.old-*``: never deleted)."""
    if not carry_user_files(old, new)[1]:
        shutil.rmtree(old, ignore_errors=True)


def bundle_owned_names(folder: Path) -> set[str]:
    """The entries of the bundle folder ``folder`` that the bundle itself wrote: ``bundle.json`` and the names its
    files map lists (any name the writer can write when ``bundle.json`` cannot be read)."""
    try:
        with open(folder / "bundle.json", encoding="utf-8") as fh:
            files = json.load(fh).get("files")
    except (OSError, ValueError, AttributeError, RecursionError):
        files = None
    if not isinstance(files, dict):
        return {"bundle.json", *REQUIRED_FILES.values(), *OPTIONAL_FILES.values(), "photo.png", "preview.png"}
    return {"bundle.json", *(v for v in files.values() if isinstance(v, str))}


def carry_user_files(old: Path, new: Path) -> tuple[list[str], list[str]]:
    """Move every entry of the replaced bundle folder ``old`` that the bundle did not write (a .blend the user
    saved there, their exports, notes) into the new bundle folder ``new``; returns (the names moved, as they are
    in ``new``; the names that could not be moved and stay in ``old``). A name the new bundle also has is kept as
    ``<stem> (before rerun)<suffix>`` (then ``(before rerun 2)``, …)."""
    owned = bundle_owned_names(old)
    moved: list[str] = []
    left: list[str] = []
    try:
        entries = sorted(e for e in old.iterdir() if e.name not in owned)
    except OSError:
        return moved, [old.name]  # unreadable: kept whole
    for entry in entries:
        stem, suffix = (entry.stem, entry.suffix) if entry.is_file() else (entry.name, "")
        names = [entry.name, f"{stem} (before rerun){suffix}",
                 *(f"{stem} (before rerun {n}){suffix}" for n in range(2, 100))]
        dest = next((new / n for n in names if not ((new / n).exists() or (new / n).is_symlink())), None)
        try:
            if dest is None:
                raise OSError("every name taken")
            os.replace(entry, dest)
        except OSError:  # another file system, permissions, every name taken
            left.append(entry.name)
            continue
        moved.append(dest.name)
    return moved, left
