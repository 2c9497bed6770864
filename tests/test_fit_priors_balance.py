"""fit/priors.py: the standing balance prior (centre of mass ahead of the ankles) on the real open body."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icon_engine.body_model import load_body_model
from icon_engine.bundle.skeleton import axis_angle_to_matrix
from icon_engine.fit import priors
from icon_engine.fit.landmarks import J


@pytest.fixture(scope="module")
def model():
    return load_body_model()


def _joints(model, hips_flexion: float = 0.0, spine_lean: float = 0.0) -> torch.Tensor:
    pose = torch.zeros(1, 21, 3)
    pose[0, J["left_hip"] - 1, 0] = pose[0, J["right_hip"] - 1, 0] = -hips_flexion  # −x: the thighs swing forward
    pose[0, J["spine1"] - 1, 0] = spine_lean
    return model(body_pose=pose.reshape(1, 63)).joints


def test_centre_of_mass_lies_between_the_hips_and_above_them(model):
    j = _joints(model)
    com = priors.centre_of_mass(j)[0]
    assert abs(float(com[0])) < 0.005, "left/right symmetric"
    assert float(j[0, J["pelvis"], 1]) - 0.05 < float(com[1]) < float(j[0, J["spine2"], 1]), "about the navel"
    masses = sum(m for *_, m in priors._SEGMENT_MASS)
    assert masses == pytest.approx(1.0, abs=0.01), "Winter's fractions cover the whole body"


def test_balance_is_free_in_the_band_and_pays_outside_it(model):
    eye = torch.eye(3)[None]
    rest = _joints(model)
    ahead = float(priors.balance_ahead(rest, eye))
    assert priors.BALANCE_AHEAD_M[0] <= ahead <= priors.BALANCE_AHEAD_M[1], "the rest pose stands balanced"
    assert float(priors.balance_loss(rest, eye)) == 0.0
    # both thighs swung 0.3 rad forward (legs leaning towards the camera of a front view): the ankles pass the
    # centre of mass, which pays the square of the shortfall below the band
    forward = _joints(model, hips_flexion=0.3)
    a = float(priors.balance_ahead(forward, eye))
    assert a < priors.BALANCE_AHEAD_M[0] - 0.05
    assert float(priors.balance_loss(forward, eye)) == pytest.approx((priors.BALANCE_AHEAD_M[0] - a) ** 2, rel=1e-5)
    # the trunk leaning far forward over the feet pays the excess above the band
    lean = _joints(model, spine_lean=0.6)
    b = float(priors.balance_ahead(lean, eye))
    assert b > priors.BALANCE_AHEAD_M[1]
    assert float(priors.balance_loss(lean, eye)) == pytest.approx((b - priors.BALANCE_AHEAD_M[1]) ** 2, rel=1e-5)


def test_balance_measures_along_the_horizontal_forward_and_pulls_the_feet_back(model):
    pose = torch.zeros(1, 21, 3)
    pose[0, J["left_hip"] - 1, 0] = pose[0, J["right_hip"] - 1, 0] = -0.3  # thighs forward
    pose.requires_grad_(True)
    j = model(body_pose=pose.reshape(1, 63)).joints
    # a pelvis pitched 0.3 rad forward (its forward axis tilted down) measures along the same horizontal direction
    pitched = torch.as_tensor(axis_angle_to_matrix(np.array([0.3, 0.0, 0.0])), dtype=torch.float32)[None]
    assert float(priors.balance_ahead(j.detach(), pitched)) == pytest.approx(
        float(priors.balance_ahead(j.detach(), torch.eye(3)[None])))
    # turned to face +X, the same body's forward lead is measured along +X: its ankles are not ahead there
    turned = torch.as_tensor(axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0])), dtype=torch.float32)[None]
    assert abs(float(priors.balance_ahead(j.detach(), turned))) < 0.01
    priors.balance_loss(j, torch.eye(3)[None]).backward()
    grad = pose.grad[0, J["left_hip"] - 1, 0]
    assert float(grad) < 0.0, "descending the loss swings the thighs back (less flexion: x towards 0)"
