"""The temporal stability of stylized video, measured: the flow-based warping error (no torch).
The player's smoothing, which lowers it, is ``fastnst.play.smoothing``.

For consecutive input frames t-1 and t: optical flow on the *input* frames (OpenCV DIS),
warp stylized frame t-1 onto t, mask occlusions with a forward-backward flow check
(Ruder et al. 2016), and take the mean absolute difference to stylized frame t over the
valid pixels, in 0-255 units. Lower means less flicker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=4)
def pixel_grid(h: int, w: int) -> np.ndarray:
    """(h, w, 2) float32 pixel coordinates (x, y), read-only: flow + grid = where each pixel came from."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


class FlowWarper:
    """Backward flow t -> t-1 on input frames, with an occlusion mask; reused across frames."""

    def __init__(self):
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def flow(self, prev_bgr: np.ndarray, cur_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (map (H, W, 2) float32 of where each pixel of t was in t-1, valid mask (H, W) bool)."""
        g0 = cv2.cvtColor(prev_bgr, cv2.COLOR_BGR2GRAY)
        g1 = cv2.cvtColor(cur_bgr, cv2.COLOR_BGR2GRAY)
        back = self._dis.calc(g1, g0, None)  # (H, W, 2): t -> t-1
        fwd = self._dis.calc(g0, g1, None)  # (H, W, 2): t-1 -> t
        h, w = g1.shape
        where = pixel_grid(h, w) + back  # (H, W, 2) position in t-1
        fwd_at = cv2.remap(fwd, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # Forward-backward consistency (Ruder et al. 2016, eq. 4).
        diff = np.sum((back + fwd_at) ** 2, axis=2)
        mag = np.sum(back**2, axis=2) + np.sum(fwd_at**2, axis=2)
        inside = (where[..., 0] >= 0) & (where[..., 0] <= w - 1) & (where[..., 1] >= 0) & (where[..., 1] <= h - 1)
        return where, (diff <= 0.01 * mag + 0.5) & inside

    @staticmethod
    def warp(img: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Sample ``img`` (frame t-1) at ``where``: frame t-1 moved onto frame t."""
        return cv2.remap(img, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warping_error(prev_out: np.ndarray, cur_out: np.ndarray, where: np.ndarray, valid: np.ndarray) -> float:
    """Mean |warp(prev_out) - cur_out| over valid pixels and channels, 0-255 units."""
    warped = FlowWarper.warp(prev_out, where).astype(np.float32)
    diff = np.abs(warped - cur_out.astype(np.float32)).mean(axis=2)  # (H, W)
    return float(diff[valid].mean()) if valid.any() else 0.0


def video_warping_error(
    frames: Iterable[np.ndarray], stylize: Callable[[np.ndarray], np.ndarray]
) -> tuple[float, float]:
    """Mean warping error over consecutive frame pairs: (stylized, input) in 0-255 units.

    ``frames`` yields BGR uint8 frames; ``stylize`` maps one to a stylized BGR frame of the
    same size. The input figure applies the same measure to the frames themselves.
    """
    warper = FlowWarper()
    styl_errs, in_errs = [], []
    prev_in = prev_out = None
    for frame in frames:
        out = stylize(frame)
        if prev_in is not None:
            where, valid = warper.flow(prev_in, frame)
            styl_errs.append(warping_error(prev_out, out, where, valid))
            in_errs.append(warping_error(prev_in, frame, where, valid))
        prev_in, prev_out = frame, out
    if not styl_errs:
        raise ValueError("need at least two frames to measure temporal stability")
    return float(np.mean(styl_errs)), float(np.mean(in_errs))
