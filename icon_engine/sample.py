"""The built-in sample photo: the open body, dressed and posed, rendered by our own renderer.

It is free to ship because we generate it: the open body (``body_model.load_body_model()``) in a relaxed
standing pose (arms away from the body, knees and elbows slightly bent), coloured per vertex as skin, T-shirt,
trousers, shoes and hair (regions from the skinning weights and the T-posed body's geometry), shaded with a key
and a fill light, a painted face (eyes, brows, nose, lips, drawn at the projected landmarks), a ground shadow,
a wall-and-floor background and a little sensor grain. It is deterministic and BlazePose (mediapipe) finds the
person in it. ``sample_photo_path()`` writes it once into the cache folder.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import FRONT_VIEW_R, Camera, default_intrinsics
from .paths import cache_dir

WIDTH, HEIGHT = 768, 1024

#: Bump when the look changes: it is part of the cached file's name.
SAMPLE_VERSION = 3

#: Albedo (linear-ish RGB in [0, 1]) of the regions.
COLORS = {
    "skin": (0.82, 0.62, 0.50),
    "hair": (0.16, 0.10, 0.07),
    "shirt": (0.16, 0.36, 0.62),
    "trousers": (0.20, 0.21, 0.27),
    "shoes": (0.24, 0.16, 0.11),
}
REGIONS = tuple(COLORS)

# SMPL-X joint indices (icon_engine.bundle.skeleton order).
PELVIS, L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 0, 1, 2, 4, 5, 7, 8
NECK, L_COLLAR, R_COLLAR, HEAD = 12, 13, 14, 15
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 16, 17, 18, 19, 20, 21
TORSO = (0, 3, 6, 9, 13, 14)
LEGS = (1, 2, 4, 5, 7, 8, 10, 11)
FEET = (7, 8, 10, 11)
HEAD_JOINTS = (12, 15, 22, 23, 24)


def standing_pose() -> np.ndarray:
    """Axis-angle pose (55, 3) of a relaxed standing person (SMPL-X joint order, radians)."""
    pose = np.zeros((55, 3))
    pose[0] = (0.0, 0.12, 0.0)  # turned a little to the left
    pose[L_COLLAR] = (0.0, 0.0, -0.12)
    pose[R_COLLAR] = (0.0, 0.0, 0.12)
    pose[L_SHOULDER] = (0.0, -0.15, -1.12)  # arms down, ~25° away from the body
    pose[R_SHOULDER] = (0.0, 0.15, 1.12)
    pose[L_ELBOW] = (0.0, -0.38, 0.0)  # forearms bent forward
    pose[R_ELBOW] = (0.0, 0.38, 0.0)
    pose[L_WRIST] = (0.0, 0.0, -0.1)
    pose[R_WRIST] = (0.0, 0.0, 0.1)
    pose[L_HIP] = (-0.05, 0.0, 0.06)
    pose[R_HIP] = (-0.05, 0.0, -0.06)
    pose[L_KNEE] = (0.1, 0.0, 0.0)
    pose[R_KNEE] = (0.1, 0.0, 0.0)
    pose[L_ANKLE] = (-0.05, 0.0, -0.05)
    pose[R_ANKLE] = (-0.05, 0.0, 0.05)
    pose[HEAD] = (0.04, -0.08, 0.0)  # looking at the camera
    for j in range(25, 55):  # relaxed, slightly curled fingers
        pose[j] = (0.0, 0.0, -0.18 if j < 40 else 0.18)
    return pose


def region_features(rest_vertices: np.ndarray, lbs_weights: np.ndarray) -> np.ndarray:
    """Per-vertex features (V, 6) the regions are decided from: T-pose x, y, z (metres) and the skinning weight
    of the upper limbs, the head and the lower body. Interpolated over pixels they give smooth region borders."""
    w = np.asarray(lbs_weights, dtype=np.float64)
    arms = list(range(L_SHOULDER, R_WRIST + 1)) + list(range(25, min(55, w.shape[1])))
    return np.concatenate([
        np.asarray(rest_vertices, dtype=np.float64),
        w[:, arms].sum(axis=1, keepdims=True),
        w[:, list(HEAD_JOINTS)].sum(axis=1, keepdims=True),
        w[:, list(LEGS) + [PELVIS]].sum(axis=1, keepdims=True),
    ], axis=1)  # fmt: skip


def regions_from_features(feat: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Region index into :data:`REGIONS` for features (..., 6) of :func:`region_features` (per vertex or pixel)."""
    j = np.asarray(rest_joints)
    x, y, z = feat[..., 0], feat[..., 1], feat[..., 2]
    arm, head_w = feat[..., 3] > 0.5, feat[..., 4] > 0.5
    ax = np.abs(x)
    region = np.full(x.shape, REGIONS.index("skin"))
    body = ~arm & ~head_w
    waist = j[PELVIS, 1] + 0.08 - 0.02 * (z < j[PELVIS, 2])
    region[body & (y < waist)] = REGIONS.index("trousers")
    # A crew neck: low in front, rising steeply over the shoulders.
    neckline = j[NECK, 1] - 0.035 + 0.9 * np.maximum(ax - 0.035, 0.0) - 0.03 * (z > j[NECK, 2] + 0.01)
    sleeve_end = abs(j[L_SHOULDER, 0]) + 0.5 * abs(j[L_ELBOW, 0] - j[L_SHOULDER, 0])
    shirt = (y >= waist) & (y < neckline) & (ax < sleeve_end) & (body | (arm & (ax < sleeve_end)))
    region[shirt] = REGIONS.index("shirt")
    ankle_y = 0.5 * (j[L_ANKLE, 1] + j[R_ANKLE, 1])
    region[body & (y < ankle_y + 0.035)] = REGIONS.index("shoes")

    head = head_w & (y > j[NECK, 1])
    eye_y = 0.5 * (j[23, 1] + j[24, 1])
    top = y > eye_y + 0.032 - 0.2 * np.maximum(j[HEAD, 2] + 0.06 - z, 0.0)  # hairline recedes to the sides
    back = (z < j[HEAD, 2] - 0.005) & (y > eye_y - 0.07)
    ears = (ax > 0.062) & (y < eye_y + 0.015) & (z > j[HEAD, 2] - 0.035)
    region[head & (top | back) & ~ears] = REGIONS.index("hair")
    return region


