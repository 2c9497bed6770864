"""Motion from video with hands, end to end with the real components: a rendered clip of the open body waving
and opening and closing its hands (fingers rasterised at 1280×720), BlazePose and MediaPipe's hand graphs in
tracking mode, the body and finger fits, the fill and smoothing, and the files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.motion import hand_pa_mpjpe, make_clip  # noqa: E402
from icon_engine.motion import MotionOptions, capture_motion  # noqa: E402
from icon_engine.motion.trajectory import posed_joints  # noqa: E402

FRAMES = 12


@pytest.fixture(scope="module")
def body_model():
    from icon_engine.body_model import load_body_model

    return load_body_model()


@pytest.fixture(scope="module")
def wave(body_model, tmp_path_factory):
    return make_clip(body_model, "wave", tmp_path_factory.mktemp("clips"), FRAMES, size=(1280, 720))


def test_hands_are_captured_where_seen(wave, body_model, tmp_path: Path) -> None:
    """Both hands are found in (nearly) every frame; their fitted fingers are closer to the truth than flat
    hands (PA-MPJPE over each hand's 16 joints); the npz carries them (165 values) and the BVH has the 30
    finger joints; motion.json counts the frames each hand was seen."""
    res = capture_motion(wave.video, tmp_path / "on", MotionOptions(betas=wave.betas), body_model=body_model)
    meta = json.loads(res.meta.read_text())
    hands = meta["hands"]
    assert hands["enabled"]
    for side in ("left", "right"):
        assert hands[side]["seen_frames"] >= FRAMES - 2, hands
        assert hands[side]["seen_frames"] + hands[side]["filled_frames"] == res.frames
        assert hands[side]["mean_error_px"] < 4.0  # wrist-aligned 2D error of ~30 px hands
    with np.load(res.npz) as data:
        poses = data["poses"].reshape(-1, 55, 3)
        idx = data["frame_index"]
    assert np.abs(poses[:, 25:55]).max() > 0.3 and np.abs(poses[:, 22:25]).max() == 0.0
    assert "left_index3" in res.bvh.read_text() and "right_thumb3" in res.bvh.read_text()
    rest = res.raw["rest_joints"]
    gt = wave.joints[idx]
    got = hand_pa_mpjpe(res.raw["joints"], gt)
    flat = res.raw["poses_final"].copy()
    flat[:, 25:55] = 0.0
    base = hand_pa_mpjpe(posed_joints(rest, flat, np.zeros((len(flat), 3))), gt)
    assert np.mean(list(got.values())) < 0.85 * np.mean(list(base.values())), (got, base)
    assert got["right"] < 0.75 * base["right"], (got, base)  # the right hand closes most in these frames


def test_no_hands_keeps_them_at_rest(wave, body_model, tmp_path: Path) -> None:
    res = capture_motion(wave.video, tmp_path / "off", MotionOptions(betas=wave.betas, hands=False),
                         body_model=body_model)
    assert json.loads(res.meta.read_text())["hands"] == {"enabled": False}
    with np.load(res.npz) as data:
        assert np.abs(data["poses"].reshape(-1, 55, 3)[:, 25:55]).max() == 0.0
    assert "left_index1" not in res.bvh.read_text()
    assert res.timings["hands_track"] == 0.0
