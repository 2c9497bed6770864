"""The "ICON" tab in the 3D View's sidebar."""

from __future__ import annotations

import bpy

from . import state
from .operators import icon_armature


class ICON_PT_reconstruct(bpy.types.Panel):
    bl_label = "Reconstruct"
    bl_idname = "ICON_PT_reconstruct"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ICON"

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
        rec = state.reconstructions
        busy = rec is not None and rec.active
        layout.operator("icon.reconstruct", text="Add to Queue" if busy else "Reconstruct", icon="OUTLINER_OB_ARMATURE")
        if busy:
            job = rec.current
            if job is not None:
                text = f"{job.photo}: {job.message or job.stage or 'starting'}"
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


class ICON_PT_avatar(bpy.types.Panel):
    bl_label = "Avatar"
    bl_idname = "ICON_PT_avatar"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ICON"

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


CLASSES = (ICON_PT_reconstruct, ICON_PT_avatar)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
