"""Body fit (icon_engine.fit): real open body, real renderer, real optimisation on small budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.lib.fit_cases import (
    camera_for_body,
    compose,
    facing_camera,
    joint_errors,
    make_case,
    named_pose,
    pose_body,
)
from icon_engine.bundle.skeleton import axis_angle_to_matrix
from icon_engine.camera import (
    FRONT_VIEW_R,
    PRIOR_FOCAL_35MM,
    default_intrinsics,
    focal_px_to_35mm,
    prior_focal_px,
)
from icon_engine.errors import Cancelled, EngineError
from icon_engine.fit import QUALITY_PRESETS, BodyFit, fit_body
from icon_engine.fit.fastbody import FastBody
from icon_engine.fit.init import initial_pose, solve_translation
from icon_engine.geometry.image_shift import mask_iou as iou
from icon_engine.progress import CancelToken, ProgressReporter
from icon_engine.render import render_mask


@pytest.fixture(scope="module")
def body():
    from icon_engine.body_model import load_body_model

    return load_body_model()


def _case(body, pose_name: str, yaw: float, pitch: float = 5.0, betas_seed: int = 3, global_orient=None,
          size=(384, 480)):
    pose = named_pose(pose_name)
    if global_orient is not None:
        pose[0] = global_orient
    betas = np.random.default_rng(betas_seed).normal(0.0, 0.7, 10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    cam = camera_for_body(verts, yaw, pitch, size[0], size[1], fill=0.85)
    return make_case(body, pose, betas, cam, world_noise=0.02, seed=betas_seed)


@pytest.fixture(scope="module")
def walking_fit(body):
    case = _case(body, "walking", yaw=25.0)
    return case, fit_body(case.observation, body, case.photo, quality="preview")


def test_fast_body_matches_the_body_model(body):
    """The fit's shape-linear skinned copy reproduces the model's joints, keypoints and vertices."""
    rng = np.random.default_rng(0)
    fb = FastBody(body, np.arange(0, body.num_vertices, 7))
    pose = np.zeros((55, 3))
    pose[:22] = rng.normal(0.0, 0.5, (22, 3))
    betas = rng.normal(0.0, 1.0, 10)
    out, _, _ = pose_body(body, pose, betas)
    got = fb.forward(torch.tensor(betas, dtype=torch.float32), torch.tensor(pose, dtype=torch.float32),
                     torch.zeros(3))
    assert torch.allclose(got["joints"], out.joints[0], atol=1e-4)
    assert torch.allclose(got["keypoints"], out.keypoints[0], atol=1e-4)
    assert torch.allclose(got["vertices"], out.vertices[0, fb.subset], atol=1e-4)


def test_initial_pose_from_exact_world_landmarks_faces_the_right_way(body):
    """From noise-free 3D landmarks the initial global orientation matches the body's facing and limb directions."""
    case = _case(body, "walking", yaw=150.0)
    init = initial_pose(case.observation.world_landmarks, body.rest_joints()[0].numpy())
    go_true = case.camera.R @ axis_angle_to_matrix(case.full_pose[0])
    go_init = FRONT_VIEW_R @ axis_angle_to_matrix(init[0])
    fwd_true, fwd_init = go_true @ [0, 0, 1.0], go_init @ [0, 0, 1.0]
    assert fwd_true @ fwd_init > 0.85  # within ~30° (hips tilt the BlazePose torso frame a little)
    assert facing_camera(init, _front_camera(case)) == facing_camera(case.full_pose, case.camera)


def _front_camera(case):
    from icon_engine.camera import Camera

    return Camera(case.camera.K, FRONT_VIEW_R, np.zeros(3), case.camera.width, case.camera.height)


def test_solve_translation_recovers_a_known_offset():
    rng = np.random.default_rng(1)
    pts = rng.normal(0.0, 0.4, (20, 3))
    K = default_intrinsics(400, 600)
    transl = np.array([0.2, -0.1, -3.0])  # world −Z is in front of the default camera
    cam = (pts + transl) @ FRONT_VIEW_R.T
    px = cam[:, :2] / cam[:, 2:] * K[0, 0] + K[:2, 2]
    np.testing.assert_allclose(solve_translation(pts, px, np.ones(20), K), transl, atol=1e-6)


def test_fit_recovers_a_known_pose(walking_fit):
    """A real (small-budget) optimisation recovers the rendered body's pose: PA-MPJPE and 2D error small."""
    case, fit = walking_fit
    err = joint_errors(fit.joints, fit.camera, case.joints, case.camera)
    assert err["pa_mpjpe_mm"] < 45.0, err
    assert err["mpjpe_mm"] < 80.0, err
    assert fit.metrics["keypoint_error_px"] < 6.0
    # the bent knees stay bent the right way
    for knee in (4, 5):
        assert fit.full_pose[knee, 0] > 0.1


def test_fit_result_follows_the_contract(walking_fit, body):
    _, fit = walking_fit
    assert isinstance(fit, BodyFit)
    assert fit.full_pose.shape == (55, 3) and fit.transl.shape == (3,) and fit.joints.shape == (55, 3)
    assert fit.vertices.shape == (body.num_vertices, 3) and fit.faces.shape == tuple(np.asarray(body.faces).shape)
    assert fit.betas.shape == (body.num_betas,) and fit.expression.shape == (body.num_expression,)
    # normalised world: feet on y = 0, pelvis above the origin
    assert abs(fit.vertices[:, 1].min()) < 1e-6
    assert np.allclose(fit.joints[0, [0, 2]], 0.0, atol=1e-6)
    # the stored pose, shape and transl rebuild the stored body
    out, _, _ = pose_body(body, fit.full_pose, fit.betas)
    np.testing.assert_allclose(out.vertices[0].numpy() + fit.transl, fit.vertices, atol=2e-4)
    # without EXIF a full-length photo takes the framing prior's focal length (camera.framing_map), here nearer
    # the true one (40° field of view) than the 55 mm-equivalent photo prior
    case, _ = walking_fit
    w, h = fit.camera.width, fit.camera.height
    assert fit.metrics["focal_source"] == "framing prior"
    assert fit.metrics["focal_px"] == pytest.approx(fit.camera.K[0, 0], abs=0.01)
    true_f = case.camera.K[0, 0]
    assert abs(fit.camera.K[0, 0] / true_f - 1) < abs(prior_focal_px(w, h) / true_f - 1)
    assert focal_px_to_35mm(prior_focal_px(w, h), w, h) == pytest.approx(PRIOR_FOCAL_35MM)


def test_standing_camera_pitch_from_the_camera_height_prior(walking_fit):
    """The walker is photographed looking 5° down from about chest height: with the camera-height and upright
    priors the fitted camera's pitch is within 2° of the truth (13° from the body's apparent lean alone)."""
    case, fit = walking_fit
    assert fit.metrics["standing"]
    assert abs(fit.metrics["camera_pitch_deg"] - 5.0) < 2.0


def test_camera_reprojects_the_body_onto_the_mask(walking_fit):
    """Rendering the fitted body through the fitted camera (the real renderer) overlays the person's mask."""
    case, fit = walking_fit
    cam = fit.camera
    rendered = render_mask(cam.to_camera(fit.vertices), fit.faces, cam.K, cam.width, cam.height)
    assert iou(rendered, case.observation.mask) > 0.85
    assert fit.metrics["silhouette_iou"] == pytest.approx(iou(rendered, case.observation.mask), abs=1e-3)
    # the mask is where the body projects: pixels far from every projected vertex are background
    px = cam.project(fit.vertices)[0]
    assert ((px >= 0) & (px < [cam.width, cam.height])).all()


@pytest.mark.parametrize("yaw, facing", [(180.0, False), (0.0, True)])
def test_facing_away_and_towards(body, yaw, facing):
    case = _case(body, "standing", yaw=yaw, betas_seed=5)
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    assert facing_camera(case.full_pose, case.camera) is facing
    assert fit.metrics["faces_camera"] is facing
    assert facing_camera(fit.full_pose, fit.camera) is facing
    assert fit.metrics["silhouette_iou"] > 0.8


