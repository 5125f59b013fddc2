"""The fps cost of `fastnst webcam --virtual-camera`: the same headless run with and without it, interleaved.

The virtual camera here is a pyvirtualcam backend that copies each frame into a buffer, as a
driver takes it, so that the figure is the player's own cost (the scaling back to the source's
size, the hand-over to the sending thread) on any machine, with or without a virtual camera
device. Files are not paced (--no-pace) so that both runs go as fast as they stylize.

    python tools/bench_vcam.py --source ../shared/data/videos/vtest.avi [--frames 150] [--rounds 4] [-- webcam flags]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import sys

import numpy as np
import pyvirtualcam
from pyvirtualcam import camera as pyvirtualcam_camera

from fastnst.cli import main


class CopyBackend:
    """A virtual camera device that copies what it is sent: what a driver's write costs at least."""

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.buffer = np.empty(width * height * 3, np.uint8)

    def send(self, frame):
        np.copyto(self.buffer, frame)

    def close(self):
        pass

    def device(self):
        return "copy"

    def native_fourcc(self):
        return None


def fps_of(argv: list[str]) -> float:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if main(argv) != 0:
            sys.exit(f"fastnst {' '.join(argv)} failed")
    return float(re.search(r"frames in [\d.]+ s: ([\d.]+) fps", out.getvalue()).group(1))


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--rounds", type=int, default=4)
    args, extra = p.parse_known_args()
    pyvirtualcam_camera.BACKENDS.clear()  # this process's only camera is the copying one
    pyvirtualcam.register_backend("copy", CopyBackend)
    flags = ["webcam", "--source", args.source, "--no-display", "--no-pace", *[a for a in extra if a != "--"]]
    base = [*flags, "--frames", str(args.frames)]
    fps_of([*flags, "--frames", "20"])  # warm-up: the page cache, first allocations
    plain, vcam = [], []
    for i in range(args.rounds):
        runs = [(plain, base), (vcam, base + ["--virtual-camera"])]
        for results, argv in runs if i % 2 == 0 else runs[::-1]:  # alternate which goes first
            results.append(fps_of(argv))
        print(f"round {i + 1}: without {plain[-1]:.2f} fps, with --virtual-camera {vcam[-1]:.2f} fps", flush=True)
    ratios = [v / p for p, v in zip(plain, vcam)]
    print(f"median: without {statistics.median(plain):.2f} fps, with {statistics.median(vcam):.2f} fps; "
          f"with/without {statistics.median(ratios):.3f} (cost {1 - statistics.median(ratios):.1%})")


if __name__ == "__main__":
    run()
