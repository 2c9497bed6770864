"""FBX export presets (keyword arguments of ``bpy.ops.export_scene.fbx``). Pure data.

All presets: no leaf bones (``add_leaf_bones=False``), only deforming bones, the active action baked at every
frame (no simplification, no NLA, no other actions), face smoothing, mesh modifiers off (the Armature modifier is
the rig itself). Per target:

- ``unity``: Apply Scalings "FBX All" so Unity imports the avatar at scale 1 with metres → Unity units; −Z
  forward, Y up (Unity converts; tick "Bake Axis Conversion" in the importer to remove the −90° X root rotation).
- ``unreal``: scale as-is (metres with UnitScaleFactor 100; Unreal converts to centimetres), −Z forward, Y up;
  the armature object is exported under the name "Armature", which Unreal drops instead of adding a root bone.
- ``generic``: Blender's defaults for axes and units.
"""

from __future__ import annotations

COMMON: dict = {
    "add_leaf_bones": False,
    "use_armature_deform_only": True,
    "bake_anim": True,
    "bake_anim_use_all_bones": True,
    "bake_anim_use_nla_strips": False,
    "bake_anim_use_all_actions": False,
    "bake_anim_force_startend_keying": True,
    "bake_anim_step": 1.0,
    "bake_anim_simplify_factor": 0.0,
    "mesh_smooth_type": "FACE",
    "use_mesh_modifiers": False,
    "object_types": {"ARMATURE", "MESH"},
    "primary_bone_axis": "Y",
    "secondary_bone_axis": "X",
    "path_mode": "COPY",
    "embed_textures": True,
}

PRESETS: dict[str, dict] = {
    "unity": {**COMMON, "axis_forward": "-Z", "axis_up": "Y", "apply_unit_scale": True,
              "apply_scale_options": "FBX_SCALE_ALL", "global_scale": 1.0},
    "unreal": {**COMMON, "axis_forward": "-Z", "axis_up": "Y", "apply_unit_scale": True,
               "apply_scale_options": "FBX_SCALE_NONE", "global_scale": 1.0},
    "generic": {**COMMON, "axis_forward": "-Z", "axis_up": "Y", "apply_unit_scale": True,
                "apply_scale_options": "FBX_SCALE_NONE", "global_scale": 1.0},
}

#: Name the armature object gets during an Unreal export.
UNREAL_ARMATURE_NAME = "Armature"


def preset(name: str) -> dict:
    """A copy of the keyword arguments of preset ``name`` (unity | unreal | generic)."""
    key = name.lower()
    if key not in PRESETS:
        raise ValueError(f"unknown FBX preset {name!r}; choose one of {', '.join(PRESETS)}")
    out = dict(PRESETS[key])
    out["object_types"] = set(out["object_types"])
    return out
