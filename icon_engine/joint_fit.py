"""Joint fit of several photos of one person: one shared body shape, one pose, translation and camera per photo.

Frames and units: every photo keeps its own camera (OpenCV, processing pixels) and its own normalised bundle world
(lowest body vertex on y = 0, pelvis above the origin, :mod:`icon_engine.fit.core`); metres, radians.

Method (docs/multiview.md, "Joint fit"). :func:`shared_pose_fit` is the entry point. Each other photo is first
registered to the first photo's pose (orientation and translation only, from its own orientation and turned by
180°) with BlazePose's labels as given and with left and right exchanged (the detector can swap them on back views);
the labelling that fits better is kept. A **turnaround** — photos showing the first photo's pose from other sides,
one of them from the side — is then fitted with ONE body pose: the shared betas, the shared pose and every photo's
orientation and translation (the first photo's included) are optimised together on the sum of the photos'
single-photo objectives, so the side views decide the depth of the arms and legs that the front photo cannot see.
Otherwise (photos in other poses, or only front and back views) :func:`joint_fit` keeps every photo's own pose:
the sum of the single-photo objectives plus a robust agreement of the photos' body poses
(:func:`pose_agreement_loss`) over **one** betas vector and the other photos' orientation, pose and translation,
the first photo's pose and translation kept as its own fit found them (``anchor_first``: on bench/multiview.py
refitting it against photos in other poses moved its body away from the truth). The losses are the fit package's
own (:func:`icon_engine.fit.core._loss_factory`), evaluated on a per-photo problem whose fixed camera is the
photo's fitted camera (its pitch included). Each photo's fit is then finished like a single fit (metrics,
normalised world). :class:`GravityRig` replaces the turnaround's free per-photo orientations by one body orientation
(one lean relative to gravity) seen through cameras turned about the vertical, held upright, at one pitch and one
height: always for a turnaround in quarter turns (:data:`QUARTER_TURNS`: every shared-pose photo registered within
:data:`QUARTER_TURN_TOL_DEG` of a multiple of 90°, front + back included), with those turns held, the first photo
then re-registered alone when a side view is among them (:data:`REFINE_FIRST_ITERS`, :data:`REFINE_FIRST_WITHOUT_SIDE`;
front + back: the back view weighing :data:`BACK_VIEW_WEIGHT`, :func:`rig_photo_weights`, the shared orientation
starting at the photos' own fits' yaw vote, :data:`YAW_VOTE`); for other turnarounds
an option (:data:`SHARED_GRAVITY`, off).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bundle.skeleton import JOINT_NAMES
from .threads import torch_threads

#: Iterations of the joint stage per quality preset, and its Adam step (a warm start: smaller than a fresh fit's).
JOINT_ITERS = {"preview": 30, "standard": 50, "high": 80}
JOINT_LR = 0.01
#: Weight of the first photo's objective in the shared-pose stage (:func:`shared_pose_fit`), the others' being 1:
#: the avatar is posed and framed like it. On bench/multiview.py (2 subjects, 4 views, preview) its body's mean
#: per-vertex error: own fits 4.86 cm, weight 1: 4.62, weight 3: 4.54; 50 or 80 steps instead of 30: 4.72, ~4.9.
SHARED_FIRST_WEIGHT = 3.0
#: Weight of :func:`pose_agreement_loss` and its robust scale (radians).
W_AGREE = 1.0
AGREE_SIGMA_RAD = 0.25


def pose_agreement_loss(body_poses: Any, sigma: float | None = None) -> Any:
    """Robust agreement of the photos' body poses (K, 21, 3) axis-angle (radians): per joint and photo the
    Geman-McClure penalty of its squared distance to the photos' mean, scale :data:`AGREE_SIGMA_RAD`, summed over
    joints and averaged over photos. Photos of a person standing still pull each other's joints together (a side
    photo fixes an arm's depth for the front one); a joint that differs a lot between photos (another pose) costs
    a bounded amount and is left to its own photo."""
    s2 = (AGREE_SIGMA_RAD if sigma is None else sigma) ** 2
    d2 = (body_poses - body_poses.mean(dim=0, keepdim=True)).pow(2).sum(-1)
    return (s2 * d2 / (d2 + s2)).sum(-1).mean() / s2


#: Whether the photos that share one pose (a turnaround: the person held still while seen from several sides)
#: keep the single-photo fit's walker priors (``fit.core.W_GAIT``'s arm swing opposite the legs and
#: ``W_STRIDE``'s stride of a quarter of the stature, both for a stride of 20–30 cm and more). Off: a held pose
#: with one foot ahead is a stance, not a step of a walk. On bench/multiview.py (6 subjects, natural standing poses,
#: chest-height cameras, EXIF focal, standard) the joint fit's legs found a stride of over 20 cm where the truth
#: has 15 cm and the gait coupling swung the hanging arms by ±10 cm (docs/multiview.md, "Wave 24").
SHARED_POSE_WALKER_PRIORS = False
#: Adam steps (and step size) of the registration of one photo to the shared pose (orientation and translation).
REGISTER_ITERS = 40
REGISTER_LR = 0.03
#: A photo shows the first photo's pose (a turnaround) when it sees the person from another side (its registered
#: facing at least :data:`OTHER_SIDE_DEG` from the first photo's, about the vertical) and, registered to that pose,
#: its keypoint objective is at most :data:`SAME_POSE_RATIO` × its own fit's + :data:`SAME_POSE_SLACK` (the
#: objective's units: 1e3 × mean robust squared residual, fraction of the person's size). A photo from the same
#: side adds no depth to the first photo's pose (and a small change of pose looks like fit noise): it keeps its own.
OTHER_SIDE_DEG = 45.0
#: The pose is shared only when one of the photos showing the first photo's pose sees the person from the side
#: (turned this many degrees, inclusive): a back photo has the front photo's depth ambiguity, and forcing it into the
#: first photo's pose moved its body away from the truth on the bench (5.2 → 7.5 cm for one subject).
SIDE_VIEW_DEG = (45.0, 135.0)
SAME_POSE_RATIO = 6.0
SAME_POSE_SLACK = 0.25


def _mirror_index() -> np.ndarray:
    """The BlazePose landmark order with left and right exchanged (33,)."""
    from .fit.landmarks import BLAZEPOSE_NAMES, BP

    out = []
    for name in BLAZEPOSE_NAMES:  # "left_eye", "mouth_left", ...
        parts = name.split("_")
        mirrored = "_".join({"left": "right", "right": "left"}.get(w, w) for w in parts)
        out.append(BP.get(mirrored, BP[name]))
    return np.asarray(out, dtype=np.int64)


def swapped_observation(observation: Any) -> Any:
    """``observation`` with BlazePose's left and right labels exchanged (keypoints and world landmarks; the hands
    dropped): what the detector should have said of a person seen from behind when it took them for one facing the
    camera. Same pixels, same mask."""
    from dataclasses import replace

    idx = _mirror_index()
    return replace(observation, keypoints=np.asarray(observation.keypoints)[idx].copy(),
                   world_landmarks=np.asarray(observation.world_landmarks)[idx].copy(), hands=None)


@dataclass
class JointFitResult:
    """The refitted photos' ``fits`` (one :class:`icon_engine.fit.core.BodyFit` per photo, same ``betas``),
    the shared ``betas`` and diagnostics ``stats`` (iterations, seconds, loss before and after)."""

    fits: list[Any]
    betas: np.ndarray
    stats: dict[str, Any]


def _problem(observation: Any, photo: Any, fit: Any, body_model: Any, quality: str, device: str,
             height_m: float | None) -> tuple[Any, dict[str, Any]]:
    """One photo's fit problem with its camera fixed at the fitted one, and its parameters (torch tensors) in the
    problem's camera-centred world (the fitted world shifted by ``Rᵀ t``, so the camera sits at the origin)."""
    import torch

    from .fit.core import QUALITY_PRESETS, _photo_size, _Problem

    width, height = _photo_size(photo, observation)
    cam = fit.camera
    prob = _Problem(observation, body_model, width, height, QUALITY_PRESETS[quality], device,
                    float(cam.K[0, 0]), height_m)
    prob.R = np.asarray(cam.R, dtype=np.float64).copy()
    prob.R_t = torch.tensor(prob.R, dtype=torch.float32)
    shift = prob.R.T @ np.asarray(cam.t, dtype=np.float64)  # x_problem = x_world + Rᵀ t
    pose = np.asarray(fit.full_pose, dtype=np.float64).reshape(55, 3)
    p = {
        "global_orient": torch.tensor(pose[0], dtype=torch.float32),
        "body_pose": torch.tensor(pose[1:22], dtype=torch.float32),
        "transl": torch.tensor(np.asarray(fit.transl, dtype=np.float64).reshape(3) + shift, dtype=torch.float32),
        "left_hand_pose": torch.tensor(pose[25:40], dtype=torch.float32),
        "right_hand_pose": torch.tensor(pose[40:55], dtype=torch.float32),
    }
    return prob, p