def test_lying_down_does_not_crash_and_faces_the_camera(body):
    """A body lying on its back, seen from above at an angle, comes out lying and facing the camera."""
    case = _case(body, "standing", yaw=0.0, pitch=55.0, betas_seed=8, global_orient=(-np.pi / 2, 0.0, 0.0),
                 size=(480, 384))
    assert facing_camera(case.full_pose, case.camera)
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    assert facing_camera(fit.full_pose, fit.camera)
    assert np.isfinite(fit.vertices).all()
    assert fit.metrics["silhouette_iou"] > 0.75
    # the body's long axis lies along the camera's view of the ground, not upright in the image
    err = joint_errors(fit.joints, fit.camera, case.joints, case.camera)
    assert err["pa_mpjpe_mm"] < 80.0, err


def test_upside_down_body_is_not_standing(body):
    """A body upside down (a handstand, a flip) has both feet at one height but is not standing: the floor,
    camera-height and upright priors stay off and the fit keeps it upside down."""
    case = _case(body, "standing", yaw=0.0, global_orient=(np.pi, 0.0, 0.0))
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    assert not fit.metrics["standing"]
    up = axis_angle_to_matrix(fit.full_pose[0]) @ [0.0, 1.0, 0.0]
    assert up[1] < -0.8
    assert fit.metrics["silhouette_iou"] > 0.75


def test_progress_is_reported_and_cancel_stops_the_fit(body):
    case = _case(body, "t_pose", yaw=0.0)
    events = []
    reporter = ProgressReporter("t", callback=events.append)
    reporter.stage("fit")
    fit_body(case.observation, body, case.photo, quality="preview", progress=reporter)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 5
    token = CancelToken()
    token.cancel()
    cancelled = ProgressReporter("t", callback=None, cancel=token)
    cancelled._stage = "fit"
    with pytest.raises(Cancelled):
        fit_body(case.observation, body, case.photo, quality="preview", progress=cancelled)


def test_refusals(body):
    case = _case(body, "t_pose", yaw=0.0)
    with pytest.raises(EngineError) as err:
        fit_body(case.observation, body, case.photo, quality="ultra")
    assert err.value.code == "bad_option" and "preview" in err.value.hint
    obs = case.observation
    obs.keypoints = obs.keypoints.copy()
    obs.keypoints[:, 2] = 0.0  # nothing visible
    with pytest.raises(EngineError) as err:
        fit_body(obs, body, case.photo)
    assert err.value.code == "no_person"
    assert set(QUALITY_PRESETS) == {"preview", "standard", "high"}


def test_pose_library_is_what_it_says(body):
    """The synthetic poses used by the tests and the benchmark bend knees/elbows the natural way."""
    for name in ("sitting", "squat", "crossed_arms"):
        pose = named_pose(name)
        assert pose[4, 0] >= 0 and pose[5, 0] >= 0
        assert pose[18, 1] <= 0 and pose[19, 1] >= 0
    arms_up = pose_body(body, named_pose("arms_raised"), np.zeros(10))[0].joints[0].numpy()
    assert arms_up[20, 1] > arms_up[15, 1] and arms_up[21, 1] > arms_up[15, 1]  # wrists above the head
    np.testing.assert_allclose(compose((0.0, 0.0, 0.3), (0.0, 0.0, 0.2)), (0.0, 0.0, 0.5), atol=1e-9)


@pytest.mark.photos
def test_real_photos_overlay_the_person(body, shared_photos):
    """Two real photos: detection + fit give a body that overlays the person's mask."""
    from icon_engine.image_io import load_photo
    from icon_engine.person import detect_person

    picks = [p for p in shared_photos if p.name.startswith(("icon_003883", "icon_slack"))] or shared_photos[:2]
    for path in picks[:2]:
        photo = load_photo(path)
        obs = detect_person(photo)
        fit = fit_body(obs, body, photo, quality="preview")
        cam = fit.camera
        rendered = render_mask(cam.to_camera(fit.vertices), fit.faces, cam.K, cam.width, cam.height)
        assert iou(rendered, obs.mask) > 0.6, path.name
        # the body's landmarks land near the detected ones (px, relative to the person's size)
        size = max(obs.bbox[2] - obs.bbox[0], obs.bbox[3] - obs.bbox[1])
        assert fit.metrics["keypoint_error_px"] < 0.05 * size, path.name


def test_photo_from_above_gives_an_upright_body_and_a_tilted_camera(body):
    """A standing person seen from 25° above: the fitted body stands upright; the camera, not the body, tilts."""
    case = _case(body, "standing", yaw=10.0, pitch=25.0, betas_seed=11)
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    up = axis_angle_to_matrix(fit.full_pose[0]) @ [0.0, 1.0, 0.0]
    assert up[1] > np.cos(np.radians(8.0))
    view_dir = fit.camera.R.T @ [0.0, 0.0, 1.0]  # optical axis in the world
    assert np.degrees(np.arcsin(-view_dir[1])) == pytest.approx(25.0, abs=8.0)  # looks down about 25°
    assert fit.metrics["camera_pitch_deg"] != 0.0
    cam = fit.camera
    rendered = render_mask(cam.to_camera(fit.vertices), fit.faces, cam.K, cam.width, cam.height)
    assert iou(rendered, case.observation.mask) > 0.85
    out, _, _ = pose_body(body, fit.full_pose, fit.betas)
    np.testing.assert_allclose(out.vertices[0].numpy() + fit.transl, fit.vertices, atol=2e-4)


def test_slightly_bent_blazepose_knees_count_as_straight():
    """BlazePose's 3D reports standing legs 18–30° bent; below 35° the fit starts them straight, real bends stay."""
    from icon_engine.fit.init import straighten_knees
    from icon_engine.fit.landmarks import BP

    world = np.zeros((33, 3))
    for side, x, bend in (("left", 0.1, 20.0), ("right", -0.1, 60.0)):
        world[BP[f"{side}_hip"]] = (x, 0.0, 0.0)
        world[BP[f"{side}_knee"]] = (x, 0.45, 0.0)
        a = np.radians(bend)
        world[BP[f"{side}_ankle"]] = (x, 0.45 + 0.4 * np.cos(a), 0.4 * np.sin(a))
    out = straighten_knees(world)
    np.testing.assert_allclose(out[BP["left_ankle"]], (0.1, 0.85, 0.0), atol=1e-9)
    np.testing.assert_allclose(out[BP["right_ankle"]], world[BP["right_ankle"]])


# -- fingers (icon_engine.fit.hands) ---------------------------------------------------------------------------

def _hand_case(body, width: int = 320, height: int = 320):
    """A T-posed body 1.6 m in front of the fit's own camera, palms turned towards it, left fingers curled by a
    known amount; its hand landmarks are the projected finger joints and fingertips (MediaPipe order)."""
    from icon_engine.camera import Camera
    from icon_engine.fit.hands import HandBasis, hand_model_indices

    pose = named_pose("t_pose")
    pose[20] = (-0.9, 0.0, 0.0)  # left wrist: palm turned down-forward
    pose[21] = (-0.9, 0.0, 0.0)
    names = list(body.keypoint_names)
    with torch.no_grad():
        rest = body(betas=torch.zeros(1, 10))
    basis = HandBasis("left", rest.joints[0].double().numpy(), rest.keypoints[0].double().numpy(), names)
    flex = torch.tensor([0.3, 0.5, 0.3, 0.4, 0.6, 0.3, 0.5, 0.7, 0.4, 0.6, 0.8, 0.4])
    spread = torch.tensor([0.1, 0.0, -0.1, -0.2])
    thumb = torch.tensor([[0.0, 0.0, 0.2], [0.0, 0.0, 0.3], [0.0, 0.0, 0.2]])
    pose[25:40] = basis.pose(flex, spread, thumb).double().numpy()
    betas = np.zeros(10)
    cam = Camera(default_intrinsics(width, height), FRONT_VIEW_R.copy(), np.zeros(3), width, height)
    out, _, _ = pose_body(body, pose, betas)
    shift = np.array([-0.55, -0.45, -0.6])  # left hand near the image centre, 0.6 m from the camera
    case = make_case(body, pose, betas, Camera(cam.K, cam.R, cam.R @ shift, width, height))
    index, is_kp = hand_model_indices("left", names)
    kps, joints = out.keypoints[0].double().numpy(), out.joints[0].double().numpy()
    pts = np.where(is_kp[:, None] == 1, kps[index.clip(max=len(kps) - 1)], joints[index]) + shift
    px, _ = cam.project(pts)
    return case, pose, shift, np.column_stack([px, np.full(21, 0.9)])


