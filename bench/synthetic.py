"""Procedurally dressed synthetic subjects with ground truth, rendered from a known camera.

The open body (any body model of the ``load_body_model`` contract) is posed in varied shapes and standing poses
and dressed procedurally with an implicit garment field, meshed by marching cubes into a watertight ground-truth
clothed mesh:

- tight tops/trousers: offsets of 0.5–2 cm from the body; loose shirts/coats/trousers: 2–6 cm;
- skirts and dresses: an elliptic cone hanging from the waist to a hem between the knees and the ankles;
- long hair: an ellipsoid volume behind the head reaching the shoulders.

Each subject is rendered (Lambert shading, per-garment colours) through an OpenCV camera facing it. Frames follow
docs/architecture.md: bundle world (metres, Y up, body faces +Z), normalised so the body's lowest vertex is on
y = 0 and the pelvis is above the origin.

API::

    subjects = make_subjects(body_model, count=4, seed=0)          # list[SyntheticSubject]
    s = make_subject(body_model, index=2, seed=0)                    # one subject (index picks the outfit)
    s.rgb, s.mask, s.camera, s.clothed_vertices, s.clothed_faces, s.body_vertices, s.full_pose, s.betas

Run ``python bench/synthetic.py --count 4 --out /tmp/synth`` to write PNGs and PLYs for a look.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from icon_engine.camera import Camera, default_intrinsics  # noqa: E402
from icon_engine.geometry.implicit import evaluate_coarse_to_fine, largest_component, mesh_zero_level  # noqa: E402
from icon_engine.mesh_queries import MeshQuery  # noqa: E402

# SMPL-X joint indices used here.
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = range(10)
NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = range(12, 22)
KNEE_JOINTS = (L_KNEE, R_KNEE)

#: Body regions by the joint that dominates a vertex's skinning weights.
_REGION_OF_JOINT = {
    **{j: "torso" for j in (PELVIS, SPINE1, SPINE2, SPINE3, L_COLLAR, R_COLLAR)},
    NECK: "neck", HEAD: "head", 22: "head", 23: "head", 24: "head",
    L_SHOULDER: "upper_arm", R_SHOULDER: "upper_arm", L_ELBOW: "forearm", R_ELBOW: "forearm",
    L_WRIST: "hand", R_WRIST: "hand", L_HIP: "thigh", R_HIP: "thigh", L_KNEE: "shin", R_KNEE: "shin",
    L_ANKLE: "foot", R_ANKLE: "foot", 10: "foot", 11: "foot",
}  # fmt: skip

SKIN = np.array([0.80, 0.62, 0.52])
HAIR = np.array([0.25, 0.16, 0.10])
PALETTE = np.array([
    [0.70, 0.15, 0.15], [0.15, 0.30, 0.65], [0.20, 0.50, 0.25], [0.85, 0.75, 0.30], [0.35, 0.35, 0.38],
    [0.90, 0.90, 0.88], [0.45, 0.25, 0.55], [0.15, 0.15, 0.18], [0.60, 0.45, 0.30], [0.30, 0.60, 0.65],
])  # fmt: skip

#: Outfit kinds cycled by subject index.
KINDS = ("tight", "loose", "skirt", "dress", "tight_hair", "coat", "shorts", "dress_hair")


@dataclass
class Outfit:
    """Garment parameters (metres). ``sleeves``/``legs``: 'long' | 'short' | 'none'; ``skirt_hem``: fraction
    from knee (0) to ankle (1) where a skirt ends, None for no skirt; ``skirt_flare``: radius growth per metre
    downwards; ``hair``: long-hair volume."""

    kind: str
    top_offset: float
    bottom_offset: float
    sleeves: str = "long"
    legs: str = "long"
    skirt_hem: float | None = None
    skirt_flare: float = 0.0
    hair: bool = False
    top_color: np.ndarray = field(default_factory=lambda: PALETTE[0])
    bottom_color: np.ndarray = field(default_factory=lambda: PALETTE[1])


@dataclass
class SyntheticSubject:
    """One dressed subject. Meshes in the normalised bundle world (metres); ``rgb`` (H, W, 3) uint8 and ``mask``
    (H, W) bool seen by ``camera`` (OpenCV, processing pixels)."""

    name: str
    outfit: Outfit
    betas: np.ndarray
    full_pose: np.ndarray  # (55, 3) axis-angle
    body_vertices: np.ndarray
    body_faces: np.ndarray
    joints: np.ndarray  # (55, 3)
    clothed_vertices: np.ndarray
    clothed_faces: np.ndarray
    clothed_colors: np.ndarray  # (N, 3) in [0, 1]
    camera: Camera
    rgb: np.ndarray
    mask: np.ndarray
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))  # world shift applied (new = posed + offset)


# --------------------------------------------------------------------------------------------------- poses


def random_outfit(kind: str, rng: np.random.Generator) -> Outfit:
    """Garment parameters for ``kind`` (one of :data:`KINDS`)."""
    cols = rng.choice(len(PALETTE), 2, replace=False)
    top, bottom = PALETTE[cols[0]], PALETTE[cols[1]]
    tight = lambda: float(rng.uniform(0.005, 0.02))  # noqa: E731
    loose = lambda: float(rng.uniform(0.02, 0.06))  # noqa: E731
    if kind == "tight":
        return Outfit(kind, tight(), tight(), sleeves=str(rng.choice(["long", "short"])), top_color=top,
                      bottom_color=bottom)
    if kind == "tight_hair":
        return Outfit(kind, tight(), tight(), sleeves="short", hair=True, top_color=top, bottom_color=bottom)
    if kind == "loose":
        return Outfit(kind, loose(), loose(), top_color=top, bottom_color=bottom)
    if kind == "coat":
        return Outfit(kind, loose(), tight(), skirt_hem=float(rng.uniform(-0.6, -0.2)),
                      skirt_flare=float(rng.uniform(0.05, 0.12)), top_color=top, bottom_color=bottom)
    if kind == "shorts":
        return Outfit(kind, tight(), loose(), sleeves="none", legs="short", top_color=top, bottom_color=bottom)
    if kind in ("skirt", "dress", "dress_hair"):
        o = Outfit(kind, tight(), tight(), sleeves="short", legs="none", skirt_hem=float(rng.uniform(-0.2, 0.5)),
                   skirt_flare=float(rng.uniform(0.08, 0.25)), hair=kind == "dress_hair", top_color=top,
                   bottom_color=top if kind != "skirt" else bottom)
        return o
    raise ValueError(f"unknown outfit kind {kind!r}")


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """A standing pose (55, 3) axis-angle: arms lowered 35–80°, elbows bent, legs apart or stepping, small yaw."""
    pose = np.zeros((55, 3))
    pose[0] = [0.0, math.radians(rng.uniform(-25, 25)), 0.0]
    down_l, down_r = rng.uniform(35, 80, 2)
    pose[L_SHOULDER] = [0.0, 0.0, -math.radians(down_l)]
    pose[R_SHOULDER] = [0.0, 0.0, math.radians(down_r)]
    pose[L_ELBOW] = [0.0, -math.radians(rng.uniform(0, 40)), 0.0]
    pose[R_ELBOW] = [0.0, math.radians(rng.uniform(0, 40)), 0.0]
    spread = math.radians(rng.uniform(0, 12))
    pose[L_HIP] = [math.radians(rng.uniform(-15, 10)), 0.0, spread]
    pose[R_HIP] = [math.radians(rng.uniform(-15, 10)), 0.0, -spread]
    pose[L_KNEE] = [math.radians(rng.uniform(0, 15)), 0.0, 0.0]
    pose[R_KNEE] = [math.radians(rng.uniform(0, 15)), 0.0, 0.0]
    pose[SPINE2] = [math.radians(rng.uniform(-5, 5)), 0.0, math.radians(rng.uniform(-5, 5))]
    pose[HEAD] = [math.radians(rng.uniform(-10, 10)), math.radians(rng.uniform(-15, 15)), 0.0]
    return pose


def pose_body(body_model: Any, full_pose: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posed (vertices (V, 3), joints (55, 3)) of ``body_model`` for ``full_pose`` (55, 3) and ``betas``."""
    import torch

    fp = torch.tensor(np.asarray(full_pose, np.float32)).reshape(55, 3)
    b = torch.tensor(np.asarray(betas, np.float32))[None]
    with torch.no_grad():
        out = body_model(betas=b, global_orient=fp[None, 0], body_pose=fp[1:22].reshape(1, 63),
                         left_hand_pose=fp[25:40].reshape(1, 45), right_hand_pose=fp[40:55].reshape(1, 45))
    return out.vertices[0].double().numpy(), out.joints[0, :55].double().numpy()


