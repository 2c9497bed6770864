"""Motion-from-video benchmark: synthetic clips with ground truth, rendered from the open body dressed.

Four motions (walk, turn, jump, sit), ≥ 48 frames each at 30 fps, one fixed camera, 1280×720 by default, and
"wave" (standing, both forearms raised, palms to the camera, the right hand waving, both hands opening and
closing a grasp out of phase: hand articulation, rasterised at full size so the fingers are sharp). The
ground-truth motion is procedural; its root translation is solved so planted feet do not slide (the stance foot's
ball joint is pinned while planted), so the clips have exact foot contacts. The body is dressed by offsetting its
surface along the normals per garment (the outfits of ``bench/synthetic.py``) and rendered Lambert-shaded
(``icon_engine.render``), then encoded with PyAV (H.264).

Metrics over the 22 body joints (metres → mm): MPJPE after aligning the pelvis, PA-MPJPE (per-frame Procrustes),
acceleration error (mean |Δ²joints| difference, mm/frame², pelvis-aligned) of the final motion and of the
unsmoothed per-frame fit, foot skating (mean horizontal displacement of the ball-of-foot joint between
consecutive ground-truth contact frames, cm/frame), speed (frames per second, wall and CPU, and the load).
Hands (clips with finger motion): PA-MPJPE over each hand's 16 joints (wrist and 15 finger joints, Procrustes per
hand and frame, mm) of the capture and of the same capture with flat hands (what the body alone gives), and the
frames in which each hand was seen.

    python bench/motion.py --out /tmp/motion-bench            # all four clips, 720p
    python bench/motion.py --clips walk --size 640x360 --frames 48
    python bench/motion.py --clips wave --no-hands             # speed without the hands
    python bench/motion.py --film /tmp/phone.mp4              # a phone-like "real" clip (portrait, rotated)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.lib.metrics import procrustes_aligned  # noqa: E402
from bench.synthetic import HAIR, SKIN, garment_offsets, random_outfit, vertex_regions  # noqa: E402
from icon_engine.bundle.skeleton import axis_angle_to_matrix, matrix_to_axis_angle  # noqa: E402
from icon_engine.camera import Camera, default_intrinsics  # noqa: E402
from icon_engine.motion.trajectory import FEET, posed_joints  # noqa: E402

MOTIONS = ("walk", "turn", "jump", "sit")
HAND_MOTIONS = ("wave",)
L_WRIST, R_WRIST = 20, 21
#: Each hand's joints: the wrist and its 15 finger joints (SMPL-X order).
HAND_JOINTS = {"left": [L_WRIST, *range(25, 40)], "right": [R_WRIST, *range(40, 55)]}
L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = 1, 2, 3, 4, 5, 6, 7, 8, 9
NECK, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 12, 15, 16, 17, 18, 19
BODY = 22


def _rot(axis: str, angle: float) -> np.ndarray:
    v = {"x": (1.0, 0, 0), "y": (0, 1.0, 0), "z": (0, 0, 1.0)}[axis]
    return axis_angle_to_matrix(np.array(v) * angle)


def _compose(*mats: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    for m in mats:
        out = out @ m
    return matrix_to_axis_angle(out)


def _base_pose() -> np.ndarray:
    """Arms down by the sides (SMPL-X rest is a T-pose)."""
    p = np.zeros((55, 3))
    p[L_SHOULDER] = (0.0, 0.0, -1.2)
    p[R_SHOULDER] = (0.0, 0.0, 1.2)
    p[L_ELBOW] = (0.0, -0.3, 0.0)
    p[R_ELBOW] = (0.0, 0.3, 0.0)
    return p


def _arms(p: np.ndarray, swing_l: float, swing_r: float, down: float = 1.2, elbow: float = 0.3) -> None:
    """Arms lowered by ``down`` rad then swung forward (negative) / backward (positive) about the body's x."""
    p[L_SHOULDER] = _compose(_rot("x", swing_l), _rot("z", -down))
    p[R_SHOULDER] = _compose(_rot("x", swing_r), _rot("z", down))
    p[L_ELBOW] = (0.0, -elbow, 0.0)
    p[R_ELBOW] = (0.0, elbow, 0.0)


