"""Adding a painting to twelve_styles: wall time and held-out loss of each recipe, interleaved.

Each run is a real `fastnst train --add-style PAINTING --base twelve_styles ...` subprocess, timed
from its start to the exported, checked model on disk (set-up and export included), in fp32 on
--threads threads. Its new style is then cut out (`fastnst export --styles`) and scored with
`fastnst eval --holdout 50` on the content folder (not timed). Rounds interleave the recipes, so
a busy machine slows them alike; the table gives each one's median over the rounds.

    flock /tmp/fastnst-bench.lock python tools/add_style_bench.py --data ../shared/data/content \\
        ../shared/data/styles_unseen/water_lilies.jpg ../shared/data/styles_unseen/cherry_blossoms.jpg

--curve N,N,... adds the default recipe at those step counts (loss against wall time); --sources
adds it trained on the built-in photos (no --data) and on the frames of a video.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The add-style recipe before the fast one: the mean of the base styles, 270 constant-lr steps of 4 x 128 px.
BEFORE = ["--add-from", "mean", "--steps", "270", "--lr", "1e-2", "--lr-schedule", "constant",
          "--batch-size", "4", "--image-size", "128"]


def fastnst(*args: str, threads: int, log: Path) -> float:
    """Run ``python -m fastnst ARGS``; its wall time in seconds (its output goes to ``log``)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ fastnst {' '.join(args)}\n")
        f.flush()
        subprocess.run([sys.executable, "-m", "fastnst", *args], check=True, stdout=f, stderr=subprocess.STDOUT, env=env)
    return time.perf_counter() - t0


def held_out_loss(run: Path, name: str, painting: str, data: str, threads: int, log: Path) -> float:
    """The new style's total loss on the last 50 photos of ``data`` (`fastnst eval --holdout 50`)."""
    one = run / f"{name}-only.onnx"
    fastnst("export", str(run), "--styles", name, "-o", str(one), threads=threads, log=log)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-m", "fastnst", "eval", "--model", str(one), "--content", data,
                          "--holdout", "50", "--style", painting, "--threads", str(threads)],
                         check=True, capture_output=True, text=True, env=env).stdout
    row = next(line for line in out.splitlines() if line.startswith(f"| {name}"))
    return float(row.split("|")[6])  # | method | images | content | style | tv | total | ...


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paintings", nargs="+")
    p.add_argument("--data", required=True, help="the photo folder (the last 50 are held out and scored)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--curve", help="also the default recipe at these step counts, e.g. 10,20,80,160")
    p.add_argument("--sources", metavar="VIDEO", help="also the default recipe on the built-in photos and on VIDEO")
    p.add_argument("--no-before", action="store_true", help="skip the recipe before the fast one")
    p.add_argument("--work", help="folder for the runs (default: a temporary one)")
    args = p.parse_args()

    recipes: dict[str, list[str]] = {"default": ["--data", args.data, "--holdout", "50"]}
    for n in (args.curve.split(",") if args.curve else []):
        recipes[f"default, {n} steps"] = ["--data", args.data, "--holdout", "50", "--steps", n]
    if args.sources:
        recipes["default, built-in photos"] = []
        recipes[f"default, {Path(args.sources).name} frames"] = ["--data", args.sources]
    if not args.no_before:
        recipes["before (270 steps)"] = [*BEFORE, "--data", args.data, "--holdout", "50"]
    work = Path(args.work or tempfile.mkdtemp(prefix="fastnst-addstyle-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    print(f"load before: {os.getloadavg()[0]:.2f}; runs and their output in {work}", flush=True)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for painting in args.paintings:
            name = Path(painting).stem
            for label, flags in recipes.items():
                run = work / f"{name}-{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}-{r}"
                seconds = fastnst("train", "--add-style", painting, "--base", "twelve_styles", "--precision", "fp32",
                                  "--preview-every", "0", "--run-dir", str(run), *flags, threads=args.threads, log=log)
                loss = held_out_loss(run, name, painting, args.data, args.threads, log)
                results.setdefault((name, label), []).append((seconds, loss))
                print(f"round {r + 1} {name} {label}: {seconds:.1f} s, held-out loss {loss:.5g} "
                      f"(load {os.getloadavg()[0]:.2f})", flush=True)
    print("\n| painting | recipe | wall s (median) | held-out loss | vs before |\n|---|---|---|---|---|")
    for (name, label), runs in results.items():
        seconds, loss = statistics.median(s for s, _ in runs), statistics.median(l for _, l in runs)
        ref = results.get((name, "before (270 steps)"))
        rel = f"{loss / statistics.median(l for _, l in ref):.3f}" if ref else "-"
        print(f"| {name} | {label} | {seconds:.1f} | {loss:.5g} | {rel} |")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