def test_finger_fit_recovers_curled_fingers(body):
    """With the body at its true pose but the wrist off, the hand step turns the wrist back, recovers a known curl
    of the left hand from its projected landmarks, lowers the 2D hand error, and leaves the unobserved right hand
    flat (and its wrist untouched)."""
    from icon_engine.fit.core import QUALITY_PRESETS, _Problem
    from icon_engine.fit.hands import fit_hands

    case, pose, shift, hand = _hand_case(body)
    prob = _Problem(case.observation, body, 320, 320, QUALITY_PRESETS["preview"], "cpu",
                    focal_px=float(case.camera.K[0, 0]))
    p = {"betas": torch.zeros(10), "global_orient": torch.zeros(3),
         "body_pose": torch.tensor(pose[1:22], dtype=torch.float32), "transl": torch.tensor(shift, dtype=torch.float32)}
    p["body_pose"][19, 0] = -0.6  # the body fit's left wrist is 0.3 rad off: the palm step turns it back
    metrics = fit_hands(prob, p, {"left": hand})
    assert set(metrics) == {"left"}
    assert abs(float(p["body_pose"][19, 0]) + 0.9) < 0.15
    assert metrics["left"]["after_px"] < 0.3 * metrics["left"]["before_px"]
    assert metrics["left"]["after_px"] < 1.5
    got = p["left_hand_pose"].double().numpy()
    truth = pose[25:40]
    fingers = np.r_[0:12]  # index, middle, pinky, ring (the thumb is loosely constrained in 2D)
    curl_true = np.linalg.norm(truth[fingers], axis=1).sum()
    curl_got = np.linalg.norm(got[fingers], axis=1).sum()
    assert abs(curl_got - curl_true) < 0.25 * curl_true
    err = np.linalg.norm(got[fingers] - truth[fingers], axis=1)
    assert np.median(err) < 0.3
    assert np.abs(p["right_hand_pose"].numpy()).max() == 0.0
    assert np.allclose(p["body_pose"][20].numpy(), pose[21])


def test_fit_body_without_hands_leaves_hands_flat(walking_fit):
    _, fit = walking_fit
    assert np.abs(fit.full_pose[25:55]).max() == 0.0
    assert fit.metrics["hand_keypoint_error_px"] == {}


def test_loose_clothing_mask_is_an_upper_bound_for_the_body(body):
    """Under loose clothes (the mask dilated by 15 cm below the neck) the fitted body keeps its true width: its
    silhouette stays close to the naked body's instead of swelling to cover the clothes (the old objective, which
    pulled the body to cover the whole mask, gave 10 % more area and IoU 0.90 against the naked body)."""
    import cv2

    pose = named_pose("standing")
    betas = np.random.default_rng(3).normal(0.0, 0.7, 10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    cam = camera_for_body(verts, 0.0, 5.0, 384, 480, fill=0.85)
    case = make_case(body, pose, betas, cam, world_noise=0.02, seed=3)
    naked = case.observation.mask.copy()
    r = int(round(cam.K[0, 0] * 0.15 / abs(cam.to_camera(verts)[:, 2].mean())))  # 15 cm of cloth, in px
    dilated = cv2.dilate(naked.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0
    neck_row = int(cam.project(case.joints[12:13])[0][0, 1])
    case.observation.mask[neck_row:] = dilated[neck_row:]
    assert case.observation.mask.sum() > 1.8 * naked.sum()  # the clothes are really loose
    fit = fit_body(case.observation, body, case.photo, quality="standard")
    c = fit.camera
    sil = render_mask(c.to_camera(fit.vertices), fit.faces, c.K, c.width, c.height)
    assert sil.sum() < 1.05 * naked.sum()
    assert iou(sil, naked) > 0.93


# -- scale: known height, focal length from EXIF (issue 15) ----------------------------------------------------


def test_stature_model_matches_the_body_and_projects_exactly(body):
    """The fit's stature is the rest body's vertical extent; projecting betas onto a height hits it exactly."""
    from icon_engine.fit.stature import StatureModel, stature_of

    sm = StatureModel.from_body_model(body)
    rng = np.random.default_rng(4)
    for _ in range(3):
        b = torch.tensor(rng.normal(0.0, 1.2, body.num_betas), dtype=torch.float32)
        assert float(sm(b)) == pytest.approx(stature_of(body, b.numpy()), abs=1e-4)
        for h in (1.55, 1.90):
            projected = sm.project(b, h)
            assert stature_of(body, projected.numpy()) == pytest.approx(h, abs=1e-3)
            # nearest such shape: only the part along the stature gradient changed
            g = sm.gradient(projected)
            delta = projected - b
            assert float(torch.linalg.norm(delta - g * (delta @ g) / (g @ g))) < 0.05 * float(delta.norm()) + 1e-4


def test_height_and_exif_focal_make_the_scale_exact(body):
    """A person of known stature shot with a long lens (1.3× the default focal, camera 1.3× farther): given the
    height and the EXIF focal, the fitted body has that stature and stands at the true distance."""
    from icon_engine.camera import Camera, focal_px_to_35mm, intrinsics_from_focal
    from icon_engine.fit.stature import stature_of

    pose = named_pose("standing")
    betas = np.random.default_rng(21).normal(0.0, 0.8, 10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    cam = camera_for_body(verts, 15.0, 5.0, 384, 480, fill=0.85)
    focal = 1.3 * cam.K[0, 0]
    depth = float(cam.to_camera(verts.mean(0, keepdims=True))[0, 2])
    cam = Camera(intrinsics_from_focal(384, 480, focal), cam.R, cam.t + [0.0, 0.0, 0.3 * depth], 384, 480)
    case = make_case(body, pose, betas, cam, world_noise=0.02, seed=21)
    case.photo.focal_35mm = focal_px_to_35mm(focal, 384, 480)  # what load_photo reads from EXIF
    stature = stature_of(body, betas)
    fit = fit_body(case.observation, body, case.photo, quality="preview", height_m=stature)
    assert fit.metrics["stature_m"] == pytest.approx(stature, abs=2e-3)
    assert stature_of(body, fit.betas) == pytest.approx(stature, abs=2e-3)
    assert fit.metrics["stature_source"] == "height option"
    assert fit.metrics["focal_source"] == "exif"
    assert fit.metrics["focal_px"] == pytest.approx(focal, abs=0.01)
    true_depth = cam.to_camera(case.vertices)[:, 2].mean()
    fit_depth = fit.camera.to_camera(fit.vertices)[:, 2].mean()
    assert fit_depth == pytest.approx(true_depth, rel=0.03)
    # without a height the stature comes from the shape under the prior and is said so
    free = fit_body(case.observation, body, case.photo, quality="preview")
    assert free.metrics["stature_source"] == "estimated from the body shape"
    assert 1.45 < free.metrics["stature_m"] < 2.0


def _jpeg_with_exif(path, tags: dict[int, object], size=(120, 160)) -> None:
    from PIL import Image

    img = Image.new("RGB", size, (90, 120, 150))
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd.update(tags)
    img.save(path, exif=exif.tobytes())


def test_exif_focal_length_is_read(tmp_path):
    """FocalLengthIn35mmFilm is read as is; else FocalLength × the crop factor from the focal-plane resolution;
    no EXIF, a zero or an absurd value give None."""
    from PIL import TiffImagePlugin

    from icon_engine.camera import focal_from_35mm, focal_px_to_35mm
    from icon_engine.image_io import load_photo

    _jpeg_with_exif(tmp_path / "f35.jpg", {0xA405: 52})
    assert load_photo(tmp_path / "f35.jpg").focal_35mm == pytest.approx(52.0)
    _jpeg_with_exif(tmp_path / "f35.png", {0xA405: 85})  # PNG's eXIf chunk
    assert load_photo(tmp_path / "f35.png").focal_35mm == pytest.approx(85.0)
    # a 6.0 × 4.5 mm sensor (crop 5.77) at 4000 × 3000 px: FocalPlaneXResolution = 4000 / 6.0 px per mm
    r = TiffImagePlugin.IFDRational
    _jpeg_with_exif(tmp_path / "crop.jpg", {0x920A: r(6, 1), 0xA20E: r(4000, 6), 0xA20F: r(6000, 9),
                                            0xA210: 4, 0xA002: 4000, 0xA003: 3000})
    crop = np.hypot(36.0, 24.0) / np.hypot(6.0, 4.5)
    assert load_photo(tmp_path / "crop.jpg").focal_35mm == pytest.approx(6.0 * crop, rel=1e-3)
    _jpeg_with_exif(tmp_path / "zero.jpg", {0xA405: 0})
    _jpeg_with_exif(tmp_path / "absurd.jpg", {0xA405: 5000})
    _jpeg_with_exif(tmp_path / "none.jpg", {})
    for name in ("zero", "absurd", "none"):
        assert load_photo(tmp_path / f"{name}.jpg").focal_35mm is None, name
    # 35 mm equivalence is on the diagonal, both ways
    assert focal_px_to_35mm(focal_from_35mm(50.0, 768, 1024), 768, 1024) == pytest.approx(50.0)
    assert focal_from_35mm(50.0, 3600, 2400) == pytest.approx(5000.0)  # a 3:2 frame: 100 px per mm


def test_height_option_is_checked_and_reaches_the_options():
    from icon_engine.cli import build_parser
    from icon_engine.options import ReconstructOptions

    assert ReconstructOptions(height_m=1.8).to_json()["height_m"] == 1.8
    for bad in (175.0, 0.2, float("nan"), -1.7):
        with pytest.raises(EngineError) as err:
            ReconstructOptions(height_m=bad)
        assert err.value.code == "bad_option"
    args = build_parser().parse_args(["reconstruct", "p.jpg", "--out", "o", "--height", "1.62"])
    assert args.height == 1.62


def _knee_flexion_deg(joints: np.ndarray) -> list[float]:
    out = []
    for hip, knee, ankle in ((1, 4, 7), (2, 5, 8)):
        a, b = joints[knee] - joints[hip], joints[ankle] - joints[knee]
        out.append(float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))))
    return out


