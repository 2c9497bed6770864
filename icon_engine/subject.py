"""Several photos (or video frames) of one person → one avatar: inputs, the joint fit, fusion in the rest pose.

Frames and units: every photo has its own processing pixels and its own camera (OpenCV, bundle world); the body
shape (betas) is shared, the pose, translation and camera are per photo; the avatar is built in the canonical
(T-pose) space of the shared shape (:mod:`icon_engine.avatar`) and posed into the first photo for the bundle.

Steps (docs/multiview.md):

1. **Inputs** (:func:`gather_inputs`): photos and folders (photos and videos inside), and videos, whose
   :func:`pick_video_frames` keeps ``frames`` sharp frames spread over the clip (the sharpest per time bin,
   sharpness = variance of the Laplacian of the grey frame) as PNG files in a work folder.
2. **Joint fit** (:func:`fit_subject`): each photo is detected and fitted on its own; photos without a person or
   with a poor fit are dropped with a warning naming them; the shape is the fit-quality-weighted median of the
   photos' betas; photos whose stature disagrees with it beyond :data:`STATURE_TOLERANCE` are another person
   (dropped with a warning when they are few, an error naming them when they are many); every photo's body is
   then re-posed with the shared shape, its pelvis kept where the photo's own fit put it, and finally the photos
   are fitted together (:func:`icon_engine.joint_fit.shared_pose_fit`): a turnaround with ONE body pose (the
   first photo's refitted too), other photos with their own poses; per photo the joint fit's keypoint error and
   silhouette IoU are reported.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .bundle.writer import bundle_folder, check_target, folder_safe
from .errors import EngineError
from .fit.stature import stature_of
from .progress import NoProgress

#: Video files a subject may include (their frames become photos).
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v"})
#: Most photos (frames included) one subject may have.
MAX_INPUTS = 20
#: Default number of frames taken from each video.
DEFAULT_FRAMES = 12
#: Frames examined per kept frame when picking the sharp ones, for long clips (shorter ones: every frame). The
#: clip is decoded once, at reduced size.
CANDIDATES_PER_FRAME = 50
#: Longest side of the frames measured for sharpness (pixels).
SHARPNESS_SIDE = 320
#: A photo is dropped when its fit explains the person this badly: keypoint error (px at 1000 px image height) ...
MAX_KEYPOINT_ERROR = 40.0
#: ... or silhouette IoU of the naked fitted body against the clothed person mask.
MIN_BODY_IOU = 0.45
#: ``fit.focal_source`` of a photo without EXIF fitted at the first usable photo's framing-prior focal (same 35 mm
#: equivalent): the photos of one subject are taken as shot with one camera, so that the joint fit does not see
#: the few per cent by which each photo's own framing prior would differ as a change of size or pose.
FIRST_PHOTO_FRAMING = "framing prior (first photo)"
#: Whether photos without EXIF share the first photo's framing focal (False: each its own; for A/B runs).
SHARE_FRAMING_FOCAL = True
#: Photos whose fitted stature differs from the subject's by more than this fraction show another person.
STATURE_TOLERANCE = 0.08


@dataclass
class SubjectInput:
    """One image of the subject: ``path`` of an image file (a photo, or a frame written from ``source``),
    ``label`` its name in messages (``clip.mp4@2.40s`` for a frame), ``source`` the file the user named."""

    path: Path
    label: str
    source: Path


@dataclass
class SubjectView:
    """One usable image: the loaded ``photo``, the person ``observation``, its ``fit`` (shared shape once
    :func:`fit_subject` is done) and ``own_fit`` (the photo's own shape), ``weight`` its fit quality."""

    input: SubjectInput
    photo: Any
    observation: Any
    fit: Any
    own_fit: Any
    weight: float = 1.0
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def gather_inputs(paths: list[str | Path], frames: int = DEFAULT_FRAMES, work_dir: str | Path | None = None
                  ) -> list[SubjectInput]:
    """Photos, folders and videos → the subject's images, in the order given (a folder's files sorted by name).

    Videos contribute ``frames`` frames each (:func:`pick_video_frames`, written as PNG under ``work_dir``, by default
    a new temporary folder the caller removes; none is made without a video). Raises ``EngineError`` for a missing
    path, an empty folder, a video that cannot be decoded, or more than :data:`MAX_INPUTS` images."""
    from .image_io import IMAGE_SUFFIXES

    if frames < 1:
        raise EngineError("bad_option", f"--frames {frames} must be at least 1.", "Use --frames 12 (the default).")
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                           and (p.suffix.lower() in IMAGE_SUFFIXES or _is_video(p)))
            if not found:
                raise EngineError("photo_missing", f"The folder {path} contains no photos or videos.",
                                  "Put the person's photos (or a video) in it, or name the files themselves.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise EngineError("photo_missing", f"{path} does not exist.", "Check the path and file name.")
    work = Path(work_dir) if work_dir is not None else None  # a temporary folder only when a video needs one
    made: Path | None = None  # the temporary folder made here: removed again if the inputs are refused
    inputs: list[SubjectInput] = []
    try:
        for path in files:
            if _is_video(path):
                if work is None:
                    work = made = Path(tempfile.mkdtemp(prefix="icon-subject-"))
                inputs.extend(pick_video_frames(path, frames, work))
            else:
                inputs.append(SubjectInput(path, path.name, path))
        if len(inputs) > MAX_INPUTS:
            raise EngineError("bad_option", f"{len(inputs)} images for one person; at most {MAX_INPUTS} are used.",
                              "Choose fewer photos, or fewer --frames per video.")
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise
    return inputs


def sharpness(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a grey image (H, W) in [0, 1]: high for crisp frames, low for
    motion blur or defocus."""
    g = np.asarray(grey, dtype=np.float64)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def _grey_small(rgb: np.ndarray) -> np.ndarray:
    from .image_io import LUMA_WEIGHTS

    step = max(1, int(np.ceil(max(rgb.shape[:2]) / SHARPNESS_SIDE)))
    small = rgb[::step, ::step].astype(np.float64) / 255.0
    return small @ LUMA_WEIGHTS


def pick_video_frames(video: Path, count: int, work_dir: Path) -> list[SubjectInput]:
    """``count`` sharp frames spread over ``video``, written as PNG files under ``work_dir``.

    The clip is streamed once (rotation metadata honoured, frames decoded at processing size by
    :mod:`icon_engine.motion.video`); every frame (at most ``CANDIDATES_PER_FRAME × count`` evenly spaced ones of
    a long clip) is scored for sharpness and the sharpest of each time bin is kept."""
    from PIL import Image

    from .motion.video import iter_frames, probe_video

    info = probe_video(video)
    duration = info.frame_count / info.fps if info.frame_count else 0.0
    rate = None  # every frame of a short clip is a candidate
    if duration > 0 and info.frame_count > CANDIDATES_PER_FRAME * count:
        rate = min(info.fps, CANDIDATES_PER_FRAME * count / duration)
    kept: list[tuple[float, float, np.ndarray]] = []  # (time, score, rgb): the best candidate per bin so far
    bins = max(count, 1)
    for frame in iter_frames(info, fps=rate):
        score = sharpness(_grey_small(frame.rgb))
        b = min(bins - 1, int(frame.time / duration * bins)) if duration > 0 else len(kept)
        while len(kept) <= b:
            kept.append((np.nan, -1.0, np.zeros(0)))
        if score > kept[b][1]:
            kept[b] = (frame.time, score, frame.rgb)
    frames = [k for k in kept if k[2].size]
    if not frames:
        raise EngineError("bad_video", f"{video.name} has no decodable frame.", "Re-export it as MP4 (H.264).")
    out_dir = Path(work_dir) / (folder_safe(video.stem) or "video")
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = []
    for t, _, rgb in frames[:count]:
        path = out_dir / f"{out_dir.name}_{t:08.3f}s.png"
        Image.fromarray(rgb).save(path)
        inputs.append(SubjectInput(path, f"{video.name}@{t:.2f}s", video))
    return inputs


# ----------------------------------------------------------------------------------------------------------------
# The joint fit


def fit_quality(fit: Any, observation: Any) -> float:
    """Weight in (0, 1] of a photo's shape estimate: its silhouette agreement times its keypoint agreement."""
    metrics = getattr(fit, "metrics", {}) or {}
    iou = float(metrics.get("silhouette_iou") or 0.7)
    err = float(metrics.get("keypoint_error_px") or 10.0)
    height = float(np.asarray(observation.mask).shape[0])
    err_norm = err * 1000.0 / max(height, 1.0)
    return max(1e-3, iou) * float(np.exp(-err_norm / MAX_KEYPOINT_ERROR))


def shared_betas(betas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted median of each shape coefficient (rows = photos): robust to one odd photo."""
    betas = np.asarray(betas, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    out = np.zeros(betas.shape[1])
    for k in range(betas.shape[1]):
        order = np.argsort(betas[:, k])
        cum = np.cumsum(w[order])
        out[k] = betas[order[np.searchsorted(cum, 0.5 * cum[-1])], k]
    return out


def repose_with_shape(fit: Any, body_model: Any, betas: np.ndarray) -> Any:
    """``fit`` with the shared shape ``betas``: same pose and camera, the body re-posed so that its pelvis stays
    where the photo's own fit put it (bundle world, metres)."""
    import torch

    b = np.asarray(betas, dtype=np.float32).reshape(1, -1)
    pose = np.asarray(fit.full_pose, dtype=np.float32).reshape(1, 55, 3)
    kw = {"betas": torch.as_tensor(b), "global_orient": torch.as_tensor(pose[:, 0]),
          "body_pose": torch.as_tensor(pose[:, 1:22].reshape(1, -1)),
          "jaw_pose": torch.as_tensor(pose[:, 22]), "leye_pose": torch.as_tensor(pose[:, 23]),
          "reye_pose": torch.as_tensor(pose[:, 24]),
          "left_hand_pose": torch.as_tensor(pose[:, 25:40].reshape(1, -1)),
          "right_hand_pose": torch.as_tensor(pose[:, 40:55].reshape(1, -1)),
          "expression": torch.as_tensor(np.asarray(fit.expression, dtype=np.float32).reshape(1, -1)),
          "transl": torch.as_tensor(np.asarray(fit.transl, dtype=np.float32).reshape(1, 3))}
    with torch.no_grad():
        out = body_model(**{k: v.to(body_model.device) for k, v in kw.items()})
    joints = out.joints[0].cpu().numpy().astype(np.float64)
    shift = np.asarray(fit.joints, dtype=np.float64)[0] - joints[0]
    vertices = out.vertices[0].cpu().numpy().astype(np.float64) + shift
    return replace(fit, betas=np.asarray(betas, dtype=np.float64).reshape(-1), vertices=vertices,
                   joints=joints + shift, transl=np.asarray(fit.transl, dtype=np.float64).reshape(3) + shift)


@dataclass
class _Detected:
    """One input while the photos are fitted: its report ``entry``, ``photo``, person ``observation`` (None when
    skipped: ``skip`` is the warning) and, once started, its fit's ``job``."""

    item: SubjectInput
    entry: dict[str, Any]
    photo: Any
    observation: Any
    skip: str | None = None
    job: Future | None = None


def _fits_well(fit: Any, observation: Any) -> bool:
    """Whether a photo's own fit explains the person: keypoint error (px at 1000 px image height) within
    :data:`MAX_KEYPOINT_ERROR` and silhouette IoU at least :data:`MIN_BODY_IOU`."""
    metrics = getattr(fit, "metrics", {}) or {}
    height = float(np.asarray(observation.mask).shape[0])
    kp_px = float(metrics.get("keypoint_error_px") or 0.0)
    iou = float(metrics.get("silhouette_iou") or 1.0)
    return not (kp_px * 1000.0 / max(height, 1.0) > MAX_KEYPOINT_ERROR or iou < MIN_BODY_IOU)


def _fit_photo(observation: Any, body_model: Any, photo: Any, quality: str, device: str, height_m: float | None,
               focal: float | None) -> Any:
    """One photo's own body fit (:func:`icon_engine.fit.fit_body`); ``focal`` (processing px): the first photo's
    framing focal, or None for the photo's EXIF or its own prior. Thread-safe: the body model only runs forward
    passes, the fit's tensors and random generators are its own."""
    from .fit import fit_body

    fit = fit_body(observation, body_model, photo, quality=quality, device=device, height_m=height_m,
                   focal_px=focal)
    if focal is not None:
        fit.metrics["focal_source"] = FIRST_PHOTO_FRAMING
    return fit


def _first_framing(earlier: list[_Detected], wait: bool) -> tuple[bool, float | None]:
    """(known, focal) for a photo after ``earlier`` (in input order): the 35 mm-equivalent framing-prior focal of
    the first of them fitted well at its framing prior (None when none was), as one photo at a time would have
    found it. Not known while one of them is not fitted yet (without ``wait``: not started or still running); a
    failed fit raises its error here."""
    from .camera import focal_px_to_35mm

    for d in earlier:
        if d.observation is None:
            continue
        if d.job is None or (not wait and not d.job.done()):
            return False, None
        fit = d.job.result()
        if _fits_well(fit, d.observation) and (getattr(fit, "metrics", {}) or {}).get("focal_source") == \
                "framing prior":
            return True, focal_px_to_35mm(float(fit.camera.K[0, 0]), *d.photo.size)
    return True, None


def _start_fits(photos: list[_Detected], submit: Any, body_model: Any, quality: str, device: str,
                height_m: float | None, wait: bool) -> None:
    """Start, in input order, the fits of the detected ``photos`` whose focal length is settled: a photo with EXIF
    or every photo without :data:`SHARE_FRAMING_FOCAL` at once, one without EXIF once the first photo's framing
    focal is known (:func:`_first_framing`; ``wait``: waiting for the earlier fits). ``submit``:
    :func:`icon_engine.threads.task_pool`'s."""
    from .camera import focal_from_35mm

    for k, d in enumerate(photos):
        if d.observation is None or d.job is not None:
            continue
        focal = None  # one camera for the set: a photo without EXIF takes the first photo's framing focal
        if SHARE_FRAMING_FOCAL and not d.photo.focal_35mm:
            known, framing_35mm = _first_framing(photos[:k], wait)
            if not known:
                return
            if framing_35mm is not None:
                focal = focal_from_35mm(framing_35mm, *d.photo.size)
        d.job = submit(_fit_photo, d.observation, body_model, d.photo, quality, device, height_m, focal)
        if d.job.done():  # run inline (one worker), or failed at once: its error now, as one photo at a time
            d.job.result()


def _side_by_side_workers(device: str) -> int | None:
    """Workers for the photos' fits and surfaces side by side: None (:func:`icon_engine.threads.cpu_workers`) on the
    CPU; 1 (one at a time, as before wave 32) on an accelerator, where they were not measured."""
    from .geometry.device import is_cpu
    from .options import resolve_device

    return None if is_cpu(resolve_device(device) if device == "auto" else device) else 1


def _raise_first_fit_error(photos: list[_Detected]) -> None:
    """After an error while detecting (or a cancel): drop the fits not yet started, wait for the running ones and
    raise the first one's error in input order, which one photo at a time would have met first."""
    for d in photos:
        if d.job is not None:
            d.job.cancel()
    for d in photos:
        if d.job is not None and not d.job.cancelled() and d.job.exception() is not None:
            raise d.job.exception() from None


def _fit_photos(inputs: list[SubjectInput], body_model: Any, quality: str, device: str, person_index: int,
                progress: Any, height_m: float | None) -> tuple[list[SubjectView], list[str], dict[str, Any]]:
    """Detect and fit every image on its own (:func:`fit_subject`'s first step): (the usable views in input order,
    warnings, report with one entry per input).

    The detections run one after the other on this thread (MediaPipe's graphs are shared); each photo's fit runs
    on :func:`icon_engine.threads.task_pool`'s threads as soon as its focal length is settled (:func:`_start_fits`:
    a photo without EXIF waits for the first photo's framing focal), beside the next detections and the other
    fits (on the CPU; one at a time on an accelerator: :func:`_side_by_side_workers`): on 2 cores the last three
    of 4 photos two at a time. The fits' small torch ops hold the GIL most of the time, so two side by side take
    ~1.7× as long each (wave 32, the bench's 4 views at standard on a quiet 2-core machine: detections and own fits
    ~11 → ~10 s; the joint fit after them, ~5.5 s, stays one thread). A fit is one torch thread
    (``fit.core.FIT_TORCH_THREADS``, the caller's count otherwise: ``threads.task_pool``) and depends only on its
    photo and focal, so the fits, and everything taken from them here in input order (warnings, statuses, the
    error raised first), are those of one photo at a time; with one worker (``ICON_ENGINE_WORKERS=1``) they run
    inline, in that order. ``progress`` (called on this thread only) names each photo as its detection starts;
    while the fits finish, the last message is repeated before waiting for each one, which checks Cancel."""
    from .image_io import load_photo
    from .person import detect_person, mirror_pass_for
    from .threads import task_pool

    warnings: list[str] = []
    report: dict[str, Any] = {"inputs": []}
    views: list[SubjectView] = []
    photos: list[_Detected] = []  # every input in order: its person, or why it was skipped
    with task_pool(_side_by_side_workers(device), name="icon-fit") as submit:
        try:
            for i, item in enumerate(inputs):
                entry: dict[str, Any] = {"label": item.label, "source": str(item.source)}
                report["inputs"].append(entry)
                if progress is not None:
                    progress(i, len(inputs), f"Fitting {item.label}")
                photo = load_photo(item.path)
                try:  # MediaPipe's graphs are shared: one detection at a time, here
                    observation = detect_person(photo, person_index=person_index,
                                                mirror_pass=mirror_pass_for(quality))
                except EngineError as err:
                    if err.code not in ("no_person", "person_index"):
                        raise
                    skip = f"{item.label}: skipped, {err.message[0].lower()}{err.message[1:]}"
                    photos.append(_Detected(item, entry, photo, None, skip=skip))
                    continue
                photos.append(_Detected(item, entry, photo, observation))
                _start_fits(photos, submit, body_model, quality, device, height_m, wait=False)
            _start_fits(photos, submit, body_model, quality, device, height_m, wait=True)
        except BaseException:
            _raise_first_fit_error(photos)  # the serial loop met an earlier photo's failed fit first
            raise
        for d in photos:  # in input order: the same warnings, statuses and first error as one photo at a time
            if d.skip is not None:
                warnings.append(d.skip)
                d.entry["status"] = "no_person"
                continue
            if progress is not None and not d.job.done():  # Cancel is honoured between the fits, as before
                progress(len(inputs) - 1, len(inputs), f"Fitting {inputs[-1].label}")  # the last message again
            fit = d.job.result()
            weight = fit_quality(fit, d.observation)
            metrics = dict(getattr(fit, "metrics", {}) or {})
            d.entry.update(status="used", keypoint_error_px=metrics.get("keypoint_error_px"),
                           silhouette_iou=metrics.get("silhouette_iou"), weight=weight)
            if not _fits_well(fit, d.observation):
                warnings.append(f"{d.item.label}: dropped, the body fit does not match the person (keypoint error "
                                f"{float(metrics.get('keypoint_error_px') or 0.0):.1f} px, silhouette IoU "
                                f"{float(metrics.get('silhouette_iou') or 1.0):.2f}); the person may be occluded.")
                d.entry["status"] = "poor_fit"
                continue
            views.append(SubjectView(d.item, d.photo, d.observation, fit, fit, weight,
                                     list(getattr(fit, "warnings", []))))
    return views, warnings, report


def fit_subject(inputs: list[SubjectInput], body_model: Any, quality: str = "standard", device: str = "cpu",
                person_index: int = 0, progress: Any = None, height_m: float | None = None,
                joint: bool = True) -> tuple[list[SubjectView], list[str], dict[str, Any]]:
    """Detect and fit every image, drop the unusable ones, share one shape; with ``joint`` (and several photos)
    the shape and every photo's pose are then optimised together (:func:`icon_engine.joint_fit.shared_pose_fit`).

    Returns (views in input order, warnings, report) where ``report`` holds per-input status, statures and the
    shared betas. Raises ``EngineError("no_person")`` when no image is usable and ``EngineError("bad_input")``
    when the images show different people (``subject_mismatch``)."""
    views, warnings, report = _fit_photos(inputs, body_model, quality, device, person_index, progress, height_m)
    if not views:
        raise EngineError("no_person", "None of the images shows a person the body could be fitted to.",
                          "Use photos where one person is clearly visible from head to feet.")
    betas = shared_betas(np.stack([np.asarray(v.own_fit.betas).reshape(-1) for v in views]),
                         np.array([v.weight for v in views]))
    views, statures = _same_person(views, body_model, betas, warnings, report)
    if len(views) < len(statures):  # outliers were dropped: the shape from the photos that remain
        betas = shared_betas(np.stack([np.asarray(v.own_fit.betas).reshape(-1) for v in views]),
                             np.array([v.weight for v in views]))
    if height_m is not None:  # the known stature holds for the shared shape too (each photo's fit had it)
        import torch

        from .fit.stature import StatureModel

        betas = StatureModel.from_body_model(body_model).project(torch.as_tensor(betas), float(height_m))
        betas = betas.detach().cpu().numpy().astype(np.float64)
    for v in views:
        v.fit = repose_with_shape(v.own_fit, body_model, betas)
    if joint and len(views) > 1:
        if progress is not None:
            progress(len(inputs) - 1, len(inputs), "Fitting all photos together")
        views, betas = _joint_refit(views, body_model, betas, quality, device, height_m, warnings, report)
    for v in views:
        drift = np.linalg.norm(np.asarray(v.fit.vertices) - np.asarray(v.own_fit.vertices), axis=1)
        entry = next(e for e in report["inputs"] if e["label"] == v.input.label)
        entry["shape_drift_cm"] = {"mean": float(drift.mean() * 100), "max": float(drift.max() * 100)}
    report["betas"] = betas.tolist()
    report["stature_m"] = stature_of(body_model, betas)
    return views, warnings, report


def _joint_refit(views: list[SubjectView], body_model: Any, betas: np.ndarray, quality: str, device: str,
                 height_m: float | None, warnings: list[str], report: dict[str, Any]
                 ) -> tuple[list[SubjectView], np.ndarray]:
    """Refit the photos jointly (one shape); record per photo the joint fit's keypoint error and silhouette IoU
    (``report["inputs"]``); drop (with a warning) a photo the shared shape cannot fit, unless it is the last."""
    from .joint_fit import shared_pose_fit

    result = shared_pose_fit([(v.observation, v.photo, v.fit) for v in views], body_model, betas, quality=quality,
                             device=device, height_m=height_m)
    report["joint_fit"] = result.stats
    kept = []
    for v, fit in zip(views, result.fits, strict=True):
        entry = next(e for e in report["inputs"] if e["label"] == v.input.label)
        entry["own_fit"] = {"keypoint_error_px": entry.get("keypoint_error_px"),
                            "silhouette_iou": entry.get("silhouette_iou")}
        kp_px = float(fit.metrics.get("keypoint_error_px") or 0.0)
        iou = float(fit.metrics.get("silhouette_iou") or 0.0)
        fit.metrics["stature_m"] = round(stature_of(body_model, result.betas), 4)
        entry.update(keypoint_error_px=round(kp_px, 3), silhouette_iou=round(iou, 4),
                     same_pose=bool(fit.metrics.get("same_pose")),
                     labels_swapped=bool(fit.metrics.get("labels_swapped")))
        height = float(np.asarray(v.observation.mask).shape[0])
        if kp_px * 1000.0 / max(height, 1.0) > MAX_KEYPOINT_ERROR or iou < MIN_BODY_IOU:
            warnings.append(f"{v.input.label}: dropped, the shared body shape does not fit it (keypoint error "
                            f"{kp_px:.1f} px, silhouette IoU {iou:.2f}).")
            entry["status"] = "poor_joint_fit"
            continue
        v.fit = fit
        kept.append(v)
    if not kept:  # nothing fits the shared shape: keep the best photo with its own reposed fit
        best = max(views, key=lambda v: v.weight)
        next(e for e in report["inputs"] if e["label"] == best.input.label)["status"] = "used"
        return [best], betas
    return kept, np.asarray(result.betas, dtype=np.float64)


def _same_person(views: list[SubjectView], body_model: Any, betas: np.ndarray, warnings: list[str],
                 report: dict[str, Any]) -> tuple[list[SubjectView], dict[str, float]]:
    """Drop the photos whose stature disagrees with the shared shape (another person), or refuse the subject
    when at least half of the photos disagree."""
    reference = stature_of(body_model, betas)
    statures = {v.input.label: stature_of(body_model, np.asarray(v.own_fit.betas).reshape(-1)) for v in views}
    odd = [label for label, s in statures.items() if abs(s - reference) > STATURE_TOLERANCE * reference]
    for entry in report["inputs"]:
        if entry["label"] in statures:
            entry["stature_m"] = statures[entry["label"]]
    if not odd:
        return views, statures
    if 2 * len(odd) >= len(views):
        listing = ", ".join(f"{label} ({statures[label]:.2f} m)" for label in statures)
        raise EngineError("subject_mismatch", f"These images seem to show different people: {listing}.",
                          "Give photos of one person only (or leave out --subject to reconstruct each photo on "
                          "its own).")
    for label in odd:
        warnings.append(f"{label}: dropped, it seems to show another person (stature {statures[label]:.2f} m, "
                        f"the others {reference:.2f} m).")
        next(e for e in report["inputs"] if e["label"] == label)["status"] = "other_person"
    return [v for v in views if v.input.label not in odd], statures


# ----------------------------------------------------------------------------------------------------------------
# The whole run


def reconstruct_subject(inputs: list[str | Path], out_dir: str | Path, options: Any = None, *,
                        frames: int = DEFAULT_FRAMES, progress: Any = None, cancel: Any = None,
                        bundle_name: str | None = None, body_model: Any | None = None) -> Path:
    """Photos (and videos, folders) of one person → one bundle ``out_dir/<first input's stem>``.

    Same stages and protocol as :func:`icon_engine.pipeline.reconstruct` (progress messages name the photo being
    worked on); the bundle's posed mesh, camera, photo and mask are the first usable photo's, and
    ``bundle.json["subject"]`` lists every input with its status, pose, translation, camera and fit metrics."""
    from .bundle import write_bundle
    from .options import ReconstructOptions, resolve_device
    from .pipeline import assemble_bundle, build_canonical_avatar, load_body
    from .progress import ProgressReporter

    options = options or ReconstructOptions()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise EngineError("usage", "No photo given.", "Name the person's photos, folders or videos.")
    target = bundle_folder(out_dir, bundle_name, paths[0])
    check_target(target)  # before any work: a folder or file that is not a bundle is never replaced
    name = target.name
    reporter = ProgressReporter(name, progress, cancel)
    device = resolve_device(options.device)

    reporter.stage("load", "Reading the photos")
    with tempfile.TemporaryDirectory(prefix="icon-subject-") as work:
        items = gather_inputs(paths, frames=frames, work_dir=work)

        reporter.stage("body_model", "Loading the body model")
        if body_model is None:
            body_model = load_body(options, device)

        reporter.stage("fit", "Fitting the body to every photo")

        def fit_progress(i: int, n: int, text: str) -> None:
            reporter.update(i / max(n, 1), f"{text} ({i + 1}/{n})")

        views, warnings, report = fit_subject(items, body_model, quality=options.quality, device=device,
                                              person_index=options.person_index, progress=fit_progress,
                                              height_m=options.height_m)

        reporter.stage("surface", "Building the clothed surfaces")
        surfaces = clothed_surfaces(views, options, device, reporter, body_model)
        for view, surface in zip(views, surfaces, strict=True):
            warnings += [f"{view.input.label}: {w}" for w in surface.warnings]

        reporter.stage("rig", "Fusing the photos into one avatar")
        first = views[0]
        avatar = build_canonical_avatar(surfaces, [v.fit for v in views], [v.observation.mask for v in views],
                                        options, reporter, body_model)
        warnings += list(avatar.warnings)
        surface = replace(surfaces[0], vertices=avatar.posed_vertices, faces=avatar.faces,
                          method=f"{surfaces[0].method}+fused-{len(views)}")

        texture = bake_subject_texture(avatar, views, options, reporter)

        reporter.stage("bundle", "Writing the bundle")
        content = assemble_bundle(
            image=first.photo, observation=first.observation, fit=first.fit, surface=surface, texture=texture,
            rig=avatar.rig, body_model=body_model, options=options, device=device, warnings=warnings,
            timings=reporter.timings,
        )  # fmt: skip
        content.metadata["subject"] = subject_metadata(views, report)
        attach_photos(content, views)  # the other photos, for their cameras' backgrounds in Blender
        if texture is not None:  # which photos coloured the avatar, and each one's exposure gain
            content.metadata["subject"]["texture"] = {
                k: texture.stats[k] for k in ("photos", "exposure_gain_offset", "seen_vertex_fraction_per_photo")
                if k in texture.stats}
        from . import correctives  # pose correctives from ≥ 4 different poses (issue 13; docs/correctives.md)

        if len(views) >= correctives.MIN_POSES:
            reporter.update(0.1, "Fitting pose correctives")
        correctives.attach_correctives(content, avatar.rig, [v.fit for v in views], surfaces)
        reporter.update(0.5, "Writing files")
        path = write_bundle(target, content)
    reporter.update(1.0, "Done")
    reporter.finish()
    return path


def clothed_surfaces(views: list[SubjectView], options: Any, device: str, reporter: Any, body_model: Any) -> list[Any]:
    """Every view's clothed surface (:func:`icon_engine.pipeline.build_clothed_surface`), in order.

    The checkpoint-free surface runs two photos side by side (:func:`icon_engine.threads.task_pool`, one per
    :func:`~icon_engine.threads.cpu_workers`): its occupancy grid splits over the cores already, but its
    silhouette fields, marching cubes, smoothing and decimation use one (wave 32, the bench's 4 views at standard
    on a quiet 2-core machine: the surface stage 7.8 → 6.5 s). Each surface depends on its own photo and fit only
    (the decimation's library, whose state is global, runs one call at a time: ``geometry.decimate``), so they are
    those of one at a time; ``reporter`` names each photo as it starts (and so honours Cancel between them), and the
    first failed surface's error in input order is raised. ICON's learned surface (``options.icon_data``: networks
    already on every core, and a soft-silhouette cache not made for threads) and an accelerator's ``device``
    (:func:`_side_by_side_workers`) stay one at a time."""
    from .pipeline import build_clothed_surface
    from .threads import cpu_workers, task_pool

    workers = 1 if options.icon_data is not None else (_side_by_side_workers(device) or cpu_workers())
    jobs = []
    with task_pool(workers, name="icon-surface") as submit:
        for i, view in enumerate(views):
            if i >= workers:  # one surface per worker: the progress names each photo as it starts
                jobs[i - workers].result()  # its error now, before the next photo starts
            reporter.update(i / len(views), f"Clothed surface of {view.input.label} ({i + 1}/{len(views)})")
            jobs.append(submit(build_clothed_surface, view.fit, view.observation, view.photo, options, device,
                               NoProgress(), body_model))
        return [job.result() for job in jobs]


def avatar_in_photo(avatar: Any, fit: Any) -> np.ndarray:
    """(N, 3) the avatar's vertices posed as in another photo of the subject (its ``fit``: pose (55, 3) and
    translation, same shape), in that photo's bundle world: LBS of the rest mesh, as the bundle poses it."""
    from .bundle.skeleton import PARENTS, skin_vertices
    from .rig import pose_relative_to_rest

    rig = avatar.rig
    pose = pose_relative_to_rest(np.asarray(fit.full_pose, dtype=np.float64).reshape(55, 3), rig.rest_pose_angles)
    return skin_vertices(rig.rest_vertices, rig.skin_weights, rig.rest_joints, np.asarray(PARENTS), pose,
                         np.asarray(fit.transl, dtype=np.float64).reshape(3))


def bake_subject_texture(avatar: Any, views: list[SubjectView], options: Any, reporter: Any) -> Any:
    """The avatar's texture from every photo (:func:`icon_engine.texture.bake_texture` with ``more_views``): each
    texel from the photos that see it best, exposures equalised to the first photo's (None without texture)."""
    if not options.texture:
        return None
    from .options import resolve_device
    from .texture import PhotoView, bake_texture, parts_from_skin_weights

    reporter.stage("texture", f"Baking the texture from {len(views)} photo{'s' if len(views) > 1 else ''}")
    first = views[0]
    more = []
    for v in views[1:]:
        more.append(PhotoView(avatar_in_photo(avatar, v.fit), v.photo.rgb, v.observation.mask, v.fit.camera))
    return bake_texture(avatar.posed_vertices, avatar.faces, first.photo.rgb, first.observation.mask,
                        first.fit.camera, size=options.resolved_texture_size, progress=reporter,
                        vertex_parts=parts_from_skin_weights(avatar.rig.skin_weights), more_views=more,
                        rest_vertices=avatar.rig.rest_vertices, device=resolve_device(options.device),
                        atlas=options.resolved_texture_atlas,
                        photo_face=getattr(first.observation, "face", None))  # one photo: face mirrored


#: Longest side (pixels) of the other photos stored in the bundle for the add-on's camera backgrounds.
PHOTO_SIDE = 1024
#: Their JPEG quality.
PHOTO_QUALITY = 88


def photo_jpeg(rgb: np.ndarray, side: int = PHOTO_SIDE, quality: int = PHOTO_QUALITY) -> bytes:
    """``rgb`` (H, W, 3) uint8, upright, as JPEG bytes, downscaled (Lanczos) so that its longest side is at most
    ``side`` pixels (never upscaled)."""
    import io

    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    scale = side / max(img.size)
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def attach_photos(content: Any, views: list[SubjectView]) -> None:
    """Store every used photo after the first (the bundle's own ``photo``) as ``photo_<i>.jpg`` (i: its index in
    ``subject.photos``; :func:`photo_jpeg`), named by its entry's ``image`` field (docs/bundle.md)."""
    by_label = {v.input.label: v for v in views[1:]}
    for i, entry in enumerate(content.metadata["subject"]["photos"]):
        view = by_label.get(entry["label"])
        if view is None or entry.get("status") != "used":
            continue
        name = f"photo_{i}.jpg"
        content.extra_files[name] = photo_jpeg(view.photo.rgb)
        entry["image"] = name


def subject_metadata(views: list[SubjectView], report: dict[str, Any]) -> dict[str, Any]:
    """``bundle.json["subject"]``: the shared shape, the joint fit's statistics and, per input, its status and —
    when used — its pose (55, 3) axis-angle, translation (metres), camera (OpenCV, original-photo pixels) and fit
    metrics (the joint fit's keypoint error and silhouette IoU, its own fit's under ``own_fit``)."""
    by_label = {v.input.label: v for v in views}
    photos = []
    for entry in report["inputs"]:
        item = dict(entry)
        view = by_label.get(entry["label"])
        if view is not None:
            cam = view.fit.camera.rescaled(1.0 / view.photo.scale, *view.photo.original_size)
            item.update(full_pose=np.asarray(view.fit.full_pose, dtype=np.float64).reshape(55, 3).tolist(),
                        transl=np.asarray(view.fit.transl, dtype=np.float64).reshape(3).tolist(),
                        camera={"convention": "opencv", "K": np.asarray(cam.K).tolist(),
                                "R": np.asarray(cam.R).tolist(), "t": np.asarray(cam.t).tolist(),
                                "width": int(cam.width), "height": int(cam.height)})
        photos.append(item)
    out = {"photos": photos, "used": len(views), "betas": list(report["betas"]),
           "stature_m": float(report["stature_m"])}
    if "joint_fit" in report:
        out["joint_fit"] = report["joint_fit"]
    return out
