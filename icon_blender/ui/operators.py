"""Operators of the ICON sidebar and preferences. The work lives in plain functions (core, jobs, blender)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core import engine_proc as ep
from ..core import env_setup
from . import state


def icon_armature(context) -> bpy.types.Object | None:
    """The ICON armature of the active object (the armature itself or the mesh it deforms)."""
    obj = context.active_object
    if obj is not None and obj.type == "MESH" and obj.parent is not None:
        obj = obj.parent
    if obj is not None and obj.type == "ARMATURE" and "icon_bundle" in obj:
        return obj
    return None


def submit_photos(context, photos: list[str]) -> tuple[int, list[str]]:
    """Queue one reconstruction per photo with the sidebar's options; returns (queued ahead, notes).

    Raises ValueError with a fix when the engine is not usable or a photo is missing (nothing is queued then).
    """
    from ..engine_link import engine_source_dir

    missing = [p for p in photos if not p or not Path(p).is_file()]
    if not photos or missing:
        raise ValueError(f"Choose a photo first (the file does not exist: {missing[0] if missing else ''}).")
    videos = [Path(p).name for p in photos if Path(p).suffix.lower() in ep.VIDEO_SUFFIXES]
    if videos:
        raise ValueError(f"{videos[0]} is a video: a video makes one avatar of its person. Choose 'One person' "
                         "under Several photos (or use Motion from video for its motion).")
    python = state.engine_python()
    options = _options(context)
    notes: list[str] = []
    extra = _height_args(context, notes)
    rec = state.get_reconstructions()
    ahead = sum(not job.finished for job in rec.queue.jobs)
    for photo in photos:
        job = rec.submit(python, photo, options, engine_source_dir())
        job.command += extra
    state.ensure_timer(state.tick)
    return ahead, notes


def _options(context) -> ep.ReconstructOptions:
    """The sidebar's and preferences' options of a reconstruction."""
    settings = context.scene.icon_settings
    p = state.prefs()
    quality = settings.quality if settings.quality != "default" else (p.quality if p else "standard")
    return ep.ReconstructOptions(
        quality=quality, texture=settings.texture, rest_pose=settings.rest_pose, person=settings.person,
        device=p.device if p else "auto",
        smplx_model=bpy.path.abspath(p.smplx_model) if p and p.smplx_model else "",
        icon_data=bpy.path.abspath(p.icon_data) if p and p.icon_data else "",
    )


def _height_args(context, notes: list[str]) -> list[str]:
    """``--height`` for an engine that knows it (an older one would refuse the option: the user is told)."""
    from ..engine_link import engine_source_dir
    from ..jobs import engine_supports

    height = context.scene.icon_settings.height
    if height <= 0:
        return []
    if engine_supports(engine_source_dir(), "--height"):
        return ["--height", f"{height:.3f}"]
    notes.append("this engine has no --height option yet: the avatar gets an average adult's height")
    return []


def submit_subject(context, inputs: list[str]) -> tuple[int, list[str]]:
    """Queue ONE avatar from several photos, folders or videos of one person; returns (queued ahead, notes).

    Raises ValueError with a fix when the engine is not usable or an input is missing (nothing is queued)."""
    from ..engine_link import engine_source_dir

    python = state.engine_python()
    notes: list[str] = []
    extra = _height_args(context, notes)
    rec = state.get_reconstructions()
    ahead = sum(not job.finished for job in rec.queue.jobs)
    try:
        job = rec.submit_subject(python, inputs, _options(context), engine_source_dir(),
                                 frames=context.scene.icon_settings.frames)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from exc
    job.command += extra
    state.ensure_timer(state.tick)
    return ahead, notes


class ICON_OT_reconstruct(bpy.types.Operator):
    """Reconstruct the person in the photo as a rigged, textured avatar (runs the engine in the background)"""

    bl_idname = "icon.reconstruct"
    bl_label = "Reconstruct"
    bl_options = {"REGISTER"}

    def execute(self, context):
        photo = bpy.path.abspath(context.scene.icon_settings.photo)
        try:
            ahead, notes = submit_photos(context, [photo])
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for note in notes:
            self.report({"WARNING"}, note)
        self.report({"INFO"}, f"Reconstructing {Path(photo).name}" + (f" after {ahead} queued" if ahead else ""))
        return {"FINISHED"}


PHOTO_GLOB = "*.jpg;*.jpeg;*.png;*.heic;*.heif;*.avif;*.webp;*.bmp;*.tif;*.tiff"  # the engine's IMAGE_SUFFIXES
VIDEO_GLOB = ";".join(f"*{s}" for s in ep.VIDEO_SUFFIXES)


class ICON_OT_reconstruct_photos(bpy.types.Operator, ImportHelper):
    """Pick several photos (Shift/Ctrl-click), a folder (select none) or a video: ONE avatar of the person, or
    one avatar per photo (the Several photos setting)"""

    bl_idname = "icon.reconstruct_photos"
    bl_label = "Reconstruct Several Photos"
    bl_options = {"REGISTER"}

    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    filter_glob: StringProperty(default=f"{PHOTO_GLOB};{VIDEO_GLOB}", options={"HIDDEN"})
    several_photos: EnumProperty(name="Several photos", items=[
        ("SCENE", "As in the panel", "The sidebar's Several photos setting"),
        ("ONE", "One person", "ONE avatar from every photo and video frame"),
        ("SEPARATE", "Separate avatars", "One avatar per photo")], default="SCENE", options={"SKIP_SAVE"})

    def execute(self, context):
        picked = [str(Path(self.directory) / f.name) for f in self.files if f.name]
        if not picked and self.filepath and Path(self.filepath).is_file():
            picked = [self.filepath]
        if not picked and self.directory:  # nothing selected: the folder itself
            picked = [self.directory]
        mode = self.several_photos if self.several_photos != "SCENE" else context.scene.icon_settings.several_photos
        try:
            if mode == "ONE":
                ahead, notes = submit_subject(context, picked)
            else:
                if len(picked) == 1 and Path(picked[0]).is_dir():
                    picked = folder_photos(picked[0])
                ahead, notes = submit_photos(context, picked)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for note in notes:
            self.report({"WARNING"}, note)
        what = f"one avatar from {len(picked)} input(s)" if mode == "ONE" else f"{len(picked)} photo(s)"
        self.report({"INFO"}, f"Queued {what}" + (f" after {ahead}" if ahead else ""))
        return {"FINISHED"}


def folder_photos(folder: str | Path) -> list[str]:
    """The photos of a folder, by name (what the engine would take from it)."""
    suffixes = {g[1:] for g in PHOTO_GLOB.split(";")}
    return [str(p) for p in sorted(Path(folder).iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes]


class ICON_OT_open_log(bpy.types.Operator):
    """Open the latest engine log (or the set-up log) in the system's text viewer"""

    bl_idname = "icon.open_log"
    bl_label = "Open Log"

    def execute(self, context):
        log = state.latest_log()
        if log is None:
            self.report({"WARNING"}, "No log yet: logs are written when the engine runs.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Log: {log}")
        if not bpy.app.background:
            bpy.ops.wm.path_open(filepath=str(log))
        return {"FINISHED"}


