"""**Motion from video** on the selected avatar: pick a video, the engine captures the motion in the
background (progress in the sidebar, Cancel keeps the frames done), and the result is applied as an action at
the video's frame rate through the existing Apply motion path. The work lives in
:mod:`icon_blender.core.video_motion`."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.video_motion import VIDEO_SUFFIXES, MotionCapture, scene_rate
from . import state

#: The capture in progress (one at a time).
capture: MotionCapture | None = None


def _armature(context):
    from .operators import icon_armature

    return icon_armature(context)


def finish(cap: MotionCapture, scene) -> str:
    """Apply a finished capture's motion on its armature at the video's frame rate; returns a status line."""
    from ..blender.motion import apply_motion
    from ..core.motion import MotionError, load_motion

    name = cap.job.photo
    if cap.job.error and cap.result is None:
        message, hint = cap.job.error.get("message", ""), cap.job.error.get("hint", "")
        state.say("ERROR", f"{name}: {message} {hint}".strip())
        return "error"
    path = cap.result
    if path is None:
        state.say("INFO", f"{name}: cancelled before any frame was captured")
        return "cancelled"
    arm = bpy.data.objects.get(cap.armature)
    if arm is None:
        state.say("ERROR", f"{name}: the avatar '{cap.armature}' is gone; the motion is in {path}")
        return "error"
    try:
        fps, base = scene_rate(load_motion(path).fps)
        scene.render.fps, scene.render.fps_base = fps, base
        action = apply_motion(arm, path, scene)
    except (MotionError, ValueError) as exc:
        state.say("ERROR", f"{name}: {exc}")
        return "error"
    for w in cap.job.warnings:
        state.say("WARNING", f"{name}: {w}")
    state.say("INFO", f"{name}: motion applied as '{action.name}' ({path.parent})")
    return "done"


def tick() -> float | None:
    """Timer step: poll the capture, apply it when it ends."""
    global capture
    cap = capture
    if cap is None:
        return None
    try:
        cap.poll()
        if cap.finished:
            capture = None
            finish(cap, bpy.context.scene)
    except Exception as exc:  # never let the timer die silently
        capture = None
        state.say("ERROR", f"internal error while reading the engine: {exc}")
    state.redraw()
    return None if capture is None else state.TIMER_INTERVAL


class ICON_OT_motion_from_video(bpy.types.Operator, ImportHelper):
    """Capture a person's motion from a video and apply it to the selected avatar (runs in the background)"""

    bl_idname = "icon.motion_from_video"
    bl_label = "Motion from Video"
    bl_options = {"REGISTER"}

    filter_glob: StringProperty(default=";".join(f"*{s}" for s in VIDEO_SUFFIXES), options={"HIDDEN"})
    person: IntProperty(name="Person", description="Which person (0 = the largest)", default=0, min=0, max=8)
    start: FloatProperty(name="Start (s)", description="Start time in seconds", default=0.0, min=0.0)
    end: FloatProperty(name="End (s)", description="End time in seconds (0 = the end)", default=0.0, min=0.0)

    @classmethod
    def poll(cls, context):
        return _armature(context) is not None and capture is None

    def execute(self, context):
        global capture
        arm = _armature(context)
        try:
            python = state.engine_python()
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        from ..engine_link import engine_source_dir

        p = state.prefs()
        try:
            capture = MotionCapture.start(
                python, self.filepath, state.user_dir("results"), arm.name, self.person, self.start,
                self.end or None, arm.get("icon_bundle"), engine_source_dir(),
                bpy.path.abspath(p.smplx_model) if p and getattr(p, "smplx_model", "") else None)
        except (FileNotFoundError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        state.ensure_timer(tick)
        self.report({"INFO"}, f"Capturing the motion in {Path(self.filepath).name}")
        return {"FINISHED"}


class ICON_OT_motion_cancel(bpy.types.Operator):
    """Stop the motion capture; the frames done so far are still applied"""

    bl_idname = "icon.motion_cancel"
    bl_label = "Cancel Motion Capture"

    def execute(self, context):
        if capture is not None:
            capture.cancel()
        return {"FINISHED"}


class ICON_PT_motion_video(bpy.types.Panel):
    bl_label = "Motion from Video"
    bl_idname = "ICON_PT_motion_video"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ICON"
    bl_parent_id = "ICON_PT_avatar"

    @classmethod
    def poll(cls, context):
        return _armature(context) is not None or capture is not None

    def draw(self, context) -> None:
        layout = self.layout
        cap = capture
        if cap is None:
            layout.operator("icon.motion_from_video", icon="FILE_MOVIE")
            return
        text = f"{cap.job.photo}: {cap.job.message or 'starting'}"
        row = layout.row(align=True)
        if hasattr(row, "progress"):
            row.progress(factor=cap.job.overall, type="BAR", text=text)
        else:
            row.label(text=f"{text} ({cap.job.overall:.0%})")
        row.operator("icon.motion_cancel", text="", icon="CANCEL")


CLASSES = (ICON_OT_motion_from_video, ICON_OT_motion_cancel, ICON_PT_motion_video)


def kill_capture() -> None:
    """Stop a running capture (Blender quits or the add-on is disabled)."""
    global capture
    if capture is not None:
        capture.job.cancel(2.0)
        capture = None


def register() -> None:
    import atexit

    atexit.register(kill_capture)  # Blender quitting does not unregister add-ons
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    import atexit

    atexit.unregister(kill_capture)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    kill_capture()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
