"""Re-pose stress test of the canonical avatar (issue 12): does the avatar animate without tearing?

Every avatar (a bundle from the whole pipeline on a photo, or the avatar stage run on a rendered synthetic
subject with its exact clothed surface and body) is posed by linear blend skinning into its rest pose and a fixed
set of poses (:data:`TEST_POSES`). Per pose, against the posed photo mesh (same faces):

- torn faces: longest edge grows > 3× and ends > 3 cm (:func:`icon_engine.rig.torn_faces`);
- longest edge / median edge of the posed mesh;
- faces whose area changes more than 4× (either way);
- arm-inside-torso: fraction of arm vertices inside the equally posed naked body, next to a torso vertex.

Per avatar, the rest mesh's pleats (:func:`pleat_shares`: the area share of faces turned > 20° from a smoothed
copy's, at the armpits, elbows, knees and overall).

Targets (issue 12): 0 torn faces in the rest pose, ≤ 0.05 % in every pose; longest edge ≤ 5× the median;
arm-inside-torso ≤ 0.5 % in the rest pose. A contact sheet (photo pose, rest, walk, arms up; front view) is
written beside the table.

Run: ``.venv/bin/python bench/avatar.py --synthetic hips,crossed --dev 0 --sheet docs/images/avatar_sheet.jpg``
(``--shared-synthetic`` also runs ../shared/bench/synthetic-dev photos, ``--dev N`` the first N dev photos).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from icon_engine.avatar import PART_NAMES, canonical_body  # noqa: E402
from icon_engine.bundle.skeleton import NUM_JOINTS, PARENTS, skin_vertices  # noqa: E402
from icon_engine.mesh_queries import MeshQuery  # noqa: E402
from icon_engine.rig import longest_edges, pose_relative_to_rest, torn_faces  # noqa: E402

_PAR = np.asarray(PARENTS)


def _mirror(pose: np.ndarray) -> np.ndarray:
    """Copy the left arm's rotations onto the right arm (mirrored through the body's sagittal plane)."""
    p = pose.copy()
    for left, right in ((13, 14), (16, 17), (18, 19), (20, 21)):
        p[right] = p[left] * np.array([1.0, -1.0, -1.0])
    return p


def photo_pose(name: str) -> np.ndarray:
    """(55, 3) axis-angle of the synthetic photo poses: "hips" (hands on the hips), "crossed" (arms crossed over
    the chest), "against" (arms hanging against the torso), "stand" (relaxed, for skirts and coats)."""
    p = np.zeros((NUM_JOINTS, 3))
    d = np.radians
    if name == "hips":
        p[16], p[18] = d([0.0, 19.9, -54.5]), d([0.0, -16.7, -77.1])
    elif name == "crossed":
        p[16], p[18] = d([0.0, -41.1, -85.0]), d([0.0, -69.2, -69.7])
    elif name == "against":
        p[16], p[18] = d([0.0, 0.0, -84.0]), d([0.0, -10.0, 0.0])
    elif name == "stand":
        p[16], p[18] = d([0.0, 0.0, -65.0]), d([0.0, -15.0, 0.0])
        p[1], p[2] = d([-4.0, 0.0, 3.0]), d([4.0, 0.0, -3.0])
    else:
        raise ValueError(f"unknown photo pose {name!r}")
    return _mirror(p)


def test_pose(name: str) -> np.ndarray:
    """(55, 3) axis-angle of the re-pose test set (:data:`TEST_POSES`); global orientation zero."""
    p = np.zeros((NUM_JOINTS, 3))
    d = np.radians
    if name == "T":
        return p
    if name == "A":
        p[16, 2] = d(-45.0)
        return _mirror(p)
    if name.startswith("walk"):
        phase = {"walk1": 0.0, "walk2": 0.5, "walk3": 1.0}[name]
        s = np.cos(np.pi * phase)  # +1: left leg forward, −1: right leg forward
        p[1, 0], p[2, 0] = d(-30.0 * s), d(30.0 * s)
        p[4, 0], p[5, 0] = d(10.0 + 20.0 * max(-s, 0.0)), d(10.0 + 20.0 * max(s, 0.0))
        p[16], p[17] = d([0.0, -25.0 * s, -70.0]), d([0.0, -25.0 * s, 70.0])
        p[18, 1], p[19, 1] = d(-20.0), d(20.0)
        return p
    if name == "arms_up":
        p[16], p[18], p[13] = d([0.0, 0.0, 70.0]), d([0.0, -15.0, 0.0]), d([0.0, 0.0, 15.0])
        return _mirror(p)
    if name == "squat":
        p[1], p[2] = d([-90.0, 0.0, 15.0]), d([-90.0, 0.0, -15.0])
        p[4, 0], p[5, 0] = d(110.0), d(110.0)
        p[7, 0], p[8, 0] = d(-20.0), d(-20.0)
        p[3, 0] = d(25.0)
        p[16, 2], p[17, 2] = d(-60.0), d(60.0)
        return p
    if name == "sitting":
        p[1, 0], p[2, 0] = d(-90.0), d(-90.0)
        p[4, 0], p[5, 0] = d(90.0), d(90.0)
        p[16], p[18] = d([0.0, 0.0, -70.0]), d([0.0, -40.0, 0.0])
        return _mirror(p)
    raise ValueError(f"unknown test pose {name!r}")


#: The re-pose test set ("rest" is the avatar's own rest mesh).
TEST_POSES = ("rest", "A", "T", "walk1", "walk2", "walk3", "arms_up", "squat", "sitting")
#: Contact sheet columns: a pose, or ``"pose@deg"`` for the avatar in that pose turned about the vertical by deg (its
#: left side at 90, its back at 180).
SHEET_POSES = ("photo", "photo@90", "rest", "rest@90", "rest@180", "walk1", "arms_up")


@dataclass
class AvatarCase:
    """One avatar to stress: rest mesh + weights + joints (the bundle's), the photo pose (from rest), the photo
    posed mesh, the naked canonical body (for arm-inside-torso) and the per-vertex parts."""

    name: str
    rest_vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    rest_joints: np.ndarray
    rest_angles: np.ndarray  # (55, 3) T → rest
    posed_vertices: np.ndarray
    body: Any  # icon_engine.avatar.CanonicalBody
    parts: np.ndarray
    colors: np.ndarray | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    stats: dict | None = None
    #: The bundle's texture: per-corner UVs (M, 3, 2) and the image (S, S, 3) uint8; the sheet then shows it.
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None


def pose_mesh(case: AvatarCase, pose: np.ndarray) -> np.ndarray:
    """The avatar's vertices in ``pose`` (55, 3, SMPL-X convention, relative to the T pose), no translation."""
    rel = pose_relative_to_rest(pose, case.rest_angles)
    return skin_vertices(case.rest_vertices, case.weights, case.rest_joints, _PAR, rel)


def _areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    t = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)