@dataclass
class SampleScene:
    """The posed, dressed sample body and its camera (bundle world; camera in processing = photo pixels)."""

    vertices: np.ndarray  # (V, 3) world, metres
    faces: np.ndarray  # (F, 3)
    joints: np.ndarray  # (55, 3) world
    keypoints: dict[str, np.ndarray]  # name → (3,) world: eyes, nose, mouth, brows, …
    features: np.ndarray  # (V, 6) region_features of the T-posed body
    rest_joints: np.ndarray  # (55, 3) T-pose joints (SMPL-X frame)
    camera: Camera
    extras: list[tuple[np.ndarray, np.ndarray, str]]  # (vertices (n, 3) world, faces (m, 3), region): shoes, hair

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything that is drawn (body, shoes, hair) as one mesh: (vertices (N, 3) world, faces (M, 3))."""
        verts, faces = [self.vertices], [self.faces]
        n = len(self.vertices)
        for sv, sf, _ in self.extras:
            verts.append(sv)
            faces.append(sf + n)
            n += len(sv)
        return np.concatenate(verts), np.concatenate(faces)


def _hair(vertices: np.ndarray, faces: np.ndarray, hair: np.ndarray, thickness: float = 0.007
          ) -> tuple[np.ndarray, np.ndarray]:
    """A hair shell: the scalp's faces (all corners in ``hair``) lifted ``thickness`` metres along the normals."""
    from . import render  # torch: only when the sample is drawn, not for its cached path (start-up)
    from .geometry.decimate import compact

    scalp, f, used = compact(vertices, faces[hair[faces].all(axis=1)])
    return scalp + thickness * render.vertex_normals(vertices, faces)[used], f


def _features_of(region: str, n: int, rest_joints: np.ndarray) -> np.ndarray:
    """(n, 6) region features that :func:`regions_from_features` classifies as ``region`` (shoes or hair)."""
    j = rest_joints
    if region == "shoes":  # below the ankles, lower body
        feat = [0.0, j[L_ANKLE, 1] - 0.05, 0.0, 0.0, 0.0, 1.0]
    elif region == "hair":  # top of the head
        feat = [0.0, j[HEAD, 1] + 0.2, j[HEAD, 2], 0.0, 1.0, 0.0]
    else:
        raise ValueError(f"no features for region {region!r}")
    return np.tile(np.asarray(feat), (n, 1))


