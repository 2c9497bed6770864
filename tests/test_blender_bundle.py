"""A synthetic skinned SMPL-X-layout body written with the engine's bundle writer, used by the add-on tests.

Also tests that the synthetic bundle itself honours the bundle contract (so the add-on tests start from a
valid bundle). numpy + PIL only (no torch).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from icon_engine.bundle import JOINT_NAMES, PARENTS, BundleContent, TriMesh, read_bundle, skin_vertices, write_bundle
from icon_engine.camera import default_intrinsics

FINGERS = ("index", "middle", "pinky", "ring", "thumb")


def synthetic_joints() -> np.ndarray:
    """(55, 3) rest joints of a T-posed body in the SMPL-X frame (Y up, faces +Z, left = +X), metres."""
    p: dict[str, tuple[float, float, float]] = {
        "pelvis": (0, 0.95, 0), "spine1": (0, 1.07, -0.01), "spine2": (0, 1.2, 0), "spine3": (0, 1.26, 0.01),
        "neck": (0, 1.48, -0.01), "head": (0, 1.56, 0.02), "jaw": (0, 1.55, 0.06),
        "left_eye_smplhf": (0.03, 1.63, 0.08), "right_eye_smplhf": (-0.03, 1.63, 0.08),
    }  # fmt: skip
    for side, s in (("left", 1.0), ("right", -1.0)):
        p.update({
            f"{side}_hip": (0.08 * s, 0.87, 0), f"{side}_knee": (0.1 * s, 0.5, 0.01),
            f"{side}_ankle": (0.1 * s, 0.09, -0.03), f"{side}_foot": (0.11 * s, 0.03, 0.1),
            f"{side}_collar": (0.07 * s, 1.38, 0), f"{side}_shoulder": (0.18 * s, 1.4, -0.01),
            f"{side}_elbow": (0.44 * s, 1.4, -0.02), f"{side}_wrist": (0.69 * s, 1.4, -0.01),
        })  # fmt: skip
        for k, finger in enumerate(FINGERS):
            z = 0.03 - 0.015 * k
            for seg in range(3):
                x = (0.78 + 0.025 * seg) if finger != "thumb" else (0.72 + 0.025 * seg)
                zz = 0.045 + 0.01 * seg if finger == "thumb" else z
                p[f"{side}_{finger}{seg + 1}"] = (x * s, 1.4 - (0.02 if finger == "thumb" else 0), zz)
    return np.array([p[name] for name in JOINT_NAMES], dtype=np.float64)


def synthetic_body(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tube per bone (parent → joint): (V, 3) vertices, (F, 3) faces, (V, 55) weights blending at joints."""
    verts, faces, weights = [], [], []
    ring = 6
    ang = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    for j in range(1, 55):
        a, b = joints[PARENTS[j]], joints[j]
        d = b - a
        length = np.linalg.norm(d)
        d = d / length
        u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        radius = 0.05 if length > 0.1 else 0.008
        base = len(verts)
        for k, f in enumerate((0.05, 0.5, 0.95)):
            c = a + d * length * f
            for t in ang:
                verts.append(c + radius * (np.cos(t) * u + np.sin(t) * v))
                w = np.zeros(55)
                blend = (0.6, 1.0, 0.8)[k]  # near the parent joint the vertex blends with the grandparent
                w[PARENTS[j]] += blend
                w[j if k == 2 else PARENTS[PARENTS[j]] if PARENTS[PARENTS[j]] >= 0 else PARENTS[j]] += 1 - blend
                weights.append(w)
        for k in range(2):
            for i in range(ring):
                i0, i1 = base + k * ring + i, base + k * ring + (i + 1) % ring
                faces += [[i0, i1, i0 + ring], [i1, i1 + ring, i0 + ring]]
    return np.array(verts), np.array(faces, dtype=np.int64), np.array(weights)


def random_pose(seed: int = 0, scale: float = 0.35) -> np.ndarray:
    """(55, 3) random axis-angle pose (radians) with a turned, tilted global orientation."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=scale, size=(55, 3))
    pose[0] = [0.2, 0.6, -0.1]
    return pose


def _png(image: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def a_pose_angles() -> np.ndarray:
    """(55, 3) axis-angle carrying the T pose to an A pose (arms lowered 45°), as the engine's rig stage does."""
    angles = np.zeros((55, 3))
    angles[16, 2], angles[17, 2] = -np.pi / 4, np.pi / 4
    return angles