class ICON_OT_history_import(bpy.types.Operator):
    """Import this earlier result again"""

    bl_idname = "icon.history_import"
    bl_label = "Import"
    bl_options = {"REGISTER", "UNDO"}

    path: StringProperty(subtype="DIR_PATH", options={"HIDDEN"})

    def execute(self, context):
        from ..blender.importer import import_bundle
        from ..engine_link import BundleError

        try:
            res = import_bundle(self.path, context.scene)
        except BundleError as exc:
            self.report({"ERROR"}, f"{exc}. The result is damaged: delete it and reconstruct again.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported '{res.collection.name}'")
        return {"FINISHED"}


class ICON_OT_history_delete(bpy.types.Operator):
    """Delete this result's files from the output folder (avatars already in the scene stay)"""

    bl_idname = "icon.history_delete"
    bl_label = "Delete Result"

    path: StringProperty(subtype="DIR_PATH", options={"HIDDEN"})

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        from ..jobs import delete_result

        try:
            run = delete_result(self.path, state.results_dir())
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Deleted {run}")
        state.redraw()
        return {"FINISHED"}


class ICON_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction and drop the queued ones (the scene is left as it is)"""

    bl_idname = "icon.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        rec = state.reconstructions
        if rec is None or not rec.active:
            return {"CANCELLED"}
        rec.cancel(all_jobs=True)
        state.import_finished(rec.tick())
        rec.clear_finished()
        state.redraw()
        return {"FINISHED"}


class ICON_OT_import_bundle(bpy.types.Operator, ImportHelper):
    """Import a result bundle folder (armature, skinned mesh, camera)"""

    bl_idname = "icon.import_bundle"
    bl_label = "Import Result"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(subtype="DIR_PATH")
    filter_glob: StringProperty(default="bundle.json", options={"HIDDEN"})

    def execute(self, context):
        from ..blender.importer import import_bundle
        from ..engine_link import BundleError

        try:
            res = import_bundle(self.directory, context.scene)
        except BundleError as exc:
            self.report({"ERROR"}, f"{exc}. Re-run the reconstruction.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported '{res.collection.name}'")
        return {"FINISHED"}


class ICON_OT_rest_pose(bpy.types.Operator):
    """Toggle between the rest pose and the photo's pose / the animation"""

    bl_idname = "icon.rest_pose"
    bl_label = "Rest Pose"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return icon_armature(context) is not None

    def execute(self, context):
        from ..blender.importer import set_rest_pose

        arm = icon_armature(context)
        set_rest_pose(arm, arm.data.pose_position != "REST")
        return {"FINISHED"}


