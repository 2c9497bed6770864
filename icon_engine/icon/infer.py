"""ICON's inference path with the official networks: body normals → clothed normals → body refinement → implicit
occupancy (coarse to fine) → marching cubes.

Frames and units (docs/icon_networks.md has the full mapping to ICON's own conventions):

- Bundle world (metres, SMPL-X frame) for all 3D geometry; the photo's perspective ``Camera`` (OpenCV).
- **Crop**: ICON works on a 512² square crop around the person (side 1.11 × the larger side of the person's box,
  as ICON's SPIN-style crop). We keep the perspective camera and only crop/scale the image: ``K_crop = A K``.
- **ICON unit** ``u`` (metres): half the crop side measured at the body's depth. ICON's orthographic cube
  [-1, 1]³ becomes a cube of half-side ``u`` around the body's centre in camera coordinates; the signed distance
  feature is in these units.
- **Normal frame** of every normal map and of the body-normal feature: x right, y up, z towards the viewer
  (= OpenCV camera frame × (1, −1, −1)), as ICON's renders and its ×(−1, 1, −1) flipped query normals.

Entry point: :func:`build_icon_surface`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..camera import Camera
from ..errors import EngineError
from ..geometry.decimate import decimate
from ..geometry.frame import EDGES, beyond_edges, distance_beyond, into_frame, open_edges
from ..progress import NoProgress
from ..surface import OFF_FRAME_TAPER_M, TIGHT_OFFSET_M, ClothedSurface
from .checkpoints import IconData, IconNetworks, load_icon_networks
from .networks import NormalNet

#: OpenCV camera frame → ICON's normal frame (x right, y up, z towards the viewer).
CAM_TO_ICON = np.diag([1.0, -1.0, -1.0])
#: ICON's crop side over the larger side of the person's box (crop 200·s for a box of 180·s).
CROP_MARGIN = 200.0 / 180.0
#: |sdf| at or beyond this (ICON units) is replaced by its sign: ICON's inference ``sdf_clip`` 5.0 / 100.
SDF_CLIP = 0.05
#: Barycentric visibility at or above this selects the front image features (ICON: 0.1).
VIS_THRESHOLD = 0.1
#: Occupancy iso-level of the raw MLP output (ICON thresholds the raw, sigmoid-free output at 0.5).
ISO = 0.5
#: Beyond the photo's frame the occupancy blends into the body's tight one (the body offset by TIGHT_OFFSET_M)
#: over OFF_FRAME_TAPER_M, as the checkpoint-free surface does; the tight occupancy rises from 0 to 1 over this
#: width (metres) across its level so marching cubes places it between nodes.
TIGHT_RAMP_M = 0.02
#: A point beyond the photo's frame takes the image features this many crop px inside the frame's edge (one cell
#: of the 128² feature maps of a 512² crop): the crop's own edge is black and the networks pad with zeros.
FRAME_INSET_CROP_PX = 4.0


@dataclass(frozen=True)
class IconSettings:
    """Work per preset. ``resolutions``: coarse-to-fine grid sizes (last = marching-cubes grid, 2^k + 1).

    ``refine_iters``: body refinement iterations; ``normal_every``: re-run the (expensive) normal networks every
    this many iterations; ``refine_res``: image size of the refinement losses; ``image_res``: network input size
    (512 as trained; smaller only in tests with reduced stand-in networks)."""

    image_res: int = 512
    refine_iters: int = 10
    normal_every: int = 10
    refine_res: int = 256
    refine_lr: float = 2e-3
    resolutions: tuple[int, ...] = (33, 65, 129, 257)
    band: int = 1
    chunk: int = 131072
    clean: bool = True
    cloth_iters: int = 0
    cloth_lr: float = 2e-4
    cloth_res: int = 256


#: CPU presets keep the whole ICON path within minutes on 2 cores; CUDA runs ICON's own loop lengths.
PRESETS: dict[str, dict[str, IconSettings]] = {
    "cpu": {
        "preview": IconSettings(refine_iters=0, normal_every=1, resolutions=(33, 65, 129)),
        "standard": IconSettings(refine_iters=10, normal_every=10, resolutions=(33, 65, 129, 257)),
        "high": IconSettings(refine_iters=30, normal_every=10, refine_res=512, resolutions=(33, 65, 129, 257, 513),
                             cloth_iters=30, cloth_res=512),
    },
    "cuda": {
        "preview": IconSettings(refine_iters=20, normal_every=1, refine_res=512, resolutions=(33, 65, 129, 257)),
        "standard": IconSettings(refine_iters=100, normal_every=1, refine_res=512, resolutions=(33, 65, 129, 257),
                                 cloth_iters=100, cloth_res=512),
        "high": IconSettings(refine_iters=100, normal_every=1, refine_res=512,
                             resolutions=(33, 65, 129, 257, 513), cloth_iters=200, cloth_res=512),
    },
}


def settings_for(quality: str, device: str | torch.device) -> IconSettings:
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"
    if quality not in PRESETS[kind]:
        raise EngineError("bad_option", f"Unknown quality {quality!r}.", "Use preview, standard or high.")
    return PRESETS[kind][quality]


@dataclass
class RefinedBody:
    """The body after ICON's refinement loop (bundle world, metres); replaces the fitted body in the bundle."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    betas: np.ndarray
    full_pose: np.ndarray  # (55, 3) axis-angle
    transl: np.ndarray  # (3,)
    joints: np.ndarray | None = None  # (55, 3)


