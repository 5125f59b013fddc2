"""The training loss of one run, or two runs of the same recipe side by side, from their metrics.jsonl.

Prints the mean logged ``total`` (or ``--key content``/``style``) over each window of steps (a row ending at step s belongs to the
window that holds s) and, for two runs, the ratio of the second to the first, the number of
logged rows that are identical in both (content, style per painting, total) and the last of them.

    python tools/compare_runs.py runs/twelve_styles --windows 0,2500,5000,...,25000
    python tools/compare_runs.py runs/twelve_styles runs/twelve_styles_repro --windows 7500,8000,9000,9870
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

KEYS = ("content", "style", "tv", "total", "style_by_name")


def rows(run: str) -> dict[int, dict]:
    lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="one or two run folders")
    p.add_argument("--windows", required=True, help="window edges in steps, e.g. 7500,8000,9000")
    p.add_argument("--key", choices=("total", "content", "style"), default="total", help="the logged loss to average")
    args = p.parse_args(argv)
    runs = [rows(r) for r in args.runs[:2]]
    steps = sorted(set.intersection(*(set(r) for r in runs)))
    if len(runs) == 2:
        same = [s for s in steps if all(runs[0][s].get(k) == runs[1][s].get(k) for k in KEYS)]
        print(f"{len(steps)} rows in both; {len(same)} identical, the last at step {max(same, default=0)}")
    edges = [int(e) for e in args.windows.split(",")]
    for lo, hi in zip(edges, edges[1:]):
        window = [s for s in steps if lo < s <= hi]
        means = [statistics.mean(r[s][args.key] for s in window) for r in runs]
        ratio = f"  {means[1] / means[0] - 1:+.2%}" if len(means) == 2 else ""
        print(f"steps {lo}-{hi}: " + "  ".join(f"{m:.4g}" for m in means) + ratio)


if __name__ == "__main__":
    main()
