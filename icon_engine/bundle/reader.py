"""Reading and validating a result bundle (numpy + stdlib only; the Blender add-on imports this).

:func:`read_bundle` checks the format name and version, the files map, every file's presence, and the
shapes and consistency of the arrays; anything wrong raises :class:`BundleError` with a message that names
the file and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .format import FORMAT_NAME, REQUIRED_FILES, SUPPORTED_VERSIONS
from .meshio import MeshFormatError, TriMesh, read_ply
from .skeleton import NUM_JOINTS

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class BundleError(ValueError):
    """A bundle folder that is missing, damaged or of an unsupported version."""


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

    def file(self, key: str) -> Path | None:
        """Absolute path of the file named ``key`` in the files map, or None if the bundle has none."""
        name = self.meta["files"].get(key)
        return self.path / name if name else None

    @property
    def warnings(self) -> list[str]:
        return list(self.meta.get("warnings", []))


def _array(meta: dict, dotted: str, shape: tuple[int, ...], where: Path) -> np.ndarray:
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
    return arr


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"{path}: not a readable .npy array ({exc})") from exc


def read_bundle(path: str | Path) -> Bundle:
    """Read and validate the bundle folder at ``path``."""
    root = Path(path)
    meta_path = root / "bundle.json"
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle folder")
    if not meta_path.is_file():
        raise BundleError(f"{root}: not a bundle (bundle.json is missing)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{meta_path}: damaged JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise BundleError(f"{meta_path}: not an {FORMAT_NAME} file (format={meta.get('format')!r})")
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
    for key, name in files.items():
        if not isinstance(name, str) or Path(name).name != name:
            raise BundleError(f"{meta_path}: file entry '{key}' must be a plain file name, got {name!r}")
        if not (root / name).is_file():
            raise BundleError(f"{root}: file '{name}' ({key}) is missing")

    meshes = {}
    for key in ("posed_mesh", "body_mesh", "rest_mesh"):
        try:
            meshes[key] = read_ply(root / files[key])
        except MeshFormatError as exc:
            raise BundleError(str(exc)) from exc
        if len(meshes[key].faces) == 0:
            raise BundleError(f"{root / files[key]}: mesh has no faces")
    posed, rest = meshes["posed_mesh"], meshes["rest_mesh"]
    if posed.vertices.shape != rest.vertices.shape or not np.array_equal(posed.faces, rest.faces):
        raise BundleError(
            f"{root}: rest_mesh ({len(rest.vertices)} vertices) does not match posed_mesh "
            f"({len(posed.vertices)} vertices) vertex for vertex"
        )
    weights = _load_npy(root / files["skin_weights"])
    if weights.shape != (len(rest.vertices), NUM_JOINTS):
        raise BundleError(
            f"{root / files['skin_weights']}: shape {weights.shape}, expected ({len(rest.vertices)}, {NUM_JOINTS})"
        )
    if not np.all(np.isfinite(weights)) or weights.min() < -1e-6 or np.abs(weights.sum(1) - 1).max() > 1e-3:
        raise BundleError(f"{root / files['skin_weights']}: weights must be finite, ≥ 0 and sum to 1 per vertex")
    joints = _load_npy(root / files["rest_joints"])
    if joints.shape != (NUM_JOINTS, 3) or not np.all(np.isfinite(joints)):
        raise BundleError(f"{root / files['rest_joints']}: shape {joints.shape}, expected ({NUM_JOINTS}, 3)")
    for key in ("mask", "texture"):
        if key in files and (root / files[key]).read_bytes()[:8] != _PNG_MAGIC:
            raise BundleError(f"{root / files[key]}: not a PNG image")

    K = _array(meta, "camera.K", (3, 3), meta_path)
    R = _array(meta, "camera.R", (3, 3), meta_path)
    t = _array(meta, "camera.t", (3,), meta_path)
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
        raise BundleError(f"{meta_path}: camera.R is not a rotation matrix")
    size = _array(meta, "photo.size", (2,), meta_path)
    full_pose = _array(meta, "body.full_pose", (NUM_JOINTS, 3), meta_path)
    transl = _array(meta, "body.transl", (3,), meta_path)
    skeleton = meta.get("skeleton", {})
    names, parents = skeleton.get("joint_names"), skeleton.get("parents")
    if not isinstance(names, list) or len(names) != NUM_JOINTS or not isinstance(parents, list) or len(
        parents
    ) != NUM_JOINTS:
        raise BundleError(f"{meta_path}: skeleton must list {NUM_JOINTS} joint names and parents")
    return Bundle(
        path=root.absolute(),
        meta=meta,
        posed_mesh=posed,
        body_mesh=meshes["body_mesh"],
        rest_mesh=rest,
        skin_weights=weights.astype(np.float64),
        rest_joints=joints.astype(np.float64),
        K=K,
        R=R,
        t=t,
        image_size=(int(size[0]), int(size[1])),
        joint_names=[str(n) for n in names],
        parents=np.asarray(parents, dtype=np.int64),
        full_pose=full_pose,
        transl=transl,
    )
