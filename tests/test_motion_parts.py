"""Motion from video, the parts without a person: video reading, smoothing, trajectory, writers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.motion import procedural_motion, write_video  # noqa: E402
from icon_engine.bundle.skeleton import axis_angle_to_matrix  # noqa: E402
from icon_engine.errors import EngineError  # noqa: E402
from icon_engine.motion import smooth  # noqa: E402
from icon_engine.motion.trajectory import detect_contact, place_on_floor, posed_joints  # noqa: E402
from icon_engine.motion.video import frame_range, iter_frames, probe_video  # noqa: E402
from icon_engine.motion.writers import euler_zxy_deg, from_amass, to_amass, write_amass_npz, write_bvh  # noqa: E402


def _marker_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        img[: h // 4, : w // 4] = 250  # a marker in the top-left corner
        img[-4:, :] = (i * 20) % 250  # frame number in the bottom rows
        out.append(img)
    return out


# ------------------------------------------------------------------------------------------------------ video


def test_not_a_video_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(EngineError) as err:
        probe_video(bad)
    assert err.value.code == "bad_video" and "clip.mp4" in err.value.message
    with pytest.raises(EngineError) as err:
        probe_video(tmp_path / "missing.mp4")
    assert err.value.code == "photo_missing"
    png = tmp_path / "still.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png)
    with pytest.raises(EngineError) as err:
        probe_video(png)
    assert err.value.code == "bad_video" and "still image" in err.value.message


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_honoured(tmp_path: Path, rotation: int) -> None:
    frames = _marker_frames(3)
    path = write_video(tmp_path / "rot.mp4", frames, 30, (64, 48), rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation
    first = next(iter_frames(info)).rgb
    expected = np.rot90(frames[0], rotation // 90)
    assert first.shape == expected.shape
    bright, want = first[..., 0] > 150, expected[..., 0] > 150
    assert (bright == want).mean() > 0.95  # the marker ends where a player shows it


def test_time_range_and_rate(tmp_path: Path) -> None:
    path = write_video(tmp_path / "c.mp4", _marker_frames(30), 30, (64, 48))
    info = probe_video(path)
    assert info.fps == pytest.approx(30) and info.frame_count == 30
    s, e, f = frame_range(info, 0.2, 0.6, 15)
    got = list(iter_frames(info, s, e, f))
    times = [fr.time for fr in got]
    assert times[0] == pytest.approx(0.2, abs=0.02) and times[-1] <= 0.6 + 1e-6
    assert np.allclose(np.diff(times), 1 / 15, atol=0.01)
    for args in ((0.5, 0.2, None), (-1.0, None, None), (5.0, None, None), (None, None, 60.0)):
        with pytest.raises(EngineError) as err:
            frame_range(info, *args)
        assert err.value.code == "bad_option"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc for the resident size")
def test_4k_60fps_is_streamed_with_bounded_memory(tmp_path: Path) -> None:
    """60 frames of 3840×2160 would be 1.5 GB decoded; streaming keeps the resident growth far below."""
    w, h, n = 3840, 2160, 60
    base = np.zeros((h, w, 3), np.uint8)
    base[::64] = 200

    def frames():
        for i in range(n):
            f = base.copy()
            f[:, (i * 50) % w: (i * 50) % w + 40] = 255
            yield f

    path = write_video(tmp_path / "uhd.mp4", frames(), 60, (w, h), codec="mpeg4")
    info = probe_video(path)
    assert info.size == (w, h) and info.fps == pytest.approx(60)
    assert max(info.processing_size) <= 1280
    before = _rss_mb()
    peak = before
    count = 0
    for fr in iter_frames(info):
        assert fr.rgb.shape[:2] == (info.processing_size[1], info.processing_size[0])
        count += 1
        peak = max(peak, _rss_mb())
    assert count == n
    assert peak - before < 400, f"resident memory grew by {peak - before:.0f} MB while streaming"


# ------------------------------------------------------------------------------------------------- smoothing


def test_zero_phase_removes_jitter_without_lag() -> None:
    fps = 30.0
    t = np.arange(120) / fps
    clean = np.sin(2 * np.pi * 1.0 * t)
    noisy = clean + np.random.default_rng(0).normal(0, 0.05, t.shape)
    out = smooth.zero_phase(noisy, fps, 5.0)
    assert np.abs(out - clean)[5:-5].mean() < 0.7 * np.abs(noisy - clean)[5:-5].mean()
    jitter = lambda x: np.abs(np.diff(x - clean, 2))[5:-5].mean()  # noqa: E731
    assert jitter(out) < 0.25 * jitter(noisy)
    lags = [np.abs(np.roll(out, k) - clean)[10:-10].mean() for k in range(-3, 4)]
    assert int(np.argmin(lags)) == 3  # best alignment at zero lag
    causal = smooth.one_euro(noisy, fps)
    assert np.abs(np.diff(causal, 2)).mean() < np.abs(np.diff(noisy, 2)).mean()


def test_rotation_smoothing_respects_quaternion_signs() -> None:
    """A steady turn through 180° (where axis-angle wraps and quaternion signs flip) stays a steady turn."""
    fps = 30.0
    angles = np.linspace(0.0, 2 * np.pi * 0.9, 60)
    aa = np.zeros((60, 1, 3))
    aa[:, 0, 1] = angles
    rng = np.random.default_rng(1)
    noisy = aa + rng.normal(0, 0.02, aa.shape)
    q = smooth.axis_angle_to_quaternion(noisy)
    assert (np.sum(q[1:] * q[:-1], -1) < 0).any()  # the raw quaternions do flip sign
    assert (np.sum(smooth.sign_continuous(q)[1:] * smooth.sign_continuous(q)[:-1], -1) >= 0).all()
    out = smooth.smooth_rotations(noisy, fps, 5.0)
    R_out, R_true = axis_angle_to_matrix(out[:, 0]), axis_angle_to_matrix(aa[:, 0])
    err = np.degrees(np.arccos(np.clip((np.trace(np.swapaxes(R_out, 1, 2) @ R_true, axis1=1, axis2=2) - 1) / 2,
                                       -1, 1)))
    assert err.max() < 3.0


def test_gaps_are_bridged_and_segments_split() -> None:
    valid = np.array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1], bool)
    assert smooth.segments(valid, 2) == [(0, 6), (11, 14)]
    x = np.arange(14, dtype=float)[:, None] * np.ones((1, 3))
    x[~valid] = 99.0
    filled = smooth.bridge(x, valid, rotations=False)
    assert np.allclose(filled[2:4, 0], [2, 3])
    rot = np.zeros((14, 1, 3))
    rot[:, 0, 2] = np.linspace(0, 1, 14)
    rot[~valid] = 0.0
    out = smooth.bridge(rot, valid, rotations=True)
    assert np.allclose(out[2:4, 0, 2], np.linspace(0, 1, 14)[2:4], atol=0.02)


# --------------------------------------------------------------------------------------------- trajectory/io


@pytest.fixture(scope="module")
def rest_joints() -> np.ndarray:
    from icon_engine.body_model import load_body_model

    return load_body_model().rest_joints()[0].double().numpy()


def test_floor_and_foot_locking_pin_planted_feet(rest_joints: np.ndarray) -> None:
    """A sit-down with 1 cm of per-frame jitter: contacts found, floor at y = 0, planted feet stay put."""
    from bench.motion import place_ground_truth

    poses, planted, lift = procedural_motion("sit", 50)
    trans, planted = place_ground_truth(poses, planted, lift, rest_joints, 0.05)
    rng = np.random.default_rng(2)
    noisy = trans + rng.normal(0, 0.01, trans.shape)  # per-frame fit jitter
    out = place_on_floor(poses, noisy - [0.0, 0.0, 4.0], rest_joints, 0.05, 30.0)
    ball = out.joints[:, [10, 11]]
    assert out.contact.mean() > 0.9
    assert abs(ball[:, :, 1].min() - 0.05) < 0.02  # floor at y = 0 (balls at sole height)
    step = np.linalg.norm(np.diff(ball[:, :, [0, 2]], axis=0), axis=-1)
    unlocked = place_on_floor(poses, noisy - [0.0, 0.0, 4.0], rest_joints, 0.05, 30.0, lock_feet=False)
    step0 = np.linalg.norm(np.diff(unlocked.joints[:, [10, 11]][:, :, [0, 2]], axis=0), axis=-1)
    assert step.mean() < 0.002 < step0.mean()
    assert np.allclose(out.joints[0, 0, [0, 2]], 0.0, atol=0.05)  # recentred on the first pelvis
    c = detect_contact(out.joints, 30.0, 0.05)
    assert c.shape == (50, 2)


def test_amass_npz_round_trip_and_addon_reader(tmp_path: Path, rest_joints: np.ndarray) -> None:
    from icon_blender.core.motion import load_motion

    poses, _, _ = procedural_motion("walk", 10)
    trans = np.random.default_rng(3).normal(0, 0.3, (10, 3))
    p165, tz = to_amass(poses, trans, rest_joints[0])
    back_p, back_t = from_amass(p165, tz, rest_joints[0])
    assert np.allclose(posed_joints(rest_joints, back_p, back_t), posed_joints(rest_joints, poses, trans), atol=1e-6)
    # Z-up: the pelvis and the head of the AMASS body are the Y-up ones turned +90° about X
    zj = posed_joints(rest_joints, p165.reshape(10, 55, 3), tz)
    yj = posed_joints(rest_joints, poses, trans)
    assert np.allclose(zj[..., 2], yj[..., 1], atol=1e-6) and np.allclose(zj[..., 1], -yj[..., 2], atol=1e-6)
    path = write_amass_npz(tmp_path / "motion.npz", poses, trans, np.zeros(10), 24.0, rest_joints[0],
                           {"contact": np.zeros((10, 2), bool)})
    m = load_motion(path)
    assert m.num_frames == 10 and m.fps == 24.0 and m.z_up and m.layout == "smplx"
    with np.load(path, allow_pickle=False) as data:
        assert data["poses"].shape == (10, 165) and str(data["gender"]) == "neutral"
    assert not list(tmp_path.glob("*.part"))


def _parse_bvh(text: str):
    """A small BVH reader: joint names, parents, offsets (DFS order) and the frame rows."""
    lines = [ln.strip() for ln in text.splitlines()]
    motion = lines.index("MOTION")
    names, parents, offsets, stack = [], [], [], []
    in_end = False
    for ln in lines[:motion]:
        tok = ln.split()
        if not tok:
            continue
        if tok[0] in ("ROOT", "JOINT"):
            parents.append(stack[-1] if stack else -1)
            names.append(tok[1])
            stack.append(len(names) - 1)
        elif tok[0] == "End":
            in_end = True
        elif tok[0] == "OFFSET" and not in_end:
            offsets.append([float(v) for v in tok[1:]])
        elif tok[0] == "}":
            if in_end:
                in_end = False
            else:
                stack.pop()
    frames = np.array([[float(v) for v in ln.split()] for ln in lines[motion + 3:] if ln])
    return names, parents, np.array(offsets), frames


def _bvh_positions(row: np.ndarray, parents: list[int], offsets: np.ndarray) -> np.ndarray:
    """Joint positions (J, 3) of one BVH frame row (root position, then ZXY degrees per joint)."""
    glob_r, pos = [None] * len(parents), np.zeros((len(parents), 3))
    for j in range(len(parents)):
        z, x, y = np.radians(row[3 + 3 * j: 6 + 3 * j])
        R = axis_angle_to_matrix(np.array([0, 0, z])) @ axis_angle_to_matrix(np.array([x, 0, 0])) \
            @ axis_angle_to_matrix(np.array([0, y, 0]))
        if parents[j] < 0:
            glob_r[j], pos[j] = R, row[:3]
        else:
            glob_r[j] = glob_r[parents[j]] @ R
            pos[j] = pos[parents[j]] + glob_r[parents[j]] @ offsets[j]
    return pos


def test_bvh_reproduces_the_joint_positions(tmp_path: Path, rest_joints: np.ndarray) -> None:
    poses, _, _ = procedural_motion("jump", 12)
    trans = np.linspace([0, 0, 0], [0.5, 0.2, -0.3], 12)
    path = write_bvh(tmp_path / "m.bvh", poses, trans, rest_joints, 30.0)
    names, parents, offsets, frames = _parse_bvh(path.read_text())
    assert len(names) == 22 and names[0] == "pelvis" and frames.shape == (12, 3 + 22 * 3)
    want = posed_joints(rest_joints, poses, trans)[:, :22] * 100.0
    from icon_engine.bundle.skeleton import JOINT_NAMES

    order = [JOINT_NAMES.index(n) for n in names]
    for t in (0, 6, 11):
        assert np.abs(_bvh_positions(frames[t], parents, offsets) - want[t][order]).max() < 0.05  # centimetres
    # the Euler helper is the inverse of Rz Rx Ry
    zxy = np.radians(euler_zxy_deg(axis_angle_to_matrix(np.array([0.3, -0.7, 1.1]))))
    R = axis_angle_to_matrix(np.array([0, 0, zxy[0]])) @ axis_angle_to_matrix(np.array([zxy[1], 0, 0])) \
        @ axis_angle_to_matrix(np.array([0, zxy[2], 0]))
    assert np.allclose(R, axis_angle_to_matrix(np.array([0.3, -0.7, 1.1])), atol=1e-9)


def test_floor_tilt_only_from_planted_feet_that_cover_an_area() -> None:
    from icon_engine.motion.trajectory import _floor_rotation

    rng = np.random.default_rng(4)
    tilt = axis_angle_to_matrix(np.array([np.radians(8.0), 0.0, 0.0]))
    area = np.stack([rng.uniform(-1, 1, 60), np.zeros(60), rng.uniform(-4, -2, 60)], 1) @ tilt.T
    R, deg = _floor_rotation(area + rng.normal(0, 0.005, area.shape))
    assert abs(deg - 8.0) < 1.0 and np.allclose(R @ tilt @ [0, 1, 0], [0, 1, 0], atol=0.03)
    # two planted spots (a jump in place) with height noise: the tilt is unknown, the camera is taken as level
    spots = np.repeat([[-0.12, 0.0, -4.0], [0.12, 0.0, -4.0]], 30, 0) + rng.normal(0, 0.04, (60, 3))
    assert _floor_rotation(spots)[1] == 0.0


def test_start_past_half_a_second_seeks_to_the_right_frame(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), 4 * i, np.uint8) for i in range(60)]
    info = probe_video(write_video(tmp_path / "ramp.mp4", frames, 30, (64, 48)))
    got = list(iter_frames(info, *frame_range(info, 1.2, 1.5, None)))
    assert [g.index for g in got] == list(range(36, 46))
    assert abs(float(got[0].rgb.mean()) - 4 * 36) < 4  # the picture of frame 36, not of a keyframe before it


# -------------------------------------------------------------------------------------------------- hands


def test_unseen_hands_are_bridged_or_relaxed_to_rest() -> None:
    """A short gap between two sightings is interpolated; a long one relaxes to the rest pose and grows back;
    frames before the first sighting grow out of the rest pose; a hand never seen stays at rest."""
    T = 40
    aa = np.zeros((T, 15, 3))
    aa[:, :, 2] = 0.8  # a curled hand wherever it was seen
    seen = np.zeros(T, bool)
    seen[10:14] = seen[16:20] = seen[35:] = True  # gaps: 14–15 (short), 20–34 (long), 0–9 (start)
    out = smooth.fill_unseen(aa, seen, max_gap=4, blend=3)
    assert np.allclose(out[seen][..., 2], 0.8) and np.allclose(out[14:16, :, 2], 0.8, atol=1e-6)  # bridged
    curl = out[:, 0, 2]
    assert np.allclose(curl[20:23], [0.6, 0.4, 0.2]) and np.allclose(curl[23:32], 0.0)  # relaxed over 3 frames
    assert np.allclose(curl[32:35], [0.2, 0.4, 0.6])  # grows back before the next sighting
    assert np.allclose(curl[:7], 0.0) and curl[9] > curl[8] > curl[7] > 0.0
    assert np.allclose(smooth.fill_unseen(aa, np.zeros(T, bool), 4, 3), 0.0)


def test_trunk_is_smoothed_more_than_the_limbs() -> None:
    """Per-joint cut-offs: the trunk (2.5 Hz) loses more of a 3.5 Hz wobble than a limb (4 Hz); a slow motion
    passes both."""
    cut = smooth.joint_cutoffs(55)
    assert cut[0] == cut[9] == cut[15] == smooth.TRUNK_CUTOFF_HZ and cut[18] == cut[30] == smooth.ROTATION_CUTOFF_HZ
    assert smooth.TRUNK_CUTOFF_HZ < cut[13] < smooth.ROTATION_CUTOFF_HZ
    fps, t = 30.0, np.arange(90) / 30.0
    aa = np.zeros((90, 22, 3))
    aa[:, :, 0] = 0.3 * np.sin(2 * np.pi * 0.5 * t)[:, None] + 0.05 * np.sin(2 * np.pi * 3.5 * t)[:, None]
    out = smooth.smooth_rotations(aa, fps, cut[:22])
    slow = 0.3 * np.sin(2 * np.pi * 0.5 * t)
    wobble = lambda j: np.abs(out[15:-15, j, 0] - slow[15:-15]).mean()  # noqa: E731
    assert wobble(0) < 0.6 * wobble(18) and wobble(18) < 0.05
    assert np.allclose(out[:, 3], out[:, 0]) and np.allclose(smooth.smooth_rotations(aa, fps, 4.0)[:, 0], out[:, 18])


def test_hand_chain_is_the_body_below_the_forearm() -> None:
    """The video finger fit's hand chain puts the 21 hand points exactly where the whole fast body puts them."""
    import torch

    from icon_engine.body_model import load_body_model
    from icon_engine.fit.fastbody import FastBody
    from icon_engine.fit.hands import HandChain, hand_model_indices, model_hand_points

    model = load_body_model()
    body = FastBody(model, np.zeros(0, dtype=np.int64))
    names = list(model.keypoint_names)
    gen = torch.Generator().manual_seed(0)
    betas = torch.randn(body.num_betas, generator=gen) * 0.5
    pose = torch.randn(55, 3, generator=gen) * 0.3
    out = body.forward(betas, pose, torch.tensor([0.1, 0.2, 3.0]), with_vertices=False)
    _, j_rest, k_rest = body.rest(betas)
    for side, first in (("left", 25), ("right", 40)):
        chain = HandChain(side, j_rest, k_rest, body.kw, names)
        want = model_hand_points(out["joints"], out["keypoints"], *hand_model_indices(side, names))
        got = chain.points(out["rotations"][chain.forearm], pose[chain.wrist], out["joints"][chain.wrist],
                           pose[first:first + 15])
        assert torch.allclose(got, want, atol=1e-5)
        assert (want - want[0]).norm(dim=-1).max() > 0.1  # the points do span a hand


