"""BVH motion files: read and write. numpy only.

A BVH joint's rotation channels are its local rotation relative to a rest pose whose joint frames are all
aligned with the world axes. SMPL-X's pose parameters are exactly that for the T pose (every joint frame is the
world frame at zero pose), so a BVH whose rest is a T pose maps onto SMPL-X joint by joint, without retargeting
maths: ``Q_j = L_j`` (in the SMPL-X frame: Y up, the body faces +Z). We write Y-up BVH (the convention of
BVH files and of Blender's BVH importer defaults) with ZXY Euler channels in degrees and metres, the pelvis as
ROOT with position channels. When reading, joint names may be SMPL-X's or those of the Mixamo / Unreal / Unity
maps (``bone_maps``); other joints are ignored and SMPL-X joints the file lacks stay at rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import bone_maps
from ._rotations import matrix_to_quaternion, quaternion_to_axis_angle
from .motion import NUM_JOINTS, Motion, MotionError

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class Bvh:
    """A parsed BVH file: joints (``names``, ``parents``, rest ``offsets`` in file units), per-frame local
    rotations ``rotations`` (T, J, 3, 3) in the file's axes, ``root_positions`` (T, 3) file units, ``fps``."""

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    rotations: np.ndarray
    root_positions: np.ndarray
    fps: float