def front_camera(vertices: np.ndarray, width: int, height: int, fill: float = 0.85, yaw_deg: float = 0.0,
                 pitch_deg: float = 3.0) -> Camera:
    """OpenCV camera looking at the body's bounding-box centre from the front (+Z side, rotated by ``yaw_deg``
    about +Y), at the distance where the body spans ``fill`` of the image height."""
    lo, hi = vertices.min(0), vertices.max(0)
    target = 0.5 * (lo + hi)
    K = default_intrinsics(width, height)
    dist = K[1, 1] * (hi[1] - lo[1]) / (fill * height) + 0.5 * (hi[2] - lo[2])
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    direction = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    centre = target + dist * direction
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return Camera(K, R, -R @ centre, width, height)


# --------------------------------------------------------------------------------------------------- dressing


def vertex_regions(lbs_weights: np.ndarray) -> np.ndarray:
    """(V,) region names from the dominant skinning joint (hands/fingers → 'hand')."""
    dom = np.asarray(lbs_weights).argmax(1)
    return np.array([_REGION_OF_JOINT.get(int(j), "hand") for j in dom])


def garment_offsets(regions: np.ndarray, rest_y: np.ndarray, waist_y: float, outfit: Outfit,
                    faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex offsets (V,) in metres and garment ids (V,) (0 skin, 1 top, 2 bottom), hems softened over
    the mesh by a few Laplacian steps."""
    off = np.full(len(regions), 0.002)
    gid = np.zeros(len(regions), np.int64)
    top = (regions == "torso") & (rest_y >= waist_y)
    bottom = ((regions == "torso") & (rest_y < waist_y)) | (regions == "thigh")
    if outfit.sleeves in ("long", "short"):
        top |= regions == "upper_arm"
    if outfit.sleeves == "long":
        top |= regions == "forearm"
    if outfit.legs in ("long", "short"):
        bottom |= regions == "thigh"
    if outfit.legs == "long":
        bottom |= regions == "shin"
    if outfit.legs == "none":  # a skirt covers the legs: only the hips get the bottom offset
        bottom = (regions == "torso") & (rest_y < waist_y)
    off[top], gid[top] = outfit.top_offset, 1
    off[bottom], gid[bottom] = outfit.bottom_offset, 2
    # Soften hems: average over neighbours a few times.
    from scipy.sparse import coo_matrix, diags

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.concatenate([e, e[:, ::-1]])
    n = len(regions)
    A = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    A.data[:] = 1.0
    Wm = diags(1.0 / np.maximum(np.asarray(A.sum(1)).ravel(), 1)) @ A
    for _ in range(6):
        off = 0.5 * off + 0.5 * (Wm @ off)
    return off, gid


class GarmentField:
    """Implicit ground-truth clothing (metres, positive inside): union of a body-offset shell, a skirt cone and
    a hair ellipsoid. ``component(points)`` tells which part defines the surface (0 shell, 1 skirt, 2 hair)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, offsets: np.ndarray,
                 outfit: Outfit, trunk: np.ndarray | None = None) -> None:
        self.query = MeshQuery(vertices, faces, k=1, dtype=np.float32)
        self.offsets = offsets
        self.outfit = outfit
        self.skirt = None
        if outfit.skirt_hem is not None:
            pel = joints[PELVIS]
            waist = 0.5 * (joints[SPINE1][1] + joints[PELVIS][1]) + 0.04
            knee = 0.5 * (joints[L_KNEE][1] + joints[R_KNEE][1])
            ankle = 0.5 * (joints[L_ANKLE][1] + joints[R_ANKLE][1])
            hem = knee + outfit.skirt_hem * (ankle - knee)
            near = (np.abs(vertices[:, 1] - pel[1]) < 0.06) & (trunk if trunk is not None else True)
            ax = np.abs(vertices[near, 0] - pel[0]).max() + outfit.bottom_offset
            az = np.abs(vertices[near, 2] - pel[2]).max() + outfit.bottom_offset
            self.skirt = (pel[0], pel[2], waist, hem, ax, az, outfit.skirt_flare)
        self.hair = None
        if outfit.hair:
            head = joints[HEAD]
            self.hair = (head + np.array([0.0, -0.06, -0.07]), np.array([0.115, 0.19, 0.085]))

    def parts(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) values of the three parts (−1 where a part is absent)."""
        q = self.query.query(pts)
        shell = self.query.interpolate(self.offsets[:, None], q.face, q.bary)[:, 0] - q.distance
        out = np.full((len(pts), 3), -1.0)
        out[:, 0] = shell
        if self.skirt is not None:
            cx, cz, waist, hem, ax, az, flare = self.skirt
            drop = np.clip(waist - pts[:, 1], 0.0, None)
            a, b = ax + flare * drop, az + 0.8 * flare * drop
            s = np.sqrt(((pts[:, 0] - cx) / a) ** 2 + ((pts[:, 2] - cz) / b) ** 2)
            radial = (1.0 - s) * np.minimum(a, b)
            out[:, 1] = np.minimum(np.minimum(radial, waist - pts[:, 1]), pts[:, 1] - hem)
        if self.hair is not None:
            c, r = self.hair
            s = np.sqrt((((pts - c) / r) ** 2).sum(1))
            out[:, 2] = (1.0 - s) * r.min()
        return out

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        return self.parts(pts).max(1)


def dress(vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, offsets: np.ndarray, outfit: Outfit,
          spacing: float = 0.007, trunk: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, GarmentField]:
    """Ground-truth clothed mesh (watertight, one component) of a posed body; spacing of the grid in metres.
    ``trunk`` (V,) bool marks torso and thigh vertices (a skirt's waist is measured on them)."""
    fn = GarmentField(vertices, faces, joints, offsets, outfit, trunk)
    lo = vertices.min(0) - 0.25
    hi = vertices.max(0) + 0.25
    lo[1] = vertices[:, 1].min() - 0.05
    vol, origin = evaluate_coarse_to_fine(fn, lo, hi, spacing, 4)
    v, f = mesh_zero_level(vol, origin, spacing)
    v, f, _ = largest_component(v, f)
    return v, f, fn


def colors_for(points: np.ndarray, fn: GarmentField, gid: np.ndarray, outfit: Outfit) -> np.ndarray:
    """Per-point colours (N, 3) in [0, 1]: skin / top / bottom / skirt / hair by the part defining the surface."""
    parts = fn.parts(points)
    which = parts.argmax(1)
    q = fn.query.query(points)
    g = gid[fn.query.faces[q.face, np.argmax(q.bary, axis=1)]]
    col = np.where((g == 1)[:, None], outfit.top_color, np.where((g == 2)[:, None], outfit.bottom_color, SKIN))
    col = np.where((which == 1)[:, None], outfit.bottom_color, col)
    col = np.where((which == 2)[:, None], HAIR, col)
    return col


def render_subject(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray,
                   camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Lambert-shaded RGB (H, W, 3) uint8 on a grey background and the silhouette mask (H, W) bool."""
    from icon_engine.render import render_shaded

    rgb, mask = render_shaded(camera.to_camera(vertices), faces, camera.K, camera.width, camera.height,
                              colors=colors, light_dir=np.array([0.3, 0.5, 1.0]))
    img = np.where(mask[..., None], rgb, np.array([0.62, 0.64, 0.66], np.float32))
    return (img * 255.0 + 0.5).astype(np.uint8), mask


# --------------------------------------------------------------------------------------------------- subjects


def random_betas(rng: np.random.Generator, count: int) -> np.ndarray:
    """A subject's shape: ``count`` betas drawn N(0, 0.8), clipped to ±2, those past the fourth halved (the first
    draws of :func:`make_subject`'s series)."""
    betas = np.clip(rng.normal(0.0, 0.8, count), -2.0, 2.0)
    betas[min(count, 4):] *= 0.5
    return betas


def make_subject(body_model: Any, index: int, seed: int = 0, size: tuple[int, int] = (448, 640),
                 spacing: float = 0.007, kind: str | None = None, pose: np.ndarray | None = None) -> SyntheticSubject:
    """Subject ``index`` of the series ``seed``: shape, pose (``pose`` (55, 3) axis-angle or a random standing
    one), outfit (``kind`` or :data:`KINDS` cycled) and its render at ``size`` (width, height) pixels."""
    rng = np.random.default_rng([seed, index])
    kind = kind or KINDS[index % len(KINDS)]
    betas = random_betas(rng, int(getattr(body_model, "num_betas", 10)))
    pose = random_pose(rng) if pose is None else np.asarray(pose, dtype=np.float64).reshape(55, 3)
    rest_v, rest_j = pose_body(body_model, np.zeros((55, 3)), betas)
    verts, joints = pose_body(body_model, pose, betas)
    faces = np.asarray(body_model.faces, np.int64)
    # Normalise the world: lowest vertex on y = 0, pelvis above the origin.
    shift = np.array([-joints[PELVIS, 0], -verts[:, 1].min(), -joints[PELVIS, 2]])
    verts, joints = verts + shift, joints + shift
    weights = body_model.lbs_weights
    weights = weights.detach().cpu().numpy() if hasattr(weights, "detach") else np.asarray(weights)
    regions = vertex_regions(weights)
    waist_y = 0.5 * (rest_j[SPINE1, 1] + rest_j[PELVIS, 1]) + 0.03
    outfit = random_outfit(kind, rng)
    offsets, gid = garment_offsets(regions, rest_v[:, 1], waist_y, outfit, faces)
    trunk = np.isin(regions, ["torso", "thigh"])
    cv, cf, fn = dress(verts, faces, joints, offsets, outfit, spacing, trunk)
    colors = colors_for(cv, fn, gid, outfit)
    camera = front_camera(cv, size[0], size[1], yaw_deg=0.0)
    rgb, mask = render_subject(cv, cf, colors, camera)
    return SyntheticSubject(f"s{seed}_{index:03d}_{kind}", outfit, betas, pose, verts, faces, joints, cv, cf, colors,
                            camera, rgb, mask, shift)


def make_subjects(body_model: Any, count: int, seed: int = 0, size: tuple[int, int] = (448, 640),
                  spacing: float = 0.007) -> list[SyntheticSubject]:
    """``count`` subjects cycling through the outfit kinds."""
    return [make_subject(body_model, i, seed, size, spacing) for i in range(count)]


def load_open_body() -> Any:
    """The engine's default body model (the open body unless configured otherwise)."""
    from icon_engine.body_model import load_body_model

    return load_body_model()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    import trimesh
    from PIL import Image

    bm = load_open_body()
    args.out.mkdir(parents=True, exist_ok=True)
    for s in make_subjects(bm, args.count, args.seed):
        Image.fromarray(s.rgb).save(args.out / f"{s.name}.png")
        trimesh.Trimesh(s.clothed_vertices, s.clothed_faces, process=False).export(args.out / f"{s.name}_gt.ply")
        print(s.name, len(s.clothed_faces), "faces")


if __name__ == "__main__":
    main()
