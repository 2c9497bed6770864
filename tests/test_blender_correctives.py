"""Pose correctives in Blender (bpy, headless): shape keys driven by the bones reproduce the bundle's corrected
poses for every photo; the driver maths against the bundle's; FBX and glTF exports carry them (ufbx, pygltflib)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from test_blender_bundle import make_bundle  # noqa: E402
from test_blender_import import evaluated_vertices  # noqa: E402

from icon_blender.blender.export import export_fbx, export_gltf  # noqa: E402
from icon_blender.blender.importer import import_bundle, show_photo_pose  # noqa: E402
from icon_blender.core import correctives as corr_core  # noqa: E402
from icon_blender.core import rig  # noqa: E402
from icon_engine.bundle import PARENTS, read_bundle, skin_vertices  # noqa: E402
from icon_engine.bundle.correctives import pose_features  # noqa: E402
from icon_engine.geometry.rotations import axis_angle_to_matrix, matrix_to_quaternion  # noqa: E402


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


@pytest.fixture(scope="module", params=["T", "A"])
def corrected(request, tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("corr") / f"bo{request.param}", rest_pose=request.param, views=4,
                       correctives=True)


def _eval(expression: str, q: np.ndarray) -> float:
    w, x, y, z = (float(v) for v in q)
    return float(eval(expression, {"__builtins__": {}}, {"w": w, "x": x, "y": y, "z": z}))  # noqa: S307


def test_driver_expression_equals_the_bundle_key_value():
    rng = np.random.default_rng(4)
    for _ in range(20):
        bone_rest = axis_angle_to_matrix(rng.normal(size=3))
        c = rng.normal(size=9)
        q_pose = axis_angle_to_matrix(rng.normal(scale=0.8, size=3))  # the joint's rotation, SMPL-X axes
        s = rig.Y_UP_TO_Z_UP.T @ bone_rest
        m = s.T @ q_pose @ s  # what the importer gives the pose bone (rig.pose_bone_quaternions)
        expr = corr_core.driver_expression(corr_core.bone_coefficients(c, bone_rest))
        want = float(c @ (q_pose - np.eye(3)).ravel())
        assert _eval(expr, matrix_to_quaternion(m)) == pytest.approx(want, abs=1e-5)
    assert corr_core.driver_expression(np.zeros(9)) == "0"


def test_shape_keys_driven_by_bones_reproduce_every_photo_pose(scene, corrected):
    b = read_bundle(corrected)
    assert b.meta["format_version"] == 3 and b.correctives is not None and b.correctives.count == 3
    res = import_bundle(corrected, scene)
    keys = res.mesh.data.shape_keys.key_blocks
    assert [k.name for k in keys] == ["Basis", "corrective left_elbow 1", "corrective right_elbow 2",
                                      "corrective left_knee 3"]
    drivers = res.mesh.data.shape_keys.animation_data.drivers
    assert len(drivers) == 3 and all(d.driver.is_simple_expression for d in drivers)
    angles = np.asarray(b.meta["rig"].get("rest_pose_angles", np.zeros((55, 3))))
    scene.frame_set(1)
    assert np.abs(evaluated_vertices(res.mesh) - rig.to_blender(b.posed_mesh.vertices)).max() < 1e-3
    moved = 0.0
    for k, view in enumerate(v for v in b.views if v.status == "used"):
        show_photo_pose(res.armature, k, scene)
        pose = rig.pose_relative_to_rest(view.full_pose, angles, b.parents)
        corrected_rest = b.rest_mesh.vertices + b.correctives.displacement(pose)
        expected = skin_vertices(corrected_rest, b.skin_weights, b.rest_joints, np.array(PARENTS), pose, view.transl)
        plain = skin_vertices(b.rest_mesh.vertices, b.skin_weights, b.rest_joints, np.array(PARENTS), pose,
                              view.transl)
        got = evaluated_vertices(res.mesh)
        assert np.abs(got - rig.to_blender(expected)).max() < 1e-3, view.label
        moved = max(moved, float(np.abs(expected - plain).max()))
        values = [keys[i + 1].value for i in range(3)]
        assert np.allclose(values, b.correctives.key_values(pose), atol=1e-4)
    assert moved > 0.005  # the correctives move vertices by more than the tolerance: the check above can fail
    # rest pose: the keys vanish (features are zero at the rest pose)
    res.armature.data.pose_position = "REST"
    bpy.context.view_layer.update()
    rest_bl = rig.to_blender(b.rest_mesh.vertices + rig.floor_offset(b.rest_mesh.vertices, b.rest_joints))
    assert np.abs(evaluated_vertices(res.mesh) - rest_bl).max() < 1e-4
    assert np.allclose(pose_features(np.zeros((55, 3))), 0.0)


FBX_SHAPES = textwrap.dedent("""
    import gc, json, os, sys
    import ufbx
    gc.disable()  # ufbx's bindings can crash when the collector visits them
    scene = ufbx.load_file(sys.argv[1])
    layer = scene.anim_stacks[0].layers[0]
    channels, animated = [], []
    for c in scene.blend_channels:
        channels.append(c.name)
        if layer.find_anim_prop(c, "DeformPercent") is not None:
            animated.append(c.name)
    shapes = [len(s.offset_vertices) for s in scene.blend_shapes]
    print(json.dumps({"channels": channels, "animated": sorted(animated), "shapes": shapes}), flush=True)
    os._exit(0)  # and in their own teardown
""")


def test_exports_carry_the_correctives(scene, corrected, tmp_path):
    pytest.importorskip("ufbx")
    pygltflib = pytest.importorskip("pygltflib")
    res = import_bundle(corrected, scene)
    scene.frame_start, scene.frame_end = 1, 4
    fbx = export_fbx(res.armature, tmp_path / "bo.fbx", "unity")
    proc = subprocess.run([sys.executable, "-c", FBX_SHAPES, str(fbx)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    facts = json.loads(proc.stdout)
    assert len(facts["channels"]) == 3 and all("corrective" in c for c in facts["channels"])
    assert len(facts["shapes"]) == 3 and min(facts["shapes"]) > 0
    assert facts["animated"] == sorted(facts["channels"])  # the driven values are baked per frame
    glb = export_gltf(res.armature, tmp_path / "bo.glb", "godot")
    gltf = pygltflib.GLTF2().load(str(glb))
    mesh = next(m for m in gltf.meshes if m.primitives[0].targets)
    assert len(mesh.primitives[0].targets) == 3
    assert mesh.extras and len(mesh.extras.get("targetNames", [])) == 3
    node = next(i for i, n in enumerate(gltf.nodes) if n.mesh == gltf.meshes.index(mesh))
    weights = [c for a in gltf.animations for c in a.channels if c.target.path == "weights"]
    assert [c.target.node for c in weights] == [node]  # the driven values are sampled per frame
