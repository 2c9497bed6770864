"""bench/tta_probe.py: the mirrored BlazePose pass maps back onto the person (real mediapipe, the sample photo).

Test-time augmentation was measured in wave 8 and not kept in the engine (docs/benchmarks/fidelity.md, "Wave 8:
body"); these tests keep its benchmark honest: a mirrored close-up's answer, flipped back, must describe the same
person with left and right where the plain pass has them."""

from __future__ import annotations

import numpy as np

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
