"""``fastnst stylize``: image and video files through one or more ONNX style models (no torch).

Each input gives one output per model, named ``<input stem>_<model stem>[_<style>]<suffix>`` in
the output folder (the style, or blend, that a multi-style model played); videos become ``.mp4``
(mp4v) with the input's fps and size. With one input and one model the output may instead be a
file name (``-o out.jpg``). A file of such a default name that exists already is not replaced
(unless ``overwrite``); a named one is. Outputs are written atomically: a failed run leaves no
partial file. Ctrl-C (or SIGTERM) finishes the video being
written with the frames so far (``StylizeInterrupted`` lists what was written).
"""

from __future__ import annotations

import collections
import logging
import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fastnst import UserError
from fastnst.play.images import (IMAGE_SUFFIXES, OUTPUT_IMAGE_SUFFIXES, check_image_side, image_side, list_images,
                                 load_image, save_image)
from fastnst.play.files import check_output_path
from fastnst.play.model import StyleModel, models_with_style, parse_style_spec, select_style
from fastnst.play.overlay import draw_label
from fastnst.play.pipeline import FramePipeline, check_settings, long_side_size
from fastnst.play.video import OUTPUT_VIDEO_SUFFIXES, VideoSink, is_video_path, open_capture, source_fps

log = logging.getLogger(__name__)

# Without a size, the processing long side is the input's, within these: strokes have a fixed size
# in pixels, so a small photo is processed larger (and scaled back), else they cover its subject.
DEFAULT_MIN_SIZE, DEFAULT_MAX_SIZE = 512, 1920
SHEET_MAX_CELL = 512  # a style sheet's cells: without a size, the photo's long side, at most this
SHEET_COLUMNS = 5
BLEND_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)  # a blend strip's mixes, from the first style to the second


class StylizeInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: ``written`` holds the finished outputs, the last video cut short."""

    def __init__(self, written: list[Path], message: str = "interrupted"):
        super().__init__(message)
        self.written = written


def expand_inputs(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files and folders (their images, recursively) -> image and video files."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            if not (found := list_images(item)):
                raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {item}")
            paths += found
        elif not item.is_file():
            raise UserError(f"input not found: {item}")
        elif item.suffix.lower() in IMAGE_SUFFIXES or is_video_path(item):
            paths.append(item)
        else:
            raise UserError(f"unsupported input {item}: not an image ({', '.join(IMAGE_SUFFIXES)}) or a video")
    return paths


def is_file_target(out: Path) -> bool:
    """``-o`` names an output file (by its image or video suffix), not an (existing) folder."""
    return out.suffix.lower() in OUTPUT_IMAGE_SUFFIXES + OUTPUT_VIDEO_SUFFIXES and not out.is_dir()


def output_path(src: Path, model: StyleModel, out_dir: Path) -> Path:
    if is_file_target(out_dir):
        return out_dir
    suffix = ".mp4" if is_video_path(src) else src.suffix
    return out_dir / f"{src.stem}_{model.path.stem}{style_tag(model)}{suffix}"


def style_tag(model: StyleModel) -> str:
    """What a multi-style model plays, for a file name: "_wave", or a blend's "_a70+b30" ("" for one style)."""
    w = model.style_weights
    if w is None or len(model.style_names) == 1:
        return ""
    on = np.flatnonzero(w)
    tag = model.style_names[on[0]] if len(on) == 1 else "+".join(f"{model.style_names[i]}{round(100 * w[i])}" for i in on)
    return "_" + re.sub(r"[^\w.+-]", "_", tag)  # no path separators or spaces in a file name


def stylize_image(models: list[StyleModel], src: Path, out_dir: Path, size: int | None = None,
                  strength: float = 1.0, preserve_color: bool = False) -> list[Path]:
    """One image through each model; ``size`` is the processing long side (output keeps the input's size)."""
    bgr = cv2.cvtColor(load_image(src), cv2.COLOR_RGB2BGR)  # (H, W, 3)
    proc = long_side_size(bgr.shape[1], bgr.shape[0], _processing_side(bgr.shape, size))
    pipeline = FramePipeline()
    outs = []
    for model in models:
        styled = pipeline.stylize(model, bgr, proc, strength, preserve_color)  # (H, W, 3) BGR
        out = _make_parent(output_path(src, model, out_dir))
        outs.append(save_image(cv2.cvtColor(styled, cv2.COLOR_BGR2RGB), out))
    return outs


