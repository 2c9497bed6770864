"""Add-on preferences: the engine's environment, model folders, device and default quality."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from ..core import env_setup
from . import state
from .props import QUALITY_ITEMS

_COMPUTE = {"cpu": ("cpu", "CPU", "PyTorch CPU build (smaller download; on macOS it also uses the GPU via MPS)"),
            "cuda": ("cuda", "CUDA", "PyTorch CUDA build for NVIDIA GPUs")}


def _compute_items(_self, _context):
    """CPU everywhere, CUDA where PyTorch has CUDA builds (not macOS)."""
    return [_COMPUTE[c] for c in env_setup.compute_choices()]


class ICONPreferences(bpy.types.AddonPreferences):
    bl_idname = state.PACKAGE  # replaced by the real module name in register()

    env_mode: EnumProperty(
        name="Engine environment",
        items=[("AUTO", "Automatic", "A Python environment created by 'Set up engine' in the add-on's user folder"),
               ("CUSTOM", "Existing Python", "A Python that already has the engine's requirements installed")],
        default="AUTO",
    )
    python_path: StringProperty(name="Python", subtype="FILE_PATH",
                                description="Python executable of an environment with the engine's requirements")
    base_python: StringProperty(name="Base Python", subtype="FILE_PATH",
                                description="Python 3.11 used to create the automatic environment (empty: Blender's "
                                "own Python when it is 3.11)")
    env_dir: StringProperty(name="Engine folder", subtype="DIR_PATH",
                            description="Where 'Set up engine' puts the engine's environment (empty: a per-user "
                            "folder shared by all Blender versions; keep it short on Windows)")
    compute: EnumProperty(name="Build", items=_compute_items)
    device: EnumProperty(name="Device", items=[("auto", "Auto", "CUDA when present, else CPU"),
                                               ("cpu", "CPU", ""), ("cuda", "CUDA", "")], default="auto")
    smplx_model: StringProperty(
        name="SMPL-X model", subtype="FILE_PATH",
        description="Optional: the official SMPL-X model (SMPLX_NEUTRAL.npz or its folder, from smpl-x.is.tue.mpg.de). "
        "Empty: the built-in open body in the SMPL-X layout")
    icon_data: StringProperty(
        name="ICON data", subtype="DIR_PATH",
        description="Optional: folder with ICON's official checkpoints (icon.is.tue.mpg.de). Empty: the "
        "checkpoint-free surface")
    quality: EnumProperty(name="Default quality", items=QUALITY_ITEMS, default="standard")
    results_dir: StringProperty(name="Output folder", subtype="DIR_PATH",
                                description="Where reconstructions and their logs are written (empty: the add-on's "
                                "user folder)")
    warm_engine: BoolProperty(name="Keep the engine loaded", default=True,
                              description="Run reconstructions in one engine process that stays loaded for the "
                              "Blender session (the second one starts at once); off: a new process per photo")

    def draw(self, context) -> None:
        layout = self.layout
        col = layout.column()
        col.prop(self, "env_mode")
        if self.env_mode == "AUTO":
            col.prop(self, "base_python")
            col.prop(self, "env_dir")
            col.prop(self, "compute", expand=True)
            row = col.row()
            runner = state.setup_runner
            if runner is not None and runner.state == "running":
                if hasattr(row, "progress"):
                    row.progress(factor=runner.fraction, type="BAR", text=runner.label)
                else:
                    row.label(text=f"{runner.label} ({runner.fraction:.0%})")
                row.operator("icon.setup_cancel", text="", icon="CANCEL")
                status = runner.status_line()
                if status:
                    col.label(text=status, icon="SORTTIME")
            else:
                row.operator("icon.setup_engine", icon="CONSOLE")
            if runner is not None and runner.state in ("failed", "cancelled"):
                col.label(text=runner.error, icon="ERROR")
            if runner is not None:
                col.label(text=f"Log: {runner.log_path}", icon="TEXT")
            venv = state.default_venv()
            from ..engine_link import engine_requirements

            status = env_setup.env_status(venv, engine_requirements())
            col.label(text=f"Environment: {venv} ({status})", icon="CHECKMARK" if status == "ready" else "FILE_FOLDER")
            if not bpy.app.online_access:
                col.label(text="Set-up downloads packages: enable Preferences ▸ System ▸ Allow Online Access",
                          icon="INFO")
        else:
            col.prop(self, "python_path")
        col.separator()
        col.prop(self, "smplx_model")
        col.label(text="Without it the engine uses an open body in the SMPL-X layout (same 55 joints).",
                  icon="INFO")
        col.prop(self, "icon_data")
        col.prop(self, "device")
        col.prop(self, "quality")
        col.prop(self, "results_dir")
        col.prop(self, "warm_engine")
        col.separator()
        col.operator("icon.check_engine", icon="CHECKMARK")
        box = None
        for label, text, ok in state.doctor:
            box = box or col.box()
            box.label(text=f"{label}: {text}", icon="CHECKMARK" if ok else "ERROR")


def register(package: str) -> None:
    ICONPreferences.bl_idname = package
    bpy.utils.register_class(ICONPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(ICONPreferences)
