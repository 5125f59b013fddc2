"""Training throughput by precision and memory layout: fp32 against ``auto`` (and bf16 and
channels_last forced), interleaved round by round in one process on one fixed batch.

One step is what the training loop computes: content targets, the net, the VGG loss, backward
and Adam, under ``fastnst.learn.device.autocast``. Prints img/s per variant (median of the
rounds) and the ratio to fp32 NCHW.

    python tools/train_precision.py --sizes 128 256 --rounds 3
    python tools/train_precision.py --device cuda --batch 4 16 --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fastnst.config import NetConfig, TrainConfig
from fastnst.learn.device import autocast, pick_precision
from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.nets import TransformNet

# name: (precision, channels_last, the transform net in bf16 too). The trainer runs the net in
# fp32 whatever the precision; "bf16 net too" is how it trained until 2026-11-27.
VARIANTS = {"fp32": ("fp32", False, False), "fp32 channels_last": ("fp32", True, False),
            "auto": ("auto", None, False), "bf16 channels_last": ("bf16", True, False),
            "bf16 net too": ("bf16", True, True)}


def step_seconds(device: torch.device, precision: str, channels_last: bool, net_bf16: bool, net_cfg: NetConfig,
                 size: int, batch: int, steps: int) -> float:
    """Median seconds of ``steps`` training steps (after one warm-up step)."""
    cfg = TrainConfig()
    torch.manual_seed(0)
    net = TransformNet(net_cfg)
    ploss = PerceptualLoss.from_config(cfg.loss, [torch.rand(1, 3, 256, 256)])
    net, ploss = net.to(device), ploss.to(device)
    x = torch.rand(batch, 3, size, size, device=device)  # (B, 3, S, S)
    if channels_last:
        net, ploss = net.to(memory_format=torch.channels_last), ploss.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        with autocast(device, precision if net_bf16 else "fp32"):
            out = net(x)
        with autocast(device, precision):
            losses = ploss(out, ploss.content_targets(x))
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--batch", type=int, nargs="+", default=[4])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--channels", type=int, nargs="+", default=list(NetConfig.channels),
                   help="the net's channels (two: residual blocks at H/4)")
    p.add_argument("--blocks", type=int, default=NetConfig.res_blocks, help="residual blocks")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a = p.parse_args()
    device = torch.device(a.device)
    auto, why = pick_precision("auto", device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    net_cfg = NetConfig(channels=tuple(a.channels), res_blocks=a.blocks)
    print(f"torch {torch.__version__}, {where}; auto = {auto} ({why}); net {a.channels}, {a.blocks} blocks")
    for size, batch in ((s, b) for s in a.sizes for b in a.batch):
        secs: dict[str, list[float]] = {v: [] for v in a.variants}
        for _ in range(a.rounds):
            for v in a.variants:
                precision, cl, net_bf16 = VARIANTS[v]
                resolved = pick_precision(precision, device)[0]
                cl = resolved == "bf16" if cl is None else cl  # as the trainer picks it
                secs[v].append(step_seconds(device, resolved, cl, net_bf16, net_cfg, size, batch, a.steps))
        base = statistics.median(secs[a.variants[0]])
        for v in a.variants:
            med = statistics.median(secs[v])
            print(f"{size} px, batch {batch}, {v:20s}: {batch / med:6.2f} img/s ({med:.3f} s/step), "
                  f"x{base / med:.2f} vs {a.variants[0]}")


if __name__ == "__main__":
    main()
