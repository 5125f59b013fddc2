"""``fastnst bench``: how fast will a model run on this machine?

For each size it measures every model, round by round and interleaved (the order rotates
each round), so that machine noise hits all models and both paths alike:

- the **player path**: ``run_player`` headless (capture thread, pre-processing, inference,
  post-processing), the same code ``fastnst webcam`` runs, fed from frames in memory or from
  a video file (``source``);
- the **bare** ``session.run`` rate on the same frames, already at the processing size.

With ``smooth=True`` the player path is also measured with flow-guided temporal smoothing
on (``fastnst webcam --smooth``), in the same interleaved runs, as a second row.

Each figure is the median over ``repeats`` runs of at least ``min_seconds`` each, after a
warm-up. With a ``reference`` model (the CLI exports the original Johnson architecture with
random weights: the speed does not depend on them), every fps is also given as a ratio to it.
"""

from __future__ import annotations

import collections
import logging
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fastnst import UserError
from fastnst.play.player import STAGES, PlayerState, run_player
from fastnst.play.model import StyleModel
from fastnst.play.pipeline import check_settings, processing_size
from fastnst.play.video import open_capture, read_frames

log = logging.getLogger(__name__)

REFERENCE_LABEL = "johnson (reference)"
SMOOTH_SUFFIX = " +smooth"