def _shoe(points: np.ndarray, inflate: float = 0.006) -> tuple[np.ndarray, np.ndarray]:
    """A shoe: the convex hull of a foot's points pushed ``inflate`` metres outwards, faces wound outwards."""
    from scipy.spatial import ConvexHull

    from . import render
    from .geometry.decimate import compact

    v, f, _ = compact(points, ConvexHull(points).simplices)
    centre = v.mean(axis=0)
    n = render.face_normals(v, f)
    outward = np.einsum("ij,ij->i", n, v[f].mean(axis=1) - centre) >= 0
    f[~outward] = f[~outward][:, ::-1]
    vn = render.vertex_normals(v, f)
    v = v + inflate * vn
    v[:, 1] = np.maximum(v[:, 1], 0.0)  # soles on the floor
    return v, f


def _face_landmark_vertices(rest: np.ndarray, dom: np.ndarray, eyes: np.ndarray, nose: np.ndarray
                            ) -> dict[str, int]:
    """Vertex ids on the T-posed face for the painted features (mouth, brows), found by position."""
    head = np.flatnonzero(np.isin(dom, (HEAD, 22)))

    def front_vertex(x: float, y: float) -> int:
        near = head[np.hypot(rest[head, 0] - x, rest[head, 1] - y) < 0.012]
        pool = near if len(near) else head
        score = rest[pool, 2] - 2.0 * np.hypot(rest[pool, 0] - x, rest[pool, 1] - y)
        return int(pool[np.argmax(score)])

    eye_y = eyes[:, 1].mean()
    mouth_y = nose[1] - 0.62 * (eye_y - nose[1]) - 0.012
    ids = {
        "mouth": front_vertex(0.0, mouth_y),
        "mouth_left": front_vertex(0.024, mouth_y + 0.002),
        "mouth_right": front_vertex(-0.024, mouth_y + 0.002),
        "chin": front_vertex(0.0, mouth_y - 0.045),
    }
    for side, e in (("left", eyes[0]), ("right", eyes[1])):
        ids[f"{side}_brow"] = front_vertex(e[0] + np.sign(e[0]) * 0.004, eye_y + 0.02)
        ids[f"{side}_brow_outer"] = front_vertex(e[0] + np.sign(e[0]) * 0.022, eye_y + 0.016)
        ids[f"{side}_brow_inner"] = front_vertex(e[0] - np.sign(e[0]) * 0.012, eye_y + 0.018)
        ids[f"{side}_nostril"] = front_vertex(np.sign(e[0]) * 0.009, nose[1] - 0.012)
    return ids


