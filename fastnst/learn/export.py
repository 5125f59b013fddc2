"""TransformNet -> ONNX with the fastnst I/O contract (``fastnst.play.contract``) and metadata.

The uint8/BGR/HWC conversions live in the graph, so the player hands OpenCV frames to
onnxruntime as they are.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import fastnst
from fastnst import UserError
from fastnst.config import TrainConfig, to_json, train_config_from_json
from fastnst.play.contract import (FLOAT_INPUT_NAME, FLOAT_IO_CONTRACT, INPUT_NAME, IO_CONTRACT, META_CONFIG,
                                   META_IO, META_NAME, META_STYLES, META_VERSION, META_VGG, OUTPUT_NAME,
                                   STYLE_INPUT_NAME)
from fastnst.play.files import atomic_path

log = logging.getLogger(__name__)

MARGIN = 8  # pixels of edge-replicated frame around the picture (FrameIO); even, so sizes keep their parity


class FrameIO(nn.Module):
    """Wraps a TransformNet: (N, H, W, 3) uint8 BGR -> (N, H, W, 3) uint8 BGR.

    The conversions fold into the graph, where each would otherwise cost a full-resolution
    pass: the /255 scaling and the BGR<->RGB swaps go into a copy of the stem and output
    weights. For a stride2 stem (TransformNet docs), even the NHWC<->NCHW transposes go: the
    frame is viewed as a one-channel (N, 1, H, 3W) image, whose stem conv has kernel (k, 3k) and
    stride (2, 6) (the same weights, interleaved), and whose output transposed conv writes the
    (N, 1, H, 3W) = (N, H, W, 3) layout directly. The wrapped net itself is left untouched.

    The frame is edge-replicated by ``MARGIN`` pixels all round and the output cropped back: a
    net trained on crops paints a band of its own along a picture's edge (a flat strip, then a
    dotted line a few pixels in), which the margin moves out of the picture.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.interleaved = net.cfg.stem == "stride2"
        self.net = copy.deepcopy(net).cpu().eval()
        if self.interleaved:
            self.register_buffer("bias", _interleave_io(self.net))  # (3,) BGR
        else:
            _fold_io(self.net)

    def forward(self, frames: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """frames (N, H, W, 3) uint8 BGR, style_weights (S,) float -> (N, H, W, 3) uint8 BGR."""
        style_weights = style_weights.reshape(1, -1)  # (1, S): one mix for every frame
        n, h, w, _ = frames.shape
        m = MARGIN
        if not self.interleaved:
            x = F.pad(frames.permute(0, 3, 1, 2).float(), (m,) * 4, mode="replicate")  # (N, 3, H + 2m, W + 2m) BGR
            y = (torch.sigmoid(self.net.logits(x, style_weights)) * 255.0).round()  # (N, 3, H + 2m, W + 2m) BGR
            return y.to(torch.uint8).permute(0, 2, 3, 1)[:, m:m + h, m:m + w]  # (N, H, W, 3)
        # The margin, then as TransformNet.forward: odd sizes get one replicated row/column
        # (dropped below), and edge padding, p pixels all round, for a stem that does not pad.
        p = self.net.edge_pad[0]
        frames = F.pad(frames.unsqueeze(0), (0, 0, p + m, p + m + w % 2, p + m, p + m + h % 2), mode="replicate")[0]
        hp, wp = frames.shape[1] - 2 * p, frames.shape[2] - 2 * p  # H' + 2m, W' + 2m: even
        x = frames.reshape(n, 1, hp + 2 * p, (wp + 2 * p) * 3).float()  # (N, 1, hp + 2p, 3(wp + 2p)) BGR 0-255
        # The bias tiled along a row: a broadcast over the last dim of 3 is slow in onnxruntime.
        z = self.net.logits(x, style_weights) + self.bias.repeat(wp)  # (N, 1, hp, 3wp) BGR logits
        y = (torch.sigmoid(z) * 255.0).round().to(torch.uint8)
        return y.reshape(n, hp, wp, 3)[:, m:m + h, m:m + w]  # (N, H, W, 3)


def _fold_io(net: nn.Module) -> None:
    """In place on a copy: the stem takes BGR 0-255, the output conv emits BGR logits."""
    stem = next(m for m in net.stem.modules() if isinstance(m, nn.Conv2d))
    out = next(m for m in net.out.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        stem.weight.copy_(stem.weight.flip(1) / 255.0)  # (c1, 3, k, k): input channels RGB -> BGR
        out.weight.copy_(out.weight.flip(0))  # (3, c1, k, k)
        out.bias.copy_(out.bias.flip(0))


def _interleave_io(net: nn.Module) -> torch.Tensor:
    """In place on a copy: swap a stride2 net's stem conv and output transposed conv for their
    equivalents on the interleaved (N, 1, H, 3W) BGR 0-255 layout. Returns the output bias,
    (3,) BGR, which a one-channel transposed conv cannot hold."""
    stem, out = net.stem[0], net.out
    (kh, kw), (ph, pw) = stem.kernel_size, stem.padding
    # weight[o, 0, i, 3j + c] = w[o, 2 - c, i, j] / 255: the BGR channel c of pixel column j
    w = stem.weight.detach().flip(1).permute(0, 2, 3, 1) / 255.0  # (c1, k, k, 3) BGR
    conv = nn.Conv2d(1, stem.out_channels, (kh, 3 * kw), stride=(2, 6), padding=(ph, 3 * pw))
    (ko, _), (po, _) = out.kernel_size, out.padding
    wo = out.weight.detach().flip(1).permute(0, 2, 3, 1)  # (c1, k, k, 3) BGR
    deconv = nn.ConvTranspose2d(out.in_channels, 1, (ko, 3 * ko), stride=(2, 6), padding=(po, 3 * po), bias=False)
    with torch.no_grad():
        conv.weight.copy_(w.reshape(stem.out_channels, 1, kh, 3 * kw))
        conv.bias.copy_(stem.bias)
        deconv.weight.copy_(wo.reshape(out.in_channels, 1, ko, 3 * ko))
    net.stem[0], net.out = conv, deconv
    return out.bias.detach().flip(0).clone()  # (3,) BGR


def _conv_key(module: nn.Module, prefix: str) -> str:
    """The state_dict prefix of the first (transposed) conv in ``module``, itself named ``prefix``."""
    name = next(n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    return f"{prefix}.{name}." if name else f"{prefix}."


def _plain_state(io: FrameIO) -> dict[str, torch.Tensor]:
    """The inverse of FrameIO's folding: the wrapped net's own state_dict, with the stem and output
    weights back in their RGB 0-1 NCHW form (up to the rounding of the /255 and *255)."""
    state = {k: v.detach().clone() for k, v in io.net.state_dict().items()}
    stem, out = _conv_key(io.net.stem, "stem"), _conv_key(io.net.out, "out")
    w, wo = state[stem + "weight"], state[out + "weight"]
    if io.interleaved:  # both (c1, 1, k, 3k), (pixel column, BGR) interleaved -> (c1, 3, k, k) RGB
        k = w.shape[2]
        state[stem + "weight"] = (w.reshape(-1, k, k, 3) * 255.0).permute(0, 3, 1, 2).flip(1).contiguous()
        state[out + "weight"] = wo.reshape(-1, k, k, 3).permute(0, 3, 1, 2).flip(1).contiguous()
        state[out + "bias"] = io.bias.detach().flip(0).clone()
    else:
        state[stem + "weight"] = w.flip(1) * 255.0
        state[out + "weight"], state[out + "bias"] = wo.flip(0), state[out + "bias"].flip(0)
    return state


def read_onnx(path: str | os.PathLike) -> tuple[nn.Module, TrainConfig]:
    """A float model that fastnst exported -> (its TransformNet with the weights read back from the
    file, its training config from the metadata), so that a shipped model can be a ``--base``,
    a ``--teacher`` or re-exported. UserError for anything else (another tool's or an int8 model)."""
    import onnx
    from onnx import numpy_helper

    from fastnst.learn.nets import TransformNet

    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise UserError(f"cannot read {path}: not an ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(META_IO) != IO_CONTRACT or META_CONFIG not in meta:
        raise UserError(f"{path} is not a model exported by fastnst (no {IO_CONTRACT} I/O or training config)")
    cfg = train_config_from_json(meta[META_CONFIG], str(path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    io = FrameIO(TransformNet(cfg.net))  # the exported module: its state_dict names the initializers
    state = io.state_dict()
    if any(node.op_type == "DequantizeLinear" for node in model.graph.node):
        raise UserError(f"{path} is int8-quantized: its float weights are gone (use its float export or training run)")
    bad = [k for k, v in state.items() if k not in weights or weights[k].size != v.numel()]
    if bad:
        raise UserError(f"cannot read the weights of {path} back: {bad[0]} is not in the file")
    io.load_state_dict({k: torch.from_numpy(weights[k].reshape(v.shape).copy()) for k, v in state.items()})
    net = TransformNet(cfg.net)
    net.load_state_dict(_plain_state(io))
    return net.eval(), cfg


def torchscript_export(module: nn.Module, args: tuple[torch.Tensor, ...], path: str | os.PathLike,
                       input_names: Sequence[str], output_names: Sequence[str] = (OUTPUT_NAME,),
                       dynamic_axes: dict[str, dict[int, str]] | None = None) -> None:
    """``module`` traced on ``args`` and written to ``path`` as ONNX opset 17 by torch's TorchScript
    exporter, without its warnings: every ONNX file fastnst writes goes through here."""
    with warnings.catch_warnings():
        # NOTE: the TorchScript exporter on purpose, not the dynamo one torch now recommends: that one
        # exports far slower, only at opset 18, and folds away a weight read_onnx reads back (docs/training.md).
        warnings.simplefilter("ignore", DeprecationWarning)
        # The tracer's warnings (len() of a tensor, Slice folding) are about graphs that could differ
        # at other sizes; check_parity runs the result at two odd sizes instead.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Constant folding", UserWarning)
        # Instance norm always normalizes with the input's own statistics (no running stats), which
        # the exporter calls train=True: that is what the model computes, in training and here.
        warnings.filterwarnings("ignore", "ONNX export mode is set to TrainingMode.EVAL", UserWarning)
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=17, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes)


def export_onnx(net: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None,
                float_io: bool = False) -> Path:
    """Export ``net`` (a TransformNet; moved to the CPU, eval mode) to ``path`` atomically.

    ``float_io=True`` exports the bare network instead (input ``image`` float32 (N, 3, H, W) RGB
    in [0, 1], output ``stylized`` likewise; ``fastnst.io = "float-rgb-nchw"``): for exact parity
    tests and other runtimes. Shipped models use the uint8 contract above.
    """
    import onnx

    path = Path(path)
    net = net.cpu().eval()
    style_weights = torch.full((net.cfg.n_styles,), 1.0 / net.cfg.n_styles)  # (S,)
    if float_io:
        module, sample, io, inp = _FloatIO(net), torch.zeros(1, 3, 64, 64), FLOAT_IO_CONTRACT, FLOAT_INPUT_NAME
        axes = {0: "N", 2: "H", 3: "W"}
    else:
        module, sample, io, inp = FrameIO(net), torch.zeros(1, 64, 64, 3, dtype=torch.uint8), IO_CONTRACT, INPUT_NAME
        axes = {0: "N", 1: "H", 2: "W"}
    with atomic_path(path) as tmp:
        torchscript_export(module, (sample, style_weights), tmp, [inp, STYLE_INPUT_NAME], dynamic_axes={inp: axes, OUTPUT_NAME: axes})
        model = onnx.load(str(tmp))
        meta = {META_VERSION: fastnst.__version__, **(metadata or {}), META_IO: io}
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=str(v))
        onnx.save(model, str(tmp))
    log.debug("exported %s", path)
    return path


def select_styles(net: nn.Module, cfg: TrainConfig, keep: Sequence[str] = (),
                  rename: Mapping[str, str] | None = None) -> tuple[nn.Module, TrainConfig]:
    """A trained net cut down to the styles ``keep`` (by name, in that order; default: all), and
    its config to match, with the style names renamed by ``rename`` (old -> new). Only the norm
    rows of the dropped styles go; every kept style's output stays bit-identical."""
    from fastnst.learn.nets import TransformNet

    names = list(cfg.style_names)
    keep = list(keep) or names
    unknown = [n for n in [*keep, *(rename or {})] if n not in names]
    if unknown:
        raise UserError(f"no style {', '.join(unknown)} in this run (its styles: {', '.join(names)})")
    if len(set(keep)) != len(keep):
        raise UserError(f"a style is named twice in {', '.join(keep)}")
    new_names = tuple((rename or {}).get(n, n) for n in keep)
    if len(set(new_names)) != len(new_names):
        raise UserError(f"two styles would share a name: {', '.join(new_names)}")
    idx = [names.index(n) for n in keep]
    styles = tuple(cfg.style_paths[i] for i in idx)
    stems = tuple(Path(s).stem for s in styles)
    cfg = replace(cfg, style_paths=styles, names=() if new_names == stems else new_names,
                  net=replace(cfg.net, n_styles=len(idx)))
    small = TransformNet(cfg.net)
    small.load_state_dict({k: v[idx] if _is_norm_param(net, k) else v for k, v in net.state_dict().items()})
    return small.eval(), cfg


def _is_norm_param(net: nn.Module, key: str) -> bool:
    """Whether state_dict ``key`` is a conditional instance norm's (S, C) scale or shift."""
    from fastnst.learn.nets import CondInstanceNorm

    module = net.get_submodule(key.rsplit(".", 1)[0])
    return isinstance(module, CondInstanceNorm)


def export_model(net: nn.Module, path: str | os.PathLike, cfg: TrainConfig,
                 calibration: list[Any] | None = None) -> Path:
    """Export a trained net with its run's metadata (the style names among them), atomically, once
    onnxruntime matches torch (``check_parity``). With ``calibration`` photos (paths or {"bytes", "path"}; the last fifth,
    at most 8, check the result), write the int8-quantized model instead (``fastnst.learn.quantize``)."""
    import tempfile

    meta = {META_NAME: cfg.model_name, META_STYLES: json.dumps(list(cfg.style_names)),
            META_CONFIG: to_json(cfg), META_VGG: cfg.loss.vgg}
    path = Path(path)
    if calibration is None:
        with atomic_path(path) as tmp:  # the model appears only once it passed the parity check
            export_onnx(net, tmp, meta)
            check_parity(net, tmp)
        log.info("exported %s", path)
        return path
    from fastnst.learn.quantize import photo_frames, quantize_int8

    frames = photo_frames(calibration, len(calibration))
    held = max(1, min(8, len(frames) // 5))  # photos that check the quantized model, not calibrate it
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(net, Path(tmp) / "float.onnx", meta)
        check_parity(net, fp32)
        quantize_int8(fp32, path, frames[:-held], frames[-held:])
    return path


def export_reference(path: str | os.PathLike) -> Path:
    """The original Johnson architecture with random weights (speed does not depend on them),
    exported to ``path``: the reference ``fastnst bench --reference`` compares with."""
    from fastnst.config import preset
    from fastnst.learn.nets import TransformNet

    torch.manual_seed(0)
    return export_onnx(TransformNet(preset("johnson")), path, {META_NAME: "johnson (reference)"})


class _FloatIO(nn.Module):
    """The bare net with the ONNX style input: image (N, 3, H, W), style weights (S,)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        return self.net(image, style_weights.reshape(1, -1))


def parity_styles(n: int) -> list[torch.Tensor]:
    """Style weights that a parity check tries: each one-hot (at most 3) and, for n > 1, a blend."""
    eye = torch.eye(n)
    return [eye[i] for i in range(min(n, 3))] + ([torch.linspace(1.0, 2.0, n) / torch.linspace(1.0, 2.0, n).sum()]
                                                  if n > 1 else [])


class ParityError(UserError):
    """onnxruntime's output differs from torch's by more than the tolerance."""


PARITY_SIZES = ((67, 91), (128, 160))  # two sizes, odd on purpose: dynamic H/W and odd-size paths


def check_parity(net: nn.Module, onnx_path: str | os.PathLike, sizes=PARITY_SIZES, tol: float = 1e-3) -> float:
    """Run the ONNX model in onnxruntime and the torch model eagerly on the same random frames at
    each (H, W) in ``sizes``, with each of ``parity_styles``; return the worst mean absolute difference in [0, 1] units.

    uint8 models: torch and onnxruntime agree to float rounding before the uint8 rounding, so a
    pixel sitting on a rounding boundary may differ by one level (1/255 > tol); the check therefore fails if any pixel
    is off by more than one level or the mean difference exceeds ``tol``. Float models: the max
    difference must stay within ``tol``. Raises ParityError, naming the size and style weights.
    """
    import numpy as np
    import onnxruntime as ort

    net = net.cpu().eval()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    uint8 = inp.type == "tensor(uint8)"
    module = FrameIO(net) if uint8 else _FloatIO(net)
    rng = np.random.default_rng(0)
    worst = 0.0
    for (h, w), style_weights in itertools.product(sizes, parity_styles(net.cfg.n_styles)):
        x = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8) if uint8 \
            else rng.random((1, 3, h, w), dtype=np.float32)  # (1, H, W, 3) BGR or (1, 3, H, W) RGB
        with torch.no_grad():
            want = module(torch.from_numpy(x), style_weights).numpy().astype(np.float64) / (255.0 if uint8 else 1.0)
        got = sess.run([OUTPUT_NAME], {inp.name: x, STYLE_INPUT_NAME: style_weights.numpy()})[0]
        where = f"{h}x{w}, style weights {np.round(style_weights.numpy(), 3).tolist()}"
        if got.shape != want.shape:
            raise ParityError(f"{onnx_path}: onnxruntime output shape {got.shape} != torch {want.shape} at {where}")
        got = got.astype(np.float64) / (255.0 if uint8 else 1.0)
        diff = np.abs(got - want)
        mean, peak = float(diff.mean()), float(diff.max())
        bad = (peak > 1.5 / 255 or mean > tol) if uint8 else peak > tol
        if bad:
            raise ParityError(f"{onnx_path}: onnxruntime differs from torch at {where} "
                              f"(max {peak:.2g}, mean {mean:.2g}, tolerance {tol}); do not ship this model")
        worst = max(worst, mean)
        log.debug("parity %s: max %.3g, mean %.3g", where, peak, mean)
    log.info("onnxruntime matches torch at %s (mean abs diff %.2g)", ", ".join(f"{h}x{w}" for h, w in sizes), worst)
    return worst