def arm_inside_torso(vertices: np.ndarray, parts: np.ndarray, body: Any, pose: np.ndarray) -> float:
    """Fraction of arm vertices (parts 1, 2) inside the naked body posed alike whose closest body point is torso."""
    arm = np.isin(parts, (1, 2))
    if not arm.any():
        return 0.0
    posed_body = skin_vertices(body.vertices, body.lbs_weights, body.joints, _PAR, pose)
    q = MeshQuery(posed_body, body.faces, k=1, dtype=np.float32).query(vertices[arm])
    torso = body.parts[body.faces[q.face, 0]] == 0
    return float(((q.distance < -0.005) & torso).mean())


def most_lost_segment(case: AvatarCase) -> tuple[float, str]:
    """(share, name) of the limb segment the rest mesh loses most: the naked body posed into the rest pose, the share
    of each segment's body vertices more than ``MISSING_OUTSIDE_M`` outside the rest mesh
    (:func:`icon_engine.avatar.segment_outside_fractions`, what the avatar stage restores from
    ``MISSING_FRACTION`` on). Loose clothing does not count (the body is inside it); unresolved fingers leave up to
    ~0.5 of a hand outside. Dev photos before wave 12: icon_c9856a2b's right forearm and hand 1.00, icon_e1e7622a's
    left hand 1.00."""
    from icon_engine.avatar import LIMB_SEGMENT_NAMES, segment_outside_fractions
    from icon_engine.avatar.photo_occupancy import MISSING_OUTSIDE_M

    posed_body = skin_vertices(case.body.vertices, case.body.lbs_weights, case.body.joints, _PAR, case.rest_angles)
    outside = MeshQuery(case.rest_vertices, case.faces).signed_distance(posed_body) > MISSING_OUTSIDE_M
    share, joint = max((v, j) for j, v in segment_outside_fractions(outside, case.body.lbs_weights).items())
    return share, LIMB_SEGMENT_NAMES[joint]


