"""Where the time of one add-style step goes: each part of a step, timed alone (median of 5).

    python tools/add_style_profile.py ../shared/data/styles_unseen/water_lilies.jpg [--batch 4] [--size 128]
"""

from __future__ import annotations

import argparse
import time

import torch

from fastnst.learn.checkpoint import load_trained
from fastnst.learn.data import to_tensor
from fastnst.learn.losses import PerceptualLoss, stability_loss
from fastnst.learn.recipe import resolve_train
from fastnst.learn.train import _base_net, trainable_parameters
from fastnst.play.images import load_image


def median_ms(fn, n: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[n // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("painting")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args()
    cfg = resolve_train(flags={"add": [a.painting], "base": "twelve_styles", "precision": "fp32"})
    net = _base_net(cfg, load_trained(cfg.base))
    ploss = PerceptualLoss.from_config(cfg.loss, [to_tensor(load_image(cfg.style_paths[-1], cfg.style_size))[None]])
    new = cfg.net.n_styles - 1
    opt = torch.optim.Adam(trainable_parameters(net, [new]), lr=1e-2)
    x = torch.rand(a.batch, 3, a.size, a.size)
    style = torch.nn.functional.one_hot(torch.full((a.batch,), new), cfg.net.n_styles).float()
    targets = ploss.content_targets(x)

    def step(stability: bool) -> None:
        out = net(x, style)
        total = ploss(out, targets, None, style[:, new:])["total"]
        if stability:
            total = total + cfg.loss.stability_weight * stability_loss(lambda y: net(y, style), x, out)
        opt.zero_grad()
        total.backward()

    def net_pass() -> None:
        opt.zero_grad()
        net(x, style).mean().backward()

    def vgg_pass() -> None:
        ploss(x.clone().requires_grad_(True), targets, None, style[:, new:])["total"].backward()

    print(f"{a.batch} x {a.size} px, fp32, {torch.get_num_threads()} threads")
    for name, fn in [("transform net forward+backward", net_pass),
                     ("content targets (VGG to relu2_2)", lambda: ploss.content_targets(x)),
                     ("VGG loss forward+backward (to relu4_1)", vgg_pass),
                     ("whole step, with the stability term", lambda: step(True)),
                     ("whole step, without it", lambda: step(False))]:
        print(f"{name:42s} {median_ms(fn):8.1f} ms")


if __name__ == "__main__":
    main()
