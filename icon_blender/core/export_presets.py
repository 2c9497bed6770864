"""glTF/GLB and USD export presets (keyword arguments of Blender's own exporters), skin-weight limits of the game
presets, and the weight limiting itself. numpy only; FBX presets are in :mod:`.fbx_presets`.

glTF is Y-up, metres, +Z forward by definition (the avatar faces +Z, as in SMPL-X); Blender's exporter converts.

- ``unreal`` (GLB): Unreal's glTF importer / Interchange; embedded textures, deform bones only, ≤ 4 influences.
- ``godot`` (GLB): Godot 4's importer; the same, PNG textures kept lossless.
- ``web`` (GLB): three.js / Babylon / model-viewer; JPEG textures (smaller downloads), ≤ 4 influences.

USD (``bpy.ops.wm.usd_export``), metres (``metersPerUnit`` 1), Y up (``convert_orientation``) as most USD
pipelines expect:

- ``usd``: ``.usd``/``.usdc``/``.usda`` with the textures written beside it (``textures/``), relative paths.
- ``usdz``: one ``.usdz`` archive with the textures inside (AR Quick Look, web).
"""

from __future__ import annotations

import numpy as np

#: Largest number of bone influences per vertex game engines take without loss (GPU skinning's usual 4).
GAME_MAX_INFLUENCES = 4

_GLTF_COMMON: dict = {
    "export_format": "GLB",
    "use_selection": True,
    "export_yup": True,
    "export_apply": False,
    "export_texcoords": True,
    "export_normals": True,
    "export_materials": "EXPORT",
    "export_skins": True,
    "export_influence_nb": GAME_MAX_INFLUENCES,
    "export_all_influences": False,
    "export_def_bones": True,
    "export_leaf_bone": False,
    "export_animations": True,
    "export_animation_mode": "ACTIVE_ACTIONS",
    "export_force_sampling": True,
    "export_frame_range": True,
    "export_optimize_animation_size": False,
    "export_cameras": False,
    "export_lights": False,
    "export_image_format": "AUTO",
}

GLTF_PRESETS: dict[str, dict] = {
    "unreal": dict(_GLTF_COMMON),
    "godot": {**_GLTF_COMMON, "export_image_format": "AUTO"},
    "web": {**_GLTF_COMMON, "export_image_format": "JPEG"},
}

_USD_COMMON: dict = {
    "selected_objects_only": True,
    "export_animation": True,
    "export_armatures": True,
    "only_deform_bones": True,
    "export_uvmaps": True,
    "export_normals": True,
    "export_materials": True,
    "generate_preview_surface": True,
    "export_textures_mode": "NEW",
    "overwrite_textures": True,
    "relative_paths": True,
    "convert_orientation": True,
    "export_global_forward_selection": "NEGATIVE_Z",
    "export_global_up_selection": "Y",
    "export_cameras": False,
    "export_lights": False,
    "root_prim_path": "/root",
    "export_custom_properties": False,
    "evaluation_mode": "RENDER",  # the Armature modifier is off for renders during the export: no per-frame skinning
}

USD_PRESETS: dict[str, dict] = {"usd": dict(_USD_COMMON), "usdz": dict(_USD_COMMON)}

#: Influences per vertex each preset allows (None: all the avatar has, up to the bundle's 8).
MAX_INFLUENCES: dict[tuple[str, str], int | None] = {
    ("fbx", "unity"): GAME_MAX_INFLUENCES, ("fbx", "unreal"): GAME_MAX_INFLUENCES, ("fbx", "generic"): None,
    ("gltf", "unreal"): GAME_MAX_INFLUENCES, ("gltf", "godot"): GAME_MAX_INFLUENCES,
    ("gltf", "web"): GAME_MAX_INFLUENCES, ("usd", "usd"): None, ("usd", "usdz"): None,
}

#: File name endings each format accepts.
SUFFIXES = {"fbx": (".fbx",), "gltf": (".glb", ".gltf"), "usd": (".usd", ".usdc", ".usda", ".usdz")}


def gltf_preset(name: str, suffix: str = ".glb") -> dict:
    """Keyword arguments of ``bpy.ops.export_scene.gltf`` for preset ``name``; ``.gltf`` writes a JSON file with
    the binary buffer and textures beside it, ``.glb`` one file with everything embedded."""
    key = name.lower()
    if key not in GLTF_PRESETS:
        raise ValueError(f"unknown glTF preset {name!r}; choose one of {', '.join(GLTF_PRESETS)}")
    out = dict(GLTF_PRESETS[key])
    if suffix.lower() == ".gltf":
        out["export_format"] = "GLTF_SEPARATE"
    return out


def usd_preset(name: str) -> dict:
    """Keyword arguments of ``bpy.ops.wm.usd_export`` for preset ``name`` (usd | usdz)."""
    key = name.lower()
    if key not in USD_PRESETS:
        raise ValueError(f"unknown USD preset {name!r}; choose one of {', '.join(USD_PRESETS)}")
    return dict(USD_PRESETS[key])


def limit_weights(weights: np.ndarray, max_influences: int | None) -> np.ndarray:
    """(V, J) skin weights with at most ``max_influences`` non-zeros per row (the largest kept), rows summing
    to 1. ``None`` only normalises. Rows that are all zero stay zero."""
    w = np.array(weights, dtype=np.float64, copy=True)
    if max_influences is not None and w.shape[1] > max_influences:
        drop = np.argsort(-w, axis=1, kind="stable")[:, max_influences:]
        np.put_along_axis(w, drop, 0.0, axis=1)
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)
