"""Motion files without Blender: BVH read/write (Euler conventions, hierarchy, T-pose mapping onto SMPL-X, names
of the Mixamo/Unreal/Unity maps, bad files), SMPL 72-parameter files and frame-rate override."""

from __future__ import annotations

import numpy as np
import pytest

from icon_blender.core import bone_maps, bvh
from icon_blender.core._rotations import axis_angle_to_quaternion
from icon_blender.core.motion import MotionError, load_motion
from icon_engine.bundle import JOINT_NAMES, PARENTS, axis_angle_to_matrix, forward_kinematics


def test_euler_round_trip_and_bvh_order():
    rng = np.random.default_rng(0)
    rot = axis_angle_to_matrix(rng.normal(scale=0.8, size=(50, 3)))
    euler = bvh.matrix_to_euler_zxy(rot)
    assert np.abs(bvh.euler_to_matrix(euler, "ZXY") - rot).max() < 1e-9
    # BVH applies the listed channels left to right: R = Rz Rx Ry
    z = bvh.euler_to_matrix(np.array([90.0, 0, 0]), "ZXY")
    assert np.allclose(z @ [1, 0, 0], [0, 1, 0])


def quat_close(a: np.ndarray, b: np.ndarray) -> float:
    qa, qb = axis_angle_to_quaternion(a), axis_angle_to_quaternion(b)
    return float(np.abs(np.abs((qa * qb).sum(-1)) - 1).max())


@pytest.mark.parametrize("names", ["smplx", "mixamo", "unreal", "unity"])
def test_bvh_written_then_read_is_the_smplx_motion(tmp_path, names):
    """A T-pose-rest BVH carries SMPL-X poses unchanged; the pelvis displacement comes back in metres."""
    rng = np.random.default_rng(1)
    rest = np.array([[0, 0.95, 0]] + [[0.0, 0.0, 0.0]] * 54)  # joint positions only matter for offsets
    rest = forward_kinematics(rest + rng.normal(scale=0.1, size=(55, 3)), np.array(PARENTS), np.zeros((55, 3)))[1]
    poses = rng.normal(scale=0.3, size=(6, 55, 3))
    root = rest[0] + np.cumsum(rng.normal(scale=0.05, size=(6, 3)), 0)
    mapping = bone_maps.bone_map(names, JOINT_NAMES)
    path = bvh.write_bvh(tmp_path / "m.bvh", [mapping[n] for n in JOINT_NAMES], np.array(PARENTS), rest,
                         axis_angle_to_matrix(poses), root, 24.0)
    parsed = bvh.parse_bvh(path.read_text())
    assert parsed.fps == 24.0 and len(parsed.names) == 55 and parsed.names[0] == mapping["pelvis"]
    motion = bvh.load_bvh(path)
    assert motion.fps == 24.0 and motion.rest_relative and motion.layout == "bvh"
    assert quat_close(motion.poses, poses) < 1e-9
    assert np.abs(motion.trans - (root - rest[0])).max() < 1e-5


def test_bvh_in_centimetres_with_other_joints_and_a_z_up_option(tmp_path):
    text = """HIERARCHY
ROOT Hips
{
  OFFSET 0 95 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Spine
  {
    OFFSET 0 12 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT Tail
    {
      OFFSET 0 0 -20
      CHANNELS 3 Zrotation Yrotation Xrotation
      End Site
      {
        OFFSET 0 0 -5
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 95 0 0 0 0 0 0 30 0 0 0
10 95 0 0 90 0 0 0 0 45 0 0
"""
    path = tmp_path / "cm.bvh"
    path.write_text(text)
    motion = load_motion(path)  # by file type; centimetres detected (a 0.95 m hip is 95 units)
    assert motion.poses.shape == (2, 55, 3) and motion.fps == pytest.approx(30.0, abs=1e-3)
    assert np.allclose(motion.trans[1], [0.1, 0, 0])
    spine1 = JOINT_NAMES.index("spine1")
    assert np.allclose(motion.poses[0, spine1], [np.radians(30), 0, 0])  # Xrotation 30 on "Spine"
    assert np.allclose(motion.poses[1, 0], [0, np.radians(90), 0])  # Hips Yrotation 90
    others = [j for j in range(55) if j not in (0, spine1)]
    assert not motion.poses[:, others].any()  # the unknown "Tail" is ignored, joints the file lacks stay at rest
    z_up = bvh.load_bvh(path, up_axis="Z")
    assert np.allclose(z_up.poses[1, 0], [0, 0, -np.radians(90)])  # a Z-up file's vertical is Y-up's Y: −z ↔ y