def test_bvh_with_hands_reproduces_the_finger_joints(tmp_path: Path, rest_joints: np.ndarray) -> None:
    from bench.motion import procedural_motion as motion
    from icon_engine.bundle.skeleton import JOINT_NAMES

    poses, _, _ = motion("wave", 8)
    assert np.abs(poses[:, 25:55]).max() > 0.3  # the wave clip bends the fingers
    trans = np.zeros((8, 3))
    path = write_bvh(tmp_path / "h.bvh", poses, trans, rest_joints, 30.0, hands=True)
    names, parents, offsets, frames = _parse_bvh(path.read_text())
    assert len(names) == 52 and frames.shape == (8, 3 + 52 * 3)
    assert set(names) == {JOINT_NAMES[j] for j in [*range(22), *range(25, 55)]}
    want = posed_joints(rest_joints, poses, trans) * 100.0
    order = [JOINT_NAMES.index(n) for n in names]
    for t in (0, 7):  # centimetres, the fingers' last joints included
        assert np.abs(_bvh_positions(frames[t], parents, offsets) - want[t][order]).max() < 0.05


def test_floor_tilt_needs_three_footholds(rest_joints: np.ndarray) -> None:
    """Sitting down with both feet still in the image, the fitted feet drift over an area (monocular depth): two
    footholds, so the camera is taken as level; walking through the same tilted world, the tilt is found."""
    from bench.motion import place_ground_truth
    from icon_engine.bundle.skeleton import matrix_to_axis_angle
    from icon_engine.motion.trajectory import FEET, _floor_rotation, footholds

    tilt = axis_angle_to_matrix(np.array([np.radians(6.0), 0.0, 0.0]))
    for kind in ("sit", "walk"):
        poses, planted, lift = procedural_motion(kind, 48)
        trans, planted = place_ground_truth(poses, planted, lift, rest_joints, 0.05)
        if kind == "sit":  # depth error: the still feet wander over a 28 cm wide area in the fit
            phase = np.linspace(0, 2 * np.pi, 48)
            trans = trans + 0.14 * np.stack([np.cos(phase), np.zeros(48), np.sin(phase)], 1)
        # the same motion seen by a camera pitched by 6°: rotate the world (orientation and pelvis)
        poses = poses.copy()
        poses[:, 0] = matrix_to_axis_angle(tilt @ axis_angle_to_matrix(poses[:, 0]))
        trans = (rest_joints[0] + trans) @ tilt.T - rest_joints[0] - [0.0, 0.0, 4.0]
        image_speed = np.where(planted, 0.0, 1.0)  # still in the image exactly while planted
        out = place_on_floor(poses, trans, rest_joints, 0.05, 30.0, image_speed=image_speed)
        joints = posed_joints(rest_joints, poses, trans)
        spots = footholds(joints[:, [FEET[0][1], FEET[1][1]]], image_speed)
        if kind == "sit":
            assert len(spots) == 2 and out.floor_tilt_deg == 0.0
            balls = joints[:, [FEET[0][1], FEET[1][1]]].reshape(-1, 3)
            assert _floor_rotation(balls)[1] > 3.0  # the area alone would have given a tilt
        else:
            assert len(spots) >= 3 and abs(out.floor_tilt_deg - 6.0) < 1.5
