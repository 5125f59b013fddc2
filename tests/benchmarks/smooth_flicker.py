"""Flicker with and without the player's temporal smoothing (``--smooth``) on a video.

The warping error of GUIDE.md §5 (``fastnst.temporal.video_warping_error``) over the first
``--frames`` frames, resized to ``--size``, through ``FramePipeline.stylize`` with smoothing
off and on (the same path as ``fastnst stylize --smooth``), next to the input's own figure.
Without ``--model`` a random-weight "fast" preset net is exported to a temporary folder (needs
torch): enough to check the plumbing; trained models give the figures that matter.

    flock /tmp/fastnst-cpu.lock /work/venv/bin/python tests/benchmarks/smooth_flicker.py \\
        --video ../shared/data/videos/vtest.avi --frames 100 --size 640x480
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import cv2

from fastnst.runtime import FramePipeline, StyleModel
from fastnst.temporal import video_warping_error


def random_fast_model(folder: Path) -> Path:
    import torch

    from fastnst.export import export_onnx
    from fastnst.nets import TransformNet, preset

    torch.manual_seed(0)
    with warnings.catch_warnings():  # the exporter's tracer warnings
        warnings.simplefilter("ignore")
        return export_onnx(TransformNet(preset("fast")), folder / "fast-random.onnx", {"fastnst.style": "fast-random"})


def read_frames(video: str, n: int, size: tuple[int, int]) -> list:
    cap = cv2.VideoCapture(video)
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))  # (h, w, 3) BGR
    cap.release()
    if len(frames) < 2:
        raise SystemExit(f"cannot read two frames from {video}")
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--model", help="ONNX model or shipped name (default: a random-weight fast preset)")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    frames = read_frames(args.video, args.frames, size)
    with tempfile.TemporaryDirectory() as tmp:
        model = StyleModel(args.model or random_fast_model(Path(tmp)), threads=args.threads)
        rows = {}
        for smooth in (False, True):
            pipe = FramePipeline()  # a fresh smoothing history per run
            rows[smooth] = video_warping_error(frames, lambda f: pipe.stylize(model, f, smooth=smooth).copy())
    (plain, inp), (smoothed, _) = rows[False], rows[True]
    print(f"{args.video}: {len(frames)} frames at {size[0]}x{size[1]}, model {model.name}")
    print(f"  input frames           {inp:7.3f}")
    print(f"  stylized               {plain:7.3f}  ({plain / inp:.2f}x input)")
    print(f"  stylized, --smooth     {smoothed:7.3f}  ({smoothed / inp:.2f}x input, {smoothed / plain:.2f}x unsmoothed)")


if __name__ == "__main__":
    main()