@pytest.mark.parametrize(("text", "needle"), [
    ("not a bvh", "not a BVH file"),
    ("HIERARCHY ROOT a { OFFSET 0 0 0 CHANNELS 3 Zrotation Xrotation Yrotation } MOTION Frames: 2 "
     "Frame Time: 0.1 1 2 3", "expected 2 frames"),
    ("HIERARCHY ROOT a { OFFSET 0 0 x }", "number could not be read"),
    ("HIERARCHY ROOT Chest { OFFSET 0 0 0 CHANNELS 3 Zrotation Xrotation Yrotation } MOTION Frames: 1 "
     "Frame Time: 0.1 1 2 3", "no hips/pelvis"),
    # found by mutating motion files (wave 18): an unbalanced brace and an OFFSET before any joint ended in an
    # IndexError, an overflowing value in NaN rotations
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 3 Zrotation Xrotation Yrotation } } MOTION Frames: 1 "
     "Frame Time: 0.1 1 2 3", "'}' outside a joint"),
    ("HIERARCHY OFFSET 0 0 0 ROOT Hips { }", "'OFFSET' outside a joint"),
    ("HIERARCHY ROOT Hips { OFFSET 0 0 0 CHANNELS 3 Zrotation Xrotation Yrotation } MOTION Frames: 1 "
     "Frame Time: 0.1 1e308 2 3", "beyond"),
])
def test_bad_bvh_files_are_refused_clearly(tmp_path, text, needle):
    path = tmp_path / "bad.bvh"
    path.write_text(text)
    with pytest.raises(MotionError, match=needle):
        load_motion(path)


def test_smpl_72_parameter_files_and_frame_rate_override(tmp_path):
    rng = np.random.default_rng(2)
    smpl = rng.normal(scale=0.2, size=(5, 72))
    np.savez(tmp_path / "vibe.npz", poses=smpl, trans=np.zeros((5, 3)), fps=25.0)
    motion = load_motion(tmp_path / "vibe.npz")
    assert motion.layout == "smpl" and motion.fps == 25.0
    assert np.allclose(motion.poses[:, :22], smpl.reshape(5, 24, 3)[:, :22]) and not motion.poses[:, 22:].any()
    np.save(tmp_path / "poses.npy", smpl)
    with pytest.raises(MotionError, match="no frame rate"):
        load_motion(tmp_path / "poses.npy")
    assert load_motion(tmp_path / "poses.npy", fps=60).fps == 60.0
    assert load_motion(tmp_path / "vibe.npz", fps=50).fps == 50.0  # the override wins
    np.savez(tmp_path / "bad.npz", poses=np.zeros((5, 70)), fps=30.0)
    with pytest.raises(MotionError, match="72"):
        load_motion(tmp_path / "bad.npz")


def test_damaged_or_overflowing_motion_arrays_are_refused_clearly(tmp_path):
    """Found by mutating motion files (wave 18): a damaged .npy header, an archive whose compression method was
    overwritten, and finite poses or translations far beyond any motion all end in a MotionError."""
    rng = np.random.default_rng(3)
    good = {"poses": rng.normal(scale=0.2, size=(4, 165)), "trans": np.zeros((4, 3)), "mocap_framerate": 30.0}
    np.savez(tmp_path / "big_angle.npz", **{**good, "poses": np.full((4, 165), 1e308)})
    np.savez(tmp_path / "far.npz", **{**good, "trans": np.full((4, 3), 1e300)})
    (tmp_path / "header.npy").write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, "
                                          b"'shape': (4, 165" + b" " * 60 + b"\n")
    np.savez(tmp_path / "method.npz", **good)
    data = bytearray((tmp_path / "method.npz").read_bytes())
    central = data.index(b"PK\x01\x02")  # the first entry's central-directory record: its compression method
    data[central + 10:central + 12] = (99).to_bytes(2, "little")
    (tmp_path / "method.npz").write_bytes(bytes(data))
    for name, needle in (("big_angle.npz", "beyond"), ("far.npz", "beyond"), ("header.npy", "numeric .npy"),
                         ("method.npz", "could not be read")):
        with pytest.raises(MotionError, match=needle):
            load_motion(tmp_path / name, fps=30)