def joint_fit(views: list[tuple[Any, Any, Any]], body_model: Any, betas: np.ndarray, quality: str = "standard",
              device: str = "cpu", height_m: float | None = None, iterations: int | None = None,
              silhouette: bool = True, window: int | None = None, lr: float | None = None,
              couple: float | None = None, anchor_first: bool = True, free_shape: bool = True) -> JointFitResult:
    """Refit every photo with one shared shape (module docstring).

    ``views``: (observation, photo, fit) per photo, ``fit`` its own (or shared-shape) fit as the warm start;
    ``betas``: the shared shape's starting value; ``height_m``: the known stature (the betas stay on it);
    ``iterations``, ``lr``: the Adam schedule (default :data:`JOINT_ITERS`, :data:`JOINT_LR`); ``silhouette``,
    ``window``: with the silhouette term, at that window size (default the preset's finest); ``couple``: weight of
    the pose agreement (default :data:`W_AGREE`); ``anchor_first``: keep the first photo's pose and translation;
    ``free_shape``: optimise the betas (else they stay at ``betas``).
    Returns the finished fits in ``views``' order; their ``metrics`` hold the photo's keypoint error (px) and
    silhouette IoU with the shared shape, and ``joint_fit`` (loss before/after)."""
    import torch

    from .fit.core import FIT_TORCH_THREADS, QUALITY_PRESETS, _decide_standing, _finish, _loss_factory, minimise
    from .fit.face import fit_face
    from .fit.silhouette import make_target

    start, cpu0 = time.perf_counter(), time.process_time()
    settings = QUALITY_PRESETS[quality]
    iters = JOINT_ITERS.get(quality, 50) if iterations is None else int(iterations)
    size = settings.silhouette[-1][0] if window is None else int(window)
    lr = JOINT_LR if lr is None else lr
    couple = W_AGREE if couple is None else float(couple)
    with torch_threads(FIT_TORCH_THREADS):  # small tensors: the fit's thread count (as fit_body)
        shared = torch.tensor(np.asarray(betas, dtype=np.float32).reshape(-1))
        problems = []
        for observation, photo, fit in views:
            prob, p = _problem(observation, photo, fit, body_model, quality, device, height_m)
            nb = prob.body.num_betas
            if shared.numel() != nb:  # the body's betas count (the fits were made with this body)
                shared = torch.nn.functional.pad(shared[:nb], (0, max(0, nb - shared.numel())))
            problems.append((prob, p))
        for prob, p in problems:
            p["betas"] = shared
            _decide_standing(prob, p)
        losses = [_loss_factory(prob, "pose",
                                make_target(prob.mask, prob.bbox, size, open_edges=prob.open_edges)
                                if silhouette else None, tolerance=0.012 * size) for prob, _ in problems]

        def total() -> Any:
            loss = sum(fn(p) for fn, (_, p) in zip(losses, problems, strict=True)) / len(problems)
            if couple > 0 and len(problems) > 1:
                loss = loss + couple * pose_agreement_loss(torch.stack([p["body_pose"] for _, p in problems]))
            return loss

        with torch.no_grad():
            before = float(total())
        names = ("global_orient", "body_pose", "transl")
        leaves = ([shared] if free_shape else []) + [p[k] for i, (_, p) in enumerate(problems) for k in names
                                                     if i > 0 or not anchor_first]
        minimise(leaves, total, iters, lr)
        with torch.no_grad():
            after = float(total())
            final = problems[0][0].shape(shared).detach().clone()  # exactly on the known stature, if any
        fits = []
        for (prob, p), (observation, _, own) in zip(problems, views, strict=True):
            p["betas"] = final
            face = fit_face(prob, p, getattr(observation, "face", None))
            done = _finish(prob, p, start, iters)
            done.metrics = {**dict(getattr(own, "metrics", {}) or {}), **done.metrics, "joint_fit": True,
                            "face_point_error_px": face}
            done.warnings = list(getattr(own, "warnings", []))
            fits.append(done)
    stats = {"iterations": iters, "loss_before": round(before, 4), "loss_after": round(after, 4),
             "time_s": round(time.perf_counter() - start, 3), "cpu_s": round(time.process_time() - cpu0, 3)}
    return JointFitResult(fits, final.double().numpy(), stats)


def _keypoint_objective(prob: Any, p: dict[str, Any]) -> float:
    """The photo's keypoint term (robust, all landmarks) at parameters ``p`` (no gradient)."""
    import torch

    with torch.no_grad():
        return float(prob.keypoint_loss(prob.project(prob.model_points(prob.forward(p))), prob.kp_weights))


#: BlazePose landmarks of each limb (the hand's with the arm, the foot's with the leg).
LIMB_LANDMARKS = {f"{side}_{limb}": tuple(f"{side}_{n}" for n in names) for side in ("left", "right")
                  for limb, names in (("arm", ("elbow", "wrist", "pinky", "index", "thumb")),
                                      ("leg", ("knee", "ankle", "heel", "foot_index")))}


def limb_objectives(prob: Any, p: dict[str, Any]) -> dict[str, float]:
    """The photo's keypoint term (as :func:`_keypoint_objective`) over each limb's landmarks alone
    (:data:`LIMB_LANDMARKS`), at parameters ``p``."""
    import torch

    from .fit.landmarks import BP

    landmarks = np.asarray(prob.targets.landmarks)
    with torch.no_grad():
        px = prob.project(prob.model_points(prob.forward(p)))
        out = {}
        for limb, names in LIMB_LANDMARKS.items():
            rows = torch.as_tensor(np.isin(landmarks, [BP[n] for n in names]), dtype=prob.kp_weights.dtype,
                                   device=prob.kp_weights.device)
            out[limb] = float(prob.keypoint_loss(px, prob.kp_weights * rows))
    return out


