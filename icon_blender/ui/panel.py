"""The "ICON" tab in the 3D View's sidebar."""

from __future__ import annotations

import bpy

from . import state
from .operators import icon_armature


class _IconTab:
    """The ICON tab of the 3D View's sidebar."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ICON"


class ICON_PT_reconstruct(_IconTab, bpy.types.Panel):
    bl_label = "Reconstruct"
    bl_idname = "ICON_PT_reconstruct"

    def draw(self, context) -> None:
        layout = self.layout
        settings = context.scene.icon_settings
        layout.prop(settings, "photo", text="")
        icon = state.photo_icon(bpy.path.abspath(settings.photo)) if settings.photo else 0
        if icon:
            layout.template_icon(icon_value=icon, scale=8.0)
        col = layout.column(align=True)
        col.prop(settings, "quality")
        col.prop(settings, "texture")
        col.prop(settings, "rest_pose")
        col.prop(settings, "person")
        col.prop(settings, "height")
        rec = state.reconstructions
        busy = rec is not None and rec.active
        row = layout.row(align=True)
        row.operator("icon.reconstruct", text="Add to Queue" if busy else "Reconstruct", icon="OUTLINER_OB_ARMATURE")
        row.operator("icon.reconstruct_photos", text="", icon="DOCUMENTS")
        box = layout.column(align=True)
        box.prop(settings, "several_photos", text="Several")
        if settings.several_photos == "ONE":
            box.prop(settings, "frames")
        if busy:
            job = rec.current
            if job is not None:
                text = f"{job.photo}: {job.text}"
                row = layout.row(align=True)
                if hasattr(row, "progress"):
                    row.progress(factor=job.overall, type="BAR", text=text)
                else:
                    row.label(text=f"{text} ({job.overall:.0%})")
                row.operator("icon.cancel", text="", icon="CANCEL")
            for queued in rec.pending:
                layout.label(text=f"Queued: {queued.photo}", icon="TIME")
        for level, text in state.messages[-3:]:
            layout.label(text=text, icon={"ERROR": "ERROR", "WARNING": "INFO"}.get(level, "CHECKMARK"))
        if state.messages:
            layout.operator("icon.open_log", icon="TEXT")


class ICON_PT_history(_IconTab, bpy.types.Panel):
    bl_label = "Results"
    bl_idname = "ICON_PT_history"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context) -> None:
        import time

        from ..jobs import list_results

        layout = self.layout
        results = list_results(state.results_dir(), limit=12)
        if not results:
            layout.label(text="No results yet", icon="INFO")
        for item in results:
            row = layout.row(align=True)
            row.label(text=f"{item.photo}  {time.strftime('%m-%d %H:%M', time.localtime(item.created))}")
            row.operator("icon.history_import", text="", icon="IMPORT").path = str(item.bundle)
            row.operator("icon.history_delete", text="", icon="TRASH").path = str(item.bundle)
        layout.operator("icon.open_log", icon="TEXT")


class ICON_PT_avatar(_IconTab, bpy.types.Panel):
    bl_label = "Avatar"
    bl_idname = "ICON_PT_avatar"

    def draw(self, context) -> None:
        layout = self.layout
        layout.operator("icon.import_bundle", icon="IMPORT")
        arm = icon_armature(context)
        if arm is None:
            layout.label(text="Select an ICON avatar to pose, animate or export it.", icon="INFO")
            return
        rest = arm.data.pose_position == "REST"
        layout.operator("icon.rest_pose", text="Show Pose" if rest else "Rest Pose", icon="ARMATURE_DATA",
                        depress=rest)
        _draw_photo_poses(layout, arm)
        settings = context.scene.icon_settings
        row = layout.row(align=True)
        row.operator("icon.apply_motion", icon="ACTION")
        row.operator("icon.export_bvh", text="BVH", icon="EXPORT")
        col = layout.column(align=True)
        col.prop(settings, "bone_names")
        row = col.row(align=True)
        row.prop(settings, "fbx_preset", text="")
        row.operator("icon.export_fbx", icon="EXPORT")
        row = col.row(align=True)
        row.prop(settings, "gltf_preset", text="")
        row.operator("icon.export_gltf", icon="EXPORT")
        col.operator("icon.export_usd", icon="EXPORT")


def _draw_photo_poses(layout, arm) -> None:
    """An avatar made from several photos: one button per photo (its pose, through its camera)."""
    from ..blender.importer import photo_pose_names

    poses = photo_pose_names(arm)
    if not poses:
        return
    active = arm.animation_data.action.name if arm.animation_data and arm.animation_data.action else ""
    col = layout.column(align=True)
    col.label(text=f"Photo poses ({len(poses)})", icon="OUTLINER_OB_CAMERA")
    for k, (label, action_name, _) in enumerate(poses):
        col.operator("icon.photo_pose", text=f"{k + 1}: {label}", depress=action_name == active).index = k


CLASSES = (ICON_PT_reconstruct, ICON_PT_avatar, ICON_PT_history)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
