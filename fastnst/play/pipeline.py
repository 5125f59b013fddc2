"""The per-frame path around a style model (no torch): ``FramePipeline`` resizes a frame to the
processing size, mirrors it, runs the model, smooths it along the optical flow (optional), blends
in the original (strength) and keeps its colours (optional), into buffers it allocates once per
frame size; and the processing sizes.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from fastnst import UserError
from fastnst.play.color import luminance_transfer
from fastnst.play.model import StyleModel
from fastnst.play.smoothing import TemporalSmoother

MIN_SIDE = 16  # the smallest processing side that the nets' strided stages still paint


def check_settings(strength: float = 1.0, side: int | None = None, what: str = "size") -> None:
    """The settings every player command takes, checked where they enter: ``strength`` in 0..1 and a
    processing ``side`` (named ``what``) of at least MIN_SIDE pixels."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"strength must be between 0 and 1, got {strength}")
    if side is not None and side < MIN_SIDE:
        raise UserError(f"{what} must be at least {MIN_SIDE} pixels, got {side}")


def processing_size(width: int, height: int, target_width: int | None) -> tuple[int, int]:
    """(w, h) to stylize a ``width`` x ``height`` frame at ``target_width`` (None or 0: as is).

    A resized frame gets even sides: video encoders (mp4v, H.264) drop an odd row/column.
    """
    if not target_width or target_width == width:
        return width, height
    h = max(2, round(height * target_width / width / 2) * 2)
    return max(2, target_width // 2 * 2), h


def long_side_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """(w, h) with the long side ``long_side`` (None or 0: as is), keeping the aspect ratio."""
    if not long_side or long_side == max(width, height):
        return width, height
    s = long_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


class FramePipeline:
    """The per-frame path around a model: pre-process -> ``model.run`` -> post-process.

    Buffers are allocated once per frame size and reused, so a returned frame is only valid
    until the next call. Input frames are never modified.
    """

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}
        self._smoother: TemporalSmoother | None = None  # made on first use: one per video stream
        self._smoothed_by: StyleModel | None = None  # whose output the smoothing history holds (None: no history)
        self.inference_ms = 0.0  # the last ``stylize`` call's ``model.run``, for the player's stage timings

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, np.uint8)
        return buf

    def preprocess(self, frame: np.ndarray, size: tuple[int, int], mirror: bool = False) -> np.ndarray:
        """(H, W, 3) uint8 BGR frame -> (h, w, 3) at ``size`` = (w, h), mirrored if asked."""
        w, h = size
        small = frame
        if frame.shape[:2] != (h, w):
            # Area averaging only where it matters: it costs several times bilinear, which aliases
            # only below half size.
            interp = cv2.INTER_AREA if 2 * w < frame.shape[1] else cv2.INTER_LINEAR
            small = cv2.resize(frame, (w, h), dst=self._buffer("small", (h, w, 3)), interpolation=interp)
        if mirror:
            small = cv2.flip(small, 1, dst=self._buffer("mirror", small.shape))
        return small

    def smooth(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """Flow-guided temporal smoothing (``fastnst.play.smoothing.TemporalSmoother``) of ``stylized``
        (h, w, 3), the model's output for ``frame`` (h, w, 3), against the previous frames.

        It runs on the raw model output, before the strength blend and colour transfer: those
        mix in the current sharp frame, which must not be dragged along the history. The result
        is ours to overwrite (the smoother's own state is copied out).
        """
        if self._smoother is None:
            self._smoother = TemporalSmoother()
        out = self._smoother(frame, stylized)
        if out is stylized:  # the first frame after a reset: the smoother kept its own copy
            return out
        buf = self._buffer("smooth", out.shape)
        np.copyto(buf, out)
        return buf

    def reset_smoothing(self) -> None:
        """Forget the previous frames (a seek, a mirrored view: what ``stylize`` cannot see by itself)."""
        self._smoothed_by = None
        if self._smoother is not None:
            self._smoother.reset()

    def postprocess(self, stylized: np.ndarray, original: np.ndarray, strength: float = 1.0,
                    preserve_color: bool = False) -> np.ndarray:
        """Blend ``stylized`` (ours to overwrite) with ``original`` (h, w, 3): strength, then colour."""
        out = stylized
        if strength < 1.0:
            out = cv2.addWeighted(stylized, strength, original, 1.0 - strength, 0.0, dst=stylized)
        if preserve_color:
            out = luminance_transfer(out, original, order="bgr", out=self._buffer("color", out.shape))
        return out

    def stylize(self, model: StyleModel, frame: np.ndarray, size: tuple[int, int] | None = None,
                strength: float = 1.0, preserve_color: bool = False, smooth: bool = False) -> np.ndarray:
        """One (H, W, 3) uint8 BGR frame stylized at processing ``size`` = (w, h) (default: its own),
        returned at its own size (H, W, 3): ``stylize`` and the player both run this.

        ``smooth``: blend with the previous frames passed to this pipeline (see ``smooth``; one
        pipeline per video). The history is forgotten when the model changes and after a frame
        that was not smoothed. The strength blend and colour transfer happen at the output size,
        against ``frame`` itself (the sharp original). ``strength <= 0`` returns ``frame`` itself,
        without inference.
        """
        if strength <= 0.0:
            self._smoothed_by = None
            return frame
        h, w = frame.shape[:2]
        small = self.preprocess(frame, size or (w, h))  # (h', w', 3)
        t0 = time.perf_counter()
        styled = model.run(small)  # (h', w', 3)
        self.inference_ms = (time.perf_counter() - t0) * 1000
        if smooth:
            if self._smoothed_by is not model:  # another model, or a gap in the smoothed stream
                self.reset_smoothing()
            styled = self.smooth(small, styled)  # at the processing size: cheaper
        self._smoothed_by = model if smooth else None
        if styled.shape[:2] != (h, w):
            styled = cv2.resize(styled, (w, h), dst=self._buffer("full", (h, w, 3)), interpolation=cv2.INTER_LINEAR)
        return self.postprocess(styled, frame, strength, preserve_color)
