"""``fastnst stylize``: image and video files through one or more ONNX style models (no torch).

Each input gives one output per model, named ``<input stem>_<model stem><suffix>`` in the
output folder; videos become ``.mp4`` (mp4v) with the input's fps and size. With one input
and one model the output may instead be a file name (``-o out.jpg``). Outputs are written
atomically: a failed or interrupted run leaves no partial file.
"""

from __future__ import annotations

import collections
import logging
import os
from pathlib import Path

import cv2
from tqdm import tqdm

from fastnst import UserError
from fastnst.play.images import IMAGE_SUFFIXES, list_images, load_image, save_image
from fastnst.play.runtime import FramePipeline, StyleModel, long_side_size
from fastnst.play.video import VideoSink, is_video_path, open_capture, source_fps

log = logging.getLogger(__name__)


def expand_inputs(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files and folders (their images, recursively) -> image and video files."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += list_images(item)
        elif not item.is_file():
            raise UserError(f"input not found: {item}")
        elif item.suffix.lower() in IMAGE_SUFFIXES or is_video_path(item):
            paths.append(item)
        else:
            raise UserError(f"unsupported input {item}: not an image ({', '.join(IMAGE_SUFFIXES)}) or a video")
    return paths


def is_file_target(out: Path) -> bool:
    """``-o`` names an output file (by its image or video suffix), not a folder."""
    return out.suffix.lower() in IMAGE_SUFFIXES or is_video_path(out)


def output_path(src: Path, model: StyleModel, out_dir: Path) -> Path:
    if is_file_target(out_dir):
        return out_dir
    suffix = ".mp4" if is_video_path(src) else src.suffix
    return out_dir / f"{src.stem}_{model.path.stem}{suffix}"


def stylize_image(models: list[StyleModel], src: Path, out_dir: Path, size: int | None = None,
                  strength: float = 1.0, preserve_color: bool = False) -> list[Path]:
    """One image through each model; ``size`` is the processing long side (output keeps the input's size)."""
    bgr = cv2.cvtColor(load_image(src), cv2.COLOR_RGB2BGR)  # (H, W, 3)
    proc = long_side_size(bgr.shape[1], bgr.shape[0], size)
    pipeline = FramePipeline()
    outs = []
    for model in models:
        styled = pipeline.stylize(model, bgr, proc, strength, preserve_color)  # (H, W, 3) BGR
        outs.append(save_image(cv2.cvtColor(styled, cv2.COLOR_BGR2RGB), output_path(src, model, out_dir)))
    return outs


def stylize_video(models: list[StyleModel], src: Path, out_dir: Path, size: int | None = None,
                  strength: float = 1.0, preserve_color: bool = False, progress: bool = True,
                  smooth: bool = False) -> list[Path]:
    """One video through each model in a single decoding pass: same fps, size and frame count.

    ``smooth``: flow-guided temporal smoothing of each model's output (``FramePipeline.smooth``).
    """
    cap = open_capture(str(src))
    sinks: list[VideoSink] = []
    try:
        fps, total = source_fps(cap), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        sinks = [VideoSink(output_path(src, m, out_dir), fps) for m in models]
        pipelines = [FramePipeline() for _ in models]  # one each: the smoothing history is per model
        with tqdm(total=total or None, unit="frame", desc=src.name, disable=not progress, leave=False) as bar:
            while True:
                ok, frame = cap.read()  # (H, W, 3) BGR
                if not ok:
                    break
                proc = long_side_size(frame.shape[1], frame.shape[0], size)
                for model, sink, pipeline in zip(models, sinks, pipelines):
                    sink.write(pipeline.stylize(model, frame, proc, strength, preserve_color, smooth))
                bar.update()
        if not sinks or sinks[0].frames == 0:
            raise UserError(f"cannot read any frame from video {src}")
        return [sink.close() for sink in sinks]
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    finally:
        cap.release()


def stylize_files(models: list[StyleModel], inputs: list[str | os.PathLike], out_dir: str | os.PathLike,
                  size: int | None = None, strength: float = 1.0, preserve_color: bool = False,
                  progress: bool = True, smooth: bool = False) -> list[Path]:
    """Every input through every model; returns the written files. ``smooth`` applies to videos only."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"--strength must be between 0 and 1, got {strength}")
    if size is not None and size < 16:
        raise UserError(f"--size must be at least 16 pixels, got {size}")
    paths = expand_inputs(inputs)
    out_dir = Path(out_dir)
    if is_file_target(out_dir):
        if len(paths) * len(models) != 1:
            raise UserError(f"-o {out_dir} names one file, but there are {len(paths) * len(models)} outputs; "
                            "give a folder instead")
        if is_video_path(paths[0]) != is_video_path(out_dir):
            kind = ("video", "a video (.mp4)") if is_video_path(paths[0]) else ("photo", "an image")
            raise UserError(f"-o {out_dir}: a {kind[0]} needs {kind[1]} output name")
    try:
        (out_dir.parent if is_file_target(out_dir) else out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out_dir}: {e.strerror}") from None
    targets = collections.Counter(output_path(p, m, out_dir).resolve() for p in paths for m in models)
    sources = {p.resolve() for p in paths}
    for target, n in targets.items():
        if n > 1 or target in sources:
            raise UserError(f"two files would be written to {target}; stylize those inputs into separate folders")
    written: list[Path] = []
    for src in tqdm(paths, unit="file", disable=not progress or len(paths) < 2):
        if is_video_path(src):
            written += stylize_video(models, src, out_dir, size, strength, preserve_color, progress, smooth)
        else:
            written += stylize_image(models, src, out_dir, size, strength, preserve_color)
        log.debug("stylized %s", src)
    return written
