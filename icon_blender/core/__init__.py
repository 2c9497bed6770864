"""Blender-free core of the add-on: numpy + stdlib only, unit-tested without bpy.

Modules: :mod:`.rig` (bone layout, pose conversion, floor offset, root bone), :mod:`.motion` (SMPL-X / AMASS /
SMPL motion files), :mod:`.bvh` (BVH read/write), :mod:`.camera` (OpenCV camera → Blender camera),
:mod:`.engine_proc` (engine subprocess protocol and jobs), :mod:`.doctor_check` (the engine check in the
background), :mod:`.env_setup` (engine environment location, stamp and commands), :mod:`.fbx_presets` and
:mod:`.export_presets` (export settings, weight limit), :mod:`.bone_maps` (Mixamo / Unreal / Unity bone names).
"""
