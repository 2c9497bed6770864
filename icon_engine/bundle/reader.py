"""Reading and validating a result bundle (numpy + stdlib only; the Blender add-on imports this).

A bundle is untrusted input (it may come from anyone, in a zip or tar). :func:`read_bundle` checks the format
name and version, the files map, and every file it names: a plain regular file inside the bundle folder (no
symbolic link, no device, pipe or folder), at most :data:`MAX_FILE_BYTES` of its kind, whose content is what its
kind says (PNG and JPEG by signature and header, PLY by header, ``.npy`` by ``np.load(allow_pickle=False)``);
then the shapes and consistency of the arrays. Anything wrong raises :class:`BundleError` with a message that
names the file and the problem. Trust rules: docs/bundle.md.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .correctives import MAX_KEY_OFFSET, MAX_KEYS, Correctives
from .format import FORMAT_NAME, REQUIRED_FILES, SUPPORTED_VERSIONS
from .meshio import MeshFormatError, TriMesh, parse_ply
from .skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_MB = 1 << 20

#: Largest accepted file per kind (by name suffix), bytes; anything else in the files map: ``"other"``.
MAX_FILE_BYTES: dict[str, int] = {
    ".json": 64 * _MB, ".ply": 1024 * _MB, ".npy": 1024 * _MB, ".png": 512 * _MB, ".jpg": 256 * _MB,
    ".jpeg": 256 * _MB, "other": 256 * _MB,
}  # fmt: skip
#: Largest accepted image (width × height) in a bundle, pixels (the engine refuses photos above 100 MP).
MAX_IMAGE_PIXELS = 100_000_000
#: Longest side (pixels) of a subject's other photo (``photo_<i>``: the engine stores them at most 1024 px).
MAX_VIEW_PHOTO_SIDE = 4096
#: Files map keys of a subject's other photos (``subject.photos[i].image``).
_VIEW_PHOTO_KEY = re.compile(r"photo_[0-9]{1,4}")
#: What each known file key must hold.
_KINDS: dict[str, str] = {
    "posed_mesh": "ply", "body_mesh": "ply", "rest_mesh": "ply", "skin_weights": "npy", "rest_joints": "npy",
    "mask": "png", "texture": "png", "preview": "png", "photo": "image", "corrective_offsets": "npy",
}  # fmt: skip


class BundleError(ValueError):
    """A bundle folder that is missing, damaged or of an unsupported version; ``hint`` (may be empty) names a fix
    more specific than re-running the reconstruction."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class PhotoView:
    """One photo of a several-photo avatar (``bundle.json["subject"]``, format 2): its ``label``, ``status``
    ("used", "no_person", "poor_fit", "other_person") and, when used, its ``full_pose`` (55, 3) axis-angle,
    ``transl`` (3,) metres and camera ``K``, ``R``, ``t`` (OpenCV, pixels of that photo) with ``image_size``."""

    label: str
    status: str
    full_pose: np.ndarray | None = None
    transl: np.ndarray | None = None
    K: np.ndarray | None = None
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    #: The photo itself (format 2, optional): the bundle's ``photo`` for the first used photo, ``photo_<i>.jpg``
    #: (downscaled, upright) for the others; None when the bundle has none.
    image: Path | None = None


@dataclass
class Bundle:
    """A validated bundle. Frames: world = SMPL-X (Y-up, metres); camera = OpenCV (x right, y down, z fwd)."""

    path: Path
    meta: dict[str, Any]
    posed_mesh: TriMesh
    body_mesh: TriMesh
    rest_mesh: TriMesh
    skin_weights: np.ndarray  # (N, 55)
    rest_joints: np.ndarray  # (55, 3)
    K: np.ndarray  # (3, 3) intrinsics, pixels of the original photo
    R: np.ndarray  # (3, 3) world → camera rotation
    t: np.ndarray  # (3,) world → camera translation, metres
    image_size: tuple[int, int]  # (width, height) of the original photo
    joint_names: list[str] = field(default_factory=list)
    parents: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    full_pose: np.ndarray = field(default_factory=lambda: np.zeros((NUM_JOINTS, 3)))  # (55, 3) axis-angle
    transl: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) metres
    #: EXIF orientation (1–8) of the stored photo; 1 = stored upright (what the engine writes).
    photo_orientation: int = 1
    #: The photos of a several-photo avatar (format 2's ``subject`` block; empty for one photo).
    views: list[PhotoView] = field(default_factory=list)
    #: Pose correctives (format 3: ``corrective_offsets.npy`` + ``bundle.json["correctives"]``), or None.
    correctives: Correctives | None = None

    def file(self, key: str) -> Path | None:
        """Absolute path of the file named ``key`` in the files map, or None if the bundle has none."""
        name = self.meta["files"].get(key)
        return self.path / name if name else None

    @property
    def warnings(self) -> list[str]:
        """The engine's warnings (``bundle.json["warnings"]``; none when that is not a list)."""
        found = self.meta.get("warnings")
        return [str(w) for w in found] if isinstance(found, list) else []


