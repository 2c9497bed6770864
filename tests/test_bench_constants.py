"""The benchmarks' ``--set NAME=VALUE`` (bench/lib/constants.py): engine constants and quality presets for an A/B run,
and what the fit actually reads afterwards."""

from __future__ import annotations

import pytest

from bench.lib.constants import parse_value, set_constants


@pytest.fixture
def restore():
    """Put back every preset and the constants these tests touch."""
    import icon_engine.fit.core as core
    import icon_engine.joint_fit as joint_fit
    from icon_engine import options

    presets = dict(options.PRESETS)
    saved = (joint_fit.BACK_VIEW_WEIGHT, joint_fit.OWN_ARMS_WITHOUT_SIDE, core.W_OCCLUSION)
    yield
    options.PRESETS.clear()
    options.PRESETS.update(presets)
    joint_fit.BACK_VIEW_WEIGHT, joint_fit.OWN_ARMS_WITHOUT_SIDE, core.W_OCCLUSION = saved


def test_values_take_the_type_of_what_they_replace():
    assert parse_value("3", 2.5) == 3.0 and isinstance(parse_value("3", 2.5), float)
    assert parse_value("75", 50) == 75 and isinstance(parse_value("75", 50), int)
    assert parse_value("false", True) is False and parse_value("1", False) is True
    assert parse_value("0.1,0.2", (0.3, 0.4)) == (0.1, 0.2)
    assert parse_value("128:55,256:50", ((128, 40),)) == ((128, 55), (256, 50))
    steps = {"preview": 30, "standard": 50}
    assert parse_value("preview:60", steps) == {"preview": 60, "standard": 50} and steps["preview"] == 30
    with pytest.raises(SystemExit):
        parse_value("draft:60", steps)
    with pytest.raises(SystemExit, match="boolean"):
        parse_value("maybe", True)


def test_a_preset_field_reaches_the_fits_view(restore):
    from icon_engine import options
    from icon_engine.fit.core import QUALITY_PRESETS

    before = options.PRESETS["standard"]
    done = set_constants(["preset.standard.fit.pose_iters=99", "preset.standard.fit.silhouette=128:10,256:20"])
    assert len(done) == 2 and "99" in done[0]
    assert QUALITY_PRESETS["standard"].pose_iters == 99  # the fit reads the table live
    assert QUALITY_PRESETS["standard"].silhouette == ((128, 10), (256, 20))
    assert options.PRESETS["standard"].mesh == before.mesh and options.PRESETS["preview"].fit.pose_iters != 99


def test_module_constants_with_and_without_a_module(restore):
    import icon_engine.fit.core as core
    import icon_engine.joint_fit as joint_fit

    set_constants(["BACK_VIEW_WEIGHT=0.5", "joint_fit.OWN_ARMS_WITHOUT_SIDE=false", "fit.core.W_OCCLUSION=0"],
                  default_modules=("joint_fit",))
    assert joint_fit.BACK_VIEW_WEIGHT == 0.5 and joint_fit.OWN_ARMS_WITHOUT_SIDE is False
    assert core.W_OCCLUSION == 0


@pytest.mark.parametrize("item, message", [
    ("NO_SUCH_CONSTANT=1", "no constant"),
    ("preset.ultra.fit.pose_iters=1", "QUALITY"),
    ("preset.standard.fit.no_such_field=1", "no fit.no_such_field"),
    ("BACK_VIEW_WEIGHT", "NAME=VALUE"),
])
def test_unknown_names_stop_the_run(restore, item, message):
    with pytest.raises(SystemExit, match=message):
        set_constants([item], default_modules=("joint_fit",))


def test_a_packages_constant_is_set_where_its_stage_reads_it(monkeypatch):
    """``texture.BLEND_POWER`` is ``texture.sampling.BLEND_POWER``: the package only re-exports its functions, so
    setting the package's attribute would change nothing the bake reads."""
    import icon_engine.texture as texture

    monkeypatch.setattr(texture.sampling, "BLEND_POWER", texture.sampling.BLEND_POWER)  # restored afterwards
    monkeypatch.setattr(texture.fill, "SHADOW_POWER", texture.fill.SHADOW_POWER)
    done = set_constants(["texture.BLEND_POWER=8", "texture.fill.SHADOW_POWER=1"])
    assert texture.sampling.BLEND_POWER == 8.0 and texture.fill.SHADOW_POWER == 1.0
    assert done[0].startswith("icon_engine.texture.sampling.BLEND_POWER") and not hasattr(texture, "BLEND_POWER")
    with pytest.raises(SystemExit, match="no constant"):
        set_constants(["texture.NO_SUCH_CONSTANT=1"])
