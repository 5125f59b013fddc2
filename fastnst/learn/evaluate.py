"""Quality of a style model: the mean perceptual loss of its outputs on a folder of photos.

Every photo is resized (Lanczos) so that its short side is ``size`` and center-cropped to
``size`` x ``size``, so every image weighs the same and the figures of different models (and
of the Gatys reference) are comparable. The losses are the model's own training loss (its
``LossConfig`` and ``style_size``, read from the ONNX metadata ``fastnst.config``): content,
style and TV terms each multiplied by their weight, so that they add up to ``total``.

``evaluate(...)`` is the library entry point that ``fastnst eval`` calls; it returns one
``EvalRow`` per method (the model, then ``gatys-N`` when asked). Per-image metrics take
(content, output) pairs, so other measures (e.g. temporal warping error on a video) can be
added as further functions over the same loaded model.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from fastnst import UserError
from fastnst.config import VGG_MIN_SIDE, OptimizeConfig, TrainConfig, train_config_from_json
from fastnst.learn.data import to_tensor
from fastnst.play.contract import META_CONFIG
from fastnst.play.images import list_images, load_image
from fastnst.learn.device import autocast, pick_precision
from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.vgg import VGGEncoder

log = logging.getLogger(__name__)

TERMS = ("content", "style", "tv", "total")


@dataclass
class EvalRow:
    """One method's mean losses (weighted terms and their sum) over ``images`` photos."""

    method: str
    images: int
    losses: dict[str, float]
    seconds_per_image: float
    style: str = ""  # the style scored (rows of one style compare with each other)


def load_eval_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """A photo as (size, size, 3) uint8 RGB: short side resized to ``size``, center crop."""
    img = Image.fromarray(load_image(path, what="content image"))
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


@torch.no_grad()
def perceptual_losses(criterion: PerceptualLoss, content_rgb: np.ndarray, output_rgb: np.ndarray) -> dict[str, float]:
    """Weighted content, style and TV terms and their total for one (content, output) pair of
    (H, W, 3) uint8 RGB images of the same size."""
    if content_rgb.shape != output_rgb.shape:
        raise ValueError(f"output shape {output_rgb.shape} != content shape {content_rgb.shape}")
    x = to_tensor(output_rgb)[None]  # (1, 3, H, W)
    raw = criterion(x, criterion.content_targets(to_tensor(content_rgb)[None]))
    weights = {"content": criterion.content_weight, "style": criterion.style_weight, "tv": criterion.tv_weight}
    out = {k: w * raw[k].item() for k, w in weights.items()}
    out["total"] = raw["total"].item()
    return out


def mean_losses(criterion: PerceptualLoss, contents: Sequence[np.ndarray],
                method: Callable[[np.ndarray], np.ndarray], name: str, precision: str = "fp32",
                style: str = "") -> EvalRow:
    """Run ``method`` (RGB uint8 -> RGB uint8 of the same size) on every content image and
    average ``perceptual_losses`` over them."""
    sums = dict.fromkeys(TERMS, 0.0)
    seconds = 0.0
    for i, content in enumerate(contents):
        t0 = time.perf_counter()
        output = method(content)
        seconds += time.perf_counter() - t0
        with autocast(torch.device("cpu"), precision):
            losses = perceptual_losses(criterion, content, output)
        for k, v in losses.items():
            sums[k] += v
        log.debug("%s: image %d of %d done", name, i + 1, len(contents))
    n = max(1, len(contents))
    return EvalRow(name, len(contents), {k: v / n for k, v in sums.items()}, seconds / n, style)