def _processing_side(shape: tuple[int, ...], size: int | None) -> int:
    """The processing long side: ``size``, else the input's within DEFAULT_MIN_SIZE..DEFAULT_MAX_SIZE."""
    return size or min(max(max(shape[:2]), DEFAULT_MIN_SIZE), DEFAULT_MAX_SIZE)


def _make_parent(path: Path) -> Path:
    """Create the output folder on the first write, so a run that fails earlier leaves none."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {path.parent}: {e.strerror}") from None
    return path


def stylize_video(models: list[StyleModel], src: Path, out_dir: Path, size: int | None = None,
                  strength: float = 1.0, preserve_color: bool = False, smooth: bool = False) -> list[Path]:
    """One video through each model in a single decoding pass: same fps, size and frame count.

    ``smooth``: flow-guided temporal smoothing of each model's output (``FramePipeline.smooth``).
    """
    cap = open_capture(str(src))
    sinks: list[VideoSink] = []
    try:
        fps, total = source_fps(cap), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        sinks = [VideoSink(_make_parent(output_path(src, m, out_dir)), fps, inputs=(src,)) for m in models]
        pipelines = [FramePipeline() for _ in models]  # one each: the smoothing history is per model
        try:
            # disable=None: a progress bar on a terminal only
            with tqdm(total=total or None, unit="frame", desc=src.name, disable=None, leave=False) as bar:
                while True:
                    ok, frame = cap.read()  # (H, W, 3) BGR
                    if not ok:
                        break
                    proc = long_side_size(frame.shape[1], frame.shape[0], _processing_side(frame.shape, size))
                    for model, sink, pipeline in zip(models, sinks, pipelines):
                        sink.write(pipeline.stylize(model, frame, proc, strength, preserve_color, smooth))
                    bar.update()
        except KeyboardInterrupt:  # like webcam: finish what was written so far
            written = [p for p in (sink.close() for sink in sinks if sink.frames) if p]
            raise StylizeInterrupted(written, f"interrupted: {', '.join(map(str, written)) or 'no video'} "
                                              f"written with the first {sinks[0].frames} frames of {src}") from None
        if not sinks or sinks[0].frames == 0:
            raise UserError(f"cannot read any frame from video {src}")
        if sinks[0].frames < total:
            log.warning("%s: read %d of the %d frames its header announces (truncated?)", src, sinks[0].frames, total)
        return [sink.close() for sink in sinks]
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    finally:
        cap.release()


def stylize_files(models: list[StyleModel], inputs: list[str | os.PathLike], out_dir: str | os.PathLike,
                  size: int | None = None, strength: float = 1.0, preserve_color: bool = False,
                  smooth: bool = False, overwrite: bool = False) -> list[Path]:
    """Every input through every model; returns the written files. ``smooth`` applies to videos only.
    Files of default names (``out_dir`` a folder) that exist are refused unless ``overwrite``."""
    check_settings(strength, size)
    paths = expand_inputs(inputs)
    out_dir = Path(out_dir)
    if out_dir.suffix and not out_dir.is_dir() and not is_file_target(out_dir):
        raise UserError(f"unknown output format {out_dir.suffix} for output {out_dir} (images: "
                        f"{', '.join(OUTPUT_IMAGE_SUFFIXES)}; videos: {', '.join(OUTPUT_VIDEO_SUFFIXES)}); "
                        "a folder with a dot in its name must exist already")
    if is_file_target(out_dir):
        if len(paths) * len(models) != 1:
            raise UserError(f"output {out_dir} names one file, but there are {len(paths) * len(models)} outputs; "
                            "give a folder instead")
        if is_video_path(paths[0]) != is_video_path(out_dir):
            kind = ("video", "a video (.mp4)") if is_video_path(paths[0]) else ("photo", "an image")
            raise UserError(f"output {out_dir}: a {kind[0]} needs {kind[1]} output name")
    _check_creatable(out_dir.parent if is_file_target(out_dir) else out_dir)
    targets = collections.Counter(output_path(p, m, out_dir).resolve() for p in paths for m in models)
    sources = {p.resolve() for p in paths}
    for target, n in targets.items():
        if n > 1 or target in sources:
            raise UserError(f"two files would be written to {target}; stylize those inputs into separate folders")
        if target.exists() and not overwrite and not is_file_target(out_dir):  # a name the user did not give
            raise UserError(f"{target} exists; stylize into another folder, or overwrite it")
    for src in paths:  # an output keeps its input's size: one its format cannot store fails now, not after the work
        if not is_video_path(src) and (side := image_side(src)):
            for m in models:
                check_image_side(output_path(src, m, out_dir), side)
    written: list[Path] = []
    try:
        for src in tqdm(paths, unit="file", disable=None if len(paths) > 1 else True):
            if is_video_path(src):
                written += stylize_video(models, src, out_dir, size, strength, preserve_color, smooth)
            else:
                written += stylize_image(models, src, out_dir, size, strength, preserve_color)
            log.debug("stylized %s", src)
    except StylizeInterrupted as e:
        raise StylizeInterrupted(written + e.written, str(e)) from None
    except KeyboardInterrupt:
        raise StylizeInterrupted(written) from None
    return written


def style_sheet(models: list[StyleModel], photo: str | os.PathLike, out: str | os.PathLike,
                size: int | None = None, blend: str | None = None) -> Path:
    """``photo`` in every style of ``models`` (one-hot weights), or with ``blend`` = "a,b" in
    BLEND_STEPS mixes from style a to style b of the model that has both: labelled cells of the
    photo at long side ``size`` (default: its own, at most SHEET_MAX_CELL), SHEET_COLUMNS a row.
    Written atomically to the image ``out``."""
    out = check_output_path(out, OUTPUT_IMAGE_SUFFIXES, (photo,), "image")
    check_settings(side=size)
    if blend is None:
        cells = [(m, np.eye(len(m.style_names), dtype=np.float32)[i]) for m in models for i in range(len(m.style_names))]
    else:
        if len(names := [n.strip() for n in blend.split(",")]) != 2:
            raise UserError(f"blend {blend!r}: name two styles, A,B")
        model = models[select_style(models, blend, "blend")[0]]
        a, b = (parse_style_spec(n, model.style_names, "blend") for n in names)
        cells = [(model, (1 - t) * a + t * b) for t in BLEND_STEPS]
    bgr = cv2.cvtColor(load_image(photo), cv2.COLOR_RGB2BGR)  # (H, W, 3)
    w, h = long_side_size(bgr.shape[1], bgr.shape[0], size or min(max(bgr.shape[:2]), SHEET_MAX_CELL))
    bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    cols = min(len(cells), SHEET_COLUMNS)
    check_image_side(out, max(w * cols, h * math.ceil(len(cells) / cols)))
    sheet = np.zeros((h * math.ceil(len(cells) / cols), w * cols, 3), np.uint8)  # (rows * h, cols * w, 3)
    pipeline = FramePipeline()
    for k, (model, weights) in enumerate(cells):
        model.set_style(weights)
        cell = sheet[k // cols * h:(k // cols + 1) * h, k % cols * w:(k % cols + 1) * w]
        cell[:] = pipeline.stylize(model, bgr)
        draw_label(cell, model.label(), (4, h - 6), scale=0.4)
    return save_image(cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB), out)


def _check_creatable(folder: Path) -> None:
    """The output folder exists, or its nearest existing parent is a writable folder (it is made on the first write)."""
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path("."))
    if not existing.is_dir():
        raise UserError(f"cannot create output folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise UserError(f"output folder is not writable: {existing}")


def stylize(model_names: list[str], inputs: list[str | os.PathLike], output: str | os.PathLike | None = None, *,
            style: str | None = None, sheet: str | None = None, blend: str | None = None, size: int | None = None,
            strength: float = 1.0, preserve_color: bool = False, smooth: bool = False, overwrite: bool = False,
            provider: str | None = None, threads: int | None = None) -> list[Path]:
    """`fastnst stylize`: the inputs through each model (with ``style``: each model that has it, in
    it) to ``output`` (a folder, default "."; or a file for one input and model), or with ``sheet``
    that photo in every style (or ``blend`` "a,b") as one image file ``output``. Returns the files
    written; Ctrl-C raises ``StylizeInterrupted`` with those finished."""
    if sheet and (inputs or style or not output):
        raise UserError("a sheet renders one photo in every style of the models (or a blend of two) to one "
                        "image file; it takes no other inputs and no style")
    if blend and not sheet:
        raise UserError("a blend row goes with a sheet")
    if not inputs and not sheet:
        raise UserError("nothing to stylize: give images, videos or folders (or a sheet's photo)")
    models = [StyleModel(m, provider, threads) for m in model_names]
    if sheet:
        return [style_sheet(models, sheet, output, size, blend)]
    if style:  # each model that has the style plays it
        found = models_with_style(models, style)
        for i, weights in found:
            models[i].set_style(weights)
        models = [models[i] for i, _ in found]
    return stylize_files(models, inputs, output or ".", size, strength, preserve_color, smooth=smooth,
                         overwrite=overwrite)
