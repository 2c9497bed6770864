"""Options of one reconstruction and the quality presets. Torch-free."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import EngineError

QUALITIES = ("preview", "standard", "high")
DEVICES = ("auto", "cpu", "cuda")
REST_POSES = ("T", "A")

#: Per-preset defaults: texture edge (px) and final face budget of the clothed mesh.
PRESETS: dict[str, dict[str, int]] = {
    "preview": {"texture_size": 1024, "face_count": 40_000},
    "standard": {"texture_size": 2048, "face_count": 80_000},
    "high": {"texture_size": 4096, "face_count": 200_000},
}


#: Accepted range of ``height_m`` (metres): children to the tallest adults.
MIN_HEIGHT_M = 0.8
MAX_HEIGHT_M = 2.5


@dataclass(frozen=True)
class ReconstructOptions:
    """User-facing options. ``None`` sizes mean "the preset's default"."""

    quality: str = "standard"
    device: str = "auto"
    smplx_model: Path | None = None
    icon_data: Path | None = None
    person_index: int = 0
    texture: bool = True
    texture_size: int | None = None
    face_count: int | None = None
    rest_pose: str = "T"
    height_m: float | None = None  # the person's stature (metres, barefoot standing height); None: estimated

    def __post_init__(self) -> None:
        if self.quality not in QUALITIES:
            raise EngineError("bad_option", f"Unknown quality {self.quality!r}.", f"Use one of {', '.join(QUALITIES)}.")
        if self.device not in DEVICES:
            raise EngineError("bad_option", f"Unknown device {self.device!r}.", f"Use one of {', '.join(DEVICES)}.")
        if self.rest_pose not in REST_POSES:
            raise EngineError("bad_option", f"Unknown rest pose {self.rest_pose!r}.", "Use T or A.")
        if self.person_index < 0:
            raise EngineError("bad_option", f"Person index {self.person_index} is negative.", "Use 0 or more.")
        if self.texture_size is not None and not 256 <= self.texture_size <= 8192:
            raise EngineError("bad_option", f"Texture size {self.texture_size} is out of range.", "Use 256 to 8192.")
        if self.height_m is not None and not (isinstance(self.height_m, (int, float))
                                              and MIN_HEIGHT_M <= float(self.height_m) <= MAX_HEIGHT_M):
            raise EngineError("bad_option", f"Height {self.height_m!r} m is out of range.",
                              f"Give the person's standing height in metres, {MIN_HEIGHT_M} to {MAX_HEIGHT_M} "
                              "(e.g. --height 1.75; centimetres are not accepted).")
        if self.face_count is not None and not 1000 <= self.face_count <= 2_000_000:
            raise EngineError("bad_option", f"Face count {self.face_count} is out of range.", "Use 1000 to 2000000.")

    @property
    def resolved_texture_size(self) -> int:
        return self.texture_size or PRESETS[self.quality]["texture_size"]

    @property
    def resolved_face_count(self) -> int:
        return self.face_count or PRESETS[self.quality]["face_count"]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("smplx_model", "icon_data"):
            out[key] = str(out[key]) if out[key] is not None else None
        out["texture_size"] = self.resolved_texture_size
        out["face_count"] = self.resolved_face_count
        return out


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when a CUDA device is usable, else 'cpu'; 'cuda' without CUDA is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EngineError(
            "device",
            "CUDA was requested but this PyTorch has no usable CUDA device.",
            "Use --device cpu (or auto), or install a CUDA build of torch==2.13.0 on a machine with an NVIDIA GPU.",
        )
    return device
