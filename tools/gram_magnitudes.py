"""The mean squared Gram entry of a painting at each default style layer (docs/training.md,
"The loss's layers and weights"): what the per-layer style weights even out.

    python tools/gram_magnitudes.py PAINTING.jpg [--size 512]
"""

from __future__ import annotations

import argparse

import torch

from fastnst.config import LossConfig
from fastnst.learn.data import to_tensor
from fastnst.learn.losses import gram_matrix
from fastnst.learn.vgg import VGGEncoder
from fastnst.play.images import load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("painting")
    ap.add_argument("--size", type=int, default=512, help="the long side in px (TrainConfig.style_size)")
    args = ap.parse_args()
    loss = LossConfig()
    x = to_tensor(load_image(args.painting, args.size, "painting"))[None]
    with torch.no_grad():
        feats = VGGEncoder.from_config(loss)(x, list(loss.style_layers))
    for layer, f in feats.items():
        print(f"{layer} {gram_matrix(f).pow(2).mean().item():.2g}")


if __name__ == "__main__":
    main()
