"""The Gatys et al. (2016) method: optimise the pixels of one image so that its VGG features
match a content photo and its Gram matrices match one or more paintings.

``optimize(content, styles, cfg)`` is the library entry point (``fastnst optimize`` and
``fastnst eval --gatys`` call it). It runs coarse to fine over ``cfg.scales``, each scale
initialised from the upsampled previous result, with L-BFGS (default) or Adam, and offers the
colour controls of Gatys et al. (2017).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fastnst import UserError
from fastnst.play.color import luminance_transfer, match_histogram
from fastnst.config import VGG_MIN_SIDE, OptimizeConfig
from fastnst.learn.data import to_tensor
from fastnst.learn.device import autocast, pick_device, pick_precision
from fastnst.play.files import check_output_path
from fastnst.play.images import OUTPUT_IMAGE_SUFFIXES, check_image_side, load_image, resize_long_side, save_image
from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.vgg import VGGEncoder

log = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")
PRESERVE_COLOR = ("none", "luminance", "histogram")
PIXEL_UNITS = 255.0  # the optimised image is in 0-255 units (see ``optimize``)
DEFAULT_LR = {"lbfgs": 1.0, "adam": 2.0}  # in PIXEL_UNITS


@dataclass
class OptimizeResult:
    """What ``optimize`` returns.

    ``image``: (H, W, 3) uint8 RGB. ``first_losses``: the components (content, style, tv:
    unweighted; total: weighted) at the first iteration of the first scale; ``final_losses``:
    those of the returned image (before colour post-processing) at the last scale.
    ``history``: one (scale, iteration within the scale, seconds since start, total loss) per
    loss evaluation.
    """

    image: np.ndarray
    first_losses: dict[str, float]
    final_losses: dict[str, float]
    iterations: int
    seconds: float
    history: list[tuple[int, int, float, float]] = field(default_factory=list)


class OptimizeInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``optimize``: ``.result`` holds the best image so far (at the output size)."""

    def __init__(self, result: OptimizeResult, output: Path | None = None):
        super().__init__("interrupted")
        self.result, self.output = result, output  # ``optimize_files`` wrote the image to ``output``


def check_config(cfg: OptimizeConfig, n_styles: int) -> None:
    """Raise UserError for settings that cannot work (before any heavy work starts)."""
    if not cfg.loss.style_layers:
        raise UserError("need at least one style layer")
    if len(cfg.iterations) not in (1, len(cfg.scales)):
        raise UserError(f"give one iteration count, or one per scale ({len(cfg.scales)}), got {list(cfg.iterations)}")
    if cfg.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {cfg.optimizer!r} (use {' or '.join(OPTIMIZERS)})")
    if cfg.preserve_color not in PRESERVE_COLOR:
        raise UserError(f"unknown preserve-color {cfg.preserve_color!r} (use {', '.join(PRESERVE_COLOR)})")
    if n_styles < 1:
        raise UserError("need at least one style image")
    if cfg.style_blend is not None:
        if len(cfg.style_blend) != n_styles:
            raise UserError(f"style_blend needs one weight per style image ({n_styles}), got {len(cfg.style_blend)}")
    if cfg.init not in ("content", "noise") and not Path(cfg.init).is_file():
        raise UserError(f"init image not found: {cfg.init} (use content, noise or an image path)")


def optimize_files(content: str | Path, styles: Sequence[str | Path], output: str | Path, cfg: OptimizeConfig,
                   max_size: int = 2048, progress: bool = True) -> tuple[OptimizeResult, Path]:
    """``optimize`` from image files to ``output`` (also ``OUTPUT_<iteration>`` every ``cfg.save_every``),
    the inputs downscaled to long side ``max_size``; Ctrl-C writes the best image so far, then raises
    ``OptimizeInterrupted``. Returns the result and the output path."""
    out = check_output_path(output, OUTPUT_IMAGE_SUFFIXES, (content, *styles, cfg.init), "image")
    if max_size < VGG_MIN_SIDE:
        raise UserError(f"max_size must be >= {VGG_MIN_SIDE}, got {max_size}")
    check_image_side(out, cfg.scales[-1])
    check_config(cfg, len(styles))  # fail fast, before the images and VGG load
    content_rgb = load_image(content, max_size, "content image")
    style_rgbs = [load_image(s, max_size, "style image") for s in styles]
    low = min(cfg.scales)
    for what, img, side in [("content image", content_rgb, low),
                            *(("style image", s, max(VGG_MIN_SIDE, round(cfg.style_scale * low))) for s in style_rgbs)]:
        h, w = img.shape[:2]
        if min(h, w) * side < VGG_MIN_SIDE * max(h, w):  # its short side once resized to long side ``side``
            raise UserError(f"{what} {w}x{h} is too thin: its short side would be {min(h, w) * side // max(h, w)} px "
                            f"at {side} px, VGG needs {VGG_MIN_SIDE} (use a larger size)")

    def snapshot(iteration: int, rgb: np.ndarray) -> None:
        save_image(rgb, out.with_name(f"{out.stem}_{iteration:05d}{out.suffix}"))

    try:
        result = optimize(content_rgb, style_rgbs, cfg, progress=progress, snapshot=snapshot)
    except OptimizeInterrupted as e:
        save_image(e.result.image, out)
        raise OptimizeInterrupted(e.result, out) from None
    save_image(result.image, out)
    return result, out


