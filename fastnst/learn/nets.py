"""TransformNet: the feed-forward style network (Johnson et al. 2016) and its faster variants.

Contract: ``forward(x, style_weights)`` takes (B, 3, H, W) RGB in [0, 1] and per-sample style weights
(B, N) (``NetConfig.n_styles`` = N; one-hot picks a style, a convex mix blends them; omitted: the
first style) and returns (B, 3, H, W) RGB in [0, 1] (a sigmoid output), for any H and W (odd ones included) large enough that the deepest
level keeps more than one pixel for instance norm (and, with reflection padding, more pixels
than the pad). Each upsampling stage resizes or crops to the exact size of the matching
downsampling stage; a stride2 stem pads odd inputs by one replicated row/column that the
output drops again. ``logits(x, style_weights)`` is the pre-sigmoid body, which ``fastnst.learn.export.FrameIO``
rewires to fold the uint8/BGR/NHWC conversions into the ONNX graph.

docs/results records what each option costs at 640x480 on a 2-core CPU and why "fast" is
built the way it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.config import NetConfig


class CondInstanceNorm(nn.Module):
    """Conditional instance norm (Dumoulin et al. 2017): instance norm (Ulyanov et al. 2016)
    with one scale and shift per style, mixed by the style weights.

    ``forward(x, style_weights)``: x (B, C, H, W), style_weights (B, N) or (1, N) -> (B, C, H, W). With N = 1
    and weight 1 it is ``nn.InstanceNorm2d(C, affine=True)``, whose (C,) parameters it loads.
    """

    def __init__(self, channels: int, n_styles: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_styles, channels))  # (N, C)
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))  # (N, C)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        scale, shift = style_weights @ self.weight, style_weights @ self.bias  # (B or 1, C)
        if len(scale) == 1:  # one mix for the whole batch (the player): one InstanceNormalization op in ONNX
            return F.instance_norm(x, weight=scale[0], bias=shift[0])
        return F.instance_norm(x) * scale[:, :, None, None] + shift[:, :, None, None]  # (B, C, H, W)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("weight", "bias"):  # a single-style checkpoint's (C,) -> (1, C)
            t = state_dict.get(prefix + name)
            if t is not None and t.dim() == 1:
                state_dict[prefix + name] = t[None]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ConvNormAct(nn.Sequential):
    """pad -> conv -> conditional instance norm -> ReLU (each optional).
    ``pad_mode``: "reflect" or "zeros"; ``pad``: the padding width (default ``k // 2``, "same"
    at stride 1). ``forward(x, style_weights)``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, pad_mode: str = "reflect",
                 norm: bool = True, act: bool = True, groups: int = 1, pad: int | None = None, n_styles: int = 1):
        pad = k // 2 if pad is None else pad
        layers: list[nn.Module] = []
        if pad_mode == "reflect" and pad > 0:
            layers.append(nn.ReflectionPad2d(pad))
        layers.append(nn.Conv2d(cin, cout, k, stride, padding=pad if pad_mode == "zeros" else 0, groups=groups))
        if norm:
            layers.append(CondInstanceNorm(cout, n_styles))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, style_weights) if isinstance(layer, CondInstanceNorm) else layer(x)
        return x


class ResidualBlock(nn.Module):
    """x + F(x), F = two 3x3 convs ("full") or two depthwise-separable convs ("separable")."""

    def __init__(self, ch: int, block: str, pad_mode: str, n_styles: int):
        super().__init__()
        if block == "full":
            body = [ConvNormAct(ch, ch, 3, pad_mode=pad_mode, n_styles=n_styles),
                    ConvNormAct(ch, ch, 3, pad_mode=pad_mode, act=False, n_styles=n_styles)]
        elif block == "separable":
            body = [
                ConvNormAct(ch, ch, 3, pad_mode=pad_mode, norm=False, act=False, groups=ch),
                ConvNormAct(ch, ch, 1, n_styles=n_styles),
                ConvNormAct(ch, ch, 3, pad_mode=pad_mode, norm=False, act=False, groups=ch),
                ConvNormAct(ch, ch, 1, act=False, n_styles=n_styles),
            ]
        else:
            raise ValueError(f"unknown residual block type {block!r}")
        self.body = nn.ModuleList(body)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.body:
            y = layer(y, style_weights)
        return x + y


