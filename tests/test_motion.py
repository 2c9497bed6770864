"""Motion from video end to end with the real components: a rendered clip of the open body, PyAV, BlazePose,
the fit, the CLI's JSON lines, cancellation, and clips where the person leaves or never appears."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.motion import make_clip, metrics, write_video  # noqa: E402
from icon_engine.errors import EngineError  # noqa: E402
from icon_engine.motion import MotionOptions, capture_motion  # noqa: E402
from icon_engine.motion.trajectory import posed_joints  # noqa: E402
from icon_engine.motion.video import iter_frames, probe_video  # noqa: E402
from icon_engine.motion.writers import from_amass  # noqa: E402
from icon_engine.progress import CancelToken  # noqa: E402

FRAMES = 18
SIZE = (640, 360)


@pytest.fixture(scope="module")
def body_model():
    from icon_engine.body_model import load_body_model

    return load_body_model()


@pytest.fixture(scope="module")
def walk(body_model, tmp_path_factory):
    """A short walk, rendered once for the module (640×360, 30 fps)."""
    return make_clip(body_model, "walk", tmp_path_factory.mktemp("clips"), FRAMES, size=SIZE)


def _frames(path: Path) -> list[np.ndarray]:
    return [f.rgb for f in iter_frames(probe_video(path))]


def test_cli_captures_a_walk(walk, body_model, tmp_path: Path) -> None:
    """``python -m icon_engine motion`` with JSON progress: one progress line per frame, a done line, the
    files, and a motion close to the ground truth."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "icon_engine", "motion", str(walk.video), "--out", str(out),
                           "--progress", "json"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    frames = [e for e in events if e["event"] == "progress" and e.get("stage") == "fit"]
    assert len(frames) == FRAMES and frames[-1]["frame"] == FRAMES
    assert all(0.0 <= e["overall"] <= 1.0 for e in frames)
    done = [e for e in events if e["event"] == "done"]
    assert len(done) == 1 and Path(done[0]["bundle"]).name == "motion.npz" and not done[0]["partial"]
    assert {p.name for p in out.iterdir()} == {"motion.npz", "motion.bvh", "motion.json"}
    meta = json.loads((out / "motion.json").read_text())
    assert meta["frames"] == FRAMES and meta["fps"] == pytest.approx(30.0)

    from icon_blender.core.motion import load_motion

    m = load_motion(out / "motion.npz")
    assert m.num_frames == FRAMES and m.fps == pytest.approx(30.0) and m.z_up
    with np.load(out / "motion.npz") as data:
        rest = body_model.rest_joints()[0].double().numpy()  # the CLI used the mean shape (no --bundle)
        poses, trans = from_amass(data["poses"], data["trans"], rest[0])
        idx = data["frame_index"]
    pred = posed_joints(rest, poses, trans)
    score = metrics(pred, walk.joints[idx], walk.planted[idx], 30.0)
    assert score["pa_mpjpe_mm"] < 80.0, score
    assert pred[:, [10, 11], 1].min() > -0.05  # feet not below the floor


def test_cancel_keeps_the_frames_done(walk, body_model, tmp_path: Path) -> None:
    cancel = CancelToken()

    def progress(event: dict) -> None:
        if event.get("frame") == 6:
            cancel.cancel()

    res = capture_motion(walk.video, tmp_path, MotionOptions(betas=walk.betas), body_model=body_model,
                         progress=progress, cancel=cancel)
    assert res.partial and res.frames == 6
    assert any("Cancelled" in w for w in res.warnings)
    assert json.loads(res.meta.read_text())["partial"] is True
    with np.load(res.npz) as data:
        assert data["poses"].shape == (6, 165)


def test_person_leaving_the_frame_is_cut_with_a_warning(walk, body_model, tmp_path: Path) -> None:
    frames = _frames(walk.video)
    background = frames[0][5:20, 5:20].reshape(-1, 3).mean(0).astype(np.uint8)
    shifted = []
    for i, f in enumerate(frames):  # the view pans: the person slides out to the left from frame 8 on
        dx = max(0, i - 7) * 60
        g = np.empty_like(f)
        g[:] = background
        if dx < f.shape[1]:
            g[:, : f.shape[1] - dx] = f[:, dx:]
        shifted.append(g)
    path = write_video(tmp_path / "leaving.mp4", shifted, 30, SIZE)
    res = capture_motion(path, tmp_path / "out", MotionOptions(betas=walk.betas), body_model=body_model)
    assert 6 <= res.frames < FRAMES
    assert any("missing" in w or "lost" in w for w in res.warnings), res.warnings


