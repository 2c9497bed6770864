"""Motion from video, end to end: stream frames → track the person (and find their hands) → fit each frame (body,
then the hands seen) → fill unseen hands, smooth → floor, contacts, foot locking → ``motion.npz`` +
``motion.bvh`` + ``motion.json``.

Frames are decoded and tracked in a background thread, a few frames ahead of the fit (two cores work).
Progress goes to a callback as dicts (the CLI prints them as JSON lines); a cancel (``CancelToken`` or Ctrl-C)
stops the frame loop and the frames done so far are still smoothed and written (``partial: true``). Outputs are
written to temporary files and renamed, so a folder never holds a half-written motion.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Cancelled, EngineError
from ..progress import CancelToken
from ..threads import with_torch_threads
from . import smooth
from .fitter import SIDES, FrameFitter
from .hands import HandTracker
from .track import Detection, PersonTracker
from .trajectory import FEET, image_foot_speed, place_on_floor
from .video import Frame, frame_range, iter_frames, probe_video
from .writers import write_amass_npz, write_bvh

#: Longest gap (seconds) bridged by interpolation; longer gaps cut the clip (the longest part is kept).
MAX_GAP_SECONDS = 0.5
#: A motion needs at least this many tracked frames.
MIN_FRAMES = 2
#: Frames between two progress reports (the first and last are always reported).
PROGRESS_EVERY = 1
#: Seconds over which a hand that is no longer seen relaxes to the rest pose (and a reappearing one grows back).
HAND_BLEND_SECONDS = 0.3
#: A warning is given when a hand is missing from more than this fraction of the frames.
HAND_MISSING_WARNING = 0.1


@dataclass
class MotionOptions:
    """What to capture: person index (0 = largest), time range in seconds (None = whole clip), output rate
    (None = the video's), smoothing ("zero_phase" | "one_euro" | "none") with its cut-offs (Hz: limbs and hands,
    trunk — see :func:`smooth.joint_cutoffs` — and root translation), foot locking, shared body shape,
    hands (MediaPipe hand landmarks fitted into the SMPL-X hand poses; off: hands stay at rest)."""

    person_index: int = 0
    start: float | None = None
    end: float | None = None
    fps: float | None = None
    smoothing: str = "zero_phase"
    lock_feet: bool = True
    betas: np.ndarray | None = None
    rotation_cutoff_hz: float = smooth.ROTATION_CUTOFF_HZ
    trunk_cutoff_hz: float = smooth.TRUNK_CUTOFF_HZ
    translation_cutoff_hz: float = smooth.TRANSLATION_CUTOFF_HZ
    hands: bool = True


@dataclass
class MotionResult:
    """What :func:`capture_motion` wrote and measured."""

    npz: Path
    bvh: Path
    meta: Path
    frames: int
    fps: float
    partial: bool
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


Progress = Callable[[dict], None]


def _report(progress: Progress | None, video: str, stage: str, fraction: float, overall: float, message: str,
            **extra) -> None:
    if progress is not None:
        progress({"event": "progress", "photo": video, "stage": stage, "fraction": round(fraction, 4),
                  "overall": round(overall, 4), "message": message, **extra})


#: Frames decoded and tracked ahead of the fit (bounded: the memory of a few processing frames).
LOOKAHEAD = 4


def _tracked(frames: Iterator[Frame], tracker: PersonTracker, stop: threading.Event, timings: dict[str, float],
             hands: HandTracker | None = None) -> Generator[tuple[Frame, Detection | None, int], None, None]:
    """(frame, detection, misses so far) for each frame, decoded and tracked in a background thread while the
    caller fits the previous frames (BlazePose and FFmpeg release the GIL: the two cores both work); with
    ``hands``, the detection also carries the person's hand landmarks. At most
    :data:`LOOKAHEAD` frames wait in the queue. Closing the generator stops and joins the thread; an error in
    the thread is raised here."""
    items: queue.Queue = queue.Queue(maxsize=LOOKAHEAD)
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                t = time.perf_counter()
                frame = next(frames, None)
                timings["decode"] += time.perf_counter() - t
                if frame is None:
                    break
                t = time.perf_counter()
                det = tracker.step(frame.rgb)
                timings["track"] += time.perf_counter() - t
                if hands is not None and det is not None:
                    t = time.perf_counter()
                    det.hands = hands.step(frame.rgb, det.keypoints)
                    timings["hands_track"] += time.perf_counter() - t
                if not put((frame, det, tracker.misses)):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            put(exc)
        finally:
            put(done)
            frames.close()

    thread = threading.Thread(target=work, name="icon-motion-track", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


@with_torch_threads(1)  # tiny tensors: threads cost more than they give (scoped: restored on return)
def capture_motion(video: str | Path, out_dir: str | Path, options: MotionOptions | None = None, body_model=None,
                   progress: Progress | None = None, cancel: CancelToken | None = None) -> MotionResult:
    """Capture the motion of one person in ``video`` into ``out_dir`` (created). See the module doc."""
    import torch

    options = options or MotionOptions()
    if options.smoothing not in ("zero_phase", "one_euro", "none"):
        raise EngineError("bad_option", f"Unknown smoothing {options.smoothing!r}.",
                          "Use zero_phase, one_euro or none.")
    if options.person_index < 0:
        raise EngineError("person_index", f"Person index {options.person_index} is negative.",
                          "Use 0 for the largest person, 1 for the next, and so on.")
    video = Path(video)
    out_dir = Path(out_dir)
    info = probe_video(video)
    start, end, fps = frame_range(info, options.start, options.end, options.fps)
    duration = info.frame_count / info.fps if info.frame_count else math.inf
    span = min(end, duration) - start
    expected = int(math.floor(span * fps + 1e-6)) + 1 if math.isfinite(span) else 0
    name = video.name
    timings: dict[str, float] = {"decode": 0.0, "track": 0.0, "hands_track": 0.0, "fit": 0.0, "fit_thread_cpu": 0.0}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    _report(progress, name, "load", 0.0, 0.0, "Loading the body model")
    if body_model is None:
        from ..body_model import load_body_model

        body_model = load_body_model()
    W, H = info.processing_size
    fitter = FrameFitter(body_model, W, H, options.betas, hands=options.hands)
    tracker = PersonTracker(options.person_index)
    hand_tracker = HandTracker() if fitter.hands else None
    rows: list[dict] = []  # one per frame: index, time, tracked, fit
    partial = False
    warnings: list[str] = []
    frames = iter_frames(info, start, end, fps)
    stop = threading.Event()
    tracked_frames = _tracked(frames, tracker, stop, timings, hand_tracker)
    try:
        for frame, det, misses in tracked_frames:
            if cancel is not None:
                cancel.check()
            t, tc = time.perf_counter(), time.thread_time()
            fit = None
            if det is not None:
                fit = fitter.fit(det)
            elif misses > int(MAX_GAP_SECONDS * fps):
                fitter.reset()
            timings["fit"] += time.perf_counter() - t
            timings["fit_thread_cpu"] += time.thread_time() - tc
            rows.append({"index": frame.index, "time": frame.time, "fit": fit,
                         "keypoints": None if det is None else det.keypoints})
            n = len(rows)
            frac = min(1.0, n / max(expected, n))
            _report(progress, name, "fit", frac, 0.02 + 0.93 * frac,
                    f"Frame {n}/{max(expected, n)}" + ("" if fit else " (person not found)"), frame=n,
                    frames=max(expected, n))
    except (Cancelled, KeyboardInterrupt):
        partial = True
        warnings.append(f"Cancelled after {len(rows)} frames: the motion covers only the frames done so far.")
    finally:
        tracked_frames.close()  # stops and joins the decoding/tracking thread
        tracker.close()
        if hand_tracker is not None:
            hand_tracker.close()
    timings["hands_fit_cpu"] = fitter.hand_seconds
    timings["frames_cpu_s"] = time.process_time() - cpu0
    timings["frames_wall_s"] = time.perf_counter() - wall0
    if not rows:
        raise EngineError("bad_video", f"{name} has no decodable frame in the chosen range.",
                          "Check --start/--end, or re-export the video as MP4 (H.264).")
    tracked = np.array([r["fit"] is not None for r in rows])
    if tracked.sum() < MIN_FRAMES:
        raise EngineError("no_person", f"No person was found in {name}" + (
            "." if not tracked.any() else f" except in {int(tracked.sum())} frame."),
            "Use a video showing one person's whole body (or most of it), reasonably lit and not too small.")
    # gaps: bridge short ones, cut at long ones (keep the longest part)
    max_gap = max(1, int(round(MAX_GAP_SECONDS * fps)))
    parts = smooth.segments(tracked, max_gap)
    a, b = max(parts, key=lambda r: r[1] - r[0])
    if len(parts) > 1:
        kept = f"{rows[a]['time']:.2f}–{rows[b - 1]['time']:.2f} s"
        warnings.append(f"The person was lost for more than {MAX_GAP_SECONDS:g} s; the motion was cut to the "
                        f"longest tracked part ({kept}, {b - a} of {len(rows)} frames).")
    if a > 0 or b < len(rows):
        lost = int((~tracked[:a]).sum() + (~tracked[b:]).sum())
        if lost and len(parts) == 1:
            warnings.append(f"The person is missing from {lost} frames at the start or end; those were left out.")
    rows, tracked = rows[a:b], tracked[a:b]
    bridged = int((~tracked).sum())
    if bridged:
        warnings.append(f"{bridged} frames without the person (occluded or out of frame) were bridged by "
                        "interpolation.")
    if tracker.swaps_refused:
        warnings.append(f"{tracker.swaps_refused} detections that jumped to another spot (another person?) were "
                        "refused.")
    T = len(rows)
    raw_poses = np.zeros((T, 55, 3))
    raw_trans = np.zeros((T, 3))
    for i, r in enumerate(rows):
        if r["fit"] is not None:
            raw_poses[i, 0] = r["fit"].global_orient
            raw_poses[i, 1:22] = r["fit"].body_pose
            raw_trans[i] = r["fit"].transl
    poses = smooth.bridge(raw_poses, tracked, rotations=True)
    trans = smooth.bridge(raw_trans, tracked, rotations=False)
    hand_seen = np.array([[r["fit"] is not None and s in r["fit"].hands_seen for s in SIDES] for r in rows])
    hand_fitted = np.array([[r["fit"] is not None and s in r["fit"].hands for s in SIDES] for r in rows])
    hand_report: dict = {"enabled": bool(fitter.hands)}
    if options.hands and not fitter.hands:
        warnings.append("The body model has no fingertip keypoints, so the hands were not captured (rest pose).")
    if fitter.hands:
        blend = max(1, int(round(HAND_BLEND_SECONDS * fps)))
        for k, s in enumerate(SIDES):
            cols = slice(25 + 15 * k, 40 + 15 * k)
            for i, r in enumerate(rows):
                if hand_fitted[i, k]:
                    raw_poses[i, cols] = r["fit"].hands[s]
            poses[:, cols] = smooth.fill_unseen(raw_poses[:, cols], hand_fitted[:, k], max_gap, blend)
            errs = [r["fit"].hand_error_px[s] for i, r in enumerate(rows) if hand_fitted[i, k]]
            n = int(hand_seen[:, k].sum())
            hand_report[s] = {"seen_frames": n, "filled_frames": T - n, "fitted_frames": int(hand_fitted[:, k].sum()),
                              "mean_error_px": round(float(np.mean(errs)), 3) if errs else None}
            if T - n > HAND_MISSING_WARNING * T:
                warnings.append(f"The {s} hand was seen in {n} of {T} frames; in the others it was bridged or "
                                "relaxed to the rest pose." if n else
                                f"The {s} hand was not seen: it keeps the rest pose.")
    moving = slice(0, 55) if fitter.hands else slice(0, 22)
    t = time.perf_counter()
    if options.smoothing == "zero_phase":
        cutoffs = smooth.joint_cutoffs(55, options.rotation_cutoff_hz, options.trunk_cutoff_hz)[moving]
        poses[:, moving] = smooth.smooth_rotations(poses[:, moving], fps, cutoffs)
        trans = smooth.zero_phase(trans, fps, options.translation_cutoff_hz)
    elif options.smoothing == "one_euro":
        poses[:, moving] = smooth.one_euro_rotations(poses[:, moving], fps)
        trans = smooth.one_euro(trans, fps, min_cutoff=0.8, beta=0.5)
    rest = fitter.rest_joints
    with torch.no_grad():
        b_t = fitter.betas[None].to(body_model.dtype)
        rest_v = body_model.rest_vertices(b_t)[0].double().cpu().numpy()
    sole = float(np.mean([rest[ball, 1] for _, ball in FEET]) - rest_v[:, 1].min())
    keypoints = np.stack([r["keypoints"] if r["keypoints"] is not None else np.full((33, 3), np.nan) for r in rows])
    speed = image_foot_speed(keypoints, fps)
    traj = place_on_floor(poses, trans, rest, sole, fps, lock_feet=options.lock_feet, image_speed=speed)
    timings["post"] = time.perf_counter() - t
    extras = {
        "camera_R": traj.camera_R, "camera_t": traj.camera_t, "camera_K": fitter.K,
        "camera_size": np.array([W, H]), "contact": traj.contact,
        "frame_index": np.array([r["index"] for r in rows]), "tracked": tracked,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = write_amass_npz(out_dir / "motion.npz", traj.poses, traj.trans, fitter.betas.numpy(), fps, rest[0], extras)
    bvh = write_bvh(out_dir / "motion.bvh", traj.poses, traj.trans, rest, fps, hands=fitter.hands)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    timings.update(total_wall_s=wall, total_cpu_s=cpu)
    meta = {
        "format": "icon-motion", "version": 1, "video": str(video), "frames": T, "fps": fps,
        "video_fps": info.fps, "video_size": list(info.size), "rotation": info.rotation,
        "processing_size": [W, H], "start_s": rows[0]["time"], "end_s": rows[-1]["time"], "partial": partial,
        "person": options.person_index, "people_at_start": tracker.people_at_start, "smoothing": options.smoothing,
        "lock_feet": options.lock_feet, "floor_tilt_deg": traj.floor_tilt_deg, "bridged_frames": bridged,
        "hands": hand_report,
        "mean_reprojection_px": float(np.nanmean([r["fit"].error_px for r in rows if r["fit"] is not None])),
        "warnings": warnings, "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "files": {"npz": npz.name, "bvh": bvh.name},
    }
    meta_path = out_dir / "motion.json"
    from .writers import _atomic

    _atomic(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1), encoding="utf-8"))
    _report(progress, name, "done", 1.0, 1.0, f"{T} frames written")
    raw_out = {"image_speed": speed, "keypoints": keypoints, "poses": raw_poses, "trans": raw_trans,
               "tracked": tracked, "rest_joints": rest, "contact": traj.contact, "joints": traj.joints,
               "poses_smoothed": poses, "trans_smoothed": trans, "hand_seen": hand_seen, "poses_final": traj.poses}
    return MotionResult(npz, bvh, meta_path, T, fps, partial, warnings, timings, raw_out)