def _yaw_flipped(global_orient: Any) -> Any:
    """``global_orient`` (3,) axis-angle turned by 180° about the world's vertical axis (Y)."""
    import torch

    from .bundle.skeleton import axis_angle_to_matrix, matrix_to_axis_angle

    flip = np.diag([-1.0, 1.0, -1.0])
    turned = matrix_to_axis_angle(flip @ axis_angle_to_matrix(global_orient.detach().double().cpu().numpy()))
    return torch.tensor(turned, dtype=torch.float32)


def facing_deg(prob: Any, p: dict[str, Any]) -> float:
    """Which way the body faces in its camera's frame (degrees about the vertical: 0 towards the camera, ±180
    away), from the pelvis orientation ``p["global_orient"]`` and the camera rotation ``prob.R``."""
    from .bundle.skeleton import axis_angle_to_matrix

    forward = prob.R @ axis_angle_to_matrix(p["global_orient"].detach().double().cpu().numpy()) @ np.array(
        [0.0, 0.0, 1.0])
    return float(np.degrees(np.arctan2(forward[0], -forward[2])))


#: Robust scale (radians) of :func:`turn_steps_loss`.
TURN_SIGMA_RAD = math.radians(10.0)


def torch_round_quarter(angle: Any) -> Any:
    """The nearest multiple of 90° (radians, no gradient) to each of ``angle`` (radians)."""
    import torch

    return torch.round(angle.detach() / (math.pi / 2)) * (math.pi / 2)


def turn_steps_loss(orients: list[Any], cams: list[Any]) -> Any:
    """Turnaround convention (a prior, off unless asked for): the person turned by a multiple of 90° between the
    first photo and each other one. Per other photo the Geman-McClure penalty (scale :data:`TURN_SIGMA_RAD`) of
    its facing angle's distance (about the camera's vertical) from the first photo's + the nearest multiple of
    90°; ``orients`` pelvis axis-angles (3,), ``cams`` world → camera rotations (3, 3), first photo first."""
    import torch

    from .geometry.torch_skinning import axis_angle_to_matrix as aa_to_m

    def facing(go: Any, cam: Any) -> Any:
        forward = cam @ aa_to_m(go[None])[0][:, 2]
        return torch.atan2(forward[0], -forward[2])

    base = facing(orients[0], cams[0])
    s2 = TURN_SIGMA_RAD ** 2
    loss = base.new_zeros(())
    for go, cam in zip(orients[1:], cams[1:], strict=True):
        turn = facing(go, cam) - base
        d2 = (turn - torch_round_quarter(turn)) ** 2
        loss = loss + s2 * d2 / (d2 + s2) / s2
    return loss / max(len(orients) - 1, 1)


