"""SMPL-X / AMASS motion files (``.npz``) → per-frame pose and translation at the scene's frame rate. numpy only.

Accepted layouts of ``poses`` (T × D, axis-angle, radians):

- SMPL-X (D = 165): 55 joints in SMPL-X order (AMASS SMPL-X release, MoSh++ ``*_stageii.npz``).
- SMPL+H (D = 156): 22 body joints + 15 left-hand + 15 right-hand joints (AMASS SMPL+H release); mapped onto
  SMPL-X joints 0–21 and 25–54, jaw and eyes stay at zero.
- SMPL (D = 72): 24 joints (HMR/VIBE/4D-Humans style); joints 0–21 are SMPL-X's 0–21, SMPL's two hand joints
  (22, 23) have no SMPL-X counterpart and are dropped, the fingers stay flat. Also as a plain ``.npy`` T × 72
  (or T × 165 / 156) array, whose frame rate the caller gives.

Frame rate from ``mocap_framerate``, ``mocap_frame_rate`` or ``fps``. ``trans`` (T × 3, metres) is optional
(zero when absent). Files are read with ``np.load(allow_pickle=False)``: a file that needs unpickling is refused.
AMASS files (those with a ``mocap_*`` rate key) are Z-up worlds; others are taken as Y-up (SMPL-X frame) unless
the caller says otherwise.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._rotations import axis_angle_to_quaternion, quaternion_to_axis_angle, slerp

NUM_JOINTS = 55
FPS_KEYS = ("mocap_framerate", "mocap_frame_rate", "fps")
#: SMPL-X joint index of each SMPL+H joint (22 body + 30 hand joints).
SMPLH_TO_SMPLX = np.array(list(range(22)) + list(range(25, 55)))


class MotionError(ValueError):
    """A motion file the add-on cannot use; the message names the problem and the fix."""


@dataclass
class Motion:
    """A motion: ``poses`` (T, 55, 3) axis-angle, ``trans`` (T, 3) metres, ``fps``, ``layout``, ``z_up``.

    ``rest_relative``: ``trans`` is the pelvis's displacement from the rig's own (floor-standing) rest pelvis
    (BVH files), instead of SMPL's convention (pelvis = the body model's rest pelvis J0 + ``trans``).
    """

    poses: np.ndarray
    trans: np.ndarray
    fps: float
    layout: str
    z_up: bool
    rest_relative: bool = False

    @property
    def num_frames(self) -> int:
        return len(self.poses)


#: Largest joint angle (radians) and root translation (metres) a motion may hold: beyond them the numbers are not a
#: motion (and overflow the rotations' maths).
MAX_ANGLE = 100.0
MAX_METRES = 1e4


def load_motion(path: str | Path, up_axis: str = "auto", fps: float | None = None) -> Motion:
    """Read an SMPL-X/AMASS/SMPL motion ``.npz`` or ``.npy`` (poses only), or a ``.bvh`` (``core.bvh``).
    ``up_axis``: "auto", "Y" or "Z"; ``fps`` overrides the file's frame rate (frames per second)."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"Motion file not found: {path}. Pick an existing .npz, .npy or .bvh file.")
    if path.suffix.lower() == ".bvh":
        from .bvh import load_bvh

        motion = load_bvh(path, up_axis="Z" if up_axis == "Z" else "Y")
        if fps:
            motion.fps = float(fps)
        return motion
    if path.suffix.lower() == ".npy":
        try:
            poses = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - numpy's header parser fails with any error (TokenError…)
            raise MotionError(f"{path.name} could not be read as a numeric .npy array ({exc}).") from exc
        return motion_from_arrays({"poses": poses}, name=path.name, up_axis=up_axis, fps_override=fps)
    if not zipfile.is_zipfile(path):
        raise MotionError(
            f"{path.name} is not an .npz archive. Use an SMPL-X or AMASS motion saved with numpy.savez "
            "(.npz with 'poses' and a frame rate)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: _read_key(data, key, path) for key in data.files}
    except MotionError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in zipfile, zlib or numpy with any error
        raise MotionError(f"{path.name} could not be read as an .npz archive ({exc}). Re-export the motion.") from exc
    return motion_from_arrays(arrays, name=path.name, up_axis=up_axis, fps_override=fps)


def _read_key(data: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray | None:
    try:
        return data[key]
    except ValueError:  # an object array (pickled) — never unpickled; only fatal if we need that key
        if key in ("poses", "trans", *FPS_KEYS):
            raise MotionError(
                f"{path.name}: '{key}' is stored as a pickled object, which the add-on never loads for safety. "
                "Save it as a plain numeric array (np.savez with float arrays)."
            ) from None
        return None


def motion_from_arrays(arrays: dict, name: str = "motion", up_axis: str = "auto",
                       fps_override: float | None = None) -> Motion:
    """Validate the arrays of a motion file and convert them to a :class:`Motion`. ``fps_override`` replaces the
    file's frame rate (frames per second; needed for files without one)."""
    if "poses" not in arrays or arrays["poses"] is None:
        raise MotionError(f"{name} has no 'poses' array. Use an SMPL-X (165 values) or SMPL+H (156) motion file.")
    poses = np.asarray(arrays["poses"])
    if poses.dtype.kind not in "fiu" or poses.ndim != 2 or poses.shape[0] < 1:
        raise MotionError(f"{name}: 'poses' must be a T × 165, 156 or 72 numeric array, got shape {poses.shape}.")
    if poses.shape[1] == 165:
        full, layout = poses.reshape(-1, NUM_JOINTS, 3).astype(np.float64), "smplx"
    elif poses.shape[1] == 156:
        full = np.zeros((len(poses), NUM_JOINTS, 3))
        full[:, SMPLH_TO_SMPLX] = poses.reshape(-1, 52, 3)
        layout = "smplh"
    elif poses.shape[1] == 72:
        full = np.zeros((len(poses), NUM_JOINTS, 3))
        full[:, :22] = poses.reshape(-1, 24, 3)[:, :22]
        layout = "smpl"
    else:
        raise MotionError(
            f"{name}: 'poses' has {poses.shape[1]} values per frame; expected 165 (SMPL-X), 156 (SMPL+H) or 72 "
            "(SMPL). Convert the motion to one of those layouts."
        )
    if not np.all(np.isfinite(full)):
        raise MotionError(f"{name}: 'poses' contains NaN or infinity. Re-export the motion.")
    if np.abs(full).max(initial=0.0) > MAX_ANGLE:
        raise MotionError(f"{name}: 'poses' holds angles beyond ±{MAX_ANGLE:g} radians: not axis-angle rotations. "
                          "Re-export the motion.")
    trans = arrays.get("trans")
    if trans is None:
        trans = np.zeros((len(full), 3))
    trans = np.asarray(trans)
    if trans.dtype.kind not in "fiu" or trans.shape != (len(full), 3) or not np.all(np.isfinite(trans)):
        raise MotionError(f"{name}: 'trans' must be a finite {len(full)} × 3 array, got shape {trans.shape}.")
    if np.abs(trans).max(initial=0.0) > MAX_METRES:
        raise MotionError(f"{name}: 'trans' moves beyond ±{MAX_METRES:g} metres. Re-export the motion.")
    fps_key = next((k for k in FPS_KEYS if arrays.get(k) is not None), None)
    if fps_key is None and fps_override:
        arrays, fps_key = {**arrays, "fps": fps_override}, "fps"
    if fps_key is None:
        raise MotionError(f"{name} has no frame rate. Add 'mocap_framerate', 'mocap_frame_rate' or 'fps', or give "
                          "the frame rate when applying it.")
    try:
        fps = float(np.asarray(arrays[fps_key]).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        fps = float("nan")
    if not np.isfinite(fps) or fps <= 0 or fps > 10000:
        raise MotionError(f"{name}: '{fps_key}' = {arrays[fps_key]!r} is not a usable frame rate.")
    if up_axis not in ("auto", "Y", "Z"):
        raise ValueError(f"up_axis must be 'auto', 'Y' or 'Z', got {up_axis!r}")
    if fps_override:
        fps = float(fps_override)
    z_up = fps_key.startswith("mocap") if up_axis == "auto" else up_axis == "Z"
    return Motion(full, trans.astype(np.float64), fps, layout, z_up)


def resample(motion: Motion, target_fps: float) -> Motion:
    """The motion at ``target_fps``: rotations by slerp, translation linearly; the duration is kept.

    Frame k of the result is at time k / target_fps; the last frame is at or before the source's last frame.
    """
    if target_fps <= 0:
        raise ValueError("target_fps must be positive")
    n = motion.num_frames
    if n == 1 or abs(target_fps - motion.fps) < 1e-9:
        return Motion(motion.poses.copy(), motion.trans.copy(), float(target_fps), motion.layout, motion.z_up,
                      motion.rest_relative)
    duration = (n - 1) / motion.fps
    count = int(np.floor(duration * target_fps + 1e-9)) + 1
    src = np.arange(count) / target_fps * motion.fps  # fractional source frame index
    i0 = np.clip(np.floor(src).astype(int), 0, n - 1)
    i1 = np.clip(i0 + 1, 0, n - 1)
    frac = src - i0
    quats = axis_angle_to_quaternion(motion.poses)
    q = slerp(quats[i0], quats[i1], np.broadcast_to(frac[:, None], (count, NUM_JOINTS)))
    trans = motion.trans[i0] * (1 - frac[:, None]) + motion.trans[i1] * frac[:, None]
    return Motion(quaternion_to_axis_angle(q), trans, float(target_fps), motion.layout, motion.z_up,
                  motion.rest_relative)
