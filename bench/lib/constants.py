"""``--set NAME=VALUE`` for the benchmarks: set engine constants or quality presets for one A/B run.

``NAME`` is a constant of an ``icon_engine`` module (``joint_fit.BACK_VIEW_WEIGHT``, ``avatar.FIRST_PHOTO_WEIGHT``,
``fit.core.W_OCCLUSION``; a package's is set in the submodule that defines it: ``texture.BLEND_POWER`` is
``texture.sampling.BLEND_POWER``; a bare name looks in the caller's default modules, first hit wins) or a field of
a quality preset (``preset.standard.fit.pose_iters``, ``preset.high.mesh.resolution``): ``options.PRESETS`` is one
table and the stages read it live (``options.PresetView``), so a preset set here reaches the fit, the surface and the
texture.

Values take the type of what they replace: numbers, ``true``/``false`` for booleans, comma-separated numbers for
flat tuples, for the silhouette schedule (a tuple of (window px, iterations)) ``128:55,256:50``, and for a dict
``key:value,...`` replacing those keys only (``JOINT_ITERS=preview:60``: the other qualities keep theirs).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any


def parse_value(text: str, old: Any) -> Any:
    """``text`` read as the type of ``old`` (see the module docstring)."""
    if isinstance(old, bool):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise SystemExit(f"--set: {text!r} is not a boolean (true/false)")
        return text.lower() in ("1", "true", "yes")
    if isinstance(old, dict):
        new = dict(old)
        for item in (t for t in text.split(",") if t):
            key, sep, value = item.partition(":")
            if not sep or key not in old:
                raise SystemExit(f"--set: {item!r} is not key:value with a key of {sorted(old)}")
            new[key] = parse_value(value, old[key])
        return new
    if isinstance(old, tuple):
        items = [t for t in text.split(",") if t]
        if old and isinstance(old[0], tuple):  # pairs such as the silhouette schedule
            return tuple(tuple(type(o)(float(x)) for o, x in zip(old[0], t.split(":"), strict=True)) for t in items)
        kind = type(old[0]) if old else float
        return tuple(kind(float(t)) if kind is int else kind(t) for t in items)
    if isinstance(old, int):
        return int(float(text))
    return type(old)(text)


def _set_preset(path: list[str], text: str) -> str:
    """``preset.QUALITY.STAGE.FIELD`` → replace that field of ``options.PRESETS[QUALITY]``; returns a description."""
    from icon_engine import options

    if len(path) != 3 or path[0] not in options.PRESETS:
        raise SystemExit(f"--set: a preset is preset.QUALITY.STAGE.FIELD with QUALITY one of "
                         f"{', '.join(options.PRESETS)} (got preset.{'.'.join(path)})")
    quality, stage, name = path
    preset = options.PRESETS[quality]
    view = getattr(preset, stage, None)
    if view is None or not dataclasses.is_dataclass(view) or not hasattr(view, name):
        raise SystemExit(f"--set: the {quality} preset has no {stage}.{name}")
    old = getattr(view, name)
    new = parse_value(text, old)
    options.PRESETS[quality] = dataclasses.replace(preset, **{stage: dataclasses.replace(view, **{name: new})})
    return f"preset.{quality}.{stage}.{name}: {old!r} → {new!r}"


def defining_module(module: ModuleType, attr: str) -> ModuleType | None:
    """``module`` if it has ``attr``; for a package (``texture``), the submodule that assigns ``attr`` at its top
    level (``texture.fill`` for ``SHADOW_POWER``): the stages read their constants there, not the package's
    re-exports. None when neither has it."""
    if hasattr(module, "__path__"):
        for info in pkgutil.iter_modules(module.__path__):
            sub = importlib.import_module(f"{module.__name__}.{info.name}")
            if re.search(rf"^{re.escape(attr)}\s*[:=]", Path(sub.__file__).read_text(), flags=re.M):
                return sub
    return module if hasattr(module, attr) else None


def set_constants(items: list[str], default_modules: tuple[str, ...] = ()) -> list[str]:
    """Apply ``NAME=VALUE`` items (module docstring) and return one description per item. A bare ``NAME`` is
    looked up in ``default_modules`` (``icon_engine`` submodule names, in order). Unknown names stop the run."""
    done = []
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set: {item!r} is not NAME=VALUE")
        if name.startswith("preset."):
            done.append(_set_preset(name.split(".")[1:], text))
            continue
        where, _, attr = name.rpartition(".")
        candidates = [where] if where else list(default_modules)
        module: ModuleType | None = None
        for candidate in candidates:
            mod = defining_module(importlib.import_module(f"icon_engine.{candidate}"), attr)
            if mod is not None:
                module = mod
                break
        if module is None:
            raise SystemExit(f"--set: no constant {attr!r} in icon_engine.{' / icon_engine.'.join(candidates)}")
        old = getattr(module, attr)
        new = parse_value(text, old)
        setattr(module, attr, new)
        done.append(f"{module.__name__}.{attr}: {old!r} → {new!r}")
    return done
