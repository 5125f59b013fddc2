"""The fps cost of `fastnst webcam --virtual-camera`: the same headless run with and without it, interleaved.

The virtual camera here is a pyvirtualcam backend that copies each frame into a buffer, as a
driver takes it, so that the figure is the player's own cost (the scaling back to the source's
size, the hand-over to the sending thread) on any machine, with or without a virtual camera
device. Files are not paced (--no-pace) so that both runs go as fast as they stylize. Besides
fps, each run's CPU time per frame (all threads of the process) is compared: on a busy machine
it varies less than fps does. First it times the player's own work per frame directly: the
frame scaled back to the source's size and copied as a driver would (--rounds 0: only that).

    python tools/bench_vcam.py --source ../shared/data/videos/vtest.avi [--frames 150] [--rounds 4] [-- webcam flags]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import sys
import time

import numpy as np
import pyvirtualcam
from pyvirtualcam import camera as pyvirtualcam_camera

from fastnst.cli import main
from fastnst.play.vcam import fit_frame
from fastnst.play.video import open_capture, source_size


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


def measure(argv: list[str]) -> tuple[float, float]:
    """fps, and CPU milliseconds per frame, of one `fastnst` run."""
    out = io.StringIO()
    cpu = time.process_time()
    with contextlib.redirect_stdout(out):
        if main(argv) != 0:
            sys.exit(f"fastnst {' '.join(argv)} failed")
    cpu = time.process_time() - cpu
    frames, fps = re.search(r"(\d+) frames in [\d.]+ s: ([\d.]+) fps", out.getvalue()).groups()
    return float(fps), 1000 * cpu / int(frames)


def direct_ms(source: str, width: int = 640, repeats: int = 7, frames: int = 200) -> list[float]:
    """Milliseconds per frame of ``fit_frame`` (processing size -> the source's) and a driver's copy."""
    cap = open_capture(source)
    size = source_size(cap)
    cap.release()
    view = np.random.default_rng(0).integers(0, 256, (round(width * size[1] / size[0]), width, 3), np.uint8)
    buffer = np.empty(size[0] * size[1] * 3, np.uint8)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(frames):
            np.copyto(buffer, fit_frame(view, size).reshape(-1))
        times.append((time.perf_counter() - t) / frames * 1000)
    return times


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--rounds", type=int, default=4)
    args, extra = p.parse_known_args()
    ms = direct_ms(args.source)
    print(f"the virtual camera's own work: median {statistics.median(ms):.2f} ms a frame "
          f"({min(ms):.2f} to {max(ms):.2f} in {len(ms)} repeats)", flush=True)
    if not args.rounds:
        return
    pyvirtualcam_camera.BACKENDS.clear()  # this process's only camera is the copying one
    pyvirtualcam.register_backend("copy", CopyBackend)
    flags = ["webcam", "--source", args.source, "--no-display", "--no-pace", *[a for a in extra if a != "--"]]
    base = [*flags, "--frames", str(args.frames)]
    measure([*flags, "--frames", "20"])  # warm-up: the page cache, first allocations
    plain, vcam = [], []
    for i in range(args.rounds):
        runs = [(plain, base), (vcam, base + ["--virtual-camera"])]
        for results, argv in runs if i % 2 == 0 else runs[::-1]:  # alternate which goes first
            results.append(measure(argv))
        print(f"round {i + 1}: without {plain[-1][0]:.2f} fps, {plain[-1][1]:.1f} CPU ms/frame; "
              f"with --virtual-camera {vcam[-1][0]:.2f} fps, {vcam[-1][1]:.1f} CPU ms/frame", flush=True)
    fps = statistics.median(v[0] / p[0] for p, v in zip(plain, vcam))
    cpu = statistics.median(v[1] / p[1] for p, v in zip(plain, vcam))
    print(f"median of {args.rounds} rounds: without {statistics.median(p[0] for p in plain):.2f} fps, "
          f"with {statistics.median(v[0] for v in vcam):.2f} fps; with/without: fps {fps:.3f} "
          f"(cost {1 - fps:.1%}), CPU time per frame {cpu:.3f}")


if __name__ == "__main__":
    run()