def procedural_motion(kind: str, frames: int, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground-truth poses (T, 55, 3), planted-foot labels (T, 2) and extra root height (T,) metres (flight) for
    ``kind`` in :data:`MOTIONS`. Positive hip x-rotation swings the thigh back; positive knee x bends it."""
    T = frames
    poses = np.repeat(_base_pose()[None], T, 0)
    lift = np.zeros(T)
    planted = np.ones((T, 2), bool)
    t = np.arange(T) / fps
    if kind == "walk":
        phase = 2 * math.pi * t / 1.1
        for i, ph in enumerate(phase):  # a foot is planted while its thigh swings back (cos φ ≤ 0 for the left)
            p = poses[i]
            s, c = math.sin(ph), math.cos(ph)
            p[0] = (0.0, math.radians(50), 0.0)  # walking diagonally across the view
            p[L_HIP] = (-0.4 * s, 0.0, 0.03)
            p[R_HIP] = (0.4 * s, 0.0, -0.03)
            # the knee folds from late stance (heel off, rolling over the ball) through the swing
            p[L_KNEE] = (0.05 + 1.0 * max(0.0, math.cos(ph + 0.6)) ** 1.5, 0.0, 0.0)
            p[R_KNEE] = (0.05 + 1.0 * max(0.0, -math.cos(ph + 0.6)) ** 1.5, 0.0, 0.0)
            _arms(p, 0.35 * s, -0.35 * s)
            p[SPINE1] = (0.05, 0.08 * s, 0.0)
        planted = np.stack([np.cos(phase) <= 0.05, np.cos(phase) >= -0.05], 1)
    elif kind == "turn":
        phase = 2 * math.pi * t / 0.9
        for i, ph in enumerate(phase):
            p = poses[i]
            p[0] = (0.0, math.pi * min(1.0, t[i] / t[-1]) * 0.9 - 0.3, 0.0)  # turning on the spot, ~160°
            up_l, up_r = max(0.0, math.sin(ph)), max(0.0, -math.sin(ph))
            p[L_HIP] = (-0.5 * up_l, 0.0, 0.05)
            p[R_HIP] = (-0.5 * up_r, 0.0, -0.05)
            p[L_KNEE] = (0.05 + 0.9 * up_l, 0.0, 0.0)
            p[R_KNEE] = (0.05 + 0.9 * up_r, 0.0, 0.0)
            _arms(p, -0.2 * up_r, -0.2 * up_l, down=1.1, elbow=0.5)
        planted = np.stack([np.sin(phase) <= 0.05, np.sin(phase) >= -0.05], 1)
    elif kind == "jump":
        take_off, land = int(0.40 * T), int(0.62 * T)
        for i in range(T):
            p = poses[i]
            p[0] = (0.0, 0.25, 0.0)
            if i < take_off:  # crouch then extend
                c = math.sin(math.pi * i / take_off) ** 2
            elif i < land:
                c = 0.0
            else:  # absorb the landing, stand up
                c = 0.8 * math.sin(math.pi * min(1.0, (i - land) / max(T - land - 4, 1))) ** 2
            p[L_HIP] = (-0.9 * c, 0.0, 0.08)
            p[R_HIP] = (-0.9 * c, 0.0, -0.08)
            p[L_KNEE] = (1.3 * c, 0.0, 0.0)
            p[R_KNEE] = (1.3 * c, 0.0, 0.0)
            p[L_ANKLE] = (-0.4 * c, 0.0, 0.0)
            p[R_ANKLE] = (-0.4 * c, 0.0, 0.0)
            p[SPINE1] = (0.35 * c, 0.0, 0.0)
            # the arms swing forward-up through the flight, smoothly (from 4 frames before take-off to after landing)
            up = 1.4 * math.sin(math.pi * min(1.0, max(0.0, (i - take_off + 4) / (land - take_off + 8)))) ** 2
            _arms(p, 0.6 * c - up, 0.6 * c - up, elbow=0.4)
        s = (np.arange(T) - take_off) / max(land - take_off, 1)
        fly = (np.arange(T) >= take_off) & (np.arange(T) < land)
        lift[fly] = 4 * 0.28 * s[fly] * (1 - s[fly])
        planted[fly] = False
    elif kind == "sit":
        for i in range(T):
            p = poses[i]
            p[0] = (0.0, -0.35, 0.0)
            c = 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, (t[i] - 0.3) / 1.0)))
            p[L_HIP] = (-1.45 * c, 0.0, 0.1 * c + 0.03)
            p[R_HIP] = (-1.45 * c, 0.0, -0.1 * c - 0.03)
            p[L_KNEE] = (1.5 * c + 0.05, 0.0, 0.0)
            p[R_KNEE] = (1.5 * c + 0.05, 0.0, 0.0)
            p[SPINE1] = (0.25 * c, 0.0, 0.0)
            _arms(p, -0.5 * c, -0.5 * c, elbow=0.3 + 0.9 * c)
    elif kind == "wave":
        _wave(poses, t)
    else:
        raise ValueError(f"unknown motion {kind!r}")
    return poses, planted, lift


def _finger_curl(curl: float, thumb: float, side: str) -> np.ndarray:
    """(15, 3) hand pose: the four fingers bent towards the palm by ``curl`` (0 open … 1 a loose fist; the
    middle joints most) and the thumb folded across the palm by ``thumb``, for the flat-hand T-pose axes (the left
    hand's fingers point +x with the palm down, so bending is about −z; the right hand mirrors it)."""
    sign = -1.0 if side == "left" else 1.0
    hand = np.zeros((15, 3))
    for f, scale in enumerate((1.0, 1.05, 0.95, 1.1)):  # index, middle, pinky, ring (SMPL-X order)
        for k, amount in enumerate((0.9, 1.3, 0.8)):
            hand[3 * f + k] = (0.0, 0.0, sign * curl * amount * scale)
    for k, amount in enumerate((0.5, 0.6, 0.7)):  # thumb: towards the palm and across it
        hand[12 + k] = (thumb * amount * 0.6, sign * -0.3 * thumb * amount, sign * thumb * amount * 0.5)
    return hand


def _wave(poses: np.ndarray, t: np.ndarray) -> None:
    """Standing, facing the camera; both forearms raised from the elbow with the palms to the camera; the right
    hand waves (the forearm rocks in the body's plane) and both hands open and close (out of phase)."""
    for i, ti in enumerate(t):
        p = poses[i]
        p[0] = (0.0, 0.15, 0.0)
        p[L_SHOULDER] = (0.0, 0.0, -0.35)
        p[R_SHOULDER] = (0.0, 0.0, 0.35)
        p[L_ELBOW] = (0.0, 0.0, 1.45)
        p[R_ELBOW] = (0.0, 0.0, -1.45 + 0.3 * math.sin(2 * math.pi * ti / 0.8))
        p[L_WRIST] = (-1.57, 0.0, 0.0)  # palms to the camera
        p[R_WRIST] = (-1.57, 0.0, 0.0)
        grasp_l = 0.5 - 0.5 * math.cos(2 * math.pi * ti / 1.2)
        grasp_r = 0.5 - 0.5 * math.cos(2 * math.pi * ti / 1.2 + math.pi)
        p[25:40] = _finger_curl(grasp_l, grasp_l, "left")
        p[40:55] = _finger_curl(grasp_r, 0.5 * grasp_r, "right")


def place_ground_truth(poses: np.ndarray, planted: np.ndarray | None, lift: np.ndarray, rest_joints: np.ndarray,
                       sole: float) -> tuple[np.ndarray, np.ndarray]:
    """Root translations (T, 3) pinning planted feet (their ball joints), and the labels (T, 2) used.

    ``planted`` None: the lower ball joint is planted (both when within 1.5 cm). Floor: y = 0; ball joints of
    planted feet at ``sole`` height."""
    T = len(poses)
    rel = posed_joints(rest_joints, poses, np.zeros((T, 3)))
    balls = rel[:, [FEET[0][1], FEET[1][1]]]  # (T, 2, 3)
    if planted is None:
        h = balls[:, :, 1]
        planted = np.stack([h[:, 0] <= h[:, 1] + 0.015, h[:, 1] <= h[:, 0] + 0.015], 1)
    planted = np.asarray(planted, bool)
    trans = np.zeros((T, 3))
    for i in range(T):
        if i > 0:
            both = planted[i] & planted[i - 1]
            if both.any():  # keep the planted ball joints still horizontally
                d = (balls[i - 1, both] - balls[i, both]).mean(0)
                trans[i, [0, 2]] = trans[i - 1, [0, 2]] + d[[0, 2]]
            else:
                trans[i, [0, 2]] = trans[i - 1, [0, 2]]
        feet_y = balls[i, planted[i], 1] if planted[i].any() else balls[i, :, 1]
        trans[i, 1] = sole - feet_y.min() + lift[i]
    if not planted.any(1).all():  # flight: interpolate the standing height under the lift
        base = trans[:, 1] - lift
        idx = np.flatnonzero(planted.any(1))
        base = np.interp(np.arange(T), idx, base[idx])
        trans[:, 1] = base + lift
    return trans, planted


@dataclass
class Clip:
    """A synthetic clip: ground truth and where its video is."""

    name: str
    video: Path
    poses: np.ndarray  # (T, 55, 3)
    trans: np.ndarray  # (T, 3)
    joints: np.ndarray  # (T, 55, 3) world (floor y = 0)
    planted: np.ndarray  # (T, 2)
    betas: np.ndarray
    fps: float
    camera: Camera


def write_video(path: Path, frames, fps: float, size: tuple[int, int], codec: str = "libx264",
                rotation: int = 0) -> Path:
    """Encode RGB frames (an iterable of (H, W, 3) uint8) with PyAV; ``rotation`` writes a display matrix
    (degrees counter-clockwise a player turns the picture, as phones do)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=int(round(fps)))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    if rotation:
        set_mp4_rotation(path, rotation)
    return path


def set_mp4_rotation(path: Path, degrees: int) -> None:
    """Write a display matrix into every ``tkhd`` box of an MP4/MOV (what phones store for portrait videos):
    a player turns the picture ``degrees`` counter-clockwise (multiple of 90)."""
    import struct

    one, zero = 0x10000, 0
    c, s = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees % 360]
    # ISO/IEC 14496-12 matrix {a, b, u, c, d, v, x, y, w}; FFmpeg reads rotation = atan2(b, a) clockwise ...
    # ... so a counter-clockwise turn by θ stores a = cos θ, b = -sin θ, c = sin θ, d = cos θ.
    matrix = [c * one, -s * one, zero, s * one, c * one, zero, 0, 0, 0x40000000]
    data = bytearray(path.read_bytes())
    pos = data.find(b"tkhd")
    while pos >= 0:
        version = data[pos + 4]
        off = pos + 4 + 4 + (32 if version == 1 else 20) + 8 + 8  # version/flags, times..duration, reserved,
        struct.pack_into(">9i", data, off, *matrix)                  # layer/group/volume/reserved
        pos = data.find(b"tkhd", pos + 4)
    path.write_bytes(bytes(data))


def dressed_renderer(body_model: Any, betas: np.ndarray, kind: str = "tight", seed: int = 0):
    """A function (vertices (V, 3) posed body) → (dressed vertices, faces, colours): the body offset along its
    normals per garment of an outfit of ``bench/synthetic.py`` (no skirts), coloured per garment."""
    from icon_engine.render import vertex_normals

    faces = np.asarray(body_model.faces, np.int64)
    weights = body_model.lbs_weights
    weights = weights.detach().cpu().numpy() if hasattr(weights, "detach") else np.asarray(weights)
    regions = vertex_regions(weights)
    rng = np.random.default_rng(seed)
    outfit = random_outfit(kind, rng)
    import torch

    with torch.no_grad():
        rest_v = body_model.rest_vertices(torch.tensor(betas, dtype=torch.float32)[None])[0].double().numpy()
        rest_j = body_model.rest_joints(torch.tensor(betas, dtype=torch.float32)[None])[0].double().numpy()
    waist_y = 0.5 * (rest_j[SPINE1, 1] + rest_j[0, 1]) + 0.03
    offsets, gid = garment_offsets(regions, rest_v[:, 1], waist_y, outfit, faces)
    colors = np.where((gid == 1)[:, None], outfit.top_color, np.where((gid == 2)[:, None], outfit.bottom_color,
                                                                      SKIN))
    colors = np.where((regions == "head")[:, None] & (rest_v[:, 1] > rest_j[HEAD, 1] + 0.04)[:, None], HAIR, colors)
    colors = np.where((regions == "foot")[:, None], np.array([0.15, 0.15, 0.17]), colors)

    def dress(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = vertex_normals(vertices, faces)
        return vertices + offsets[:, None] * n, faces, colors

    return dress


def render_frames(body_model: Any, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray, camera: Camera,
                  outfit: str = "tight", seed: int = 0, noise: float = 0.0, render_scale: float = 1.0):
    """Yield rendered RGB frames (H, W, 3) uint8 of the dressed body (a generator: one frame in memory).
    ``render_scale`` < 1 rasterises at that fraction of the size and upscales (cheaper on a loaded machine)."""
    import cv2
    import torch

    from icon_engine.render import render_shaded

    full = (camera.width, camera.height)
    if render_scale != 1.0:
        camera = camera.rescaled(render_scale, int(round(full[0] * render_scale)), int(round(full[1] * render_scale)))
    dress = dressed_renderer(body_model, betas, outfit, seed)
    rng = np.random.default_rng(seed)
    bg = _background(camera)
    b = torch.tensor(betas, dtype=torch.float32)[None]
    for p, tr in zip(poses, trans, strict=True):
        fp = torch.tensor(p, dtype=torch.float32)
        with torch.no_grad():
            out = body_model(betas=b, global_orient=fp[None, 0], body_pose=fp[1:22].reshape(1, 63),
                             left_hand_pose=fp[25:40].reshape(1, 45), right_hand_pose=fp[40:55].reshape(1, 45),
                             transl=torch.tensor(tr, dtype=torch.float32)[None])
        v, f, c = dress(out.vertices[0].double().numpy())
        rgb, mask = render_shaded(camera.to_camera(v), f, camera.K, camera.width, camera.height, colors=c,
                                  light_dir=np.array([0.3, 0.5, 1.0]))
        img = np.where(mask[..., None], rgb, bg)
        if (img.shape[1], img.shape[0]) != full:
            img = cv2.resize(img.astype(np.float32), full, interpolation=cv2.INTER_LINEAR)
        if noise:
            img = img + rng.normal(0.0, noise, img.shape)
        yield (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _background(camera: Camera) -> np.ndarray:
    """A floor (y = 0, checker tiles) under a plain wall, seen by ``camera`` (float RGB in [0, 1])."""
    h, w = camera.height, camera.width
    v, u = np.mgrid[0:h, 0:w] + 0.5
    rays = np.stack([(u - camera.K[0, 2]) / camera.K[0, 0], (v - camera.K[1, 2]) / camera.K[1, 1], np.ones_like(u)],
                    -1) @ camera.R  # world directions (row form of R.T @ d)
    centre = camera.center
    with np.errstate(divide="ignore", invalid="ignore"):
        s = -centre[1] / rays[..., 1]
    floor = (rays[..., 1] < 0) & (s > 0)
    hit = centre + rays * np.where(floor, s, 0.0)[..., None]
    tiles = (np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 2] / 0.5)) % 2
    img = np.empty((h, w, 3))
    img[:] = (0.70, 0.69, 0.66)
    img[floor] = np.where(tiles[floor, None] > 0, (0.52, 0.47, 0.42), (0.58, 0.53, 0.47))
    return img


def fixed_camera(joints: np.ndarray, width: int, height: int, distance: float = 4.2, height_m: float | None = None,
                 pitch_deg: float = 4.0) -> Camera:
    """A fixed OpenCV camera on +Z of the motion's centre, pitched down by ``pitch_deg``, far enough (at least
    ``distance`` metres) that the whole motion, from the floor to 0.35 m above the highest joint, fits the
    picture's height with a 10 % margin; aimed at mid-height unless ``height_m`` is given."""
    centre = 0.5 * (joints[:, 0].min(0) + joints[:, 0].max(0))
    span = float(np.ptp(joints[:, 0, [0, 2]], 0).max())
    K = default_intrinsics(width, height)
    top = float(joints[..., 1].max()) + 0.35
    tan_half = 0.5 * height / K[1, 1]
    dist = max(distance, 1.1 * 0.5 * top / tan_half) + 0.6 * span
    pitch = math.radians(pitch_deg)
    eye_y = 0.5 * top + dist * math.tan(pitch) if height_m is None else height_m
    eye = np.array([centre[0], eye_y, centre[2] + dist])
    fwd = np.array([0.0, -math.sin(pitch), -math.cos(pitch)])
    x = np.cross(fwd, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(fwd, x)
    R = np.stack([x, y, fwd])
    return Camera(K, R, -R @ eye, width, height)


def make_clip(body_model: Any, kind: str, out_dir: Path, frames: int = 60, fps: float = 30.0,
              size: tuple[int, int] = (1280, 720), seed: int = 0, outfit: str = "tight", reuse: bool = False,
              render_scale: float = 1.0) -> Clip:
    """Render the ``kind`` clip to ``out_dir/<kind>.mp4`` with its ground truth (``reuse``: keep an existing
    video of that name; the ground truth is deterministic)."""
    import torch

    rng = np.random.default_rng([seed, MOTIONS.index(kind) if kind in MOTIONS else 9])
    betas = np.clip(rng.normal(0.0, 0.7, int(getattr(body_model, "num_betas", 10))), -1.5, 1.5).astype(np.float32)
    betas[4:] *= 0.5
    with torch.no_grad():
        b = torch.tensor(betas)[None]
        rest_j = body_model.rest_joints(b)[0].double().numpy()
        rest_v = body_model.rest_vertices(b)[0].double().numpy()
    sole = float(np.mean([rest_j[ball, 1] for _, ball in FEET]) - rest_v[:, 1].min())
    poses, planted, lift = procedural_motion(kind, frames, fps)
    trans, planted = place_ground_truth(poses, planted, lift, rest_j, sole)
    joints = posed_joints(rest_j, poses, trans)
    camera = fixed_camera(joints, *size)
    path = out_dir / f"{kind}.mp4"
    if kind in HAND_MOTIONS:
        render_scale = 1.0  # fingers of ~30 px need the full resolution
    if not (reuse and path.exists()):
        write_video(path, render_frames(body_model, poses, trans, betas, camera, outfit, seed,
                                        render_scale=render_scale), fps, size)
    return Clip(kind, path, poses, trans, joints, planted, betas, fps, camera)


# --------------------------------------------------------------------------------------------------- metrics


def metrics(pred: np.ndarray, gt: np.ndarray, planted: np.ndarray, fps: float) -> dict[str, float]:
    """MPJPE / PA-MPJPE (mm), acceleration error (mm/frame²) and foot skating (cm/frame) of predicted joints
    (T, ≥22, 3) against ground truth (T, ≥22, 3); ``planted`` (T, 2) the ground-truth contacts."""
    p, g = pred[:, :BODY], gt[:, :BODY]
    pr, gr = p - p[:, :1], g - g[:, :1]
    mpjpe = float(np.linalg.norm(pr - gr, axis=-1).mean() * 1000)
    pa = float(np.mean([np.linalg.norm(procrustes_aligned(a, b) - b, axis=-1).mean()
                        for a, b in zip(p, g, strict=True)]) * 1000)
    acc = float(np.linalg.norm(np.diff(pr, 2, axis=0) - np.diff(gr, 2, axis=0), axis=-1).mean() * 1000) \
        if len(p) > 2 else float("nan")
    skate = []
    for side, (_, ball) in enumerate(FEET):
        both = planted[1:, side] & planted[:-1, side]
        step = np.linalg.norm(np.diff(pred[:, ball, [0, 2]], axis=0), axis=-1)
        skate.extend(step[both].tolist())
    return {"mpjpe_mm": mpjpe, "pa_mpjpe_mm": pa, "accel_mm_f2": acc,
            "skate_cm_per_frame": float(np.mean(skate) * 100) if skate else float("nan")}


def hand_pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per side, the mean PA-MPJPE (mm) over the hand's 16 joints (wrist + 15 finger joints; Procrustes per hand
    and frame) of predicted joints (T, 55, 3) against the ground truth (T, 55, 3)."""
    return {side: float(np.mean([np.linalg.norm(procrustes_aligned(a[j], b[j]) - b[j], axis=-1).mean()
                                 for a, b in zip(pred, gt, strict=True)]) * 1000)
            for side, j in HAND_JOINTS.items()}


def evaluate_clip(clip: Clip, body_model: Any, out_dir: Path, hands: bool = True) -> dict[str, Any]:
    """Run the capture on ``clip`` and score it (ground-truth shape given, as an avatar would give it)."""
    from icon_engine.motion import MotionOptions, capture_motion

    load = os.getloadavg()[0]
    cpu0 = time.process_time()
    res = capture_motion(clip.video, out_dir / clip.name, MotionOptions(betas=clip.betas, hands=hands),
                         body_model=body_model)
    cpu = time.process_time() - cpu0
    raw = res.raw
    idx = np.load(res.npz)["frame_index"]
    gt, planted = clip.joints[idx], clip.planted[idx]
    unsmoothed = posed_joints(raw["rest_joints"], raw["poses"], raw["trans"])
    final = raw["joints"]
    m = metrics(final, gt, planted, clip.fps)
    m0 = metrics(unsmoothed, gt, planted, clip.fps)
    t = res.timings
    n = res.frames
    out = {
        "clip": clip.name, "frames": n, "hands": hands, **{k: round(v, 2) for k, v in m.items()},
        "accel_unsmoothed_mm_f2": round(m0["accel_mm_f2"], 2), "accel_ratio": round(m["accel_mm_f2"]
                                                                                   / m0["accel_mm_f2"], 3),
        "pa_mpjpe_unsmoothed_mm": round(m0["pa_mpjpe_mm"], 2),
        "skate_unlocked_cm_per_frame": round(m0["skate_cm_per_frame"], 2),
        "fps_wall": round(n / t["frames_wall_s"], 2), "cpu_ms_per_frame": round(1000 * t["frames_cpu_s"] / n, 1),
        "track_ms": round(1000 * t["track"] / n, 1), "fit_ms": round(1000 * t["fit"] / n, 1),
        "decode_ms": round(1000 * t["decode"] / n, 1), "load_avg": round(load, 2),
        "hands_track_ms": round(1000 * t.get("hands_track", 0.0) / n, 1),
        "hands_fit_cpu_ms": round(1000 * t.get("hands_fit_cpu", 0.0) / n, 1),
        "total_cpu_s": round(cpu, 2), "warnings": res.warnings,
        # the fit thread's own CPU and everything else (decoding, tracking, MediaPipe's threads): on two free cores
        # they overlap, so a frame takes about the larger of the two
        "fit_thread_cpu_ms": round(1000 * t["fit_thread_cpu"] / n, 1),
        "fps_2core_bound": round(n / max(t["fit_thread_cpu"], t["frames_cpu_s"] - t["fit_thread_cpu"]), 2),
    }
    if clip.poses[:, 25:55].any():  # a clip with finger motion: score the hands
        flat = raw["poses_final"].copy()
        flat[:, 25:55] = 0.0
        got = hand_pa_mpjpe(final, gt)
        base = hand_pa_mpjpe(posed_joints(raw["rest_joints"], flat, np.zeros((len(flat), 3))), gt)
        seen = raw["hand_seen"].sum(0) if len(raw["hand_seen"]) else np.zeros(2)
        out.update({f"hand_pa_mpjpe_{s}_mm": round(got[s], 2) for s in got})
        out.update({f"hand_pa_mpjpe_{s}_flat_mm": round(base[s], 2) for s in base})
        out["hand_seen_frames"] = [int(v) for v in seen]
    return out


def contact_strip(video: Path, npz: Path, body_model: Any, path: Path, frames: int = 6, height: int = 360,
                  zoom_joint: int | None = None) -> Path:
    """A contact strip: ``frames`` evenly spaced video frames (top) over the captured motion posed on the body and
    rendered from the recovered camera (bottom, same crop), side by side; written as a PNG. ``zoom_joint``: crop
    around that SMPL-X joint (e.g. 21, the right wrist) instead of the whole person."""
    import cv2
    import torch
    from PIL import Image

    from icon_engine.motion.video import iter_frames, probe_video
    from icon_engine.motion.writers import from_amass
    from icon_engine.render import render_shaded

    with np.load(npz) as data:
        arrays = {k: data[k] for k in ("poses", "trans", "betas", "camera_R", "camera_t", "camera_K", "camera_size",
                                       "frame_index")}
    b = torch.tensor(arrays["betas"], dtype=torch.float32)[None]
    with torch.no_grad():
        rest_pelvis = body_model.rest_joints(b)[0, 0].double().numpy()
    poses, trans = from_amass(arrays["poses"], arrays["trans"], rest_pelvis)
    W, H = (int(v) for v in arrays["camera_size"])
    camera = Camera(arrays["camera_K"], arrays["camera_R"], arrays["camera_t"], W, H)
    picks = np.linspace(0, len(poses) - 1, frames).round().astype(int)
    wanted = {int(arrays["frame_index"][i]): i for i in picks}
    tiles = []
    for frame in iter_frames(probe_video(video)):
        if frame.index not in wanted:
            continue
        i = wanted[frame.index]
        p = torch.tensor(poses[i], dtype=torch.float32)
        with torch.no_grad():
            out = body_model(betas=b, global_orient=p[None, 0], body_pose=p[1:22].reshape(1, 63),
                             left_hand_pose=p[25:40].reshape(1, 45), right_hand_pose=p[40:55].reshape(1, 45),
                             transl=torch.tensor(trans[i], dtype=torch.float32)[None])
        v = out.vertices[0].double().numpy()
        rgb, mask = render_shaded(camera.to_camera(v), np.asarray(body_model.faces), camera.K, W, H,
                                  colors=np.array([0.75, 0.72, 0.68]), light_dir=np.array([0.3, 0.5, 1.0]))
        render = np.where(mask[..., None], (rgb * 255).astype(np.uint8), 255)
        ys, xs = np.nonzero(mask)
        side = int(1.08 * max(np.ptp(ys), np.ptp(xs), 32))
        cx, cy = 0.5 * (xs.min() + xs.max()), 0.5 * (ys.min() + ys.max())
        if zoom_joint is not None:
            cx, cy = camera.project(out.joints[0, zoom_joint].double().numpy()[None])[0][0]
            side = int(0.18 * np.ptp(ys))
        m = np.array([[1.0, 0.0, side / 2 - cx], [0.0, 1.0, side / 2 - cy]])
        crops = [cv2.warpAffine(img, m, (side, side), borderValue=(255, 255, 255)) for img in (frame.rgb, render)]
        tiles.append(cv2.resize(np.concatenate(crops, 0), (height // 2, height),
                                interpolation=cv2.INTER_AREA if side > height // 2 else cv2.INTER_CUBIC))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, 1)).save(path)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/icon-motion-bench"))
    ap.add_argument("--clips", nargs="*", default=[*MOTIONS, *HAND_MOTIONS, "phone"],
                    choices=[*MOTIONS, *HAND_MOTIONS, "phone"],
                    help="phone: the phone-like 'real' clip (portrait, rotation metadata, noise, loose clothes)")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--render-scale", type=float, default=0.5, help="rasterise at this fraction, then upscale")
    ap.add_argument("--reuse", action="store_true", help="reuse rendered clips in --out (ground truth is recomputed)")
    ap.add_argument("--film", type=Path, help="only film the phone-like clip to this path")
    ap.add_argument("--hands", action=argparse.BooleanOptionalAction, default=True, help="capture the hands")
    ap.add_argument("--strip", action="store_true", help="also write OUT/<clip>_strip.png (video over capture)")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    from icon_engine.body_model import load_body_model

    body_model = load_body_model()
    if args.film:
        film_phone_clip(body_model, args.film)
        print(args.film)
        return
    rows = []
    for kind in args.clips:
        t0 = time.perf_counter()
        if kind == "phone":
            clip = film_phone_clip(body_model, args.out / "phone.mp4", reuse=args.reuse)
        else:
            clip = make_clip(body_model, kind, args.out, args.frames, size=size, reuse=args.reuse,
                             render_scale=args.render_scale)
        render_s = time.perf_counter() - t0
        row = evaluate_clip(clip, body_model, args.out, hands=args.hands)
        row["render_s"] = round(render_s, 1)
        if args.strip:
            contact_strip(clip.video, args.out / clip.name / "motion.npz", body_model, args.out / f"{kind}_strip.png")
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))


def film_phone_clip(body_model: Any, path: Path, frames: int = 72, fps: float = 30.0, reuse: bool = False) -> Clip:
    """A phone-like clip: portrait 720×1280 stored landscape with a 90° display matrix, a loose outfit, sensor
    noise, walking towards the camera then turning (the "real video" stand-in; no free clip is downloaded)."""
    import torch

    betas = np.array([0.8, -0.5, 0.3, 0.0, 0.2, 0, 0, 0, 0, 0], np.float32)
    with torch.no_grad():
        b = torch.tensor(betas)[None]
        rest_j = body_model.rest_joints(b)[0].double().numpy()
        rest_v = body_model.rest_vertices(b)[0].double().numpy()
    sole = float(np.mean([rest_j[ball, 1] for _, ball in FEET]) - rest_v[:, 1].min())
    poses, planted, lift = procedural_motion("walk", frames, fps)
    poses[:, 0] = np.array([0.0, 1.0, 0.0])[None] * np.linspace(0.3, -0.6, frames)[:, None]
    trans, planted = place_ground_truth(poses, planted, lift, rest_j, sole)
    joints = posed_joints(rest_j, poses, trans)
    camera = fixed_camera(joints, 720, 1280, distance=3.6, pitch_deg=9.0)
    if not (reuse and path.exists()):
        upright = render_frames(body_model, poses, trans, betas, camera, "loose", seed=3, noise=0.02,
                                render_scale=0.5)
        stored = (np.ascontiguousarray(np.rot90(f, -1)) for f in upright)  # the sensor's landscape frames
        write_video(path, stored, fps, (1280, 720), rotation=90)
    return Clip("phone", path, poses, trans, joints, planted, betas, fps, camera)


if __name__ == "__main__":
    main()
