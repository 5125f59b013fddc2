"""Flow-guided temporal smoothing of stylized video, the player's ``f`` key and ``--smooth``
(no torch); ``fastnst.play.temporal`` measures what it removes.
"""

from __future__ import annotations

import cv2
import numpy as np

from fastnst.play.temporal import pixel_grid


class TemporalSmoother:
    """Flow-guided blending of each stylized frame with the previous (smoothed) one.

    The previous output is warped along the input's optical flow (DIS, computed at
    ``flow_scale`` of the frame size to stay cheap), so motion is followed instead of
    smeared. Where the warp does not explain the input (occlusion, a cut, fast motion:
    grey-level error above ``threshold``), the current frame is kept as is. Elsewhere the
    result is ``(1 - alpha) * current + alpha * warped_previous``: an exponential moving
    average along motion paths.
    """

    def __init__(self, alpha: float = 0.6, flow_scale: float = 0.5, threshold: float = 12.0):
        self.alpha, self.flow_scale, self.threshold = alpha, flow_scale, threshold
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (call on a model switch or a seek)."""
        self._prev_gray = self._prev_out = None

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """frame, stylized: (H, W, 3) uint8 of the same size -> smoothed (H, W, 3) uint8."""
        h, w = frame.shape[:2]
        sw, sh = max(8, round(w * self.flow_scale)), max(8, round(h * self.flow_scale))
        gray = cv2.cvtColor(cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        prev_gray, prev_out = self._prev_gray, self._prev_out
        if prev_gray is None or prev_gray.shape != gray.shape or prev_out.shape != stylized.shape:
            self._prev_gray, self._prev_out = gray, stylized.copy()
            return stylized
        flow = self._dis.calc(gray, prev_gray, None)  # (sh, sw, 2): t -> t-1, low-resolution pixels
        where = pixel_grid(sh, sw) + flow  # (sh, sw, 2) position in t-1
        err = cv2.absdiff(cv2.remap(prev_gray, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), gray)
        weight_prev = np.where(err < self.threshold, np.float32(self.alpha), np.float32(0.0))  # (sh, sw)
        # Upsample the flow (a displacement, rescaled to full-resolution pixels) and the blend weights.
        # Upsampling the positions instead would shift everything by half a pixel per frame, a drift.
        where_full = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)  # (H, W, 2)
        where_full *= np.array([w / sw, h / sh], np.float32)
        where_full += pixel_grid(h, w)
        weight_prev = cv2.resize(weight_prev, (w, h), interpolation=cv2.INTER_LINEAR)
        warped = cv2.remap(prev_out, where_full, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = cv2.blendLinear(stylized, warped, 1.0 - weight_prev, weight_prev)
        self._prev_gray, self._prev_out = gray, out
        return out