def test_upright_prior_straightens_knees_bent_towards_the_camera(body):
    """A person standing straight, seen from 20° above, whose 3D landmarks bend both knees 45° towards the camera
    (BlazePose's "bent legs" bias, beyond the 35° the initialisation straightens): the image does not show that
    bend. Without the knee prior the fit bent the knees 72°; with it they stay below 35°."""
    from icon_engine.fit.landmarks import BP

    case = _case(body, "standing", yaw=10.0, pitch=20.0, betas_seed=5)
    wl = case.observation.world_landmarks  # hip-centred, camera-like axes (z away from the camera)
    for side in ("left", "right"):
        hip, knee = wl[BP[f"{side}_hip"]], wl[BP[f"{side}_knee"]]
        thigh = np.linalg.norm(knee - hip)
        wl[BP[f"{side}_knee"]] = hip + thigh * np.array([0.0, np.cos(np.radians(45)), -np.sin(np.radians(45))])
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    assert fit.metrics["standing"]
    assert max(_knee_flexion_deg(fit.joints)) < 35.0


def test_floor_prior_compares_the_lowest_points_of_the_feet():
    """Zero for feet whose lowest points are level (whatever the rest of each foot does), growing with the
    height difference (cm²), and its gradient lowers the higher foot's lowest point only."""
    from icon_engine.fit.priors import floor_loss

    left = torch.tensor([0.10, 0.02, 0.00], requires_grad=True)  # ankle, heel, toe heights (m): toe on the floor
    right = torch.tensor([0.09, 0.00, 0.03])  # heel on the floor
    assert float(floor_loss(left, right)) == pytest.approx(0.0, abs=0.05)
    raised = torch.tensor([0.10, 0.05, 0.03], requires_grad=True)
    loss = floor_loss(raised, right)
    assert float(loss) == pytest.approx(9.0, rel=0.2)  # 3 cm → ≈ 9 cm²
    loss.backward()
    assert raised.grad[2] > 0 and raised.grad[2] > 10 * abs(float(raised.grad[0]))


def test_robust_floor_prior_lets_a_lifted_foot_go():
    """Robust beyond 2 cm: a 1 cm gap pays nearly the plain square, a foot lifted 10 cm (a stride's swing foot)
    pays little more than 2² cm², not 100."""
    from icon_engine.fit.priors import floor_loss

    ground = torch.tensor([0.0])
    assert float(floor_loss(torch.tensor([0.01]), ground, robust_cm=2.0)) == pytest.approx(0.8, rel=0.05)
    lifted = float(floor_loss(torch.tensor([0.10]), ground, robust_cm=2.0))
    assert 3.5 < lifted < 4.0
    assert float(floor_loss(torch.tensor([0.10]), ground)) == pytest.approx(100.0, rel=0.01)


def test_icon_refinement_keeps_a_given_height(body):
    """ICON's body refinement (``--icon-data``) moves pose and place but not the shape when the height was given:
    the refined body keeps the fitted stature; without a height its shape is free and does change."""
    from types import SimpleNamespace

    from icon_engine.camera import Camera
    from icon_engine.fit.stature import stature_of
    from icon_engine.icon import infer
    from icon_engine.icon.checkpoints import IconNetworks
    from icon_engine.icon.networks import ImplicitNet, NormalNet

    width, height = 96, 128
    betas = np.zeros(body.num_betas)
    betas[0] = 1.0
    with torch.no_grad():
        verts = body(betas=torch.as_tensor(betas, dtype=torch.float32)[None]).vertices[0].numpy().astype(np.float64)
    faces = np.asarray(body.faces, np.int64)
    K = default_intrinsics(width, height)
    cam = Camera(K, FRONT_VIEW_R.copy(), np.array([0.0, 0.3, 3.6]), width, height)
    # a person larger than the fitted body: the silhouette loss would grow the shape
    mask = render_mask(cam.to_camera(verts * 1.15), faces, K, width, height)
    rgb = (np.random.default_rng(1).random((height, width, 3)) * 255).astype(np.uint8)
    torch.manual_seed(0)
    nets = IconNetworks(NormalNet(ngf=4).eval(), ImplicitNet(False).eval(), "icon-nofilter")
    settings = infer.IconSettings(image_res=64, refine_iters=5, normal_every=100, refine_res=64, refine_lr=3e-2)
    crop = infer.make_crop(cam, verts, mask, 64)
    image, _ = infer.crop_image(rgb, mask, crop, torch.device("cpu"))
    normals = infer.predict_normals(nets.normal, image, *infer.render_body_normals(verts, faces, crop.camera,
                                                                                   torch.device("cpu")))
    given = stature_of(body, betas)
    shapes = {}
    for source in ("height option", "estimated from the body shape"):
        fit = SimpleNamespace(vertices=verts, faces=faces, camera=cam, betas=betas.copy(), full_pose=np.zeros((55, 3)),
                              transl=np.zeros(3), expression=np.zeros(body.num_expression),
                              metrics={"stature_source": source, "stature_m": given})
        refined, _, _ = infer.refine_body(fit, body, crop, image, nets, settings,
                                          SimpleNamespace(update=lambda *a: None), torch.device("cpu"), normals)
        shapes[source] = refined.betas
    np.testing.assert_array_equal(shapes["height option"], betas)
    assert stature_of(body, shapes["height option"]) == pytest.approx(given, abs=1e-6)
    assert np.abs(shapes["estimated from the body shape"] - betas).max() > 1e-3