def measure(case: AvatarCase, poses: tuple[str, ...] = TEST_POSES) -> list[dict]:
    """Per pose: torn faces (count, %), longest / median edge, faces with area change > 4×, arm inside torso,
    creases between the knees and the hips (:func:`thigh_creases`)."""
    ref_area = _areas(case.posed_vertices, case.faces)
    rows = []
    for name in poses:
        if name == "rest":
            v = case.rest_vertices
            pose = case.rest_angles
        else:
            pose = test_pose(name)
            v = pose_mesh(case, pose)
        torn = torn_faces(case.posed_vertices, v, case.faces)
        edges = longest_edges(v, case.faces)
        area = _areas(v, case.faces)
        ratio = np.maximum(area, 1e-12) / np.maximum(ref_area, 1e-12)
        rows.append({
            "avatar": case.name, "pose": name, "faces": int(len(case.faces)), "torn": int(torn.sum()),
            "torn_pct": 100.0 * float(torn.mean()), "longest_over_median": float(edges.max() / np.median(edges)),
            "area4x_pct": 100.0 * float(((ratio > 4) | (ratio < 0.25)).mean()),
            "arm_in_torso_pct": 100.0 * arm_inside_torso(v, case.parts, case.body, pose),
            "thigh_creases_pct": 100.0 * thigh_creases(case, v),
        })
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Avatars


_PART_COLOURS = np.array([[0.75, 0.72, 0.68], [0.85, 0.45, 0.35], [0.35, 0.55, 0.85], [0.55, 0.75, 0.4],
                          [0.8, 0.7, 0.3]])


def synthetic_case(model: Any, name: str, kind: str, index: int = 0, resolution: int = 192,
                   face_count: int = 40_000) -> AvatarCase:
    """A bench/synthetic.py subject in :func:`photo_pose` ``name`` wearing ``kind``; the avatar stage runs on its
    exact clothed surface and body (the photo's pose and shape are known)."""
    from bench import synthetic as syn
    from icon_engine.avatar import build_avatar

    s = syn.make_subject(model, index, kind=kind, pose=photo_pose(name))
    fit = SimpleNamespace(betas=s.betas, full_pose=s.full_pose, transl=s.offset)
    t, c = time.perf_counter(), time.process_time()
    av = build_avatar(s.clothed_vertices, s.clothed_faces, fit, model, resolution=resolution, levels=4,
                      face_count=face_count, camera=s.camera, mask=s.mask)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    body = canonical_body(fit, model)
    posed_t = av.posed_vertices - s.offset  # measure without the root translation
    return AvatarCase(f"{name}_{kind}", av.rig.rest_vertices, av.faces, av.rig.skin_weights.astype(np.float64),
                      av.rig.rest_joints, av.rig.rest_pose_angles, posed_t, body, av.vertex_parts,
                      _PART_COLOURS[av.vertex_parts], secs, cpu, dict(av.stats))


