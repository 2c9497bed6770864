"""Motion from video in the add-on, the Blender-free part: the engine command, the capture job and the scene
frame-rate settings. bpy-free; the operator (``icon_blender/ui/video_motion.py``) is thin glue over this.

The engine runs ``python -m icon_engine motion VIDEO --out DIR --progress json`` in its own process
(:class:`~icon_blender.core.engine_proc.EngineJob`); its ``done`` line names ``motion.npz`` (AMASS layout,
Z up), which the existing **Apply motion** path keys on the avatar. Cancelling asks the engine to stop
(SIGTERM): it writes the frames done so far, and that partial motion is applied too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import engine_proc as ep

#: File suffixes offered by the file browser (the engine reads anything FFmpeg reads).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".mts", ".3gp")


def motion_command(python: str, video: str | Path, out_dir: str | Path, person: int = 0,
                   start: float | None = None, end: float | None = None, bundle: str | Path | None = None,
                   smplx_model: str | Path | None = None) -> list[str]:
    """The engine's command line for one video (JSON-lines progress on stdout)."""
    cmd = [python, "-m", "icon_engine", "motion", str(video), "--out", str(out_dir), "--person", str(int(person)),
           "--progress", "json"]
    if start is not None and start > 0:
        cmd += ["--start", f"{float(start):g}"]
    if end is not None and end > 0:
        cmd += ["--end", f"{float(end):g}"]
    if bundle and Path(bundle).is_dir():
        cmd += ["--bundle", str(bundle)]
    if smplx_model:
        cmd += ["--smplx-model", str(smplx_model)]
    return cmd


def scene_rate(fps: float) -> tuple[int, float]:
    """Blender's (``render.fps``, ``render.fps_base``) for a frame rate: integer rates exactly, NTSC rates
    (23.976, 29.97, 59.94) as 24/30/60 over 1.001, anything else as round(fps) over the matching base."""
    fps = float(fps)
    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"frame rate must be positive, got {fps}")
    whole = round(fps)
    if abs(fps - whole) < 1e-3:
        return int(whole), 1.0
    ntsc = round(fps * 1.001)
    if abs(ntsc / 1.001 - fps) < 1e-3:
        return int(ntsc), 1.001
    return int(whole), whole / fps


@dataclass
class MotionCapture:
    """One capture: the engine job and where its result goes. Poll with :meth:`poll` until :attr:`finished`;
    then :attr:`result` is the motion file to apply (also after a cancel when frames were done) or None."""

    job: ep.EngineJob
    out_dir: Path
    armature: str
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, python: str, video: str | Path, results_dir: str | Path, armature: str, person: int = 0,
              start: float | None = None, end: float | None = None, bundle: str | Path | None = None,
              engine_source: str | Path | None = None, smplx_model: str | Path | None = None) -> MotionCapture:
        """Start the engine on ``video``; its files go to a fresh ``results_dir/motion-<time>-<video stem>``."""
        video = Path(video)
        if not video.is_file():
            raise FileNotFoundError(f"Video not found: {video}. Pick an existing video file.")
        out = Path(results_dir) / f"motion-{time.strftime('%Y%m%d-%H%M%S')}-{video.stem}"
        cmd = motion_command(python, video, out, person, start, end, bundle, smplx_model)
        job = ep.EngineJob(cmd, video.name, env=ep.engine_env(engine_source),
                           log_path=Path(results_dir) / "logs" / f"{out.name}.log", out_dir=out)
        job.start()
        return cls(job, out, armature)

    @property
    def finished(self) -> bool:
        return self.job.finished

    def poll(self) -> None:
        self.job.poll()

    def cancel(self, timeout: float = 15.0) -> None:
        """Stop the engine; it writes the frames done so far before it exits (within ``timeout`` seconds)."""
        self.job.cancel(timeout)

    @property
    def result(self) -> Path | None:
        """The motion file to apply: the one the engine reported, or a partial one left by a cancel."""
        if self.job.bundles:
            return Path(self.job.bundles[-1])
        npz = self.out_dir / "motion.npz"
        return npz if self.job.state == ep.CANCELLED and npz.is_file() else None
