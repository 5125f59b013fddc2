"""TransformNet: the feed-forward style network (Johnson et al. 2016) and its faster variants.

Contract: ``forward(x)`` takes (B, 3, H, W) RGB in [0, 1] for any H, W >= 1 and returns
(B, 3, H, W) RGB in [0, 1] (a sigmoid output). Odd sizes work: each upsampling stage resizes
(or crops) to the exact size of the matching downsampling stage, and the pixel-unshuffle stem
pads odd inputs by one replicated row/column that the output drops again.

The net is ``stem -> down1 -> down2 -> residual blocks -> up1 -> up2 -> out``. With
``stem="unshuffle"`` the whole pyramid runs one octave lower: the frame is folded 2x2 into 12
channels (space-to-depth, Shi et al. 2016), every layer runs at H/2 and below, and the output
conv emits 12 channels that a pixel shuffle unfolds back to (3, H, W). ``logits(x)`` is that
pre-sigmoid, pre-unfold body; ``fastnst.export.FrameIO`` calls it directly so that the
uint8/BGR/NHWC conversions fold into the graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.config import NetConfig

PRESETS: dict[str, NetConfig] = {
    # Johnson et al. 2016, with upsample+conv instead of transposed conv (Odena et al. 2016).
    "johnson": NetConfig(),
    # >= 30 fps at 640x480 on 2 CPU cores (models/README.md has the measurements): nothing but
    # the 2x2 fold/unfold runs at full resolution; narrow, separable residual stage at H/8.
    "fast": NetConfig(arch="fast", channels=(16, 32, 64), res_blocks=3, end_kernel=3, upsample="shuffle",
                      stem="unshuffle", block="separable", padding="zeros"),
}

UNSHUFFLE = 2  # space-to-depth factor of the "unshuffle" stem


def preset(name: str) -> NetConfig:
    from fastnst import UserError

    if name not in PRESETS:
        raise UserError(f"unknown architecture {name!r} (choose from {', '.join(PRESETS)})")
    return PRESETS[name]


class ConvNormAct(nn.Sequential):
    """pad -> conv -> instance norm (Ulyanov et al. 2016) -> ReLU (each optional)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: str = "reflect",
                 norm: bool = True, act: bool = True, groups: int = 1):
        layers: list[nn.Module] = []
        if padding == "reflect" and k > 1:
            layers.append(nn.ReflectionPad2d(k // 2))
        layers.append(nn.Conv2d(cin, cout, k, stride, padding=k // 2 if padding == "zeros" else 0, groups=groups))
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """x + F(x), F = two 3x3 convs ("full") or two depthwise-separable convs ("separable")."""

    def __init__(self, ch: int, block: str, padding: str):
        super().__init__()
        if block == "full":
            body = [ConvNormAct(ch, ch, 3, padding=padding), ConvNormAct(ch, ch, 3, padding=padding, act=False)]
        elif block == "separable":
            body = [
                ConvNormAct(ch, ch, 3, padding=padding, norm=False, act=False, groups=ch),
                ConvNormAct(ch, ch, 1),
                ConvNormAct(ch, ch, 3, padding=padding, norm=False, act=False, groups=ch),
                ConvNormAct(ch, ch, 1, act=False),
            ]
        else:
            raise ValueError(f"unknown residual block type {block!r}")
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """x2 upsampling to an exact ``size``: nearest resize + conv (Odena et al. 2016), or a conv to
    4x the channels at low resolution + pixel shuffle (Shi et al. 2016), which keeps the conv
    at the low resolution. Instance norm + ReLU follow, at the high resolution."""

    def __init__(self, cin: int, cout: int, mode: str, padding: str):
        super().__init__()
        if mode not in ("nearest", "shuffle"):
            raise ValueError(f"unknown upsample mode {mode!r}")
        self.mode = mode
        if mode == "nearest":
            self.conv = ConvNormAct(cin, cout, 3, padding=padding, norm=False, act=False)
        else:
            self.conv = ConvNormAct(cin, 4 * cout, 3, padding=padding, norm=False, act=False)
        self.norm = nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if self.mode == "nearest":
            y = self.conv(F.interpolate(x, size=size, mode="nearest"))  # (B, cout, *size)
        else:
            y = F.pixel_shuffle(self.conv(x), 2)[..., : size[0], : size[1]]  # (B, cout, *size)
        return F.relu(self.norm(y))


class TransformNet(nn.Module):
    """Encoder (stem + two stride-2 convs), residual blocks, decoder (two upsamplings + out conv)."""

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__()
        if cfg.stem not in ("conv", "unshuffle"):
            raise ValueError(f"unknown stem {cfg.stem!r}")
        if cfg.padding not in ("reflect", "zeros"):
            raise ValueError(f"unknown padding {cfg.padding!r}")
        self.cfg = cfg
        c1, c2, c3 = cfg.channels
        pad = cfg.padding
        self.fold = UNSHUFFLE if cfg.stem == "unshuffle" else 1
        io_ch = 3 * self.fold**2
        self.stem = ConvNormAct(io_ch, c1, cfg.end_kernel, padding=pad)
        self.down1 = ConvNormAct(c1, c2, 3, stride=2, padding=pad)
        self.down2 = ConvNormAct(c2, c3, 3, stride=2, padding=pad)
        self.res = nn.Sequential(*[ResidualBlock(c3, cfg.block, pad) for _ in range(cfg.res_blocks)])
        self.up1 = Upsample(c3, c2, cfg.upsample, pad)
        self.up2 = Upsample(c2, c1, cfg.upsample, pad)
        self.out = ConvNormAct(c1, io_ch, cfg.end_kernel, padding=pad, norm=False, act=False)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3*f*f, h, w) -> (B, 3*f*f, h, w) pre-sigmoid output, f = ``self.fold``; for f = 2,
        the input is a space-to-depth folded frame of even size (2h, 2w)."""
        s1 = self.stem(x)  # (B, c1, h, w)
        s2 = self.down1(s1)  # (B, c2, ceil(h/2), ceil(w/2))
        y = self.res(self.down2(s2))  # (B, c3, ceil(h/4), ceil(w/4))
        y = self.up1(y, s2.shape[-2:])  # (B, c2, h/2, w/2)
        y = self.up2(y, s1.shape[-2:])  # (B, c1, h, w)
        return self.out(y)  # (B, 3*f*f, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold == 1:
            return torch.sigmoid(self.logits(x))  # (B, 3, H, W) in [0, 1]
        h, w = x.shape[-2:]
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")  # (B, 3, H', W'), even
        y = self.logits(F.pixel_unshuffle(x, 2))  # (B, 12, H'/2, W'/2)
        return torch.sigmoid(F.pixel_shuffle(y, 2)[..., :h, :w])  # (B, 3, H, W) in [0, 1]
