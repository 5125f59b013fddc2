"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016) as pure functions, plus one
``PerceptualLoss`` module that wires them to a VGGEncoder and holds the style targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.config import LossConfig
from fastnst.learn.vgg import VGGEncoder


def gram_matrix(feats: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix normalised by C*H*W, always in float32: under bf16
    autocast a sum over H*W products in bf16 loses the small style differences."""
    b, c, h, w = feats.shape
    with torch.autocast(feats.device.type, enabled=False):
        f = feats.float().reshape(b, c, h * w)  # (B, C, HW)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between feature maps of the same shape: a float32 scalar."""
    return F.mse_loss(feats.float(), target.float())


def style_loss(
    grams: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor], weights: Mapping[str, float]
) -> torch.Tensor:
    """Per-sample weighted sum over layers of the MSE between Gram matrices: (B,).

    ``grams[l]``: (B, C, C); ``targets[l]``: (1, C, C) or (B, C, C), broadcast over the batch.
    """
    total = 0.0
    for layer, w in weights.items():
        total = total + w * (grams[layer] - targets[layer]).pow(2).mean(dim=(1, 2))  # (B,)
    return total


def tv_loss(img: torch.Tensor) -> torch.Tensor:
    """Total variation of (B, C, H, W): mean squared difference between neighbouring pixels."""
    dh = img[..., 1:, :] - img[..., :-1, :]  # (B, C, H-1, W)
    dw = img[..., :, 1:] - img[..., :, :-1]  # (B, C, H, W-1)
    return dh.pow(2).mean() + dw.pow(2).mean()


class PerceptualLoss(nn.Module):
    """Content + style + TV loss against S fixed style images.

    The Gram targets of each style are computed once here and kept as buffers (S, C, C).
    ``forward(x, content_targets, teacher_targets=None, style_weights=None)`` with x: (B, 3, H, W)
    RGB [0, 1], the dict from ``content_targets(content)`` and per-sample style weights (B, S)
    (one-hot: that style; a mix blends the Gram targets; None: ``style_blend``, default equal)
    returns scalars {"content", "style", "tv", "total"} (the first three unweighted, ``total``
    weighted) and "style_each", the (B,) per-sample style terms. With ``teacher_targets`` (the
    ``content_targets`` of a teacher net's output) it adds "distill", the content loss against
    them, weighted by ``distill_weight`` in ``total``.
    """

    def __init__(self, encoder: VGGEncoder, styles: Sequence[torch.Tensor], *, content_layers: Sequence[str],
                 style_layers: Mapping[str, float], content_weight: float, style_weight: float, tv_weight: float = 0.0,
                 distill_weight: float = 0.0, style_blend: Sequence[float] | None = None):
        super().__init__()
        missing = set(content_layers) | set(style_layers)
        missing -= set(encoder.layers)
        if missing:
            raise ValueError(f"encoder does not return layer(s) {sorted(missing)}")
        self.encoder = encoder
        self.content_layers = tuple(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.distill_weight = distill_weight
        blend = torch.tensor(style_blend if style_blend is not None else [1.0] * len(styles), dtype=torch.float32,
                             device=styles[0].device if styles else None)  # beside the Grams of the styles
        if len(blend) != len(styles) or (blend < 0).any() or blend.sum() <= 0:
            raise ValueError("style_blend needs one non-negative weight per style image")
        self.register_buffer("blend", (blend / blend.sum())[None], persistent=False)  # (1, S)
        with torch.no_grad():
            feats = [encoder(s, self.style_layers) for s in styles]  # S x {layer: (1, C, H, W)}
        for layer in self.style_layers:
            self.register_buffer(self._buf(layer), torch.cat([gram_matrix(f[layer]) for f in feats]))  # (S, C, C)

    @classmethod
    def from_config(cls, loss: LossConfig, styles: Sequence[torch.Tensor], encoder: VGGEncoder | None = None,
                    style_blend: Sequence[float] | None = None) -> "PerceptualLoss":
        """The loss ``loss`` describes against ``styles`` ((1, 3, H, W) RGB [0, 1] each), on
        ``encoder`` (default: ``VGGEncoder.from_config(loss)``)."""
        return cls(encoder if encoder is not None else VGGEncoder.from_config(loss), styles,
                   content_layers=loss.content_layers, style_layers=loss.style_layers,
                   content_weight=loss.content_weight, style_weight=loss.style_weight, tv_weight=loss.tv_weight,
                   distill_weight=loss.distill_weight, style_blend=style_blend)

    @staticmethod
    def _buf(layer: str) -> str:
        return f"gram_{layer}"

    def style_targets(self, style_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{layer: (B or 1, C, C)} Gram targets for style weights (B, S) (None: the blend)."""
        mix = self.blend if style_weights is None else style_weights.float()  # (B, S)
        return {layer: torch.einsum("bs,scd->bcd", mix, getattr(self, self._buf(layer))) for layer in self.style_layers}

    @torch.no_grad()
    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of the content image(s) (B, 3, H, W) at the content layers."""
        return self.encoder(content, self.content_layers)

    def forward(self, x: torch.Tensor, content_targets: Mapping[str, torch.Tensor],
                teacher_targets: Mapping[str, torch.Tensor] | None = None,
                style_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        c = sum(content_loss(feats[l], content_targets[l]) for l in self.content_layers)
        each = x.new_zeros(len(x), dtype=torch.float32) + style_loss(
            {l: gram_matrix(feats[l]) for l in self.style_layers}, self.style_targets(style_weights), self.style_layers)  # (B,)
        s = each.mean()
        tv = tv_loss(x.float())
        total = self.content_weight * c + self.style_weight * s + self.tv_weight * tv
        out = {"content": c, "style": s, "tv": tv, "total": total, "style_each": each}
        if teacher_targets is not None:
            out["distill"] = sum(content_loss(feats[l], teacher_targets[l]) for l in self.content_layers)
            out["total"] = total + self.distill_weight * out["distill"]
        return out


def stability_loss(
    fn, x: torch.Tensor, y: torch.Tensor, max_shift: int = 8, noise_std: float = 0.02,
    margin: int = 8, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Transformation-equivariance + noise-consistency loss for video stability.

    A small random camera motion T (an integer translation, as a crop) plus sensor-like
    Gaussian noise should not change the texture: fn(T(x) + noise) ~= T(fn(x)), in the spirit
    of Gupta et al. 2017 and the noise training of the chainer fast-neuralstyle forks.
    Shifts that are not multiples of the net's total stride (2 for each stride-2 layer) are exactly
    what makes strokes boil.

    x: (B, 3, H, W) input, y = fn(x): (B, 3, H, W). Returns the mean squared difference on
    the interior (``margin`` px from the crop's borders are ignored: padding is not equivariant).
    Zero for any translation-equivariant, noise-free ``fn`` when ``noise_std`` is 0.
    """
    _, _, h, w = x.shape
    dy, dx = (int(v) for v in torch.randint(1, max_shift + 1, (2,), generator=generator))
    shifted = x[:, :, dy:, dx:]  # (B, 3, H-dy, W-dx): the scene moved up-left by (dy, dx)
    if noise_std > 0:
        noise = torch.randn(shifted.shape, generator=generator, device=x.device, dtype=x.dtype)
        shifted = shifted + noise_std * noise
    y_shift = fn(shifted)  # (B, 3, H-dy, W-dx)
    m = margin
    return F.mse_loss(y_shift[:, :, m : h - dy - m, m : w - dx - m], y[:, :, dy + m : h - m, dx + m : w - m])
