"""Writing armature actions fast (``keyframe_points.add`` + ``foreach_set``) on Blender 4.2 – 5.2.

Blender 4.4+ has slotted actions and 5.0 removed ``Action.fcurves``; F-curves are then created with
``Action.fcurve_ensure_for_datablock``. Older versions use ``action.fcurves.new``.
"""

from __future__ import annotations

import bpy
import numpy as np

LINEAR = 1  # enum index of 'LINEAR' in Keyframe.interpolation


def _fcurve(action: bpy.types.Action, obj: bpy.types.Object, path: str, index: int, group: str):
    if hasattr(action, "fcurve_ensure_for_datablock"):
        return action.fcurve_ensure_for_datablock(obj, path, index=index, group_name=group)
    fc = action.fcurves.find(path, index=index)
    return fc or action.fcurves.new(path, index=index, action_group=group)


def _fill(fc, frames: np.ndarray, values: np.ndarray) -> None:
    n = len(frames)
    points = fc.keyframe_points
    if len(points):
        points.clear()
    points.add(n)
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2], co[1::2] = frames, values
    points.foreach_set("co", co)
    points.foreach_set("interpolation", np.full(n, LINEAR, dtype=np.int32))
    fc.update()


def write_pose_action(
    arm_obj: bpy.types.Object,
    bone_names: list[str],
    quaternions: np.ndarray,
    root_locations: np.ndarray,
    root_bone: str,
    frame_start: int = 1,
    name: str = "ICON pose",
) -> bpy.types.Action:
    """A new action on ``arm_obj`` keying every bone's quaternion and the root's location per frame.

    Args:
        quaternions: (T, J, 4) pose-bone quaternions (w, x, y, z), in ``bone_names`` order.
        root_locations: (T, 3) pose-bone locations of ``root_bone`` (its rest frame, metres).
        frame_start: the scene frame of the first sample.
    """
    quaternions = np.asarray(quaternions, dtype=np.float64)
    frames = frame_start + np.arange(len(quaternions), dtype=np.float64)
    action = bpy.data.actions.new(name)
    if arm_obj.animation_data is None:
        arm_obj.animation_data_create()
    arm_obj.animation_data.action = action
    if hasattr(arm_obj.animation_data, "action_slot") and arm_obj.animation_data.action_slot is None:
        slots = getattr(action, "slots", None)
        if slots is not None and len(slots) == 0 and hasattr(slots, "new"):
            arm_obj.animation_data.action_slot = slots.new(id_type="OBJECT", name=arm_obj.name)
    for j, bone in enumerate(bone_names):
        pb = arm_obj.pose.bones[bone]
        pb.rotation_mode = "QUATERNION"
        path = f'pose.bones["{bone}"].rotation_quaternion'
        for k in range(4):
            _fill(_fcurve(action, arm_obj, path, k, bone), frames, quaternions[:, j, k])
        pb.rotation_quaternion = quaternions[0, j]
    path = f'pose.bones["{root_bone}"].location'
    for k in range(3):
        _fill(_fcurve(action, arm_obj, path, k, root_bone), frames, root_locations[:, k])
    arm_obj.pose.bones[root_bone].location = root_locations[0]
    return action
