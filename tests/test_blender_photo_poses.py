"""An avatar made from several photos, imported (bpy, headless): each used photo's pose as a pose asset (a
one-frame action) on the one armature, each photo's camera (hidden but the first's), and flipping between them."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402
from test_blender_bundle import make_bundle, view_photo_grey  # noqa: E402
from test_blender_import import CANONICAL_OFFSET, evaluated_vertices  # noqa: E402

from icon_blender.blender.importer import import_bundle, photo_pose_names, show_photo_pose  # noqa: E402
from icon_blender.core import rig  # noqa: E402
from icon_engine.bundle import read_bundle, skin_vertices  # noqa: E402


@pytest.fixture()
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


@pytest.fixture(scope="module", params=["T", "A", "T-canonical"])
def subject_bundle(request, tmp_path_factory):
    offset = CANONICAL_OFFSET if request.param.endswith("canonical") else (0.0, 0.0, 0.0)
    return make_bundle(tmp_path_factory.mktemp("subject") / f"alice{request.param}", rest_pose=request.param[0],
                       rest_offset=offset, views=4)


def _projected(points_bl: np.ndarray, scene, cam) -> np.ndarray:
    width, height = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for p in points_bl:
        ndc = world_to_camera_view(scene, cam, Vector(p))
        out.append((ndc.x * width, (1.0 - ndc.y) * height))
    return np.array(out)


def test_each_photo_pose_is_a_pose_asset_with_its_camera(scene, subject_bundle):
    b = read_bundle(subject_bundle)
    used = [v for v in b.views if v.status == "used"]
    assert len(used) == 4 and len(b.views) == 5  # the photo without a person is listed but not imported
    n_actions, n_cameras = len(bpy.data.actions), len(bpy.data.cameras)
    res = import_bundle(subject_bundle, scene)
    arm, mesh = res.armature, res.mesh
    poses = photo_pose_names(arm)
    assert [label for label, _, _ in poses] == [v.label for v in used]
    assert len(bpy.data.actions) == n_actions + 4 and len(bpy.data.cameras) == n_cameras + 4
    # pose assets: one-frame actions marked as assets, kept in the file; the first is the photo pose itself
    assert poses[0][1] == res.action.name and arm.animation_data.action == res.action
    for _, action_name, _ in poses:
        action = bpy.data.actions[action_name]
        assert action.asset_data is not None and action.use_fake_user
        assert tuple(round(f) for f in action.frame_range) in ((1, 1), (1, 2))
    # cameras: the first is the scene's (shown), the others hidden until their pose is shown
    cams = [bpy.data.objects[c] for _, _, c in poses]
    assert cams[0] == res.camera == scene.camera and not cams[0].hide_get()
    assert all(c.hide_get() for c in cams[1:])
    # every photo's camera shows that photo as its background (the first: the bundle's photo; the others: their
    # downscaled copies, told apart by their grey level)
    for k, (cam, view) in enumerate(zip(cams, used, strict=True)):
        backgrounds = list(cam.data.background_images)
        assert cam.data.show_background_images and len(backgrounds) == 1, view.label
        img = backgrounds[0].image
        assert img.packed_file is not None and backgrounds[0].frame_method == "FIT"
        px = np.empty(img.size[0] * img.size[1] * 4, dtype=np.float32)
        img.pixels.foreach_get(px)
        grey = 90 if k == 0 else view_photo_grey(b.views.index(view))
        assert abs(float(np.median(px.reshape(-1, 4)[:, :3])) * 255 - grey) < 3, view.label
        if k:
            assert tuple(img.size) == (view.image_size[0] // 4, view.image_size[1] // 4)
    rest_pose_angles = np.asarray(b.meta["rig"].get("rest_pose_angles", np.zeros((55, 3))))
    for k, view in enumerate(used):
        show_photo_pose(arm, k, scene)
        assert arm.animation_data.action.name == poses[k][1] and scene.camera == cams[k]
        assert [c.hide_get() for c in cams] == [i != k for i in range(4)]
        assert (scene.render.resolution_x, scene.render.resolution_y) == view.image_size
        # the evaluated mesh is the rest mesh skinned into that photo's pose (bundle contract, Blender frame)
        pose = rig.pose_relative_to_rest(view.full_pose, rest_pose_angles, b.parents)
        expected = skin_vertices(b.rest_mesh.vertices, b.skin_weights, b.rest_joints, b.parents, pose, view.transl)
        got = evaluated_vertices(mesh)
        assert np.abs(got - rig.to_blender(expected)).max() < 1e-3, view.label
        # and that photo's camera sees it where the photo's own camera (K, R, t) projects it
        pts = expected[::9]
        cam = (pts @ view.R.T + view.t) @ view.K.T
        assert np.abs(_projected(rig.to_blender(pts), scene, cams[k]) - cam[:, :2] / cam[:, 2:]).max() < 0.05
    # photos differ: a wrong pose or camera would not pass the checks above for every photo
    assert np.abs(used[1].full_pose - used[2].full_pose).max() > 0.1
    with pytest.raises(ValueError, match="no pose 5"):
        show_photo_pose(arm, 4, scene)


def test_single_photo_bundle_has_no_photo_poses_and_failure_removes_them(scene, subject_bundle, tmp_path,
                                                                         monkeypatch):
    res = import_bundle(make_bundle(tmp_path / "one"), scene)
    assert photo_pose_names(res.armature) == [] and len(bpy.data.cameras) == 1
    # a failure after the pose assets were made removes them with everything else
    from icon_blender.blender import importer

    before = {k: len(getattr(bpy.data, k)) for k in ("actions", "cameras", "objects", "collections")}

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(importer, "_camera", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_bundle(subject_bundle, scene)
    assert {k: len(getattr(bpy.data, k)) for k in before} == before
