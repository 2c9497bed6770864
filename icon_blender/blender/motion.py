"""Apply an SMPL-X / AMASS motion file to an imported ICON armature as a new action."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..core import rig
from ..core.motion import Motion, load_motion, resample
from . import animation
from .importer import ROOT_BONE, rest_rotations


def scene_fps(scene: bpy.types.Scene) -> float:
    """The scene's frame rate in frames per second."""
    return scene.render.fps / scene.render.fps_base


def motion_keys(arm_obj: bpy.types.Object, motion: Motion, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pose-bone quaternions (T, J, 4), sign-continuous, and pelvis locations (T, 3) for ``motion``."""
    rots = rest_rotations(arm_obj, names)
    angles = np.asarray(arm_obj.get("icon_rest_pose_angles", [0.0] * 165), dtype=np.float64).reshape(55, 3)
    from ..engine_link import PARENTS

    poses = rig.pose_relative_to_rest(motion.poses, angles, np.asarray(PARENTS))
    quats = rig.make_continuous(rig.pose_bone_quaternions(poses, rots, z_up_data=motion.z_up))
    head0 = np.array(arm_obj.data.bones[ROOT_BONE].head_local)
    floor = np.asarray(arm_obj.get("icon_floor_offset", (0.0, 0.0, 0.0)), dtype=np.float64)
    joint0_smplx = rig.Y_UP_TO_Z_UP.T @ (head0 - floor)  # the body model's rest pelvis (SMPL-X frame, off the floor)
    pelvis = rig.pelvis_positions(joint0_smplx, motion.trans, z_up_data=motion.z_up)
    return quats, rig.root_location(pelvis, head0, rots[0])


def apply_motion(
    arm_obj: bpy.types.Object,
    path: str | Path,
    scene: bpy.types.Scene | None = None,
    up_axis: str = "auto",
    frame_start: int = 1,
) -> bpy.types.Action:
    """Load ``path``, resample it to the scene's fps and key it on ``arm_obj`` from ``frame_start``.

    Raises :class:`~icon_blender.core.motion.MotionError` for a bad file (the armature is left unchanged).
    Sets the scene's frame range to the motion.
    """
    scene = scene or bpy.context.scene
    motion = resample(load_motion(path, up_axis=up_axis), scene_fps(scene))
    missing = [n for n in rig_joint_names() if n not in arm_obj.data.bones]
    if missing:
        raise ValueError(f"{arm_obj.name} is not an ICON/SMPL-X armature (no bone {missing[0]!r})")
    names = list(rig_joint_names())
    quats, locs = motion_keys(arm_obj, motion, names)
    action = animation.write_pose_action(arm_obj, names, quats, locs, ROOT_BONE, frame_start,
                                         f"{Path(path).stem} motion")
    scene.frame_start = frame_start
    scene.frame_end = frame_start + motion.num_frames - 1
    return action


def rig_joint_names() -> tuple[str, ...]:
    from ..engine_link import JOINT_NAMES

    return JOINT_NAMES
