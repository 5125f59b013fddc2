"""``fastnst eval --video``: how much a model flickers on a video, with and without the player's
smoothing (no torch). The measure is ``temporal.video_warping_error``: lower is steadier."""

from __future__ import annotations

import numpy as np

from fastnst.play.model import StyleModel
from fastnst.play.pipeline import FramePipeline
from fastnst.play.temporal import video_warping_error

INPUT, STYLIZED, SMOOTHED = "input frames", "stylized", "stylized, --smooth"


def video_flicker(model: StyleModel, frames: list[np.ndarray], smooth: bool = False) -> dict[str, float]:
    """Warping error (0-255) of the ``frames`` themselves (``INPUT``), of the model's outputs
    (``STYLIZED``) and, with ``smooth``, of its outputs through ``FramePipeline``'s smoothing (``SMOOTHED``)."""
    errors = {}
    for on in (False, True) if smooth else (False,):
        pipe = FramePipeline()  # a fresh smoothing history
        err, errors[INPUT] = video_warping_error(frames, lambda f: pipe.stylize(model, f, smooth=on).copy())
        errors[SMOOTHED if on else STYLIZED] = err
    return errors


def format_flicker(errors: dict[str, float]) -> str:
    """The ``video_flicker`` figures as lines, each stylized one also as a ratio to the input's and the unsmoothed."""
    inp, plain = errors[INPUT], errors[STYLIZED]
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"  # noqa: E731  (a still video has no input error)
    lines = ["warping error (0-255, lower is steadier)", f"  {INPUT:<18}{inp:8.3f}"]
    for label in (STYLIZED, SMOOTHED):
        if label in errors:
            err = errors[label]
            lines.append(f"  {label:<18}{err:8.3f}  ({ratio(err, inp)} input, {ratio(err, plain)} unsmoothed)")
    return "\n".join(lines)


def model_flicker(model: str, video: str, frames: int = 100, size: str | None = None, smooth: bool = False,
                  threads: int | None = None) -> list[str]:
    """`fastnst eval --video`: ``video_flicker`` of every style of ``model`` on the first ``frames`` frames
    of ``video`` resized to ``size`` ("WxH", default 640x480), as lines of text."""
    from fastnst.play.bench import parse_sizes
    from fastnst.play.video import read_frames

    wh = parse_sizes(size or "640x480")[0]
    played = StyleModel(model, threads=threads)
    clip = read_frames(video, frames, wh)
    lines = [f"{video}: {len(clip)} frames at {wh[0]}x{wh[1]}, model {played.name}"]
    for i in range(len(played.style_names)):  # every style of a multi-style model
        played.set_style(np.eye(len(played.style_names), dtype=np.float32)[i])
        lines.append(f"{played.label()}: {format_flicker(video_flicker(played, clip, smooth))}")
    return lines
