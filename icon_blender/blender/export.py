"""Export an imported avatar with Blender's own exporters: FBX (``core.fbx_presets``), glTF/GLB and USD
(``core.export_presets``), optionally with the bones renamed for Mixamo / Unreal / Unity (``core.bone_maps``).

Every export works on the avatar as it is and leaves it as it was: the selection, the armature's name, the bone
names and the skin weights are restored afterwards (also when the exporter fails); files are written beside their
target and renamed into place. Game presets limit the skin to ``GAME_MAX_INFLUENCES`` normalised weights per
vertex for the duration of the export. The Armature modifiers are switched off while exporting (the skin comes
from the vertex groups), which makes baking the animation ~10x faster.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np

from ..core import bone_maps, export_presets, fbx_presets


def avatar_meshes(arm_obj: bpy.types.Object) -> list[bpy.types.Object]:
    """The mesh objects the armature deforms (through an Armature modifier)."""
    return [o for o in bpy.data.objects if o.type == "MESH" and any(
        m.type == "ARMATURE" and m.object == arm_obj for m in o.modifiers)]


def read_weights(obj: bpy.types.Object) -> np.ndarray:
    """(V, G) vertex-group weights of a mesh object, in vertex-group order."""
    w = np.zeros((len(obj.data.vertices), len(obj.vertex_groups)), dtype=np.float32)
    for v in obj.data.vertices:
        for g in v.groups:
            w[v.index, g.group] = g.weight
    return w


def write_weights(obj: bpy.types.Object, weights: np.ndarray, rows: np.ndarray) -> None:
    """Set the weights of vertices ``rows`` to ``weights[rows]`` (V, G) in vertex-group order; zeros are removed."""
    groups = list(obj.vertex_groups)
    for v in np.asarray(rows, dtype=np.int64).tolist():
        for g, value in enumerate(weights[v].tolist()):
            if value > 0:
                groups[g].add([v], value, "REPLACE")
            else:
                groups[g].remove([v])


def _known(op, kwargs: dict) -> dict:
    """Only the keyword arguments this Blender's exporter has (option names differ across 4.2 – 5.2)."""
    props = op.get_rna_type().properties
    return {k: v for k, v in kwargs.items() if k in props}


@contextmanager
def armature_modifiers_off(meshes: list[bpy.types.Object], viewport: bool = True) -> Iterator[None]:
    """Switch the meshes' Armature modifiers off for renders (and the viewport unless ``viewport`` is False), so
    that changing frames does not deform every mesh; restored on exit."""
    mods = [(m, m.show_viewport, m.show_render) for o in meshes for m in o.modifiers if m.type == "ARMATURE"]
    try:
        for m, _, _ in mods:
            m.show_render = False
            m.show_viewport = m.show_viewport and not viewport
        yield
    finally:
        for m, shown, render in mods:
            m.show_viewport, m.show_render = shown, render


@contextmanager
def export_state(arm_obj: bpy.types.Object, bone_names: str = "smplx", max_influences: int | None = None,
                 armature_name: str | None = None, viewport_off: bool = True) -> Iterator[list[bpy.types.Object]]:
    """Select the avatar alone, rename its bones (``bone_maps``) and armature object, normalise its skin weights
    (at most ``max_influences`` per vertex), switch its Armature modifiers off; yields its meshes and restores
    everything on exit. ``viewport_off=False`` switches them off for renders only: the USD exporter finds the
    skin through an Armature modifier that is on in the viewport, and evaluates the mesh for render (no deforming
    at every frame)."""
    meshes = avatar_meshes(arm_obj)
    view_layer = bpy.context.view_layer
    prev_sel = [o for o in view_layer.objects if o.select_get()]
    prev_active = view_layer.objects.active
    old_name = arm_obj.name
    mapping = {k: v for k, v in bone_maps.bone_map(bone_names, [b.name for b in arm_obj.data.bones]).items()
               if k != v and k in arm_obj.data.bones}
    saved_weights = []  # (mesh, original weights, rows the export changes)
    for o in meshes:
        w = read_weights(o)
        limited = export_presets.limit_weights(w, max_influences).astype(np.float32)
        rows = np.flatnonzero(np.abs(limited - w).max(axis=1) > 1e-6) if len(w) else np.zeros(0, np.int64)
        saved_weights.append((o, w, limited, rows))
    renamed: list[tuple[str, str]] = []
    with armature_modifiers_off(meshes, viewport_off):
        try:
            for o in prev_sel:
                o.select_set(False)
            for o in [arm_obj, *meshes]:
                o.select_set(True)
            view_layer.objects.active = arm_obj
            for obj, _, limited, rows in saved_weights:
                write_weights(obj, limited, rows)
            for old, new in mapping.items():  # also renames the vertex groups and the actions' F-curve paths
                arm_obj.data.bones[old].name = new
                renamed.append((old, new))
            if armature_name and armature_name not in bpy.data.objects:
                arm_obj.name = armature_name
            yield meshes
        finally:
            arm_obj.name = old_name
            for old, new in reversed(renamed):
                arm_obj.data.bones[new].name = old
            for obj, w, _, rows in saved_weights:
                write_weights(obj, w, rows)
            for o in view_layer.objects:
                o.select_set(o in prev_sel)
            view_layer.objects.active = prev_active