def test_video_without_a_person(tmp_path: Path, body_model) -> None:
    rng = np.random.default_rng(0)
    base = np.linspace(60, 200, SIZE[0] * 3).reshape(1, SIZE[0], 3).repeat(SIZE[1], 0).astype(np.uint8)
    frames = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(6)]
    path = write_video(tmp_path / "empty.mp4", frames, 30, SIZE)
    out = tmp_path / "out"
    with pytest.raises(EngineError) as err:
        capture_motion(path, out, body_model=body_model)
    assert err.value.code == "no_person" and "empty.mp4" in err.value.message
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_cli_refuses_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mov"
    bad.write_text("not a video")
    proc = subprocess.run([sys.executable, "-m", "icon_engine", "motion", str(bad), "--out", str(tmp_path / "o"),
                           "--progress", "json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3
    err = json.loads(proc.stdout.strip().splitlines()[-1])
    assert err["event"] == "error" and err["code"] == "bad_video" and err["hint"]
    assert not (tmp_path / "o").exists()


def test_a_video_stream_without_a_known_codec_is_a_bad_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged container can name a video stream FFmpeg has no decoder for: PyAV then gives it no codec context
    (found by mutating videos, wave 18: an AttributeError before); it is a clear bad_video error."""
    from types import SimpleNamespace

    from icon_engine.motion import video

    stream = SimpleNamespace(codec_context=None)
    closed = []
    container = SimpleNamespace(format=SimpleNamespace(name="mov,mp4,m4a,3gp,3g2,mj2"),
                                streams=SimpleNamespace(video=[stream]), close=lambda: closed.append(True))
    monkeypatch.setattr(video, "_open", lambda path: container)
    with pytest.raises(EngineError) as err:
        probe_video(tmp_path / "damaged.mp4")
    assert err.value.code == "bad_video" and "damaged.mp4" in err.value.message and err.value.hint
    assert closed == [True]


def test_two_people_crossing_keep_their_identities(walk, body_model, tmp_path: Path) -> None:
    """A second walker (the clip mirrored, walking the other way, behind) crosses ours: the track stays on one
    person all along (no identity swap), following that person's ground-truth pelvis."""
    frames = _frames(walk.video)
    stack = np.stack(frames)
    background = np.median(stack, axis=0).astype(np.int16)
    shift = 60
    comp = []
    for f in frames:
        other = np.roll(f[:, ::-1], -shift, axis=1).astype(np.int16)
        other_bg = np.roll(background[:, ::-1], -shift, axis=1)
        mine = np.abs(f.astype(np.int16) - background).max(-1) > 30
        theirs = np.abs(other - other_bg).max(-1) > 30
        out = f.copy()
        put = theirs & ~mine
        out[put] = other[put].astype(np.uint8)
        comp.append(out)
    path = write_video(tmp_path / "crossing.mp4", comp, 30, SIZE)
    res = capture_motion(path, tmp_path / "out", MotionOptions(betas=walk.betas), body_model=body_model)
    kp = res.raw["keypoints"]
    hip_x = kp[:, [23, 24], 0].mean(1)
    pelvis_px, _ = walk.camera.project(walk.joints[:, 0])
    a = pelvis_px[:, 0]
    b = SIZE[0] - a - shift  # the mirrored walker
    ok = np.isfinite(hip_x) & (np.abs(a - b) > 60)  # frames where the two are apart
    assert ok.sum() >= 8
    to_a, to_b = np.abs(hip_x - a)[ok], np.abs(hip_x - b)[ok]
    followed_a = (to_a < to_b).all()
    followed_b = (to_b < to_a).all()
    assert followed_a or followed_b, np.round(np.stack([hip_x, a, b]), 0)
    assert (np.minimum(to_a, to_b) < 40).all()


def test_cli_bundle_shape_option(tmp_path: Path) -> None:
    """``--bundle``: a bad folder is refused before any work; a real bundle's betas are accepted (the clip then
    has nobody in it, which is the next thing reported)."""
    from test_blender_bundle import make_bundle

    frames = [np.full((48, 64, 3), 90, np.uint8) for _ in range(3)]
    video = write_video(tmp_path / "grey.mp4", frames, 30, (64, 48))
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "icon_engine", "motion", str(video), "--out", str(tmp_path / "o"), "--progress",
         "json", *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
    bad = run("--bundle", str(tmp_path))
    assert bad.returncode == 3 and json.loads(bad.stdout.splitlines()[-1])["code"] == "bad_bundle"
    good = run("--bundle", str(make_bundle(tmp_path / "avatar")))
    assert json.loads(good.stdout.splitlines()[-1])["code"] == "no_person", good.stdout[-500:]
    assert not (tmp_path / "o").exists()
