"""Text drawn on frames (no torch): outlined labels, panels of aligned rows, and a view scaled to
the window it shows in, so that the text is drawn at screen resolution. The player's window and
``stylize``'s style sheets use them.
"""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.6  # about 13 px tall: the text's size in a window up to 540 px tall
MIN_FONT_SCALE = 0.4  # the smallest a panel shrinks to, to fit a small window


def _thickness(scale: float) -> int:
    return max(1, round(scale / FONT_SCALE))


def draw_label(img: np.ndarray, text: str, org: tuple[int, int], scale: float = FONT_SCALE) -> None:
    """White text with a black outline at ``org`` (its baseline's left end), in place. The
    outline is the same text shifted, not drawn thicker: OpenCV spaces thicker text wider.
    Large text is drawn with thicker strokes, and its outline shifted as far."""
    x, y = org
    t = _thickness(scale)
    for dx, dy in ((-t, -t), (t, -t), (-t, t), (t, t)):
        cv2.putText(img, text, (x + dx, y + dy), FONT, scale, (0, 0, 0), t, cv2.LINE_AA)
    cv2.putText(img, text, org, FONT, scale, (255, 255, 255), t, cv2.LINE_AA)


def window_picture(view: np.ndarray, window_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """``view`` at the size the window shows it (its aspect kept), as a new image to draw the
    text on at screen resolution, and the font scale for that window: the text is as legible in
    a small window as in a large one, where it grows."""
    (ww, wh), (vh, vw) = window_size, view.shape[:2]
    if ww <= 0 or wh <= 0:  # a backend that does not tell: the view's own size
        ww, wh = vw, vh
    fit = min(ww / vw, wh / vh)
    size = (max(1, round(vw * fit)), max(1, round(vh * fit)))
    shown = view.copy() if size == (vw, vh) else cv2.resize(
        view, size, interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
    return shown, FONT_SCALE * min(2.0, max(1.0, size[1] / 540))


def draw_panel(img: np.ndarray, rows: list[tuple[str, str]], top: int, scale: float) -> None:
    """(key, text) ``rows`` in two aligned fields on a darkened box from ``top`` down, in as many
    columns as the height needs, the text made smaller (down to ``MIN_FONT_SCALE``) where they
    would not fit across."""
    for _ in range(3):
        step, pad = round(22 * scale / FONT_SCALE), round(6 * scale / FONT_SCALE)
        per_column = max(1, (img.shape[0] - top - pad) // step)
        columns = []
        for first in range(0, len(rows), per_column):
            column = rows[first:first + per_column]
            widths = [[cv2.getTextSize(t, FONT, scale, _thickness(scale))[0][0] for t in row] for row in column]
            key_width = max(w[0] for w in widths) + 2 * pad
            columns.append((column, key_width, key_width + max(w[1] for w in widths) + 2 * pad))
        needed = pad + sum(width + pad for *_, width in columns)
        if needed <= img.shape[1] or scale <= MIN_FONT_SCALE:
            break
        scale = max(MIN_FONT_SCALE, scale * img.shape[1] / needed)
    x = pad
    for column, key_width, width in columns:
        box = img[top:top + len(column) * step + pad, x:x + width]
        box >>= 2  # in place: a dark box keeps the text legible on any picture
        for i, (key, text) in enumerate(column):
            y = top + (i + 1) * step - pad // 2
            draw_label(img, key, (x + pad, y), scale)
            draw_label(img, text, (x + key_width, y), scale)
        x += width + pad
