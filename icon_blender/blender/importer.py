"""Build Blender data from a result bundle: one collection with the armature, the skinned mesh and the camera.

Frames: bundle world (SMPL-X, Y up) → Blender world (Z up) by +90° about X; the armature is built directly in
Blender's frame so its object transform stays identity. The photo's pose is keyed at frame 1. If anything fails,
everything created so far is removed (the scene is left as it was).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core import camera as cam_core
from ..core import correctives as corr_core
from ..core import rig
from ..engine_link import Bundle, BundleError, bundle, read_bundle
from . import animation

ROOT_BONE = "pelvis"  # the bone whose location carries the body's translation (child of the "root" bone)


@dataclass
class ImportResult:
    """What :func:`import_bundle` created."""

    collection: bpy.types.Collection
    armature: bpy.types.Object
    mesh: bpy.types.Object
    camera: bpy.types.Object | None
    action: bpy.types.Action


def rest_rotations(arm_obj: bpy.types.Object, names: list[str]) -> np.ndarray:
    """(J, 3, 3) rest rotations of the bones (armature space), read back from Blender."""
    return np.array([np.array(arm_obj.data.bones[n].matrix_local.to_3x3()) for n in names], dtype=np.float64)


def _link(collection: bpy.types.Collection, obj: bpy.types.Object) -> bpy.types.Object:
    collection.objects.link(obj)
    return obj


def _build_armature(collection, name: str, joints_bl: np.ndarray, parents, names,
                    created: list) -> bpy.types.Object:
    heads, tails, rots = rig.bone_layout(joints_bl, np.asarray(parents), names)
    data = bpy.data.armatures.new(name)
    created.append(data)
    data.display_type = "OCTAHEDRAL"
    obj = _link(collection, bpy.data.objects.new(name, data))
    created.append(obj)
    obj.show_in_front = True
    view_layer = bpy.context.view_layer
    prev_active = view_layer.objects.active
    view_layer.objects.active = obj
    with window_context():
        bpy.ops.object.mode_set(mode="EDIT")
    try:
        ebs = []
        for j, bone in enumerate(names):
            eb = data.edit_bones.new(bone)
            eb.head, eb.tail = Vector(heads[j]), Vector(tails[j])
            eb.align_roll(Vector(rots[j][:, 2]))
            eb.use_deform = True
            ebs.append(eb)
        for j, p in enumerate(parents):
            if p >= 0:
                ebs[j].parent = ebs[int(p)]
                ebs[j].use_connect = False
        _add_root_bone(data, [eb for j, eb in enumerate(ebs) if parents[j] < 0])
    finally:
        with window_context():
            bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = prev_active or obj
    return obj


def _add_root_bone(data: bpy.types.Armature, top_bones: list) -> None:
    """The root bone at the origin (``rig.ROOT_BONE_NAME``, identity rest rotation), parent of ``top_bones``.

    It deforms nothing but is marked deform so that exporters limited to deform bones keep it."""
    eb = data.edit_bones.new(rig.ROOT_BONE_NAME)
    eb.head, eb.tail = Vector((0.0, 0.0, 0.0)), Vector((0.0, rig.ROOT_BONE_LENGTH, 0.0))
    eb.align_roll(Vector((0.0, 0.0, 1.0)))
    eb.use_deform = True
    for top in top_bones:
        top.parent = eb
        top.use_connect = False


def window_context():
    """A context with a window for mode switches (timers run without one)."""
    wm = bpy.context.window_manager
    if bpy.context.window is None and wm is not None and len(wm.windows):
        win = wm.windows[0]
        return bpy.context.temp_override(window=win, screen=win.screen)
    return bpy.context.temp_override()


def _leave_edit_modes() -> None:
    """Back to object mode (the user's edits are kept) so the armature can be built in its own edit mode."""
    if bpy.context.mode != "OBJECT" and bpy.context.view_layer.objects.active is not None:
        with window_context():
            bpy.ops.object.mode_set(mode="OBJECT")


def _build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray | None = None,
                created: list | None = None) -> bpy.types.Mesh:
    """A triangle mesh; the per-corner ``uv`` (F, 3, 2) is set before ``validate`` so that any face or loop the
    validation removes takes its UVs with it (UVs added afterwards would be shifted onto the wrong corners)."""
    mesh = bpy.data.meshes.new(name)
    if created is not None:
        created.append(mesh)
    n_v, n_f = len(vertices), len(faces)
    mesh.vertices.add(n_v)
    mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
    mesh.loops.add(3 * n_f)
    mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(faces, dtype=np.int32).ravel())
    mesh.polygons.add(n_f)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * n_f, 3, dtype=np.int32))
    if uv is not None:
        _add_uv(mesh, uv)
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)
    return mesh


