"""How much does the training loop add to the bare compute of a step?

Bare: forward + backward + Adam step of the transform net and VGG (content targets included) on
one fixed batch already in memory. Loop: ``fastnst.learn.train.train`` on real photos, with the
DataLoader, progress bar, metrics, previews and checkpoints; per-step times come from
metrics.jsonl (log_every=1, so each line times one step, including whatever preview or
checkpoint the step before it wrote). Both run in this one process, alternating, and the
report gives medians and means (the first step of each run is dropped as warm-up).

    python tools/train_overhead.py --data ../shared/data/content \
        --style ../shared/data/styles/scream.jpg --image-size 256 --steps 8 --workers 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fastnst.config import TrainConfig
from fastnst.learn.data import to_tensor
from fastnst.play.images import load_image
from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.nets import TransformNet
from fastnst.learn.train import train


def bare_step_times(cfg: TrainConfig, steps: int) -> list[float]:
    torch.manual_seed(0)
    net = TransformNet(cfg.net)
    style = to_tensor(load_image(cfg.style_paths[0], cfg.style_size))[None]
    ploss = PerceptualLoss.from_config(cfg.loss, [style])
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    batch = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size)  # (B, 3, S, S)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        losses = ploss(net(batch), ploss.content_targets(batch))
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times[1:]


def loop_step_times(cfg: TrainConfig) -> list[float]:
    train(cfg, export=False)
    rows = [json.loads(line) for line in (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [cfg.batch_size / r["images_per_s"] for r in rows][1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--style", required=True)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = TrainConfig(style_paths=(a.style,), data=a.data, image_size=a.image_size, steps=a.steps, log_every=1,
                           checkpoint_every=3, preview_every=3)
        bare += bare_step_times(base, a.steps)
        for w in a.workers:
            cfg = TrainConfig(**{**base.__dict__, "workers": w, "run_dir": f"{tmp}/w{w}"})
            loop = loop_step_times(cfg)
            bare += bare_step_times(base, a.steps)
            med = statistics.median(bare)
            print(f"workers={w}: loop step median {statistics.median(loop):.3f} s, mean {statistics.mean(loop):.3f} s; "
                  f"bare median {med:.3f} s -> ratio median {statistics.median(loop) / med:.3f}, "
                  f"mean {statistics.mean(loop) / med:.3f}")


if __name__ == "__main__":
    main()
