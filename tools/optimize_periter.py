"""Seconds per L-BFGS iteration at 512 px: fastnst optimize vs pastiche, interleaved in one run.

Same photo, style, layers, weights and optimizer settings as optimize_vs_pastiche.py; 8
iterations each, two rounds, medians of per-iteration times (the first iterations skipped).

    python tools/optimize_periter.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from fastnst.config import OptimizeConfig
from fastnst.learn.optimize import optimize
from fastnst.learn.vgg import VGGEncoder
from fastnst.play.images import load_image


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"),
                   help="folder with content/n03877845_palace.jpg and styles/scream.jpg (default: %(default)s)")
    a = p.parse_args(argv)
    content, style = str(a.data / "content" / "n03877845_palace.jpg"), str(a.data / "styles" / "scream.jpg")
    cfg = OptimizeConfig(scales=(512,), iterations=(8,), device="cpu")
    enc = VGGEncoder.from_config(cfg.loss)
    c, s = load_image(content), load_image(style)
    out = Path(tempfile.gettempdir()) / "pastiche_p8.png"
    for rep in range(2):
        text = subprocess.run([sys.executable, "-m", "pastiche", "--size", "512", "--style-size", "512", "--num-steps",
                               "8", "--info-step", "1", "--seed", "0", "-c", str(Path(content).resolve()),
                               "-s", str(Path(style).resolve()), "-o", str(out)],
                              capture_output=True, text=True, cwd="/").stdout
        elapsed = [float(line.split()[1]) for line in text.splitlines()
                   if len(line.split()) == 3 and line.split()[0].isdigit()]
        p_it = statistics.median([b - a for a, b in zip(elapsed[2:], elapsed[3:])])
        h = optimize(c, [s], cfg, progress=False, encoder=enc).history
        f_it = statistics.median([b[2] - a[2] for a, b in zip(h[1:], h[2:])])
        print(f"rep {rep}: pastiche {p_it:.3f} s/it, fastnst {f_it:.3f} s/it, ratio {f_it / p_it:.2f}", flush=True)


if __name__ == "__main__":
    main()
