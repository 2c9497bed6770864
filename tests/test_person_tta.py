"""The mirrored BlazePose pass (bench/tta_probe.py, detect_person(mirror_pass=True)): real mediapipe, the sample photo.

Test-time augmentation, wave 8 (docs/benchmarks/fidelity.md, "Wave 8: body"; the "high" quality uses it): a mirrored
close-up's answer, flipped back, must describe the same person with left and right where the plain pass has them."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tta_probe import bone_dirs, closeup_pass, mirror_index
from icon_engine.image_io import load_photo
from icon_engine.person import LANDMARK_NAMES, find_people


def test_mirror_index_exchanges_left_and_right():
    idx = mirror_index()
    assert np.array_equal(idx[idx], np.arange(33))  # an involution
    for i, j in enumerate(idx):
        a, b = LANDMARK_NAMES[i], LANDMARK_NAMES[j]
        assert a.replace("left", "right") == b or a.replace("right", "left") == b


def test_mirrored_pass_agrees_with_the_plain_pass_on_the_sample_photo():
    from icon_engine.sample import sample_photo_path

    rgb = load_photo(sample_photo_path()).rgb
    raw = find_people(rgb, 1)[0]
    plain = closeup_pass(rgb, raw, 1.5, mirror=False)
    mirrored = closeup_pass(rgb, raw, 1.5, mirror=True)
    assert plain is not None and mirrored is not None
    (kp_a, world_a), (kp_b, world_b) = plain, mirrored
    size = float(np.ptp(kp_a[:, :2], axis=0).max())
    body = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    # each landmark lands on its own counterpart, far nearer it than the other side's
    err = np.linalg.norm(kp_b[body, :2] - kp_a[body, :2], axis=1) / size
    swapped = np.linalg.norm(kp_b[body, :2] - kp_a[mirror_index()[body], :2], axis=1) / size
    assert err.max() < 0.05, err
    assert (err[::2] + err[1::2] < swapped[::2] + swapped[1::2]).all()
    # world landmarks: x mirrored back (the person's left shoulder on the image's right, as in the plain pass)
    assert world_b[11, 0] > world_b[12, 0] and world_a[11, 0] > world_a[12, 0]
    angle = np.degrees(np.arccos(np.clip((bone_dirs(world_a) * bone_dirs(world_b)).sum(-1), -1, 1)))
    assert angle.max() < 30.0, angle


def test_detect_person_mirror_pass_averages_the_two_passes():
    """``detect_person(mirror_pass=True)`` (the standard and high qualities' detection): landmarks are the mean of
    the plain detection and the mirrored close-up's, so they move off the plain pass's by half their disagreement
    and keep left and right; the mask is the plain pass's."""
    from icon_engine.person import detect_person
    from icon_engine.sample import sample_photo_path

    photo = load_photo(sample_photo_path())
    plain = detect_person(photo, hands=False)
    tta = detect_person(photo, hands=False, mirror_pass=True)
    raw = find_people(photo.rgb, 1)[0]
    mirrored = closeup_pass(photo.rgb, raw, 1.5, mirror=True)
    assert mirrored is not None
    np.testing.assert_allclose(tta.keypoints[:, :2], 0.5 * (plain.keypoints[:, :2] + mirrored[0][:, :2]), atol=1e-6)
    np.testing.assert_allclose(tta.world_landmarks, 0.5 * (plain.world_landmarks + mirrored[1]), atol=1e-6)
    assert not np.allclose(tta.keypoints[:, :2], plain.keypoints[:, :2])
    assert np.array_equal(tta.mask, plain.mask)
    assert tta.keypoints[11, 0] > tta.keypoints[12, 0] and tta.world_landmarks[11, 0] > tta.world_landmarks[12, 0]


def test_a_mirrored_pass_that_reads_another_pose_is_not_averaged(monkeypatch):
    """A mirrored answer whose ankle lies 30 % of the person away (a misread leg, as on a backflip photo) is
    dropped; one 2 % away (the passes' usual scatter) is averaged in."""
    from icon_engine import person as P
    from icon_engine.sample import sample_photo_path

    rgb = load_photo(sample_photo_path()).rgb
    raw = find_people(rgb, 1)[0]
    size = float(np.ptp(raw.keypoints[:, :2], axis=0).max())
    for shift, averaged in ((0.3, False), (0.02, True)):
        other = raw.keypoints.copy()
        other[27, 0] += shift * size  # the left ankle
        monkeypatch.setattr(P, "_closeup_pass", lambda *a, other=other, **k: P._Raw(other, raw.world, raw.soft))
        out = P.with_mirrored_pass(rgb, raw)
        expected = 0.5 * (raw.keypoints[27, 0] + other[27, 0]) if averaged else raw.keypoints[27, 0]
        assert out.keypoints[27, 0] == expected


@pytest.mark.parametrize("quality, mirrored", [("preview", False), ("standard", True), ("high", True)])
def test_standard_and_high_run_the_mirrored_pass(quality, mirrored, monkeypatch, tmp_path):
    """The pipeline asks the detector for the mirrored pass at standard and high quality, not at preview (the
    detector is stopped right after it is called: nothing else runs)."""
    from icon_engine import person as P
    from icon_engine.errors import EngineError
    from icon_engine.options import ReconstructOptions
    from icon_engine.pipeline import reconstruct
    from icon_engine.sample import sample_photo_path

    seen = {}

    def stop(photo, **kwargs):
        seen.update(kwargs)
        raise EngineError("no_person", "stopped by the test", "")

    monkeypatch.setattr(P, "detect_person", stop)
    with pytest.raises(EngineError):
        reconstruct(sample_photo_path(), tmp_path, ReconstructOptions(quality=quality))
    assert seen["mirror_pass"] is mirrored


@pytest.mark.parametrize("quality, mirrored", [("preview", False), ("standard", True)])
def test_several_photos_follow_the_same_mirrored_pass_rule(quality, mirrored, monkeypatch):
    """A subject's photos are detected as a single photo is at the same quality (person.mirror_pass_for): the
    several-photo path asks for the mirrored pass at standard and high, not at preview (the detector is stopped
    when called)."""
    from icon_engine import person as P
    from icon_engine.errors import EngineError
    from icon_engine.sample import sample_photo_path
    from icon_engine.subject import fit_subject, gather_inputs

    seen = []

    def stop(photo, **kwargs):
        seen.append(kwargs["mirror_pass"])
        raise EngineError("no_person", "stopped by the test", "")

    monkeypatch.setattr(P, "detect_person", stop)
    with pytest.raises(EngineError):
        fit_subject(gather_inputs([sample_photo_path(), sample_photo_path()]), None, quality=quality)
    assert seen == [mirrored, mirrored]
