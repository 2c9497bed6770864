"""ICON networks: exact checkpoint layout (every key and shape, both directions) and forward behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from icon_engine.icon import networks as nw
from icon_engine.icon.checkpoints import LAYOUT_PATH, build_network, expected_layout

SHARED_KEYS = Path(__file__).resolve().parents[2] / "shared" / "research" / "icon_checkpoint_keys.json"


def _layout_of(net: torch.nn.Module) -> dict[str, list[int]]:
    return {"netG." + k: list(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("kind", ["normal", "icon-filter", "icon-nofilter"])
def test_full_size_layout_matches_official_table(kind: str) -> None:
    """Built at full size on the meta device (nothing allocated): same keys, same order, same shapes."""
    with torch.device("meta"):
        net = build_network(kind)
    ours = _layout_of(net)
    official = expected_layout(kind)
    assert sorted(set(official) - set(ours)) == []  # nothing missing
    assert sorted(set(ours) - set(official)) == []  # nothing extra
    assert list(ours) == list(official)  # registration order as in the checkpoint
    for key, shape in official.items():
        assert ours[key] == shape, key


def test_packaged_layout_equals_research_table() -> None:
    if not SHARED_KEYS.exists():
        pytest.skip("../shared/research/icon_checkpoint_keys.json is absent")
    assert json.loads(LAYOUT_PATH.read_text()) == json.loads(SHARED_KEYS.read_text())


def test_parameter_counts() -> None:
    with torch.device("meta"):
        normal = build_network("normal")
        filt = build_network("icon-filter")
    assert sum(p.numel() for p in normal.netF.parameters()) == sum(p.numel() for p in normal.netB.parameters())
    assert sum(p.numel() for p in normal.parameters()) == 364_905_350  # ≈1.46 GB fp32
    assert sum(v.numel() for v in filt.state_dict().values()) == 7_367_581


def test_convblock_bn4_is_downsample_norm() -> None:
    block = nw.ConvBlock(64, 128)
    assert block.downsample is not None and block.downsample[0] is block.bn4
    same = nw.ConvBlock(128, 128)
    assert same.downsample is None and "bn4.weight" in same.state_dict()


def test_normal_net_outputs_unit_normals_and_masked_background() -> None:
    torch.manual_seed(0)
    net = nw.NormalNet(ngf=4).eval()
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    image[..., :20, :] = 0.0  # background rows
    body = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        front, back = net(image, body, body)
    assert front.shape == back.shape == (1, 3, 64, 64)
    fg = nw.foreground_mask(image)[0, 0].bool()
    for out in (front, back):
        norms = out[0].norm(dim=0)
        assert torch.allclose(norms[fg], torch.ones_like(norms[fg]), atol=1e-5)
        assert torch.count_nonzero(out[0][:, ~fg]) == 0
    assert not torch.allclose(front, back)  # two independent generators


def test_filter_feature_shapes_and_visibility_selection() -> None:
    torch.manual_seed(0)
    filt = nw.ImplicitNet(use_filter=True).eval()
    nofilt = nw.ImplicitNet(use_filter=False).eval()
    nf, nb = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = filt.image_features(nf, nb)
        raw = nofilt.image_features(nf, nb)
    assert feats.shape == (1, 12, 16, 16)
    assert raw.shape == (1, 6, 64, 64)
    vis = torch.tensor([[[1.0, 0.0]]])
    sel = nw.select_by_visibility(torch.arange(12.0).view(1, 12, 1).expand(1, 12, 2), vis)
    assert sel[0, :, 0].tolist() == list(range(6)) and sel[0, :, 1].tolist() == list(range(6, 12))


@pytest.mark.parametrize("use_filter,in_dim", [(True, 13), (False, 10)])
def test_query_feeds_mlp_and_has_no_sigmoid(use_filter: bool, in_dim: int) -> None:
    torch.manual_seed(0)
    net = nw.ImplicitNet(use_filter=use_filter).eval()
    assert net.if_regressor.filters[0].in_channels == in_dim
    with torch.no_grad():
        net.if_regressor.filters[-1].bias.fill_(10.0)  # a sigmoid would cap the output below 1
        feats = net.image_features(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64))
        n = 50
        xy = torch.rand(1, n, 2) * 2 - 1
        body = torch.randn(1, 7, n)
        vis = (torch.rand(1, 1, n) > 0.5).float()
        out = net.query(feats, xy, body, vis)
    assert out.shape == (1, 1, n)
    assert out.max() > 1.0
