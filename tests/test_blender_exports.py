"""Exports read back by readers that are not Blender: FBX with ``ufbx``, glTF with ``pygltflib`` (plus the
Khronos validator rules it lets us apply), USD with ``usd-core`` (``pxr``). Checked: bone hierarchy and names
(with the Mixamo / Unreal / Unity maps), bind pose, skin weights (≤ 4 per vertex for game presets, normalised),
animation length and frame rate, scale and axes, texture embedded or beside. Also the bone maps and the
weight limit themselves, and that an export leaves the avatar as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from test_blender_bundle import make_bundle  # noqa: E402

from icon_blender.blender.export import export_fbx, export_gltf, export_usd, read_weights  # noqa: E402
from icon_blender.blender.importer import import_bundle  # noqa: E402
from icon_blender.blender.motion import apply_motion  # noqa: E402
from icon_blender.core import bone_maps, export_presets, rig  # noqa: E402
from icon_engine.bundle import JOINT_NAMES, PARENTS  # noqa: E402

FRAMES, FPS = 20, 30
EXTRA = 6  # influences given to some vertices, more than game engines take


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "hero", seed=3, rest_offset=(0.02, -1.3, 0.05))


@pytest.fixture()
def avatar(bundle_dir, tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    res = import_bundle(bundle_dir, scene)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "walk.npz", poses=np.cumsum(rng.normal(scale=0.1, size=(FRAMES, 165)), 0),
             trans=np.zeros((FRAMES, 3)), fps=float(FPS))
    apply_motion(res.armature, tmp_path / "walk.npz", scene)
    groups = res.mesh.vertex_groups
    for v in range(0, 40, 3):  # six influences on some vertices (the bundle allows up to 8)
        for k in range(EXTRA):
            groups[JOINT_NAMES[1 + k]].add([v], 0.05 + 0.01 * k, "ADD")
    return res


def expected_joints_y_up(arm) -> dict[str, np.ndarray]:
    """Rest joint positions (metres) in the Y-up frame every exporter writes (glTF, FBX -Z forward/Y up, USD)."""
    heads = {b.name: np.array(b.head_local) for b in arm.data.bones}
    return {n: rig.Y_UP_TO_Z_UP.T @ h for n, h in heads.items()}


def parent_names(mapping: dict[str, str]) -> dict[str, str | None]:
    """Exported bone name → exported parent name."""
    out: dict[str, str | None] = {mapping["root"]: None}
    for j, name in enumerate(JOINT_NAMES):
        out[mapping[name]] = mapping[JOINT_NAMES[PARENTS[j]]] if PARENTS[j] >= 0 else mapping["root"]
    return out


def avatar_unchanged(res, before_weights: np.ndarray, arm_name: str) -> None:
    assert res.armature.name == arm_name
    assert {b.name for b in res.armature.data.bones} == {*JOINT_NAMES, "root"}
    assert [g.name for g in res.mesh.vertex_groups] == list(JOINT_NAMES)
    assert np.array_equal(read_weights(res.mesh), before_weights)
    assert res.mesh.modifiers["Armature"].show_viewport
    fc_paths = {fc.data_path for fc in _fcurves(res.armature.animation_data.action)}
    assert 'pose.bones["left_wrist"].rotation_quaternion' in fc_paths


def _fcurves(action):
    if hasattr(action, "layers") and len(getattr(action, "layers", [])):
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                for fc in bag.fcurves]
    return list(action.fcurves)


def test_bone_maps_are_complete_and_unique():
    for target in bone_maps.TARGETS:
        mapping = bone_maps.bone_map(target, JOINT_NAMES)
        assert set(mapping) == {*JOINT_NAMES, "root"} and len(set(mapping.values())) == len(mapping)
    mixamo, unreal, unity = (bone_maps.bone_map(t, JOINT_NAMES) for t in ("mixamo", "unreal", "unity"))
    assert mixamo["pelvis"] == "mixamorig:Hips" and mixamo["left_shoulder"] == "mixamorig:LeftArm"
    assert mixamo["right_index3"] == "mixamorig:RightHandIndex3" and mixamo["left_foot"] == "mixamorig:LeftToeBase"
    assert unreal["spine3"] == "spine_03" and unreal["left_thumb1"] == "thumb_01_l"
    assert unreal["right_collar"] == "clavicle_r" and unreal["left_knee"] == "calf_l"
    assert unity["spine2"] == "Chest" and unity["right_index3"] == "RightIndexDistal"
    assert unity["left_hip"] == "LeftUpperLeg" and unity["left_eye_smplhf"] == "LeftEye"
    with pytest.raises(ValueError, match="unknown bone names"):
        bone_maps.bone_map("maya", JOINT_NAMES)


def test_limit_weights_keeps_the_largest_and_normalises():
    w = np.array([[0.3, 0.25, 0.2, 0.1, 0.1, 0.05], [0.5, 0.5, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    out = export_presets.limit_weights(w, 4)
    assert np.allclose(out[0], np.array([0.3, 0.25, 0.2, 0.1, 0, 0]) / 0.85)
    assert np.allclose(out[1], [0.5, 0.5, 0, 0, 0, 0]) and not out[2].any()
    assert np.allclose(export_presets.limit_weights(w * 2, None)[0], w[0])


FBX_READER = textwrap.dedent("""
    import json, sys
    import ufbx
    scene = ufbx.load_file(sys.argv[1])
    settings = scene.settings
    axes = settings.axes
    skin = scene.skin_deformers[0]
    clusters = list(skin.clusters)
    bones, bind = {}, {}
    for c in clusters:
        node = c.bone_node
        parent = node.parent
        bones[node.name] = parent.name if parent is not None and parent.bone is not None else None
        m = c.bind_to_world
        bind[node.name] = [m.c3.x, m.c3.y, m.c3.z]
    n_vertices = len(skin.vertices)
    per_vertex = [[] for _ in range(n_vertices)]
    for c in clusters:
        for v, w in zip(list(c.vertices), list(c.weights)):
            per_vertex[v].append(w)
    stack = scene.anim_stacks[0]
    textures = [t for t in scene.textures]
    print(json.dumps({
        "unit_meters": settings.unit_meters, "up": int(axes.up), "front": int(axes.front),
        "fps": settings.frames_per_second, "time": [stack.time_begin, stack.time_end],
        "bones": bones, "bind": bind, "influences": [len(p) for p in per_vertex],
        "sums": [sum(p) for p in per_vertex], "textures": [len(t.content or b"") for t in textures],
    }))