def evaluate(model: str | os.PathLike, content: str | os.PathLike, styles: Sequence[str | os.PathLike] = (),
             size: int = 256, limit: int | None = None, gatys: int = 0, encoder: VGGEncoder | None = None,
             threads: int | None = None, holdout: int | None = None, precision: str = "fp32") -> list[EvalRow]:
    """Mean training losses of an ONNX model's outputs on the photos in ``content`` (sorted;
    the last ``holdout``, then the first ``limit``), for each style of the model, and with
    ``gatys`` > 0 of ``fastnst.learn.optimize`` run for that many L-BFGS iterations per photo
    with the same loss. ``styles``: the paintings, matched to the model's styles by file name
    (default: the paths its training config recorded). ``encoder``: a VGGEncoder returning the
    loss's layers (default: the one the model was trained with). ``precision``: of the VGG
    (fp32 by default, so that figures stay comparable across machines)."""
    from fastnst.play.model import StyleModel

    if size < VGG_MIN_SIDE:
        raise UserError(f"size must be at least {VGG_MIN_SIDE}, got {size}")
    if gatys < 0 or (limit is not None and limit < 1):
        raise UserError("gatys iterations must be >= 0 and limit >= 1")
    runner = StyleModel(model, provider="cpu", threads=threads)
    cfg = train_config_from_json(runner.metadata.get(META_CONFIG), str(runner.path))
    style_paths = _style_paths(runner.style_names, styles, cfg)
    paths = list_images(content)
    if holdout and holdout > len(paths):
        raise UserError(f"holdout {holdout}: {content} has only {len(paths)} images")
    paths = paths[len(paths) - holdout:] if holdout else paths
    paths = paths[:limit]
    if not paths:
        raise UserError(f"no images (jpg, jpeg, png, webp, bmp) in {content}")
    contents = [load_eval_image(p, size) for p in paths]
    device = torch.device("cpu")
    precision, _ = pick_precision(precision, device)
    encoder = encoder if encoder is not None else VGGEncoder.from_config(cfg.loss)
    log.info("eval: %d photos at %dx%d, loss of %s (vgg %s, %s)", len(contents), size, size, runner.name,
             cfg.loss.vgg, precision)
    rows = []
    for i, (name, path) in enumerate(zip(runner.style_names, style_paths)):
        style_rgb = load_image(path, cfg.style_size, "style image")
        with autocast(device, precision):
            criterion = PerceptualLoss.from_config(cfg.loss, [to_tensor(style_rgb)[None]], encoder)
        label = name if len(runner.style_names) == 1 else f"{runner.name}/{name}"
        runner.set_style(np.eye(len(runner.style_names))[i])

        def stylize(rgb: np.ndarray) -> np.ndarray:
            bgr = runner.run(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # (H, W, 3) BGR
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

        rows.append(mean_losses(criterion, contents, stylize, f"{label} ({cfg.net.arch})", precision, name))
        if gatys:
            from fastnst.learn.optimize import optimize

            # The same loss, the content at the eval size, the style at the training's style size.
            ocfg = OptimizeConfig(loss=cfg.loss, scales=(size,), iterations=(gatys,), precision=precision,
                                  style_scale=max(style_rgb.shape[:2]) / size, device="cpu")

            def gatys_method(rgb: np.ndarray) -> np.ndarray:
                return optimize(rgb, [style_rgb], ocfg, progress=False, encoder=encoder).image

            rows.append(mean_losses(criterion, contents, gatys_method, f"gatys-{gatys}" + (
                f"/{name}" if len(runner.style_names) > 1 else ""), precision, name))
    return rows


def _style_paths(names: Sequence[str], given: Sequence[str | os.PathLike], cfg: TrainConfig) -> list[str]:
    """One painting per style name: from ``given`` by file name (one path fits a one-style
    model whatever its name), else the path the training config recorded."""
    if len(given) == 1 and len(names) == 1:
        return [str(given[0])]
    by_name = {Path(p).stem: str(p) for p in given}
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise UserError(f"style {', '.join(unknown)}: the model's styles are {', '.join(names)}")
    recorded = dict(zip(names, cfg.style_paths)) if len(cfg.style_paths) == len(names) else {}  # in order: renames too
    out = [by_name.get(n) or recorded.get(n) for n in names]
    missing = [n for n, p in zip(names, out) if not p or not Path(p).is_file()]
    if missing:
        raise UserError(f"give the painting of style(s) {', '.join(missing)} (the model's recorded style images "
                        "are not here)")
    return out


def format_table(rows: Sequence[EvalRow]) -> str:
    """A markdown table of ``rows``, with each total also relative to that of the first row of
    the same style (the model's, so a Gatys row's is its ratio to the model)."""
    first: dict[str, float] = {}
    lines = ["| method | images | content | style | tv | total | vs first | s/image |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = first.setdefault(r.style, r.losses["total"])
        rel = f"{r.losses['total'] / ref:.3f}" if ref else "-"
        lines.append(f"| {r.method} | {r.images} | " + " | ".join(f"{r.losses[k]:.4g}" for k in TERMS)
                     + f" | {rel} | {r.seconds_per_image:.3f} |")
    return "\n".join(lines)
