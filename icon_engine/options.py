"""Options of one reconstruction and the quality presets. Torch-free."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import EngineError

QUALITIES = ("preview", "standard", "high")
DEVICES = ("auto", "cpu", "cuda")
REST_POSES = ("T", "A")

@dataclass(frozen=True)
class FitPreset:
    """The fit's view (``icon_engine.fit``): iterations per stage — orientation, pose, silhouette at each window
    size (px, iterations; coarse to fine) — and body vertices sampled for the silhouette losses."""

    orient_iters: int
    pose_iters: int
    silhouette: tuple[tuple[int, int], ...]
    vertex_samples: int


@dataclass(frozen=True)
class MeshPreset:
    """The surface's and the canonical avatar's view (``icon_engine.surface``, ``icon_engine.avatar``, the rig
    built on it): grid cells across the longest side, coarse-to-fine levels, Taubin smoothing iterations, and the
    final face budget of the clothed mesh (also ICON's decimation target)."""

    resolution: int
    levels: int
    smooth: int
    face_count: int


@dataclass(frozen=True)
class TexturePreset:
    """The texture's view (``icon_engine.texture``): atlas edge in texels, and the atlas kind: ``"projection"``
    (fast, whatever the face count) or ``"auto"`` (xatlas up to ``texture.atlas.XATLAS_MAX_FACES`` faces)."""

    size: int
    atlas: str = "auto"


@dataclass(frozen=True)
class QualityPreset:
    """Everything one quality level sets, stage by stage (each stage reads its own typed view)."""

    fit: FitPreset
    mesh: MeshPreset
    texture: TexturePreset

    @property
    def texture_size(self) -> int:
        return self.texture.size

    @property
    def face_count(self) -> int:
        return self.mesh.face_count


#: The one preset table: fit, surface, canonical avatar and rig, texture (``--quality``).
PRESETS: dict[str, QualityPreset] = {
    "preview": QualityPreset(FitPreset(25, 50, ((128, 40),), 1500),
                             MeshPreset(resolution=128, levels=3, smooth=6, face_count=40_000),
                             TexturePreset(size=1024, atlas="projection")),
    "standard": QualityPreset(FitPreset(30, 75, ((128, 55), (256, 50)), 3000),
                              MeshPreset(resolution=256, levels=4, smooth=8, face_count=80_000),
                              TexturePreset(size=2048)),
    "high": QualityPreset(FitPreset(40, 100, ((128, 70), (256, 70)), 4000),
                          MeshPreset(resolution=512, levels=5, smooth=10, face_count=200_000),
                          TexturePreset(size=4096)),
}


class PresetView(Mapping[str, Any]):
    """One stage's typed view of :data:`PRESETS` (quality → that stage's preset: ``"fit"``, ``"mesh"`` or
    ``"texture"``), read live, so a run that replaces an entry of :data:`PRESETS` (an A/B driver) reaches every
    stage; until wave 9 each stage kept a copy made at import."""

    def __init__(self, stage: str) -> None:
        self._stage = stage

    def __getitem__(self, quality: str) -> Any:
        return getattr(PRESETS[quality], self._stage)

    def __iter__(self) -> Iterator[str]:
        return iter(PRESETS)

    def __len__(self) -> int:
        return len(PRESETS)


def preset(quality: str) -> QualityPreset:
    """The :data:`PRESETS` entry of ``quality``; an unknown name is a ``bad_option`` error."""
    if quality not in PRESETS:
        raise EngineError("bad_option", f"Unknown quality {quality!r}.", f"Use one of {', '.join(QUALITIES)}.")
    return PRESETS[quality]


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
        return self.texture_size or PRESETS[self.quality].texture_size

    @property
    def resolved_texture_atlas(self) -> str:
        return PRESETS[self.quality].texture.atlas

    @property
    def resolved_face_count(self) -> int:
        return self.face_count or PRESETS[self.quality].face_count

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("smplx_model", "icon_data"):
            out[key] = str(out[key]) if out[key] is not None else None
        out["texture_size"] = self.resolved_texture_size
        out["face_count"] = self.resolved_face_count
        return out


#: ``reconstruct`` option (argparse destination) → :class:`ReconstructOptions` field and conversion, where they
#: differ; every other option named like a field maps onto it unchanged. The one mapping of the CLI, the batch
#: command and the warm engine.
CLI_FIELDS: dict[str, tuple[str, Any]] = {
    "person": ("person_index", lambda v: v),
    "no_texture": ("texture", lambda v: not v),
    "faces": ("face_count", lambda v: v),
    "height": ("height_m", lambda v: v),
}


def options_from_cli(values: dict[str, Any], strict: bool = False) -> ReconstructOptions:
    """:class:`ReconstructOptions` from parsed ``reconstruct`` options (``vars(args)``), mapped by
    :data:`CLI_FIELDS`. Other entries (photos, output folder…) are ignored, or with ``strict`` refused as an
    ``internal`` error (the batch command passes on exactly the options it shares)."""
    fields = {f.name for f in dataclasses.fields(ReconstructOptions)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        field_name, convert = CLI_FIELDS.get(name, (name, lambda v: v))
        if field_name in fields:
            out[field_name] = convert(value)
        elif strict:
            raise EngineError("internal", f"The option {name!r} has no reconstruction setting to go to.",
                              "Please report this: icon_engine/options.py CLI_FIELDS needs to learn it.")
    return ReconstructOptions(**out)


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