def _array(meta: dict, dotted: str, shape: tuple[int, ...], where: Path, bound: float | None = None) -> np.ndarray:
    """``meta``'s numeric value at ``dotted`` (keys joined by dots), of ``shape``, finite and, with ``bound``, each
    entry within ±``bound``."""
    node: Any = meta
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise BundleError(f"{where}: bundle.json has no '{dotted}'")
        node = node[part]
    try:
        arr = np.asarray(node, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: '{dotted}' is not numeric") from exc
    if arr.shape != shape:
        raise BundleError(f"{where}: '{dotted}' has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise BundleError(f"{where}: '{dotted}' contains NaN or infinity")
    if bound is not None and np.abs(arr).max(initial=0.0) > bound:
        raise BundleError(f"{where}: '{dotted}' holds a value beyond ±{bound:g}")
    return arr


def _camera(meta: dict, dotted: str, where: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validated ``K``, ``R``, ``t`` of the camera at ``dotted``: intrinsics with positive focal lengths and a
    last row 0 0 1 (pixels, within ±:data:`MAX_PIXELS_ABS`), a rotation, a translation within
    ±:data:`MAX_METRES_ABS` metres."""
    K = _array(meta, f"{dotted}.K", (3, 3), where, MAX_PIXELS_ABS)
    if not (K[0, 0] > 0 and K[1, 1] > 0) or K[1, 0] != 0 or K[2].tolist() != [0.0, 0.0, 1.0]:
        raise BundleError(f"{where}: {dotted}.K is not a camera's intrinsics (positive focal lengths, last row 0 0 1)")
    R = _array(meta, f"{dotted}.R", (3, 3), where)
    if np.abs(R).max() > 1.0 + 1e-4 or np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
        raise BundleError(f"{where}: {dotted}.R is not a rotation matrix")
    return K, R, _array(meta, f"{dotted}.t", (3,), where, MAX_METRES_ABS)


def _subject_views(meta: dict, where: Path, image_sizes: dict[str, tuple[int, int]]) -> list[PhotoView]:
    """The validated ``subject.photos`` entries of a several-photo avatar (none when the block is absent).

    ``image_sizes``: (width, height) of the files map's checked images by key; an entry's ``image`` must be the
    file of key ``photo_<i>`` (i: the entry's index), at most :data:`MAX_VIEW_PHOTO_SIDE` pixels, with the aspect
    ratio of the entry's camera."""
    subject = meta.get("subject")
    if subject is None:
        return []
    photos = subject.get("photos") if isinstance(subject, dict) else None
    if not isinstance(photos, list) or not photos or len(photos) > 1000:
        raise BundleError(f"{where}: 'subject.photos' must be a non-empty list")
    views = []
    for i, entry in enumerate(photos):
        if not isinstance(entry, dict) or not isinstance(entry.get("label"), str) or not isinstance(
                entry.get("status"), str):
            raise BundleError(f"{where}: subject photo {i} needs a label and a status")
        view = PhotoView(entry["label"], entry["status"])
        if view.status == "used":
            key = f"photos[{i}]"
            node = {"subject": {key: entry}}
            view.full_pose = _array(node, f"subject.{key}.full_pose", (NUM_JOINTS, 3), where, MAX_ANGLE_ABS)
            view.transl = _array(node, f"subject.{key}.transl", (3,), where, MAX_METRES_ABS)
            view.K, view.R, view.t = _camera(node, f"subject.{key}.camera", where)
            size = (entry["camera"].get("width"), entry["camera"].get("height"))
            if not all(isinstance(v, int) and 0 < v <= 100_000 for v in size):
                raise BundleError(f"{where}: subject photo {i} has no valid camera width and height")
            view.image_size = (int(size[0]), int(size[1]))
            view.image = _view_image(meta, entry.get("image"), i, view.image_size, where, image_sizes)
        views.append(view)
    if not any(v.status == "used" for v in views):
        raise BundleError(f"{where}: no photo of the subject is marked as used")
    first = next(v for v in views if v.status == "used")
    if first.image is None and "photo" in image_sizes:
        first.image = where.parent / meta["files"]["photo"]
    return views


def _view_image(meta: dict, name: Any, i: int, camera_size: tuple[int, int], where: Path,
                image_sizes: dict[str, tuple[int, int]]) -> Path | None:
    """The checked path of subject photo ``i``'s stored image ``name`` (None when it has none)."""
    if name is None:
        return None
    key = f"photo_{i}"
    if not isinstance(name, str) or meta["files"].get(key) != name or key not in image_sizes:
        raise BundleError(f"{where}: subject photo {i}'s image {name!r} is not the bundle's file '{key}'")
    width, height = image_sizes[key]
    if max(width, height) > MAX_VIEW_PHOTO_SIDE:
        raise BundleError(f"{where}: subject photo {i}'s image is {width} × {height} pixels (at most "
                          f"{MAX_VIEW_PHOTO_SIDE} on its longest side)")
    cw, ch = camera_size
    if abs(width * ch - height * cw) > 0.02 * cw * ch + max(cw, ch):  # 2 % and rounding
        raise BundleError(f"{where}: subject photo {i}'s image ({width} × {height}) does not have its camera's "
                          f"proportions ({cw} × {ch})")
    return where.parent / name


def _correctives(meta: dict, offsets: np.ndarray | None, n_vertices: int, where: Path) -> Correctives | None:
    """The validated pose correctives: ``offsets`` (K, N, 3) within :data:`MAX_KEY_OFFSET` metres, K ≤
    :data:`MAX_KEYS`; ``correctives.key_joint`` K joints 1–54 and ``key_coeffs`` (K, 9), finite."""
    if offsets is None:
        return None
    k = offsets.shape[0] if offsets.ndim == 3 else -1
    if offsets.shape != (k, n_vertices, 3) or not 1 <= k <= MAX_KEYS:
        raise BundleError(f"{where}: corrective_offsets has shape {offsets.shape}, expected (K, {n_vertices}, 3) "
                          f"with 1 ≤ K ≤ {MAX_KEYS}")
    if not np.all(np.isfinite(offsets)) or np.abs(offsets).max() > MAX_KEY_OFFSET:
        raise BundleError(f"{where}: corrective_offsets must be finite and within {MAX_KEY_OFFSET} m")
    node = meta.get("correctives")
    joints = node.get("key_joint") if isinstance(node, dict) else None
    if not isinstance(joints, list) or len(joints) != k or not all(
            isinstance(j, int) and not isinstance(j, bool) and 1 <= j < NUM_JOINTS for j in joints):
        raise BundleError(f"{where}: 'correctives.key_joint' must list {k} joint indices between 1 and "
                          f"{NUM_JOINTS - 1}")
    coeffs = _array(meta, "correctives.key_coeffs", (k, 9), where)
    return Correctives(offsets.astype(np.float64), np.asarray(joints, dtype=np.int64), coeffs,
                       dict(node.get("stats") or {}) if isinstance(node.get("stats", {}), dict) else {})


def _skeleton(meta: dict, where: Path) -> tuple[list[str], np.ndarray]:
    """``skeleton.joint_names`` and ``skeleton.parents``, which must be SMPL-X's (:data:`JOINT_NAMES`,
    :data:`PARENTS`): the add-on names bones after them and finds the root, the retargeting and the export
    presets by name, and the parents must make a tree for building and posing the armature to terminate."""
    skeleton = meta.get("skeleton")
    names = skeleton.get("joint_names") if isinstance(skeleton, dict) else None
    parents = skeleton.get("parents") if isinstance(skeleton, dict) else None
    if not isinstance(names, list) or len(names) != NUM_JOINTS or not isinstance(parents, list) or len(
        parents
    ) != NUM_JOINTS:
        raise BundleError(f"{where}: skeleton must list {NUM_JOINTS} joint names and parents")
    if names != list(JOINT_NAMES):
        k = next(i for i, (a, b) in enumerate(zip(names, JOINT_NAMES, strict=True)) if a != b)
        raise BundleError(f"{where}: skeleton.joint_names must be SMPL-X's in order; joint {k} is "
                          f"{str(names[k])[:40]!r}, expected {JOINT_NAMES[k]!r}")
    if not all(type(p) is int for p in parents) or parents != list(PARENTS):
        raise BundleError(f"{where}: skeleton.parents must be SMPL-X's (−1 for the pelvis, then each joint's parent)")
    return list(JOINT_NAMES), np.asarray(PARENTS, dtype=np.int64)


def _rig_block(meta: dict, where: Path) -> None:
    """The optional ``rig`` block: a JSON object whose ``rest_pose_angles`` and ``pose_from_rest``, when present,
    are 55 × 3 finite angles (radians, within ±:data:`MAX_ANGLE_ABS`)."""
    if "rig" not in meta:
        return
    if not isinstance(meta["rig"], dict):
        raise BundleError(f"{where}: 'rig' must be a JSON object")
    for key in ("rest_pose_angles", "pose_from_rest"):
        if meta["rig"].get(key) is not None:
            _array(meta, f"rig.{key}", (NUM_JOINTS, 3), where, MAX_ANGLE_ABS)


#: Bounds of a bundle's numbers: joint angles (radians; a fit's axis-angle stays within a few π), positions and
#: translations (metres) and camera intrinsics (pixels).
MAX_ANGLE_ABS = 100.0
#: Shape coefficients: at most this many (SMPL-X has up to 400), each within ± this many standard deviations.
MAX_BETAS = 400
MAX_BETA_ABS = 100.0
MAX_METRES_ABS = 1e4
MAX_PIXELS_ABS = 1e7


def _plain_name(name: Any) -> bool:
    """A bare file name: no folder part on any platform, not '.' or '..', no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name
            and not any(c in name for c in "/\\:\0"))


def _file_limit(name: str) -> int:
    return MAX_FILE_BYTES.get(Path(name).suffix.lower(), MAX_FILE_BYTES["other"])


def _describe_mode(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"


def _read_plain_file(root: Path, name: str, label: str) -> bytes:
    """The bytes of ``root/name`` after the trust checks: a regular file (not a link) inside ``root``, within its
    size limit. ``label`` names the file in messages (e.g. "texture.png (texture)")."""
    path = root / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise BundleError(f"{root}: file {label} is missing") from None
    except OSError as exc:
        raise BundleError(f"{root}: file {label} cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISLNK(st.st_mode):
        raise BundleError(f"{root}: {label} is a symbolic link; a bundle may hold only regular files (a link can "
                          f"pull a file from outside the bundle into your scene and exports)")
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{root}: {label} is {_describe_mode(st.st_mode)}, not a regular file")
    if Path(os.path.realpath(path)).parent != Path(os.path.realpath(root)):
        raise BundleError(f"{root}: {label} lies outside the bundle folder")
    limit = _file_limit(name)
    if st.st_size > limit:
        raise BundleError(f"{root}: {label} is {st.st_size / _MB:.0f} MB, more than the {limit // _MB} MB a bundle "
                          f"file of this kind may have")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:  # swapped for a link since the check, or unreadable
        raise BundleError(f"{root}: {label} cannot be read ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise BundleError(f"{root}: {label} is not a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{root}: {label} is more than the {limit // _MB} MB a bundle file of this kind may have")
    return data


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when ``data`` is not a PNG."""
    if data[:8] != _PNG_MAGIC or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def _exif_orientation(segment: bytes) -> int:
    """The EXIF orientation tag (1–8) of an APP1 ``Exif`` segment's payload; 1 when absent or unreadable."""
    tiff = segment[6:]
    if tiff[:2] not in (b"II", b"MM"):
        return 1
    end = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", tiff[4:8])
        (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
        for k in range(min(count, 512)):
            entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            tag, kind = struct.unpack(end + "HH", entry[:4])
            if tag == 0x0112 and kind == 3:
                value = struct.unpack(end + "H", entry[8:10])[0]
                return value if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def jpeg_info(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation) from a JPEG's markers (pixels as stored), or None when not a JPEG."""
    if data[:3] != _JPEG_MAGIC:
        return None
    pos, orientation = 2, 1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\0\0":
            orientation = _exif_orientation(segment)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and len(segment) >= 5:
            height, width = struct.unpack(">HH", segment[1:5])
            return width, height, orientation
        if marker == 0xDA or length < 2:  # image data without a frame header
            return None
        pos += 2 + length
    return None


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image stored with EXIF ``orientation`` (1–8) upright, as viewers (and PIL's ``exif_transpose``) do.

    ``pixels`` (H, W, ...) with row 0 at the top; returns a view (W, H, ...) for orientations 5–8."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return ops[orientation if orientation in ops else 1](pixels)


def _check_image_size(root: Path, label: str, size: tuple[int, int] | None, kind: str) -> tuple[int, int]:
    if size is None:
        raise BundleError(f"{root}: {label} is not a {kind} image")
    width, height = size
    if width <= 0 or height <= 0 or width * height > MAX_IMAGE_PIXELS:
        raise BundleError(f"{root}: {label} is a {width} × {height} image (at most "
                          f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels and at least 1 × 1)")
    return width, height


def _load_npy(root: Path, label: str, data: bytes) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged header fails in numpy's parser with any error (TokenError…)
        raise BundleError(f"{root}: {label} is not a readable .npy array ({exc})") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise BundleError(f"{root}: {label} is not a numeric .npy array")
    return arr


def _not_a_bundle(root: Path) -> BundleError:
    """bundle.json is missing; for an output folder (--out) holding bundles, name the sub-folders to use."""
    try:
        subs = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.is_dir()
                      and not p.is_symlink() and (p / "bundle.json").is_file())
    except OSError:
        subs = []
    if not subs:
        return BundleError(f"{root}: not a bundle (bundle.json is missing)")
    listed = ", ".join(f"{s}/" for s in subs[:5]) + (", …" if len(subs) > 5 else "")
    return BundleError(f"{root}: not a bundle (bundle.json is missing) but an output folder holding "
                       f"{len(subs)} bundle(s): {listed}", f"Give one bundle folder, e.g. {root / subs[0]}")


def read_bundle(path: str | Path) -> Bundle:
    """Read and validate the bundle folder at ``path``."""
    root = Path(path)
    meta_path = root / "bundle.json"
    if not root.is_dir():
        raise BundleError(f"{root}: {'a file, not a bundle folder' if root.exists() else 'no such bundle folder'}")
    if not os.path.lexists(meta_path):
        raise _not_a_bundle(root)
    raw_meta = _read_plain_file(root, "bundle.json", "bundle.json")
    try:
        meta = json.loads(raw_meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BundleError(f"{meta_path}: damaged JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise BundleError(f"{meta_path}: not an {FORMAT_NAME} file (format="
                          f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r})")
    version = meta.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise BundleError(
            f"{meta_path}: bundle format version {version!r} is not supported (this reader knows "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}); update the add-on or re-run the reconstruction"
        )
    files = meta.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{meta_path}: no 'files' map")
    for key in REQUIRED_FILES:
        if key not in files:
            raise BundleError(f"{meta_path}: the files map lacks '{key}'")
    contents: dict[str, bytes] = {}
    for key, name in files.items():
        if not _plain_name(name) or name == "bundle.json":
            raise BundleError(f"{meta_path}: file entry '{key}' must be a plain file name, got {name!r}")
        contents[key] = _read_plain_file(root, name, f"'{name}' ({key})")
    image_sizes: dict[str, tuple[int, int]] = {}
    photo_orientation = 1
    for key, name in files.items():
        kind = "image" if _VIEW_PHOTO_KEY.fullmatch(key) else _KINDS.get(key)
        label = f"'{name}' ({key})"
        if kind == "png":
            image_sizes[key] = _check_image_size(root, label, png_size(contents[key]), "PNG")
        elif kind == "image":
            info = jpeg_info(contents[key])
            if info is not None and key == "photo":
                photo_orientation = info[2]
            size = png_size(contents[key]) or (info[:2] if info else None)
            image_sizes[key] = _check_image_size(root, label, size, "PNG or JPEG")

    meshes = {}
    for key in ("posed_mesh", "body_mesh", "rest_mesh"):
        try:
            meshes[key] = parse_ply(contents[key], root / files[key])
        except MeshFormatError as exc:
            raise BundleError(str(exc)) from exc
        except (ValueError, KeyError, IndexError, UnicodeError) as exc:  # a damaged header
            raise BundleError(f"{root / files[key]}: not a valid PLY file ({type(exc).__name__}: {exc})") from exc
        if len(meshes[key].faces) == 0:
            raise BundleError(f"{root / files[key]}: mesh has no faces")
        if not np.all(np.isfinite(meshes[key].vertices)):
            raise BundleError(f"{root / files[key]}: vertex coordinates contain NaN or infinity")
    posed, rest = meshes["posed_mesh"], meshes["rest_mesh"]
    if posed.vertices.shape != rest.vertices.shape or not np.array_equal(posed.faces, rest.faces):
        raise BundleError(
            f"{root}: rest_mesh ({len(rest.vertices)} vertices) does not match posed_mesh "
            f"({len(posed.vertices)} vertices) vertex for vertex"
        )
    weights = _load_npy(root, f"'{files['skin_weights']}' (skin_weights)", contents["skin_weights"])
    if weights.shape != (len(rest.vertices), NUM_JOINTS):
        raise BundleError(
            f"{root / files['skin_weights']}: shape {weights.shape}, expected ({len(rest.vertices)}, {NUM_JOINTS})"
        )
    if not np.all(np.isfinite(weights)) or weights.min() < -1e-6 or np.abs(weights.sum(1) - 1).max() > 1e-3:
        raise BundleError(f"{root / files['skin_weights']}: weights must be finite, ≥ 0 and sum to 1 per vertex")
    joints = _load_npy(root, f"'{files['rest_joints']}' (rest_joints)", contents["rest_joints"])
    if joints.shape != (NUM_JOINTS, 3):
        raise BundleError(f"{root / files['rest_joints']}: shape {joints.shape}, expected ({NUM_JOINTS}, 3)")
    if not np.all(np.isfinite(joints)):
        bad = sorted({int(j) for j in np.nonzero(~np.isfinite(joints))[0]})
        named = ", ".join(f"{j} ({JOINT_NAMES[j]})" for j in bad[:5]) + (", …" if len(bad) > 5 else "")
        raise BundleError(f"{root / files['rest_joints']}: NaN or infinite coordinates in joint(s) {named}")

    K, R, t = _camera(meta, "camera", meta_path)
    size = _array(meta, "photo.size", (2,), meta_path)
    if not all(float(v).is_integer() and 0 < v <= 100_000 for v in size):
        raise BundleError(f"{meta_path}: photo.size must be the photo's width and height in pixels (1–100000)")
    photo_size = (int(size[0]), int(size[1]))
    if "mask" in image_sizes and image_sizes["mask"] != photo_size:
        raise BundleError(f"{root / files['mask']}: {image_sizes['mask'][0]} × {image_sizes['mask'][1]} pixels, "
                          f"expected the photo's {photo_size[0]} × {photo_size[1]}")
    if "photo" in image_sizes:
        stored = image_sizes["photo"]
        upright = stored[::-1] if photo_orientation >= 5 else stored
        if upright != photo_size:
            raise BundleError(f"{root / files['photo']}: {stored[0]} × {stored[1]} pixels as stored, expected the "
                              f"photo's {photo_size[0]} × {photo_size[1]}")
    full_pose = _array(meta, "body.full_pose", (NUM_JOINTS, 3), meta_path, MAX_ANGLE_ABS)
    transl = _array(meta, "body.transl", (3,), meta_path, MAX_METRES_ABS)
    betas = meta["body"].get("betas")
    if betas is not None:  # the shape the motion capture reuses (motion --bundle)
        count = len(betas) if isinstance(betas, list) else 0
        if not 1 <= count <= MAX_BETAS:
            raise BundleError(f"{meta_path}: 'body.betas' must be a list of 1–{MAX_BETAS} numbers")
        _array(meta, "body.betas", (count,), meta_path, MAX_BETA_ABS)
    _rig_block(meta, meta_path)
    names, parents = _skeleton(meta, meta_path)
    views = _subject_views(meta, meta_path, image_sizes)
    offsets = None
    if "corrective_offsets" in files:
        offsets = _load_npy(root, f"'{files['corrective_offsets']}' (corrective_offsets)",
                            contents["corrective_offsets"])
    correctives = _correctives(meta, offsets, len(rest.vertices), meta_path)
    return Bundle(
        correctives=correctives,
        path=root.absolute(),
        meta=meta,
        views=views,
        posed_mesh=posed,
        body_mesh=meshes["body_mesh"],
        rest_mesh=rest,
        skin_weights=weights.astype(np.float64),
        rest_joints=joints.astype(np.float64),
        K=K,
        R=R,
        t=t,
        image_size=photo_size,
        joint_names=names,
        parents=parents,
        full_pose=full_pose,
        transl=transl,
        photo_orientation=photo_orientation,
    )
