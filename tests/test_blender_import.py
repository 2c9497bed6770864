"""Import of a bundle into Blender (bpy, headless): armature, skinned mesh, material, camera, photo pose."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402
from test_blender_bundle import make_bundle  # noqa: E402

from icon_blender.blender.importer import import_bundle, set_rest_pose  # noqa: E402
from icon_blender.core import rig  # noqa: E402
from icon_engine.bundle import JOINT_NAMES, PARENTS, BundleError, read_bundle  # noqa: E402


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "avatar")


#: Where a body model's canonical frame puts a rest body (SMPL-X: pelvis near the origin, feet ~1.2 m below).
CANONICAL_OFFSET = (0.02, -1.3, 0.05)


@pytest.fixture(scope="module", params=["T", "A", "T-canonical"])
def any_rest_bundle(request, tmp_path_factory):
    rest = request.param[0]
    offset = CANONICAL_OFFSET if request.param.endswith("canonical") else (0.0, 0.0, 0.0)
    return make_bundle(tmp_path_factory.mktemp("bundle") / f"rest{request.param}", rest_pose=rest, rest_offset=offset)


def evaluated_vertices(obj) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    m = np.array(obj.matrix_world)
    co = co.reshape(-1, 3).astype(np.float64)
    return co @ m[:3, :3].T + m[:3, 3]


def test_import_builds_rig_mesh_and_reproduces_posed_mesh(scene, any_rest_bundle):
    bundle_dir = any_rest_bundle
    b = read_bundle(bundle_dir)
    res = import_bundle(bundle_dir, scene)
    arm, mesh = res.armature, res.mesh
    assert res.collection.name in scene.collection.children
    bones = arm.data.bones
    assert len(bones) == 56 and {bone.name for bone in bones} == {*JOINT_NAMES, "root"}
    for j, name in enumerate(JOINT_NAMES):
        parent = bones[name].parent.name if bones[name].parent else None
        assert parent == (JOINT_NAMES[PARENTS[j]] if PARENTS[j] >= 0 else "root")
    # the root bone: at the origin, identity rest rotation, no parent, no weights
    root = bones["root"]
    assert root.parent is None and np.abs(np.array(root.head_local)).max() < 1e-6
    assert np.abs(np.array(root.matrix_local) - np.eye(4)).max() < 1e-5 and "root" not in mesh.vertex_groups
    # the rest pose stands on the floor: lowest rest vertex at z = 0, pelvis above the origin
    floor = rig.floor_offset(b.rest_mesh.vertices, b.rest_joints)
    rest_bl = rig.to_blender(b.rest_mesh.vertices + floor)
    assert abs(rest_bl[:, 2].min()) < 1e-6 and np.abs(rest_bl[:, 2].min() - 0.0) < 1e-6
    heads = np.array([bones[n].head_local for n in JOINT_NAMES])
    assert np.abs(heads[0, :2]).max() < 1e-6 and heads[0, 2] > 0.5
    # bone heads on the (floor-standing) rest joints, Blender frame; rest orientations as the core laid them out
    assert np.abs(heads - rig.to_blender(b.rest_joints + floor)).max() < 1e-5
    _, _, rots = rig.bone_layout(rig.to_blender(b.rest_joints), b.parents, JOINT_NAMES)
    blender_rots = np.array([np.array(bones[n].matrix_local.to_3x3()) for n in JOINT_NAMES])
    assert np.abs(blender_rots - rots).max() < 1e-4
    assert [g.name for g in mesh.vertex_groups] == list(JOINT_NAMES)
    assert mesh.modifiers[0].type == "ARMATURE" and mesh.modifiers[0].object == arm and mesh.parent == arm
    assert len(mesh.data.vertices) == len(b.rest_mesh.vertices)
    # weights equal the bundle's
    w = np.zeros_like(b.skin_weights)
    for v in mesh.data.vertices:
        for g in v.groups:
            w[v.index, JOINT_NAMES.index(mesh.vertex_groups[g.group].name)] = g.weight
    assert np.abs(w - b.skin_weights).max() < 1e-6
    # after posing (frame 1), the evaluated mesh equals the bundle's posed mesh in Blender's frame within 1 mm
    scene.frame_set(2)
    scene.frame_set(1)
    posed = evaluated_vertices(mesh)
    expected = rig.to_blender(b.posed_mesh.vertices)
    assert np.abs(posed - expected).max() < 1e-3
    # rest-pose button: the rest mesh, and back
    set_rest_pose(arm, True)
    rest_shown = evaluated_vertices(mesh)
    assert np.abs(rest_shown - rest_bl).max() < 1e-4 and abs(rest_shown[:, 2].min()) < 1e-4
    set_rest_pose(arm, False)
    assert np.abs(evaluated_vertices(mesh) - expected).max() < 1e-3


def test_material_uses_texture_or_vertex_colours(scene, bundle_dir, tmp_path):
    res = import_bundle(bundle_dir, scene)
    nt = res.mesh.data.materials[0].node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    src = bsdf.inputs["Base Color"].links[0].from_node
    assert src.type == "TEX_IMAGE" and src.image.size[0] == 32 and src.image.packed_file is not None
    assert len(res.mesh.data.uv_layers) == 1
    plain = import_bundle(make_bundle(tmp_path / "plain", texture=False), scene)
    nt = plain.mesh.data.materials[0].node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    src = bsdf.inputs["Base Color"].links[0].from_node
    assert src.type == "VERTEX_COLOR" and src.layer_name in plain.mesh.data.color_attributes
    b = read_bundle(tmp_path / "plain")
    attr = plain.mesh.data.color_attributes[src.layer_name]
    got = np.array([attr.data[i].color_srgb[:3] for i in range(5)])
    assert np.abs(got * 255 - b.rest_mesh.colors[:5]).max() < 1.01


@pytest.mark.parametrize("size", [(640, 480), (360, 500)])
def test_camera_projects_like_the_bundle_camera(scene, tmp_path, size):
    # the second size also has a rest body in a canonical frame, stood on the floor by the import
    path = make_bundle(tmp_path / "cam", size=size, rest_offset=CANONICAL_OFFSET if size[0] < size[1] else (0, 0, 0))
    b = read_bundle(path)
    res = import_bundle(path, scene)
    assert scene.camera == res.camera
    assert (scene.render.resolution_x, scene.render.resolution_y) == size
    assert res.camera.data.background_images[0].image.size[:] == size
    width, height = size
    points = b.posed_mesh.vertices[::7]
    cam = (points @ b.R.T + b.t) @ b.K.T
    expected = cam[:, :2] / cam[:, 2:]
    got = []
    for p in rig.to_blender(points):
        ndc = world_to_camera_view(scene, res.camera, Vector(p))
        got.append((ndc.x * width, (1.0 - ndc.y) * height))
    assert np.abs(np.array(got) - expected).max() < 0.05  # pixels


def test_bad_bundle_leaves_scene_untouched(scene, tmp_path, bundle_dir):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(bundle_dir, bad)
    (bad / "skin_weights.npy").write_bytes(b"garbage")
    before = (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.collections), len(bpy.data.actions))
    with pytest.raises(BundleError, match="skin_weights"):
        import_bundle(bad, scene)
    assert before == (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.collections), len(bpy.data.actions))


@pytest.mark.parametrize("step", ["_camera", "select_avatar"])  # midway, and last (after the camera is set)
def test_failure_midway_removes_everything(scene, bundle_dir, monkeypatch, step):
    from icon_blender.blender import importer

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(importer, step, boom)
    before = {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "armatures", "collections", "actions",
                                                     "materials", "images", "cameras")}
    cam_data = bpy.data.cameras.new("user_cam")
    user_cam = bpy.data.objects.new("user_cam", cam_data)
    scene.collection.objects.link(user_cam)
    scene.camera = user_cam
    scene.render.resolution_x, scene.render.resolution_y = 1234, 567
    scene.frame_set(7)
    before = {k: len(getattr(bpy.data, k)) for k in before}
    with pytest.raises(RuntimeError, match="simulated"):
        import_bundle(bundle_dir, scene)
    after = {k: len(getattr(bpy.data, k)) for k in before}
    assert after == before
    assert scene.camera == user_cam and (scene.render.resolution_x, scene.render.resolution_y) == (1234, 567)
    assert scene.frame_current == 7


def test_import_while_another_object_is_in_edit_mode(scene, bundle_dir):
    mesh = bpy.data.meshes.new("cube")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("user_object", mesh)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    res = import_bundle(bundle_dir, scene)
    assert len(res.armature.data.bones) == 56 and bpy.context.mode == "OBJECT"
    # the new avatar is selected and active, the user's object no longer selected
    assert bpy.context.view_layer.objects.active == res.armature
    assert res.armature.select_get() and res.mesh.select_get() and not obj.select_get()


def test_uvs_follow_their_faces_when_validation_drops_a_face():
    """UVs are set before mesh.validate(): a degenerate face it removes takes its own UVs with it."""
    from icon_blender.blender.importer import _build_mesh

    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=float)
    faces = np.array([[0, 0, 1], [0, 1, 2], [1, 3, 2]])  # the first face repeats a vertex
    uv = np.arange(18, dtype=float).reshape(3, 3, 2) / 18.0
    mesh = _build_mesh("uvcheck", verts, faces, uv)
    assert len(mesh.polygons) == 2
    got = np.array([mesh.uv_layers[0].data[i].uv[:] for i in range(len(mesh.loops))]).reshape(2, 3, 2)
    for poly, expected in zip(mesh.polygons, uv[1:], strict=True):
        assert list(poly.vertices) == list(faces[1 + poly.index])
        assert np.abs(got[poly.index] - expected).max() < 1e-6


def test_bad_rig_metadata_is_refused_before_anything_is_built(scene, tmp_path, bundle_dir):
    import json
    import shutil

    bad = tmp_path / "badrig"
    shutil.copytree(bundle_dir, bad)
    meta = json.loads((bad / "bundle.json").read_text())
    meta["rig"] = {"rest_pose": "A", "rest_pose_angles": [[0.0, 0.0]]}
    (bad / "bundle.json").write_text(json.dumps(meta))
    before = len(bpy.data.objects), len(bpy.data.collections)
    with pytest.raises(BundleError, match="rest_pose_angles"):
        import_bundle(bad, scene)
    assert (len(bpy.data.objects), len(bpy.data.collections)) == before