def _axis_rotation(axis: int, radians: np.ndarray) -> np.ndarray:
    c, s = np.cos(radians), np.sin(radians)
    out = np.zeros((*np.shape(radians), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., j, j] = c, c
    out[..., i, j], out[..., j, i] = -s, s
    return out


def euler_to_matrix(degrees: np.ndarray, order: str) -> np.ndarray:
    """(..., 3) Euler angles in degrees, applied in ``order`` as BVH does (``R = R_1 R_2 R_3``) → (..., 3, 3)."""
    rad = np.radians(np.asarray(degrees, dtype=np.float64))
    out = np.broadcast_to(np.eye(3), (*rad.shape[:-1], 3, 3)).copy()
    for k, axis in enumerate(order):
        out = out @ _axis_rotation(_AXES[axis], rad[..., k])
    return out


def matrix_to_euler_zxy(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations → (..., 3) ZXY Euler angles in degrees (``R = Rz Rx Ry``)."""
    r = np.asarray(rot, dtype=np.float64)
    x = np.arcsin(np.clip(r[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-r[..., 0, 1], r[..., 1, 1])
    y = np.arctan2(-r[..., 2, 0], r[..., 2, 2])
    return np.degrees(np.stack([z, x, y], axis=-1))


#: Largest angle (degrees) or offset / position (the file's length unit) a BVH may hold.
MAX_BVH_VALUE = 1e6


def parse_bvh(text: str, name: str = "motion.bvh") -> Bvh:
    """Parse BVH text; raises :class:`MotionError` naming the problem for a malformed file."""
    tokens = text.split()
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise MotionError(f"{name}: the file ends early. Re-export the BVH.")
        pos += 1
        return tokens[pos - 1]

    if not tokens or tokens[0] != "HIERARCHY":
        raise MotionError(f"{name} is not a BVH file (it must start with HIERARCHY).")
    pos = 1
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    try:
        while True:
            tok = take()
            if tok in ("ROOT", "JOINT"):
                names.append(take())
                parents.append(stack[-1] if stack else -1)
                if take() != "{":
                    raise MotionError(f"{name}: '{{' expected after {names[-1]}.")
                stack.append(len(names) - 1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
            elif tok == "End":
                take()  # "Site"
                depth = 0
                while True:  # skip the End Site block
                    t = take()
                    depth += t == "{"
                    depth -= t == "}"
                    if depth == 0 and t == "}":
                        break
            elif tok in ("OFFSET", "CHANNELS", "}") and not stack:
                raise MotionError(f"{name}: '{tok}' outside a joint in the hierarchy. Re-export the BVH.")
            elif tok == "OFFSET":
                offsets[stack[-1]] = [float(take()) for _ in range(3)]
            elif tok == "CHANNELS":
                channels[stack[-1]] = [take() for _ in range(int(take()))]
            elif tok == "}":
                stack.pop()
            elif tok == "MOTION":
                break
            else:
                raise MotionError(f"{name}: unexpected '{tok}' in the hierarchy.")
        if take() != "Frames:":
            raise MotionError(f"{name}: 'Frames:' expected after MOTION.")
        n_frames = int(take())
        if take() != "Frame" or take() != "Time:":
            raise MotionError(f"{name}: 'Frame Time:' expected.")
        frame_time = float(take())
        width = sum(len(c) for c in channels)
        values = np.array(tokens[pos:pos + n_frames * width], dtype=np.float64)
    except ValueError as exc:
        raise MotionError(f"{name}: a number could not be read ({exc}). Re-export the BVH.") from exc
    if not names or n_frames < 1 or len(values) != n_frames * width or frame_time <= 0:
        raise MotionError(f"{name}: expected {n_frames} frames of {width} values with a positive frame time.")
    if not np.all(np.isfinite(values)) or not np.all(np.isfinite(offsets)):
        raise MotionError(f"{name}: the motion contains NaN or infinity.")
    if max(np.abs(values).max(initial=0.0), np.abs(np.asarray(offsets)).max(initial=0.0)) > MAX_BVH_VALUE:
        raise MotionError(f"{name}: a value beyond ±{MAX_BVH_VALUE:g} (degrees or length units): not a motion.")
    data = values.reshape(n_frames, width)
    rotations = np.broadcast_to(np.eye(3), (n_frames, len(names), 3, 3)).copy()
    root = np.zeros((n_frames, 3))
    col = 0
    for j, chans in enumerate(channels):
        block = data[:, col:col + len(chans)]
        col += len(chans)
        rot = [(k, c[0]) for k, c in enumerate(chans) if c.endswith("rotation")]
        if len(rot) == 3:
            rotations[:, j] = euler_to_matrix(block[:, [k for k, _ in rot]], "".join(a for _, a in rot))
        for k, c in enumerate(chans):
            if c.endswith("position") and parents[j] < 0:
                root[:, _AXES[c[0]]] = block[:, k]
    if parents.count(-1) != 1:
        raise MotionError(f"{name}: a BVH needs exactly one ROOT joint.")
    fps = 1.0 / frame_time
    fps = round(fps, 3) if abs(fps - round(fps, 3)) < 1e-4 else fps  # frame times are written rounded
    return Bvh(names, np.array(parents), np.array(offsets, dtype=np.float64), rotations, root, fps)


def smplx_name(name: str) -> str | None:
    """The SMPL-X joint a BVH joint name stands for (SMPL-X names, or a Mixamo/Unreal/Unity bone name)."""
    from ..engine_link import JOINT_NAMES

    if name in JOINT_NAMES:
        return name
    plain = name.split(":")[-1].lower()
    for target in ("mixamo", "unreal", "unity"):
        for joint, bone in bone_maps.bone_map(target, JOINT_NAMES).items():
            if bone.split(":")[-1].lower() == plain and joint in JOINT_NAMES:
                return joint
    return None


def bvh_to_motion(bvh: Bvh, up_axis: str = "Y", scale: float | None = None) -> Motion:
    """A :class:`Motion` (SMPL-X joints, Y-up poses) from a BVH whose rest is a T pose.

    ``scale``: metres per file unit (None: centimetres when the rest skeleton is taller than 5 units, else
    metres). ``up_axis`` "Z" for Z-up files (e.g. Blender's own BVH export). The translation is relative to
    the file's rest pelvis (``Motion.rest_relative``): the avatar's pelvis follows the file's pelvis displacement
    from its own floor-standing rest.
    """
    from ..engine_link import JOINT_NAMES

    index = {smplx_name(n): j for j, n in enumerate(bvh.names)}
    index.pop(None, None)
    if "pelvis" not in index:
        raise MotionError("The BVH has no hips/pelvis joint with a known name (SMPL-X, Mixamo, Unreal or Unity "
                          "names). Rename its joints or export it from the ICON avatar.")
    rest = np.zeros_like(bvh.offsets)
    for j, p in enumerate(bvh.parents):
        rest[j] = bvh.offsets[j] + (rest[p] if p >= 0 else 0.0)
    if scale is None:
        scale = 0.01 if np.ptp(rest, axis=0).max() > 5.0 else 1.0
    if up_axis not in ("Y", "Z"):
        raise ValueError(f"up_axis must be 'Y' or 'Z', got {up_axis!r}")
    # Z-up file → Y-up SMPL-X frame: x → x, z → y, −y → z (the inverse of SMPL-X → Blender)
    c = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]) if up_axis == "Z" else np.eye(3)
    n = len(bvh.rotations)
    poses = np.zeros((n, NUM_JOINTS, 3))
    glob = np.zeros_like(bvh.rotations)
    for j, p in enumerate(bvh.parents):  # global rotations of the file's joints
        glob[:, j] = bvh.rotations[:, j] if p < 0 else glob[:, p] @ bvh.rotations[:, j]
    smplx_parent = {name: JOINT_NAMES[p] if p >= 0 else None
                    for name, p in zip(JOINT_NAMES, _smplx_parents(), strict=True)}
    for joint, j in index.items():
        k = JOINT_NAMES.index(joint)
        # the SMPL-X parent's global rotation (skipped file joints in between are folded in)
        parent = smplx_parent[joint]
        while parent is not None and parent not in index:
            parent = smplx_parent[parent]
        g_parent = glob[:, index[parent]] if parent is not None else np.eye(3)
        local = np.swapaxes(g_parent, -1, -2) @ glob[:, j]
        poses[:, k] = quaternion_to_axis_angle(matrix_to_quaternion(c @ local @ c.T))
    # the pelvis's displacement from its rest position (forward kinematics of the file's joints), metres, Y up
    positions = np.zeros((n, len(bvh.names), 3))
    for j, p in enumerate(bvh.parents):
        positions[:, j] = bvh.root_positions if p < 0 else positions[:, p] + glob[:, p] @ bvh.offsets[j]
    pelvis = index["pelvis"]
    trans = ((positions[:, pelvis] - rest[pelvis]) * scale) @ c.T
    return Motion(poses, trans, float(bvh.fps), "bvh", False, rest_relative=True)


def _smplx_parents() -> list[int]:
    from ..engine_link import PARENTS

    return [int(p) for p in PARENTS]


def load_bvh(path: str | Path, up_axis: str = "Y", scale: float | None = None) -> Motion:
    """Read a BVH file as a :class:`Motion` (see :func:`bvh_to_motion`)."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"Motion file not found: {path}. Pick an existing .bvh file.")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionError(f"{path.name} could not be read as text ({exc}). Is it a BVH file?") from exc
    return bvh_to_motion(parse_bvh(text, path.name), up_axis=up_axis, scale=scale)


def write_bvh(path: str | Path, names: list[str], parents: np.ndarray, rest_joints: np.ndarray,
              local_rotations: np.ndarray, root_positions: np.ndarray, fps: float) -> Path:
    """Write a Y-up BVH (metres, ZXY degrees): ``rest_joints`` (J, 3) rest positions, ``local_rotations``
    (T, J, 3, 3) relative to that rest in world-aligned frames, ``root_positions`` (T, 3) of joint 0 (the ROOT,
    ``parents[0] == -1``). Written beside and renamed into place."""
    path = Path(path)
    parents = np.asarray(parents)
    rest = np.asarray(rest_joints, dtype=np.float64)
    children = {j: [c for c in range(len(names)) if parents[c] == j] for j in range(len(names))}
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "\t" * depth
        offset = rest[j] if parents[j] < 0 else rest[j] - rest[parents[j]]
        lines.append(f"{pad}{'ROOT' if parents[j] < 0 else 'JOINT'} {names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        chans = ("Xposition Yposition Zposition " if parents[j] < 0 else "") + "Zrotation Xrotation Yrotation"
        lines.append(f"{pad}\tCHANNELS {len(chans.split())} {chans}")
        for c in children[j]:
            joint(c, depth + 1)
        if not children[j]:
            tip = offset / max(np.linalg.norm(offset), 1e-9) * 0.03
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                          f"{pad}\t\tOFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    root = int(np.flatnonzero(parents < 0)[0])
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in children[j]:
            visit(c)

    joint(root, 0)
    visit(root)
    euler = matrix_to_euler_zxy(np.asarray(local_rotations)[:, order])  # (T, J, 3) in file order
    n = len(euler)
    lines += ["MOTION", f"Frames: {n}", f"Frame Time: {1.0 / fps:.10f}"]
    root_pos = np.asarray(root_positions, dtype=np.float64)
    for t in range(n):
        values = np.concatenate([root_pos[t], euler[t].ravel()])
        lines.append(" ".join(f"{v:.6f}" for v in values))
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