def _hand_behind_head_case(body):
    """A standing person, seen from the front, with the right hand behind the head (elbow raised forward and out),
    whose 3D landmarks put that hand 25 cm in front of the face (the sign error BlazePose makes on a dev photo).
    The hidden hand's landmarks have low visibility (fit_cases: a surface > 15 cm nearer hides them)."""
    from icon_engine.fit.landmarks import BP

    pose = named_pose("standing")
    pose[17] = compose((0.0, 0.8, 0.0), (0.0, 0.0, -1.3), (-1.2, 0.0, 0.0))
    pose[19] = (0.0, 2.0, 0.0)
    betas = np.random.default_rng(4).normal(0.0, 0.5, 10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    cam = camera_for_body(verts, 0.0, 5.0, 384, 480, fill=0.85)
    case = make_case(body, pose, betas, cam, world_noise=0.01, seed=4)
    wl = case.observation.world_landmarks  # camera-like axes, z away from the camera
    for name in ("right_wrist", "right_pinky", "right_index", "right_thumb"):
        wl[BP[name], 2] = wl[BP["nose"], 2] - 0.25
    return case


def test_a_hidden_hand_stays_behind_the_head_that_hides_it(body, monkeypatch):
    """Depth order from occlusion (priors.occlusion_pairs): BlazePose reports the hand hidden and the photo puts it
    on the head, so the hand is behind the head's landmarks (their mean depth, less 5 cm) whatever BlazePose's 3D
    says.
    Without the prior the 3D landmarks pull the hand in front of the face (checked below, so the test can fail)."""
    import icon_engine.fit.core as core
    from icon_engine.fit import priors
    from icon_engine.fit.landmarks import BP, resolve_targets

    case = _hand_behind_head_case(body)
    targets = resolve_targets(list(body.keypoint_names))
    pairs = priors.occlusion_pairs(case.observation.keypoints, targets.landmarks, 400.0)
    hidden = {int(targets.landmarks[r]) for r, _, _ in pairs}
    assert BP["right_wrist"] in hidden and BP["left_wrist"] not in hidden

    def wrist_ahead_of_head(fit) -> float:
        """How far (m) the right wrist is nearer the camera than the head joint."""
        cam = fit.camera.to_camera(fit.joints)
        return float(cam[15, 2] - cam[21, 2])

    true_ahead = wrist_ahead_of_head(type("T", (), {"camera": case.camera, "joints": case.joints})())
    assert true_ahead < 0.0  # the truth: behind the head
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    monkeypatch.setattr(core, "W_OCCLUSION", 0.0)
    without = fit_body(case.observation, body, case.photo, quality="preview")
    print("wrist ahead of the head joint (m): truth", true_ahead, "with", wrist_ahead_of_head(fit), "without",
          wrist_ahead_of_head(without))
    # the face's landmarks (nose, eyes, ears) sit ≈ 5 cm ahead of the head joint on average, plus the 5 cm margin
    assert wrist_ahead_of_head(fit) < 0.11
    assert wrist_ahead_of_head(without) > wrist_ahead_of_head(fit) + 0.05


def test_occlusion_prior_penalises_only_a_hidden_point_in_front():
    """Zero when the hidden point is behind its occluders' mean depth (less the margin), quadratic in front."""
    from icon_engine.fit import priors

    depth = torch.tensor([3.0, 3.0, 3.2])  # rows 0, 1: occluders; row 2: the hidden point
    pairs = [(2, [0, 1], 1.0)]
    assert float(priors.occlusion_loss(depth, pairs)) == 0.0
    ahead = torch.tensor([3.0, 3.0, 2.75])
    assert float(priors.occlusion_loss(ahead, pairs)) == pytest.approx((0.25 - priors.OCCLUSION_MARGIN_M) ** 2)
    assert float(priors.occlusion_loss(torch.tensor([3.0, 3.0, 2.97]), pairs)) == 0.0  # within the margin
    assert float(priors.occlusion_loss(ahead, [])) == 0.0


def test_occlusion_pairs_need_a_hidden_limb_point_on_the_head_or_torso():
    """A hidden wrist on the face pairs with the face's landmarks; a visible wrist there, or a hidden one over the
    other hand (limbs are not occluders: crossed arms), or one far from every occluder, does not."""
    from icon_engine.fit import priors
    from icon_engine.fit.landmarks import BP

    kps = np.zeros((33, 3))
    kps[:, 2] = 1.0
    kps[:, :2] = np.arange(33)[:, None] * [0.0, 100.0]  # every landmark far from the others
    kps[BP["nose"], :2] = kps[BP["right_ear"], :2] = (50.0, 50.0)
    kps[BP["right_wrist"]] = (55.0, 52.0, 0.4)
    landmarks = np.arange(33)
    pairs = priors.occlusion_pairs(kps, landmarks, 400.0)
    assert [(r, sorted(o)) for r, o, _ in pairs] == [(BP["right_wrist"], sorted([BP["nose"], BP["right_ear"]]))]
    assert pairs[0][2] == pytest.approx(1.0)
    kps[BP["right_wrist"], 2] = 0.95
    assert priors.occlusion_pairs(kps, landmarks, 400.0) == []
    kps[BP["right_wrist"]] = (kps[BP["left_wrist"], 0] + 3.0, kps[BP["left_wrist"], 1], 0.4)
    assert priors.occlusion_pairs(kps, landmarks, 400.0) == []


def test_gait_prior_swings_the_arms_opposite_to_the_legs():
    """priors.gait_loss: with the left foot 40 cm ahead of the right (full weight), the right wrist must be at least
    GAIT_ARM_RATIO × 40 cm ahead of the left; arms swung that far pay nothing, arms at one depth pay the square of
    the shortfall, arms swung the wrong way pay more; feet side by side or one foot a little ahead (a relaxed
    stance) leave the arms free; the pelvis's forward axis defines "ahead" (facing away, the same points are the
    mirrored stride and swing; turned 90°, no stride at all); only the arms get a gradient (the stride is given)."""
    from icon_engine.bundle.skeleton import axis_angle_to_matrix
    from icon_engine.fit import priors
    from icon_engine.fit.landmarks import J

    def joints(stride: float, swing: float) -> torch.Tensor:
        j = torch.zeros(1, 55, 3)
        j[0, J["left_ankle"], 2], j[0, J["right_ankle"], 2] = stride / 2, -stride / 2
        j[0, J["right_wrist"], 2], j[0, J["left_wrist"], 2] = swing / 2, -swing / 2
        return j

    eye = torch.eye(3)[None]
    k = priors.GAIT_ARM_RATIO
    assert float(priors.gait_loss(joints(0.4, k * 0.4 + 0.01), eye)) == 0.0
    assert float(priors.gait_loss(joints(0.4, 0.0), eye)) == pytest.approx((k * 0.4) ** 2, rel=1e-5)
    assert float(priors.gait_loss(joints(0.4, -0.1), eye)) == pytest.approx((k * 0.4 + 0.1) ** 2, rel=1e-5)
    assert float(priors.gait_loss(joints(-0.4, -k * 0.4 - 0.01), eye)) == 0.0  # the mirrored stride
    assert float(priors.gait_loss(joints(0.05, -0.2), eye)) == 0.0  # feet side by side: arms free
    assert float(priors.gait_loss(joints(0.15, -0.2), eye)) == 0.0  # one foot a little ahead: still free
    away = torch.tensor(axis_angle_to_matrix(np.array([0.0, np.pi, 0.0])), dtype=torch.float32)[None]
    assert float(priors.gait_loss(joints(0.4, -0.1), away)) == pytest.approx((k * 0.4 + 0.1) ** 2, rel=1e-5)
    side = torch.tensor(axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0])), dtype=torch.float32)[None]
    assert float(priors.gait_loss(joints(0.4, -0.1), side)) == pytest.approx(0.0, abs=1e-9)  # no stride along fwd
    j = joints(0.4, 0.0).requires_grad_(True)
    priors.gait_loss(j, eye).backward()
    assert float(j.grad[0, J["right_wrist"], 2]) < 0.0 < float(j.grad[0, J["left_wrist"], 2])
    assert float(j.grad[0, J["left_ankle"]].abs().sum()) == 0.0