def build_scene(body_model=None, pose: np.ndarray | None = None, betas: np.ndarray | None = None) -> SampleScene:
    """Pose and dress the open body (or ``body_model``) and place the photo's camera. Deterministic.

    ``pose`` (55, 3) axis-angle (default :func:`standing_pose`) and ``betas`` (shape coefficients, default the
    mean shape) let benchmarks dress other poses and shapes; the world is then shifted so the lowest vertex lies
    on y = 0 and the pelvis above the origin (scene.vertices − posed vertices is that shift)."""
    import torch

    if body_model is None:
        from .body_model import load_body_model

        body_model = load_body_model()
    names = list(body_model.keypoint_names)
    shape = {} if betas is None else {"betas": torch.tensor(np.asarray(betas, np.float32)).reshape(1, -1)}
    with torch.no_grad():
        rest = body_model(**shape)
        full = standing_pose() if pose is None else np.asarray(pose, np.float64).reshape(55, 3)
        pose = torch.tensor(full, dtype=torch.float32).reshape(1, -1)
        out = body_model(
            global_orient=pose[:, :3], body_pose=pose[:, 3:66],
            left_hand_pose=pose[:, 75:120], right_hand_pose=pose[:, 120:165], **shape,
        )  # fmt: skip
    rest_v = rest.vertices[0].numpy().astype(np.float64)
    rest_j = rest.joints[0].numpy().astype(np.float64)
    rest_k = rest.keypoints[0].numpy().astype(np.float64)
    weights = np.asarray(body_model.lbs_weights.detach().cpu() if hasattr(body_model.lbs_weights, "detach")
                         else body_model.lbs_weights)
    faces = np.asarray(body_model.faces, dtype=np.int64)
    features = region_features(rest_v, weights)
    dom = np.argmax(weights, axis=1)

    v = out.vertices[0].numpy().astype(np.float64)
    joints = out.joints[0].numpy().astype(np.float64)
    kps = out.keypoints[0].numpy().astype(np.float64)
    # Normalised world: lowest vertex on y = 0, pelvis above the origin.
    offset = np.array([-joints[PELVIS, 0], -v[:, 1].min(), -joints[PELVIS, 2]])
    # Rounded to 10 µm so that float noise of the body model (thread scheduling) cannot change a pixel.
    v, joints, kps = (np.round(a + offset, 5) for a in (v, joints, kps))

    eyes_rest = np.stack([rest_k[names.index("left_eye")], rest_k[names.index("right_eye")]])
    ids = _face_landmark_vertices(rest_v, dom, eyes_rest, rest_k[names.index("nose")])
    keypoints = {name: kps[i] for i, name in enumerate(names)}
    keypoints.update({name: v[i] for name, i in ids.items()})

    K = default_intrinsics(WIDTH, HEIGHT)
    height = v[:, 1].max()
    dist = K[1, 1] * height / (0.8 * HEIGHT) + 0.15
    centre = np.array([0.0, 0.52 * height, 0.0])
    R = FRONT_VIEW_R.copy()
    t = np.array([0.0, 0.0, dist]) - R @ centre
    # Tilt the camera down slightly (it stands at chest height, looking a bit down at the floor).
    tilt = np.radians(3.0)
    Rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(tilt), -np.sin(tilt)], [0.0, np.sin(tilt), np.cos(tilt)]])
    camera = Camera(K, Rx @ R, Rx @ t, WIDTH, HEIGHT)
    rest_region = regions_from_features(features, rest_j)
    extras = []
    for side in (1.0, -1.0):
        foot = (rest_region == REGIONS.index("shoes")) & (side * rest_v[:, 0] > 0)
        extras.append((*_shoe(v[foot]), "shoes"))
    extras.append((*_hair(v, faces, rest_region == REGIONS.index("hair")), "hair"))
    return SampleScene(v, faces, joints, keypoints, features, rest_j, camera, extras)


# ----------------------------------------------------------------------------------------------------------------
# Drawing


def _background(camera: Camera) -> np.ndarray:
    """Wall and floor (H, W, 3) float: rays hitting the ground plane y = 0 are floor, others wall."""
    from . import render

    rays = render.pixel_rays(camera.K, camera.width, camera.height) @ camera.R  # world directions
    origin = camera.center
    with np.errstate(divide="ignore", invalid="ignore"):
        s = -origin[1] / rays[..., 1]
    floor = (rays[..., 1] < 0) & (s > 0)
    hit = origin + rays * s[..., None]
    wall = np.array([0.78, 0.76, 0.72]) * (0.93 + 0.07 * np.linspace(1, 0, camera.height))[:, None, None]
    img = np.broadcast_to(wall, (camera.height, camera.width, 3)).copy()
    dist = np.hypot(hit[..., 0] - origin[0], hit[..., 2] - origin[2])
    fade = 0.82 + 0.18 * np.clip(3.0 / np.maximum(dist, 1e-6), 0.0, 1.0)  # nearer floor is a little brighter
    img[floor] = np.array([0.62, 0.58, 0.53]) * fade[floor][:, None]
    return img


def _shadow(scene: SampleScene, blur: float = 7.0) -> np.ndarray:
    """Soft contact shadow (H, W) in [0, 1] on the floor: the lower legs and shoes flattened onto y = 0,
    cast a little backwards (light from above, in front) and spread around the feet."""
    from . import render

    cam = scene.camera
    v, f = scene.mesh()
    low = v[:, 1] < 0.3
    flat = v.copy()
    flat[:, 2] -= 0.35 * v[:, 1]
    feet = v[v[:, 1] < 0.05]
    centre = feet.mean(axis=0) if len(feet) else v.mean(axis=0)
    flat[:, [0, 2]] = centre[[0, 2]] + 1.15 * (flat[:, [0, 2]] - centre[[0, 2]])
    flat[:, 1] = 0.0005
    f = f[low[f].all(axis=1)]
    mask = render.render_mask(cam.to_camera(flat), f, cam.K, cam.width, cam.height).astype(np.float64)
    return np.clip(1.3 * _gaussian(mask, blur), 0.0, 1.0)


