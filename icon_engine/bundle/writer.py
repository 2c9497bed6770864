"""Atomic bundle writing: build the folder beside the target, then rename it into place.

A failed or cancelled write leaves no partial bundle (the temporary folder is removed); an existing bundle
at the target is replaced only once the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .format import FORMAT_NAME, FORMAT_VERSION, OPTIONAL_FILES, REQUIRED_FILES
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
    photo_suffix: str = ".jpg"
    extra_files: dict[str, bytes] = field(default_factory=dict)


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


def write_bundle(target: str | Path, content: BundleContent) -> Path:
    """Write ``content`` as a bundle folder at ``target`` atomically; returns the absolute target path."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = dict(REQUIRED_FILES)
        write_ply(tmp / files["posed_mesh"], content.posed_mesh)
        write_ply(tmp / files["body_mesh"], content.body_mesh)
        write_ply(tmp / files["rest_mesh"], content.rest_mesh)
        np.save(tmp / files["skin_weights"], np.asarray(content.skin_weights, dtype=np.float32), allow_pickle=False)
        np.save(tmp / files["rest_joints"], np.asarray(content.rest_joints, dtype=np.float32), allow_pickle=False)
        _write_png(tmp / files["mask"], np.asarray(content.mask, dtype=bool).astype(np.uint8) * 255)
        if content.texture is not None:
            files["texture"] = OPTIONAL_FILES["texture"]
            _write_png(tmp / files["texture"], content.texture)
        if content.photo_bytes is not None:
            files["photo"] = "photo" + content.photo_suffix.lower()
            (tmp / files["photo"]).write_bytes(content.photo_bytes)
        for name, data in content.extra_files.items():
            (tmp / name).write_bytes(data)
            files[Path(name).stem] = name
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            **_jsonable(content.metadata),
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


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` is moved aside first and removed after."""
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
    shutil.rmtree(old, ignore_errors=True)
