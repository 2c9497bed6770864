"""Several photos of one person → one avatar (icon_engine.subject): inputs, video frames, the joint fit, fusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icon_engine.camera import Camera
from icon_engine.errors import EngineError
from icon_engine.subject import (
    MAX_INPUTS,
    gather_inputs,
    sharpness,
)


def orbit(camera: Camera, yaw_deg: float, centre: np.ndarray) -> Camera:
    """``camera`` moved around the vertical axis through ``centre`` by ``yaw_deg`` (still looking at it)."""
    a = np.radians(yaw_deg)
    ry = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    r = camera.R @ ry.T
    c = ry @ (-camera.R.T @ camera.t - centre) + centre
    return Camera(camera.K, r, -r @ c, camera.width, camera.height)


def render_views(folder: Path, yaws: tuple[float, ...], betas: np.ndarray | None = None,
                 prefix: str = "view") -> list[Path]:
    """The sample person (shape ``betas``) photographed from several sides: PNG paths."""
    from icon_engine import sample

    scene = sample.build_scene(betas=betas)
    centre = np.array([0.0, scene.vertices[:, 1].mean(), 0.0])
    base = scene.camera
    paths = []
    for yaw in yaws:
        scene.camera = orbit(base, yaw, centre)
        path = folder / f"{prefix}_{int(yaw):+04d}.png"
        Image.fromarray(sample.render_sample(scene, occlude_face=True)).save(path)
        paths.append(path)
    return paths


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_sharpness_prefers_crisp_images() -> None:
    rng = np.random.default_rng(0)
    crisp = (rng.random((64, 64)) > 0.5).astype(float)
    from scipy.ndimage import gaussian_filter

    assert sharpness(crisp) > 5 * sharpness(gaussian_filter(crisp, 2.0))


def test_gather_inputs_expands_folders_and_takes_sharp_video_frames(tmp_path: Path) -> None:
    from scipy.ndimage import gaussian_filter

    folder = tmp_path / "shots"
    folder.mkdir()
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[20:70, 30:90] = 220
    Image.fromarray(rgb).save(folder / "b.png")
    Image.fromarray(rgb).save(folder / "a.jpg")
    (folder / "notes.txt").write_text("not an image")
    rng = np.random.default_rng(1)
    frames = []
    for i in range(30):  # a crisp frame in each third of the clip, the others blurred
        img = (rng.random((96, 128)) * 255).astype(np.float64)
        if i not in (4, 15, 26):
            img = gaussian_filter(img, 3.0)
        frames.append(np.repeat(img[..., None], 3, axis=2).astype(np.uint8))
    write_video(folder / "turn.mp4", frames)
    inputs = gather_inputs([folder], frames=3, work_dir=tmp_path / "work")
    labels = [i.label for i in inputs]
    assert labels[:2] == ["a.jpg", "b.png"] and len(labels) == 5
    video = inputs[2:]
    assert all(i.source == folder / "turn.mp4" and i.path.is_file() and i.label.startswith("turn.mp4@")
               for i in video)
    times = [float(i.label.split("@")[1][:-1]) for i in video]
    assert np.allclose(times, [0.4, 1.5, 2.6], atol=0.051)  # the crisp frames, not their blurred neighbours


def test_gather_inputs_refusals(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as err:
        gather_inputs([tmp_path / "missing.jpg"])
    assert err.value.code == "photo_missing"
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError) as err:
        gather_inputs([tmp_path / "empty"])
    assert err.value.code == "photo_missing" and "no photos or videos" in err.value.message
    with pytest.raises(EngineError) as err:
        gather_inputs([tmp_path], frames=0)
    assert err.value.code == "bad_option"
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(photo)
    with pytest.raises(EngineError) as err:
        gather_inputs([photo] * (MAX_INPUTS + 1))
    assert err.value.code == "bad_option" and str(MAX_INPUTS) in err.value.message
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(EngineError) as err:
        gather_inputs([broken])
    assert err.value.code == "bad_video"


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("views")
    paths = render_views(folder, (-35, 0, 35, 180))
    empty = folder / "empty.png"
    Image.fromarray(np.full((512, 384, 3), 200, np.uint8)).save(empty)
    return [*paths, empty]


@pytest.mark.slow
def test_joint_fit_shares_one_shape_and_skips_an_image_without_a_person(views: list[Path]) -> None:
    from icon_engine.body_model import load_body_model
    from icon_engine.fit.stature import stature_of
    from icon_engine.subject import fit_subject, repose_with_shape

    body = load_body_model()
    found, warnings, report = fit_subject(gather_inputs(views), body, quality="preview")
    assert [v.input.label for v in found] == [p.name for p in views[:4]]
    assert any(w.startswith("empty.png: skipped") for w in warnings)
    assert [e["status"] for e in report["inputs"]] == ["used"] * 4 + ["no_person"]
    betas = np.asarray(report["betas"])
    for v in found:
        assert np.allclose(v.fit.betas, betas)  # one shape for every photo
        assert np.asarray(v.fit.vertices).shape == np.asarray(v.own_fit.vertices).shape
        # the fit's body is the body model's at its parameters (the camera's world, no stale vertices)
        reposed = repose_with_shape(v.fit, body, betas)
        assert np.abs(reposed.vertices - v.fit.vertices).max() < 2e-3
        # the shared shape, reposed with the pelvis kept where the photo's own fit put it
        kept = repose_with_shape(v.own_fit, body, betas)
        assert np.allclose(kept.joints[0], v.own_fit.joints[0], atol=1e-6)
    assert abs(report["stature_m"] - stature_of(body, betas)) < 1e-9
    # the joint fit (one shape, one pose for the photos from other sides) lowers the summed objective, brings the
    # photos' body poses closer together, and still explains every photo (keypoints within 3x their own fit's
    # error, silhouettes); every photo reports both fits
    joint = report["joint_fit"]
    assert joint["loss_after"] < 0.9 * joint["loss_before"]

    def spread(poses: list[np.ndarray]) -> float:
        body_poses = np.stack([np.asarray(p).reshape(55, 3)[1:22] for p in poses])
        return float(np.linalg.norm(body_poses - body_poses.mean(axis=0), axis=2).mean())

    assert spread([v.fit.full_pose for v in found]) < 0.8 * spread([v.own_fit.full_pose for v in found])
    # the person stood still: the photos turned at least 45° from the first (+35° and the back view; the 0° view is
    # only 35° from the first) share ONE pose, and the +35° photo, 70° from the first, lets the first one move too
    assert joint["shared_pose_photos"] == 3 and joint["first_photo_refitted"]
    assert [v.fit.metrics["same_pose"] for v in found] == [True, False, True, True]
    for v in (found[2], found[3]):
        assert np.allclose(v.fit.full_pose[1:22], found[0].fit.full_pose[1:22])
    assert not np.allclose(found[0].fit.full_pose[1:22], found[0].own_fit.full_pose[1:22], atol=1e-3)
    used = [e for e in report["inputs"] if e["status"] == "used"]
    for e in used:
        assert e["keypoint_error_px"] < 3.0 * e["own_fit"]["keypoint_error_px"] + 3.0, e
        assert e["silhouette_iou"] > 0.7, e
    # the back view is fitted facing away from its camera: the global orientation turns by about 180°
    yaw = {v.input.label: v.fit.full_pose[0] for v in found}
    assert np.linalg.norm(yaw["view_+180.png"]) > 2.5 and np.linalg.norm(yaw["view_+000.png"]) < 0.6


@pytest.mark.slow
def test_subject_run_writes_one_fused_bundle(views: list[Path], tmp_path: Path) -> None:
    """Front and back photos of one person (and an image without anyone) → one rigged avatar in the first
    photo's pose, with every photo's pose and camera in bundle.json."""
    from icon_engine.bundle import read_bundle, skin_vertices
    from icon_engine.options import ReconstructOptions
    from icon_engine.rig import torn_faces
    from icon_engine.subject import reconstruct_subject

    front, back, empty = views[1], views[3], views[4]
    out = reconstruct_subject([front, back, empty], tmp_path, ReconstructOptions(quality="preview", texture_size=256),
                              bundle_name="person")
    bundle = read_bundle(out)
    subject = bundle.meta["subject"]
    assert subject["used"] == 2 and [p["status"] for p in subject["photos"]] == ["used", "used", "no_person"]
    assert any("empty.png" in w for w in bundle.meta["warnings"])
    assert bundle.meta["photo"]["name"] == front.name and bundle.meta["rig"]["stats"]["photos_fused"] == 2
    for photo in subject["photos"][:2]:
        assert np.asarray(photo["full_pose"]).shape == (55, 3) and np.asarray(photo["camera"]["K"]).shape == (3, 3)
    reposed = skin_vertices(bundle.rest_mesh.vertices, bundle.skin_weights, bundle.rest_joints, bundle.parents,
                            bundle.full_pose, bundle.transl)
    assert np.abs(reposed - bundle.posed_mesh.vertices).max() < 1e-3
    assert not torn_faces(bundle.posed_mesh.vertices, bundle.rest_mesh.vertices, bundle.posed_mesh.faces).any()
    assert bundle.meta["rig"]["stats"]["posed_silhouette_iou"] > 0.9
    # the texture comes from both photos (each sees part of the avatar), the back photo's exposure near the front's
    texture = subject["texture"]
    assert texture["photos"] == 2 and all(f > 0.1 for f in texture["seen_vertex_fraction_per_photo"])
    assert np.all(np.abs(np.asarray(texture["exposure_gain_offset"])[1, 0] - 1.0) < 0.2)
    assert subject["joint_fit"]["loss_after"] < subject["joint_fit"]["loss_before"]
    # front and back, half a turn apart: one pose seen by two cameras held 180° apart at one height (the rig)
    joint = subject["joint_fit"]
    assert joint["quarter_turns"] and joint["shared_pose_photos"] == 2 and joint["first_photo_refitted"], joint
    assert not joint["first_photo_reregistered"], joint  # front + back: the first photo keeps the rig's orientation
    assert abs(abs(joint["shared_gravity"]["yaw_deg"][1]) - 180.0) < 1e-3 and joint["shared_gravity"][
        "height_spread_cm"] < 0.01, joint
    assert all(p["same_pose"] for p in subject["photos"][:2])
    for photo in subject["photos"][:2]:
        assert photo["silhouette_iou"] > 0.6 and photo["own_fit"]["silhouette_iou"] > 0.6
    # the back photo travels in the bundle (downscaled JPEG) for its camera's background in Blender
    assert bundle.views[0].image == bundle.file("photo") and bundle.views[2].image is None
    with Image.open(bundle.views[1].image) as img:
        assert img.format == "JPEG" and max(img.size) <= 1024 and img.size[0] / img.size[1] == pytest.approx(
            bundle.views[1].image_size[0] / bundle.views[1].image_size[1], rel=0.02)


def test_pose_agreement_pulls_poses_together_and_bounds_a_different_pose() -> None:
    import torch

    from icon_engine.joint_fit import AGREE_SIGMA_RAD, pose_agreement_loss

    same = torch.zeros(3, 21, 3)
    assert float(pose_agreement_loss(same)) == 0.0
    near = same.clone()
    near[1, 15, 2] = 0.1  # one photo's elbow slightly bent: a small pull
    far = same.clone()
    far[1, 15, 2] = 2.0  # another pose: bounded, about one joint's worth
    assert 0.0 < float(pose_agreement_loss(near)) < float(pose_agreement_loss(far)) <= 1.0
    far2 = same.clone()
    far2[1, 15, 2] = 4.0
    assert float(pose_agreement_loss(far2)) - float(pose_agreement_loss(far)) < 0.1  # saturates
    p = near.clone().requires_grad_(True)
    pose_agreement_loss(p).backward()
    assert p.grad[1, 15, 2] > 0 and p.grad[0, 15, 2] < 0  # towards each other
    assert AGREE_SIGMA_RAD > 0


def test_gather_inputs_makes_no_temporary_folder_without_a_video(tmp_path: Path, monkeypatch) -> None:
    """Photos alone need no work folder: gather_inputs must not leave an empty temporary folder behind."""
    import tempfile

    made: list[str] = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    inputs = gather_inputs([tmp_path / "a.png", tmp_path / "b.png"])
    assert [i.label for i in inputs] == ["a.png", "b.png"] and made == []


def test_a_refused_video_leaves_no_temporary_folder(tmp_path: Path, monkeypatch) -> None:
    """A video that cannot be decoded is refused, and the temporary folder gather_inputs made for its frames goes
    with it (nothing half-written)."""
    import tempfile

    made: list[str] = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(EngineError) as err:
        gather_inputs([broken])
    assert err.value.code == "bad_video"
    assert len(made) == 1 and not Path(made[0]).exists()
