"""The fastnst command line: the only module that reads argv, prints results and picks exit codes.

Each subcommand has an ``_add_<name>(sub)`` that declares its arguments and a
``_run_<name>(args) -> int`` that does the work. Torch-based modules are imported inside
the torch commands only, so ``webcam``, ``stylize`` and ``bench`` run on the base install.
"""

from __future__ import annotations

import argparse
import logging
import sys

from fastnst import UserError, __version__

log = logging.getLogger("fastnst")


def _error(msg: str) -> None:
    print(f"fastnst: error: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- optimize (issue 2)
def _add_optimize(sub) -> None:
    p = sub.add_parser("optimize", help="Gatys et al. image optimisation (the quality reference)")
    p.set_defaults(func=_run_optimize)


def _run_optimize(args) -> int:
    raise UserError("optimize: not implemented yet")


# ---------------------------------------------------------------- train / export (issue 3)
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a feed-forward style network and export it to ONNX")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    raise UserError("train: not implemented yet")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a training checkpoint to ONNX")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    raise UserError("export: not implemented yet")


# ---------------------------------------------------------------- player (issue 4)
def _add_stylize(sub) -> None:
    p = sub.add_parser("stylize", help="stylize images and videos with an ONNX model")
    p.set_defaults(func=_run_stylize)


def _run_stylize(args) -> int:
    raise UserError("stylize: not implemented yet")


def _add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live stylization of a camera (or video) in an OpenCV window")
    p.set_defaults(func=_run_webcam)


def _run_webcam(args) -> int:
    raise UserError("webcam: not implemented yet")


# ---------------------------------------------------------------- bench / eval (issue 5)
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="how fast will a model run on this machine?")
    p.set_defaults(func=_run_bench)


def _run_bench(args) -> int:
    raise UserError("bench: not implemented yet")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="perceptual loss of a model on a folder of photos")
    p.set_defaults(func=_run_eval)


def _run_eval(args) -> int:
    raise UserError("eval: not implemented yet")


# ---------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnst",
        description="Real-time neural style transfer: train a style on a GPU box, play it live on a laptop CPU.",
    )
    parser.add_argument("--version", action="version", version=f"fastnst {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_train, _add_export, _add_optimize, _add_stylize, _add_webcam, _add_bench, _add_eval):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except UserError as e:
        _error(str(e))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
