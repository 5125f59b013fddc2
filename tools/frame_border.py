"""How much a model paints a band of its own along the edges of a picture.

Cut a picture out of the middle of a frame (``--inset`` px in from every side) and stylize it;
stylize the whole frame too and cut the same picture out of that output. The second one never
saw an edge there, so where the two differ near the picture's edges, the model marks the edge.
Printed: the mean absolute difference (0-255) over the outer 6 px of the picture, over the
6-16 px band inside it, and over the interior (which differs too, a little: instance norm sees
the whole input).

    python tools/frame_border.py --frame frame.png --model before.onnx --model twelve_styles
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fastnst.play.model import StyleModel


def bands(d: np.ndarray, outer: int = 6, inner: int = 16) -> tuple[float, float, float]:
    """(H, W) differences -> mean over the outer band, the band inside it, and the rest."""
    ring = np.zeros(d.shape, dtype=np.int8)  # 2: outer band, 1: the band inside it, 0: interior
    ring[:inner, :] = ring[-inner:, :] = ring[:, :inner] = ring[:, -inner:] = 1
    ring[:outer, :] = ring[-outer:, :] = ring[:, :outer] = ring[:, -outer:] = 2
    return d[ring == 2].mean(), d[ring == 1].mean(), d[ring == 0].mean()



def report(label: str, values) -> None:
    print(f"{label:40s} " + " ".join(f"{v:{w}.2f}" for v, w in zip(values, (10, 8, 8))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frame", required=True, help="an image, e.g. a 640x480 video frame")
    p.add_argument("--model", action="append", required=True, help="ONNX file or shipped name (repeat)")
    p.add_argument("--inset", type=int, default=32, help="px cut off every side of the frame (default 32)")
    a = p.parse_args()
    frame, c = cv2.imread(a.frame), a.inset
    picture = np.ascontiguousarray(frame[c:-c, c:-c])
    print(f"{'model/style':40s} {'outer 6 px':>10s} {'6-16 px':>8s} {'interior':>8s}")
    for name in a.model:
        model = StyleModel(name, provider="cpu")
        rows = []
        for i, style in enumerate(model.style_names):
            model.set_style(np.eye(len(model.style_names), dtype=np.float32)[i])
            seen = model.run(frame)[c:-c, c:-c].astype(np.float32)
            d = np.abs(model.run(picture) - seen).mean(axis=2)  # (H - 2c, W - 2c)
            rows.append(bands(d))
            report(f"{Path(name).stem}/{style}" if len(model.style_names) > 1 else Path(name).stem, rows[-1])
        if len(rows) > 1:
            report(f"{Path(name).stem} (mean)", np.mean(rows, axis=0))


if __name__ == "__main__":
    main()