#: Shared gravity (:class:`GravityRig`): weight of each camera's roll about its viewing axis (per rad²; a camera
#: held upright) and of its pitch change from the photo's own fit (per rad²; weak: the side views and the shared
#: pose decide it).
W_CAMERA_ROLL = 10.0
#: The first photo's weight (:data:`SHARED_FIRST_WEIGHT`) when the photos share gravity: its orientation is tied
#: to the others', so it need not outweigh them (bench/multiview_bodies.py, 2 subjects, 4 views: the first photo's
#: body 3.72 cm at weight 3, 3.46 cm at weight 1; all photos' 4.49 → 4.12 cm).
GRAVITY_FIRST_WEIGHT = 1.0
#: Whether a turnaround's photos share one body orientation under turned cameras (:class:`GravityRig`) rather than
#: a free orientation each. Off: on bench/multiview.py (3 subjects, 4 views, preview) it gave, with one camera
#: height (:data:`W_HEIGHT_AGREE`), 1.43 / 1.04 / 2.29 cm Chamfer against 1.46 / 1.68 / 2.21 cm with free
#: orientations — mean −34 % vs −26 % below the front photo alone, but the skirt subject worse (docs/multiview.md,
#: wave 5b); ``--gravity`` there turns it on.
SHARED_GRAVITY = False
W_CAMERA_PITCH = 1.0
#: Shared gravity: weight (per rad²) of the cameras' pitches (relative to the floor) agreeing: a turnaround is shot
#: by one camera at one height (the person turns in front of it, or the photographer walks around at one height).
#: A side view sees the camera's elevation where one photo from the front cannot (the feet, side by side, stand at
#: different depths on one floor).
W_PITCH_AGREE = 100.0
#: Shared gravity: weight (per m²) of the cameras' heights above the floor agreeing (0: free heights): a turnaround
#: shot from one tripod height has one camera height. With one body orientation and pose the body's floor lies at
#: one height below its pelvis in every photo, so the heights agree when the photos' translations' vertical
#: components (:attr:`GravityRig.transl`, the shared world's Y) do. ``math.inf`` (the rig's default): one shared
#: height (a hard tie, the rig starting from the photos' median with each camera's pitch turned to keep the pelvis
#: in view where it was). On bench/multiview.py (3 subjects, 4 views, preview, docs/multiview.md wave 5b) the rig
#: with one height gave 1.43 / 1.04 / 2.29 cm Chamfer against 1.62 / 1.28 / 2.32 cm with free heights; a soft tie
#: (100 or 1000) closed the 10–33 cm disagreement only partly in the joint stage's 30 Adam steps.
W_HEIGHT_AGREE = math.inf
#: A turnaround shot in quarter turns (the usual protocol: front, side, back, other side) is solved as ONE pose seen
#: by cameras a multiple of 90° apart about the vertical: when every shared-pose photo's registered turn from the
#: first photo lies within :data:`QUARTER_TURN_TOL_DEG` of a multiple of 90°, the photos go to :class:`GravityRig`
#: (one orientation and pose, one camera height) with those turns held (``quarter_turns``). The side views then fix
#: the body's yaw in the first photo, which a free turn per camera absorbed (the skirt subject's side views were
#: registered 76° and 102° from the front: the shared orientation followed the torso, its yaw 15° off).
#: On bench/multiview_bodies.py (3 subjects, 4 views, preview) the first photo's body: 2.52 / 4.12 / 5.11 cm with
#: free orientations, 3.30 / 2.57 / 6.51 cm with the rig's free turns, 3.08 / 2.60 / 2.91 cm with quarter turns.
QUARTER_TURNS = True
#: After a rigged turnaround, Adam steps re-registering the first photo alone (its orientation and translation on its
#: own objective; the shared pose, shape and cameras kept): the avatar is posed and framed like the first photo, and
#: the rig's one orientation is a compromise between the photos. On bench/multiview.py (3 subjects, 4 views,
#: preview) Chamfer loose / tight / skirt: 1.26 / 0.93 / 1.63 cm without, 1.18 / 0.92 / 1.70 cm with 40 steps
#: (20: loose 1.22), against 1.19 / 1.60 / 2.08 cm with free orientations (the wave-5 default).
REFINE_FIRST_ITERS = 40
#: Whether the first photo is re-registered (:data:`REFINE_FIRST_ITERS`) when no side view is among the rigged
#: photos (front + back). Off (wave 6b): the rig's one pitch and orientation then stay the first photo's; on
#: bench/multiview.py (3 subjects, preview, front + back) with :data:`BACK_VIEW_WEIGHT` 0.7, Chamfer loose / tight
#: / skirt 1.57 / 1.52 / 2.27 cm against 1.59 / 1.54 / 2.29 re-registered (wave 6); alone 1.60 / 1.52 / 2.22.
REFINE_FIRST_WITHOUT_SIDE = False
QUARTER_TURN_TOL_DEG = 20.0
#: A rigged turnaround's back views (registered at least :data:`BACK_VIEW_DEG` from the first photo) weigh
#: :data:`BACK_VIEW_WEIGHT` in the shared objective (the first photo's :data:`GRAVITY_FIRST_WEIGHT`) when no side
#: view is among the rigged photos (front + back: BlazePose on a back view blurs or swaps left and right, and with
#: no side view nothing else checks it). Wave 6b (bench/multiview.py, 3 subjects, preview, front + back, with
#: :data:`REFINE_FIRST_WITHOUT_SIDE` off): Chamfer loose / tight / skirt 1.60 / 1.52 / 2.22 cm at weight 1,
#: 1.57 / 1.52 / 2.27 at 0.7 (the default), 1.61 / 1.51 / 2.25 at 0.85, 1.63 / 1.50 / 2.19 at 1.5 (wave 6:
#: 1.59 / 1.54 / 2.29); applied to 4 views as well, 0.7 moved the skirt 1.695 → 1.706 cm, so only without a side
#: view. Measured and removed (docs/multiview.md, wave 6b): a back view's face landmarks weighed 0 (1.65 / 1.52 /
#: 2.37), each photo weighed by how well the shared pose fits it (the back photo's own keypoint error and IoU do not
#: tell the loose subject's bad back fit from the skirt's good one), the re-registration with the rig's tilt tied.
BACK_VIEW_DEG = 135.0
BACK_VIEW_WEIGHT = 0.7
#: A rigged turnaround in quarter turns without a side view (front + back) starts its shared orientation turned about
#: the vertical by the photos' weighted yaw vote (:meth:`GravityRig._start_at_yaw_vote`: each photo's OWN fit's
#: turn from the first photo's own, minus the quarter turn it is held at; weights the photos' in the rig) instead of
#: at the first photo's. The shared pose is the first photo's, so registered to it the back view takes the first
#: photo's pelvis yaw (its twist with it): the back view's own yaw evidence was lost, and the front and back own
#: fits err on opposite sides of the truth on the bench (loose / tight / skirt +6.4 / −7.8°, −9.4 / +8.4°,
#: −12.5 / +1.4°). Wave 7 (bench/multiview.py, 3 subjects, preview, front + back): Chamfer 1.570 / 1.524 / 2.267
#: → 1.52 / 1.42 / 2.21 cm, the first photo's yaw error +4.9 / −9.7 / −10.6° → +2.0 / −5.4 / −8.2°
#: (docs/multiview.md, "Wave 7"). A side view fixes the yaw itself: with one the vote is not taken; nor when a photo's
#: BlazePose labels were exchanged (its own fit, made with the wrong labels, has no yaw to vote with).
YAW_VOTE = True
#: A rigged turnaround without a side view (front + back) shares the trunk but not the arms
#: (:data:`ARM_ROWS`): each photo keeps arms of its own (the first photo's started at its own fit's, a back view's at
#: its own fit's unless its labels were exchanged), tied by :func:`pose_agreement_loss` (weight :data:`W_AGREE`):
#: arms the two views agree on (within ≈ 0.25 rad) are pulled together, an arm they disagree on keeps each view's.
#: BlazePose's arms are the least reliable landmarks of a back view (hands and elbows in front of the body hidden
#: behind it, left and right confused per limb: registered to the first photo's pose the bench's back views' arm
#: keypoint terms grew up to 5×, their legs' at most 3×), and with one shared arm a wrong one moved the first
#: photo's. Wave 8 (bench/multiview.py, 6 subjects, preview, front + back): Chamfer 1.72 / 1.45 / 2.22 / 2.83 /
#: 3.28 / 2.33 → 1.59 / 1.35 / 1.95 / 2.88 / 3.07 / 2.30 cm (−11 % → −15 % below the front photo alone; the legs
#: kept apart too for every subject, or the arms without the agreement, were worse; the legs kept apart under loose
#: clothes only is measured there but not kept: docs/multiview.md, "Wave 8"). With a side view the arms stay shared
#: (the side view sees their depth).
OWN_ARMS_WITHOUT_SIDE = True
#: Rows of ``body_pose`` (SMPL-X joint − 1) of the arms: collars, shoulders, elbows, wrists.
ARM_ROWS = tuple(JOINT_NAMES.index(f"{side}_{part}") - 1 for part in ("collar", "shoulder", "elbow", "wrist")
                 for side in ("left", "right"))
#: A rigged turnaround without a side view (front + back) also gives each photo legs of its own (:data:`LEG_ROWS`),
#: started at its own fit's (a back view whose labels were exchanged: the first photo's) and drawn together by a stiff
#: agreement (:func:`pose_agreement_loss`, weight :data:`W_AGREE_LEGS`, scale :data:`AGREE_SIGMA_RAD`): while the trunk,
#: the shape, the orientation and the cameras' rig settle, each view's legs start inside its own outline instead of the
#: back view being forced into the first photo's legs from the first step, and the two pairs of legs meet within the
#: joint stage (they end within ≈ 0.06 rad of each other, ``stats["leg_gap_rad"]``: one pair of legs in effect). Shared
#: from the start, the back view's guess under loose clothes pulled the rig (loose 2: the front's leg 25 cm off given to
#: the back body); kept apart (weight 1), the back view no longer pinned tight legs. Wave 11 (bench/multiview.py,
#: preview, front + back, 6 subjects): 1.59 / 1.35 / 1.95 / 2.88 / 3.07 / 2.30 → 1.67 / 1.38 / 1.78 / 2.65 / 2.37 / 2.70
#: cm (−15 % → −19 % below the front photo alone, none worse; weight 100: −18 %, 10,000: −19 %; started at the photos'
#: mean legs and shared instead: −5 %); 4 held-out subjects 2.43 / 3.34 / 2.65 / 2.55 → 2.35 / 3.29 / 2.58 / 2.45
#: (docs/multiview.md, "Wave 11").
OWN_LEGS_WITHOUT_SIDE = True
W_AGREE_LEGS = 1000.0
#: Rows of ``body_pose`` (SMPL-X joint − 1) of the legs: hips, knees, ankles, feet.
LEG_ROWS = tuple(JOINT_NAMES.index(f"{side}_{part}") - 1 for part in ("hip", "knee", "ankle", "foot")
                 for side in ("left", "right"))


def quarter_turn_off_deg(turn_deg: float) -> float:
    """How far (degrees, 0–45) a turn about the vertical (degrees) lies from the nearest multiple of 90°."""
    return abs((float(turn_deg) + 45.0) % 90.0 - 45.0)


def in_quarter_turns(turns_deg: list[float]) -> bool:
    """Whether photos registered ``turns_deg`` (degrees about the vertical from the first photo) form a turnaround
    in quarter turns: at least one, each within :data:`QUARTER_TURN_TOL_DEG` of a multiple of 90°."""
    return bool(turns_deg) and all(quarter_turn_off_deg(t) <= QUARTER_TURN_TOL_DEG for t in turns_deg)


