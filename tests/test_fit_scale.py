"""Focal length and distance without EXIF: the framing prior (icon_engine.camera.framing_map) and where the fit
uses it (icon_engine.fit.core): full-length photos only, EXIF and a given focal unchanged."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from bench.lib.fit_cases import look_at_camera, make_case, named_pose, pose_body
from icon_engine.camera import (
    FULL_LENGTH_DISTANCE_LOG_STD,
    FULL_LENGTH_DISTANCE_M,
    PRIOR_FOCAL_LOG_STD,
    Camera,
    focal_px_to_35mm,
    framing_map,
    intrinsics_from_focal,
    prior_focal_px,
)
from icon_engine.fit import fit_body
from icon_engine.fit.core import shows_full_length
from icon_engine.fit.landmarks import BP
from icon_engine.fit.stature import PRIOR_MEAN_M, PRIOR_STD_M

W, H = 768, 1024


def _neg_log_posterior(log_f: float, log_s: float, c: float, stature_log_std: float) -> float:
    """The three priors' squared standard scores with log z from the constraint log f + log S − log z = c."""
    log_z = log_f + log_s - c
    return (((log_f - math.log(prior_focal_px(W, H))) / PRIOR_FOCAL_LOG_STD) ** 2
            + ((log_s - math.log(PRIOR_MEAN_M)) / stature_log_std) ** 2
            + ((log_z - math.log(FULL_LENGTH_DISTANCE_M)) / FULL_LENGTH_DISTANCE_LOG_STD) ** 2)


def test_framing_map_at_the_priors_means_is_the_means():
    f0 = prior_focal_px(W, H)
    got = framing_map(f0, FULL_LENGTH_DISTANCE_M, PRIOR_MEAN_M, W, H, PRIOR_MEAN_M, PRIOR_STD_M / PRIOR_MEAN_M)
    assert got.focal_px == pytest.approx(f0)
    assert got.distance_m == pytest.approx(FULL_LENGTH_DISTANCE_M)
    assert got.stature_m == pytest.approx(PRIOR_MEAN_M)