def _add_uv(mesh: bpy.types.Mesh, uv: np.ndarray) -> None:
    layer = mesh.uv_layers.new(name="UVMap")
    layer.data.foreach_set("uv", np.ascontiguousarray(uv, dtype=np.float32).reshape(-1))


def _add_colors(mesh: bpy.types.Mesh, colors: np.ndarray) -> str:
    attr = mesh.color_attributes.new(name="Col", type="BYTE_COLOR", domain="POINT")
    rgba = np.ones((len(colors), 4), dtype=np.float32)
    rgba[:, :3] = np.asarray(colors, dtype=np.float32) / 255.0
    key = "color_srgb" if hasattr(attr.data[0] if len(attr.data) else None, "color_srgb") else "color"
    attr.data.foreach_set(key, rgba.ravel())
    return attr.name


def _add_vertex_groups(obj: bpy.types.Object, weights: np.ndarray, names) -> None:
    """One vertex group per joint; vertices with equal weights are added in one call (exact float32 weights)."""
    w = np.asarray(weights, dtype=np.float32)
    for j, name in enumerate(names):
        group = obj.vertex_groups.new(name=name)
        col = w[:, j]
        idx = np.nonzero(col > 0)[0]
        if not len(idx):
            continue
        values, inverse = np.unique(col[idx], return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(values) + 1))
        for k, value in enumerate(values):
            members = idx[order[bounds[k] : bounds[k + 1]]]
            group.add(members.tolist(), float(value), "REPLACE")


