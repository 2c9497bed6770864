"""Body fit: an SMPL-X-layout body fitted to one photo's BlazePose landmarks and person mask (see docs/fit.md)."""

from .core import QUALITY_PRESETS, BodyFit, FitSettings, fit_body
from .landmarks import BLAZEPOSE_NAMES, TARGETS

__all__ = ["BLAZEPOSE_NAMES", "QUALITY_PRESETS", "TARGETS", "BodyFit", "FitSettings", "fit_body"]