def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma)


def _soft_ellipse(shape: tuple[int, int], centre: np.ndarray, axes: tuple[float, float], angle: float = 0.0,
                  feather: float = 0.8) -> np.ndarray:
    """Anti-aliased filled ellipse coverage (H, W) in [0, 1]; centre (x, y) and semi-axes in pixels."""
    h, w = shape
    a, b = max(axes[0], 0.3), max(axes[1], 0.3)
    r = int(np.ceil(max(a, b) + 3))
    x0, x1 = max(int(centre[0]) - r, 0), min(int(centre[0]) + r + 1, w)
    y0, y1 = max(int(centre[1]) - r, 0), min(int(centre[1]) + r + 1, h)
    out = np.zeros(shape)
    if x0 >= x1 or y0 >= y1:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
    dx, dy = xx - centre[0], yy - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    dist = (rho - 1.0) * min(a, b)  # approximate signed distance in pixels
    out[y0:y1, x0:x1] = np.clip(0.5 - dist / feather, 0.0, 1.0)
    return out


def _paint(img: np.ndarray, alpha: np.ndarray, color: tuple[float, float, float]) -> None:
    img[:] = img * (1.0 - alpha[..., None]) + np.asarray(color) * alpha[..., None]


def _paint_face(img: np.ndarray, scene: SampleScene, visible: np.ndarray, zbuf: np.ndarray | None = None) -> None:
    """Eyes, brows, nostrils and lips drawn at the projected face landmarks (sizes from metres at their depth).
    With ``zbuf`` (H, W) camera depth (metres) the face is drawn only when the eyes, nose and mouth are all in
    view (not hidden by a surface more than 2 cm nearer)."""
    cam = scene.camera
    kp = scene.keypoints
    shape = img.shape[:2]

    def px(name: str) -> tuple[np.ndarray, float]:
        uv, depth = cam.project(kp[name][None])
        return uv[0], cam.K[0, 0] / depth[0]  # pixel position, pixels per metre

    if zbuf is not None:  # other views: leave the face out unless its landmarks are on the visible surface
        for name in ("left_eye", "right_eye", "nose", "mouth"):
            uv, depth = cam.project(kp[name][None])
            iu, iv = int(np.floor(uv[0, 0])), int(np.floor(uv[0, 1]))
            inside = 0 <= iu < shape[1] and 0 <= iv < shape[0]
            if not inside or not visible[iv, iu] or zbuf[iv, iu] < depth[0] - 0.02:
                return

    le, re_ = px("left_eye")[0], px("right_eye")[0]
    roll = np.arctan2(le[1] - re_[1], le[0] - re_[0])
    for side in ("left", "right"):
        c, s = px(f"{side}_eye")
        c = c + np.array([0.0, 0.0015 * s])
        _paint(img, 0.85 * _soft_ellipse(shape, c, (0.0135 * s, 0.0062 * s), roll), (0.92, 0.90, 0.86))
        _paint(img, _soft_ellipse(shape, c, (0.0058 * s, 0.0056 * s)), (0.30, 0.19, 0.11))
        _paint(img, _soft_ellipse(shape, c, (0.0026 * s, 0.0026 * s)), (0.04, 0.03, 0.03))
        _paint(img, 0.9 * _soft_ellipse(shape, c + [0.0015 * s, -0.0016 * s], (0.0012 * s, 0.0012 * s)),
               (0.97, 0.97, 0.97))
        lid = c + np.array([0.0, -0.0052 * s])
        _paint(img, 0.8 * _soft_ellipse(shape, lid, (0.0145 * s, 0.0016 * s), roll), (0.18, 0.11, 0.08))
        brow_pts = [px(f"{side}_brow_inner")[0], px(f"{side}_brow")[0], px(f"{side}_brow_outer")[0]]
        for p0, p1 in zip(brow_pts[:-1], brow_pts[1:], strict=True):
            mid = 0.5 * (p0 + p1)
            ang = np.arctan2(p1[1] - p0[1], p1[0] - p0[0])
            half = 0.5 * np.linalg.norm(p1 - p0) + 0.002 * s
            _paint(img, 0.9 * _soft_ellipse(shape, mid, (half, 0.0026 * s), ang), (0.14, 0.09, 0.06))
        n, sn = px(f"{side}_nostril")
        _paint(img, 0.6 * _soft_ellipse(shape, n, (0.0032 * sn, 0.0018 * sn), roll), (0.35, 0.20, 0.16))
    m, sm = px("mouth")
    ml, mr = px("mouth_left")[0], px("mouth_right")[0]
    half = 0.5 * np.linalg.norm(ml - mr)
    ang = np.arctan2(ml[1] - mr[1], ml[0] - mr[0])
    _paint(img, 0.9 * _soft_ellipse(shape, m, (half, 0.0062 * sm), ang), (0.66, 0.30, 0.30))
    _paint(img, 0.9 * _soft_ellipse(shape, m, (half * 0.95, 0.0011 * sm), ang), (0.30, 0.10, 0.10))


