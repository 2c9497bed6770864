"""ICON checkpoint loading: stand-ins in the official layout load strictly and round-trip bit-exactly; every kind of
wrong file is refused with an icon_data error naming the file; the folder search and the cheap description."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from icon_engine.errors import EngineError
from icon_engine.icon import checkpoints as ck

NGF = 4  # test-only width of the normal generators (the official one is 64: 1.46 GB)
_UNPICKLED: list[str] = []


def _mark() -> dict:
    _UNPICKLED.append("ran")
    return {}


class ForeignConfig:
    """Stands for a foreign class pickled into Lightning's hyper-parameters; unpickling it would run _mark."""

    def __reduce__(self):
        return (_mark, ())


def _random_init(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                noise = torch.randn(t.shape, generator=g)
                t.copy_(noise.abs() * 0.1 + 0.5 if "running_var" in name else noise * 0.5)
    return net


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("icon_data") / "data" / "ckpt"
    folder.mkdir(parents=True)
    out = {}
    for i, kind in enumerate(("normal", "icon-filter", "icon-nofilter")):
        net = _random_init(ck.build_network(kind, ngf=NGF), seed=i)
        out[kind] = ck.save_checkpoint(net, folder / ck.FILE_NAMES[kind], lightning=kind != "icon-nofilter")
    return out


def _refused(path: Path, kind: str, ngf: int = 64) -> EngineError:
    with pytest.raises(EngineError) as info:
        ck.load_network(path, kind, ngf=ngf)
    err = info.value
    assert err.code == "icon_data" and str(path) in err.message
    assert "icon.is.tue.mpg.de" in err.hint and "normal.ckpt" in err.hint
    return err


@pytest.mark.parametrize("kind", ["normal", "icon-filter", "icon-nofilter"])
def test_standin_loads_strictly_and_round_trips_bit_exactly(standins, kind: str) -> None:
    net = ck.load_network(standins[kind], kind, ngf=NGF)
    assert not net.training
    saved = torch.load(standins[kind], weights_only=True)
    saved = saved.get("state_dict", saved)
    loaded = {"netG." + k: v for k, v in net.state_dict().items()}
    assert set(saved) == set(loaded)
    for key, tensor in saved.items():
        assert loaded[key].dtype == tensor.dtype and torch.equal(loaded[key], tensor), key


def test_foreign_objects_in_lightning_checkpoint_are_never_run(tmp_path) -> None:
    net = ck.build_network("icon-nofilter")
    state = {"netG." + k: v for k, v in net.state_dict().items()}
    path = tmp_path / "icon-nofilter.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"cfg": ForeignConfig()}, "epoch": 3}, path)
    _UNPICKLED.clear()
    loaded = ck.load_network(path, "icon-nofilter")
    assert _UNPICKLED == []
    assert torch.equal(loaded.if_regressor.filters[0].weight, net.if_regressor.filters[0].weight)


def test_refuses_missing_file(tmp_path) -> None:
    _refused(tmp_path / "normal.ckpt", "normal")


def test_refuses_truncated_file(standins, tmp_path) -> None:
    data = standins["icon-filter"].read_bytes()
    bad = tmp_path / "icon-filter.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    err = _refused(bad, "icon-filter")
    assert err.message == f"{bad} is not a readable PyTorch checkpoint: the file is truncated or corrupt."
    assert err.exit_code == 5


def test_refuses_non_pytorch_file(tmp_path) -> None:
    bad = tmp_path / "normal.ckpt"
    bad.write_text("<html>login required</html>")
    err = _refused(bad, "normal")
    assert err.message == f"{bad} is not a PyTorch checkpoint (it does not hold saved network weights)."


def test_blocked_global_is_named_and_never_run(tmp_path) -> None:
    """A legacy-format file that asks for a function on load: refused in plain words, never suggesting to load it
    without weights_only (PyTorch's own advice), and the function never runs."""
    bad = tmp_path / "icon-nofilter.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(2)}, "cfg": ForeignConfig()}, bad,
               _use_new_zipfile_serialization=False)
    _UNPICKLED.clear()
    err = _refused(bad, "icon-nofilter")
    assert err.message == (f"{bad} was refused: it asks to load the Python object '{__name__}._mark', which a file "
                           "of network weights never needs (loading it could run code from the file).")
    assert "weights_only" not in err.message + err.hint and "Re-running" not in err.message
    assert _UNPICKLED == []


def test_refuses_missing_key(standins, tmp_path) -> None:
    state = torch.load(standins["icon-filter"], weights_only=True)["state_dict"]
    del state["netG.F_filter.conv2.downsample.0.weight"]  # the duplicate GroupNorm entry
    bad = tmp_path / "icon-filter.ckpt"
    torch.save({"state_dict": state}, bad)
    err = _refused(bad, "icon-filter")
    assert "1 key(s) missing" in err.message and "downsample.0.weight" in err.message


def test_refuses_wrong_shape_and_extra_key(standins, tmp_path) -> None:
    state = torch.load(standins["icon-nofilter"], weights_only=True)
    state["netG.if_regressor.filters.1.weight"] = torch.zeros(256, 500, 1)
    bad = tmp_path / "icon-nofilter.ckpt"
    torch.save(state, bad)
    err = _refused(bad, "icon-nofilter")
    assert "[256, 500, 1]" in err.message and "[256, 512, 1]" in err.message
    state = torch.load(standins["icon-nofilter"], weights_only=True)
    state["netG.if_regressor.filters.9.weight"] = torch.zeros(1)
    torch.save(state, bad)
    assert "unexpected key" in _refused(bad, "icon-nofilter").message