class GravityRig:
    """One body orientation for every photo of a turnaround, the photos' cameras turned about the world's vertical.

    A person standing on one floor leans the same way relative to gravity in every photo of one pose, and a camera
    held upright has no roll. So instead of a free pelvis orientation per photo, the photos share ONE orientation
    ``orient`` (axis-angle, the first photo's bundle world, Y up) and photo *k* sees it through its fitted camera
    ``R_k`` turned by ``C_k = roll_k · pitch_k · yaw_k``: a yaw about the world's vertical (the person turned
    between photos; the first photo's is 0, the gauge), a pitch about the camera's x axis and a roll about its
    viewing axis (both in the world, radians). In a side view the body's forward lean is an in-plane rotation
    (seen directly, with the roll held near 0); in the front view that lean plus the camera's pitch make the
    vertical foreshortening, so the side views fix the lean and the shared pose lets the front photo's
    foreshortening (nose/ears, toes/heels) set its camera's pitch instead of the camera-height prior.
    The photo's translation stays its own (the body's pelvis in front of a camera at the origin)."""

    def __init__(self, cams: list[np.ndarray], orients: list[Any], transls: list[Any], pelvis: np.ndarray,
                 height_agree: float | None = None, quarter_turns: bool = False,
                 yaw_votes: tuple[list[Any], list[float]] | None = None) -> None:
        """``cams`` the photos' fitted world → camera rotations (3, 3), ``orients`` / ``transls`` their current
        pelvis orientations (axis-angle) and translations (torch, (3,)), ``pelvis`` the rest pelvis (metres),
        ``height_agree`` the weight of the camera heights' agreement (default :data:`W_HEIGHT_AGREE`): the rig
        starts where the photos are (each C_k from its orientation relative to the first photo's); with
        ``quarter_turns``, ``yaw_votes`` (orientations, weights: e.g. the photos' own fits') turn the shared
        orientation's start to their weighted yaw vote (:meth:`_start_at_yaw_vote`)."""
        import torch

        from .geometry.rotations import axis_angle_to_matrix as aa
        from .geometry.rotations import matrix_to_axis_angle

        self.base = [torch.tensor(np.asarray(c, dtype=np.float64), dtype=torch.float32) for c in cams]
        self.pitch_axis = [np.asarray(c, dtype=np.float64)[0] for c in cams]  # the camera's x axis in the world
        self.roll_axis = [np.asarray(c, dtype=np.float64)[2] for c in cams]  # its viewing axis in the world
        g = aa(orients[0].detach().double().cpu().numpy())
        self.orient = orients[0].detach().clone()
        angles, transl = [], []
        for k, (go, t) in enumerate(zip(orients, transls, strict=True)):
            m = aa(go.detach().double().cpu().numpy()) @ g.T  # C_k: this photo's orientation relative to the first
            yaw = 0.0 if k == 0 else math.atan2(m[0, 2], m[2, 2])
            if quarter_turns:  # the nearest quarter turn, held there
                yaw = round(yaw / (math.pi / 2)) * (math.pi / 2)
            rest = matrix_to_axis_angle(m @ aa(np.array([0.0, -yaw, 0.0])))  # what the yaw leaves: pitch + roll
            angles.append([float(rest @ self.pitch_axis[k]), float(rest @ self.roll_axis[k]), yaw])
            c = self._turn_np(k, *angles[-1])
            transl.append(torch.tensor(c.T @ (pelvis + t.detach().double().cpu().numpy()) - pelvis,
                                       dtype=torch.float32))
        self.angles = torch.tensor(angles, dtype=torch.float32)  # (K, 3): pitch, roll, yaw (radians)
        self.quarter_turns = bool(quarter_turns)
        self.start_yaw = 0.0
        if quarter_turns and yaw_votes is not None and len(orients) > 1:
            self._start_at_yaw_vote(*yaw_votes)
        self._transl = transl
        self.height_agree = W_HEIGHT_AGREE if height_agree is None else float(height_agree)
        self.height: Any = None  # the shared vertical translation (one camera height), when tied
        if math.isinf(self.height_agree) and len(transl) > 1:
            self._tie_heights(np.asarray(pelvis, dtype=np.float64))

    def _start_at_yaw_vote(self, orients: list[Any], weights: list[float]) -> None:
        """Turn the shared orientation about the world's vertical (about the pelvis: every photo still sees it
        there) by the ``weights``-weighted mean of the photos' yaw votes: photo *k*'s vote is the turn of its
        orientation ``orients[k]`` (axis-angle, e.g. its own fit's) from the first photo's ``orients[0]`` minus the
        quarter turn it is held at (the first photo's vote 0)."""
        import torch

        from .geometry.rotations import axis_angle_to_matrix as aa
        from .geometry.rotations import matrix_to_axis_angle

        g = aa(orients[0].detach().double().cpu().numpy())
        votes = [0.0]
        for k in range(1, len(orients)):
            m = aa(orients[k].detach().double().cpu().numpy()) @ g.T
            votes.append(math.remainder(math.atan2(m[0, 2], m[2, 2]) - float(self.angles[k, 2]), 2 * math.pi))
        w = np.asarray(weights, dtype=np.float64)
        self.start_yaw = float(w @ np.asarray(votes) / w.sum())
        g = aa(self.orient.detach().double().cpu().numpy())
        turned = matrix_to_axis_angle(aa(np.array([0.0, self.start_yaw, 0.0])) @ g)
        self.orient = torch.tensor(turned, dtype=self.orient.dtype)

    def _tie_heights(self, pelvis: np.ndarray) -> None:
        """One camera height for all photos (``height_agree`` = inf): every photo's vertical translation set to
        their median, each camera's pitch turned so that it still sees the pelvis where it did (the photo's
        keypoints barely move), the horizontal translations kept. Afterwards :attr:`transl` is built from the one
        shared :attr:`height` and per-photo horizontal parts."""
        import torch
        from scipy.optimize import minimize_scalar

        old = [t.detach().double().cpu().numpy() for t in self._transl]
        y = float(np.median([t[1] for t in old]))
        a = self.angles.double().cpu().numpy()
        for k, t in enumerate(old):
            base = self.base[k].double().cpu().numpy()
            seen = base @ self._turn_np(k, *a[k]) @ (pelvis + t)
            seen /= np.linalg.norm(seen)
            moved = pelvis + np.array([t[0], y, t[2]])

            def miss(d: float, k: int = k, base: np.ndarray = base, moved: np.ndarray = moved,
                     seen: np.ndarray = seen) -> float:
                v = base @ self._turn_np(k, a[k, 0] + d, a[k, 1], a[k, 2]) @ moved
                return float(np.linalg.norm(v / np.linalg.norm(v) - seen))

            a[k, 0] += float(minimize_scalar(miss, bounds=(-0.6, 0.6), method="bounded",
                                             options={"xatol": 1e-7}).x)
        self.angles = torch.tensor(a, dtype=torch.float32)
        self._xz = [torch.tensor(t[[0, 2]], dtype=torch.float32) for t in old]
        self.height = torch.tensor(y, dtype=torch.float32)

    @property
    def transl(self) -> list[Any]:
        """The photos' translations (torch (3,) each, metres, the shared world; differentiable in the rig's leaves):
        their own, or with camera heights tied the shared :attr:`height` and their own horizontal parts."""
        import torch

        if self.height is None:
            return self._transl
        return [torch.stack([xz[0], self.height, xz[1]]) for xz in self._xz]

    def _turn_np(self, k: int, pitch: float, roll: float, yaw: float) -> np.ndarray:
        from .geometry.rotations import axis_angle_to_matrix as aa

        return (aa(self.roll_axis[k] * roll) @ aa(self.pitch_axis[k] * pitch)
                @ aa(np.array([0.0, yaw, 0.0])))

    def turn(self, k: int) -> Any:
        """C_k (3, 3) torch, differentiable in :attr:`angles`."""
        import torch

        from .geometry.torch_skinning import axis_angle_to_matrix as aa

        a = self.angles[k]
        rp = torch.tensor(self.roll_axis[k], dtype=torch.float32)
        pp = torch.tensor(self.pitch_axis[k], dtype=torch.float32)
        turned = a[2].detach() if self.quarter_turns else a[2]  # held turns get no gradient
        yaw = turned * torch.tensor([0.0, 1.0, 0.0]) if k > 0 else torch.zeros(3)
        return aa(rp * a[1]) @ aa(pp * a[0]) @ aa(yaw)

    def camera(self, k: int) -> Any:
        """Photo *k*'s world → camera rotation R_k C_k (torch)."""
        return self.base[k] @ self.turn(k)

    def leaves(self) -> list[Any]:
        """The tensors to optimise: the shared orientation, the angles, the translations."""
        return [self.orient, self.angles, *(self._transl if self.height is None else [*self._xz, self.height])]

    def prior(self) -> Any:
        """Roll near 0 and pitch near the photo's own fit (:data:`W_CAMERA_ROLL`, :data:`W_CAMERA_PITCH`), the
        cameras' pitches near their mean (:data:`W_PITCH_AGREE`) and their heights above the floor near their mean
        (:attr:`height_agree`, :meth:`heights`), summed over photos (the objective's units)."""
        import torch

        loss = (W_CAMERA_ROLL * self.angles[:, 1].pow(2) + W_CAMERA_PITCH * self.angles[:, 0].pow(2)).sum()
        if W_PITCH_AGREE > 0 and len(self.base) > 1:
            pitch = torch.stack([self.pitch(k) for k in range(len(self.base))])
            loss = loss + W_PITCH_AGREE * (pitch - pitch.mean()).pow(2).sum()
        if 0 < self.height_agree < math.inf and len(self.base) > 1:
            y = self.heights()
            loss = loss + self.height_agree * (y - y.mean()).pow(2).sum()
        return loss

    def heights(self) -> Any:
        """The cameras' heights above the floor up to one shared constant (K,) metres, differentiable: minus the
        photos' vertical translations (each camera sits at its problem world's origin, and the shared orientation
        and pose put the floor at one height relative to the translation in every photo)."""
        import torch

        return -torch.stack([t[1] for t in self.transl])

    def turn_steps_loss(self) -> Any:
        """The turnaround convention on the rig's yaws (:func:`turn_steps_loss`'s robust penalty, scale
        :data:`TURN_SIGMA_RAD`): each photo turned by a multiple of 90° from the first, averaged over photos."""
        yaw = self.angles[1:, 2]
        if yaw.numel() == 0:
            return self.angles.new_zeros(())
        d2 = (yaw - torch_round_quarter(yaw)) ** 2
        s2 = TURN_SIGMA_RAD ** 2
        return (d2 / (d2 + s2)).mean()

    def pitch(self, k: int) -> Any:
        """How far photo *k*'s camera looks down (radians, + downwards) in the shared world (Y up), differentiable."""
        import torch

        view = self.camera(k)[2]  # the viewing axis in the world
        return torch.asin((-view[1]).clamp(-1.0, 1.0))

    def report(self) -> dict[str, Any]:
        """The cameras' turns (degrees), rounded: pitch and roll changes and yaw, one per rigged photo; the spread of
        their heights (cm) and the shared orientation's start turn from the yaw vote (degrees, 0 without one)."""
        a = np.degrees(self.angles.detach().double().cpu().numpy())
        h = self.heights().detach().double().cpu().numpy()
        return {"pitch_deg": [round(float(x), 2) for x in a[:, 0]], "roll_deg": [round(float(x), 2) for x in a[:, 1]],
                "yaw_deg": [round(float(x), 1) for x in a[:, 2]],
                "height_spread_cm": round(float(h.max() - h.min()) * 100, 2),
                "start_yaw_deg": round(math.degrees(self.start_yaw), 2)}

    def apply(self, k: int, prob: Any, p: dict[str, Any]) -> None:
        """Point photo *k*'s problem and parameters at the rig (its camera, the shared orientation, its
        translation): gradients flow into the rig."""
        prob.R_t = self.camera(k)
        p["global_orient"] = self.orient
        p["transl"] = self.transl[k]

    def settle(self, k: int, prob: Any, p: dict[str, Any]) -> None:
        """Freeze photo *k*'s camera into ``prob.R`` (numpy) and detach its parameters (after the fit)."""
        import torch

        with torch.no_grad():
            prob.R = self.camera(k).double().cpu().numpy()
            prob.R_t = torch.tensor(prob.R, dtype=torch.float32)
            p["global_orient"] = self.orient.detach().clone()
            p["transl"] = self.transl[k].detach().clone()


