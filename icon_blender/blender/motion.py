"""Motions on an imported ICON armature: apply SMPL-X / AMASS / SMPL / BVH files as actions (optionally stacked as
NLA strips), and export the avatar's animation as BVH."""

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
    if motion.rest_relative:  # BVH: displacement from the rig's own floor-standing rest pelvis
        floor = np.zeros(3)
    joint0_smplx = rig.Y_UP_TO_Z_UP.T @ (head0 - floor)  # the body model's rest pelvis (SMPL-X frame, off the floor)
    pelvis = rig.pelvis_positions(joint0_smplx, motion.trans, z_up_data=motion.z_up)
    return quats, rig.root_location(pelvis, head0, rots[0])


def apply_motion(
    arm_obj: bpy.types.Object,
    path: str | Path,
    scene: bpy.types.Scene | None = None,
    up_axis: str = "auto",
    frame_start: int = 1,
    fps: float | None = None,
    action_name: str | None = None,
    nla: bool = False,
) -> bpy.types.Action:
    """Load ``path`` (.npz / .npy / .bvh), resample it to the scene's fps and key it on ``arm_obj`` from
    ``frame_start``.

    Args:
        fps: the file's frame rate when it has none or a wrong one (frames per second; None: the file's).
        action_name: the action's name (default "<file> motion"); an existing action of that name is replaced
            (its users, NLA strips included, get the new one), so re-applying does not pile up copies.
        nla: push the action as a strip on a new NLA track starting at ``frame_start`` (motions stack; the
            armature's active action is cleared) instead of making it the active action.
    Raises :class:`~icon_blender.core.motion.MotionError` for a bad file (the armature is left unchanged).
    Sets the scene's frame range to the motion (NLA: widens it to include the strip).
    """
    scene = scene or bpy.context.scene
    motion = resample(load_motion(path, up_axis=up_axis, fps=fps), scene_fps(scene))
    missing = [n for n in rig_joint_names() if n not in arm_obj.data.bones]
    if missing:
        raise ValueError(f"{arm_obj.name} is not an ICON/SMPL-X armature (no bone {missing[0]!r})")
    names = list(rig_joint_names())
    quats, locs = motion_keys(arm_obj, motion, names)
    name = action_name or f"{Path(path).stem} motion"
    action = animation.write_pose_action(arm_obj, names, quats, locs, ROOT_BONE, frame_start, name)
    old = bpy.data.actions.get(name) if action.name != name else None
    if old is not None and old != action:
        old.user_remap(action)
        bpy.data.actions.remove(old)
        action.name = name
    action.use_fake_user = True
    frame_end = frame_start + motion.num_frames - 1
    if nla:
        push_to_nla(arm_obj, action, frame_start)
        arm_obj.animation_data.action = None  # the strips play; an active action would override them
        scene.frame_start = min(scene.frame_start, frame_start)
        scene.frame_end = max(scene.frame_end, frame_end)
    else:
        scene.frame_start, scene.frame_end = frame_start, frame_end
    return action


def push_to_nla(arm_obj: bpy.types.Object, action: bpy.types.Action, frame_start: int) -> bpy.types.NlaStrip:
    """A new NLA track on ``arm_obj`` holding ``action`` as one strip from ``frame_start`` (tracks stack upwards)."""
    if arm_obj.animation_data is None:
        arm_obj.animation_data_create()
    track = arm_obj.animation_data.nla_tracks.new()
    track.name = action.name
    strip = track.strips.new(action.name, int(frame_start), action)
    slots = getattr(action, "slots", None)
    if hasattr(strip, "action_slot") and strip.action_slot is None and slots is not None and len(slots):
        strip.action_slot = slots[0]
    return strip


def export_bvh(arm_obj: bpy.types.Object, path: str | Path, scene: bpy.types.Scene | None = None,
               frame_start: int | None = None, frame_end: int | None = None, bone_names: str = "smplx") -> Path:
    """Write the avatar's animation (the scene's frames ``frame_start``–``frame_end``, default the scene range)
    as a Y-up BVH in metres with the pelvis as ROOT (``core.bvh``); the rest in the file is the rig's rest pose
    (standing on the floor). Joint names per ``bone_names`` (smplx | mixamo | unreal | unity)."""
    from ..core import bone_maps, bvh
    from ..engine_link import PARENTS
    from .export import armature_modifiers_off, avatar_meshes

    scene = scene or bpy.context.scene
    start = scene.frame_start if frame_start is None else int(frame_start)
    end = scene.frame_end if frame_end is None else int(frame_end)
    if end < start:
        raise ValueError(f"frame range {start}–{end} is empty")
    path = Path(path)
    if path.suffix.lower() != ".bvh":
        raise ValueError(f"{path.name}: the file name must end in .bvh")
    names = list(rig_joint_names())
    rots = rest_rotations(arm_obj, names)
    c = rig.Y_UP_TO_Z_UP
    heads = np.array([arm_obj.data.bones[n].head_local for n in names]) @ c  # Y-up (Cᵀ h per row)
    current = scene.frame_current
    local, root = [], []
    with armature_modifiers_off(avatar_meshes(arm_obj)):  # only the bones are sampled: no skinning per frame
        try:
            for f in range(start, end + 1):
                scene.frame_set(f)
                pose = arm_obj.pose.bones
                m = np.array([np.array(pose[n].matrix.to_3x3()) for n in names])
                g = c.T @ (m @ np.swapaxes(rots, -1, -2)) @ c  # global rotation from the rest, Y-up frame
                parent_g = np.stack([g[p] if p >= 0 else np.eye(3) for p in PARENTS])
                local.append(np.swapaxes(parent_g, -1, -2) @ g)
                root.append(c.T @ np.array(pose[names[0]].head))
        finally:
            scene.frame_set(current)
    local = np.array(local)
    angles = np.asarray(arm_obj.get("icon_rest_pose_angles", [0.0] * 165), dtype=np.float64).reshape(-1, 3)
    if np.any(angles):  # an A-pose rig: write the T pose as the file's rest, rotations relative to it
        heads, local = t_rest(heads, local, angles, np.asarray(PARENTS))
    mapping = bone_maps.bone_map(bone_names, names)
    return bvh.write_bvh(path, [mapping[n] for n in names], np.asarray(PARENTS), heads, local, np.array(root),
                         scene_fps(scene))


def t_rest(rest_joints: np.ndarray, local: np.ndarray, rest_angles: np.ndarray,
           parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rig posed from a non-T rest (``rest_angles``, SMPL-X axis-angle from the T pose) → the T-pose rest joints
    (J, 3) and the world-aligned local rotations (T, J, 3, 3) relative to the T pose, both in the SMPL-X frame.

    With ``A_j`` the rest's global rotations: ``J^T_j = J^T_p + A_pᵀ (J_j − J_p)`` and ``L^T_j = A_pᵀ L_j A_j``, so a
    BVH always has SMPL-X's T pose as its rest, whatever the avatar's rest pose."""
    from ..engine_link import forward_kinematics

    glob, _ = forward_kinematics(np.zeros((len(parents), 3)), parents, rest_angles)
    joints = np.array(rest_joints, dtype=np.float64, copy=True)
    for j, p in enumerate(parents):
        if p >= 0:
            joints[j] = joints[p] + glob[p].T @ (rest_joints[j] - rest_joints[p])
    parent_glob = np.stack([glob[p] if p >= 0 else np.eye(3) for p in parents])
    return joints, np.swapaxes(parent_glob, -1, -2) @ local @ glob


def rig_joint_names() -> tuple[str, ...]:
    from ..engine_link import JOINT_NAMES

    return JOINT_NAMES
