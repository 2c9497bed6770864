"""No engine module assigns a module-level name twice: a second ``NAME = …`` silently replaces the first for every
user of the name (wave 5: the limb alignment's ALIGN_MAX_SHIFT = 0.06 replaced the other photos' 0.04 in texture.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import icon_engine


def _twice_assigned(path: Path) -> list[str]:
    seen: dict[str, int] = {}
    doubled = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        for target in targets:
            if isinstance(target, ast.Name):
                if target.id in seen:
                    doubled.append(f"{path.name}:{node.lineno} {target.id} (first at line {seen[target.id]})")
                seen.setdefault(target.id, node.lineno)
    return doubled


def test_no_module_level_name_is_assigned_twice():
    root = Path(icon_engine.__file__).parent
    doubled = [d for path in sorted(root.rglob("*.py")) for d in _twice_assigned(path)]
    assert not doubled, doubled


def test_every_stage_reads_the_one_preset_table_live(monkeypatch):
    """The fit's and the surface's per-quality settings are views of ``options.PRESETS``, not copies made at import:
    a run that replaces a preset (an A/B driver, wave 9) reaches both stages."""
    import dataclasses

    from icon_engine import options, surface
    from icon_engine.fit import core

    standard = options.PRESETS["standard"]
    changed = dataclasses.replace(standard, fit=dataclasses.replace(standard.fit, pose_iters=7),
                                  mesh=dataclasses.replace(standard.mesh, resolution=64))
    monkeypatch.setitem(options.PRESETS, "standard", changed)
    assert core.QUALITY_PRESETS["standard"].pose_iters == 7
    assert surface.QUALITY_PRESETS["standard"].resolution == 64
    assert set(core.QUALITY_PRESETS) == set(surface.QUALITY_PRESETS) == set(options.QUALITIES)
    assert "ultra" not in core.QUALITY_PRESETS and core.QUALITY_PRESETS.get("ultra") is None


#: Names the texture and avatar packages' modules may import from each other: labels and tables of the body's
#: structure, which no run tunes.
STRUCTURAL = {"PART_TORSO", "PART_LEFT_ARM", "PART_RIGHT_ARM", "PART_LEFT_LEG", "PART_RIGHT_LEG", "PART_HEAD",
              "PART_NAMES", "LIMB_COUNTERPART", "HAND_PALM", "HAND_FINGERS", "JOINT_PART", "HAND_JOINTS",
              "LIMB_SEGMENT_JOINTS", "LIMB_SEGMENT_NAMES", "HAND_SIDES", "_PART_MATRIX", "_PART_JOINTS"}


@pytest.mark.parametrize("package", ["texture", "avatar"])
def test_a_packages_modules_read_each_others_constants_where_they_live(package):
    """A tuning constant imported by name into another module of the same package is a copy: the benchmarks'
    ``--set texture.NAME=…`` and a test's monkeypatch change the defining module's only, so the importer would run
    with the old value. Such constants are read as ``module.NAME`` (``sampling.SEEN_ALPHA``)."""
    root = Path(icon_engine.__file__).parent / package
    copied = []
    for path in sorted(root.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                copied += [f"{path.name}: {a.name} from .{node.module}" for a in node.names
                           if a.name.isupper() and a.name not in STRUCTURAL]
    assert not copied, copied