def render_sample(scene: SampleScene | None = None, occlude_face: bool = False) -> np.ndarray:
    """The sample photo (camera height, width, 3) uint8. ``occlude_face``: paint the face only where it is in
    view (for scenes seen from the side or back; the built-in sample faces the camera)."""
    from . import render

    scene = build_scene() if scene is None else scene
    cam = scene.camera
    all_v, all_f = scene.mesh()
    vc = cam.to_camera(all_v)
    raster = render.rasterize(vc, all_f, cam.K, cam.width, cam.height)
    mask = raster.mask
    normals_cam = render.raster_normals(raster, vc, all_f, "camera", None)
    feats = np.concatenate([scene.features] + [_features_of(name, len(ev), scene.rest_joints)
                                                for ev, _, name in scene.extras])
    region = regions_from_features(raster.interpolate(feats), scene.rest_joints)
    albedo = np.asarray([COLORS[r] for r in REGIONS])[region]
    rays = render.pixel_rays(cam.K, cam.width, cam.height)
    # Key light from the upper left and in front, a weaker fill from the right, sky-ish ambient from above.
    key = render.shade(normals_cam, albedo, rays, light_dir=np.array([0.45, 0.55, 1.0]), ambient=0.0)
    fill = render.shade(normals_cam, albedo, rays, light_dir=np.array([-0.8, 0.1, 0.6]), ambient=0.0)
    up_cam = cam.R @ np.array([0.0, 1.0, 0.0])
    sky = 0.5 + 0.5 * np.clip(normals_cam @ -up_cam, -1.0, 1.0)  # camera y is down
    body = 0.85 * key + 0.25 * fill + albedo * (0.18 + 0.12 * sky)[..., None]
    img = _background(cam)
    shadow = _shadow(scene)
    img *= (1.0 - 0.55 * shadow)[..., None]
    img[mask] = body[mask]
    _paint_face(img, scene, mask, raster.depth if occlude_face else None)
    # Edge softening (anti-aliasing of the silhouette) and sensor grain.
    soft = _gaussian(mask.astype(np.float64), 0.6)
    edge = (soft > 0.02) & (soft < 0.98)
    blurred = np.stack([_gaussian(img[..., c], 0.7) for c in range(3)], axis=-1)
    img[edge] = blurred[edge]
    rng = np.random.default_rng(20251125)
    img = img + rng.normal(0.0, 0.012, img.shape)
    gamma = np.clip(img, 0.0, 1.0) ** (1 / 1.1)
    return np.round(gamma * 255.0).astype(np.uint8)


def write_sample_photo(path: str | Path) -> Path:
    """Render the sample photo and write it (PNG) to ``path`` atomically; returns the path."""
    from PIL import Image

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = render_sample()
    fd, tmp = tempfile.mkstemp(prefix=".sample-", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        Image.fromarray(img).save(tmp, format="PNG")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; the photo is an ordinary file
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def sample_photo_path() -> Path:
    """The sample photo in the cache folder, generated on first use (``sample_v<N>_<body>.png``)."""
    tag = hashlib.sha1(_body_tag().encode()).hexdigest()[:10]
    path = cache_dir() / "sample" / f"sample_v{SAMPLE_VERSION}_{tag}.png"
    if not path.is_file():
        write_sample_photo(path)
    return path


def _body_tag() -> str:
    """Identifies the open body the sample is made from (its content hash when known)."""
    try:
        from .body_model.open_body import open_body_info

        info = open_body_info() or {}
        return str(info.get("content_hash", "open"))
    except Exception:  # the body module may be unavailable; then the sample is just regenerated per version
        return "open"