def view_camera(yaw_deg: float, distance: float = 4.5, height: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of an OpenCV camera on a circle around the body (yaw about +Y, 0 = in front, facing it)."""
    a = np.radians(yaw_deg)
    centre = np.array([distance * np.sin(a), height, distance * np.cos(a)])
    ry = np.array([[np.cos(-a), 0, np.sin(-a)], [0, 1, 0], [-np.sin(-a), 0, np.cos(-a)]])
    R = np.diag([1.0, -1.0, -1.0]) @ ry
    return R, -R @ centre


def subject_block(pose: np.ndarray, transl: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray,
                  size: tuple[int, int], views: int, seed: int, shift: np.ndarray) -> dict:
    """A ``subject`` block: photo 1 = the bundle's own pose and camera, then ``views - 1`` photos in other poses
    seen from other sides, and one photo without a person (skipped)."""
    entry = {"label": "front.jpg", "source": "/photos/front.jpg", "status": "used", "full_pose": pose,
             "transl": transl, "camera": {"K": K, "R": R, "t": t, "width": size[0], "height": size[1]}}
    photos = [entry]
    for k in range(1, views):
        R_k, t_k = view_camera(90.0 * k)
        t_k = t_k - R_k @ shift  # the rest body's frame offset, as for the main camera
        photos.append({"label": f"view{k}.jpg", "source": f"/photos/view{k}.jpg", "status": "used",
                       "full_pose": random_pose(seed + 10 * k, scale=0.3), "transl": transl + [0.1 * k, 0, -0.05 * k],
                       "camera": {"K": K, "R": R_k, "t": t_k, "width": size[0], "height": size[1]}})
    photos.insert(2, {"label": "empty.jpg", "source": "/photos/empty.jpg", "status": "no_person"})
    return {"photos": photos, "used": views, "betas": [0.0] * 10, "stature_m": 1.7}


def view_photo_grey(i: int) -> int:
    """The grey level of subject photo ``i``'s stored image in :func:`make_bundle` (tells the photos apart)."""
    return 30 + 40 * i


def make_bundle(target: Path, seed: int = 0, texture: bool = True, size: tuple[int, int] = (640, 480),
                rest_pose: str = "T", rest_offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
                views: int = 0, correctives: bool = False) -> Path:
    """Write a synthetic bundle at ``target`` and return its path. ``rest_pose`` "A": the rest mesh and joints are
    in an A pose and ``rig.pose_from_rest`` carries them to the photo's pose (``body.full_pose`` stays SMPL-X's).
    ``rest_offset`` (metres, SMPL-X frame) moves the rest body like a body model's canonical frame does (SMPL-X's
    pelvis sits near the origin, its feet ~1.2 m below); the camera follows, so the photo is unchanged.
    ``views`` ≥ 2: an avatar from several photos, with a ``subject`` block (:func:`subject_block`).
    ``correctives``: pose correctives (3 shape keys on the forearms and a shin, format 3), included in the posed
    mesh."""
    from icon_blender.core.rig import pose_relative_to_rest
    from icon_engine.bundle import forward_kinematics

    rng = np.random.default_rng(seed)
    shift = np.asarray(rest_offset, dtype=np.float64)
    joints = synthetic_joints() + shift
    rest, faces, weights = synthetic_body(joints)
    pose = random_pose(seed)
    transl = np.array([0.05, -0.02, 0.1])
    rig_meta: dict = {"rest_pose": rest_pose}
    pose_rest = pose
    if rest_pose == "A":
        angles = a_pose_angles()
        rest = skin_vertices(rest, weights, joints, np.array(PARENTS), angles)
        _, joints = forward_kinematics(joints, np.array(PARENTS), angles)
        pose_rest = pose_relative_to_rest(pose, angles, np.array(PARENTS))
        rig_meta.update(rest_pose_angles=angles, pose_from_rest=pose_rest)
    corr = synthetic_correctives(rest, weights, seed) if correctives else None
    moved = rest + corr.displacement(pose_rest) if corr is not None else rest
    posed = skin_vertices(moved, weights, joints, np.array(PARENTS), pose_rest, transl)
    width, height = size
    K = default_intrinsics(width, height)
    K[0, 2] -= 23.0  # principal point off-centre: the Blender camera needs a lens shift
    K[1, 2] += 17.0
    angle = 0.15
    R = np.diag([1.0, -1.0, -1.0]) @ np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t = np.array([0.1, 1.0, 4.5]) - R @ shift  # everything moved by shift projects as before
    colors = rng.integers(0, 255, size=(len(rest), 3), dtype=np.uint8)
    uv = rng.random((len(faces), 3, 2)) if texture else None
    tex = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8) if texture else None
    photo = np.full((height, width, 3), 90, dtype=np.uint8)
    meta = {
        "photo": {"size": [width, height], "name": "synthetic.jpg"},
        "camera": {"K": K, "R": R, "t": t},
        "body": {"full_pose": pose, "transl": transl, "betas": np.zeros(10), "model": "synthetic"},
        "options": {"quality": "preview", "rest_pose": rest_pose},
        "rig": rig_meta,
        "warnings": [],
    }
    extra: dict[str, bytes] = {}
    if views >= 2:
        meta["subject"] = subject_block(pose, transl, K, R, t, size, views, seed, shift)
        for i, entry in enumerate(meta["subject"]["photos"][1:], start=1):  # the other photos, downscaled
            if entry["status"] == "used":
                entry["image"] = f"photo_{i}.jpg"
                extra[entry["image"]] = _png(np.full((height // 4, width // 4, 3), view_photo_grey(i), np.uint8),
                                             "JPEG")
    content = BundleContent(
        metadata=meta,
        posed_mesh=TriMesh(posed, faces, colors, uv),
        body_mesh=TriMesh(posed, faces),
        rest_mesh=TriMesh(rest, faces, colors, uv),
        skin_weights=weights.astype(np.float32),
        rest_joints=joints.astype(np.float32),
        mask=np.zeros((height, width), dtype=bool),
        texture=tex,
        photo_bytes=_png(photo, "JPEG"),
        photo_suffix=".jpg",
        correctives=corr,
        extra_files=extra,
    )
    return write_bundle(target, content)


def synthetic_correctives(rest: np.ndarray, weights: np.ndarray, seed: int = 0):
    """3 shape keys (left elbow, right elbow, left knee) moving the vertices their joint skins by up to 3 cm."""
    from icon_engine.bundle.correctives import Correctives

    rng = np.random.default_rng(seed + 1)
    key_joint = np.array([18, 19, 4])
    offsets = np.zeros((3, len(rest), 3))
    for k, j in enumerate(key_joint):
        offsets[k] = weights[:, j : j + 1] * rng.normal(scale=0.015, size=(1, 3))
    coeffs = rng.normal(size=(3, 9))
    coeffs /= np.linalg.norm(coeffs, axis=1, keepdims=True)
    return Correctives(offsets.astype(np.float16).astype(np.float32), key_joint, coeffs, {"kept": ["left_elbow"]})


def test_synthetic_bundle_is_valid_and_reproduces_posed_mesh(tmp_path):
    path = make_bundle(tmp_path / "body")
    b = read_bundle(path)
    assert b.rest_mesh.vertices.shape == b.posed_mesh.vertices.shape
    again = skin_vertices(b.rest_mesh.vertices, b.skin_weights, b.rest_joints, b.parents, b.full_pose, b.transl)
    assert np.abs(again - b.posed_mesh.vertices).max() < 1e-4
    # every joint moves some vertex, so a wrong bone would show in the posed mesh
    assert np.all((b.skin_weights > 0).sum(0)[1:] > 0)
    px, depth = (b.posed_mesh.vertices @ b.R.T + b.t) @ b.K.T, None
    depth = px[:, 2]
    uv = px[:, :2] / depth[:, None]
    assert np.all(depth > 0)
    assert np.all((uv > 0).all(1) & (uv[:, 0] < 640) & (uv[:, 1] < 480))