def bundle_case(path: Path, model: Any) -> AvatarCase:
    """An avatar read back from a result bundle (``model``: the body model it was made with)."""
    from icon_engine.avatar import JOINT_PART
    from icon_engine.bundle import read_bundle

    b = read_bundle(path)
    rig = b.meta.get("rig", {})
    angles = np.asarray(rig.get("rest_pose_angles", np.zeros((NUM_JOINTS, 3))), dtype=np.float64)
    fit = SimpleNamespace(betas=np.asarray(b.meta["body"]["betas"]), full_pose=b.full_pose, transl=b.transl)
    body = canonical_body(fit, model)
    w = b.skin_weights
    parts = (w @ (JOINT_PART[None, :] == np.arange(len(PART_NAMES))[:, None]).T.astype(float)).argmax(axis=1)
    colors = b.posed_mesh.colors
    colors = None if colors is None else np.asarray(colors, dtype=np.float64)[:, :3] / 255.0
    timings = b.meta.get("timings", {})
    uv, texture = b.posed_mesh.uv, None
    if uv is not None and b.file("texture") is not None:
        from PIL import Image

        texture = np.asarray(Image.open(b.file("texture")).convert("RGB"))
    return AvatarCase(path.name, b.rest_mesh.vertices, b.rest_mesh.faces, w, b.rest_joints, angles,
                      b.posed_mesh.vertices - b.transl, body, parts, colors, float(timings.get("rig", 0.0)), 0.0,
                      dict(rig.get("stats", {})), uv, texture)


def save_case(case: AvatarCase, path: Path) -> None:
    """Keep a synthetic case (arrays + its betas-free canonical body is rebuilt on load from ``body_betas``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, rest=case.rest_vertices, faces=case.faces, weights=case.weights.astype(np.float32),
                        joints=case.rest_joints, angles=case.rest_angles, posed=case.posed_vertices,
                        body_vertices=case.body.vertices, body_joints=case.body.joints, parts=case.parts,
                        seconds=[case.seconds, case.cpu_seconds], stats=json.dumps(case.stats, default=str))


def load_case(path: Path, model: Any) -> AvatarCase:
    """A case written by :func:`save_case` (``model``: the body model, for faces, weights and parts)."""
    from icon_engine.avatar import CanonicalBody

    z = np.load(path)
    ref = canonical_body(SimpleNamespace(betas=np.zeros(10)), model)
    body = CanonicalBody(z["body_vertices"], ref.faces, ref.lbs_weights, z["body_joints"], ref.parts)
    return AvatarCase(path.stem, z["rest"], z["faces"], z["weights"].astype(np.float64), z["joints"], z["angles"],
                      z["posed"], body, z["parts"], _PART_COLOURS[z["parts"]], float(z["seconds"][0]),
                      float(z["seconds"][1]), json.loads(str(z["stats"])))


# ----------------------------------------------------------------------------------------------------------------
# Contact sheet


def render_front(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None, width: int = 220,
                 height: int = 300, uv: np.ndarray | None = None, texture: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 front view (world −Z looking, Y up), framing the mesh: its texture (``uv`` per corner,
    ``texture`` image: what Blender shows, unshaded) when given, else Lambert-shaded vertex colours."""
    from icon_engine import render
    from icon_engine.preview import framing_camera

    cam = framing_camera(vertices, width, height, fill=0.92)
    if uv is not None and texture is not None:
        from icon_engine.texture import render_textured

        rgb, covered = render_textured(vertices, faces, uv, texture, cam)
        return np.where(covered[..., None], np.clip(np.round(rgb), 0, 255), 237).astype(np.uint8)
    rgb, mask = render.render_shaded(cam.to_camera(vertices), faces, cam.K, width, height,
                                     colors=colors if colors is not None else np.array([0.8, 0.78, 0.74]))
    out = np.where(mask[..., None], rgb, np.float32(0.93))
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def turned(vertices: np.ndarray, degrees: float) -> np.ndarray:
    """``vertices`` (N, 3) turned by ``degrees`` about the vertical (Y) through their centroid."""
    from icon_engine.geometry.rotations import axis_angle_to_matrix

    rot = axis_angle_to_matrix(np.array([0.0, np.radians(degrees), 0.0]))
    centre = vertices.mean(axis=0)
    return (vertices - centre) @ rot.T + centre


