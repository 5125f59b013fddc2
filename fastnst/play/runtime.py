"""ONNX style models on onnxruntime, and the per-frame pre/post-processing around them.

numpy + OpenCV + onnxruntime only: no torch on this path.

A model follows the contract in ``fastnst.play.contract``: input ``frames`` uint8 (N, H, W, 3) BGR,
output ``stylized`` uint8 (N, H, W, 3) BGR, any H and W. An OpenCV frame therefore goes in
as ``frame[None]``, with no conversion on the Python side.

``FramePipeline`` does the rest of the per-frame work (resize to the processing size,
mirror, optional flow-guided temporal smoothing, strength blend, colour preservation) into
buffers it allocates once per frame size.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from fastnst import UserError
from fastnst.config import check_weights
from fastnst.play import contract
from fastnst.play.color import luminance_transfer
from fastnst.play.temporal import TemporalSmoother

log = logging.getLogger(__name__)

# Accelerated providers in order of preference; the CPU is always the fallback.
_PREFERRED = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider")
_PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                     "coreml": "CoreMLExecutionProvider", "dml": "DmlExecutionProvider",
                     "directml": "DmlExecutionProvider"}


def shipped_dir() -> Path:
    """The folder of the styles shipped with the package (``fastnst.models``: the repo's ``models/``)."""
    return Path(str(importlib.resources.files("fastnst.models")))


def shipped_models() -> dict[str, Path]:
    """Shipped style name -> its ONNX file, sorted by name."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.onnx"))}


def card_summary(card: Path) -> str:
    """A model card's one-line summary: its ``Summary:`` line, else the first line of text that is
    not a heading, list item, table row, quote or HTML comment ("" when none or no card)."""
    try:
        lines = [line.strip() for line in card.read_text(encoding="utf-8").splitlines()]
    except OSError:
        return ""
    for line in lines:
        if line.lower().startswith("summary:"):
            return line.partition(":")[2].strip()
    return next((line for line in lines if line and not line.startswith(("#", "-", "*", "|", ">", "<!--", "```"))), "")


def resolve_model(name_or_path: str | os.PathLike, what: str = "model") -> Path:
    """A model argument -> an ONNX file: an existing path, else a style shipped in ``fastnst.models``.
    ``what`` names the argument in the error."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_models()
    if path.suffix == "" and len(path.parts) == 1 and path.name in shipped:
        return shipped[path.name]
    for stem, file in shipped.items():  # a style inside a shipped multi-style model?
        try:
            styles = StyleModel(file, "cpu", threads=1).styles
        except UserError:
            continue
        if len(styles) > 1 and path.name in styles:
            raise UserError(f"{what} not found: {name_or_path} is a style of the shipped model {stem} "
                            f"(--model {stem} --style {path.name})")
    hint = f"shipped models: {', '.join(shipped)}" if shipped else "no shipped models are installed"
    raise UserError(f"{what} not found: {name_or_path} ({hint})")


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may run on. With SMT, ``--threads`` = physical cores may be faster."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_providers(provider: str | None = None) -> list[str]:
    """onnxruntime providers to try, best first, ending with the CPU.

    ``provider`` ("cpu", "cuda", "coreml", "dml" or a full onnxruntime name) forces one.
    """
    available = ort.get_available_providers()
    if provider:
        name = _PROVIDER_ALIASES.get(provider.lower(), provider)
        if name not in available:
            raise UserError(f"provider {provider!r} is not available in this onnxruntime "
                            f"(available: {', '.join(available)})")
        return [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    return [p for p in _PREFERRED if p in available] + ["CPUExecutionProvider"]


class StyleModel:
    """One ONNX style model in an onnxruntime session, tuned for real-time single frames."""

    def __init__(self, name_or_path: str | os.PathLike, provider: str | None = None, threads: int | None = None):
        self.path = resolve_model(name_or_path)
        if threads is not None and threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one frame: parallelism is within ops
        opts.intra_op_num_threads = threads or default_threads()
        # No busy-waiting between ops: on a 2-core laptop the spinning threads starve the capture thread.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # onnxruntime's own warnings (e.g. provider fallbacks) off stderr
        providers = choose_providers(provider)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(f"cannot load model {self.path}: not a valid ONNX model ({msg})") from None
        self._check_io()
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.name = self.metadata.get(contract.META_NAME) or self.path.stem
        self.styles = self._style_names()  # one name per style weight
        # The style input's weights, one per style (None: a model from before multi-style).
        self.style_weights = np.eye(len(self.styles), dtype=np.float32)[0] if self._has_style_input else None
        self.min_side = self._probe()
        self.providers = self.session.get_providers()
        log.debug("loaded %s (%s) on %s, %d threads", self.path, self.name, self.providers[0],
                  opts.intra_op_num_threads)

    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        expected = "a uint8 (N, H, W, 3) BGR input (and a float style input), as `fastnst export` writes"
        self._has_style_input = len(inputs) == 2 and inputs[1].name == contract.STYLE_INPUT_NAME and inputs[1].type == "tensor(float)"
        if len(inputs) != 1 + self._has_style_input or len(outputs) < 1:
            raise UserError(f"model {self.path} has {len(inputs)} inputs; expected {expected}")
        shape, dtype = inputs[0].shape, inputs[0].type
        channels_ok = len(shape) == 4 and (shape[3] == 3 or not isinstance(shape[3], int))  # 3 or symbolic
        if not channels_ok:
            raise UserError(f"model {self.path} takes input of shape {shape}; expected {expected}")
        if dtype != "tensor(uint8)" or outputs[0].type != "tensor(uint8)":
            raise UserError(f"model {self.path} takes {dtype}; expected {expected}")
        if any(isinstance(d, int) for d in shape[1:3]):
            raise UserError(f"model {self.path} takes only {shape[2]}x{shape[1]} frames; expected {expected}, any H and W")

    def _style_names(self) -> list[str]:
        """The ``fastnst.styles`` metadata (a JSON list), checked against the style input's size."""
        text = self.metadata.get(contract.META_STYLES)
        try:
            names = json.loads(text) if text else [self.name]
        except json.JSONDecodeError:
            names = None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise UserError(f"model {self.path}: unreadable fastnst.styles metadata")
        if not self._has_style_input and len(names) != 1:  # the graph cannot tell them apart
            raise UserError(f"model {self.path} names {len(names)} styles but has no style input")
        if self._has_style_input:
            size = self.session.get_inputs()[1].shape
            if len(size) != 1 or size[0] != len(names):
                raise UserError(f"model {self.path} has a style input of shape {size} for {len(names)} style names")
        return names

    def set_style(self, weights: np.ndarray) -> None:
        """Play a style or a blend: one non-negative weight per style (``self.styles``), normalised
        to sum to 1. A model without a style input has one style."""
        w = np.asarray(weights, np.float64).reshape(-1)
        if w.shape != (len(self.styles),):
            raise UserError(f"{self.name}: need {len(self.styles)} style weights, got {w.size}")
        check_weights(f"{self.name} style weights", w.tolist())
        if self.style_weights is not None:
            self.style_weights = (w / w.sum()).astype(np.float32)

    def label(self) -> str:
        """What it plays: its name (one style), ``name/style``, or a blend ``a 70% + b 30%``."""
        w = self.style_weights
        if w is None or len(self.styles) == 1:
            return self.name
        on = np.flatnonzero(w)
        if len(on) == 1:
            return f"{self.name}/{self.styles[on[0]]}"
        return " + ".join(f"{self.styles[i]} {w[i]:.0%}" for i in on)

    def feeds(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The onnxruntime inputs for (N, H, W, 3) uint8 BGR ``frames``."""
        return contract.feeds(frames, self.style_weights, self.input_name)

    def _probe(self) -> int:
        """Run one small frame per size in PROBE_SIDES until one works; check the output contract on it.
        Returns the model's minimum short side (the first size that ran)."""
        error = ""
        for side in PROBE_SIDES:
            h, w = side, side * 3 // 2  # not square: an output with H and W swapped shows
            try:
                out = self.session.run([self.output_name], self.feeds(np.zeros((1, h, w, 3), np.uint8)))[0]
            except Exception as e:
                if not _is_ort_error(e):
                    raise
                error = _first_line(e)
                continue
            if out.shape != (1, h, w, 3) or out.dtype != np.uint8:
                raise UserError(f"model {self.path} returns {out.dtype} {out.shape} for a (1, {h}, {w}, 3) frame; "
                                "expected uint8 (1, H, W, 3) BGR, as `fastnst export` writes")
            return side
        raise UserError(f"model {self.path} fails on a {w}x{h} frame: {error}")

    def run(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> (H, W, 3) uint8 BGR stylized (a new array). A frame whose short side
        is below the model's minimum (``min_side``) is stylized upscaled, then scaled back."""
        h, w = frame.shape[:2]
        if min(h, w) < self.min_side:
            s = self.min_side / min(h, w)
            big = cv2.resize(frame, (max(self.min_side, round(w * s)), max(self.min_side, round(h * s))),
                             interpolation=cv2.INTER_LINEAR)
            return cv2.resize(self.run(big), (w, h), interpolation=cv2.INTER_AREA)
        try:
            return self.session.run([self.output_name], self.feeds(frame[None]))[0][0]  # (1, H, W, 3) -> (H, W, 3)
        except Exception as e:
            if not _is_ort_error(e):
                raise
            raise UserError(f"model {self.name} failed on a {w}x{h} frame: {_first_line(e)}") from None


def _style_items(spec: str, valid: list[str], flag: str) -> dict[str, float]:
    """``NAME`` or ``NAME:W,NAME:W,...`` -> {name: weight}, checked (``valid`` only names the styles in errors)."""
    hint = f"styles: {', '.join(valid)}"
    items: dict[str, float] = {}
    for part in spec.split(","):
        name, colon, text = (t.strip() for t in part.partition(":"))
        try:
            weight = float(text) if colon else 1.0
        except ValueError:
            weight = math.nan
        if not name or not math.isfinite(weight) or name in items:
            raise UserError(f"{flag} {spec!r}: use NAME or NAME:WEIGHT,NAME:WEIGHT,... ({hint})")
        if weight < 0:
            raise UserError(f"{flag} {spec!r}: negative weight for {name} ({hint})")
        items[name] = weight
    try:
        check_weights(f"{flag} {spec!r}", list(items.values()))
    except UserError as e:
        raise UserError(f"{e} ({hint})") from None
    return items


def parse_style_spec(spec: str, names: list[str], flag: str = "--style") -> np.ndarray:
    """A style (``b``) or a blend (``a:0.7,b:0.3``) of a model's styles ``names`` -> (S,) float32
    weights summing to 1. ``flag`` names the option in errors."""
    items = _style_items(spec, names, flag)
    if unknown := [n for n in items if n not in names]:
        raise UserError(f"{flag} {spec!r}: unknown style {unknown[0]} (styles: {', '.join(names)})")
    weights = np.zeros(len(names), np.float64)  # normalised before the cast: 1e-50 alone is a weight of 1
    for name, weight in items.items():
        weights[names.index(name)] = weight
    return (weights / weights.sum()).astype(np.float32)


def models_with_style(models: list[StyleModel], spec: str, flag: str = "--style") -> list[tuple[int, np.ndarray]]:
    """(index, weights) of each of ``models`` that has every style ``spec`` names (see
    ``parse_style_spec``); a UserError when none has."""
    valid = list(dict.fromkeys(s for m in models for s in m.styles))
    items = _style_items(spec, valid, flag)
    found = [(i, parse_style_spec(spec, m.styles, flag)) for i, m in enumerate(models) if set(items) <= set(m.styles)]
    if not found:
        missing = [n for n in items if n not in valid]
        why = f"unknown style {missing[0]}" if missing else "no model has all of these styles"
        raise UserError(f"{flag} {spec!r}: {why} (styles: {', '.join(valid)})")
    return found


def select_style(models: list[StyleModel], spec: str, flag: str = "--style") -> tuple[int, np.ndarray]:
    """The first of ``models`` that has every style ``spec`` names, and its weights."""
    return models_with_style(models, spec, flag)[0]


PROBE_SIDES = (16, 32, 64)  # probe frames' short sides (long side 1.5x), smallest first


def _is_ort_error(e: Exception) -> bool:
    return type(e).__module__.startswith("onnxruntime")


def _first_line(e: Exception) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)


def processing_size(width: int, height: int, target_width: int | None) -> tuple[int, int]:
    """(w, h) to stylize a ``width`` x ``height`` frame at ``target_width`` (None or 0: as is).

    A resized frame gets even sides: video encoders (mp4v, H.264) drop an odd row/column.
    """
    if not target_width or target_width == width:
        return width, height
    h = max(2, round(height * target_width / width / 2) * 2)
    return max(2, target_width // 2 * 2), h


def long_side_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """(w, h) with the long side ``long_side`` (None or 0: as is), keeping the aspect ratio."""
    if not long_side or long_side == max(width, height):
        return width, height
    s = long_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


class FramePipeline:
    """The per-frame path around a model: pre-process -> ``model.run`` -> post-process.

    Buffers are allocated once per frame size and reused, so a returned frame is only valid
    until the next call. Input frames are never modified.
    """

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}
        self._smoother: TemporalSmoother | None = None  # made on first use: one per video stream
        self._smoothed_by: StyleModel | None = None  # whose output the smoothing history holds (None: no history)
        self.inference_ms = 0.0  # the last ``stylize`` call's ``model.run``, for the player's stage timings

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, np.uint8)
        return buf

    def preprocess(self, frame: np.ndarray, size: tuple[int, int], mirror: bool = False) -> np.ndarray:
        """(H, W, 3) uint8 BGR frame -> (h, w, 3) at ``size`` = (w, h), mirrored if asked."""
        w, h = size
        small = frame
        if frame.shape[:2] != (h, w):
            # Area averaging only where it matters: it costs several times bilinear, which aliases
            # only below half size.
            interp = cv2.INTER_AREA if 2 * w < frame.shape[1] else cv2.INTER_LINEAR
            small = cv2.resize(frame, (w, h), dst=self._buffer("small", (h, w, 3)), interpolation=interp)
        if mirror:
            small = cv2.flip(small, 1, dst=self._buffer("mirror", small.shape))
        return small

    def smooth(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """Flow-guided temporal smoothing (``fastnst.play.temporal.TemporalSmoother``) of ``stylized``
        (h, w, 3), the model's output for ``frame`` (h, w, 3), against the previous frames.

        It runs on the raw model output, before the strength blend and colour transfer: those
        mix in the current sharp frame, which must not be dragged along the history. The result
        is ours to overwrite (the smoother's own state is copied out).
        """
        if self._smoother is None:
            self._smoother = TemporalSmoother()
        out = self._smoother(frame, stylized)
        if out is stylized:  # the first frame after a reset: the smoother kept its own copy
            return out
        buf = self._buffer("smooth", out.shape)
        np.copyto(buf, out)
        return buf

    def reset_smoothing(self) -> None:
        """Forget the previous frames (a seek, a mirrored view: what ``stylize`` cannot see by itself)."""
        self._smoothed_by = None
        if self._smoother is not None:
            self._smoother.reset()

    def postprocess(self, stylized: np.ndarray, original: np.ndarray, strength: float = 1.0,
                    preserve_color: bool = False) -> np.ndarray:
        """Blend ``stylized`` (ours to overwrite) with ``original`` (h, w, 3): strength, then colour."""
        out = stylized
        if strength < 1.0:
            out = cv2.addWeighted(stylized, strength, original, 1.0 - strength, 0.0, dst=stylized)
        if preserve_color:
            out = luminance_transfer(out, original, order="bgr", out=self._buffer("color", out.shape))
        return out

    def stylize(self, model: StyleModel, frame: np.ndarray, size: tuple[int, int] | None = None,
                strength: float = 1.0, preserve_color: bool = False, smooth: bool = False) -> np.ndarray:
        """One (H, W, 3) uint8 BGR frame stylized at processing ``size`` = (w, h) (default: its own),
        returned at its own size (H, W, 3): ``stylize`` and the player both run this.

        ``smooth``: blend with the previous frames passed to this pipeline (see ``smooth``; one
        pipeline per video). The history is forgotten when the model changes and after a frame
        that was not smoothed. The strength blend and colour transfer happen at the output size,
        against ``frame`` itself (the sharp original). ``strength <= 0`` returns ``frame`` itself,
        without inference.
        """
        if strength <= 0.0:
            self._smoothed_by = None
            return frame
        h, w = frame.shape[:2]
        small = self.preprocess(frame, size or (w, h))  # (h', w', 3)
        t0 = time.perf_counter()
        styled = model.run(small)  # (h', w', 3)
        self.inference_ms = (time.perf_counter() - t0) * 1000
        if smooth:
            if self._smoothed_by is not model:  # another model, or a gap in the smoothed stream
                self.reset_smoothing()
            styled = self.smooth(small, styled)  # at the processing size: cheaper
        self._smoothed_by = model if smooth else None
        if styled.shape[:2] != (h, w):
            styled = cv2.resize(styled, (w, h), dst=self._buffer("full", (h, w, 3)), interpolation=cv2.INTER_LINEAR)
        return self.postprocess(styled, frame, strength, preserve_color)