def _material(name: str, texture: Path | None, color_layer: str | None, created: list) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    created.append(mat)
    if mat.node_tree is None:
        mat.use_nodes = True
    nt = mat.node_tree
    bsdf = next((n for n in nt.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
        out = next((n for n in nt.nodes if n.type == "OUTPUT_MATERIAL"), None) or nt.nodes.new(
            "ShaderNodeOutputMaterial")
        nt.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    bsdf.inputs["Roughness"].default_value = 0.8
    if texture is not None:
        node = nt.nodes.new("ShaderNodeTexImage")
        node.image = bpy.data.images.load(str(texture))
        created.append(node.image)
        node.image.pack()
        node.location = (bsdf.location.x - 400, bsdf.location.y)
        nt.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    elif color_layer is not None:
        node = nt.nodes.new("ShaderNodeVertexColor")
        node.layer_name = color_layer
        node.location = (bsdf.location.x - 400, bsdf.location.y)
        nt.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _camera_object(collection, name: str, K: np.ndarray, R: np.ndarray, t: np.ndarray, size: tuple[int, int],
                   created: list) -> tuple[bpy.types.Object, cam_core.BlenderCamera]:
    """A camera object reproducing the OpenCV camera (K, R, t) of a ``size`` (W, H) photo (bundle world)."""
    settings = cam_core.blender_camera(K, R, t, size[0], size[1])
    data = bpy.data.cameras.new(name)
    data.sensor_fit = settings.sensor_fit
    data.sensor_width = data.sensor_height = settings.sensor_mm
    data.lens = settings.lens_mm
    data.shift_x, data.shift_y = settings.shift_x, settings.shift_y
    data.clip_start, data.clip_end = 0.01, 1000.0
    created.append(data)
    obj = _link(collection, bpy.data.objects.new(name, data))
    created.append(obj)
    obj.matrix_world = Matrix(settings.matrix_world.tolist())
    obj["icon_resolution"] = list(settings.resolution)
    obj["icon_pixel_aspect"] = list(settings.pixel_aspect)
    return obj, settings


def _camera(collection, name: str, b: Bundle, scene: bpy.types.Scene, created: list) -> bpy.types.Object:
    obj, settings = _camera_object(collection, name, b.K, b.R, b.t, b.image_size, created)
    _background(obj.data, b.file("photo"), b.photo_orientation, created)
    scene.render.resolution_x, scene.render.resolution_y = settings.resolution
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = settings.pixel_aspect
    scene.camera = obj
    return obj


def _background(data: bpy.types.Camera, photo: Path | None, orientation: int, created: list) -> None:
    """Show the image file ``photo`` (packed into the .blend; turned upright by its EXIF ``orientation``) as the
    camera's background, fitted to its frame; nothing when there is no such file."""
    if photo is None or not photo.is_file():
        return
    img = bpy.data.images.load(str(photo))
    created.append(img)
    img.pack()
    if orientation != 1:  # an older bundle holding the phone's rotated JPEG: Blender ignores EXIF
        stored, img = img, _upright_image(img, orientation)
        created.remove(stored)
        bpy.data.images.remove(stored)
        created.append(img)
    data.show_background_images = True
    bg = data.background_images.new()
    bg.image = img
    bg.frame_method = "FIT"
    bg.alpha = 1.0


def _upright_image(img: bpy.types.Image, orientation: int) -> bpy.types.Image:
    """A packed copy of ``img`` turned upright by its EXIF ``orientation`` (Blender shows pixels as stored)."""
    width, height = img.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    img.pixels.foreach_get(pixels)
    top_down = pixels.reshape(height, width, 4)[::-1]  # Blender's rows run bottom-up
    upright = np.ascontiguousarray(bundle.reader.apply_orientation(top_down, orientation)[::-1])
    out = bpy.data.images.new(f"{img.name} (upright)", upright.shape[1], upright.shape[0], alpha=True)
    out.pixels.foreach_set(upright.ravel())
    out.pack()
    return out


def rest_pose_angles(b: Bundle) -> np.ndarray:
    """(55, 3) axis-angle from the SMPL-X T pose to the bundle's rest pose (zeros for a T rest)."""
    angles = (b.meta.get("rig") or {}).get("rest_pose_angles")
    arr = np.asarray(angles if angles is not None else np.zeros((55, 3)), dtype=np.float64)
    if arr.shape != (55, 3) or not np.all(np.isfinite(arr)):
        raise BundleError(f"{b.path}: rig.rest_pose_angles must be 55 × 3 finite numbers")
    return arr


def pose_from_rest(b: Bundle) -> np.ndarray:
    """The photo's pose relative to the rig's rest pose (``rig.pose_from_rest``; ``body.full_pose`` for a T rest)."""
    given = (b.meta.get("rig") or {}).get("pose_from_rest")
    if given is not None:
        arr = np.asarray(given, dtype=np.float64)
        if arr.shape != (55, 3) or not np.all(np.isfinite(arr)):
            raise BundleError(f"{b.path}: rig.pose_from_rest must be 55 × 3 finite numbers")
        return arr
    return rig.pose_relative_to_rest(b.full_pose, rest_pose_angles(b), b.parents)


def photo_pose(b: Bundle, rest_rots: np.ndarray, head0: np.ndarray, pose: np.ndarray | None = None,
               transl: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's fitted pose (or ``pose`` relative to the rig's rest, with ``transl``, metres, bundle world)
    as pose-bone quaternions (J, 4) and the pelvis location (3,)."""
    quats = rig.pose_bone_quaternions(pose_from_rest(b) if pose is None else pose, rest_rots)
    pelvis = rig.pelvis_positions(b.rest_joints[0], b.transl if transl is None else transl)
    return quats, rig.root_location(pelvis, head0, rest_rots[0])


def _photo_poses(b: Bundle, name: str, arm: bpy.types.Object, names: list[str], rots: np.ndarray,
                 angles: np.ndarray, coll, with_camera: bool, created: list) -> list[tuple]:
    """Each used photo of a several-photo avatar (``Bundle.views``) as a one-frame pose action marked as a pose
    asset (the pose library), and its camera (hidden; the first photo's camera is the import's main camera).

    Returns (action, camera or None, label) per used photo after the first (the first photo's pose and camera
    are the bundle's own: the import's photo pose and main camera)."""
    out = []
    head0 = np.array(arm.data.bones[ROOT_BONE].head_local)
    used = [v for v in b.views if v.status == "used"]
    for k, view in enumerate(used[1:], start=2):
        pose = rig.pose_relative_to_rest(view.full_pose, angles, b.parents)
        quats, loc = photo_pose(b, rots, head0, pose, view.transl)
        title = f"{name} pose {k} {view.label}"[:60]
        action = animation.write_pose_action(arm, names, quats[None], loc[None], ROOT_BONE, 1, title)
        created.append(action)
        action.use_fake_user = True
        if hasattr(action, "asset_mark"):
            action.asset_mark()
            action.asset_data.description = f"{view.label}: the pose of photo {k} of {len(used)} ({name})"
        cam = None
        if with_camera:
            cam, _ = _camera_object(coll, f"{name}_camera {k}", view.K, view.R, view.t, view.image_size, created)
            _background(cam.data, view.image, 1, created)  # the engine stores the other photos upright
            cam.hide_set(True)
        out.append((action, cam, view.label))
    return out


def _add_correctives(obj: bpy.types.Object, arm: bpy.types.Object, b: Bundle, rest_bl: np.ndarray,
                     rots: np.ndarray) -> list[str]:
    """The bundle's pose correctives as shape keys of the mesh (``Basis`` = the rest mesh), each driven by its
    bone's evaluated local rotation as a quaternion (docs/addon.md); ``rest_bl`` the rest vertices as built
    (Blender frame, floor-standing), ``rots`` the bones' rest rotations. Returns the key names."""
    c = b.correctives
    if c is None or not c.count:
        return []
    obj.shape_key_add(name="Basis", from_mix=False)
    obj.data.shape_keys.use_relative = True
    names = []
    for k in range(c.count):
        j = int(c.key_joint[k])
        bone = b.joint_names[j]
        key = obj.shape_key_add(name=f"corrective {bone} {k + 1}", from_mix=False)
        key.slider_min, key.slider_max = -10.0, 10.0
        co = rest_bl + rig.to_blender(c.offsets[k])
        key.data.foreach_set("co", np.ascontiguousarray(co, dtype=np.float32).ravel())
        driver = key.driver_add("value").driver
        driver.type = "SCRIPTED"
        for var_name in "wxyz":  # the bone's evaluated local rotation (identity when the rest pose is shown)
            var = driver.variables.new()
            var.name, var.type = var_name, "TRANSFORMS"
            target = var.targets[0]
            target.id, target.bone_target = arm, bone
            target.transform_type, target.rotation_mode = f"ROT_{var_name.upper()}", "QUATERNION"
            target.transform_space = "LOCAL_SPACE"
        driver.expression = corr_core.driver_expression(corr_core.bone_coefficients(c.key_coeffs[k], rots[j]))
        names.append(key.name)
    return names


def photo_pose_names(arm: bpy.types.Object) -> list[tuple[str, str, str]]:
    """(label, action name, camera name or "") of each photo pose of an ICON avatar made from several photos."""
    labels = list(arm.get("icon_photo_labels", []))
    actions = list(arm.get("icon_photo_actions", []))
    cameras = list(arm.get("icon_photo_cameras", []))
    return [(str(lab), str(act), str(cam)) for lab, act, cam in zip(labels, actions, cameras, strict=False)]


def show_photo_pose(arm: bpy.types.Object, index: int, scene: bpy.types.Scene | None = None) -> bpy.types.Action:
    """Put the avatar in the pose of its photo ``index`` (0 = the first) and look through that photo's camera:
    the pose action becomes the armature's active action, the camera the scene's (shown; the avatar's other
    photo cameras hidden), and the render size that photo's. Raises ValueError for an unknown index."""
    scene = scene or bpy.context.scene
    poses = photo_pose_names(arm)
    if not 0 <= index < len(poses):
        raise ValueError(f"{arm.name} has {len(poses)} photo pose(s); there is no pose {index + 1}.")
    label, action_name, camera_name = poses[index]
    action = bpy.data.actions.get(action_name)
    if action is None:
        raise ValueError(f"The pose action '{action_name}' of {label} was deleted or renamed.")
    if arm.animation_data is None:
        arm.animation_data_create()
    arm.animation_data.action = action
    slots = getattr(action, "slots", None)
    if slots is not None and len(slots) and getattr(arm.animation_data, "action_slot", 1) is None:
        arm.animation_data.action_slot = slots[0]
    arm.data.pose_position = "POSE"
    for _, _, cam_name in poses:
        cam = bpy.data.objects.get(cam_name) if cam_name else None
        if cam is not None and cam.name in bpy.context.view_layer.objects:
            cam.hide_set(cam_name != camera_name)
    cam = bpy.data.objects.get(camera_name) if camera_name else None
    if cam is not None:
        scene.camera = cam
        if "icon_resolution" in cam:
            scene.render.resolution_x, scene.render.resolution_y = (int(v) for v in cam["icon_resolution"])
            scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = (float(v) for v in cam["icon_pixel_aspect"])
    scene.frame_set(scene.frame_current)
    return action


def import_bundle(
    path: str | Path | Bundle,
    scene: bpy.types.Scene | None = None,
    name: str | None = None,
    with_camera: bool = True,
    select: bool = True,
) -> ImportResult:
    """Import a bundle into ``scene`` (default: the context's) as a new collection; see the module docstring.

    Raises the bundle reader's ``BundleError`` for a missing or damaged bundle (nothing is created). Any failure
    removes everything created so far and restores the scene's camera, render size and frame. With ``select``
    the new avatar ends selected and active (the user's selection is replaced, as Blender's importers do).
    """
    b = path if isinstance(path, Bundle) else read_bundle(path)
    scene = scene or bpy.context.scene
    name = name or b.path.name
    names = list(b.joint_names)
    angles, pose = rest_pose_angles(b), pose_from_rest(b)  # validated before anything is created
    created: list = []
    _leave_edit_modes()
    scene_before = _scene_state(scene)
    try:
        coll = bpy.data.collections.new(f"ICON {name}")
        created.append(coll)
        scene.collection.children.link(coll)
        # the rest pose stands on the floor; the photo pose keeps its place (pelvis at J0 + transl, photo_pose)
        floor = rig.floor_offset(b.rest_mesh.vertices, b.rest_joints)
        joints_bl = rig.to_blender(b.rest_joints + floor)
        arm = _build_armature(coll, f"{name}_rig", joints_bl, b.parents, names, created)
        uv = b.rest_mesh.uv if b.rest_mesh.uv is not None else b.posed_mesh.uv
        colors = b.rest_mesh.colors if b.rest_mesh.colors is not None else b.posed_mesh.colors
        mesh = _build_mesh(f"{name}_mesh", rig.to_blender(b.rest_mesh.vertices + floor), b.rest_mesh.faces, uv,
                           created)
        layer = _add_colors(mesh, colors) if colors is not None else None
        texture = b.file("texture") if uv is not None else None
        mat = _material(f"{name}_material", texture, layer, created)
        mesh.materials.append(mat)
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
        obj = _link(coll, bpy.data.objects.new(f"{name}_mesh", mesh))
        created.append(obj)
        _add_vertex_groups(obj, b.skin_weights, names)
        obj.parent = arm
        mod = obj.modifiers.new("Armature", "ARMATURE")
        mod.object = arm
        rots = rest_rotations(arm, names)
        keys = _add_correctives(obj, arm, b, rig.to_blender(b.rest_mesh.vertices + floor), rots)
        quats, loc = photo_pose(b, rots, np.array(arm.data.bones[ROOT_BONE].head_local), pose)
        used = [v.label for v in b.views if v.status == "used"]
        poses = _photo_poses(b, name, arm, names, rots, angles, coll, with_camera, created)
        action = animation.write_pose_action(arm, names, quats[None], loc[None], ROOT_BONE, 1, f"{name} photo pose")
        created.append(action)
        action.use_fake_user = True
        cam = None
        if with_camera:
            cam = _camera(coll, f"{name}_camera", b, scene, created)
        if len(used) > 1:  # photo 1's entry is the photo pose itself, its camera the main one
            arm["icon_photo_labels"] = used
            arm["icon_photo_actions"] = [action.name] + [a.name for a, _, _ in poses]
            arm["icon_photo_cameras"] = [cam.name if cam else ""] + [c.name if c else "" for _, c, _ in poses]
            if hasattr(action, "asset_mark"):
                action.asset_mark()
                action.asset_data.description = f"{used[0]}: the pose of photo 1 of {len(used)} ({name})"
        arm["icon_bundle"] = str(b.path)
        arm["icon_rest_pose_angles"] = angles.ravel().tolist()
        arm["icon_format_version"] = int(b.meta.get("format_version", 0))
        arm["icon_floor_offset"] = rig.to_blender(floor).tolist()  # Blender frame, metres
        if keys:
            obj["icon_corrective_keys"] = keys
        scene.frame_set(1)
        if select:
            select_avatar(arm, [obj])
        return ImportResult(coll, arm, obj, cam, action)
    except BaseException:
        _remove(created)
        _restore_scene_state(scene, scene_before)
        raise


def _scene_state(scene: bpy.types.Scene) -> dict:
    """The scene settings an import changes (camera, render size, frame), to restore them on rollback."""
    r = scene.render
    return {"camera": scene.camera, "frame": scene.frame_current,
            "render": (r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y)}


def _restore_scene_state(scene: bpy.types.Scene, before: dict) -> None:
    try:
        scene.camera = before["camera"]
    except ReferenceError:
        scene.camera = None
    r = scene.render
    (r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y) = before["render"]
    scene.frame_set(before["frame"])


def select_avatar(arm: bpy.types.Object, meshes: list[bpy.types.Object]) -> None:
    """Select the new avatar (its armature and meshes) alone and make its armature the active object."""
    view_layer = bpy.context.view_layer
    for o in view_layer.objects:
        if o.select_get():
            o.select_set(False)
    for o in [arm, *meshes]:
        if o.name in view_layer.objects:
            o.select_set(True)
    view_layer.objects.active = arm


#: Blender data types an import creates, and the bpy.data collection each is removed from on rollback.
_DATA_STORES = (("Collection", "collections"), ("Mesh", "meshes"), ("Armature", "armatures"), ("Camera", "cameras"),
                ("Material", "materials"), ("Action", "actions"), ("Image", "images"))


def _remove(items: list) -> None:
    """Delete datablocks created by a failed import, newest first."""
    for item in reversed(items):
        try:
            if isinstance(item, bpy.types.Object):
                bpy.data.objects.remove(item, do_unlink=True)
                continue
            for kind, store in _DATA_STORES:
                if isinstance(item, getattr(bpy.types, kind)):
                    getattr(bpy.data, store).remove(item)
                    break
        except ReferenceError:
            pass


def set_rest_pose(arm_obj: bpy.types.Object, rest: bool) -> None:
    """Show the armature in its rest pose (True) or its posed/animated state (False)."""
    arm_obj.data.pose_position = "REST" if rest else "POSE"