def _lead(joints: np.ndarray, global_orient: np.ndarray, first: tuple[str, str], second: tuple[str, str]) -> float:
    """How far (m) the joint ``first[0]`` relative to ``first[1]`` lies ahead of ``second[0]`` relative to
    ``second[1]``, along the pelvis's forward axis (``global_orient``, axis-angle)."""
    from icon_engine.fit.landmarks import J

    fwd = axis_angle_to_matrix(np.asarray(global_orient, float))[:, 2]
    a = joints[J[first[0]]] - joints[J[first[1]]]
    b = joints[J[second[0]]] - joints[J[second[1]]]
    return float((a - b) @ fwd)


def _set_depth(world_landmarks: np.ndarray, parts: tuple[str, ...], depth: float) -> None:
    """Put both sides' BlazePose world landmarks ``parts`` at camera-like depth ``depth`` (metres, z away)."""
    from icon_engine.fit.landmarks import BP

    for side in ("left", "right"):
        for part in parts:
            world_landmarks[BP[f"{side}_{part}"], 2] = depth


def _with_and_without(case, body, monkeypatch, core, weight: str) -> tuple[BodyFit, BodyFit]:
    """Preview fits of ``case`` with the fit as it is and with ``core.<weight>`` set to zero (restored after the
    test by ``monkeypatch``)."""
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    monkeypatch.setattr(core, weight, 0.0)
    return fit, fit_body(case.observation, body, case.photo, quality="preview")


def _arm_swing(joints: np.ndarray, global_orient: np.ndarray) -> float:
    """How far (m) the right wrist is ahead of the left, relative to their shoulders, along the pelvis's forward."""
    return _lead(joints, global_orient, ("right_wrist", "right_shoulder"), ("left_wrist", "left_shoulder"))


def test_a_walker_seen_from_the_front_swings_the_arms_opposite_to_the_legs(body, monkeypatch):
    """The walking pose seen from the front (its arms swing in depth: left leg and right arm forward) whose 3D
    landmarks put both arms at one depth, 10 cm in front of the shoulders (what BlazePose does on the rendered
    walkers): with the gait prior the right wrist comes out ahead of the left; without it the arms stay level
    (checked, so the test can fail)."""
    import icon_engine.fit.core as core
    from icon_engine.fit.landmarks import BP

    case = _case(body, "walking", yaw=0.0)
    wl = case.observation.world_landmarks  # camera-like axes, z away from the camera
    _set_depth(wl, ("elbow", "wrist", "pinky", "index", "thumb"),
               0.5 * (wl[BP["left_shoulder"], 2] + wl[BP["right_shoulder"], 2]) - 0.10)
    truth = _arm_swing(case.joints, named_pose("walking")[0])
    fit, without = _with_and_without(case, body, monkeypatch, core, "W_GAIT")
    swing, swing0 = (_arm_swing(f.joints, f.full_pose[0]) for f in (fit, without))
    print("right wrist ahead of the left (m): truth", truth, "with", swing, "without", swing0)
    assert fit.metrics["standing"] and truth > 0.15
    assert swing > swing0 + 0.05 and swing > 0.5 * truth


@pytest.mark.parametrize("side", ["left", "right"])
def test_ankle_landmark_sits_above_the_ankle_joint_along_the_shin(body, side):
    """BlazePose's ankle is matched to a point ANKLE_OFFSET[1] (3.4 cm) above the ankle joint along the shin, not to
    the joint: standing, that point is straight above the joint; with the knee bent 90° it lies towards the knee
    along the (now horizontal) shin, so the offset turns with the shin, not with the pelvis."""
    from icon_engine.fit.core import landmark_points
    from icon_engine.fit.landmarks import ANKLE_OFFSET, BP, J, resolve_targets

    fb = FastBody(body, np.arange(0, body.num_vertices, 50))
    targets = resolve_targets(list(body.keypoint_names))
    row = int(np.flatnonzero(targets.landmarks == BP[f"{side}_ankle"])[0])
    for bend in (0.0, np.pi / 2):
        pose = torch.zeros(55, 3)
        pose[J[f"{side}_knee"], 0] = bend
        out = fb.forward(torch.zeros(10), pose, torch.zeros(3))
        point = landmark_points(out["joints"], out["keypoints"], out["rotations"], targets)[row].double().numpy()
        joints = out["joints"].double().numpy()
        ankle, knee = joints[J[f"{side}_ankle"]], joints[J[f"{side}_knee"]]
        shin = (knee - ankle) / np.linalg.norm(knee - ankle)
        np.testing.assert_allclose(np.linalg.norm(point - ankle), ANKLE_OFFSET[1], atol=1e-4)
        assert float((point - ankle) @ shin) > 0.97 * ANKLE_OFFSET[1]  # towards the knee, whatever the bend
        if bend:
            assert abs(point[1] - ankle[1]) < 0.01  # the shin is horizontal: the offset is no longer "up"


def test_stride_prior_lengthens_a_short_walking_stride_only():
    """priors.stride_loss: with the left ankle ``s`` ahead of the right (relative to the hips, along the pelvis's
    forward axis) a walker's stride (|s| past GAIT_STRIDE_M) pays the square of its shortfall below
    STRIDE_MIN_RATIO × stature, weighted like the gait coupling; a stride at least that long, feet side by side or a
    foot a little ahead (a relaxed stance) pay nothing; facing away the same points are the mirrored stride; the
    gradient moves both ankles apart along the stride (the legs get it: unlike the gait term it acts on the legs)."""
    from icon_engine.fit import priors
    from icon_engine.fit.landmarks import J

    def joints(stride: float) -> torch.Tensor:
        j = torch.zeros(1, 55, 3)
        j[0, J["left_ankle"], 2], j[0, J["right_ankle"], 2] = stride / 2, -stride / 2
        return j

    eye, stature = torch.eye(3)[None], torch.tensor(1.7)
    need = priors.STRIDE_MIN_RATIO * 1.7
    lo, hi = priors.GAIT_STRIDE_M
    assert need > hi  # the prior only ever lengthens a stride that already shows
    assert float(priors.stride_loss(joints(need + 0.01), eye, stature)) == 0.0
    assert float(priors.stride_loss(joints(hi), eye, stature)) == pytest.approx((need - hi) ** 2, rel=1e-4)
    half = 0.5 * (lo + hi)
    assert float(priors.stride_loss(joints(half), eye, stature)) == pytest.approx(0.5 * (need - half) ** 2, rel=1e-4)
    assert float(priors.stride_loss(joints(0.05), eye, stature)) == 0.0  # feet side by side
    assert float(priors.stride_loss(joints(0.15), eye, stature)) == 0.0  # one foot a little ahead
    assert float(priors.stride_loss(joints(-hi), eye, stature)) == pytest.approx((need - hi) ** 2, rel=1e-4)
    away = torch.tensor(axis_angle_to_matrix(np.array([0.0, np.pi, 0.0])), dtype=torch.float32)[None]
    assert float(priors.stride_loss(joints(hi), away, stature)) == pytest.approx((need - hi) ** 2, rel=1e-4)
    j = joints(hi).requires_grad_(True)
    priors.stride_loss(j, eye, stature).backward()
    assert float(j.grad[0, J["left_ankle"], 2]) < 0.0 < float(j.grad[0, J["right_ankle"], 2])  # descent: apart


def _stride(joints: np.ndarray, global_orient: np.ndarray) -> float:
    """How far (m) the left ankle is ahead of the right, relative to their hips, along the pelvis's forward."""
    return _lead(joints, global_orient, ("left_ankle", "left_hip"), ("right_ankle", "right_hip"))