def contact_sheet(cases: list[AvatarCase], path: Path, width: int = 200, height: int = 280) -> Path:
    """One row per avatar, columns :data:`SHEET_POSES` (textured where the case has its texture: bundles); JPEG or
    PNG by suffix."""
    from PIL import Image, ImageDraw

    rows = []
    for case in cases:
        tiles = []
        for name in SHEET_POSES:
            pose, _, turn = name.partition("@")
            if pose == "photo":
                v = case.posed_vertices
            elif pose == "rest":
                v = case.rest_vertices
            else:
                v = pose_mesh(case, test_pose(pose))
            if turn:
                v = turned(v, float(turn))
            tile = Image.fromarray(render_front(v, case.faces, case.colors, width, height, case.uv, case.texture))
            ImageDraw.Draw(tile).text((4, 4), f"{case.name[:26]} · {name}", fill=(20, 20, 20))
            tiles.append(np.asarray(tile))
        rows.append(np.concatenate(tiles, axis=1))
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(path, quality=82)
    else:
        sheet.save(path)
    return path


# ----------------------------------------------------------------------------------------------------------------


SYNTHETIC = {"hips": "tight", "crossed": "tight", "against": "loose", "skirt": "skirt", "coat": "coat"}


def _synthetic_spec(item: str) -> tuple[str, str]:
    """"hips" → ("hips", "tight"); "skirt" → ("stand", "skirt"); "hips:skirt" → ("hips", "skirt")."""
    if ":" in item:
        a, b = item.split(":", 1)
        return a, b
    kind = SYNTHETIC.get(item, "tight")
    return (item if item in ("hips", "crossed", "against") else "stand"), kind


def run_photos(photos: list[Path], out_dir: Path, quality: str, model: Any) -> list[AvatarCase]:
    """Reconstruct photos through the whole pipeline (``reconstruct``) and read the bundles back as cases."""
    from icon_engine.options import ReconstructOptions
    from icon_engine.pipeline import reconstruct

    cases = []
    for photo in photos:
        t, c = time.perf_counter(), time.process_time()
        name = photo.parent.name if photo.name == "photo.png" else photo.stem
        path = reconstruct(photo, out_dir, ReconstructOptions(quality=quality), bundle_name=name, body_model=model)
        case = bundle_case(path, model)
        case.seconds, case.cpu_seconds = time.perf_counter() - t, time.process_time() - c
        cases.append(case)
        print(f"  {name}: {case.seconds:.0f} s wall, {case.cpu_seconds:.0f} s CPU", file=sys.stderr)
    return cases


#: Zones of :func:`pleat_shares`: name → (joints, radius in metres) in the rest pose.
PLEAT_ZONES = {"armpits": ((16, 17), 0.13), "elbows": ((18, 19), 0.09), "knees": ((4, 5), 0.10)}


def _turned_faces(vertices: np.ndarray, faces: np.ndarray, iterations: int = 10, turn_deg: float = 20.0) -> np.ndarray:
    """(M,) bool: faces whose normal turns more than ``turn_deg`` from the same face's on a copy smoothed by
    ``iterations`` Laplacian rounds (λ = 0.5): ridges, dents, pleats and creases of a few centimetres."""
    from icon_engine.geometry.laplacian import laplacian_smooth
    from icon_engine.geometry.normals import face_normals

    smooth = laplacian_smooth(vertices, faces, iterations)
    cos = np.einsum("ij,ij->i", face_normals(vertices, faces), face_normals(smooth, faces))
    return cos < np.cos(np.radians(turn_deg))


def thigh_creases(case: AvatarCase, vertices: np.ndarray) -> float:
    """Area share of the faces between the knees and the hips (rest-pose heights) that are creased
    (:func:`_turned_faces`) in the posed ``vertices``: a skirt split down the middle in a stride, a sheet between
    the thighs (wave 16)."""
    j = case.rest_joints
    y = case.rest_vertices[case.faces].mean(axis=1)[:, 1]
    band = (y > j[[4, 5], 1].mean()) & (y < j[[1, 2], 1].mean())
    area = _areas(vertices, case.faces)
    return float(area[band & _turned_faces(vertices, case.faces)].sum() / max(area[band].sum(), 1e-12))