@dataclass
class IconSurface(ClothedSurface):
    """ICON's clothed surface: a ``surface.ClothedSurface`` (``vertices`` (N, 3) bundle world, ``faces`` (M, 3),
    ``method``, ``warnings``, ``stats``) plus the refined body, the predicted clothed normals ``normal_front/back``
    (3, R, R) of the crop (ICON normal frame) and ``crop_camera``, the camera of that crop."""

    refined_body: RefinedBody | None = None
    normal_front: np.ndarray | None = None
    normal_back: np.ndarray | None = None
    crop_camera: Camera | None = None


# ----------------------------------------------------------------------------------------------------------------
# Crop and inputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoFrame:
    """The processing photo's frame (``width`` × ``height`` px) and the edges the person goes on beyond
    (``open_edges``: :func:`icon_engine.geometry.frame.open_edges` of the person's landmarks). ICON sees a black
    background beyond the frame: its losses there are left out, and its occupancy there follows what the frame's edge
    shows, tapering to the body's."""

    width: int
    height: int
    open_edges: frozenset[str] = frozenset()


@dataclass
class Crop:
    """Square crop of the processing photo: ``camera`` (crop pixels), ``affine`` (3, 3) processing px → crop px,
    ``unit`` metres per ICON unit, ``center_cam`` (3,) the cube centre in camera coordinates (metres)."""

    camera: Camera
    affine: np.ndarray
    unit: float
    center_cam: np.ndarray

    def to_photo(self, crop_px: np.ndarray) -> np.ndarray:
        """Crop px (..., 2) → processing px (the affine is a uniform scale and a shift)."""
        return (np.asarray(crop_px, dtype=np.float64) - self.affine[:2, 2]) / self.affine[0, 0]

    def from_photo(self, photo_px: np.ndarray) -> np.ndarray:
        """Processing px (..., 2) → crop px."""
        return np.asarray(photo_px, dtype=np.float64) * self.affine[0, 0] + self.affine[:2, 2]


def make_crop(camera: Camera, body_vertices: np.ndarray, mask: np.ndarray | None, res: int) -> Crop:
    """ICON's crop around the person (mask box ∪ projected body box), side ``CROP_MARGIN`` × the larger side."""
    pix, depth = camera.project(body_vertices)
    lo, hi = pix.min(0), pix.max(0)
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        lo = np.minimum(lo, [xs.min(), ys.min()])
        hi = np.maximum(hi, [xs.max() + 1, ys.max() + 1])
    center = (lo + hi) / 2.0
    side = CROP_MARGIN * float(max(hi - lo))
    s = res / side
    affine = np.array([[s, 0.0, res / 2.0 - s * center[0]], [0.0, s, res / 2.0 - s * center[1]], [0.0, 0.0, 1.0]])
    crop_cam = Camera(affine @ camera.K, camera.R.copy(), camera.t.copy(), res, res)
    cam_pts = camera.to_camera(body_vertices)
    box_c = (cam_pts.min(0) + cam_pts.max(0)) / 2.0
    focal = float(crop_cam.K[0, 0])
    unit = 0.5 * res * box_c[2] / focal  # half the crop side at the body's depth, metres
    # cube centre: on the ray through the crop centre, at the body's depth
    ray = np.linalg.solve(crop_cam.K, np.array([res / 2.0, res / 2.0, 1.0]))
    center_cam = ray / ray[2] * box_c[2]
    return Crop(crop_cam, affine, unit, center_cam)