def register_to_pose(prob: Any, p: dict[str, Any], body_pose: Any, iters: int = REGISTER_ITERS
                     ) -> tuple[dict[str, Any], float]:
    """The photo's orientation and translation for the body pose ``body_pose`` (21, 3) (shape ``p["betas"]``),
    fitted to its keypoints from its own orientation and from that orientation turned by 180° (a person seen from
    behind); returns (parameters, with ``body_pose``, and keypoint objective) of the better start."""
    from .fit.core import minimise

    best: tuple[dict[str, Any], float] | None = None
    for start in (p["global_orient"], _yaw_flipped(p["global_orient"])):
        q = {k: v.detach().clone() for k, v in p.items()}
        q["body_pose"] = body_pose.detach().clone()
        q["global_orient"] = start.detach().clone()
        minimise([q["global_orient"], q["transl"]],
                 lambda q=q: prob.keypoint_loss(prob.project(prob.model_points(prob.forward(q))), prob.kp_weights),
                 iters, REGISTER_LR)
        value = _keypoint_objective(prob, q)
        if best is None or value < best[1]:
            best = (q, value)
    assert best is not None
    return best


def rig_photo_weights(same: list[bool], reg_report: list[Any], weights: list[float],
                      side_view: bool = False) -> list[float]:
    """The photos' weights in a rigged turnaround's objective (``weights`` the defaults, first photo first): with no
    side view among the rigged photos (``side_view`` False), each shared-pose back view's (:data:`BACK_VIEW_DEG`)
    scaled by :data:`BACK_VIEW_WEIGHT`."""
    if side_view:
        return list(weights)
    return [w * BACK_VIEW_WEIGHT if k > 0 and same[k] and reg_report[k] is not None
            and reg_report[k]["turn_deg"] >= BACK_VIEW_DEG else w for k, w in enumerate(weights)]


