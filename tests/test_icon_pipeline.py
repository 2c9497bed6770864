"""The engine's pipeline with ``icon_data``: the ICON path runs inside ``reconstruct`` and writes a valid bundle.

The implicit checkpoint is a full-size stand-in in the official layout (loaded and validated by the real loader);
only the 1.46 GB normal generators are swapped for reduced-width ones and the preset for a small grid, so the
test stays within a couple of minutes on 2 cores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.icon_path import sdf_readout
from icon_engine.bundle import read_bundle
from icon_engine.icon import checkpoints as ck
from icon_engine.icon import infer
from icon_engine.options import ReconstructOptions

pytestmark = pytest.mark.slow


def test_reconstruct_with_icon_data_writes_a_valid_bundle(tmp_path, monkeypatch) -> None:
    from icon_engine.pipeline import reconstruct
    from icon_engine.sample import sample_photo_path

    data = tmp_path / "icon" / "data" / "ckpt"
    data.mkdir(parents=True)
    torch.manual_seed(0)
    ck.save_checkpoint(sdf_readout(ck.build_network("icon-filter")), data / "icon-filter.ckpt")
    (data / "normal.ckpt").write_bytes(b"stand-in: replaced below")
    loaded: list[str] = []

    def small_networks(icon_data: ck.IconData, device: str | torch.device = "cpu") -> ck.IconNetworks:
        loaded.append(icon_data.variant)
        implicit = ck.load_network(icon_data.implicit, icon_data.variant, device)  # the real, strict loader
        return ck.IconNetworks(ck.build_network("normal", ngf=4).eval(), implicit, icon_data.variant)

    monkeypatch.setattr(infer, "load_icon_networks", small_networks)
    monkeypatch.setattr(infer, "settings_for", lambda quality, device: infer.IconSettings(
        image_res=128, refine_iters=0, resolutions=(17, 33, 65, 129)))
    options = ReconstructOptions(quality="preview", icon_data=tmp_path / "icon", texture_size=512)
    bundle_dir = reconstruct(sample_photo_path(), tmp_path / "out", options)
    assert loaded == ["icon-filter"]
    bundle = read_bundle(bundle_dir)  # validates the whole bundle
    assert bundle.meta["surface"]["method"] == "icon:icon-filter"
    stats = bundle.meta["surface"]["stats"]
    assert stats["variant"] == "icon-filter" and stats["resolution"] == 128
    # the sdf read-out stand-in returns the body: the ICON surface hugs the fitted body
    mesh = bundle.posed_mesh
    assert len(mesh.faces) > 1000
    height = np.ptp(mesh.vertices[:, 1])
    assert 1.0 < height < 2.3
