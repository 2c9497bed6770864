"""Video input: stream upright RGB frames from a video file with PyAV, one at a time. Torch-free.

Frames are decoded one by one and scaled down on decode (libswscale) to at most :data:`MAX_SIDE` pixels on the
longer side, so a 4K 60 fps clip costs one decoded frame of memory at a time, never the whole clip. Rotation
metadata (the display matrix phones write for portrait videos) is honoured: frames come out upright, and every
pixel coordinate downstream refers to the upright, scaled frame ("processing pixels").

Refusals (:class:`~icon_engine.errors.EngineError`): ``photo_missing`` (no such file), ``bad_video`` (not a
video, no video stream, no decodable frame), ``bad_option`` (an empty or inverted ``--start/--end`` range).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EngineError

#: Longest side of the processing frames, pixels (BlazePose works on 256² crops; 1280 keeps small people usable).
MAX_SIDE = 1280


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video: upright size (W, H) after rotation, frames per second, an
    estimated frame count (0 when unknown), the display rotation in degrees (counter-clockwise, 0/90/180/270),
    the codec name and the processing size (W, H) frames come out at."""

    path: Path
    size: tuple[int, int]
    fps: float
    frame_count: int
    rotation: int
    codec: str
    processing_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Processing pixels per original (upright) pixel."""
        return self.processing_size[0] / self.size[0]


@dataclass
class Frame:
    """One upright frame: ``index`` in the source video, ``time`` seconds, ``rgb`` (H, W, 3) uint8."""

    index: int
    time: float
    rgb: np.ndarray


def _import_av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a runtime requirement
        raise EngineError("internal", "PyAV (the 'av' package) is not installed.",
                          "Install the engine's requirements (pip install -r requirements.txt).") from exc
    return av


def _open(path: Path):
    av = _import_av()
    if not path.exists():
        raise EngineError("photo_missing", f"Video {path} does not exist.", "Check the path.")
    if not path.is_file():
        raise EngineError("bad_video", f"{path} is not a file.", "Name a video file (MP4, MOV, MKV, WebM, AVI).")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise EngineError("bad_video", f"{path.name} is not a video FFmpeg can read ({exc}).",
                          "Use a common video file (MP4, MOV, MKV, WebM, AVI).") from None
    if not container.streams.video:
        container.close()
        raise EngineError("bad_video", f"{path.name} has no video stream.",
                          "Use a video file with a picture track (MP4, MOV, MKV, WebM, AVI).")
    return container


def _rotation_of(container, stream) -> int:
    """Display rotation (degrees counter-clockwise, multiple of 90) from the first frame's display matrix."""
    try:
        for frame in container.decode(stream):
            return int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) * 90 % 360
    except Exception:  # noqa: BLE001 - a damaged first frame is reported by the caller's decode
        return 0
    return 0


def _processing_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    s = min(1.0, max_side / max(width, height))
    # even sizes keep libswscale's chroma handling exact
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def probe_video(path: str | Path, max_side: int = MAX_SIDE) -> VideoInfo:
    """Open ``path`` and read its size, rate, frame count and rotation (decodes at most one frame)."""
    path = Path(path)
    container = _open(path)
    try:
        fmt = str(container.format.name)
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise EngineError("bad_video", f"{path.name} is a still image, not a video.",
                              "Use 'reconstruct' for photos; 'motion' needs a video file (MP4, MOV, MKV, WebM).")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a codec FFmpeg does not know (a damaged header names none)
            raise EngineError("bad_video", f"{path.name}'s video stream uses no codec FFmpeg can decode.",
                              "Re-export the video as MP4 (H.264).")
        w, h = int(stream.codec_context.width), int(stream.codec_context.height)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if w <= 0 or h <= 0:
            raise EngineError("bad_video", f"{path.name}'s video stream has no picture size.",
                              "Re-export the video as MP4 (H.264).")
        count = int(stream.frames or 0)
        if count <= 0 and stream.duration and stream.time_base and fps:
            count = int(round(float(stream.duration * stream.time_base) * fps))
        rotation = _rotation_of(container, stream)
    finally:
        container.close()
    if not (0.0 < fps < 1000.0):
        fps = 30.0
    size = (h, w) if rotation in (90, 270) else (w, h)
    return VideoInfo(path, size, fps, count, rotation, stream.codec_context.name,
                     _processing_size(size[0], size[1], max_side))


def frame_range(info: VideoInfo, start: float | None, end: float | None, fps: float | None) -> tuple[float, float,
                                                                                                  float]:
    """Checked (start s, end s, output fps) for ``--start/--end/--fps`` (None = whole clip, source rate)."""
    duration = info.frame_count / info.fps if info.frame_count else math.inf
    s = 0.0 if start is None else float(start)
    e = duration if end is None else float(end)
    if s < 0 or e <= s:
        raise EngineError("bad_option", f"--start {start} / --end {end} is an empty range.",
                          "Give --start (seconds) below --end (seconds).")
    if s >= duration:
        raise EngineError("bad_option", f"--start {s:g} s is past the end of the video ({duration:.2f} s).",
                          "Give a start inside the clip.")
    out_fps = info.fps if fps is None else float(fps)
    if not (0.0 < out_fps <= info.fps + 1e-6):
        raise EngineError("bad_option", f"--fps {fps} must be positive and at most the video's {info.fps:g} fps.",
                          "Leave --fps out to use every frame.")
    return s, e, out_fps


def iter_frames(info: VideoInfo, start: float = 0.0, end: float = math.inf, fps: float | None = None
                ) -> Iterator[Frame]:
    """Upright processing frames of ``info.path`` from ``start`` to ``end`` seconds, at most ``fps`` per second
    (a frame is kept when it is the first at or after each 1/fps step). Streams: one decoded frame at a time."""
    container = _open(info.path)
    step = 1.0 / fps if fps else 0.0
    next_time = start
    k = info.rotation // 90
    # decode at the pre-rotation size matching the upright processing size
    pw, ph = info.processing_size
    dec_w, dec_h = (ph, pw) if k % 2 else (pw, ph)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start > 0.5:
            container.seek(int(start / float(stream.time_base)), stream=stream, backward=True)
        index = -1
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else (index + 1) / info.fps
            index = int(round(t * info.fps))
            if t < start - 0.5 / info.fps:
                continue
            if t > end + 1e-6:
                break
            if step and t < next_time - 0.5 / info.fps:
                continue
            next_time = max(next_time + step, t + step * 0.5) if step else t
            rgb = frame.reformat(width=dec_w, height=dec_h, format="rgb24").to_ndarray()
            if k:
                rgb = np.ascontiguousarray(np.rot90(rgb, k))
            yield Frame(index, t, rgb)
    except Exception as exc:  # noqa: BLE001
        av = _import_av()
        if isinstance(exc, av.error.FFmpegError):
            raise EngineError("bad_video", f"{info.path.name} could not be decoded ({exc}).",
                              "The file may be damaged; re-export it as MP4 (H.264).") from None
        raise
    finally:
        container.close()
