"""Frozen dataclass configs, loaded from a TOML recipe plus CLI overrides.

A recipe is a TOML file whose top level holds TrainConfig fields, with ``[net]`` and
``[loss]`` tables for NetConfig and LossConfig. Unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from fastnst import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class NetConfig:
    """TransformNet shape. ``arch`` names the preset these values came from."""

    arch: str = "johnson"
    channels: tuple[int, int, int] = (32, 64, 128)  # stem, after 1st down, after 2nd down
    res_blocks: int = 5
    end_kernel: int = 9  # stem and output kernel (Johnson: 9x9); odd for stem "conv", even for "stride2"
    upsample: str = "nearest"  # nearest resize + conv (Odena et al. 2016) | "shuffle" (pixel shuffle) | "deconv"
    stem: str = "conv"  # "conv": full-res conv stem and output | "stride2": stride-2 stem and transposed-conv output
    block: str = "full"  # residual block convs: "full" 3x3 | "separable" depthwise + pointwise
    padding: str = "reflect"  # "reflect" (Johnson) | "zeros"


NET_PRESETS: dict[str, NetConfig] = {
    # Johnson et al. 2016, with upsample+conv instead of transposed conv (Odena et al. 2016).
    "johnson": NetConfig(),
    # >= 30 fps at 640x480 on 2 CPU cores (models/README.md has the measurements): nothing but
    # the stride-2 stem and output runs at full resolution; narrow, separable residual stage at H/8.
    # Reflection padding inside and edge-replicated ends: zero padding costs ~20% less time but
    # lets the net find the frame border and paint bands along it.
    "fast": NetConfig(arch="fast", channels=(16, 32, 64), res_blocks=3, end_kernel=4, upsample="nearest",
                      stem="stride2", block="separable", padding="reflect"),
}


@dataclass(frozen=True)
class LossConfig:
    """Which VGG, which layers, which weights. Shared by train, optimize and eval."""

    vgg: str = "caffe-vgg19"
    pool: str = "max"
    content_layers: tuple[str, ...] = ("relu2_2",)
    # layer -> per-layer weight
    style_layers: dict[str, float] = field(
        default_factory=lambda: {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0}
    )
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0
    stability_weight: float = 0.0
    # Distillation: content loss (same layers) against a trained teacher net's output as well as
    # against the photo; needs TrainConfig.teacher.
    distill_weight: float = 0.0


def _train_loss() -> LossConfig:
    # Johnson et al. 2016 (VGG16): content relu2_2, style relu1_2..relu4_3. On caffe-vgg19 we use
    # content relu2_2 and style relu1_1..relu4_1. relu5_1 is left out: it adds ~25% to a CPU step
    # and its Gram term is tiny. The per-layer weights undo the spread of Gram magnitudes across
    # layers (mean squared Gram of scream.jpg: ~3e2, 1.4e4, 5e3, 2.6e5 for relu1_1..relu4_1), so each
    # layer counts about equally and style_weight is the one knob. style_weight 3e2 against content
    # 1 was picked by eye on scream.jpg at 128 px (1e3 and above wash out the content in 100 steps).
    return LossConfig(content_layers=("relu2_2",),
                      style_layers={"relu1_1": 1.0, "relu2_1": 0.02, "relu3_1": 0.05, "relu4_1": 0.001},
                      content_weight=1.0, style_weight=3e2, tv_weight=0.0)


@dataclass(frozen=True)
class TrainConfig:
    style: str = ""
    data: str = "../shared/data/content"
    data_split: str = "train"
    image_size: int = 256
    style_size: int = 512
    batch_size: int = 4
    lr: float = 1e-3
    steps: int = 0  # 0: use epochs
    epochs: float = 2  # used when steps == 0
    seed: int = 0
    device: str = "auto"  # auto: cuda, then mps, then cpu
    workers: int = 1  # DataLoader processes; decoding a 256 px crop is cheap next to a step
    checkpoint_every: int = 200
    preview_every: int = 100  # 0: no previews
    log_every: int = 10
    run_dir: str = "runs/style"
    output: str = ""  # ONNX path; default <run_dir>/<style name>.onnx
    preview_image: str = ""  # "": hold the last data image out of training and preview it
    # The last ``holdout`` images of a folder (sorted by path) are never trained on, so
    # `fastnst eval --content DIR --holdout N` scores photos the model has not seen.
    holdout: int = 0
    # Export an int8-quantized model (fastnst.learn.quantize), calibrated on photos from ``data``.
    int8: bool = False
    teacher: str = ""  # a trained run folder or checkpoint whose outputs the net also learns (distill_weight)
    net: NetConfig = field(default_factory=lambda: NET_PRESETS["fast"])  # the real-time net
    loss: LossConfig = field(default_factory=_train_loss)


def _coerce(tp: Any, value: Any, where: str, default: Any = None) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config: [{where}] must be a table")
        return from_dict(tp, value, where, default if dataclasses.is_dataclass(default) else None)
    origin = getattr(tp, "__origin__", None)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def _field_default(cls: type, name: str) -> Any:
    f = cls.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def from_dict(cls: type, data: dict[str, Any], where: str = "", base: Any = None) -> Any:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys raise UserError.

    Keys not given keep ``base``'s values (default: the class defaults). A nested table starts
    from its field's default, so a [loss] table only changes the keys it names even where the
    parent's default is not LossConfig() (TrainConfig.loss, OptimizeConfig.loss).
    """
    hints = get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    if cls is NetConfig and "arch" in data:  # [net] arch = "johnson": start from that preset
        if data["arch"] not in NET_PRESETS:
            raise UserError(f"unknown architecture {data['arch']!r} (choose from {', '.join(NET_PRESETS)})")
        base = NET_PRESETS[data["arch"]]
    values = {k: _coerce(hints[k], v, f"{where}.{k}".strip("."), _field_default(cls, k) if base is None else getattr(base, k))
              for k, v in data.items()}
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