class Upsample(nn.Module):
    """x2 upsampling to an exact ``size``, then instance norm + ReLU at the high resolution.

    "nearest": nearest resize + 3x3 conv (Odena et al. 2016); "bilinear": the same with a
    bilinear resize (no 2x2 blocks for the conv to undo); "shuffle": 3x3 conv to 4x the
    channels at the low resolution + pixel shuffle (Shi et al. 2016); "deconv": a 4x4 stride-2
    transposed conv (kernel divisible by the stride, so no uneven overlap; fewer MACs).
    """

    def __init__(self, cin: int, cout: int, mode: str, pad_mode: str, n_styles: int):
        super().__init__()
        self.mode = mode
        if mode in ("nearest", "bilinear"):
            self.conv = ConvNormAct(cin, cout, 3, pad_mode=pad_mode, norm=False, act=False)
        elif mode == "shuffle":
            self.conv = ConvNormAct(cin, 4 * cout, 3, pad_mode=pad_mode, norm=False, act=False)
        elif mode == "deconv":
            self.conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        else:
            raise ValueError(f"unknown upsample mode {mode!r}")
        self.norm = CondInstanceNorm(cout, n_styles)

    def forward(self, x: torch.Tensor, size: torch.Size, style_weights: torch.Tensor) -> torch.Tensor:
        conv = self.conv if self.mode == "deconv" else (lambda t: self.conv(t, style_weights))
        if self.mode in ("nearest", "bilinear"):
            y = conv(F.interpolate(x, size=size, mode=self.mode))  # (B, cout, *size)
        elif self.mode == "shuffle":
            y = F.pixel_shuffle(conv(x), 2)[..., : size[0], : size[1]]  # (B, cout, *size)
        else:
            y = conv(x)[..., : size[0], : size[1]]  # (B, cout, 2h, 2w) -> (B, cout, *size)
        return F.relu(self.norm(y, style_weights))


