"""Batch reconstruction: many photos on every core of one machine, or on a Ray cluster (docs/batch.md).

``python -m icon_engine batch INPUT... --out DIR`` or :func:`run_batch`. One bundle per photo in ``DIR/<name>/``,
one manifest record per finished photo in ``DIR/batch.jsonl``; a rerun skips finished photos.
"""

from __future__ import annotations

from .jobs import BatchJob, assign_names, collect_photos
from .manifest import MANIFEST_NAME, read_manifest
from .runner import BatchResult, plan_batch, run_batch

__all__ = ["MANIFEST_NAME", "BatchJob", "BatchResult", "assign_names", "collect_photos", "plan_batch",
           "read_manifest", "run_batch"]
