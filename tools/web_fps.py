"""The page's fps (``fastnst serve`` in headless Chromium, onnxruntime-web on WebAssembly) against the
native player (``fastnst bench``), in one run, rounds interleaved: the page at 640x480 and 320x240
with 2 threads, at 640x480 with 1 thread, and ``fastnst bench --threads 2`` at both sizes.

    flock /tmp/fastnst-bench.lock python tools/web_fps.py

The fake camera plays a clip made from ../shared/data/videos/vtest.avi (synthetic frames where it is
absent). The page stylizes each camera frame once (60 fps, more than it reaches); its fps is frames over --seconds after a warm-up,
with its own split of each frame's milliseconds (model, pixel conversion and drawing). Reported:
the median over --rounds. Options: --model, --rounds, --seconds, --extra "label=query" (more page
variants, e.g. "4 threads=threads=4&width=640"; the page takes threads=, width=, proxy=0 and
session={JSON} for more onnxruntime session options), --clip VIDEO. Each measurement gets a
fresh browser.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from web_browser import chromium_args, write_y4m  # noqa: E402

from fastnst.play.serve import make_server, server_url, site_table  # noqa: E402
from fastnst.play.video import read_frames  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "videos" / "vtest.avi"


def clip_frames(n: int = 60, clip: Path = CLIP) -> list[np.ndarray]:
    """``n`` frames of ``clip`` at 640x480 (a moving gradient where it is absent)."""
    if clip.is_file():
        return read_frames(clip, n, (640, 480))
    xs, ys = np.meshgrid(np.linspace(0, 255, 640), np.linspace(0, 255, 480))
    return [np.roll(np.dstack([xs, ys, 255 - xs]).astype(np.uint8), 8 * i, axis=1) for i in range(n)]


def page_fps(playwright, y4m: Path, url: str, seconds: float) -> dict:
    # A fresh browser each time: no page inherits an earlier one's workers or memory.
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(y4m))
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("window.fastnst && window.fastnst.frames >= 3", timeout=120_000)
        time.sleep(1.0)
        f0, t0 = page.evaluate("window.fastnst.frames"), time.perf_counter()
        samples = []
        while time.perf_counter() - t0 < seconds:
            time.sleep(0.25)
            samples.append(page.evaluate("({...window.fastnst.stats})"))
        fps = (page.evaluate("window.fastnst.frames") - f0) / (time.perf_counter() - t0)
        med = {k: statistics.median(s[k] for s in samples) for k in ("grab", "model", "post")}
        return {"fps": fps, **med, "status": page.text_content("#status")}
    finally:
        browser.close()


def native_fps(model: str, threads: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "fastnst", "bench", "-m", model, "--size", "640x480,320x240",
                          "--threads", str(threads), "--repeats", "3", "--seconds", "1"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    fps = {}
    for size in ("640x480", "320x240"):
        line = next(line for line in out.splitlines() if size in line)
        fps[size] = float(line.split()[2])  # the player path's fps column
    return fps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="twelve_styles")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=QUERY")
    ap.add_argument("--clip", type=Path, default=CLIP, help="the fake camera's video (default: %(default)s)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    variants = {"page 640x480, 2 threads": "threads=2&width=640", "page 320x240, 2 threads": "threads=2&width=320",
                "page 640x480, 1 thread": "threads=1&width=640"}
    variants.update(dict(e.split("=", 1) for e in args.extra))
    results: dict[str, list[dict]] = {k: [] for k in variants}
    native: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        y4m = write_y4m(Path(tmp) / "cam.y4m", clip_frames(60, args.clip), fps=60)  # the camera is not the limit
        server = make_server(site_table([args.model]), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with sync_playwright() as p:
            for r in range(args.rounds):
                for name, query in variants.items():
                    results[name].append(page_fps(p, y4m, f"{server_url(server)}?{query}", args.seconds))
                    print(f"round {r + 1} {name}: {results[name][-1]['fps']:.1f} fps", flush=True)
                native.append(native_fps(args.model, 2))
                print(f"round {r + 1} native: {native[-1]}", flush=True)
        server.shutdown()
    print(f"\n{args.model}, medians of {args.rounds} rounds; load: {Path('/proc/loadavg').read_text().split()[:3]}")
    for size in ("640x480", "320x240"):
        print(f"native (fastnst bench --threads 2) {size}: {statistics.median(n[size] for n in native):.1f} fps")
    for name, rs in results.items():
        med = {k: statistics.median(x[k] for x in rs) for k in ("fps", "grab", "model", "post")}
        size = "320x240" if "320" in variants[name] else "640x480"
        ratio = med["fps"] / statistics.median(n[size] for n in native)
        print(f"{name}: {med['fps']:.1f} fps ({ratio:.2f}x native) - per frame: model {med['model']:.1f} ms, "
              f"pixels in {med['grab']:.1f} ms, out + draw {med['post']:.1f} ms")


if __name__ == "__main__":
    main()