class ICON_OT_photo_pose(bpy.types.Operator):
    """Show the avatar in this photo's pose and look through its camera (an avatar made from several photos)"""

    bl_idname = "icon.photo_pose"
    bl_label = "Photo Pose"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Photo", default=0, min=0, description="Which photo (0 = the first)")

    @classmethod
    def poll(cls, context):
        return icon_armature(context) is not None

    def execute(self, context):
        from ..blender.importer import show_photo_pose

        try:
            action = show_photo_pose(icon_armature(context), self.index, context.scene)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Pose '{action.name}'")
        return {"FINISHED"}


BONE_NAME_ITEMS = [("smplx", "SMPL-X", "Keep the SMPL-X joint names"),
                   ("mixamo", "Mixamo", "mixamorig:Hips, mixamorig:LeftArm, ..."),
                   ("unreal", "Unreal Mannequin", "pelvis, spine_01, upperarm_l, ..."),
                   ("unity", "Unity Humanoid", "Hips, LeftUpperArm, LeftThumbProximal, ...")]


class ICON_OT_apply_motion(bpy.types.Operator, ImportHelper):
    """Apply a motion (SMPL-X / AMASS / SMPL .npz or .npy, or .bvh) to the avatar, resampled to the scene's frame
    rate"""

    bl_idname = "icon.apply_motion"
    bl_label = "Apply Motion"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.npz;*.npy;*.bvh", options={"HIDDEN"})
    up_axis: EnumProperty(name="Up axis", items=[
        ("auto", "Auto", "Z-up for AMASS files (mocap frame rate key), else Y-up"),
        ("Y", "Y up", "SMPL-X frame (most fits and estimators), most BVH files"),
        ("Z", "Z up", "AMASS world, BVH files written by Blender")], default="auto")
    frame_start: IntProperty(name="Start frame", default=1, description="Scene frame of the motion's first frame")
    fps: FloatProperty(name="File frame rate", default=0.0, min=0.0, max=1000.0,
                       description="Frames per second of the file (0 = the rate the file states)")
    action_name: StringProperty(name="Action", description="Name of the action to write (empty: '<file> motion'); "
                                "an existing action of that name is replaced")
    nla: BoolProperty(name="Stack as NLA strip", default=False,
                      description="Add the motion as a strip on a new NLA track instead of the active action")

    @classmethod
    def poll(cls, context):
        return icon_armature(context) is not None

    def execute(self, context):
        from ..blender.motion import apply_motion
        from ..core.motion import MotionError

        arm = icon_armature(context)
        try:
            action = apply_motion(arm, self.filepath, context.scene, up_axis=self.up_axis,
                                  frame_start=self.frame_start, fps=self.fps or None,
                                  action_name=self.action_name or None, nla=self.nla)
        except (MotionError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Applied '{action.name}' (frames {round(action.frame_range[0])}–"
                              f"{round(action.frame_range[1])})")
        return {"FINISHED"}


class ICON_OT_export_bvh(bpy.types.Operator, ExportHelper):
    """Export the avatar's animation (the scene's frame range) as BVH: Y up, metres, pelvis as root"""

    bl_idname = "icon.export_bvh"
    bl_label = "Export BVH"

    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})
    bone_names: EnumProperty(name="Bone names", items=BONE_NAME_ITEMS, default="smplx")

    @classmethod
    def poll(cls, context):
        return icon_armature(context) is not None

    def execute(self, context):
        from ..blender.motion import export_bvh

        try:
            path = export_bvh(icon_armature(context), self.filepath, context.scene, bone_names=self.bone_names)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, f"BVH export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}


class _AvatarExport(ExportHelper):
    """Shared part of the export operators: the selected avatar, a preset, bone names, one exporter call."""

    bone_names: EnumProperty(name="Bone names", items=BONE_NAME_ITEMS, default="smplx")
    format = ""  # key of blender.export.EXPORTERS
    preset_setting = ""  # the scene setting the preset starts from

    @classmethod
    def poll(cls, context):
        return icon_armature(context) is not None

    def invoke(self, context, event):
        settings = context.scene.icon_settings
        if self.preset_setting:
            self.preset = getattr(settings, self.preset_setting)
        self.bone_names = settings.bone_names
        return ExportHelper.invoke(self, context, event)

    def execute(self, context):
        from ..blender.export import EXPORTERS

        try:
            path = EXPORTERS[self.format](icon_armature(context), self.filepath, getattr(self, "preset", None),
                                          self.bone_names)
        except (RuntimeError, ValueError, OSError) as exc:
            self.report({"ERROR"}, f"{self.bl_label} failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}


class ICON_OT_export_fbx(bpy.types.Operator, _AvatarExport):
    """Export the avatar (armature, mesh, active animation) to FBX for Unity, Unreal or other tools"""

    bl_idname = "icon.export_fbx"
    bl_label = "Export FBX"

    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})
    preset: EnumProperty(name="Preset", items=[("unity", "Unity", ""), ("unreal", "Unreal", ""),
                                               ("generic", "Generic", "")], default="unity")
    format, preset_setting = "fbx", "fbx_preset"


