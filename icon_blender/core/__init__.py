"""Blender-free core of the add-on: numpy + stdlib only, unit-tested without bpy.

Modules: :mod:`.rig` (bone layout, pose conversion), :mod:`.motion` (SMPL-X / AMASS motion files),
:mod:`.camera` (OpenCV camera → Blender camera), :mod:`.engine_proc` (engine subprocess protocol and jobs),
:mod:`.env_setup` (engine environment commands), :mod:`.fbx_presets` (export settings).
"""
