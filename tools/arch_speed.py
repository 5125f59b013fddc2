"""Speed of candidate TransformNet shapes at 640x480 with onnxruntime on the CPU.

Speed does not depend on the weights, so every candidate is exported with random weights
(through the shipped ``export_onnx``, i.e. with the uint8 BGR NHWC I/O folded in) and timed
with ``session.run`` on one uint8 frame. The Johnson reference runs in the same process,
interleaved round by round with the candidates, and every figure is also given as a ratio to
it. Reported: the median over rounds of each round's mean frame time.

    python tools/arch_speed.py

Options: --size WxH, --threads N, --rounds N, --only "name;name" (johnson always runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from fastnst.config import NET_PRESETS, NetConfig
from fastnst.learn.export import INPUT_NAME, OUTPUT_NAME, STYLE_INPUT_NAME, export_onnx, torchscript_export
from fastnst.learn.nets import TransformNet

THIN = NetConfig(channels=(8, 16, 32), res_blocks=3, end_kernel=3)  # the first real-time candidate
FAST = NET_PRESETS["fast"]
R = dataclasses.replace
CANDIDATES: dict[str, NetConfig] = {
    "johnson": NET_PRESETS["johnson"],
    "thin 8-16-32 x3 k3": THIN,
    "thin, zero pad": R(THIN, padding="zeros"),
    "thin, zero pad, separable": R(THIN, padding="zeros", block="separable"),
    "thin, zero pad, deconv up": R(THIN, padding="zeros", upsample="deconv"),
    "FAST (stride2 k4, 16-32-64, 3 sep, nearest)": FAST,
    "fast, naive I/O (no folding)": FAST,  # same net, exported with unfolded uint8/BGR/NHWC conversions
    "fast, deconv up": R(FAST, upsample="deconv"),
    "fast, shuffle up": R(FAST, upsample="shuffle"),
    "fast, full 3x3 blocks": R(FAST, block="full"),
    "fast, 5 blocks": R(FAST, res_blocks=5),
    "fast, 1 block": R(FAST, res_blocks=1),
    "fast, end kernel 2": R(FAST, end_kernel=2),
    "fast, end kernel 6": R(FAST, end_kernel=6),
    "fast, 8-16-32": R(FAST, channels=(8, 16, 32)),
    "fast, 8-32-64": R(FAST, channels=(8, 32, 64)),
    "fast, 12-24-64": R(FAST, channels=(12, 24, 64)),
    "fast, 16-32-96": R(FAST, channels=(16, 32, 96)),
    "fast, 24-48-96": R(FAST, channels=(24, 48, 96)),
    "fast, 32-64-128": R(FAST, channels=(32, 64, 128)),
    "fast, zero padding (the first preset)": R(FAST, padding="zeros"),
}


class NaiveFrameIO(torch.nn.Module):
    """The unfolded I/O wrapper (the lever's baseline): full-resolution permute, flip, /255, *255."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, frames):
        x = frames.permute(0, 3, 1, 2).flip(1).float() / 255.0  # (N, 3, H, W) RGB [0, 1]
        y = (self.net(x).flip(1) * 255.0).round().clamp(0, 255)
        return y.permute(0, 2, 3, 1).to(torch.uint8)  # (N, H, W, 3) BGR


def export(name: str, cfg: NetConfig, path: Path) -> None:
    net = TransformNet(cfg).eval()
    if "naive" in name:
        torchscript_export(NaiveFrameIO(net), (torch.zeros(1, 64, 64, 3, dtype=torch.uint8),), path, [INPUT_NAME],
                           dynamic_axes={INPUT_NAME: {0: "N", 1: "H", 2: "W"}, OUTPUT_NAME: {0: "N", 1: "H", 2: "W"}})
    else:
        export_onnx(net, path)


def session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.5, help="seconds per model per round (at least 1 frame)")
    ap.add_argument("--only", default="", help="semicolon-separated candidate names (johnson always runs)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    names = [n for n in CANDIDATES if n == "johnson" or not args.only or n in args.only.split(";")]
    torch.manual_seed(0)
    frame = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)  # (1, H, W, 3) BGR
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            path = Path(tmp) / f"m{i}.onnx"
            export(name, CANDIDATES[name], path)
            sessions[name] = session(path, args.threads)
    feeds = {name: {INPUT_NAME: frame, **({STYLE_INPUT_NAME: np.ones(1, np.float32)} if len(s.get_inputs()) > 1 else {})}
             for name, s in sessions.items()}  # the naive export has no style input
    for name, s in sessions.items():  # warm-up
        for _ in range(2):
            s.run([OUTPUT_NAME], feeds[name])
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name, s in sessions.items():
            n, t0 = 0, time.perf_counter()
            while n == 0 or time.perf_counter() - t0 < args.budget:
                s.run([OUTPUT_NAME], feeds[name])
                n += 1
            times[name].append((time.perf_counter() - t0) / n)
    ref = statistics.median(times["johnson"])
    print(f"{w}x{h}, onnxruntime {ort.__version__} CPU, {args.threads} threads, ORT_ENABLE_ALL, "
          f"median of {args.rounds} rounds")
    print("| candidate | params | ms/frame | fps | x johnson |\n|---|---|---|---|---|")
    for name in names:
        t = statistics.median(times[name])
        params = sum(p.numel() for p in TransformNet(CANDIDATES[name]).parameters())
        print(f"| {name} | {params / 1e3:.0f}k | {t * 1e3:.1f} | {1 / t:.1f} | {ref / t:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