def _target(path: str | Path, kind: str) -> Path:
    path = Path(path).absolute()
    if path.suffix.lower() not in export_presets.SUFFIXES[kind]:
        raise ValueError(f"{path.name}: the file name must end in {' or '.join(export_presets.SUFFIXES[kind])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class ExportTargetError(RuntimeError):
    """Something of the user's is where an export must go (a folder where a file goes, or a file where a folder
    goes); it is left as it is."""


@contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """Yield ``.<stem>.partial/<name>`` to export into; on success move what was written (the file, and a
    ``.gltf``'s ``.bin``/images or USD's ``textures/``) beside ``path``, the main file last; always clean up.
    A folder the exporter wrote (USD's ``textures/``) is merged into one already there: files of the same name are
    replaced, the user's other files stay (the folder was deleted and replaced before wave 18)."""
    staging = path.with_name(f".{path.stem}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging / path.name
        if not (staging / path.name).is_file():
            raise RuntimeError(f"the exporter wrote no {path.name}")
        for item in sorted(staging.iterdir(), key=lambda p: p.name == path.name):
            _move_into_place(item, path.with_name(item.name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(item: Path, target: Path) -> None:
    """Move the exported file or folder ``item`` to ``target``: a file replaces a file of that name, a folder's
    files go into the folder of that name (created when missing), file by file. A folder where a file goes, or a
    file where a folder goes, is the user's: refused, nothing of it removed."""
    if item.is_dir():
        if target.exists() and not target.is_dir():
            raise ExportTargetError(f"{target} is a file, not a folder: the export's {item.name}/ cannot go there")
        target.mkdir(exist_ok=True)
        for child in item.iterdir():
            _move_into_place(child, target / child.name)
        return
    if target.is_dir() and not target.is_symlink():
        raise ExportTargetError(f"{target} is a folder: the export's file {item.name} cannot replace it")
    item.replace(target)


def _run(op, what: str, target: Path, kwargs: dict) -> None:
    result = op(filepath=str(target), **_known(op, kwargs))
    if "FINISHED" not in result:
        raise RuntimeError(f"{what} export to {target.name} failed")


def export_fbx(arm_obj: bpy.types.Object, path: str | Path, preset: str = "generic",
               bone_names: str = "smplx") -> Path:
    """Export the armature and the meshes it deforms to ``path`` with an FBX preset (unity | unreal | generic),
    textures embedded. The Unreal preset exports the armature object as "Armature" so that Unreal does not add
    an extra root bone."""
    kwargs = fbx_presets.preset(preset)
    path = _target(path, "fbx")
    name = fbx_presets.UNREAL_ARMATURE_NAME if preset.lower() == "unreal" else None
    with _staged(path) as tmp, export_state(arm_obj, bone_names, export_presets.MAX_INFLUENCES[("fbx", preset.lower())],
                                            name):
        _run(bpy.ops.export_scene.fbx, "FBX", tmp, {"use_selection": True, **kwargs})
    return path


def export_gltf(arm_obj: bpy.types.Object, path: str | Path, preset: str = "godot",
                bone_names: str = "smplx") -> Path:
    """Export the avatar to glTF 2.0: ``.glb`` (one file, textures embedded) or ``.gltf`` (JSON + ``.bin`` +
    images beside it), with a glTF preset (unreal | godot | web): skin ≤ 4 normalised weights, the active
    action sampled at every frame of the scene's range."""
    path = _target(path, "gltf")
    kwargs = export_presets.gltf_preset(preset, path.suffix)
    with _staged(path) as tmp, export_state(arm_obj, bone_names,
                                            export_presets.MAX_INFLUENCES[("gltf", preset.lower())]):
        _run(bpy.ops.export_scene.gltf, "glTF", tmp, kwargs)
    return path


def export_usd(arm_obj: bpy.types.Object, path: str | Path, preset: str | None = None,
               bone_names: str = "smplx") -> Path:
    """Export the avatar to USD (UsdSkel skeleton, skinned mesh, preview-surface material, the active action):
    ``.usdz`` holds the textures, ``.usd``/``.usdc``/``.usda`` writes them to ``textures/`` beside the file."""
    path = _target(path, "usd")
    preset = (preset or ("usdz" if path.suffix.lower() == ".usdz" else "usd")).lower()
    kwargs = export_presets.usd_preset(preset)
    scene = bpy.context.scene
    frame = scene.frame_current
    try:
        with _staged(path) as tmp, export_state(arm_obj, bone_names, export_presets.MAX_INFLUENCES[("usd", preset)],
                                                viewport_off=False):
            _run(bpy.ops.wm.usd_export, "USD", tmp, kwargs)
    finally:
        scene.frame_set(frame)
    return path


#: Format → export function (the CLI and the operators use it).
EXPORTERS = {"fbx": export_fbx, "gltf": export_gltf, "usd": export_usd}