TABLES = ("net", "loss")


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge ``overrides`` into a copy of ``base``, key by key inside the [net] and [loss]
    tables; a value (a list, a style_layers dict) replaces. None values are ignored."""
    out = dict(base)
    for k, v in overrides.items():
        if v is None:
            continue
        if k in TABLES and isinstance(v, dict):
            out[k] = {**out.get(k, {}), **{kk: vv for kk, vv in v.items() if vv is not None}}
        else:
            out[k] = v
    return out


def load_recipe(path: str | Path | None, overrides: dict[str, Any] | None = None, cls: type = TrainConfig) -> Any:
    """TOML recipe (optional) + overrides -> a frozen config of type ``cls``."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"recipe not found: {path}")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"recipe {path} is not valid TOML: {e}") from None
    return from_dict(cls, merge(data, overrides or {}))


def _optimize_loss() -> LossConfig:
    # Gatys et al. 2016: content relu4_2, style relu1_1..relu5_1. The weights are pastiche's
    # defaults in our units (its 0.01 * feature MSE and 10/C^2 * MSE of Grams over H*W): tuned for
    # caffe-vgg19, and the loss scale at which un-line-searched L-BFGS is stable (fastnst.learn.optimize).
    return LossConfig(content_layers=("relu4_2",), content_weight=0.01, style_weight=10.0, tv_weight=0.0)


@dataclass(frozen=True)
class OptimizeConfig:
    """``fastnst optimize`` (Gatys et al. image optimisation). ``scales`` are the long sides,
    coarse to fine (the last one is the output size); ``iterations`` holds one count per scale,
    or one count for every scale."""

    loss: LossConfig = field(default_factory=_optimize_loss)
    scales: tuple[int, ...] = (512,)
    iterations: tuple[int, ...] = (500,)
    optimizer: str = "lbfgs"  # "lbfgs" | "adam"
    lr: float | None = None  # None: 1.0 for L-BFGS, 2.0 for Adam (the image is optimised in 0-255 units)
    lr_decay: float = 1.0  # Adam: lr multiplied by this every iteration
    init: str = "content"  # "content" | "noise" | an image path
    style_scale: float = 1.0  # style image long side = style_scale * current scale
    style_blend: tuple[float, ...] | None = None  # one weight per style image; None: equal
    preserve_color: str = "none"  # "none" | "luminance" | "histogram" (Gatys et al. 2017)
    save_every: int = 0  # 0: never; else call the snapshot callback every N iterations
    seed: int = 0
    device: str = "auto"