@pytest.mark.parametrize("distance", [2.5, 3.9, 5.0])
def test_framing_map_is_the_constrained_maximum(distance):
    """Known numbers: the body fits at ``distance`` with the prior focal and the mean stature. The MAP keeps the
    observed focal × stature / distance, equals the closed form (each log moves by its variance share of the
    misfit) and is the minimum of the negative log posterior found by a general optimiser."""
    f0, sd_s = prior_focal_px(W, H), PRIOR_STD_M / PRIOR_MEAN_M
    got = framing_map(f0, distance, PRIOR_MEAN_M, W, H, PRIOR_MEAN_M, sd_s)
    assert got.focal_px * got.stature_m / got.distance_m == pytest.approx(f0 * PRIOR_MEAN_M / distance)
    r = math.log(FULL_LENGTH_DISTANCE_M / distance)
    total = PRIOR_FOCAL_LOG_STD**2 + FULL_LENGTH_DISTANCE_LOG_STD**2 + sd_s**2
    assert math.log(got.focal_px / f0) == pytest.approx(PRIOR_FOCAL_LOG_STD**2 * r / total)
    assert math.log(got.distance_m / FULL_LENGTH_DISTANCE_M) == pytest.approx(-FULL_LENGTH_DISTANCE_LOG_STD**2 * r
                                                                              / total)
    c = math.log(f0 * PRIOR_MEAN_M / distance)
    best = minimize(lambda x: _neg_log_posterior(x[0], x[1], c, sd_s), [math.log(f0), math.log(PRIOR_MEAN_M)],
                    method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    assert math.exp(best.x[0]) == pytest.approx(got.focal_px, rel=1e-4)
    assert math.exp(best.x[1]) == pytest.approx(got.stature_m, rel=1e-4)
    # a body that looks far away at the prior focal gets a shorter focal, a near one a longer focal
    assert (got.focal_px < f0) == (distance > FULL_LENGTH_DISTANCE_M)


def test_framing_map_with_a_known_height_keeps_it():
    """With the height known (spread 0) the stature stays and focal and distance share the whole misfit."""
    f0 = prior_focal_px(W, H)
    got = framing_map(f0, 4.4, 1.62, W, H, 1.62, 0.0)
    assert got.stature_m == pytest.approx(1.62)
    r = math.log(FULL_LENGTH_DISTANCE_M / 4.4)
    share = PRIOR_FOCAL_LOG_STD**2 / (PRIOR_FOCAL_LOG_STD**2 + FULL_LENGTH_DISTANCE_LOG_STD**2)
    assert got.focal_px == pytest.approx(f0 * math.exp(share * r))
    assert got.focal_px * 1.62 / got.distance_m == pytest.approx(f0 * 1.62 / 4.4)
    with pytest.raises(ValueError):
        framing_map(f0, -1.0, 1.62, W, H, 1.62, 0.0)


def _full_body_keypoints() -> np.ndarray:
    """33 BlazePose points of a person standing in the middle of a W × H photo, all visible."""
    kps = np.zeros((33, 3))
    kps[:, 0] = W / 2
    kps[:, 1] = np.linspace(80, 950, 33)
    kps[:, 2] = 0.99
    return kps


def test_shows_full_length_needs_a_head_and_a_foot_in_frame():
    kps = _full_body_keypoints()
    assert shows_full_length(kps, W, H)
    feet = [BP[n] for n in ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index",
                            "right_foot_index")]
    crop = kps.copy()
    crop[feet, 1] += 400.0  # below the bottom edge: a half-body crop
    assert not shows_full_length(crop, W, H)
    hidden = kps.copy()
    hidden[feet, 2] = 0.1  # BlazePose's guess for feet it does not see
    assert not shows_full_length(hidden, W, H)
    head = kps.copy()
    head[[BP[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")], 1] = -30.0
    assert not shows_full_length(head, W, H)
    one_foot = hidden.copy()
    one_foot[BP["right_heel"], 2] = 0.9
    assert shows_full_length(one_foot, W, H)


@pytest.fixture(scope="module")
def body():
    from icon_engine.body_model import load_body_model

    return load_body_model()


#: The stand-in photo: 384 × 480 px, a standing body 3.2 m from a camera with a short lens (0.8 × the prior
#: focal), so that it fills about two thirds of the height: the constant prior focal puts it 25 % too far.
SIZE = (384, 480)
TRUE_DISTANCE_M = 3.2
TRUE_FOCAL_RATIO = 0.8


@pytest.fixture(scope="module")
def stand_in(body):
    pose = named_pose("standing")
    betas = np.random.default_rng(5).normal(0.0, 0.5, 10)
    verts = pose_body(body, pose, betas)[0].vertices[0].numpy()
    centre = 0.5 * (verts.min(0) + verts.max(0))
    cam = look_at_camera(centre, TRUE_DISTANCE_M, 10.0, 3.0, *SIZE)
    cam = Camera(intrinsics_from_focal(*SIZE, TRUE_FOCAL_RATIO * prior_focal_px(*SIZE)), cam.R, cam.t, *SIZE)
    return make_case(body, pose, betas, cam, world_noise=0.02, seed=5)


def _distance(fit) -> float:
    return float(fit.camera.to_camera(fit.joints[:1])[0, 2])


@pytest.fixture(scope="module")
def framed(body, stand_in):
    return fit_body(stand_in.observation, body, stand_in.photo, quality="preview")


def test_a_full_length_stand_in_gets_the_framing_prior_closer_to_its_distance(body, stand_in, framed):
    """Rendered at a known distance with a short lens: the framing prior's focal and distance are nearer the
    truth than the constant focal prior's (the fit given that focal, today's behaviour without the prior)."""
    case = stand_in
    true_z = float(case.camera.to_camera(case.joints[:1])[0, 2])
    assert shows_full_length(case.observation.keypoints, *SIZE)
    assert framed.metrics["focal_source"] == "framing prior"
    assert framed.metrics["distance_m"] == pytest.approx(_distance(framed), abs=1e-3)
    assert set(framed.metrics["framing_prior"]) == {"distance_m", "stature_m"}
    constant = fit_body(case.observation, body, case.photo, quality="preview", focal_px=prior_focal_px(*SIZE))
    true_f = float(case.camera.K[0, 0])
    err_framed, err_constant = abs(_distance(framed) / true_z - 1), abs(_distance(constant) / true_z - 1)
    assert err_constant > 0.15  # the stand-in is a case the constant prior gets wrong
    assert err_framed < err_constant - 0.05, (err_framed, err_constant)
    assert abs(framed.camera.K[0, 0] / true_f - 1) < abs(constant.camera.K[0, 0] / true_f - 1) - 0.05
    assert 2.0 < framed.metrics["distance_m"] < 5.0


def test_a_crop_keeps_the_focal_prior(body, stand_in):
    """The same photo with the feet out of frame (a half-body crop: BlazePose's foot points off the image and
    unseen) keeps the 55 mm focal prior: the distance prior is for full-length photos."""
    case = stand_in
    obs = case.observation
    kps = np.asarray(obs.keypoints, dtype=np.float64).copy()
    for name in ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index"):
        kps[BP[name], 1] = SIZE[1] + 40.0
        kps[BP[name], 2] = 0.05
    fit = fit_body(dataclasses.replace(obs, keypoints=kps), body, case.photo, quality="preview")
    assert fit.metrics["focal_source"] == "prior"
    assert fit.camera.K[0, 0] == pytest.approx(prior_focal_px(*SIZE))
    assert "framing_prior" not in fit.metrics


def test_exif_and_a_given_focal_win_over_the_framing_prior(body, stand_in):
    """A photo with an EXIF focal keeps it exactly (no framing prior), and so does a focal the caller gives."""
    case = stand_in
    true_f = float(case.camera.K[0, 0])
    photo = dataclasses.replace(case.photo)
    photo.focal_35mm = focal_px_to_35mm(true_f, *SIZE)  # what load_photo reads from EXIF
    fit = fit_body(case.observation, body, photo, quality="preview")
    assert fit.metrics["focal_source"] == "exif"
    assert fit.camera.K[0, 0] == pytest.approx(true_f, rel=1e-9)
    assert "framing_prior" not in fit.metrics
    true_z = float(case.camera.to_camera(case.joints[:1])[0, 2])
    assert fit.metrics["distance_m"] == pytest.approx(true_z, rel=0.06)
    given = fit_body(case.observation, body, case.photo, quality="preview", focal_px=1.1 * true_f)
    assert given.metrics["focal_source"] == "given"
    assert given.camera.K[0, 0] == pytest.approx(1.1 * true_f, rel=1e-9)


def test_the_joint_fit_keeps_the_framing_prior_focal(body, stand_in, framed):
    """The multi-photo joint fit rebuilds each photo's problem on that photo's fitted camera, so it refines at the
    framing prior's focal (and the ICON path crops with ``fit.camera``: the same place)."""
    from icon_engine.joint_fit import _problem

    prob, p = _problem(stand_in.observation, stand_in.photo, framed, body, "preview", "cpu", None)
    assert prob.K[0, 0] == pytest.approx(framed.camera.K[0, 0], rel=1e-9)
    assert prob.K[0, 0] != pytest.approx(prior_focal_px(*SIZE), rel=1e-3)