def pleat_shares(case: AvatarCase, iterations: int = 10, turn_deg: float = 20.0) -> dict[str, float]:
    """Crumpling of the rest mesh (wave 15): per zone of :data:`PLEAT_ZONES` (faces within the radius of one of its
    rest joints) and over the whole mesh, the area share of faces whose normal turns more than ``turn_deg`` from
    the same face's on a copy smoothed by ``iterations`` Laplacian rounds (λ = 0.5) — ridges, dents and pleats of a
    few centimetres; the body's own curvature at the smoothing's scale turns less."""
    v, f = case.rest_vertices, case.faces
    turned = _turned_faces(v, f, iterations, turn_deg)
    area = _areas(v, f)
    centres = v[f].mean(axis=1)
    out = {}
    for name, (joints, radius) in PLEAT_ZONES.items():
        near = np.min([np.linalg.norm(centres - case.rest_joints[j], axis=1) for j in joints], axis=0) < radius
        out[name] = float(area[near & turned].sum() / max(area[near].sum(), 1e-12))
    out["all"] = float(area[turned].sum() / max(area.sum(), 1e-12))
    return out


def leg_cloth(case: AvatarCase, far: float = 0.05) -> tuple[float, float]:
    """Cloth standing off the legs in the rest pose (wave 22): (share of the rest mesh's leg vertices — parts from
    the weights — farther than ``far`` metres outside the canonical body, their 99th percentile distance in
    metres). A sack or a flap hanging off a thigh after un-posing shows in both; tight trousers stay near 0 / 3 cm."""
    from icon_engine.mesh_queries import MeshQuery
    from icon_engine.texture import PART_LEFT_LEG, PART_RIGHT_LEG

    legs = np.isin(case.parts, (PART_LEFT_LEG, PART_RIGHT_LEG))
    if not legs.any():
        return 0.0, 0.0
    dist = MeshQuery(case.body.vertices, case.body.faces).signed_distance(case.rest_vertices[legs])
    return float((dist > far).mean()), float(np.percentile(dist, 99))