def crop_image(rgb: np.ndarray, mask: np.ndarray, crop: Crop,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ICON's image input (1, 3, R, R) in [-1, 1] × mask (background exactly 0) and the mask (1, 1, R, R)."""
    res = crop.camera.width
    H, W = mask.shape
    c = (np.arange(res) + 0.5)
    src = crop.to_photo(np.stack(np.meshgrid(c, c), -1))  # processing px (continuous)
    grid = np.stack([src[..., 0] / W * 2 - 1, src[..., 1] / H * 2 - 1], -1)
    grid_t = torch.as_tensor(grid, dtype=torch.float32, device=device)[None]
    img = torch.as_tensor(rgb, dtype=torch.float32, device=device).permute(2, 0, 1)[None] / 255.0
    m = torch.as_tensor(mask, dtype=torch.float32, device=device)[None, None]
    img = F.grid_sample(img, grid_t, mode="bilinear", padding_mode="zeros", align_corners=False)
    m = (F.grid_sample(m, grid_t, mode="bilinear", padding_mode="zeros", align_corners=False) >= 0.5).float()
    return (img * 2.0 - 1.0) * m, m


def frame_weight(crop: Crop, frame: PhotoFrame, res: int,
                 edges: frozenset[str] | tuple[str, ...]) -> torch.Tensor:
    """(res, res) float mask over the crop resampled to ``res`` px: 0 where the crop shows the photo beyond any of
    ``edges`` (no evidence there: the crop is black), 1 elsewhere."""
    c = (np.arange(res) + 0.5) * (crop.camera.width / res)
    src = crop.to_photo(np.stack(np.meshgrid(c, c), -1))  # processing px
    out = np.zeros((res, res), dtype=bool)
    for edge, beyond in beyond_edges(src, frame.width, frame.height).items():
        if edge in edges:
            out |= beyond
    return torch.as_tensor(~out, dtype=torch.float32)


def render_body_normals(vertices: np.ndarray | torch.Tensor, faces: np.ndarray, camera: Camera,
                        device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Front/back body normal maps (1, 3, H, W) each, ICON normal frame, background 0, of the body ``vertices``
    (V, 3) bundle world (numpy, or a tensor: it stays on its device) seen by ``camera``; rendered on ``device``
    (the nearest and the farthest surface along each pixel ray, as :func:`icon_engine.render.render_normal_pair`)."""
    from ..geometry.raster import rasterize_torch

    with torch.no_grad():
        v = torch.as_tensor(vertices, dtype=torch.float32, device=device)
        f = torch.as_tensor(np.asarray(faces), dtype=torch.int64, device=device)
        R = torch.as_tensor(camera.R, dtype=torch.float32, device=device)
        t = torch.as_tensor(camera.t, dtype=torch.float32, device=device)
        v_cam = v @ R.T + t
        front = rasterize_torch(v_cam, f, camera.K, camera.width, camera.height)
        back = rasterize_torch(v_cam, f, camera.K, camera.width, camera.height, farthest=True)
        return _pixel_normals(v_cam, f, front)[None], _pixel_normals(v_cam, f, back)[None]


@torch.no_grad()
def predict_normals(net: NormalNet, image: torch.Tensor, body_front: torch.Tensor,
                    body_back: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clothed normals front/back (1, 3, R, R) from the image and the body's normal maps (no gradients)."""
    return net(image, body_front, body_back)


# ----------------------------------------------------------------------------------------------------------------
# Body refinement (ICON's "feedback loop")
# ----------------------------------------------------------------------------------------------------------------


def _torch_pose_inputs(fit: Any, device: torch.device) -> dict[str, torch.Tensor]:
    pose = torch.as_tensor(np.asarray(fit.full_pose, dtype=np.float32).reshape(55, 3), device=device)
    out = {
        "betas": torch.as_tensor(np.asarray(fit.betas, np.float32), device=device)[None],
        "global_orient": pose[0:1].reshape(1, 3),
        "body_pose": pose[1:22].reshape(1, 63),
        "jaw_pose": pose[22:23].reshape(1, 3),
        "leye_pose": pose[23:24].reshape(1, 3),
        "reye_pose": pose[24:25].reshape(1, 3),
        "left_hand_pose": pose[25:40].reshape(1, 45),
        "right_hand_pose": pose[40:55].reshape(1, 45),
        "transl": torch.as_tensor(np.asarray(fit.transl, np.float32), device=device)[None],
    }
    expression = np.asarray(getattr(fit, "expression", np.zeros(0)), np.float32).reshape(-1)
    if expression.size:
        out["expression"] = torch.as_tensor(expression, device=device)[None]
    return out


def _pixel_normals(v_cam: torch.Tensor, faces_t: torch.Tensor, raster: Any) -> torch.Tensor:
    """Differentiable normal image (3, H, W) in ICON's frame from a fixed hard raster (face ids, barycentrics:
    a tensor :class:`~icon_engine.geometry.raster.Raster` on ``v_cam``'s device, or a numpy raster)."""
    from ..render import vertex_normals

    vn = vertex_normals(v_cam, faces_t)  # camera frame, autograd
    vn = vn * torch.tensor([1.0, -1.0, -1.0], dtype=vn.dtype, device=vn.device)  # CAM_TO_ICON
    h, w = raster.face_index.shape
    fid = torch.as_tensor(raster.face_index, device=v_cam.device).reshape(-1)
    bary = torch.as_tensor(raster.bary, dtype=vn.dtype, device=v_cam.device).reshape(-1, 3)
    hit = fid >= 0
    n = (vn[faces_t[fid.clamp_min(0)]] * bary[..., None]).sum(1)  # (H·W, 3); background rows masked below
    n = F.normalize(n, dim=1, eps=1e-8) * hit[:, None]
    return n.T.reshape(3, h, w)


#: Optimisation loops read their loss on the host (learning-rate plateau check) once every this many
#: iterations, not every iteration, so a GPU run is not stalled by a host sync per step.
SYNC_EVERY = 10


def _plateau_check(sched: Any, history: torch.Tensor, it: int) -> None:
    """Step a ``ReduceLROnPlateau`` scheduler every :data:`SYNC_EVERY` iterations with the best loss of that
    window (``history`` (iterations,) device tensor of losses, ``it`` the iteration just done)."""
    if (it + 1) % SYNC_EVERY == 0:
        sched.step(float(history[it + 1 - SYNC_EVERY:it + 1].min()))


def refine_body(fit: Any, body_model: Any, crop: Crop, image: torch.Tensor, nets: IconNetworks,
                settings: IconSettings, progress: Any, device: torch.device,
                normals: tuple[torch.Tensor, torch.Tensor],
                frame: PhotoFrame | None = None) -> tuple[RefinedBody, tuple[torch.Tensor, torch.Tensor],
                                                          dict[str, Any]]:
    """Optimise pose, shape and translation so the body's normal maps and silhouette match the predicted clothed
    normals (ICON's loop: L1 normal loss front + back, L1 silhouette loss). Returns the refined body, the latest
    predicted normals and stats. The normal networks re-run every ``settings.normal_every`` iterations.

    ``frame``: beyond its open edges (a person cut by the photo's frame) the losses count nothing, as the fit's
    silhouette terms (the crop is black there: counted, they fold a half-body photo's legs up into the picture)."""
    from ..geometry.raster import rasterize_torch, soft_silhouette

    inputs = _torch_pose_inputs(fit, device)
    # a stature the user gave (--height) stays exact: the shape is then the fit's, only pose and place move
    height_known = (getattr(fit, "metrics", None) or {}).get("stature_source") == "height option"
    names = ("global_orient", "body_pose", "transl") + (() if height_known else ("betas",))
    free = {k: inputs[k].clone().requires_grad_(True) for k in names}
    start = {k: v.detach().clone() for k, v in free.items()}
    fixed = {k: v for k, v in inputs.items() if k not in free}
    faces_np = np.asarray(fit.faces, dtype=np.int64)
    faces_t = torch.as_tensor(faces_np, device=device)
    R = torch.as_tensor(crop.camera.R, dtype=torch.float32, device=device)
    t = torch.as_tensor(crop.camera.t, dtype=torch.float32, device=device)

    with torch.no_grad():
        out0 = body_model(**inputs).vertices[0]
    offset = torch.as_tensor(np.asarray(fit.vertices, np.float32), device=device).mean(0) - out0.mean(0)
    rr = settings.refine_res
    scale = rr / crop.camera.width
    K_ref = np.diag([scale, scale, 1.0]) @ crop.camera.K

    def down(x: torch.Tensor) -> torch.Tensor:
        return x if x.shape[-1] == rr else F.interpolate(x, size=(rr, rr), mode="area")

    seen = None  # beyond an open edge the crop is black: no evidence
    if frame is not None and frame.open_edges:
        seen = frame_weight(crop, frame, rr, frame.open_edges).to(device)

    def targets(nf: torch.Tensor, nb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tf, tb = down(nf)[0], down(nb)[0]
        mask = (down(image).abs().sum(1) > 0).float()[0]  # ICON: the clothed mask = non-background pixels
        return tf, tb, mask

    opt = torch.optim.Adam(list(free.values()), lr=settings.refine_lr)
    # patience in plateau checks (one per SYNC_EVERY iterations; ICON: 5 iterations)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, min_lr=1e-5, patience=0)
    nf, nb = normals
    tf, tb, mask = targets(nf, nb)
    history = torch.zeros(max(1, settings.refine_iters), device=device)
    for it in range(settings.refine_iters):
        verts = body_model(**fixed, **free).vertices[0] + offset
        v_cam = verts @ R.T + t
        if it > 0 and it % settings.normal_every == 0:  # ICON re-predicts the clothed normals every iteration
            with torch.no_grad():
                bf, bb = render_body_normals(verts.detach(), faces_np, crop.camera, device)
                nf, nb = predict_normals(nets.normal, image, bf, bb)
                tf, tb, mask = targets(nf, nb)
        vc = v_cam.detach()
        pf = _pixel_normals(v_cam, faces_t, rasterize_torch(vc, faces_t, K_ref, rr, rr))
        pb = _pixel_normals(v_cam, faces_t, rasterize_torch(vc, faces_t, K_ref, rr, rr, farthest=True))
        err_front, err_back = (pf - tf).abs(), (pb - tb).abs()
        err_sil = (soft_silhouette(v_cam, faces_t, K_ref, rr, rr) - mask).abs()
        if seen is not None:
            err_front, err_back, err_sil = err_front * seen, err_back * seen, err_sil * seen
        loss_normal = err_front.mean() + err_back.mean()
        loss_sil = err_sil.mean()
        loss_stay = sum(((free[k] - start[k]) ** 2).mean() for k in free) * 1e-2
        loss = loss_normal + loss_sil + loss_stay
        opt.zero_grad()
        loss.backward()
        opt.step()
        history[it] = loss.detach()
        _plateau_check(sched, history, it)
        progress.update(0.05 + 0.45 * (it + 1) / max(1, settings.refine_iters),
                        f"Refining the body ({it + 1}/{settings.refine_iters})")
    with torch.no_grad():
        out = body_model(**fixed, **free)
        verts = (out.vertices[0] + offset).cpu().numpy().astype(np.float64)
        joints = (out.joints[0] + offset).cpu().numpy().astype(np.float64) if hasattr(out, "joints") else None
    pose = np.asarray(fit.full_pose, dtype=np.float64).reshape(55, 3).copy()
    pose[0] = free["global_orient"].detach().cpu().numpy().reshape(3)
    pose[1:22] = free["body_pose"].detach().cpu().numpy().reshape(21, 3)
    betas = (free["betas"] if "betas" in free else fixed["betas"]).detach().cpu().numpy()[0].astype(np.float64)
    refined = RefinedBody(verts, faces_np, betas, pose,
                          (free["transl"].detach()[0] + offset).cpu().numpy().astype(np.float64), joints)
    losses = history[:settings.refine_iters].tolist()
    stats = {"refine_iterations": settings.refine_iters, "refine_loss_first": losses[0] if losses else None,
             "refine_loss_last": losses[-1] if losses else None}
    return refined, (nf, nb), stats


# ----------------------------------------------------------------------------------------------------------------
# Per-point features and occupancy
# ----------------------------------------------------------------------------------------------------------------


def canonical_code(rest_vertices: np.ndarray) -> np.ndarray:
    """ICON's per-vertex canonical code ``cmap`` (V, 3): the rest template's coordinates normalised to [0, 1]
    per axis (SMPL-X frame), as ICON's ``smplx_cmap`` is derived from the SMPL-X template."""
    v = np.asarray(rest_vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    return (v - lo) / np.maximum(hi - lo, 1e-9)


class PointFeatures(NamedTuple):
    """ICON's inputs at N points, and where each point lies against the body and the photo's frame."""

    xy: np.ndarray  # (N, 2) image position in [-1, 1] (beyond the photo's frame: just inside its edge)
    body: np.ndarray  # (7, N) [sdf, cmap, normal]
    visible: np.ndarray  # (N,) {0, 1}
    in_cube: np.ndarray  # (N,) bool
    inside_m: np.ndarray  # (N,) signed distance to the body, metres, positive inside
    beyond_m: np.ndarray  # (N,) distance beyond the photo's frame, metres at the point's depth; 0 inside it


class BodyFeatures:
    """Point features against one posed body (ICON's ``cal_sdf_batch``), seen through ``crop``.

    ``__call__(points_world (N, 3))`` → ``xy`` (N, 2) image position in [-1, 1], ``body`` (7, N) = [sdf, cmap,
    normal], ``visible`` (N,) {0, 1}, ``in_cube`` (N,) bool. sdf: positive inside, ICON units, clipped to ±1 at
    |sdf| ≥ :data:`SDF_CLIP`; normal: ICON frame. :meth:`features` adds the metric distances; with a ``frame``
    (the photo's) a point beyond it reads the image features just inside the frame's edge."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, cmap: np.ndarray, crop: Crop,
                 device: torch.device | str = "cpu", frame: PhotoFrame | None = None) -> None:
        from ..geometry.device import mesh_query
        from ..render import vertex_visibility

        self.crop, self.frame = crop, frame
        self.query = mesh_query(vertices, faces, device, dtype=np.float64)  # the GPU's torch query under cuda
        self.cmap = np.asarray(cmap, dtype=np.float64)
        cam = crop.camera
        v_cam = cam.to_camera(vertices)
        vis_res = 1024  # ICON rasterises at 4096² in crop space; 1024² is enough for per-vertex visibility
        k = np.diag([vis_res / cam.width, vis_res / cam.height, 1.0]) @ cam.K
        self.vis = vertex_visibility(v_cam, faces, k, vis_res, vis_res).astype(np.float64)[:, None]
        self.to_icon = CAM_TO_ICON @ cam.R  # world normal → ICON normal frame

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.features(points)[:4]

    def features(self, points: np.ndarray) -> PointFeatures:
        cam = self.crop.camera
        q = self.query.query(points)
        sdf = -q.distance / self.crop.unit
        sdf = np.where(np.abs(sdf) >= SDF_CLIP, np.sign(sdf), sdf)
        cmap = self.query.interpolate(self.cmap, q.face, q.bary)
        normal = q.normal @ self.to_icon.T
        visible = (self.query.interpolate(self.vis, q.face, q.bary)[:, 0] >= VIS_THRESHOLD).astype(np.float64)
        pix, depth = cam.project(points)
        beyond_m = np.zeros(len(points))
        if self.frame is not None:
            pix, beyond_m = self._into_frame(pix, depth)
        xy = np.stack([pix[:, 0] / cam.width * 2.0 - 1.0, pix[:, 1] / cam.height * 2.0 - 1.0], axis=1)
        local = (cam.to_camera(points) - self.crop.center_cam) / self.crop.unit
        in_cube = (np.abs(local) < 1.0).all(axis=1)
        body = np.concatenate([sdf[:, None], cmap, normal], axis=1).T
        return PointFeatures(xy, body, visible, in_cube, -np.asarray(q.distance, dtype=np.float64), beyond_m)

    def _into_frame(self, pix: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop px (N, 2) of points beyond the photo's frame moved just inside its edge, and how far beyond the
        frame each point lies (metres at its depth)."""
        frame, crop, scale = self.frame, self.crop, float(self.crop.affine[0, 0])
        photo = crop.to_photo(pix)
        beyond_px = distance_beyond(photo, frame.width, frame.height)
        out = beyond_px > 0
        if not out.any():
            return pix, np.zeros(len(pix))
        pix = pix.copy()
        pix[out] = crop.from_photo(into_frame(photo[out], frame.width, frame.height, inset=FRAME_INSET_CROP_PX / scale))
        return pix, beyond_px * np.maximum(depth, 1e-3) * scale / crop.camera.K[0, 0]  # photo focal = K_crop / scale


@torch.no_grad()
def occupancy(nets: IconNetworks, features: torch.Tensor, body: BodyFeatures, points: np.ndarray,
              device: torch.device, chunk: int = 131072) -> np.ndarray:
    """Raw occupancy (N,) at world points (ICON: inside where > 0.5; 0 outside the cube). Beyond the photo's
    frame (``body.frame``) ICON reads the frame's edge and its occupancy blends into the body's tight one
    (the body offset by ``TIGHT_OFFSET_M``) over ``OFF_FRAME_TAPER_M``: a person cut by the frame goes on in
    tight clothes, as with the checkpoint-free surface."""
    out = np.zeros(len(points), dtype=np.float32)
    for s in range(0, len(points), chunk):
        f = body.features(points[s:s + chunk])
        pred = nets.implicit.query(
            features,
            torch.as_tensor(f.xy, dtype=torch.float32, device=device)[None],
            torch.as_tensor(f.body, dtype=torch.float32, device=device)[None],
            torch.as_tensor(f.visible, dtype=torch.float32, device=device)[None, None],
        )[0, 0].cpu().numpy()
        w = np.clip(f.beyond_m / OFF_FRAME_TAPER_M, 0.0, 1.0)
        if w.any():
            tight = np.clip(0.5 + (f.inside_m + TIGHT_OFFSET_M) / TIGHT_RAMP_M, 0.0, 1.0)
            pred = pred * (1.0 - w) + tight * w
        out[s:s + chunk] = pred * f.in_cube
    return out


def grid_points(crop: Crop, n: int, idx: np.ndarray | None = None) -> np.ndarray:
    """World positions of grid nodes ``idx`` (M, 3) (all nodes when None) of an n³ grid over ICON's cube."""
    if idx is None:
        axes = np.arange(n)
        idx = np.stack(np.meshgrid(axes, axes, axes, indexing="ij"), -1).reshape(-1, 3)
    local = idx.astype(np.float64) / (n - 1) * 2.0 - 1.0  # [-1, 1]³, camera-aligned axes
    cam_pts = crop.center_cam + local * crop.unit
    return (cam_pts - crop.camera.t) @ crop.camera.R  # camera → world: R^T (x - t)


def coarse_to_fine(query: Any, crop: Crop, resolutions: tuple[int, ...], band: int = 1,
                   progress: Any = None, span: tuple[float, float] = (0.5, 0.9)) -> tuple[np.ndarray, int]:
    """ICON's coarse-to-fine extraction: dense at the first size, then at each finer size only the nodes near the
    0.5 crossing of the upsampled field are queried. Returns (values (n, n, n), points queried)."""
    n = resolutions[0]
    vals = torch.as_tensor(query(grid_points(crop, n)).reshape(n, n, n))
    total = n**3
    for level, n in enumerate(resolutions[1:], start=1):
        vals = F.interpolate(vals[None, None], size=(n, n, n), mode="trilinear", align_corners=True)[0, 0]
        occ = (vals > ISO).float()[None, None]
        hi = F.max_pool3d(occ, 3, 1, 1)
        lo = -F.max_pool3d(-occ, 3, 1, 1)
        near = (hi != lo).float()
        if band > 0:
            near = F.max_pool3d(near, 2 * band + 1, 1, band)
        idx = torch.nonzero(near[0, 0] > 0).numpy()
        if len(idx):
            new = query(grid_points(crop, n, idx))
            vals[idx[:, 0], idx[:, 1], idx[:, 2]] = torch.as_tensor(new, dtype=vals.dtype)
        total += len(idx)
        if progress is not None:
            progress.update(span[0] + (span[1] - span[0]) * level / (len(resolutions) - 1),
                            f"Implicit surface {n - 1}³")
    return vals.numpy(), total


def extract_mesh(values: np.ndarray, crop: Crop, clean: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes at :data:`ISO` → (vertices (N, 3) world, faces (M, 3)), outward-facing; the largest
    connected piece only when ``clean`` (ICON's ``clean_mesh``)."""
    import trimesh
    from skimage.measure import marching_cubes

    if not (values.max() > ISO and values.min() < ISO):
        raise EngineError(
            "internal", "ICON's implicit network found no surface around the body.",
            "Check that the ICON checkpoints are the official ones and the person is fully visible; or run "
            "without --icon-data to use the built-in surface.")
    n = values.shape[0]
    verts, faces, _, _ = marching_cubes(values, level=ISO)
    world = grid_points_continuous(crop, n, verts)
    mesh = trimesh.Trimesh(world, faces, process=True)
    if clean:
        parts = mesh.split(only_watertight=False)
        if len(parts):
            mesh = max(parts, key=lambda m: len(m.faces))
    if mesh.volume < 0:
        mesh.invert()
    return np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)


def grid_points_continuous(crop: Crop, n: int, ijk: np.ndarray) -> np.ndarray:
    """World positions of continuous grid coordinates (M, 3) of an n³ grid over ICON's cube."""
    local = np.asarray(ijk, dtype=np.float64) / (n - 1) * 2.0 - 1.0
    return (crop.center_cam + local * crop.unit - crop.camera.t) @ crop.camera.R


# ----------------------------------------------------------------------------------------------------------------
# Cloth refinement (ICON's loop_cloth, simplified)
# ----------------------------------------------------------------------------------------------------------------


def refine_cloth(vertices: np.ndarray, faces: np.ndarray, normals: tuple[torch.Tensor, torch.Tensor], crop: Crop,
                 settings: IconSettings, progress: Any, device: torch.device,
                 span: tuple[float, float] = (0.93, 0.99),
                 frame: PhotoFrame | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Move the reconstructed surface's vertices so its front/back normal renders match the predicted clothed
    normals (ICON's cloth loop: normal L1 ×10 + uniform Laplacian ×1e2 + stiffness of neighbouring offsets ×1e5).

    ICON deforms each vertex by a local affine map after remeshing; we optimise per-vertex offsets (metres) with
    the same loss weights and Adam. Topology is unchanged. Beyond ``frame`` (the photo's, any edge) the normal loss
    counts nothing: the crop is black there. Returns (vertices (N, 3) world, stats)."""
    from ..geometry.laplacian import mesh_edges, uniform_laplacian_torch, vertex_degree_torch
    from ..geometry.raster import rasterize_torch

    rr = settings.cloth_res
    s = rr / crop.camera.width
    K = np.diag([s, s, 1.0]) @ crop.camera.K
    R = torch.as_tensor(crop.camera.R, dtype=torch.float32, device=device)
    t = torch.as_tensor(crop.camera.t, dtype=torch.float32, device=device)
    base = torch.as_tensor(vertices, dtype=torch.float32, device=device)
    faces_t = torch.as_tensor(faces, dtype=torch.int64, device=device)
    edges = torch.as_tensor(mesh_edges(faces), device=device)
    deg = vertex_degree_torch(edges, len(vertices))

    def down(x: torch.Tensor) -> torch.Tensor:
        return x[0] if x.shape[-1] == rr else F.interpolate(x, size=(rr, rr), mode="area")[0]

    target_f, target_b = down(normals[0]), down(normals[1])
    seen = frame_weight(crop, frame, rr, EDGES).to(device) if frame is not None else None
    offset = torch.zeros_like(base, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=settings.cloth_lr, amsgrad=True)
    # patience in plateau checks (one per SYNC_EVERY iterations; ICON: 5 iterations)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.1, min_lr=1e-5, patience=0)
    history = torch.zeros(max(1, settings.cloth_iters), device=device)
    cloth_history = torch.zeros_like(history)
    for it in range(settings.cloth_iters):
        v = base + offset
        v_cam = v @ R.T + t
        vc = v_cam.detach()
        pf = _pixel_normals(v_cam, faces_t, rasterize_torch(vc, faces_t, K, rr, rr))
        pb = _pixel_normals(v_cam, faces_t, rasterize_torch(vc, faces_t, K, rr, rr, farthest=True))
        err_front, err_back = (pf - target_f).abs(), (pb - target_b).abs()
        if seen is not None:
            err_front, err_back = err_front * seen, err_back * seen
        loss_cloth = err_front.mean() + err_back.mean()
        loss_lap = uniform_laplacian_torch(v, edges, deg).norm(dim=1).mean()
        loss_stiff = ((offset[edges[:, 0]] - offset[edges[:, 1]]) ** 2).sum(1).mean()
        loss = 10.0 * loss_cloth + 1e2 * loss_lap + 1e5 * loss_stiff
        opt.zero_grad()
        loss.backward()
        opt.step()
        history[it] = loss.detach()
        cloth_history[it] = loss_cloth.detach()
        _plateau_check(sched, history, it)
        progress.update(span[0] + (span[1] - span[0]) * (it + 1) / settings.cloth_iters,
                        f"Refining the clothing ({it + 1}/{settings.cloth_iters})")
    out = (base + offset).detach().cpu().numpy().astype(np.float64)
    losses = cloth_history[:settings.cloth_iters].tolist()
    stats = {"cloth_iterations": settings.cloth_iters, "cloth_normal_loss_first": losses[0] if losses else None,
             "cloth_normal_loss_last": losses[-1] if losses else None}
    return out, stats


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def _rest_vertices(body_model: Any, device: torch.device) -> np.ndarray | None:
    """The body model's template (zero shape, zero pose): ICON's smplx_cmap comes from SMPL-X's template."""
    if body_model is None:
        return None
    with torch.no_grad():
        return body_model().vertices[0].cpu().numpy()


def build_icon_surface(
    fit: Any,
    observation: Any,
    photo: Any,
    icon_data: IconData | IconNetworks,
    quality: str = "standard",
    progress: Any = None,
    device: str | torch.device = "cpu",
    *,
    body_model: Any = None,
    face_count: int | None = None,
    settings: IconSettings | None = None,
) -> IconSurface:
    """ICON's reconstruction of the clothed person: bundle-world mesh plus the refined body.

    ``fit``: a ``BodyFit`` (vertices, faces, camera, betas, full_pose, transl); ``observation.mask`` the person's
    mask in processing pixels; ``photo.rgb`` the processing image; ``icon_data``: the checkpoint files (loaded
    here) or already loaded :class:`IconNetworks`. ``body_model`` (the fit's ``BodyModel``) enables the body
    refinement loop and the canonical code from the rest template; without it the fitted body is used as is.
    ``face_count``: decimate the result to about this many faces (default: the quality preset's face count).
    ``settings`` overrides the preset.
    """
    progress = progress if progress is not None else NoProgress()
    dev = torch.device(device)
    settings = settings or settings_for(quality, dev)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    t0 = time.perf_counter()
    progress.update(0.0, "Loading ICON's networks")
    nets = icon_data if isinstance(icon_data, IconNetworks) else load_icon_networks(icon_data, dev)
    nets.normal.to(dev).eval()
    nets.implicit.to(dev).eval()
    timings["load"] = time.perf_counter() - t0

    body_v = np.asarray(fit.vertices, dtype=np.float64)
    faces = np.asarray(fit.faces, dtype=np.int64)
    mask = np.asarray(observation.mask, dtype=bool)
    keypoints = getattr(observation, "keypoints", None)
    frame = PhotoFrame(mask.shape[1], mask.shape[0],
                       open_edges(keypoints, mask.shape[1], mask.shape[0]) if keypoints is not None else frozenset())
    crop = make_crop(fit.camera, body_v, mask, settings.image_res)
    image, _ = crop_image(np.asarray(photo.rgb), mask, crop, dev)

    t = time.perf_counter()
    progress.update(0.02, "Predicting clothed normals")
    bf, bb = render_body_normals(body_v, faces, crop.camera, dev)
    normals = predict_normals(nets.normal, image, bf, bb)
    timings["normals"] = time.perf_counter() - t

    refined = None
    stats: dict[str, Any] = {"variant": nets.variant, "device": str(dev), "image_res": settings.image_res,
                             "icon_unit_m": float(crop.unit), "open_edges": sorted(frame.open_edges)}
    if body_model is not None and settings.refine_iters > 0:
        t = time.perf_counter()
        refined, normals, rstats = refine_body(fit, body_model, crop, image, nets, settings, progress, dev, normals,
                                               frame)
        stats.update(rstats)
        body_v = refined.vertices
        timings["refine"] = time.perf_counter() - t
    elif settings.refine_iters > 0:
        warnings.append("ICON body refinement skipped: no body model was given; the fitted body is used as is.")

    rest = _rest_vertices(body_model, dev)
    if rest is None or len(rest) != len(body_v):
        warnings.append("ICON canonical body code taken from the posed body (no rest template available).")
        rest = body_v
    t = time.perf_counter()
    progress.update(0.5, "Implicit surface")
    with torch.no_grad():
        features = nets.implicit.image_features(normals[0], normals[1])
    body = BodyFeatures(body_v, faces, canonical_code(rest), crop, dev, frame)

    def query(points: np.ndarray) -> np.ndarray:
        return occupancy(nets, features, body, points, dev, settings.chunk)

    values, n_points = coarse_to_fine(query, crop, settings.resolutions, settings.band, progress)
    timings["occupancy"] = time.perf_counter() - t
    t = time.perf_counter()
    progress.update(0.9, "Marching cubes")
    verts, mfaces = extract_mesh(values, crop, settings.clean)
    timings["marching_cubes"] = time.perf_counter() - t
    if face_count is None:
        from ..options import PRESETS as QUALITY_PRESETS

        face_count = QUALITY_PRESETS.get(quality, QUALITY_PRESETS["standard"]).face_count
    if len(mfaces) > face_count:
        verts, mfaces = decimate(verts, mfaces, face_count)
    if settings.cloth_iters > 0:
        t = time.perf_counter()
        verts, cstats = refine_cloth(verts, mfaces, normals, crop, settings, progress, dev, frame=frame)
        stats.update(cstats)
        timings["cloth"] = time.perf_counter() - t
    progress.update(1.0, "ICON surface done")
    stats.update({"resolution": settings.resolutions[-1] - 1, "points_queried": int(n_points),
                  "faces": int(len(mfaces)), "timings_s": {k: round(v, 3) for k, v in timings.items()}})
    return IconSurface(vertices=verts, faces=mfaces, method=f"icon:{nets.variant}", warnings=warnings, stats=stats,
                       refined_body=refined, normal_front=normals[0][0].cpu().numpy(),
                       normal_back=normals[1][0].cpu().numpy(), crop_camera=crop.camera)


def apply_refined_body(fit: Any, surface: IconSurface) -> Any:
    """The fit with ICON's refined body swapped in (vertices, joints, betas, pose, translation), for the bundle.

    Returns ``fit`` itself when no refinement ran. The camera and the world normalisation are kept: refinement
    moves the body by millimetres to centimetres, and the surface was built in this same world."""
    import dataclasses

    body = surface.refined_body
    if body is None:
        return fit
    metrics = dict(getattr(fit, "metrics", {}) or {})
    metrics["icon_refinement"] = {k: surface.stats.get(k) for k in
                                  ("refine_iterations", "refine_loss_first", "refine_loss_last")}
    changes = {"vertices": body.vertices, "betas": body.betas, "full_pose": body.full_pose, "transl": body.transl,
               "metrics": metrics}
    if body.joints is not None:
        changes["joints"] = body.joints
    if dataclasses.is_dataclass(fit):
        return dataclasses.replace(fit, **changes)
    for key, value in changes.items():
        setattr(fit, key, value)
    return fit


__all__ = ["IconSettings", "IconSurface", "RefinedBody", "build_icon_surface", "apply_refined_body", "settings_for",
           "PRESETS",
           "canonical_code", "make_crop", "BodyFeatures", "coarse_to_fine", "extract_mesh"]
