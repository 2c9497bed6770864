"""Motion from video: one person's movement in a video as an SMPL-X motion (AMASS-layout ``.npz`` and BVH).

Stages, one module each: :mod:`.video` (streamed, upright frames), :mod:`.track` (BlazePose in tracking mode on
one person), :mod:`.hands` (MediaPipe hand landmarks next to its wrists), :mod:`.fitter` (lean warm-started
per-frame SMPL-X fit, fingers included), :mod:`.smooth` (zero-phase / OneEuro filtering, gap bridging, unseen
hands), :mod:`.trajectory` (floor, foot contact, foot locking), :mod:`.writers` (files),
:mod:`.capture` (the whole run). Formats and frames: docs/motion.md.
"""

from __future__ import annotations

from .capture import MotionOptions, MotionResult, capture_motion

__all__ = ["MotionOptions", "MotionResult", "capture_motion"]
