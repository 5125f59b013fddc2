"""TransformNet: the feed-forward style network (Johnson et al. 2016) and its faster variants.

Contract: ``forward(x)`` takes (B, 3, H, W) RGB in [0, 1] for any H, W >= 1 and returns
(B, 3, H, W) RGB in [0, 1] (a sigmoid output). Odd sizes work: each upsampling stage resizes
to the exact size of the matching downsampling stage, so nothing is padded or cropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.config import NetConfig

PRESETS: dict[str, NetConfig] = {
    # Johnson et al. 2016, with upsample+conv instead of transposed conv (Odena et al. 2016).
    "johnson": NetConfig(),
}


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


class TransformNet(nn.Module):
    """Encoder (stem + two stride-2 convs), residual blocks, decoder (two upsamplings + out conv)."""

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = cfg.channels
        pad = cfg.padding
        self.stem = ConvNormAct(3, c1, cfg.end_kernel, padding=pad)
        self.down1 = ConvNormAct(c1, c2, 3, stride=2, padding=pad)
        self.down2 = ConvNormAct(c2, c3, 3, stride=2, padding=pad)
        self.res = nn.Sequential(*[ResidualBlock(c3, cfg.block, pad) for _ in range(cfg.res_blocks)])
        self.up1 = ConvNormAct(c3, c2, 3, padding=pad)
        self.up2 = ConvNormAct(c2, c1, 3, padding=pad)
        self.out = ConvNormAct(c1, 3, cfg.end_kernel, padding=pad, norm=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.stem(x)  # (B, c1, H, W)
        s2 = self.down1(s1)  # (B, c2, ceil(H/2), ceil(W/2))
        y = self.res(self.down2(s2))  # (B, c3, ceil(H/4), ceil(W/4))
        y = self.up1(F.interpolate(y, size=s2.shape[-2:], mode="nearest"))  # (B, c2, H/2, W/2)
        y = self.up2(F.interpolate(y, size=s1.shape[-2:], mode="nearest"))  # (B, c1, H, W)
        return torch.sigmoid(self.out(y))  # (B, 3, H, W) in [0, 1]
