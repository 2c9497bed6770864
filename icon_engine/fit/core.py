"""SMPLify-X-style fit of an SMPL-X-layout body to one photo's BlazePose landmarks and person mask (CPU).

Camera: fixed pinhole, ``R = FRONT_VIEW_R``, ``t = 0`` while fitting; the body's distance is its translation. Its
focal length is the caller's (``focal_px``), else the photo's EXIF 35 mm-equivalent focal (``Photo.focal_35mm``),
else, for a full-length photo (head and feet in frame), the framing prior's (:func:`_apply_framing_prior`: after
the orientation stage, the focal that best explains the person's size in pixels under focal, distance and stature
priors), else the photo prior (:func:`icon_engine.camera.prior_focal_px`, 55 mm equivalent). Scale: with
``height_m`` the betas are projected onto that stature at every step (:mod:`.stature`), so the scale is exact;
without it the stature follows the fitted shape under a population prior. An upright body's forward/backward
lean is moved into the camera's pitch (after the orientation stage and at the end); a standing person's camera is
then set at about chest height (:func:`_camera_height_prior`) and the pelvis held upright (``W_UPRIGHT``). After
the fit the world is normalised (lowest body vertex on y = 0, pelvis above the origin) and the camera moved with
it. Units: metres, radians, processing pixels. Method and landmark mapping: docs/fit.md.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..bundle.skeleton import axis_angle_to_matrix, matrix_to_axis_angle
from ..camera import (
    FRONT_VIEW_R,
    Camera,
    Framing,
    focal_from_35mm,
    framing_map,
    intrinsics_from_focal,
    prior_focal_px,
)
from ..errors import EngineError
from ..geometry.frame import beyond_frame, open_edges
from ..geometry.image_shift import mask_iou
from ..options import FitPreset, PresetView, resolve_device
from ..threads import torch_threads
from . import priors
from .face import fit_face
from .fastbody import FastBody
from .hands import fit_hands
from .init import blazepose_to_world, facing_camera, hang_legs, initial_pose, solve_translation, straighten_knees
from .landmarks import BP, LIMB_BONES, TORSO, ResolvedTargets, resolve_targets
from .silhouette import body_silhouette, coverage_loss, inside_loss, make_target, to_window
from .stature import PRIOR_MEAN_M, PRIOR_STD_M, StatureModel, stature_of, stature_prior_loss


@dataclass
class BodyFit:
    """A fitted body. Pose/shape in the SMPL-X layout; positions in the normalised bundle world (metres)."""

    betas: np.ndarray  # (num_betas,)
    expression: np.ndarray  # (num_expression,)
    full_pose: np.ndarray  # (55, 3) axis-angle, radians
    transl: np.ndarray  # (3,)
    camera: Camera  # processing pixels, bundle world
    vertices: np.ndarray  # (V, 3) posed body
    joints: np.ndarray  # (55, 3) posed joints
    faces: np.ndarray  # (F, 3) int64
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


#: The fit's settings per quality: its typed live view of the one preset table (``icon_engine.options.PRESETS``).
FitSettings = FitPreset
QUALITY_PRESETS: Mapping[str, FitSettings] = PresetView("fit")

#: torch intra-op threads of the fit (measured: the fit's tensors are small, 1 thread is fastest).
FIT_TORCH_THREADS = 1

#: Loss weights.
W_KEYPOINT = 1.0
W_DIRECTION = 0.5
W_ANGLE = 1.0
W_REST = 0.05
W_PENETRATION = 200.0
W_SHAPE = 0.002
W_INSIDE = 400.0
W_COVER = 400.0
W_STATURE = 0.5  # the stature prior without a known height, per squared standard deviation
W_FLOOR = 0.1  # both feet on one floor plane, per cm² of height difference (0.01 before wave 4) ...
FLOOR_ROBUST_CM: float | None = 2.0  # ... robust beyond this many cm (a lifted swing foot); None: plain square
#: The person counts as standing (both feet on the floor) when, after the orientation stage, the lowest points of
#: the two feet differ by less than this (metres) in the levelled world.
STANDING_GAP_M = 0.12
#: Camera height prior for a standing person: the photographer's camera at this fraction of the person's stature
#: above the floor (about chest height) ...
CAMERA_HEIGHT_RATIO = 0.75
#: ... applied with this weight (1: the camera height is the prior's, 0: the fit's own lean decides the pitch).
CAMERA_HEIGHT_WEIGHT = 1.0
#: ... unless the body's apparent lean already puts the camera outside this band of heights (fractions of the
#: stature): a photo from a balcony or from the ground keeps the pitch its lean shows.
CAMERA_HEIGHT_BAND = (0.3, 1.3)
W_UPRIGHT = 20.0  # a standing pelvis's forward/backward lean in the world, per rad² (gravity)
#: The arms swing opposite to the legs in a standing stride, per m² of shortfall (priors.gait_loss); silhouette
#: stages only: in the pose stage the legs are still settling (strides of 17–20 cm on the way to 4–10 cm).
W_GAIT = 20.0
#: A walker's stride is at least ``priors.STRIDE_MIN_RATIO`` × the stature, per m² of shortfall
#: (``priors.stride_loss``); silhouette stages only, like the gait coupling, and only with the feet apart in the
#: image (``priors.feet_apart_in_image``).
W_STRIDE = 20.0
W_OCCLUSION = 20.0  # a hidden limb point in front of the body part that hides it, per m² (priors.occlusion_loss)
#: Coverage is robust beyond this many window px per window px (mask edges farther than that from the body,
#: e.g. skirts and loose sleeves, pull ever less: the clothed mask is an upper bound) ...
COVER_REACH: float | None = 0.01  # None: the plain squared pull
#: ... and keeps this fraction of the plain squared pull.
COVER_FLOOR = 0.05
KP_SIGMA = 0.08  # robust scale of the 2D residual, fraction of the person's size
MIN_VISIBILITY = 0.25


@dataclass(frozen=True)
class LandmarkIndex:
    """:class:`ResolvedTargets` as index tensors on one device (made once per fit: no host copies per step)."""

    index: torch.Tensor  # (T,) joint or keypoint index
    from_keypoint: torch.Tensor  # (T, 1) bool: the row is a keypoint
    any_keypoint: bool
    frames: torch.Tensor  # (T,) joint whose rotation carries the offset (0 where none)
    has_frame: torch.Tensor  # (T, 1) bool
    offsets: torch.Tensor  # (T, 3) float32, metres

    @classmethod
    def of(cls, targets: ResolvedTargets, device: torch.device | str = "cpu") -> LandmarkIndex:
        source = np.asarray(targets.source) == 1
        return cls(torch.as_tensor(np.asarray(targets.index, dtype=np.int64), device=device),
                   torch.as_tensor(source, device=device)[:, None], bool(source.any()),
                   torch.as_tensor(np.maximum(targets.frames, 0).astype(np.int64), device=device),
                   torch.as_tensor(np.asarray(targets.frames) >= 0, device=device)[:, None],
                   torch.as_tensor(np.asarray(targets.offsets), dtype=torch.float32, device=device))


def landmark_points(joints: torch.Tensor, keypoints: torch.Tensor, rotations: torch.Tensor,
                    targets: ResolvedTargets | LandmarkIndex) -> torch.Tensor:
    """(T, 3) world positions of the model points of ``targets``.

    ``joints`` (55, 3), ``keypoints`` (K, 3) posed (world); ``rotations`` (55, 3, 3) global joint rotations, which
    carry the hip and shoulder offsets (pelvis and spine3 frames)."""
    t = targets if isinstance(targets, LandmarkIndex) else LandmarkIndex.of(targets, joints.device)
    pts = joints[t.index.clamp(max=joints.shape[0] - 1)]
    if keypoints.shape[0] > 0 and t.any_keypoint:
        kp_pts = keypoints[t.index.clamp(max=keypoints.shape[0] - 1)]
        pts = torch.where(t.from_keypoint, kp_pts, pts)
    offsets = t.offsets.to(pts.dtype)
    rotated = torch.einsum("tab,tb->ta", rotations[t.frames].to(pts.dtype), offsets)
    return pts + torch.where(t.has_frame, rotated, offsets)


class _Problem:
    """Everything one fit needs: observation tensors, the model, the camera and the current parameters."""

    def __init__(self, observation: Any, body_model: Any, width: int, height: int, settings: FitSettings,
                 device: str | torch.device, focal_px: float, height_m: float | None = None) -> None:
        self.model = body_model
        self.device = torch.device(device)
        self.settings = settings
        self.width, self.height = width, height
        self.K = intrinsics_from_focal(width, height, focal_px)
        self.height_m = height_m
        self.stature = StatureModel.from_body_model(body_model, self.device)
        self.R = FRONT_VIEW_R.copy()
        kps = np.asarray(observation.keypoints, dtype=np.float64)
        self.targets = resolve_targets(list(getattr(body_model, "keypoint_names", [])))
        dev = self.device
        self.landmarks = LandmarkIndex.of(self.targets, dev)
        vis = np.clip(kps[:, 2], 0.0, 1.0)
        height, width = np.asarray(observation.mask).shape
        off = beyond_frame(kps[:, :2], width, height)  # landmarks beyond the photo's frame (a person cut by it)
        # a leg's landmarks beyond the frame are BlazePose's guess from the upper body: not fitted (the leg then
        # follows the straightened 3D landmarks below and the priors)
        lower_leg = np.zeros(len(kps), dtype=bool)
        lower_leg[np.concatenate(list(_LOWER_LEG.values()))] = True
        conf = np.where((vis >= MIN_VISIBILITY) & ~(off & lower_leg), vis, 0.0)
        t = self.targets
        self.obs_px = torch.tensor(kps[t.landmarks, :2], dtype=torch.float32, device=dev)
        self.kp_weights = torch.tensor(conf[t.landmarks] * t.weights, dtype=torch.float32, device=dev)
        rows = {int(lm): i for i, lm in enumerate(t.landmarks)}
        self.foot_rows = {side: torch.tensor([rows[BP[f"{side}_{part}"]] for part in ("ankle", "heel", "foot_index")
                                             if BP[f"{side}_{part}"] in rows], dtype=torch.int64, device=dev)
                          for side in ("left", "right")}
        self.standing = False  # set after the orientation stage (:func:`_decide_standing`)
        self.stride_prior = priors.feet_apart_in_image(kps)  # crossed or touching feet: no stride prior
        self.walker_priors = True  # gait coupling and stride prior (off for a held pose: joint_fit.shared_pose_fit)
        self.occlusion = [(row, torch.tensor(occ, device=dev), w) for row, occ, w in priors.occlusion_pairs(
            kps, t.landmarks, float(max(observation.bbox[2] - observation.bbox[0],
                                        observation.bbox[3] - observation.bbox[1], 16.0)))]
        self.no_hand = torch.zeros(15, 3, device=dev)  # a flat hand / closed eyes (3 joints) in forward()
        self.no_eyes = torch.zeros(3, 3, device=dev)
        # a leg whose knee or ankle lies beyond the frame: nothing shows a bend, so it counts as straight
        beyond = frozenset(side for side in ("left", "right")
                           if off[[BP[f"{side}_knee"], BP[f"{side}_ankle"]]].any())
        self.knee_angles_2d = {side: 0.0 if side in beyond else _image_knee_angle(kps, side)
                               for side in ("left", "right")}
        self.rest_weights = priors.knee_pull_weights(self.knee_angles_2d).to(self.device)
        torso = np.isin(t.landmarks, TORSO)
        self.torso_weights = self.kp_weights * torch.tensor(np.where(torso, 1.0, 0.1), dtype=torch.float32, device=dev)
        bbox = np.asarray(observation.bbox, dtype=np.float64)
        self.person_size = float(max(bbox[2] - bbox[0], bbox[3] - bbox[1], 16.0))
        self.world_lm = straighten_knees(blazepose_to_world(np.asarray(observation.world_landmarks, dtype=np.float64)),
                                         always=beyond)
        hips_beyond = frozenset(side for side in ("left", "right") if off[BP[f"{side}_hip"]])
        if hips_beyond:  # a portrait: the whole leg is a guess; it hangs straight down from the hip
            self.world_lm = hang_legs(self.world_lm, hips_beyond)
        self.vis = vis
        self.mask = np.asarray(observation.mask, dtype=bool)
        self.open_edges = open_edges(kps, width, height)  # a person cut by the frame
        self.bbox = bbox
        self.K_t = torch.tensor(self.K, dtype=torch.float32, device=dev)
        self.R_t = torch.tensor(self.R, dtype=torch.float32, device=dev)
        self._bone_dirs()
        num_verts = int(np.asarray(body_model.faces).max()) + 1
        rng = np.random.default_rng(0)
        n = min(settings.vertex_samples, num_verts)
        self.body = FastBody(body_model, np.sort(rng.choice(num_verts, n, replace=False)), dev)

    def _bone_dirs(self) -> None:
        """Unit bone directions from the world landmarks (bundle-world axes) and their confidences."""
        bones = list(LIMB_BONES)
        dirs, w = [], []
        for _, _, a, b in bones:
            d = self.world_lm[b] - self.world_lm[a]
            dirs.append(d / max(np.linalg.norm(d), 1e-9))
            w.append(min(self.vis[a], self.vis[b]))
        slot = {int(lm): i for i, lm in enumerate(self.targets.landmarks)}
        dev = self.device
        self.bone_points = torch.tensor([[slot[a], slot[b]] for _, _, a, b in bones], device=dev)  # model_points rows
        self.bone_dirs = torch.tensor(np.array(dirs), dtype=torch.float32, device=dev)
        self.bone_w = torch.tensor(np.clip(np.array(w), 0.2, 1.0), dtype=torch.float32, device=dev)

    # -- model evaluation ------------------------------------------------------------------------------------
    def shape(self, betas: torch.Tensor) -> torch.Tensor:
        """The betas the body uses: ``betas`` projected onto the known stature, or ``betas`` itself."""
        return betas if self.height_m is None else self.stature.project(betas, self.height_m)

    def forward(self, p: dict[str, torch.Tensor], with_vertices: bool = False) -> dict[str, torch.Tensor]:
        """The fast body (joints, keypoints, rotations, vertex subset) at parameters ``p``."""
        pose = torch.cat([p["global_orient"][None], p["body_pose"], self.no_eyes, p.get("left_hand_pose", self.no_hand),
                          p.get("right_hand_pose", self.no_hand)])
        return self.body.forward(self.shape(p["betas"]), pose, p["transl"], with_vertices)

    def model_points(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """(T, 3) world positions of the mapped landmarks."""
        return landmark_points(out["joints"], out["keypoints"], out["rotations"], self.landmarks)

    @property
    def K_t(self) -> torch.Tensor:
        """(3, 3) the intrinsics as a tensor on the fit's device (setting it sets :meth:`project`'s focal and
        centre)."""
        return self._K_t

    @K_t.setter
    def K_t(self, value: torch.Tensor) -> None:
        self._K_t = value
        self._focal_t = value.diagonal()[:2].clone()  # (fx, fy)
        self._centre_t = value[:2, 2].clone()  # (cx, cy)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """World points (N, 3) → processing pixels (N, 2) (camera at R, t = 0): ``f · xy / z + c``, both axes in
        one expression (a few operations per fit step instead of twenty)."""
        cam = points @ self.R_t.T
        return cam[:, :2] * self._focal_t / cam[:, 2:].clamp(min=1e-3) + self._centre_t

    # -- loss terms ------------------------------------------------------------------------------------------
    def keypoint_loss(self, px: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        r2 = ((px - self.obs_px) / self.person_size).pow(2).sum(-1)
        s2 = KP_SIGMA**2
        rho = s2 * r2 / (r2 + s2)  # Geman-McClure
        return 1e3 * (weights * rho).sum() / weights.sum().clamp(min=1e-6)

    def direction_loss(self, points: torch.Tensor) -> torch.Tensor:
        """1 − cos between the model's and BlazePose's 3D limb directions, landmark to landmark."""
        d = points[self.bone_points[:, 1]] - points[self.bone_points[:, 0]]
        d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        return (self.bone_w * (1.0 - (d * self.bone_dirs).sum(-1))).sum() / self.bone_w.sum()


def _initial_params(prob: _Problem) -> dict[str, torch.Tensor]:
    dev = prob.device
    betas = prob.shape(torch.zeros(prob.body.num_betas, device=dev))
    rest = prob.body.j0.double().cpu().numpy()
    pose = initial_pose(np.asarray(prob.world_lm @ FRONT_VIEW_R), rest)  # back to BlazePose axes for the helper
    p = {
        "betas": betas,
        "global_orient": torch.tensor(pose[0], dtype=torch.float32, device=dev),
        "body_pose": torch.tensor(pose[1:22], dtype=torch.float32, device=dev),
        "transl": torch.zeros(3, device=dev),
    }
    with torch.no_grad():
        pts = prob.model_points(prob.forward(p)).double().cpu().numpy()
    w = prob.kp_weights.double().cpu().numpy() * np.where(np.isin(prob.targets.landmarks, TORSO), 3.0, 1.0)
    if w.sum() < 1e-3:
        w = np.ones_like(w)
    transl = solve_translation(pts, prob.obs_px.double().cpu().numpy(), w, prob.K)
    p["transl"] = torch.tensor(transl, dtype=torch.float32, device=dev)
    return p


class _Adam:
    """Plain Adam on a few leaf tensors (torch.optim pulls in torch._dynamo on first use: seconds of import)."""

    def __init__(self, params: list[torch.Tensor], b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.params = params
        self.m = [torch.zeros_like(q) for q in params]
        self.v = [torch.zeros_like(q) for q in params]
        self.b1, self.b2, self.eps, self.t = b1, b2, eps, 0

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for q, m, v in zip(self.params, self.m, self.v, strict=True):
            if q.grad is None:
                continue
            m.mul_(self.b1).add_(q.grad, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(q.grad, q.grad, value=1 - self.b2)
            q.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-lr)
            q.grad = None


def minimise(leaves: list[torch.Tensor], loss_fn: Any, iters: int, lr: float) -> None:
    """:class:`_Adam` on the tensors ``leaves`` for ``iters`` steps of ``loss_fn()``, step ``lr`` cosine-decayed to
    a tenth (the fit's schedule, as :func:`_run_stage`'s); the leaves end without gradients."""
    for q in leaves:
        q.requires_grad_(True)
    opt = _Adam(leaves)
    for i in range(iters):
        loss_fn().backward()
        opt.step(lr * (0.1 + 0.45 * (1 + math.cos(math.pi * i / max(iters, 1)))))
    for q in leaves:
        q.requires_grad_(False)
        q.grad = None


def _run_stage(prob: _Problem, p: dict[str, torch.Tensor], names: tuple[str, ...], iters: int, lr: float,
               loss_fn, progress, done: list[int], total: int, text: str) -> None:
    """Adam with a cosine-decayed step on the parameters ``names`` for ``iters`` steps of ``loss_fn(p)``."""
    if iters <= 0:
        return
    for k in p:
        p[k].requires_grad_(k in names)
    opt = _Adam([p[k] for k in names])
    for i in range(iters):
        loss = loss_fn(p)
        loss.backward()
        opt.step(lr * (0.1 + 0.45 * (1 + math.cos(math.pi * i / iters))))
        done[0] += 1
        if progress is not None and (i % 10 == 0 or i == iters - 1):
            progress.update(0.02 + 0.93 * done[0] / total, text)
    for k in p:
        p[k].requires_grad_(False)
        p[k].grad = None


def _loss_factory(prob: _Problem, stage: str, sil=None, tolerance: float = 0.0):
    def loss_fn(p):
        out = prob.forward(p, with_vertices=sil is not None)
        joints = out["joints"]
        points = prob.model_points(out)
        px = prob.project(points)
        if stage == "orient":
            return prob.keypoint_loss(px, prob.torso_weights) + W_DIRECTION * prob.direction_loss(points)
        bp = p["body_pose"][None]
        loss = (W_KEYPOINT * prob.keypoint_loss(px, prob.kp_weights)
                + W_DIRECTION * (0.5 if sil is not None else 1.0) * prob.direction_loss(points)
                + W_ANGLE * priors.angle_limit_loss(bp) + W_REST * priors.rest_pull_loss(bp, prob.rest_weights)
                + W_PENETRATION * priors.torso_penetration_loss(joints[None])
                + W_SHAPE * priors.shape_loss(p["betas"][None]))
        stature = prob.height_m  # metres: known, or the betas' (the shape prior's pull)
        if stature is None:
            stature = prob.stature(p["betas"])
            loss = loss + W_STATURE * stature_prior_loss(stature)
            stature = stature.detach()
        if prob.standing:
            loss = loss + W_UPRIGHT * priors.lean_loss(out["rotations"][0])
        if prob.standing:
            loss = loss + W_FLOOR * priors.floor_loss(points[prob.foot_rows["left"], 1],
                                                      points[prob.foot_rows["right"], 1], FLOOR_ROBUST_CM)
        if prob.standing and sil is not None and prob.walker_priors:  # the legs settle in the pose stage first
            pelvis_rotation = out["rotations"][0][None]
            if W_GAIT > 0.0:
                loss = loss + W_GAIT * priors.gait_loss(joints[None], pelvis_rotation)
            if W_STRIDE > 0.0 and prob.stride_prior:
                loss = loss + W_STRIDE * priors.stride_loss(joints[None], pelvis_rotation, stature)
        if prob.occlusion:
            loss = loss + W_OCCLUSION * priors.occlusion_loss((points @ prob.R_t.T)[:, 2], prob.occlusion)
        if sil is not None:
            win = to_window(prob.project(out["vertices"]), sil)
            loss = loss + W_INSIDE * inside_loss(win, sil) + W_COVER * coverage_loss(
                win, sil, tolerance, None if COVER_REACH is None else COVER_REACH * sil.size, COVER_FLOOR)
        return loss

    return loss_fn


def _check_observation(observation: Any) -> None:
    kps = np.asarray(getattr(observation, "keypoints", np.zeros((0, 3))))
    if kps.shape != (33, 3) or not np.isfinite(kps).all():
        raise EngineError("no_person", "No usable body landmarks were found for the person in the photo.",
                          "Use a photo that shows one person's whole body, well lit and not cut off.")
    if (kps[list(TORSO), 2] >= MIN_VISIBILITY).sum() < 2:
        raise EngineError("no_person", "The person's shoulders and hips could not be seen in the photo.",
                          "Use a photo where the person's torso is visible (not cropped or hidden).")


def fit_body(observation: Any, body_model: Any, photo: Any, quality: str = "standard", device: str = "cpu",
             progress: Any = None, height_m: float | None = None, focal_px: float | None = None) -> BodyFit:
    """Fit the body model to the observed person. See the module docstring for frames and units.

    ``observation``: a ``PersonObservation`` (33 BlazePose keypoints in processing px, world landmarks, mask,
    bbox); ``photo``: the processing ``Photo`` (its size sets the camera, its ``focal_35mm`` the focal length);
    ``quality``: preview/standard/high; ``height_m``: the person's stature in metres (exact scale), None to
    estimate it; ``focal_px``: the focal length in processing pixels, None for the photo's EXIF or the default.
    ``metrics`` reports ``stature_m``, ``stature_source``, ``focal_px`` (original-photo pixels), ``focal_source``
    ("given", "exif", "framing prior" or "prior"), ``distance_m`` (the pelvis's depth in the camera, metres).
    """
    if quality not in QUALITY_PRESETS:
        raise EngineError("bad_option", f"Unknown fit quality {quality!r}.",
                          f"Use one of: {', '.join(QUALITY_PRESETS)}.")
    if height_m is not None and not (np.isfinite(height_m) and 0.5 <= height_m <= 3.0):
        raise EngineError("bad_option", f"Height {height_m} m is not a person's stature.",
                          "Give the standing height in metres, e.g. 1.75.")
    _check_observation(observation)
    dev = torch.device(resolve_device(device) if device == "auto" else device)
    with torch_threads(FIT_TORCH_THREADS):  # every tensor the fit makes names its device (docs/architecture.md)
        return _fit(observation, body_model, photo, QUALITY_PRESETS[quality], dev, progress, height_m, focal_px)


def _on_device(target: Any, device: torch.device) -> Any:
    """A copy of the dataclass ``target`` with its tensor and numpy-array fields as tensors on ``device`` (the
    arrays float32), so that the loop reads none of them from the host."""
    moved = {}
    for f in dataclasses.fields(target):
        value = getattr(target, f.name)
        if isinstance(value, torch.Tensor):
            moved[f.name] = value.to(device)
        elif isinstance(value, np.ndarray):
            moved[f.name] = torch.as_tensor(value, dtype=torch.float32, device=device)
    return dataclasses.replace(target, **moved)


def _focal(photo: Any, width: int, height: int, focal_px: float | None) -> tuple[float, str]:
    """(focal length in processing pixels, its source: "given" | "exif" | "prior").

    Without a given or EXIF focal the photo prior (:func:`icon_engine.camera.prior_focal_px`) is used (a
    full-length photo's is replaced by the framing prior's after the orientation stage)."""
    if focal_px is not None:
        return float(focal_px), "given"
    f35 = getattr(photo, "focal_35mm", None)
    if f35:
        return focal_from_35mm(float(f35), width, height), "exif"
    return prior_focal_px(width, height), "prior"


#: Whether a full-length photo without EXIF gets the framing prior's focal (False: the 55 mm prior, as before
#: wave 7; for A/B runs: ``bench/fidelity.py --set USE_FRAMING_PRIOR=false``).
USE_FRAMING_PRIOR = True
#: A landmark counts as in frame for :func:`shows_full_length` with at least this BlazePose visibility (its
#: "inside the image and not occluded" score) and its pixel inside the image.
FRAME_VISIBILITY = 0.5
#: Nearest pelvis depth (metres) the framing prior trusts as a fitted placement.
MIN_FRAMING_DEPTH_M = 0.3
_HEAD_POINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
_FOOT_POINTS = ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index")


def shows_full_length(keypoints: np.ndarray, width: int, height: int) -> bool:
    """Whether the photo shows the person head to feet: a head point and a foot point (ankle, heel or toe) of the
    33 BlazePose ``keypoints`` (processing px, visibility) are both in the ``width`` × ``height`` image. A crop,
    a half-body or a portrait is not full-length: its camera distance says nothing of the framing prior's."""
    kps = np.asarray(keypoints, dtype=np.float64)

    def seen(names: tuple[str, ...]) -> bool:
        pts = kps[[BP[n] for n in names]]
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
        return bool((inside & (pts[:, 2] >= FRAME_VISIBILITY)).any())

    return seen(_HEAD_POINTS) and seen(_FOOT_POINTS)


def _apply_framing_prior(prob: _Problem, p: dict[str, torch.Tensor]) -> Framing | None:
    """Set the focal length of a full-length photo without EXIF to the framing prior's (:func:`camera.framing_map`)
    and move the body along its viewing ray so that it keeps its image (distance × the focal's ratio).

    Called once the body's placement is first fitted (after the orientation stage): at the current focal the body
    of the current stature stands at the pelvis's depth, which fixes focal × stature / distance; the priors on the
    three (the stature's: :data:`stature.PRIOR_MEAN_M`, or the known height exactly) give the most probable focal.
    The camera stays at the origin; the later stages refit pose, shape and distance at that focal. None (the
    focal unchanged) when the orientation stage left the pelvis less than :data:`MIN_FRAMING_DEPTH_M` in front
    of the camera (a failed placement says nothing of the distance)."""
    with torch.no_grad():
        stature = float(prob.stature(prob.shape(p["betas"])))
        pelvis = prob.forward(p)["joints"][0]
        depth = float((pelvis @ prob.R_t.T)[2])
    if not depth >= MIN_FRAMING_DEPTH_M:
        return None
    known = prob.height_m is not None
    framing = framing_map(float(prob.K[0, 0]), depth, stature, prob.width, prob.height,
                          stature if known else PRIOR_MEAN_M, 0.0 if known else PRIOR_STD_M / PRIOR_MEAN_M)
    ratio = framing.focal_px / float(prob.K[0, 0])
    prob.K = intrinsics_from_focal(prob.width, prob.height, framing.focal_px)
    prob.K_t = torch.tensor(prob.K, dtype=torch.float32, device=prob.device)
    with torch.no_grad():
        p["transl"].add_((ratio - 1.0) * pelvis)  # the pelvis from depth z to ratio × z on its ray
    return framing


def _fit(observation: Any, body_model: Any, photo: Any, settings: FitSettings, device: str | torch.device,
         progress: Any, height_m: float | None = None, focal_px: float | None = None) -> BodyFit:
    start = time.perf_counter()
    cpu_start = time.process_time()
    times: dict[str, float] = {}
    clock = [start]

    def lap(name: str) -> None:
        now = time.perf_counter()
        times[name] = round(now - clock[0], 3)
        clock[0] = now

    width, height = _photo_size(photo, observation)
    if progress is not None:
        progress.update(0.0, "Initialising the body from 3D landmarks")
    focal, focal_source = _focal(photo, width, height, focal_px)
    prob = _Problem(observation, body_model, width, height, settings, device, focal, height_m)
    p = _initial_params(prob)
    lap("setup")
    total = settings.orient_iters + settings.pose_iters + sum(n for _, n in settings.silhouette)
    done = [0]
    _run_stage(prob, p, ("global_orient", "transl"), settings.orient_iters, 0.03, _loss_factory(prob, "orient"),
               progress, done, total, "Fitting orientation")
    framing = None
    if USE_FRAMING_PRIOR and focal_source == "prior" and shows_full_length(observation.keypoints, width, height):
        framing = _apply_framing_prior(prob, p)
        focal_source = "prior" if framing is None else "framing prior"
    _level_camera(prob, p)
    _decide_standing(prob, p)
    if prob.standing:
        _camera_height_prior(prob, p)
    lap("orient")
    _run_stage(prob, p, ("global_orient", "transl", "body_pose", "betas"), settings.pose_iters, 0.03,
               _loss_factory(prob, "pose"), progress, done, total, "Fitting pose to landmarks")
    lap("pose")
    for size, iters in settings.silhouette:
        sil = _on_device(make_target(prob.mask, prob.bbox, size, open_edges=prob.open_edges), prob.device)
        _run_stage(prob, p, ("global_orient", "transl", "body_pose", "betas"), iters, 0.015 if size > 128 else 0.02,
                   _loss_factory(prob, "pose", sil, tolerance=0.012 * size), progress, done, total,
                   f"Fitting silhouette ({size} px)")
        lap(f"silhouette_{size}")
    with torch.no_grad():
        p["betas"] = prob.shape(p["betas"])  # exactly the known stature from here on
    hand_errors = fit_hands(prob, p, getattr(observation, "hands", None))
    lap("hands")
    face_errors = fit_face(prob, p, getattr(observation, "face", None))
    lap("face")
    result = _finish(prob, p, start, done[0])
    lap("finish")
    scale = float(getattr(photo, "scale", 1.0) or 1.0)  # processing px per original px
    result.metrics.update({
        "stature_m": round(stature_of(body_model, result.betas), 4),
        "stature_source": "height option" if height_m is not None else "estimated from the body shape",
        "focal_px": round(float(prob.K[0, 0]) / scale, 2),
        "focal_source": focal_source,
        "distance_m": round(float(result.camera.to_camera(result.joints[:1])[0, 2]), 4),
        "standing": prob.standing,
    })
    if framing is not None:  # the framing prior's own guesses, before the fit refined the distance and stature
        result.metrics["framing_prior"] = {"distance_m": round(framing.distance_m, 4),
                                           "stature_m": round(framing.stature_m, 4)}
    result.metrics["hand_keypoint_error_px"] = hand_errors
    result.metrics["face_point_error_px"] = face_errors
    result.metrics["stage_times_s"] = times
    result.metrics["cpu_s"] = round(time.process_time() - cpu_start, 3)
    if progress is not None:
        progress.update(1.0, "Body fitted")
    return result


def _photo_size(photo: Any, observation: Any) -> tuple[int, int]:
    if photo is not None and getattr(photo, "rgb", None) is not None:
        return int(photo.rgb.shape[1]), int(photo.rgb.shape[0])
    h, w = np.asarray(observation.mask).shape
    return int(w), int(h)


def _finish(prob: _Problem, p: dict[str, torch.Tensor], start: float, iterations: int) -> BodyFit:
    """Evaluate the final body, measure it against the observation, normalise the world."""
    with torch.no_grad():
        px = prob.project(prob.model_points(prob.forward(p))).cpu().numpy()
        out = prob.model(betas=p["betas"][None], global_orient=p["global_orient"][None],
                         body_pose=p["body_pose"].reshape(1, 63), transl=p["transl"][None],
                         left_hand_pose=p.get("left_hand_pose", prob.no_hand).reshape(1, 45),
                         right_hand_pose=p.get("right_hand_pose", prob.no_hand).reshape(1, 45))
    verts = _np(out.vertices[0])
    joints = _np(out.joints[0])
    faces = np.asarray(prob.model.faces, dtype=np.int64)
    camera = Camera(prob.K.copy(), prob.R.copy(), np.zeros(3), prob.width, prob.height)
    sil = body_silhouette(camera.to_camera(verts), faces, camera.K, prob.width, prob.height)
    fit_iou = mask_iou(sil, prob.mask)
    w = prob.kp_weights.cpu().numpy()
    err = np.linalg.norm(px - prob.obs_px.cpu().numpy(), axis=1)
    seen = w > 0
    kp_err = float((err * w)[seen].sum() / max(w[seen].sum(), 1e-9)) if seen.any() else float("nan")
    full_pose = np.zeros((55, 3))
    full_pose[0] = p["global_orient"].cpu().numpy()
    full_pose[1:22] = p["body_pose"].cpu().numpy()
    full_pose[25:40] = p.get("left_hand_pose", prob.no_hand).cpu().numpy()
    full_pose[40:55] = p.get("right_hand_pose", prob.no_hand).cpu().numpy()
    transl = p["transl"].double().cpu().numpy()
    faces_cam = facing_camera(full_pose, prob.R)
    tilt = _level_pitch(full_pose[0])
    if tilt is not None:  # an upright body seen from above/below: level the body, tilt the camera instead
        q = axis_angle_to_matrix(np.array([tilt, 0.0, 0.0]))
        rest_pelvis = joints[0] - transl
        full_pose[0] = matrix_to_axis_angle(q @ axis_angle_to_matrix(full_pose[0]))
        transl = q @ joints[0] - rest_pelvis
        verts, joints = verts @ q.T, joints @ q.T
        camera = Camera(camera.K, camera.R @ q.T, camera.t, camera.width, camera.height)
    offset = np.array([-joints[0, 0], -verts[:, 1].min(), -joints[0, 2]])
    num_expr = int(getattr(prob.model, "num_expression", 10))
    metrics = {
        "keypoint_error_px": round(kp_err, 3) if np.isfinite(kp_err) else None,
        "silhouette_iou": round(fit_iou, 4),
        "iterations": iterations,
        "time_s": round(time.perf_counter() - start, 3),
        "faces_camera": faces_cam,
        "camera_pitch_deg": round(_pitch_deg(camera), 2),
    }
    warnings = _warnings(prob, fit_iou, kp_err)
    return BodyFit(
        betas=p["betas"].double().cpu().numpy(),
        expression=np.zeros(num_expr),
        full_pose=full_pose,
        transl=transl + offset,
        camera=camera.translated_world(offset),
        vertices=verts + offset,
        joints=joints + offset,
        faces=faces,
        metrics=metrics,
        warnings=warnings,
    )


#: Largest forward/backward lean (degrees) of the fitted pelvis that is taken for a tilted camera and levelled.
LEVEL_LIMIT_DEG = 30.0


def _level_pitch(global_orient: np.ndarray) -> float | None:
    """Rotation about world X (radians) that makes the pelvis's up axis vertical in the Y-Z plane, when the lean
    is below :data:`LEVEL_LIMIT_DEG` and the body is upright; None otherwise (lying, upside down, bending over).

    With the camera fixed level during the fit, a photo taken from above shows up as a body leaning towards the
    camera; turning the world puts the body upright and the camera's pitch where it belongs."""
    up = axis_angle_to_matrix(np.asarray(global_orient, dtype=np.float64)) @ np.array([0.0, 1.0, 0.0])
    if up[1] <= 0.0:
        return None
    pitch = float(np.arctan2(up[2], up[1]))
    roll = float(np.degrees(np.arctan2(abs(up[0]), np.hypot(up[1], up[2]))))
    if abs(np.degrees(pitch)) > LEVEL_LIMIT_DEG or roll > LEVEL_LIMIT_DEG:
        return None
    return -pitch


def _pitch_deg(camera: Camera) -> float:
    """How far the camera looks down (positive) or up, degrees, in the bundle world (Y up)."""
    view = camera.R.T @ np.array([0.0, 0.0, 1.0])
    return float(np.degrees(np.arcsin(np.clip(-view[1], -1.0, 1.0))))


def _level_camera(prob: _Problem, p: dict[str, torch.Tensor]) -> None:
    """After the orientation stage: move an upright body's forward/backward lean into the camera's pitch, so the
    pose stages see a level body (otherwise a photo from above is explained by bent knees and a bent spine)."""
    tilt = _level_pitch(p["global_orient"].double().cpu().numpy())
    if tilt is None or abs(tilt) < np.radians(2.0):
        return
    q = axis_angle_to_matrix(np.array([tilt, 0.0, 0.0]))
    with torch.no_grad():
        rest_pelvis = prob.body.rest(prob.shape(p["betas"]))[1][0].double().cpu().numpy()
        pelvis = rest_pelvis + p["transl"].double().cpu().numpy()
        go = matrix_to_axis_angle(q @ axis_angle_to_matrix(p["global_orient"].double().cpu().numpy()))
        p["global_orient"].copy_(torch.tensor(go, dtype=torch.float32, device=prob.device))
        p["transl"].copy_(torch.tensor(q @ pelvis - rest_pelvis, dtype=torch.float32, device=prob.device))
    prob.R = prob.R @ q.T
    prob.R_t = torch.tensor(prob.R, dtype=torch.float32, device=prob.device)


def _camera_height_prior(prob: _Problem, p: dict[str, torch.Tensor]) -> None:
    """Pitch the camera so that it stands at :data:`CAMERA_HEIGHT_RATIO` × stature above the floor (a standing
    person photographed from chest height), with :data:`CAMERA_HEIGHT_WEIGHT`, when the apparent lean puts the
    camera within :data:`CAMERA_HEIGHT_BAND`.

    After :func:`_level_camera` the body is upright and the camera's pitch is the body's apparent lean, which one
    photo shows poorly (a few degrees of lean barely change the picture, while the camera's height follows it
    with the body's distance: 1° ≈ 6 cm at 3.5 m). The world is turned about the camera centre (world X axis)
    so that the feet lie the prior's height below the camera; the body keeps its upright orientation and moves
    with the world, so it turns by that angle relative to the camera and the later stages refit its pose."""
    with torch.no_grad():
        out = prob.forward(p, with_vertices=True)
        stature = float(prob.stature(prob.shape(p["betas"])))
        pelvis = out["joints"][0].double().cpu().numpy()
        drop = float(pelvis[1] - out["vertices"][:, 1].min())  # pelvis above the lowest point, metres
    target = CAMERA_HEIGHT_RATIO * stature
    y, z = pelvis[1], pelvis[2]
    if not CAMERA_HEIGHT_BAND[0] * stature <= drop - y <= CAMERA_HEIGHT_BAND[1] * stature:
        return  # the camera is at the origin: its height above the lowest point is drop − y
    r = math.hypot(y, z)
    if r < 1e-6 or abs((drop - target) / r) >= 1.0:
        return
    alpha = math.atan2(z, y)
    # rotation about X by phi: y' = y cos(phi) - z sin(phi) = r cos(phi + alpha); want y' - drop = -target
    base = math.acos((drop - target) / r)
    phi = min((base - alpha, -base - alpha), key=abs) * CAMERA_HEIGHT_WEIGHT
    if abs(phi) > math.radians(LEVEL_LIMIT_DEG):
        return
    q = axis_angle_to_matrix(np.array([phi, 0.0, 0.0]))
    with torch.no_grad():
        p["transl"].add_(torch.tensor(q @ pelvis - pelvis, dtype=torch.float32, device=prob.device))
    prob.R = prob.R @ q.T
    prob.R_t = torch.tensor(prob.R, dtype=torch.float32, device=prob.device)


#: BlazePose's leg landmarks below the hip (a leg's knee, ankle, heel and toes).
_LOWER_LEG = {side: [BP[f"{side}_{part}"] for part in ("knee", "ankle", "heel", "foot_index")]
              for side in ("left", "right")}


def _image_knee_angle(keypoints: np.ndarray, side: str) -> float | None:
    """Angle (degrees) between hip→knee and knee→ankle in the photo, or None when one of them is not seen."""
    idx = [BP[f"{side}_{part}"] for part in ("hip", "knee", "ankle")]
    if (keypoints[idx, 2] < MIN_VISIBILITY).any():
        return None
    h, k, a = (keypoints[i, :2] for i in idx)
    u, v = k - h, a - k
    norm = float(np.linalg.norm(u) * np.linalg.norm(v))
    return None if norm < 1e-9 else float(np.degrees(np.arccos(np.clip(u @ v / norm, -1.0, 1.0))))


def _decide_standing(prob: _Problem, p: dict[str, torch.Tensor]) -> None:
    """Whether the floor, camera-height and upright priors apply: an upright pelvis (lean and roll within
    :data:`LEVEL_LIMIT_DEG`: not lying, upside down or mid-flip), both feet mapped and, in the levelled initial
    pose, their lowest points within :data:`STANDING_GAP_M` of each other (not a kick, a step up or a sitting pose
    with a foot raised)."""
    if min(len(r) for r in prob.foot_rows.values()) == 0 or \
            _level_pitch(p["global_orient"].double().cpu().numpy()) is None:
        return
    with torch.no_grad():
        y = prob.model_points(prob.forward(p))[:, 1]
        gap = float(y[prob.foot_rows["left"]].min() - y[prob.foot_rows["right"]].min())
    prob.standing = abs(gap) < STANDING_GAP_M


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _warnings(prob: _Problem, fit_iou: float, kp_err: float) -> list[str]:
    out = []
    legs = [BP[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    if (prob.vis[legs] < 0.5).sum() >= 2:
        out.append("The legs are hidden or out of the photo; the fitted legs are a guess.")
    if fit_iou < 0.6:
        out.append(f"The fitted body overlaps the person's outline poorly (IoU {fit_iou:.2f}).")
    if np.isfinite(kp_err) and kp_err > 0.06 * prob.person_size:
        out.append(f"The fitted body misses the detected landmarks by {kp_err:.0f} px on average.")
    return out