def test_refuses_nan_weights_of_a_damaged_download(standins, tmp_path) -> None:
    """A flipped byte in a weight can read as NaN or infinity: every occupancy would be NaN and every mesh empty
    (wave 18); the file is refused by name."""
    state = torch.load(standins["icon-nofilter"], weights_only=True)
    state["netG.if_regressor.filters.1.weight"][3, 7, 0] = float("nan")
    bad = tmp_path / "icon-nofilter.ckpt"
    torch.save(state, bad)
    err = _refused(bad, "icon-nofilter")
    assert "damaged" in err.message and "filters.1.weight" in err.message and "NaN" in err.message


def test_refuses_smpl_body_model_and_names_it(tmp_path) -> None:
    bad = tmp_path / "icon-filter.ckpt"
    torch.save({"v_template": torch.zeros(6890, 3), "shapedirs": torch.zeros(6890, 3, 10),
                "J_regressor": torch.zeros(24, 6890)}, bad)
    assert "an SMPL body model" in _refused(bad, "icon-filter").message


def test_refuses_swapped_variants_and_pifu(standins, tmp_path) -> None:
    assert "icon-nofilter.ckpt" in _refused(standins["icon-nofilter"], "icon-filter").message
    assert "icon-filter.ckpt" in _refused(standins["icon-filter"], "icon-nofilter").message
    assert "normal.ckpt" in _refused(standins["icon-filter"], "normal", ngf=NGF).message
    state = torch.load(standins["icon-filter"], weights_only=True)["state_dict"]
    state["netG.F_filter.conv1.weight"] = torch.zeros(64, 9, 7, 7)  # PIFu/PaMIR: image + normals
    bad = tmp_path / "pifu.ckpt"
    torch.save({"state_dict": state}, bad)
    assert "PIFu/PaMIR" in _refused(bad, "icon-filter").message


def test_refuses_file_without_tensors(tmp_path) -> None:
    bad = tmp_path / "normal.ckpt"
    torch.save({"epoch": 1, "note": "optimizer only"}, bad)
    assert "no network weights" in _refused(bad, "normal").message


def test_ignores_discriminator_keys(standins, tmp_path) -> None:
    state = torch.load(standins["normal"], weights_only=True)["state_dict"]
    state["netG.netD.model.0.weight"] = torch.zeros(3)
    path = tmp_path / "normal.ckpt"
    torch.save({"state_dict": state}, path)
    ck.load_network(path, "normal", ngf=NGF)


def test_find_icon_data_layouts(standins, tmp_path) -> None:
    root = standins["normal"].parents[2]  # <root>/data/ckpt/normal.ckpt
    found = ck.find_icon_data(root)
    assert found is not None and found.variant == "icon-filter"
    assert found.normal == standins["normal"] and found.implicit == standins["icon-filter"]
    assert ck.find_icon_data(standins["normal"].parent) == found
    assert ck.find_icon_data(standins["normal"]) == found  # a file inside the folder
    nofilter = ck.find_icon_data(root, variant="icon-nofilter")
    assert nofilter is not None and nofilter.implicit == standins["icon-nofilter"]
    only_normal = tmp_path / "only"
    only_normal.mkdir()
    (only_normal / "normal.ckpt").write_bytes(standins["normal"].read_bytes())
    assert ck.find_icon_data(only_normal) is None
    assert ck.find_icon_data(None) is None
    with pytest.raises(EngineError) as info:
        ck.require_icon_data(only_normal)
    assert info.value.code == "icon_data" and "icon-filter.ckpt or icon-nofilter.ckpt" in info.value.message
    with pytest.raises(EngineError) as info:
        ck.require_icon_data(tmp_path / "nowhere")
    assert "does not exist" in info.value.message


def test_describe_icon_data(standins, tmp_path) -> None:
    assert ck.describe_icon_data(None)["usable"] is False
    root = standins["normal"].parents[2]
    desc = ck.describe_icon_data(root)
    # the ngf-4 normal stand-in is (rightly) not the official layout; the implicit ones are
    assert desc["files"]["icon-filter"]["status"] == "ok"
    assert desc["files"]["icon-nofilter"]["status"] == "ok"
    assert desc["files"]["normal"]["status"] == "invalid" and desc["usable"] is False
    assert "shape mismatch" in desc["files"]["normal"]["error"]
    empty = ck.describe_icon_data(tmp_path)
    assert empty["usable"] is False and empty["files"]["normal"]["status"] == "missing" and "hint" in empty
    assert zipfile.is_zipfile(standins["icon-filter"])


def test_legacy_format_file_loads(standins, tmp_path) -> None:
    """Checkpoints written by torch < 1.6 (non-zip format) are read too (no memory map, still weights_only)."""
    state = torch.load(standins["icon-nofilter"], weights_only=True)
    path = tmp_path / "icon-nofilter.ckpt"
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    net = ck.load_network(path, "icon-nofilter")
    assert torch.equal(net.if_regressor.filters[2].weight, state["netG.if_regressor.filters.2.weight"])
    assert ck.describe_icon_data(tmp_path)["configured"] is True