class TransformNet(nn.Module):
    """Encoder (stem + two stride-2 convs), residual blocks, decoder (two upsamplings + out conv).
    With two ``channels`` instead of three, one stride-2 conv and one upsampling: the residual
    blocks run at a quarter of the stem's resolution instead of an eighth.

    ``stem="conv"``: a stride-1 ``end_kernel`` conv stem and output conv at full resolution
    (Johnson). ``stem="stride2"``: the stem is a stride-2 ``end_kernel`` conv (a learned
    space-to-depth) and the output a stride-2 transposed conv, so the whole net runs at H/2 and
    below, and in ONNX nothing but those two touches the full-resolution frame; both pad with
    zeros if ``padding="zeros"`` and by edge replication otherwise, and ``end_kernel`` must be
    even (2: no overlap; 4: a 4x4 window every 2 pixels).
    """

    def __init__(self, cfg: NetConfig = NetConfig()):
        super().__init__()
        if cfg.stem not in ("conv", "stride2"):
            raise ValueError(f"unknown stem {cfg.stem!r} (conv or stride2)")
        if cfg.padding not in ("reflect", "zeros"):
            raise ValueError(f"unknown padding {cfg.padding!r} (reflect or zeros)")
        k = cfg.end_kernel
        if (cfg.stem == "stride2") != (k % 2 == 0):
            parity = "an even" if cfg.stem == "stride2" else "an odd"
            raise ValueError(f"a {cfg.stem} stem needs {parity} end_kernel, got {k}")
        if cfg.n_styles < 1:
            raise ValueError(f"a net needs at least one style, got {cfg.n_styles}")
        if len(cfg.channels) not in (2, 3):
            raise ValueError(f"channels must have 2 or 3 items (the stem's, then one per stride-2 conv "
                             f"inside), got {list(cfg.channels)}")
        self.cfg = cfg
        c1, c2, c3 = (*cfg.channels, None)[:3]  # c3 None: no second stride-2 conv
        pad, n = cfg.padding, cfg.n_styles
        if cfg.stem == "conv":
            self.edge_pad = (0, 0)
            self.stem = ConvNormAct(3, c1, k, pad_mode=pad, n_styles=n)
            self.out = ConvNormAct(c1, 3, k, pad_mode=pad, norm=False, act=False)
        else:
            # "same" padding of the ends is p input pixels and q pixels of the H/2 map feeding the
            # transposed conv (whose border outputs would otherwise get fewer taps). With zeros it
            # is the convs' own padding; otherwise the frame and the map are edge-replicated
            # (``forward``, ``FrameIO``) so that nothing marks where the frame ends: zero padding
            # lets the net learn position, e.g. paint the Scream's orange sky along the top edge.
            p, q = (k - 2) // 2, k // 4
            self.edge_pad = (0, 0) if pad == "zeros" else (p, q)
            ep, eq = self.edge_pad
            self.stem = ConvNormAct(3, c1, k, stride=2, pad_mode="zeros", pad=p - ep, n_styles=n)
            self.out = nn.ConvTranspose2d(c1, 3, k, stride=2, padding=p + 2 * eq)
        # Built in this order (the order the seed's random init follows) whatever the depth.
        self.down1 = ConvNormAct(c1, c2, 3, stride=2, pad_mode=pad, n_styles=n)
        self.down2 = ConvNormAct(c2, c3, 3, stride=2, pad_mode=pad, n_styles=n) if c3 else None
        self.res = nn.ModuleList([ResidualBlock(c3 or c2, cfg.block, pad, n) for _ in range(cfg.res_blocks)])
        self.up1 = Upsample(c3, c2, cfg.upsample, pad, n) if c3 else None
        self.up2 = Upsample(c2, c1, cfg.upsample, pad, n)

    def norms(self) -> list[CondInstanceNorm]:
        """Every conditional instance norm: the only per-style parameters."""
        return [m for m in self.modules() if isinstance(m, CondInstanceNorm)]

    def _checked_weights(self, style_weights: torch.Tensor | None, batch: int) -> torch.Tensor:
        """None -> the first style, (B, N) or (1, N) as given."""
        if style_weights is None:
            style_weights = F.one_hot(torch.zeros(1, dtype=torch.long), self.cfg.n_styles).float()  # (1, N)
        if not torch.jit.is_tracing() and (style_weights.dim() != 2 or style_weights.shape[1] != self.cfg.n_styles
                                           or style_weights.shape[0] not in (1, batch)):
            raise ValueError(f"style weights must be (B, {self.cfg.n_styles}) or (1, {self.cfg.n_styles}), "
                             f"got {tuple(style_weights.shape)}")
        return style_weights

    def logits(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, H, W) pre-sigmoid output (H, W even for a stride2 stem, whose
        input comes already padded by ``edge_pad[0]`` on each side: (B, 3, H + 2p, W + 2p))."""
        style_weights = self._checked_weights(style_weights, x.shape[0]).to(x.device)  # (B or 1, N)
        s1 = self.stem(x, style_weights)  # (B, c1, H, W), or (B, c1, H/2, W/2) for a stride2 stem
        s2 = y = self.down1(s1, style_weights)  # (B, c2, ceil(h1/2), ceil(w1/2))
        if self.down2 is not None:
            y = self.down2(s2, style_weights)  # (B, c3, ceil(h1/4), ceil(w1/4))
        for block in self.res:
            y = block(y, style_weights)
        if self.up1 is not None:
            y = self.up1(y, s2.shape[-2:], style_weights)  # (B, c2, *s2 size)
        y = self.up2(y, s1.shape[-2:], style_weights)  # (B, c1, *s1 size)
        if self.edge_pad[1]:
            y = F.pad(y, (self.edge_pad[1],) * 4, mode="replicate")
        return self.out(y, style_weights) if isinstance(self.out, ConvNormAct) else self.out(y)  # (B, 3, H, W)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        if self.cfg.stem == "conv":
            return torch.sigmoid(self.logits(x, style_weights))  # (B, 3, H, W) in [0, 1]
        h, w = x.shape[-2:]
        p = self.edge_pad[0]
        x = F.pad(x, (p, p + w % 2, p, p + h % 2), mode="replicate")  # (B, 3, H' + 2p, W' + 2p), H', W' even
        return torch.sigmoid(self.logits(x, style_weights)[..., :h, :w])  # (B, 3, H, W) in [0, 1]
