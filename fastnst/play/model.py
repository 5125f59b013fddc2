"""One ONNX style model in onnxruntime (``StyleModel``), the provider and thread choice, and style
specs: a style or a blend named in text, as the model's style weights (no torch).

A model follows the contract in ``fastnst.play.contract``: input ``frames`` uint8 (N, H, W, 3) BGR,
output ``stylized`` uint8 (N, H, W, 3) BGR, any H and W. An OpenCV frame therefore goes in
as ``frame[None]``, with no conversion on the Python side.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from fastnst import UserError
from fastnst.config import check_weights
from fastnst.play import contract
from fastnst.play.errors import first_line
from fastnst.play.shipped import card_summary, find_model, shipped_dir, shipped_models

log = logging.getLogger(__name__)

# Accelerated providers in order of preference; the CPU is always the fallback.
_PREFERRED = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider")
_PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                     "coreml": "CoreMLExecutionProvider", "dml": "DmlExecutionProvider",
                     "directml": "DmlExecutionProvider"}
PROBE_SIDES = (16, 32, 64)  # probe frames' short sides (long side 1.5x), smallest first


def resolve_model(name_or_path: str | os.PathLike, what: str = "model") -> Path:
    """A model argument -> an ONNX file: an existing path, else a style shipped in ``fastnst.models``.
    ``what`` names the argument in the error, which points to the shipped multi-style model
    holding a style of that name, if one does."""
    if (found := find_model(name_or_path)) is not None:
        return found
    path = Path(name_or_path)
    shipped = shipped_models()
    for stem, file in shipped.items():  # a style inside a shipped multi-style model?
        try:
            names = StyleModel(file, "cpu", threads=1).style_names
        except UserError:
            continue
        if len(names) > 1 and path.name in names:
            raise UserError(f"{what} not found: {name_or_path} is a style of the shipped model {stem} "
                            f"(choose model {stem} with style {path.name})")
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
            raise UserError(f"threads must be at least 1, got {threads}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one frame: parallelism is within ops
        opts.intra_op_num_threads = threads or default_threads()
        # No busy-waiting between ops: on a laptop with few cores the spinning threads starve the capture thread.
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
        self.style_names = self._read_style_names()  # one name per style weight
        # The style input's weights, one per style (None: a model from before multi-style).
        self.style_weights = np.eye(len(self.style_names), dtype=np.float32)[0] if self._has_style_input else None
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

    def _read_style_names(self) -> list[str]:
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
        """Play a style or a blend: one non-negative weight per style (``self.style_names``), normalised
        to sum to 1. A model without a style input has one style."""
        w = np.asarray(weights, np.float64).reshape(-1)
        if w.shape != (len(self.style_names),):
            raise UserError(f"{self.name}: need {len(self.style_names)} style weights, got {w.size}")
        check_weights(f"{self.name} style weights", w.tolist())
        if self.style_weights is not None:
            self.style_weights = (w / w.sum()).astype(np.float32)

    def label(self) -> str:
        """What it plays: its name (one style), ``name/style``, or a blend ``a 70% + b 30%``."""
        w = self.style_weights
        if w is None or len(self.style_names) == 1:
            return self.name
        on = np.flatnonzero(w)
        if len(on) == 1:
            return f"{self.name}/{self.style_names[on[0]]}"
        return " + ".join(f"{self.style_names[i]} {w[i]:.0%}" for i in on)

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
                error = first_line(e)
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
            raise UserError(f"model {self.name} failed on a {w}x{h} frame: {first_line(e)}") from None


def _style_items(spec: str, valid: list[str], what: str) -> dict[str, float]:
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
            raise UserError(f"{what} {spec!r}: use NAME or NAME:WEIGHT,NAME:WEIGHT,... ({hint})")
        if weight < 0:
            raise UserError(f"{what} {spec!r}: negative weight for {name} ({hint})")
        items[name] = weight
    try:
        check_weights(f"{what} {spec!r}", list(items.values()))
    except UserError as e:
        raise UserError(f"{e} ({hint})") from None
    return items


def parse_style_spec(spec: str, names: list[str], what: str = "style") -> np.ndarray:
    """A style (``b``) or a blend (``a:0.7,b:0.3``) of a model's styles ``names`` -> (S,) float32
    weights summing to 1. ``what`` names the spec in errors."""
    items = _style_items(spec, names, what)
    if unknown := [n for n in items if n not in names]:
        raise UserError(f"{what} {spec!r}: unknown style {unknown[0]} (styles: {', '.join(names)})")
    weights = np.zeros(len(names), np.float64)  # normalised before the cast: 1e-50 alone is a weight of 1
    for name, weight in items.items():
        weights[names.index(name)] = weight
    return (weights / weights.sum()).astype(np.float32)


def models_with_style(models: list[StyleModel], spec: str, what: str = "style") -> list[tuple[int, np.ndarray]]:
    """(index, weights) of each of ``models`` that has every style ``spec`` names (see
    ``parse_style_spec``); a UserError when none has."""
    valid = list(dict.fromkeys(s for m in models for s in m.style_names))
    items = _style_items(spec, valid, what)
    found = [(i, parse_style_spec(spec, m.style_names, what)) for i, m in enumerate(models)
             if set(items) <= set(m.style_names)]
    if not found:
        missing = [n for n in items if n not in valid]
        why = f"unknown style {missing[0]}" if missing else "no model has all of these styles"
        raise UserError(f"{what} {spec!r}: {why} (styles: {', '.join(valid)})")
    return found


def select_style(models: list[StyleModel], spec: str, what: str = "style") -> tuple[int, np.ndarray]:
    """The first of ``models`` that has every style ``spec`` names, and its weights."""
    return models_with_style(models, spec, what)[0]


def _is_ort_error(e: Exception) -> bool:
    return type(e).__module__.startswith("onnxruntime")


def model_listing(names: list[str | os.PathLike] | None = None) -> list[str]:
    """One line per model (name, size, its card's summary), and one naming the styles of a multi-style
    model; by default the shipped models, and where their files and cards are."""
    paths = names or list(shipped_models().values())
    if not paths:
        return [f"no shipped models are installed (looked in {shipped_dir()})"]
    models = [StyleModel(p, "cpu", threads=1) for p in paths]
    width = max(len(m.path.stem) for m in models)
    lines = []
    for m in models:
        summary = card_summary(m.path.with_suffix(".md")) or "(no model card summary)"
        lines.append(f"{m.path.stem:<{width}}  {m.path.stat().st_size / 1e6:5.1f} MB  {summary}")
        if len(m.style_names) > 1:
            lines.append(f"{'':<{width}}  {len(m.style_names)} styles: {', '.join(m.style_names)}")
    if not names:
        lines.append(f"model files and cards (NAME.md): {shipped_dir()}")
    return lines