def format_result(result: OptimizeResult, out: Path) -> str:
    """What ``optimize_files`` wrote, and each loss at the first and the last iteration."""
    first, final = result.first_losses, result.final_losses
    h, w = result.image.shape[:2]
    lines = [f"wrote {out} ({w}x{h}) after {result.iterations} iterations in {result.seconds:.1f} s"]
    for k in ("style", "content", "tv", "total"):
        change = f" ({100 * (final[k] / first[k] - 1):+.1f}%)" if first[k] else ""
        lines.append(f"  {k:8s} loss {first[k]:.5g} -> {final[k]:.5g}{change}")
    return "\n".join(lines)


def _resize(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """(H, W, 3) uint8 -> long side ``long_side`` (Lanczos)."""
    if max(rgb.shape[:2]) == long_side:
        return rgb
    return np.asarray(resize_long_side(Image.fromarray(rgb), long_side))


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float -> (H, W, 3) uint8, clamped to [0, 1] first."""
    return x.detach()[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> its luminance (Y of YCrCb, ITU-R BT.601) replicated to 3 channels."""
    y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # (H, W)
    return np.repeat(np.clip(y + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _match_luminance(style_y: np.ndarray, content_y: np.ndarray) -> np.ndarray:
    """Shift and scale the style luminance to the content's mean and std (Gatys et al. 2017, §2.1)."""
    s, c = style_y.astype(np.float32), content_y.astype(np.float32)
    out = (s - s.mean()) * (c.std() / max(float(s.std()), 1e-3)) + c.mean()
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _initial_image(cfg: OptimizeConfig, content: np.ndarray, device: torch.device) -> torch.Tensor:
    """The starting point at the first scale: (1, 3, H, W) in [0, 1]."""
    if cfg.init == "content":
        return to_tensor(content)[None].to(device)
    h, w = content.shape[:2]
    if cfg.init == "noise":
        gen = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(1, 3, h, w, generator=gen).to(device)
    init = load_image(cfg.init, what="init image")
    init = np.asarray(Image.fromarray(init).resize((w, h), Image.Resampling.LANCZOS))
    return to_tensor(init)[None].to(device)


def optimize(
    content_rgb: np.ndarray,
    styles: Sequence[np.ndarray],
    cfg: OptimizeConfig = OptimizeConfig(),
    progress: bool = True,
    encoder: VGGEncoder | None = None,
    snapshot: Callable[[int, np.ndarray], None] | None = None,
) -> OptimizeResult:
    """Stylise ``content_rgb`` ((H, W, 3) uint8 RGB) with ``styles`` (a list of the same).

    The output's long side is ``cfg.scales[-1]``. ``encoder`` (optional) is a VGGEncoder that
    returns ``cfg.loss``'s layers, e.g. to reuse one across many images or a random one in
    tests; by default ``cfg.loss.vgg`` is loaded. ``snapshot(iteration, rgb)`` is called every
    ``cfg.save_every`` iterations. Ctrl-C raises ``OptimizeInterrupted`` carrying the best
    image so far.
    """
    check_config(cfg, len(styles))
    device = pick_device(cfg.device)
    precision, why = pick_precision(cfg.precision, device)
    log.info("optimize on %s in %s (%s)", device, precision, why)
    torch.manual_seed(cfg.seed)
    encoder = (encoder if encoder is not None else VGGEncoder.from_config(cfg.loss)).to(device)
    if precision == "bf16":
        encoder = encoder.to(memory_format=torch.channels_last)
    loss_cfg = cfg.loss
    iterations = cfg.iterations * len(cfg.scales) if len(cfg.iterations) == 1 else cfg.iterations
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer]

    original = content_rgb
    if cfg.preserve_color == "histogram":  # §3.1: recolour the style to the photo's palette
        styles = [match_histogram(s, content_rgb) for s in styles]
    elif cfg.preserve_color == "luminance":  # §3.2: transfer on luminance only, chroma added back at the end
        content_rgb = _luminance(content_rgb)
        styles = [_match_luminance(_luminance(s), content_rgb) for s in styles]

    start = time.perf_counter()
    history: list[tuple[int, int, float, float]] = []
    first: dict[str, float] = {}
    count = 0  # iterations run, all scales
    x: torch.Tensor | None = None  # current image (1, 3, H, W)
    best: torch.Tensor | None = None  # lowest-loss image of the current scale
    bar = _progress_bar(sum(iterations), progress)
    try:
        for scale, n_iter in zip(cfg.scales, iterations):
            content = _resize(content_rgb, scale)
            h, w = content.shape[:2]
            style_size = max(VGG_MIN_SIDE, round(cfg.style_scale * scale))
            with autocast(device, precision):  # the VGG convolutions only; Grams and losses stay fp32
                criterion = PerceptualLoss.from_config(
                    loss_cfg, [to_tensor(_resize(s, style_size))[None].to(device) for s in styles], encoder,
                    style_blend=cfg.style_blend)
                targets = criterion.content_targets(to_tensor(content)[None].to(device))
            if x is None:
                x = _initial_image(cfg, content, device)
            else:  # coarse to fine: start from the upsampled previous result
                x = F.interpolate(x.detach(), size=(h, w), mode="bilinear", align_corners=False)
            # The optimised variable is in 0-255 units, as in the Caffe-era implementations
            # (neural-style, pastiche): L-BFGS's first step, 1/|g|_1, depends on the units, and in
            # [0, 1] units its second, curvature-scaled step overshoots by orders of magnitude.
            pixels = x.detach().mul(PIXEL_UNITS).contiguous().requires_grad_(True)  # (1, 3, H, W)
            best, best_total, it_in_scale = x.detach().clone(), float("inf"), 0
            bar.set_description(f"optimize {w}x{h}")

            def closure() -> torch.Tensor:
                nonlocal count, best, best_total, it_in_scale, first
                nonlocal x
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():  # keep the image displayable, so the loss is that of what is written
                    pixels.clamp_(0, PIXEL_UNITS)
                x = pixels / PIXEL_UNITS  # (1, 3, H, W) in [0, 1], fp32 like the L-BFGS state
                with autocast(device, precision):
                    losses = criterion(x, targets)
                losses["total"].backward()
                vals = {k: v.item() for k, v in losses.items() if v.dim() == 0}
                if not first:
                    first = vals
                if vals["total"] < best_total:
                    best, best_total = x.detach().clone(), vals["total"]
                count += 1
                it_in_scale += 1
                history.append((scale, it_in_scale, time.perf_counter() - start, vals["total"]))
                bar.set_postfix({k: f"{v:.4g}" for k, v in vals.items()}, refresh=False)
                bar.update(1)
                if snapshot is not None and cfg.save_every and count % cfg.save_every == 0:
                    snapshot(count, _finish(x, cfg, original))
                return losses["total"]

            if cfg.optimizer == "lbfgs":
                # One L-BFGS call of n_iter iterations, no line search: one loss evaluation per
                # iteration, the same work per iteration as pastiche's LBFGS(max_iter=1) loop.
                # Tolerances 0: always run the iterations asked for (the first step is tiny, t = 1/|g|_1,
                # and would trip the default step-size tolerance).
                # max_eval = n_iter + 1: torch stops once the evaluations reach max_eval, and it
                # evaluates before the first update but not after the last, so n_iter updates
                # take n_iter evaluations.
                optimizer = torch.optim.LBFGS(
                    [pixels], lr=lr, max_iter=n_iter, max_eval=n_iter + 1, history_size=100, tolerance_grad=0.0,
                    tolerance_change=0.0
                )
                optimizer.step(closure)
            else:
                optimizer = torch.optim.Adam([pixels], lr=lr)
                decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)
                for _ in range(n_iter):
                    optimizer.step(closure)
                    decay.step()
            x = pixels.detach() / PIXEL_UNITS  # the last update is not evaluated, but it is kept
            log.debug("scale %d: %d iterations, best total loss %.4g", scale, it_in_scale, best_total)
        with torch.no_grad():  # score what will be written (clamped), not the unclamped iterate
            x = pixels.detach().div(PIXEL_UNITS).clamp(0, 1)
            with autocast(device, precision):
                final = {k: v.item() for k, v in criterion(x, targets).items() if v.dim() == 0}
    except KeyboardInterrupt:
        if best is None:
            raise
        final_hw = _resize(content_rgb, cfg.scales[-1]).shape[:2]
        best = F.interpolate(best, size=final_hw, mode="bilinear", align_corners=False)
        image = _finish(best, cfg, original)
        raise OptimizeInterrupted(
            OptimizeResult(image, first, {}, count, time.perf_counter() - start, history)
        ) from None
    finally:
        bar.close()
    return OptimizeResult(_finish(x, cfg, original), first, final, count, time.perf_counter() - start, history)


def _finish(x: torch.Tensor, cfg: OptimizeConfig, original: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) -> uint8 RGB, with the photo's colours put back for ``preserve_color=luminance``."""
    rgb = _to_uint8(x)
    if cfg.preserve_color == "luminance":  # the photo at the image's scale (a snapshot's may be a coarse one)
        rgb = luminance_transfer(rgb, _resize(original, max(rgb.shape[:2])))
    return rgb


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="it", disable=not enabled, dynamic_ncols=True, leave=True)
