"""How much of a model's texture is tied to its sampling grid rather than to the picture.

Stylize a frame, and the same frame moved left by s pixels; line the two outputs up and take the
mean absolute difference (0-255) over an area of the frame. A net that painted the texture onto
the picture would give ~0 for every s. The `fast` net runs its residual stage at H/8, so a shift
by a multiple of 8 moves its whole grid with the picture: a small figure at s = 8 and a large one
at s = 1, 2, 4 mean the texture (the lattice over flat areas) is anchored to that grid. The last
"texture" column is the texture's own amplitude: the output minus its Gaussian blur (sigma 4 px).
The "period 8" column measures the lattice itself, on the one output: the autocorrelation of that
texture at a lag of 8 px (across, down and along both diagonals) above the mean of its values at
7 and 9 px, the largest of the four. A texture with no period of 8 px scores ~0; the input frame
is scored too, as the baseline.

    python tools/grid_anchoring.py --frame frame.png --model twelve_styles --model shipwreck
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from fastnst.play.model import StyleModel

SHIFTS = (1, 2, 4, 8)
GRID = 8
DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (dy, dx): across, down, both diagonals


def shifted_left(frame: np.ndarray, s: int) -> np.ndarray:
    """(H, W, 3) -> the frame moved left by s pixels, its right edge replicated."""
    return np.concatenate([frame[:, s:], np.repeat(frame[:, -1:], s, axis=1)], axis=1)


def texture(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) image -> (H, W, 3) float32: the image minus its Gaussian blur (sigma 4 px)."""
    img = img.astype(np.float32)
    return img - cv2.GaussianBlur(img, (0, 0), 4)


def period_peak(tex: np.ndarray) -> float:
    """How strongly a (h, w, 3) texture repeats every ``GRID`` px: its normalised autocorrelation
    at ``GRID`` minus the mean at ``GRID`` - 1 and ``GRID`` + 1, the largest over ``DIRECTIONS``."""
    t = tex.mean(axis=2)
    t = t - t.mean()
    spec = np.fft.rfft2(t, s=(2 * t.shape[0], 2 * t.shape[1]))  # zero-padded: no wrap-around
    ac = np.fft.irfft2(np.abs(spec) ** 2, s=(2 * t.shape[0], 2 * t.shape[1]))
    ac = ac / ac[0, 0]
    at = lambda k, dy, dx: ac[k * dy, k * dx]  # negative indices wrap to negative lags
    return max(at(GRID, dy, dx) - (at(GRID - 1, dy, dx) + at(GRID + 1, dy, dx)) / 2 for dy, dx in DIRECTIONS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frame", required=True, help="an image, e.g. a 640x480 video frame")
    p.add_argument("--model", action="append", required=True, help="ONNX file or shipped name (repeat)")
    p.add_argument("--area", type=int, nargs=4, default=(300, 460, 40, 400), metavar=("Y0", "Y1", "X0", "X1"),
                   help="where to compare (default: the flat grass of vtest.avi frame 200 at 640x480)")
    a = p.parse_args()
    frame = cv2.imread(a.frame)
    y0, y1, x0, x1 = a.area
    print(f"{'model/style':40s} " + " ".join(f"s={s:<5d}" for s in SHIFTS) + "  texture  period 8")
    tex = texture(frame)[y0:y1, x0:x1]
    print(f"{'(the input frame)':40s} " + " " * 8 * len(SHIFTS) + f"  {np.abs(tex).mean():7.2f}  {period_peak(tex):8.3f}")
    for name in a.model:
        model = StyleModel(name, provider="cpu")
        for i, style in enumerate(model.style_names):
            model.set_style(np.eye(len(model.style_names), dtype=np.float32)[i])
            base = model.run(frame).astype(np.float32)  # (H, W, 3)
            diffs = []
            for s in SHIFTS:
                out = model.run(shifted_left(frame, s)).astype(np.float32)  # out[:, x] ~ base[:, x + s]
                diffs.append(np.abs(out[y0:y1, x0:x1] - base[y0:y1, x0 + s:x1 + s]).mean())
            tex = texture(base)[y0:y1, x0:x1]
            label = f"{model.name}/{style}" if len(model.style_names) > 1 else model.name
            print(f"{label:40s} " + " ".join(f"{d:7.2f}" for d in diffs)
                  + f"  {np.abs(tex).mean():7.2f}  {period_peak(tex):8.3f}")


if __name__ == "__main__":
    main()
