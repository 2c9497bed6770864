"""Scene settings of the ICON sidebar."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

QUALITY_ITEMS = [
    ("preview", "Preview", "Fast: fewer fit iterations, coarse surface and texture"),
    ("standard", "Standard", "Balanced quality and time"),
    ("high", "High", "Finest surface and texture; slow on CPU"),
]


def _photo_update(self, context) -> None:
    from . import state

    state.photo_icon(bpy.path.abspath(self.photo))


class ICONSceneSettings(bpy.types.PropertyGroup):
    photo: StringProperty(name="Photo", description="Photo of one person (JPEG, PNG, ...)", subtype="FILE_PATH",
                          update=_photo_update)
    quality: EnumProperty(name="Quality", items=[("default", "Default", "The default quality set in the add-on's "
                                                   "preferences"), *QUALITY_ITEMS], default="default")
    texture: BoolProperty(name="Texture", description="Bake a texture from the photo", default=True)
    rest_pose: EnumProperty(name="Rest pose", items=[("T", "T-pose", "Arms horizontal"),
                                                     ("A", "A-pose", "Arms lowered")], default="T")
    person: IntProperty(name="Person", description="Which person when the photo shows several (0 = largest)",
                        default=0, min=0, max=20)
    height: FloatProperty(name="Height", description="The person's height (0 = unknown: an average adult's 1.70 m, "
                          "as one photo does not show its scale); sets the avatar's scale", default=0.0, min=0.0,
                          max=2.8, unit="LENGTH", subtype="DISTANCE")
    several_photos: EnumProperty(
        name="Several photos", description="What several photos (or a video) picked at once become",
        items=[("ONE", "One person", "Combine every photo (and video frame) into ONE avatar of the person: one "
                "shape, each photo's pose kept as a pose on the armature"),
               ("SEPARATE", "Separate avatars", "Each photo becomes its own avatar, queued one after another")],
        default="ONE")
    frames: IntProperty(name="Video frames", description="Sharp frames taken from each video (one person)",
                        default=12, min=1, max=20)
    fbx_preset: EnumProperty(name="FBX preset", items=[("unity", "Unity", ""), ("unreal", "Unreal", ""),
                                                       ("generic", "Generic", "")], default="unity")
    gltf_preset: EnumProperty(name="glTF preset", items=[("godot", "Godot", ""), ("unreal", "Unreal", ""),
                                                         ("web", "Web", "JPEG textures")], default="godot")
    bone_names: EnumProperty(name="Bone names", description="Bone names in exported files (retargeting maps them "
                             "without manual work)", items=[("smplx", "SMPL-X", ""), ("mixamo", "Mixamo", ""),
                                                            ("unreal", "Unreal Mannequin", ""),
                                                            ("unity", "Unity Humanoid", "")], default="smplx")


CLASSES = (ICONSceneSettings,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.icon_settings = bpy.props.PointerProperty(type=ICONSceneSettings)


def unregister() -> None:
    del bpy.types.Scene.icon_settings
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
