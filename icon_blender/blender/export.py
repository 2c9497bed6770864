"""FBX export of an imported avatar with the Unity / Unreal / generic presets (``core.fbx_presets``)."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..core import fbx_presets


def export_fbx(arm_obj: bpy.types.Object, path: str | Path, preset: str = "generic") -> Path:
    """Export the armature and the meshes it deforms to ``path`` (written beside, then renamed into place).

    The Unreal preset exports the armature object as "Armature" (restored afterwards) so that Unreal does not
    add an extra root bone. The Armature modifiers are switched off during the export (skinning is written from
    the vertex groups either way): otherwise baking the animation deforms every mesh at every frame.
    """
    kwargs = fbx_presets.preset(preset)
    path = Path(path).absolute()
    if path.suffix.lower() != ".fbx":
        raise ValueError(f"{path.name}: the FBX file name must end in .fbx")
    path.parent.mkdir(parents=True, exist_ok=True)
    meshes = [o for o in bpy.data.objects if o.type == "MESH" and any(
        m.type == "ARMATURE" and m.object == arm_obj for m in o.modifiers)]
    view_layer = bpy.context.view_layer
    prev_sel = [o for o in view_layer.objects if o.select_get()]
    prev_active = view_layer.objects.active
    old_name = arm_obj.name
    tmp = path.with_name(f".{path.stem}.partial.fbx")
    mods = [(m, m.show_viewport, m.show_render) for o in meshes for m in o.modifiers if m.type == "ARMATURE"]
    try:
        for m, _, _ in mods:
            m.show_viewport = m.show_render = False
        for o in prev_sel:
            o.select_set(False)
        for o in [arm_obj, *meshes]:
            o.select_set(True)
        view_layer.objects.active = arm_obj
        if preset.lower() == "unreal" and fbx_presets.UNREAL_ARMATURE_NAME not in bpy.data.objects:
            arm_obj.name = fbx_presets.UNREAL_ARMATURE_NAME
        result = bpy.ops.export_scene.fbx(filepath=str(tmp), use_selection=True, **kwargs)
        if "FINISHED" not in result or not tmp.is_file():
            raise RuntimeError(f"FBX export to {path} failed")
        tmp.replace(path)
    finally:
        for m, viewport, render in mods:
            m.show_viewport, m.show_render = viewport, render
        arm_obj.name = old_name
        tmp.unlink(missing_ok=True)
        for o in view_layer.objects:
            o.select_set(o in prev_sel)
        view_layer.objects.active = prev_active
    return path