def summarise(rows: list[dict]) -> dict:
    """Worst figures over all avatars, per pose."""
    out: dict[str, dict] = {}
    for r in rows:
        s = out.setdefault(r["pose"], {"torn_max": 0, "torn_pct_max": 0.0, "longest_over_median_max": 0.0,
                                       "area4x_pct_max": 0.0, "arm_in_torso_pct_max": 0.0,
                                       "thigh_creases_pct_max": 0.0})
        s["torn_max"] = max(s["torn_max"], r["torn"])
        s["torn_pct_max"] = max(s["torn_pct_max"], r["torn_pct"])
        s["longest_over_median_max"] = max(s["longest_over_median_max"], r["longest_over_median"])
        s["area4x_pct_max"] = max(s["area4x_pct_max"], r["area4x_pct"])
        s["arm_in_torso_pct_max"] = max(s["arm_in_torso_pct_max"], r["arm_in_torso_pct"])
        s["thigh_creases_pct_max"] = max(s["thigh_creases_pct_max"], r["thigh_creases_pct"])
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse
    import os
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", default="hips,crossed,against,skirt,coat",
                    help="synthetic subjects: photo pose names or 'pose:kind' (empty: none)")
    ap.add_argument("--shared-synthetic", default="", help="../shared/bench/synthetic-dev subjects, e.g. 103,106")
    ap.add_argument("--dev", type=int, default=0, help="reconstruct the first N ../shared/images/dev photos")
    ap.add_argument("--quality", default="standard")
    ap.add_argument("--sheet", type=Path, default=None, help="write the contact sheet here (.jpg or .png)")
    ap.add_argument("--json", type=Path, default=None, help="write all rows here")
    ap.add_argument("--out", type=Path, default=None, help="keep the bundles here")
    ap.add_argument("--bundles", type=Path, nargs="*", default=[], help="also measure these existing bundles")
    ap.add_argument("--cases-dir", type=Path, default=None,
                    help="save each synthetic case here as it finishes (an .npz), and measure saved ones")
    args = ap.parse_args(argv)

    from icon_engine.body_model import load_body_model

    model = load_body_model()
    cases: list[AvatarCase] = []
    for item in [s for s in args.synthetic.split(",") if s]:
        pose, kind = _synthetic_spec(item)
        saved = None if args.cases_dir is None else args.cases_dir / f"{pose}_{kind}.npz"
        if saved is not None and saved.exists():
            cases.append(load_case(saved, model))
            continue
        cases.append(synthetic_case(model, pose, kind))
        if saved is not None:
            save_case(cases[-1], saved)
        print(f"  synthetic {cases[-1].name}: {cases[-1].seconds:.0f} s wall, {cases[-1].cpu_seconds:.0f} s CPU",
              file=sys.stderr)
    shared = ROOT.parent / "shared"
    photos = [shared / "bench" / "synthetic-dev" / f"subject_{s.strip()}" / "photo.png"
              for s in args.shared_synthetic.split(",") if s.strip()]
    if args.dev:
        dev = sorted(p for p in (shared / "images" / "dev").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        photos += dev[: args.dev]
    if photos:
        if args.out is not None:
            cases += run_photos(photos, args.out, args.quality, model)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                cases += run_photos(photos, Path(tmp), args.quality, model)
    for path in args.bundles:
        cases.append(bundle_case(path, model))
    rows = [r for case in cases for r in measure(case)]
    print(f"load average {os.getloadavg()[0]:.1f}\n")
    print("| avatar | pose | faces | torn faces | torn % | longest / median edge | area change > 4× (%) | "
          "arm inside torso (%) | thigh creases (%) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['avatar']} | {r['pose']} | {r['faces']} | {r['torn']} | {r['torn_pct']:.3f} | "
              f"{r['longest_over_median']:.1f} | {r['area4x_pct']:.3f} | {r['arm_in_torso_pct']:.2f} | "
              f"{r['thigh_creases_pct']:.2f} |")
    print("\n| avatar | avatar stage or reconstruction (s wall / s CPU) | contact-zone fraction | posed IoU | "
          "most lost limb segment (share outside) | limb segments restored | rest pleats % (armpits / elbows / "
          "knees / all) | rest leg cloth > 5 cm (%) / p99 (cm) |")
    print("|---|---|---|---|---|---|---|---|")
    avatars = []
    for case in cases:
        st = case.stats or {}
        iou = st.get("posed_silhouette_iou")
        share, segment = most_lost_segment(case)
        pleats = pleat_shares(case)
        cloth, cloth_p99 = leg_cloth(case)
        avatars.append({"avatar": case.name, "posed_iou": iou, "pleats": pleats, "leg_cloth": cloth,
                        "leg_cloth_p99_m": cloth_p99})
        print(f"| {case.name} | {case.seconds:.0f} / {case.cpu_seconds:.0f} | "
              f"{st.get('contact_zone_fraction', float('nan')):.3f} | {'' if iou is None else f'{iou:.3f}'} | "
              f"{segment} {share:.2f} | {st.get('limb_segments_restored', '')} | "
              f"{' / '.join(f'{100 * v:.2f}' for v in pleats.values())} | {100 * cloth:.2f} / {100 * cloth_p99:.1f} |")
    if cases:
        mean = {k: float(np.mean([a["pleats"][k] for a in avatars])) for k in avatars[0]["pleats"]}
        cloth = np.mean([[a["leg_cloth"], a["leg_cloth_p99_m"]] for a in avatars], axis=0)
        print(f"| **mean** | | | | | | {' / '.join(f'{100 * v:.2f}' for v in mean.values())} | "
              f"{100 * cloth[0]:.2f} / {100 * cloth[1]:.1f} |")
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "summary": summarise(rows), "avatars": avatars}, indent=1))
    if args.sheet is not None:
        print(f"\ncontact sheet: {contact_sheet(cases, args.sheet)}")


if __name__ == "__main__":
    main()
