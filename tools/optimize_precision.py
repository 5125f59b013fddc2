"""``fastnst optimize`` in fp32 against bf16: seconds per L-BFGS iteration and the final loss,
one photo at 512 px, in one process.

    python tools/optimize_precision.py --iterations 100 --bf16-iterations 100
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from fastnst.config import OptimizeConfig
from fastnst.learn.optimize import optimize
from fastnst.learn.vgg import VGGEncoder
from fastnst.play.images import load_image


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", type=Path, default=Path("../shared/data/content/n03877845_palace.jpg"))
    p.add_argument("--style", type=Path, default=Path("../shared/data/styles/scream.jpg"))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iterations", type=int, default=100, help="fp32 iterations")
    p.add_argument("--bf16-iterations", type=int, default=100, help="bf16 iterations (where bf16 is emulated, a few)")
    a = p.parse_args(argv)
    content, style = load_image(a.content), load_image(a.style)
    base = OptimizeConfig(scales=(a.size,), device="cpu")
    encoder = VGGEncoder.from_config(base.loss)
    for precision, n in (("fp32", a.iterations), ("bf16", a.bf16_iterations)):
        cfg = replace(base, iterations=(n,), precision=precision)
        r = optimize(content, [style], cfg, progress=False, encoder=encoder)
        per_it = statistics.median(b[2] - a_[2] for a_, b in zip(r.history[1:], r.history[2:])) \
            if len(r.history) > 2 else r.seconds / max(1, r.iterations)
        print(f"{precision}: {r.iterations} iterations, {per_it:.3f} s/iteration, final total loss "
              f"{r.final_losses['total']:.5g}", flush=True)


if __name__ == "__main__":
    main()