@dataclass
class BenchResult:
    model: str
    size: tuple[int, int]  # (w, h) processed
    fps: float  # player path, median over runs
    ms_median: float  # player path, per frame (all stages)
    ms_p95: float
    bare_fps: float  # session.run alone, median over runs

    @property
    def player_vs_bare(self) -> float:
        return self.fps / self.bare_fps


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"320x240,640x480" -> [(320, 240), (640, 480)]."""
    sizes = []
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().strip().split("x"))
        except ValueError:
            raise UserError(f"bad size {part!r}: use WIDTHxHEIGHT, e.g. 640x480") from None
        check_settings(side=min(w, h), what=f"each side of size {part!r}")
        sizes.append((w, h))
    return sizes


class _FrameLoop:
    """A ``cv2.VideoCapture`` stand-in that serves the same frames over and over."""

    def __init__(self, frames: list[np.ndarray]):
        self._frames, self._i = frames, 0

    def read(self) -> tuple[bool, np.ndarray]:
        self._i += 1
        return True, self._frames[self._i % len(self._frames)]

    def release(self) -> None:
        pass


def _synthetic_frames(size: tuple[int, int], n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    w, h = size
    return [cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3) for _ in range(n)]


def _video_frames(source: str, width: int, n: int = 8) -> tuple[list[np.ndarray], tuple[int, int]]:
    """The first ``n`` frames of ``source`` as the player processes them (at ``width``), and that size."""
    frames = read_frames(source, n)
    size = processing_size(frames[0].shape[1], frames[0].shape[0], width)
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames], size


def _bare_fps(model: StyleModel, frames: list[np.ndarray], n: int) -> float:
    run, out = model.session.run, [model.output_name]
    feeds = [model.feeds(f[None]) for f in frames]  # (1, h, w, 3) views (and the style weights)
    t0 = time.perf_counter()
    for i in range(n):
        run(out, feeds[i % len(feeds)])
    return n / (time.perf_counter() - t0)


def _player_run(model: StyleModel, frames: list[np.ndarray], size: tuple[int, int], n: int,
                source: str | None, smooth: bool = False):
    cap = open_capture(source) if source else _FrameLoop(frames)
    try:
        return run_player([model], cap, keep_latest=False, width=size[0], display=False, max_frames=n,
                          state=PlayerState(smooth=smooth))
    finally:
        cap.release()


def bench_models(models: list[StyleModel], size: tuple[int, int], repeats: int = 5, min_seconds: float = 1.0,
                 source: str | None = None, smooth: bool = False) -> list[BenchResult]:
    """Player-path and bare fps of each model at ``size`` (w, h); with ``source``, frames from that video.

    One result per model, or with ``smooth`` two: without and with temporal smoothing. Every
    round runs each job (model x bare / player / player+smooth) once, in an order rotated from
    round to round, so that a machine getting busier or quieter hits all models alike.
    """
    if source:
        frames, size = _video_frames(source, size[0])
    else:
        frames = _synthetic_frames(size)
    variants = (False, True) if smooth else (False,)  # player path without / with smoothing
    n = {}  # frames per timed run, per model
    for model in models:
        _bare_fps(model, frames, 2)  # warm-up: onnxruntime allocates its arena on the first runs
        n[model] = max(2, math.ceil(min_seconds * _bare_fps(model, frames, 2)))
        if source:
            n[model] = min(n[model], 200)  # stay inside short videos
        for v in variants:
            _player_run(model, frames, size, 2, source, v)  # warm-up of the player path
    jobs = [(m, job) for m in models for job in ("bare", *variants)]
    fps: dict = collections.defaultdict(list)
    per_frame: dict = collections.defaultdict(list)
    for r in range(repeats):
        for model, job in jobs[r % len(jobs):] + jobs[:r % len(jobs)]:
            if job == "bare":
                fps[model, job].append(_bare_fps(model, frames, n[model]))
            else:
                summary = _player_run(model, frames, size, n[model], source, job)
                fps[model, job].append(summary.fps)
                per_frame[model, job] += [sum(ms) for ms in zip(*(summary.stages[s] for s in STAGES))]
    log.debug("%dx%d: %s", *size, {(m.name, j): v for (m, j), v in fps.items()})
    return [BenchResult(m.path.stem + (SMOOTH_SUFFIX if v else ""), size, float(np.median(fps[m, v])),
                        float(np.median(per_frame[m, v])), float(np.percentile(per_frame[m, v], 95)),
                        float(np.median(fps[m, "bare"]))) for m in models for v in variants]


def run_bench(models: list[str], sizes: list[tuple[int, int]], threads: int | None = None,
              provider: str | None = None, reference=None, repeats: int = 5,
              min_seconds: float = 1.0, source: str | None = None, smooth: bool = False) -> list[BenchResult]:
    """Every model (and the ``reference`` model, first) at every size; with ``smooth``, each
    also with smoothing on. ``reference`` may be a function that writes the model to the path
    it is given (the CLI's export of the Johnson net), for the run's length."""
    if callable(reference):
        with tempfile.TemporaryDirectory(prefix="fastnst-bench-") as tmp:
            made = reference(Path(tmp) / "johnson-reference.onnx")
            return run_bench(models, sizes, threads, provider, made, repeats, min_seconds, source, smooth)
    if not models and not reference:
        raise UserError("nothing to measure: give a model and/or the reference")
    if repeats < 1:
        raise UserError(f"repeats must be at least 1, got {repeats}")
    loaded = [StyleModel(p, provider, threads) for p in ([reference] if reference else []) + list(models)]
    results = []
    for size in sizes:
        log.info("measuring %s at %dx%d", ", ".join(m.path.stem for m in loaded), *size)
        rows = bench_models(loaded, size, repeats, min_seconds, source, smooth)
        if reference:
            for row in rows[:len(rows) // len(loaded)]:
                row.model = row.model.replace(loaded[0].path.stem, REFERENCE_LABEL, 1)
        results += rows
    return results


def format_table(results: list[BenchResult]) -> str:
    """A plain-text table; with a reference row per size, an "x ref" column too (a "+smooth" row
    against the reference's "+smooth" row), and with smoothing rows, their fps relative to without."""
    ref = {(r.size, r.model.endswith(SMOOTH_SUFFIX)): r.fps for r in results
           if r.model in (REFERENCE_LABEL, REFERENCE_LABEL + SMOOTH_SUFFIX)}
    head = f"{'model':<30}{'size':>10}{'fps':>8}{'ms/frame':>10}{'p95 ms':>9}{'run() fps':>11}{'vs run()':>10}"
    head += f"{'x ref':>8}" if ref else ""
    lines = [head, "-" * len(head)]
    for r in results:
        line = (f"{r.model[:29]:<30}{f'{r.size[0]}x{r.size[1]}':>10}{r.fps:>8.2f}{r.ms_median:>10.1f}"
                f"{r.ms_p95:>9.1f}{r.bare_fps:>11.2f}{r.player_vs_bare:>9.1%} ")
        if (key := (r.size, r.model.endswith(SMOOTH_SUFFIX))) in ref:
            line += f"{r.fps / ref[key]:>7.2f}x"
        lines.append(line)
    plain = {(r.model, r.size): r.fps for r in results}
    for r in results:
        if r.model.endswith(SMOOTH_SUFFIX) and (base := plain.get((r.model[:-len(SMOOTH_SUFFIX)], r.size))):
            lines.append(f"{r.model}: {r.fps / base:.1%} of the fps without smoothing at {r.size[0]}x{r.size[1]}")
    lines.append("fps and ms/frame: the whole player path (capture thread, pre-processing, inference, "
                 "post-processing); run() fps: bare session.run on the same frames; medians of the runs.")
    return "\n".join(lines)