def shared_pose_fit(views: list[tuple[Any, Any, Any]], body_model: Any, betas: np.ndarray,
                    quality: str = "standard", device: str = "cpu", height_m: float | None = None,
                    iterations: int | None = None, lr: float | None = None, couple: float | None = None,
                    free_shape: bool = True, first_weight: float = SHARED_FIRST_WEIGHT,
                    same_pose: list[bool] | None = None, swap_test: bool = True, anchor_first: bool = False,
                    turn_prior: float = 0.0, gravity: bool | None = None,
                    require_side: bool = True, height_agree: float | None = None,
                    quarter_turns: bool | None = None) -> JointFitResult:
    """Refit the photos with one shape and, for the photos that show the first photo's pose (a turnaround), ONE
    body pose; every photo (the first included) keeps its own orientation and translation under its fixed camera.

    Each other photo is first registered to the first photo's pose (:func:`register_to_pose`) with BlazePose's
    labels as given and with left and right exchanged (:func:`swapped_observation`; the detector swaps them on
    back views): the labelling that fits better is kept. A photo that sees the person from another side
    (:data:`OTHER_SIDE_DEG`) and whose registered keypoint objective stays within :data:`SAME_POSE_RATIO` × its
    own fit's + :data:`SAME_POSE_SLACK` shows the same pose (``same_pose`` overrides the test). Without a side view
    among them (:data:`SIDE_VIEW_DEG`) the photos go to :func:`joint_fit` (own poses, agreement, the first photo
    kept; relabelled photos warm-started from their registration). Otherwise the shared betas, the shared pose,
    the other photos' own poses (pulled towards the shared one by :func:`pose_agreement_loss`, weight ``couple``)
    and every photo's orientation and translation (the first's too unless ``anchor_first``) are optimised together
    on the sum of the photos' single-photo objectives (the first photo's weighted ``first_weight``). Returns the
    fits in ``views``' order (``metrics``: keypoint error and IoU with the shared body, ``same_pose``,
    ``labels_swapped``) and ``stats``. ``turn_prior`` (off by default): weight of :func:`turn_steps_loss`, the
    turnaround convention that the person turned by multiples of 90° between the shared-pose photos. ``gravity``
    (default :data:`SHARED_GRAVITY`):
    the shared-pose photos share one pelvis orientation seen through cameras turned about the vertical
    (:class:`GravityRig`) instead of a free orientation each (the first photo's included; not with
    ``anchor_first``). ``require_side``: share the pose only with a side view among the photos (else a back view
    alone shares it too). ``height_agree``: with ``gravity``, the weight of the cameras' heights above the floor
    agreeing (per m², default :data:`W_HEIGHT_AGREE`; one tripod height). ``quarter_turns``: the rig with its
    cameras held a multiple of 90° apart (default: when :func:`in_quarter_turns` holds for the shared-pose photos'
    registered turns, :data:`QUARTER_TURNS`, and ``gravity`` is not False); a back view alone then shares the pose
    too, except the arms (:data:`OWN_ARMS_WITHOUT_SIDE`: each photo keeps its own, tied by their agreement) and the
    legs (:data:`OWN_LEGS_WITHOUT_SIDE`: each photo's own, started at its own fit's, drawn together by a stiff one).
    ``stats["registration"]`` also holds each other photo's keypoint term per limb (:func:`limb_objectives`), own
    and registered to the first photo's pose."""
    import torch

    from .fit.core import FIT_TORCH_THREADS, QUALITY_PRESETS, _decide_standing, _finish, _loss_factory, minimise
    from .fit.face import fit_face
    from .fit.silhouette import make_target

    start, cpu0 = time.perf_counter(), time.process_time()
    settings = QUALITY_PRESETS[quality]
    iters = JOINT_ITERS.get(quality, 50) if iterations is None else int(iterations)
    size = settings.silhouette[-1][0]
    lr = JOINT_LR if lr is None else lr
    couple = W_AGREE if couple is None else float(couple)
    with torch_threads(FIT_TORCH_THREADS):
        shared = torch.tensor(np.asarray(betas, dtype=np.float32).reshape(-1))
        problems, swapped = [], []
        for k, (observation, photo, fit) in enumerate(views):
            prob, p = _problem(observation, photo, fit, body_model, quality, device, height_m)
            nb = prob.body.num_betas
            if shared.numel() != nb:
                shared = torch.nn.functional.pad(shared[:nb], (0, max(0, nb - shared.numel())))
            problems.append([prob, p])
            swapped.append(_problem(swapped_observation(observation), photo, fit, body_model, quality, device,
                                    height_m)[0] if swap_test and k > 0 else None)
        for prob, p in problems:
            p["betas"] = shared
            _decide_standing(prob, p)
        pose = problems[0][1]["body_pose"].detach().clone()
        same, labels_swapped, reg_report = [True], [False], [None]
        own_orients = [p["global_orient"].detach().clone() for _, p in problems]  # before any registration
        own_body_poses = [p["body_pose"].detach().clone() for _, p in problems]
        for k in range(1, len(problems)):
            prob, p = problems[k]
            own = _keypoint_objective(prob, p)
            own_limbs = limb_objectives(prob, p)
            q, value = register_to_pose(prob, p, pose)
            flipped = False
            if swapped[k] is not None:
                swapped[k].standing = prob.standing
                q2, value2 = register_to_pose(swapped[k], p, pose)
                if value2 < value:
                    flipped, q, value = True, q2, value2
                    problems[k][0] = swapped[k]
            turn = abs((facing_deg(prob, q) - facing_deg(*problems[0]) + 180.0) % 360.0 - 180.0)
            is_same = turn >= OTHER_SIDE_DEG and value <= SAME_POSE_RATIO * own + SAME_POSE_SLACK
            if same_pose is not None:
                is_same = bool(same_pose[k])
            same.append(is_same)
            labels_swapped.append(flipped)
            reg_report.append({"own": round(own, 4), "registered": round(value, 4), "turn_deg": round(turn, 1),
                               "own_limbs": {n: round(x, 4) for n, x in own_limbs.items()},
                               "registered_limbs": {n: round(x, 4) for n, x in
                                                    limb_objectives(problems[k][0], q).items()}})
            if is_same or flipped:  # the registered orientation (a swapped photo's own fit had the wrong labels)
                q["betas"] = shared
                problems[k][1] = q
        side = [k for k in range(1, len(problems)) if same[k] and SIDE_VIEW_DEG[0] <= reg_report[k]["turn_deg"]
                <= SIDE_VIEW_DEG[1]]
        if quarter_turns is None:  # held quarter turns when the registration found them (within the tolerance)
            quarter_turns = QUARTER_TURNS and gravity is not False and not anchor_first and in_quarter_turns(
                [reg_report[k]["turn_deg"] for k in range(1, len(problems)) if same[k]])
        # a turnaround in quarter turns is one pose even without a side view (front + back: the rig's one camera
        # height and pitch let the two opposite views tell the camera's pitch from the body's lean)
        if not side and require_side and not quarter_turns:  # own poses (agreement), the first photo's kept
            warm = list(views)
            for k in range(1, len(problems)):
                if labels_swapped[k]:  # relabelled: warm-started from its registration to the first photo's pose
                    warm[k] = (swapped_observation(views[k][0]), views[k][1],
                               _finish(problems[k][0], dict(problems[k][1]), start, 0))
            result = joint_fit(warm, body_model, betas, quality=quality, device=device, height_m=height_m,
                               iterations=iterations, lr=lr, couple=couple, free_shape=free_shape)
            result.stats.update(shared_pose_photos=1, registration=reg_report, first_photo_refitted=False,
                                quarter_turns=False)
            for k, fit in enumerate(result.fits):
                fit.metrics.update(same_pose=k == 0, labels_swapped=labels_swapped[k])
            result.stats["labels_swapped"] = int(sum(labels_swapped))
            return result
        for prob, p in problems:
            _decide_standing(prob, p)
        for k, (prob, p) in enumerate(problems):
            if same[k]:
                p["body_pose"] = pose
                prob.walker_priors = SHARED_POSE_WALKER_PRIORS or sum(same) < 2
        losses = [_loss_factory(prob, "pose", make_target(prob.mask, prob.bbox, size, open_edges=prob.open_edges),
                                tolerance=0.012 * size)
                  for prob, _ in problems]
        weights = [first_weight] + [1.0] * (len(problems) - 1)
        rig_on = (quarter_turns or (SHARED_GRAVITY if gravity is None else gravity)) and not anchor_first
        if rig_on:  # front + back: the back view says less
            weights = rig_photo_weights(same, reg_report, weights, side_view=bool(side))
        own_poses = [p["body_pose"] for k, (_, p) in enumerate(problems) if not same[k]]

        cams = [torch.tensor(prob.R, dtype=torch.float32) for prob, _ in problems]
        rig, rigged = None, [k for k in range(len(problems)) if same[k]]
        if rig_on:
            with torch.no_grad():
                pelvis = problems[0][0].body.rest(problems[0][0].shape(shared))[1][0].double().cpu().numpy()
            rig = GravityRig([problems[k][0].R for k in rigged], [problems[k][1]["global_orient"] for k in rigged],
                             [problems[k][1]["transl"] for k in rigged], pelvis, height_agree=height_agree,
                             quarter_turns=quarter_turns,
                             yaw_votes=([own_orients[k] for k in rigged],
                                        [GRAVITY_FIRST_WEIGHT] + [weights[k] for k in rigged[1:]])
                             if YAW_VOTE and not side and not any(labels_swapped) else None)
            weights[0] = GRAVITY_FIRST_WEIGHT

        own_limbs: dict[int, Any] = {}  # rigged photo → its own arms and legs (front + back)
        own_rows = (list(ARM_ROWS) if OWN_ARMS_WITHOUT_SIDE else []) + (list(LEG_ROWS) if OWN_LEGS_WITHOUT_SIDE else [])
        if rig is not None and own_rows and not side:
            shared_rows = torch.ones(pose.shape[0], 1, dtype=torch.bool)
            shared_rows[own_rows] = False
            own_limbs = {k: (pose if k == 0 or labels_swapped[k] else own_body_poses[k]).detach().clone()
                         for k in rigged}

        def total() -> Any:
            if rig is not None:
                for j, k in enumerate(rigged):
                    rig.apply(j, *problems[k])
                    if own_limbs:
                        problems[k][1]["body_pose"] = torch.where(shared_rows, pose, own_limbs[k])
            loss = sum(w * fn(p) for w, fn, (_, p) in zip(weights, losses, problems, strict=True)) / sum(weights)
            if rig is not None:
                loss = loss + rig.prior() + (turn_prior * rig.turn_steps_loss() if turn_prior > 0 else 0.0)
            elif turn_prior > 0:
                loss = loss + turn_prior * turn_steps_loss([p["global_orient"] for k, (_, p) in enumerate(problems)
                                                            if same[k]], [c for k, c in enumerate(cams) if same[k]])
            if couple > 0 and own_poses:
                loss = loss + couple * pose_agreement_loss(torch.stack([pose, *own_poses]))
            if own_limbs:
                own = torch.stack([problems[k][1]["body_pose"] for k in own_limbs])
                if OWN_ARMS_WITHOUT_SIDE and couple > 0:
                    loss = loss + couple * pose_agreement_loss(own[:, list(ARM_ROWS)])
                if OWN_LEGS_WITHOUT_SIDE:
                    loss = loss + W_AGREE_LEGS * pose_agreement_loss(own[:, list(LEG_ROWS)])
            return loss

        with torch.no_grad():
            before = float(total())
        leaves = ([shared] if free_shape else []) + ([] if anchor_first else [pose]) + own_poses
        leaves += [p[n] for k, (_, p) in enumerate(problems) for n in ("global_orient", "transl")
                   if (k > 0 or not anchor_first) and (rig is None or not same[k])]
        if rig is not None:
            leaves += rig.leaves()
        leaves += list(own_limbs.values())
        minimise(leaves, total, iters, lr)
        with torch.no_grad():
            after = float(total())
            final = problems[0][0].shape(shared).detach().clone()
            leg_gap = None
            if own_limbs and OWN_LEGS_WITHOUT_SIDE:  # largest axis-angle difference of two photos' legs (radians)
                legs = torch.stack([problems[k][1]["body_pose"] for k in own_limbs])[:, list(LEG_ROWS)]
                leg_gap = round(float((legs[:, None] - legs[None]).norm(dim=-1).max()), 4)
        reregistered = False
        if rig is not None:
            for j, k in enumerate(rigged):
                rig.settle(j, *problems[k])
            reregistered = REFINE_FIRST_ITERS > 0 and bool(side or REFINE_FIRST_WITHOUT_SIDE)
            if reregistered:  # the first photo's orientation and translation on its own objective
                p0 = problems[0][1]
                minimise([p0["global_orient"], p0["transl"]], lambda: losses[0](p0), REFINE_FIRST_ITERS, lr)
        fits = []
        head_turn = torch.zeros(())  # the first photo's turn of the head onto its face, shared by its pose's photos
        for k, ((prob, p), (observation, _, own)) in enumerate(zip(problems, views, strict=True)):
            p = dict(p)
            p["betas"] = final
            p["body_pose"] = p["body_pose"].detach().clone()
            face: dict[str, float] = {}
            if k == 0 or not same[k]:
                before_turn = p["body_pose"].clone()
                face = fit_face(prob, p, getattr(observation, "face", None))
                if k == 0:
                    head_turn = p["body_pose"] - before_turn
            else:
                p["body_pose"] = p["body_pose"] + head_turn
            done = _finish(prob, p, start, iters)
            done.metrics = {**dict(getattr(own, "metrics", {}) or {}), **done.metrics, "joint_fit": True,
                            "same_pose": same[k], "labels_swapped": labels_swapped[k], "face_point_error_px": face}
            done.warnings = list(getattr(own, "warnings", []))
            fits.append(done)
    stats = {"iterations": iters, "loss_before": round(before, 4), "loss_after": round(after, 4),
             "shared_pose_photos": int(sum(same)), "labels_swapped": int(sum(labels_swapped)),
             "first_photo_refitted": not anchor_first,
             "first_photo_reregistered": reregistered,
             "own_arms": bool(own_limbs) and OWN_ARMS_WITHOUT_SIDE,
             "own_legs": bool(own_limbs) and OWN_LEGS_WITHOUT_SIDE,
             "leg_gap_rad": leg_gap,
             "walker_priors": [bool(prob.walker_priors) for prob, _ in problems],
             "registration": reg_report,
             "shared_gravity": None if rig is None else rig.report(),
             "quarter_turns": bool(rig is not None and rig.quarter_turns),
             "time_s": round(time.perf_counter() - start, 3), "cpu_s": round(time.process_time() - cpu0, 3)}
    return JointFitResult(fits, final.double().numpy(), stats)
