"""ICON's networks in torch, with state_dict keys and shapes exactly as in the official checkpoints.

Three networks (architecture facts from the public ICON repository; the code here is our own):

- :class:`NormalNet` — two pix2pixHD global generators ``netF`` (front) and ``netB`` (back). Each takes the
  photo crop (3 ch, [-1, 1], background 0) and a rendered body normal map (3 ch) at 512², and predicts the
  clothed normal map. Keys in ``normal.ckpt``: ``netG.netF.model.*``, ``netG.netB.model.*``.
- :class:`HGFilter` — the stacked-hourglass image filter of icon-filter (GroupNorm, average-pool down, bicubic
  up), applied with shared weights to the front and to the back normal map. Keys ``netG.F_filter.*``.
- :class:`ImplicitMLP` — the occupancy MLP (1×1 Conv1d, BatchNorm1d, LeakyReLU, the input re-concatenated before
  layers 2 and 3). Keys ``netG.if_regressor.*``.

:class:`ImplicitNet` bundles the filter (or none, for icon-nofilter) and the MLP under the names the
checkpoints use. Normal-map frame everywhere: x right, y up, z towards the viewer (unit vectors, background 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Channel widths of ICON's implicit MLP after the input layer (``mlp_dim`` [_, 512, 256, 128, 1]).
MLP_WIDTHS: tuple[int, ...] = (512, 256, 128, 1)
#: Layers of the MLP that take the network input concatenated again (``res_layers`` [2, 3, 4]).
MLP_RES_LAYERS: tuple[int, ...] = (2, 3, 4)
#: Body features per point: signed distance (1), canonical code cmap (3), body normal (3).
BODY_FEATURE_DIM = 7
#: Output channels of the filter head per side (``hourglass_dim``).
HOURGLASS_DIM = 6


# ----------------------------------------------------------------------------------------------------------------
# Normal networks (pix2pixHD global generator)
# ----------------------------------------------------------------------------------------------------------------


class ResnetBlock(nn.Module):
    """Reflection-padded residual block: ``x + IN(conv(pad(relu(IN(conv(pad(x)))))))``; keys ``conv_block.{1,5}``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0),
            nn.InstanceNorm2d(dim, affine=False),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0),
            nn.InstanceNorm2d(dim, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class GlobalGenerator(nn.Module):
    """pix2pixHD global generator: 7×7 stem, ``n_down`` stride-2 convs, ``n_blocks`` residual blocks,
    ``n_down`` transposed convs, 7×7 head and tanh. Instance norm without affine parameters (no state keys).

    ``ngf`` is 64 in ICON's checkpoint; smaller values exist only for fast tests (same key names, smaller shapes).
    Input (B, in_ch, H, W) with H, W divisible by 2**n_down; output (B, out_ch, H, W) in (-1, 1).
    """

    def __init__(self, in_ch: int = 6, out_ch: int = 3, ngf: int = 64, n_down: int = 4, n_blocks: int = 9) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, kernel_size=7, padding=0),
            nn.InstanceNorm2d(ngf, affine=False),
            nn.ReLU(True),
        ]
        for i in range(n_down):
            c = ngf * 2**i
            layers += [
                nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1),
                nn.InstanceNorm2d(2 * c, affine=False),
                nn.ReLU(True),
            ]
        c = ngf * 2**n_down
        layers += [ResnetBlock(c) for _ in range(n_blocks)]
        for i in range(n_down):
            c = ngf * 2 ** (n_down - i)
            layers += [
                nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(c // 2, affine=False),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.multiple = 2**n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def foreground_mask(image: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float mask of pixels where the masked image (B, 3, H, W) is non-zero (ICON's convention)."""
    return (image.abs().sum(dim=1, keepdim=True) != 0.0).to(image.dtype)


def unit_normals(raw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Normalise (B, 3, H, W) vectors to unit length per pixel and zero the background (``mask`` (B, 1, H, W))."""
    return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8) * mask


class NormalNet(nn.Module):
    """ICON's clothed-normal predictor: ``netF`` (front) and ``netB`` (back) global generators.

    ``forward(image, body_front, body_back)``: ``image`` (B, 3, H, W) in [-1, 1] with background exactly 0;
    ``body_front`` / ``body_back`` (B, 3, H, W) rendered body normals (background 0). Returns unit clothed normals
    front and back, (B, 3, H, W) each, zero outside the image's foreground. H, W: 512 as in training.
    """

    def __init__(self, ngf: int = 64) -> None:
        super().__init__()
        self.netF = GlobalGenerator(6, 3, ngf)
        self.netB = GlobalGenerator(6, 3, ngf)

    def forward(
        self, image: torch.Tensor, body_front: torch.Tensor, body_back: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = foreground_mask(image)
        front = self.netF(torch.cat([image, body_front], dim=1))
        back = self.netB(torch.cat([image, body_back], dim=1))
        return unit_normals(front, mask), unit_normals(back, mask)


# ----------------------------------------------------------------------------------------------------------------
# Hourglass filter (icon-filter)
# ----------------------------------------------------------------------------------------------------------------


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels)


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Pre-activation three-branch block: out/2 + out/4 + out/4 channels concatenated, plus the residual (through
    GN → ReLU → 1×1 conv when the width changes). ``bn4`` and ``downsample.0`` are one GroupNorm stored twice."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout // 2)
        self.conv2 = _conv3x3(cout // 2, cout // 4)
        self.conv3 = _conv3x3(cout // 4, cout // 4)
        self.bn1 = _gn(cin)
        self.bn2 = _gn(cout // 2)
        self.bn3 = _gn(cout // 4)
        self.bn4 = _gn(cin)
        self.downsample: nn.Module | None = None
        if cin != cout:
            self.downsample = nn.Sequential(self.bn4, nn.ReLU(True), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat([out1, out2, out3], dim=1) + residual


class HourGlass(nn.Module):
    """Recursive hourglass of ``depth`` levels on ``features`` channels (average-pool down, bicubic ×2 up with
    align_corners=True). Registration order b1_L, b2_L, (recursion | b2_plus_1), b3_L matches the checkpoint."""

    def __init__(self, depth: int, features: int) -> None:
        super().__init__()
        self.depth = depth
        self._build(depth, features)

    def _build(self, level: int, features: int) -> None:
        self.add_module(f"b1_{level}", ConvBlock(features, features))
        self.add_module(f"b2_{level}", ConvBlock(features, features))
        if level > 1:
            self._build(level - 1, features)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
        self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _run(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up1 = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._run(level - 1, low) if level > 1 else self._modules[f"b2_plus_{level}"](low)
        low = self._modules[f"b3_{level}"](low)
        return up1 + F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self.depth, x)


class HGFilter(nn.Module):
    """ICON's image filter: 7×7/2 conv stem (GN, ReLU), ConvBlock 64→128 + 2× average pool, ConvBlocks 128→128→256,
    then ``num_stack`` hourglass stacks each with a 1×1 head of ``out_dim`` channels.

    Input (B, in_dim, H, W); returns the list of per-stack heads, each (B, out_dim, H/4, W/4) (128² for 512²).
    """

    def __init__(self, in_dim: int = 3, num_stack: int = 2, depth: int = 2, out_dim: int = HOURGLASS_DIM) -> None:
        super().__init__()
        self.num_stack = num_stack
        self.conv1 = nn.Conv2d(in_dim, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = _gn(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        for i in range(num_stack):
            self.add_module(f"m{i}", HourGlass(depth, 256))
            self.add_module(f"top_m_{i}", ConvBlock(256, 256))
            self.add_module(f"conv_last{i}", nn.Conv2d(256, 256, kernel_size=1))
            self.add_module(f"bn_end{i}", _gn(256))
            self.add_module(f"l{i}", nn.Conv2d(256, out_dim, kernel_size=1))
            if i < num_stack - 1:
                self.add_module(f"bl{i}", nn.Conv2d(256, 256, kernel_size=1))
                self.add_module(f"al{i}", nn.Conv2d(out_dim, 256, kernel_size=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        previous = self.conv4(self.conv3(x))
        outputs = []
        for i in range(self.num_stack):
            ll = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            ll = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](ll)))
            head = self._modules[f"l{i}"](ll)
            outputs.append(head)
            if i < self.num_stack - 1:
                previous = previous + self._modules[f"bl{i}"](ll) + self._modules[f"al{i}"](head)
        return outputs


# ----------------------------------------------------------------------------------------------------------------
# Implicit MLP and the assembled implicit network
# ----------------------------------------------------------------------------------------------------------------


class ImplicitMLP(nn.Module):
    """ICON's occupancy MLP over per-point features (B, in_dim, N) → raw occupancy (B, 1, N).

    Layers: Conv1d(in→512), (512→256), (256+in→128), (128+in→1); BatchNorm1d + LeakyReLU(0.01) after all but the
    last. No sigmoid: ICON's released inference thresholds the raw output at 0.5 (test_mode drops the sigmoid).
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        widths = (in_dim, *MLP_WIDTHS)
        self.filters = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(len(widths) - 1):
            cin = widths[i] + (in_dim if i in MLP_RES_LAYERS else 0)
            self.filters.append(nn.Conv1d(cin, widths[i + 1], 1))
            if i < len(widths) - 2:
                self.norms.append(nn.BatchNorm1d(widths[i + 1]))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        y = feature
        last = len(self.filters) - 1
        for i, layer in enumerate(self.filters):
            y = layer(torch.cat([y, feature], dim=1) if i in MLP_RES_LAYERS else y)
            if i != last:
                y = F.leaky_relu(self.norms[i](y))
        return y


def select_by_visibility(features: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Front half of the channels where ``visible`` (B, 1, N) is 1, back half where 0: (B, 2C, N) → (B, C, N)."""
    half = features.shape[1] // 2
    vis = visible.to(features.dtype)
    return features[:, :half] * vis + features[:, half:] * (1.0 - vis)


def sample_image(features: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (B, C, N) of feature maps (B, C, H, W) at ``xy`` (B, N, 2) in [-1, 1] (x right, y down),
    align_corners=True, zero outside."""
    out = F.grid_sample(features, xy.unsqueeze(2), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[..., 0]


class ImplicitNet(nn.Module):
    """ICON's implicit function: optional ``F_filter`` (icon-filter) and the ``if_regressor`` MLP.

    MLP input per point: visibility-selected image feature (6 ch with the filter, 3 without) + body features
    [sdf, cmap (3), body normal (3)] → 13 (icon-filter) or 10 (icon-nofilter).
    """

    def __init__(self, use_filter: bool) -> None:
        super().__init__()
        self.use_filter = use_filter
        image_dim = HOURGLASS_DIM if use_filter else 3
        self.if_regressor = ImplicitMLP(image_dim + BODY_FEATURE_DIM)
        if use_filter:
            self.F_filter = HGFilter(3, 2, 2, HOURGLASS_DIM)

    def image_features(self, normal_front: torch.Tensor, normal_back: torch.Tensor) -> torch.Tensor:
        """Front and back clothed normal maps (B, 3, H, W) → feature maps (B, 2C, h, w), front channels first.

        With the filter: the last hourglass stack, 2×6 channels at H/4; without: the normal maps themselves."""
        if not self.use_filter:
            return torch.cat([normal_front, normal_back], dim=1)
        return torch.cat([self.F_filter(normal_front)[-1], self.F_filter(normal_back)[-1]], dim=1)

    def query(
        self, features: torch.Tensor, xy: torch.Tensor, body_features: torch.Tensor, visible: torch.Tensor
    ) -> torch.Tensor:
        """Raw occupancy (B, 1, N) at N points.

        ``features`` from :meth:`image_features`; ``xy`` (B, N, 2) the points' image positions in [-1, 1];
        ``body_features`` (B, 7, N) [sdf, cmap, normal]; ``visible`` (B, 1, N) in {0, 1} (1: use the front)."""
        local = select_by_visibility(sample_image(features, xy), visible)
        return self.if_regressor(torch.cat([local, body_features], dim=1))


def icon_state_prefix(state: dict[str, torch.Tensor], prefix: str = "netG.") -> dict[str, torch.Tensor]:
    """Our module's state_dict → the checkpoint's key names (``netG.`` prepended)."""
    return {prefix + k: v for k, v in state.items()}