""")


def read_fbx(path) -> dict:
    """The file's facts as ufbx reads them (in a child process: a reader crash cannot take pytest with it)."""
    proc = subprocess.run([sys.executable, "-c", FBX_READER, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize(("preset", "names"), [("unity", "unity"), ("unreal", "unreal"), ("generic", "mixamo")])
def test_fbx_read_by_ufbx(avatar, tmp_path, preset, names):
    pytest.importorskip("ufbx")
    before, arm_name = read_weights(avatar.mesh), avatar.armature.name
    expected = expected_joints_y_up(avatar.armature)
    out = export_fbx(avatar.armature, tmp_path / f"{preset}.fbx", preset, names)
    avatar_unchanged(avatar, before, arm_name)
    facts = read_fbx(out)
    mapping = bone_maps.bone_map(names, JOINT_NAMES)
    # hierarchy and names (eyes have no weights on this body, so no skin cluster: compare the weighted ones)
    parents = parent_names(mapping)
    assert set(facts["bones"]) <= set(parents) and mapping["pelvis"] in facts["bones"]
    for bone, parent in facts["bones"].items():
        assert parent == parents[bone], bone
    # axes: Y up, +Z front (the avatar faces the viewer); units: metres (Unity, scale 1) or centimetres
    assert facts["up"] == 2 and facts["front"] == 4  # ufbx CoordinateAxis POSITIVE_Y, POSITIVE_Z
    assert facts["unit_meters"] == pytest.approx(1.0 if preset == "unity" else 0.01)
    # bind pose: every weighted bone's bind position is its rest joint (metres), the feet on the floor
    inverse = {v: k for k, v in mapping.items()}
    for bone, position in facts["bind"].items():
        got = np.array(position) * facts["unit_meters"]
        assert np.abs(got - expected[inverse[bone]]).max() < 1e-4, bone
    # skin: normalised, at most 4 influences for the game presets, all six for generic
    assert min(facts["influences"]) >= 1 and np.allclose(facts["sums"], 1.0, atol=1e-4)
    assert (max(facts["influences"]) == 4) if preset in ("unity", "unreal") else (max(facts["influences"]) > 4)
    # animation: 20 frames at 30 fps; texture embedded
    assert facts["fps"] == FPS
    assert facts["time"][1] - facts["time"][0] == pytest.approx((FRAMES - 1) / FPS, abs=1e-6)
    assert facts["textures"] and min(facts["textures"]) > 100


def _accessor(gltf, index: int, blob: bytes) -> np.ndarray:
    """An accessor's data as a numpy array (pygltflib gives the JSON; the binary layout is the spec's)."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}[
        acc.componentType]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    itemsize = np.dtype(dtype).itemsize * width
    stride = view.byteStride or itemsize
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    raw = np.frombuffer(blob, dtype=np.uint8, count=stride * (acc.count - 1) + itemsize, offset=start)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(acc.count, itemsize), strides=(stride, 1))
    data = np.ascontiguousarray(rows).view(dtype).reshape(acc.count, width)
    if acc.normalized and dtype != np.float32:
        data = data.astype(np.float64) / np.iinfo(dtype).max
    return data


def validate_gltf(gltf, blob: bytes) -> None:
    """Khronos glTF validator rules we can apply with pygltflib: references in range, POSITION min/max present and
    bounding the data, one inverse bind matrix per joint, joint indices in range, weights normalised
    (ACCESSOR_JOINTS_*, ACCESSOR_WEIGHTS_NON_NORMALIZED), animation inputs increasing."""
    n_nodes = len(gltf.nodes)
    for node in gltf.nodes:
        assert all(0 <= c < n_nodes for c in node.children or [])
    for skin in gltf.skins:
        assert all(0 <= j < n_nodes for j in skin.joints)
        assert gltf.accessors[skin.inverseBindMatrices].count == len(skin.joints)
    for mesh in gltf.meshes:
        for prim in mesh.primitives:
            pos_acc = gltf.accessors[prim.attributes.POSITION]
            assert pos_acc.min is not None and pos_acc.max is not None
            pos = _accessor(gltf, prim.attributes.POSITION, blob)
            assert np.all(pos.min(0) >= np.array(pos_acc.min) - 1e-6)
            assert np.all(pos.max(0) <= np.array(pos_acc.max) + 1e-6)
    for anim in gltf.animations:
        for sampler in anim.samplers:
            t = _accessor(gltf, sampler.input, blob)[:, 0]
            assert np.all(np.diff(t) > 0)
        assert all(0 <= ch.target.node < n_nodes for ch in anim.channels)


@pytest.mark.parametrize(("preset", "names", "suffix"), [("unreal", "unreal", ".glb"), ("godot", "smplx", ".glb"),
                                                         ("web", "mixamo", ".gltf")])
def test_gltf_read_by_pygltflib(avatar, tmp_path, preset, names, suffix):
    pygltflib = pytest.importorskip("pygltflib")
    before, arm_name = read_weights(avatar.mesh), avatar.armature.name
    expected = expected_joints_y_up(avatar.armature)
    out = export_gltf(avatar.armature, tmp_path / f"{preset}{suffix}", preset, names)
    avatar_unchanged(avatar, before, arm_name)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("walk")) == (
        [f"{preset}.glb"] if suffix == ".glb" else ["texture.jpg", f"{preset}.bin", f"{preset}.gltf"])
    gltf = pygltflib.GLTF2().load(str(out))
    if suffix == ".glb":
        blob = gltf.binary_blob()
    else:
        blob = (tmp_path / gltf.buffers[0].uri).read_bytes()
    validate_gltf(gltf, blob)
    mapping = bone_maps.bone_map(names, JOINT_NAMES)
    skin = gltf.skins[0]
    joint_names = [gltf.nodes[j].name for j in skin.joints]
    assert set(joint_names) == set(mapping.values())  # every bone, renamed, root included
    parents = parent_names(mapping)
    parent_of = {c: gltf.nodes[i].name for i, node in enumerate(gltf.nodes) for c in node.children or []}
    joint_nodes = set(skin.joints)
    for j in skin.joints:
        name = gltf.nodes[j].name
        if parents[name] is None:  # the root bone: under the armature's node (not a joint) or at the top
            assert j not in parent_of or not any(i in joint_nodes for i, n in enumerate(gltf.nodes)
                                                 if j in (n.children or [])), name
        else:
            assert parent_of[j] == parents[name], name
    # bind pose: inverse bind matrices (column-major) invert to the joints' rest transforms, metres, Y up
    ibm = _accessor(gltf, skin.inverseBindMatrices, blob).reshape(-1, 4, 4).transpose(0, 2, 1)
    inverse = {v: k for k, v in mapping.items()}
    for name, m in zip(joint_names, ibm, strict=True):
        position = np.linalg.inv(m)[:3, 3]
        assert np.abs(position - expected[inverse[name]]).max() < 1e-4, name
    rest_feet = min(expected[n][1] for n in expected)
    assert rest_feet > -1e-6  # the rest pose stands on the floor (every joint at y ≥ 0) ...
    mesh_node = next(n for n in gltf.nodes if n.mesh is not None)
    assert not mesh_node.translation or not any(mesh_node.translation)
    assert abs(gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION].min[1]) < 1e-5  # ... and the mesh
    # skin: one set of 4 influences, normalised
    prim = gltf.meshes[0].primitives[0]
    assert prim.attributes.JOINTS_0 is not None and getattr(prim.attributes, "JOINTS_1", None) is None
    weights = _accessor(gltf, prim.attributes.WEIGHTS_0, blob)
    joints = _accessor(gltf, prim.attributes.JOINTS_0, blob)
    assert weights.shape[1] == 4 and np.abs(weights.sum(1) - 1).max() < 2e-3
    assert joints.max() < len(skin.joints) and ((weights > 0).sum(1) == 4).any()
    # animation: the action's 20 frames at 30 fps (channels that never change may be written with one key)
    anim = gltf.animations[0]
    t = max((_accessor(gltf, smp.input, blob)[:, 0] for smp in anim.samplers), key=len)
    assert len(t) == FRAMES and t[-1] - t[0] == pytest.approx((FRAMES - 1) / FPS, abs=1e-4)
    # texture: embedded in the GLB, beside the .gltf
    image = gltf.images[0]
    if suffix == ".glb":
        assert image.bufferView is not None and image.mimeType == "image/png"
    else:
        assert image.uri == "texture.jpg" and (tmp_path / image.uri).stat().st_size > 100


def test_an_export_beside_the_users_own_files_keeps_them(avatar, tmp_path):
    """USD writes its textures into ``textures/``: a ``textures/`` folder of the user's beside the export was deleted
    and replaced (wave 18); now the export's files go into it and the user's stay. A folder of the user's where
    the main file goes is refused and left as it is."""
    from icon_blender.blender.export import ExportTargetError

    mine = tmp_path / "textures"
    mine.mkdir()
    (mine / "my_painting.png").write_bytes(b"keep")
    out = export_usd(avatar.armature, tmp_path / "hero.usdc", None, "smplx")
    assert out.is_file() and (mine / "my_painting.png").read_bytes() == b"keep"
    assert len(list(mine.iterdir())) >= 2  # the export's texture beside the user's file
    (tmp_path / "villain.usdc").mkdir()
    (tmp_path / "villain.usdc" / "notes.txt").write_text("keep")
    with pytest.raises(ExportTargetError, match="is a folder"):
        export_usd(avatar.armature, tmp_path / "villain.usdc", None, "smplx")
    assert (tmp_path / "villain.usdc" / "notes.txt").read_text() == "keep"
    assert not any(p.name.startswith(".villain") for p in tmp_path.iterdir())  # the staging folder is gone


@pytest.mark.parametrize(("suffix", "names"), [(".usdc", "smplx"), (".usdz", "unity")])
def test_usd_read_by_usd_core(avatar, tmp_path, suffix, names):
    pytest.importorskip("pxr")
    from pxr import Usd, UsdGeom, UsdShade, UsdSkel

    before, arm_name = read_weights(avatar.mesh), avatar.armature.name
    expected = expected_joints_y_up(avatar.armature)
    out = export_usd(avatar.armature, tmp_path / f"hero{suffix}", None, names)
    avatar_unchanged(avatar, before, arm_name)
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(1.0)
    assert stage.GetTimeCodesPerSecond() == FPS
    assert stage.GetEndTimeCode() - stage.GetStartTimeCode() == FRAMES - 1
    skeletons = [UsdSkel.Skeleton(p) for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton)]
    assert len(skeletons) == 1
    skel = skeletons[0]
    paths = [str(j) for j in skel.GetJointsAttr().Get()]
    mapping = bone_maps.bone_map(names, JOINT_NAMES)
    leaf = [p.split("/")[-1] for p in paths]
    assert set(leaf) == set(mapping.values())
    parents = parent_names(mapping)
    for p in paths:  # the joint path spells the hierarchy
        parts = p.split("/")
        assert (parts[-2] if len(parts) > 1 else None) == parents[parts[-1]], p
    # bind pose: skeleton-space bind transforms (row vectors, translation in the last row) carried to the stage's
    # world by the skeleton's transform (the exporter's axis conversion sits on a parent Xform): Y up, metres
    to_world = np.array(UsdGeom.Xformable(skel.GetPrim()).ComputeLocalToWorldTransform(Usd.TimeCode.Default()))
    inverse = {v: k for k, v in mapping.items()}
    for name, m in zip(leaf, skel.GetBindTransformsAttr().Get(), strict=True):
        position = (np.array(m) @ to_world)[3, :3]
        assert np.abs(position - expected[inverse[name]]).max() < 1e-4, name
    # skin: normalised weights (this USD preset keeps every influence)
    mesh_prim = next(p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh))
    points = UsdGeom.Mesh(mesh_prim).GetPointsAttr()  # the rest mesh, not a deformed frame, standing on y = 0
    mesh_world = np.array(UsdGeom.Xformable(mesh_prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default()))
    world = np.c_[np.array(points.Get()), np.ones(len(points.Get()))] @ mesh_world
    assert not points.GetTimeSamples() and abs(world[:, 1].min()) < 1e-5
    binding = UsdSkel.BindingAPI(mesh_prim)
    size = binding.GetJointWeightsPrimvar().GetElementSize()
    w = np.array(binding.GetJointWeightsPrimvar().Get()).reshape(-1, size)
    assert np.abs(w.sum(1) - 1).max() < 1e-4 and size > 4
    # animation on the skeleton: 20 samples
    sources = UsdSkel.BindingAPI(skel.GetPrim()).GetAnimationSourceRel().GetTargets()
    anim = UsdSkel.Animation(stage.GetPrimAtPath(sources[0]))
    assert len(anim.GetRotationsAttr().GetTimeSamples()) == FRAMES
    # texture: beside the .usdc (textures/), inside the .usdz
    shaders = [UsdShade.Shader(p) for p in stage.Traverse() if p.IsA(UsdShade.Shader)]
    files = [s.GetInput("file").Get() for s in shaders if s.GetInput("file")]
    assert files and files[0] is not None
    if suffix == ".usdz":
        with zipfile.ZipFile(out) as z:
            assert any(n.endswith((".png", ".jpg")) for n in z.namelist())
    else:
        assert (tmp_path / files[0].path).is_file() and files[0].path.startswith("./textures/")
