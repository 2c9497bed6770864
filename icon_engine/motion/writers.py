"""Motion files: an SMPL-X/AMASS-layout ``.npz`` and a BVH, written atomically. Torch-free.

``motion.npz`` (AMASS SMPL-X layout, read by the add-on's **Apply motion** and by AMASS tools):

- ``poses (T, 165)`` float: 55 joints × axis-angle (radians) in SMPL-X order (global orientation, 21 body
  joints, jaw, eyes, 15 + 15 hand joints; jaw and eyes are zero, hands are zero unless captured);
- ``trans (T, 3)`` metres, ``betas (num_betas,)``, ``gender`` ("neutral"), ``mocap_framerate`` (fps),
  ``surface_model_type`` ("smplx");
- AMASS's world: **Z up** (floor z = 0). The SMPL-X body frame is Y up; the file's global orientation already
  contains the +90° turn about X, and ``trans`` follows SMPL's convention (pelvis = J0 + trans, J0 the rest
  pelvis of the body with ``betas`` in the Y-up model frame);
- extras (ignored by AMASS tools): ``camera_R (3, 3)``, ``camera_t (3,)`` world → OpenCV camera in the Y-up
  floor world, ``camera_K (3, 3)`` processing-pixel intrinsics, ``camera_size`` (W, H), ``contact (T, 2)``
  (left, right foot planted), ``frame_index (T,)`` source video frame numbers, ``tracked (T,)`` (False where a
  gap was bridged).

``motion.bvh``: the 22 body joints of SMPL-X (and, with hands, the 30 finger joints under the wrists) with the
rest offsets of the body (``betas``), centimetres, Y up, Z forward (the body faces +Z in the rest pose),
rotations ZXY Euler in degrees relative to the rest pose (a T-pose), root position channels on the pelvis.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..bundle.skeleton import JOINT_NAMES, PARENTS, axis_angle_to_matrix, matrix_to_axis_angle

#: +90° about X: SMPL-X's Y-up frame → AMASS's (and Blender's) Z-up frame.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
#: Joints written to the BVH: the body skeleton, plus the finger joints (SMPL-X 25–54) when hands are written.
BVH_JOINTS = 22
HAND_JOINTS = tuple(range(25, 55))


def to_amass(poses: np.ndarray, trans: np.ndarray, rest_pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Y-up poses (T, 55, 3) and translations (T, 3) → AMASS Z-up poses (T, 165) and translations (T, 3)."""
    poses = np.array(poses, dtype=np.float64, copy=True)
    glob = Y_UP_TO_Z_UP @ axis_angle_to_matrix(poses[:, 0])
    poses[:, 0] = matrix_to_axis_angle(glob)
    j0 = np.asarray(rest_pelvis, dtype=np.float64)
    trans_z = (j0 + trans) @ Y_UP_TO_Z_UP.T - j0
    return poses.reshape(len(poses), -1), trans_z


def from_amass(poses: np.ndarray, trans: np.ndarray, rest_pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`to_amass`: AMASS Z-up (T, 165), (T, 3) → Y-up poses (T, 55, 3), translations (T, 3)."""
    poses = np.array(poses, dtype=np.float64, copy=True).reshape(len(poses), 55, 3)
    poses[:, 0] = matrix_to_axis_angle(Y_UP_TO_Z_UP.T @ axis_angle_to_matrix(poses[:, 0]))
    j0 = np.asarray(rest_pelvis, dtype=np.float64)
    return poses, (j0 + trans) @ Y_UP_TO_Z_UP - j0


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_amass_npz(path: str | Path, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray, fps: float,
                    rest_pelvis: np.ndarray, extras: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``motion.npz`` (layout in the module doc) from Y-up ``poses (T, 55, 3)`` and ``trans (T, 3)``."""
    path = Path(path)
    p165, tz = to_amass(poses, trans, rest_pelvis)
    arrays = {
        "poses": p165.astype(np.float32), "trans": tz.astype(np.float32),
        "betas": np.asarray(betas, np.float32), "gender": np.array("neutral"),
        "mocap_framerate": np.array(float(fps)), "surface_model_type": np.array("smplx"),
        **{k: np.asarray(v) for k, v in (extras or {}).items()},
    }

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    _atomic(path, write)
    return path


def euler_zxy_deg(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) → BVH ``Zrotation Xrotation Yrotation`` angles (..., 3) in degrees
    (R = Rz(z) · Rx(x) · Ry(y))."""
    x = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    y = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    return np.degrees(np.stack([z, x, y], -1))


def write_bvh(path: str | Path, poses: np.ndarray, trans: np.ndarray, rest_joints: np.ndarray, fps: float,
              hands: bool = False) -> Path:
    """Write a BVH of the 22 body joints (``hands``: and the 30 finger joints) from Y-up ``poses (T, 55, 3)``,
    ``trans (T, 3)`` metres and the rest joints (55, 3) of the body (see the module doc for units and axes)."""
    path = Path(path)
    rest = np.asarray(rest_joints, np.float64) * 100.0
    joints = list(range(BVH_JOINTS)) + (list(HAND_JOINTS) if hands else [])
    children: dict[int, list[int]] = {j: [] for j in joints}
    for j in joints[1:]:
        children[PARENTS[j]].append(j)
    lines = ["HIERARCHY"]
    order: list[int] = []

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        off = rest[j] - (rest[PARENTS[j]] if j else 0.0)
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {JOINT_NAMES[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {off[0]:.4f} {off[1]:.4f} {off[2]:.4f}")
        lines.append(f"{pad}  CHANNELS " + ("6 Xposition Yposition Zposition " if j == 0 else "3 ")
                     + "Zrotation Xrotation Yrotation")
        order.append(j)
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            if j >= BVH_JOINTS:  # a fingertip: the last bone once more
                tip = 0.8 * (rest[j] - rest[PARENTS[j]])
                lines.append(f"{pad}    OFFSET {tip[0]:.4f} {tip[1]:.4f} {tip[2]:.4f}")
            else:
                lines.append(f"{pad}    OFFSET 0.0000 {5.0 if j == 15 else 0.0:.4f} "
                             f"{5.0 if j in (10, 11) else 0.0:.4f}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    T = len(poses)
    angles = euler_zxy_deg(axis_angle_to_matrix(np.asarray(poses, np.float64)))  # (T, 55, 3)
    root = (np.asarray(trans, np.float64) * 100.0) + rest[0]
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / fps:.6f}"]
    for t in range(T):
        vals = [*root[t]] + [a for j in order for a in angles[t, j]]
        lines.append(" ".join(f"{v:.4f}" for v in vals))

    def write(tmp: str) -> None:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")

    _atomic(path, write)
    return path