class ICON_OT_export_gltf(bpy.types.Operator, _AvatarExport):
    """Export the avatar to glTF 2.0 (.glb: one file with textures; .gltf: JSON, .bin and images) for Unreal,
    Godot or the web"""

    bl_idname = "icon.export_gltf"
    bl_label = "Export glTF"

    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb;*.gltf", options={"HIDDEN"})
    preset: EnumProperty(name="Preset", items=[("godot", "Godot", ""), ("unreal", "Unreal", ""),
                                               ("web", "Web", "JPEG textures")], default="godot")
    format, preset_setting = "gltf", "gltf_preset"


class ICON_OT_export_usd(bpy.types.Operator, _AvatarExport):
    """Export the avatar to USD (.usdc/.usda/.usd with textures beside it, or .usdz with them inside)"""

    bl_idname = "icon.export_usd"
    bl_label = "Export USD"

    filename_ext = ".usdc"
    filter_glob: StringProperty(default="*.usd;*.usdc;*.usda;*.usdz", options={"HIDDEN"})
    format = "usd"


class ICON_OT_setup_engine(bpy.types.Operator):
    """Create the engine's Python environment and install its pinned requirements (downloads packages)"""

    bl_idname = "icon.setup_engine"
    bl_label = "Set up engine"

    def execute(self, context):
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Setting up the engine downloads PyTorch and other packages: allow online access "
                                   "(Preferences ▸ System ▸ Network ▸ Allow Online Access) and try again.")
            return {"CANCELLED"}
        p = state.prefs()
        base = (bpy.path.abspath(p.base_python) if p and p.base_python else "") or state.default_base_python()
        if not base:
            self.report({"ERROR"}, "This Blender's Python cannot host the engine: set 'Base Python' to a Python 3.11 "
                                   "executable in the add-on preferences.")
            return {"CANCELLED"}
        try:
            env_setup.check_base_python(base)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        from ..engine_link import engine_requirements

        venv, compute = state.default_venv(), p.compute if p else "cpu"
        try:
            env_setup.check_env_dir(venv)
            steps = env_setup.setup_steps(base, venv, engine_requirements(), compute)
            venv.parent.mkdir(parents=True, exist_ok=True)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        state.setup_runner = env_setup.SetupRunner(steps, state.user_dir("logs") / "setup.log",
                                                   env=env_setup.setup_env(),
                                                   stamp=(venv, engine_requirements(), compute))
        state.setup_runner.start()
        state.ensure_timer(state.setup_tick)
        self.report({"INFO"}, f"Setting up the engine (log: {state.setup_runner.log_path})")
        return {"FINISHED"}


class ICON_OT_setup_cancel(bpy.types.Operator):
    """Stop the engine set-up"""

    bl_idname = "icon.setup_cancel"
    bl_label = "Cancel set-up"

    def execute(self, context):
        if state.setup_runner is not None and state.setup_runner.state == "running":
            state.setup_runner.cancel()
        return {"FINISHED"}


class ICON_OT_check_engine(bpy.types.Operator):
    """Run the engine's doctor: what is installed and found, what is missing and where to get it"""

    bl_idname = "icon.check_engine"
    bl_label = "Check"

    def execute(self, context):
        from ..core.doctor_check import DoctorRun

        try:
            python = state.engine_python()
        except ValueError as exc:
            state.doctor[:] = [("Engine", str(exc), False)]
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if state.doctor_run is not None and state.doctor_run.running:
            return {"CANCELLED"}
        state.doctor[:] = [("Engine", "checking… (runs in the background)", True)]
        state.doctor_run = DoctorRun(python, state.engine_env())
        state.ensure_timer(state.doctor_tick)
        self.report({"INFO"}, "Checking the engine in the background")
        return {"FINISHED"}


CLASSES = (ICON_OT_reconstruct, ICON_OT_reconstruct_photos, ICON_OT_open_log, ICON_OT_history_import,
           ICON_OT_history_delete, ICON_OT_cancel, ICON_OT_import_bundle, ICON_OT_rest_pose, ICON_OT_photo_pose,
           ICON_OT_apply_motion,
           ICON_OT_export_bvh, ICON_OT_export_fbx, ICON_OT_export_gltf, ICON_OT_export_usd, ICON_OT_setup_engine,
           ICON_OT_setup_cancel, ICON_OT_check_engine)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