def test_a_walker_seen_from_the_front_keeps_a_longer_stride(body, monkeypatch):
    """A shorter walking stride (the walking pose's hips at 0.65×) seen from the front, whose 3D landmarks put the
    legs at the hips' depth (BlazePose's 3D gives the rendered walkers only 43–67 % of their stride): with the
    stride prior the fitted stride is nearer the truth than without it (checked in the same test, so it can fail:
    without it the fit keeps little more than half the stride), and the standing pose gets no stride from it."""
    import icon_engine.fit.core as core
    from icon_engine.fit.landmarks import BP

    pose = named_pose("walking")
    pose[1:3] *= 0.65
    betas = np.random.default_rng(3).normal(0.0, 0.7, 10)
    cam = camera_for_body(pose_body(body, pose, betas)[0].vertices[0].numpy(), 0.0, 5.0, 384, 480, fill=0.85)
    case = make_case(body, pose, betas, cam, world_noise=0.02, seed=3)
    wl = case.observation.world_landmarks  # camera-like axes, z away from the camera
    _set_depth(wl, ("knee", "ankle", "heel", "foot_index"), 0.5 * (wl[BP["left_hip"], 2] + wl[BP["right_hip"], 2]))
    truth = _stride(case.joints, pose[0])
    fit, without = _with_and_without(case, body, monkeypatch, core, "W_STRIDE")
    stride, stride0 = (_stride(f.joints, f.full_pose[0]) for f in (fit, without))
    print("left ankle ahead of the right (m): truth", truth, "with", stride, "without", stride0)
    assert fit.metrics["standing"] and truth > 0.45
    assert stride > stride0 + 0.1 and abs(stride - truth) < 0.5 * abs(stride0 - truth)
    monkeypatch.setattr(core, "W_STRIDE", 20.0)
    still = _case(body, "standing", yaw=0.0)
    f = fit_body(still.observation, body, still.photo, quality="preview")
    assert abs(_stride(f.joints, f.full_pose[0])) < 0.1



def test_the_stride_prior_needs_the_feet_apart_in_the_image():
    """priors.feet_apart_in_image: a walker's ankles lie about hip-width apart across the image; crossed or touching
    feet (a fashion stance) turn the stride prior off; overlapping hips (a side view) cannot tell and keep it."""
    from icon_engine.fit import priors
    from icon_engine.fit.landmarks import BP

    def keypoints(left_hip: float, right_hip: float, left_ankle: float, right_ankle: float) -> np.ndarray:
        k = np.zeros((33, 3))
        for name, x in (("left_hip", left_hip), ("right_hip", right_hip), ("left_ankle", left_ankle),
                        ("right_ankle", right_ankle)):
            k[BP[name]] = (x, 0.0, 1.0)
        return k

    assert priors.feet_apart_in_image(keypoints(110, 90, 112, 88))  # feet under the hips
    assert priors.feet_apart_in_image(keypoints(90, 110, 88, 112))  # seen from behind: both orders flip
    assert not priors.feet_apart_in_image(keypoints(110, 90, 101, 99))  # touching: 0.1 × the hips' width
    assert not priors.feet_apart_in_image(keypoints(110, 90, 95, 105))  # crossed
    assert priors.feet_apart_in_image(keypoints(100, 100, 95, 105))  # side view


def test_a_half_body_photo_keeps_the_legs_out_of_the_frame(body):
    """A standing person photographed from mid-thigh up (a half-body photo: the legs' landmarks off the frame,
    barely visible): the legs go on straight below the frame. Before wave 20 the photo's edge counted as outside the
    mask, and the inside term folded the legs up into the picture (knees bent 90–150°, the feet inside the
    frame: a kneeling avatar)."""
    pose = named_pose("standing")
    betas = np.random.default_rng(3).normal(0.0, 0.7, 10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    upper = verts[verts[:, 1] > verts[:, 1].min() + 0.62 * np.ptp(verts[:, 1])]  # from mid-thigh up
    cam = camera_for_body(upper, 0.0, 5.0, 384, 480, fill=0.9)
    case = make_case(body, pose, betas, cam, world_noise=0.02, seed=3)
    assert case.observation.mask[-1].any()  # the person is cut by the frame's bottom edge
    assert (cam.project(case.joints[7:9])[0][:, 1] > cam.height).all()  # the true ankles lie below it
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    assert max(_knee_flexion_deg(fit.joints)) < 30.0, _knee_flexion_deg(fit.joints)
    ankles = fit.camera.project(fit.joints[7:9])[0]
    assert (ankles[:, 1] > fit.camera.height).all(), ankles


def test_only_the_edges_a_person_goes_on_beyond_are_open():
    """An edge is open when a landmark lies beyond it (a half-body photo's knees below the bottom edge); a mask that
    only touches the bottom row (feet on it) leaves every edge closed. Beyond an open edge the mask goes on for the
    inside term (no distance to pay below the legs); beyond a closed one it does not."""
    from icon_engine.fit.silhouette import make_target
    from icon_engine.geometry.frame import open_edges

    kps = np.array([[50.0, 20.0], [60.0, 90.0], [55.0, 99.0]])
    assert open_edges(kps, 100, 100) == frozenset()
    assert open_edges(np.vstack([kps, [52.0, 130.0]]), 100, 100) == {"bottom"}
    assert open_edges(np.array([[-3.0, 50.0], [50.0, -1.0]]), 100, 100) == {"left", "top"}
    mask = np.zeros((100, 100), bool)
    mask[30:, 40:60] = True  # legs down to the bottom row
    bbox = np.array([40.0, 30.0, 60.0, 100.0])
    closed = make_target(mask, bbox, 128)
    opened = make_target(mask, bbox, 128, open_edges=frozenset({"bottom"}))
    col = int(round((50.0 - closed.origin[0]) * closed.scale))
    row = int(round((110.0 - closed.origin[1]) * closed.scale))  # 10 px below the photo
    assert closed.dt_outside[0, 0, row, col] > 5.0 and opened.dt_outside[0, 0, row, col] == 0.0
    assert torch.equal(closed.samples, opened.samples)  # coverage from the photo's own pixels only


def test_a_portraits_legs_hang_straight_down(body):
    """A portrait (head and chest in the frame, hips below it) whose BlazePose 3D guesses the hidden legs with one
    knee raised (as it did on a dev photo cut at the chest): the fitted legs hang straight down from the hips
    (`init.hang_legs`); before wave 20 the fit took the guess and the avatar stood on one leg, the other thigh
    raised ~60°."""
    from icon_engine.fit.landmarks import BP

    pose = named_pose("standing")
    betas = np.random.default_rng(4).normal(0.0, 0.7, 10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    upper = verts[verts[:, 1] > verts[:, 1].min() + 0.72 * np.ptp(verts[:, 1])]  # from the chest up
    cam = camera_for_body(upper, 0.0, 5.0, 384, 480, fill=1.0)
    case = make_case(body, pose, betas, cam, world_noise=0.0, seed=4)
    kps = case.observation.keypoints
    assert (kps[[BP["left_hip"], BP["right_hip"]], 1] > cam.height).all()  # the hips lie below the frame
    wl = case.observation.world_landmarks  # hip-centred, camera-like axes (y down, z away from the camera)
    hip, knee, ankle = (wl[BP[f"left_{p}"]].copy() for p in ("hip", "knee", "ankle"))
    thigh, shank = np.linalg.norm(knee - hip), np.linalg.norm(ankle - knee)
    wl[BP["left_knee"]] = hip + thigh * np.array([0.0, 0.5, -np.sqrt(0.75)])  # thigh raised 60° towards the camera
    wl[BP["left_ankle"]] = wl[BP["left_knee"]] + shank * np.array([0.0, 1.0, 0.0])
    fit = fit_body(case.observation, body, case.photo, quality="preview")
    thigh_dirs = fit.joints[[4, 5]] - fit.joints[[1, 2]]
    down = -fit.joints[12] + 0.5 * (fit.joints[1] + fit.joints[2])  # neck → pelvis: the torso's down
    cos = thigh_dirs @ down / np.linalg.norm(thigh_dirs, axis=1) / np.linalg.norm(down)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 20.0, np.degrees(np.arccos(cos))
    assert max(_knee_flexion_deg(fit.joints)) < 30.0


def test_hanging_legs_keep_their_bone_lengths_and_never_collapse():
    """``init.hang_legs`` puts a leg straight down along the torso with BlazePose's bone lengths; with no torso
    direction at all (shoulders on the hips: a degenerate guess) the legs hang along the world's down, not onto
    the hip."""
    from icon_engine.fit.init import hang_legs
    from icon_engine.fit.landmarks import BP

    rng = np.random.default_rng(0)
    world = rng.normal(0.0, 0.3, (33, 3))
    for side, x in (("left", 0.1), ("right", -0.1)):
        world[BP[f"{side}_shoulder"]] = [2 * x, 0.5, 0.0]
        world[BP[f"{side}_hip"]] = [x, 0.0, 0.0]
    out = hang_legs(world, frozenset({"left"}))
    chain = [BP[f"left_{p}"] for p in ("hip", "knee", "ankle", "heel")]
    for a, b in zip(chain[:-1], chain[1:], strict=True):
        assert np.isclose(np.linalg.norm(out[b] - out[a]), np.linalg.norm(world[b] - world[a]))
        assert np.allclose((out[b] - out[a]) / np.linalg.norm(out[b] - out[a]), [0.0, -1.0, 0.0])
    assert np.allclose(out[BP["right_knee"]], world[BP["right_knee"]])  # the other leg untouched
    flat = world.copy()
    for side in ("left", "right"):
        flat[BP[f"{side}_shoulder"]] = flat[BP[f"{side}_hip"]]
    out = hang_legs(flat, frozenset({"left", "right"}))
    assert out[BP["left_ankle"], 1] < flat[BP["left_hip"], 1] - 0.01


# -- the face (icon_engine.fit.face) -----------------------------------------------------------------------------

def _face_case(body, head_pose, width: int = 320, height: int = 320):
    """A standing body whose head is turned by ``head_pose`` ((3,) axis-angle of joint 15),
    its head 0.7 m in front of the fit's own camera; its face points are the body model's face landmarks at the
    iBUG points :data:`icon_engine.person.FACE_POINTS` names, projected (what the face mesh gives)."""
    from icon_engine.camera import Camera
    from icon_engine.person import FACE_POINTS

    pose = named_pose("t_pose")
    pose[15] = head_pose
    betas = np.zeros(10)
    cam = Camera(default_intrinsics(width, height), FRONT_VIEW_R.copy(), np.zeros(3), width, height)
    out, _, _ = pose_body(body, pose, betas)
    shift = -out.joints[0, 15].double().numpy() + np.array([0.0, 0.0, -0.7])
    case = make_case(body, pose, betas, Camera(cam.K, cam.R, cam.R @ shift, width, height))
    lm = out.face_landmarks[0].double().numpy()[[i - 17 for _, _, i in FACE_POINTS]] + shift
    px, _ = cam.project(lm)
    return case, pose, shift, np.column_stack([px, np.ones(len(px))])


def test_face_fit_turns_the_head_onto_the_photos_face(body):
    """The body fit left the head straight; the photo's face is turned (0.25 rad about a tilted axis). The face
    step turns the head until the face points land on the photo's (error down to a tenth and under 1.5 px at a
    60 px eye distance), its rotation three times nearer the truth than straight; no other joint, the shape or the
    translation moves."""
    from icon_engine.fit.core import QUALITY_PRESETS, _Problem
    from icon_engine.fit.face import fit_face

    head_pose = np.array([0.12, 0.2, -0.1])
    case, pose, shift, face = _face_case(body, head_pose)
    prob = _Problem(case.observation, body, 320, 320, QUALITY_PRESETS["preview"], "cpu",
                    focal_px=float(case.camera.K[0, 0]))
    straight = pose.copy()
    straight[15] = 0.0
    p = {"betas": torch.zeros(10), "global_orient": torch.zeros(3),
         "body_pose": torch.tensor(straight[1:22], dtype=torch.float32),
         "transl": torch.tensor(shift, dtype=torch.float32)}
    metrics = fit_face(prob, p, face)
    assert 40.0 < metrics["eye_distance_px"] < 90.0
    assert metrics["after_px"] < 0.1 * metrics["before_px"] and metrics["after_px"] < 1.5
    got = p["body_pose"].double().numpy()
    others = [j for j in range(21) if j != 14]
    assert np.allclose(got[others], straight[1:22][others], atol=1e-6)
    # the head's world rotation (the neck's and the head's together) is the truth's
    fitted = pose.copy()
    fitted[1:22] = got
    def angle(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.arccos(np.clip((np.trace(_head_rotation(a) @ _head_rotation(b).T) - 1) / 2, -1, 1)))

    assert angle(fitted, pose) < 0.35 * angle(straight, pose)  # 2-D points tell the yaw least (the nose's depth)
    assert np.array_equal(p["transl"].numpy(), np.asarray(shift, np.float32)) and not p["betas"].any()


def _head_rotation(pose: np.ndarray) -> np.ndarray:
    """World rotation (3, 3) of the head joint (15) of ``pose`` (55, 3): the chain pelvis → spine → neck → head."""
    out = np.eye(3)
    for j in (0, 3, 6, 9, 12, 15):
        out = out @ axis_angle_to_matrix(np.asarray(pose[j], np.float64))
    return out


def test_face_fit_without_a_face_changes_nothing(body):
    """No face found (a back view) or a body model without face landmarks: no step, nothing changed."""
    from icon_engine.fit.core import QUALITY_PRESETS, _Problem
    from icon_engine.fit.face import fit_face

    case, pose, shift, face = _face_case(body, np.zeros(3))
    prob = _Problem(case.observation, body, 320, 320, QUALITY_PRESETS["preview"], "cpu",
                    focal_px=float(case.camera.K[0, 0]))
    p = {"betas": torch.zeros(10), "global_orient": torch.zeros(3),
         "body_pose": torch.tensor(pose[1:22], dtype=torch.float32), "transl": torch.tensor(shift, dtype=torch.float32)}
    before = p["body_pose"].clone()
    assert fit_face(prob, p, None) == {}
    assert fit_face(prob, p, face[:3]) == {}
    assert torch.equal(p["body_pose"], before)
    # the face already in place: the step keeps it there (error not raised)
    metrics = fit_face(prob, p, face)
    assert metrics["after_px"] <= metrics["before_px"] < 0.5


def test_joint_angle_limits_bend_knees_and_elbows_one_way_only():
    """The hinge prior (one batched expression since wave 36): a knee flexing about +x and an elbow about its own
    side's axis (−y left, +y right) cost nothing within the box limits; the opposite bends, a knee's twist or
    abduction and an elbow's abduction do, by the squared angle (× 10; half for the elbow's abduction); any joint
    beyond its box pays the squared excess."""
    from icon_engine.fit.landmarks import J
    from icon_engine.fit.priors import LIMITS, angle_limit_loss

    def loss(joint: str, axis: int, angle: float) -> float:
        pose = torch.zeros(1, 21, 3)
        pose[0, J[joint] - 1, axis] = angle
        return float(angle_limit_loss(pose))

    assert float(angle_limit_loss(torch.zeros(2, 21, 3))) == 0.0
    for knee in ("left_knee", "right_knee"):
        assert loss(knee, 0, 1.0) == 0.0 and loss(knee, 0, -0.3) == pytest.approx(10 * 0.09)
        assert loss(knee, 1, 0.1) == pytest.approx(10 * 0.01) and loss(knee, 2, -0.1) == pytest.approx(10 * 0.01)
    assert loss("left_elbow", 1, -1.0) == 0.0 and loss("left_elbow", 1, 0.3) == pytest.approx(10 * 0.09)
    assert loss("right_elbow", 1, 1.0) == 0.0 and loss("right_elbow", 1, -0.3) == pytest.approx(10 * 0.09)
    assert loss("left_elbow", 2, 0.2) == pytest.approx(10 * 0.5 * 0.04)
    assert loss("left_elbow", 0, 0.2) == 0.0  # the forearm's twist is free within its box
    limit = float(LIMITS[J["left_knee"] - 1, 0])
    assert loss("left_knee", 0, limit + 0.1) == pytest.approx(10 * 0.01, rel=1e-4)
    limit = float(LIMITS[J["spine1"] - 1, 2])
    assert loss("spine1", 2, -(limit + 0.2)) == pytest.approx(10 * 0.04, rel=1e-4)
    two = torch.zeros(2, 21, 3)
    two[0, J["left_knee"] - 1, 0] = -0.3  # the batch's mean
    assert float(angle_limit_loss(two)) == pytest.approx(10 * 0.09 / 2)
