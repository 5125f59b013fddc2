"""The ONNX style-model contract: the one thing the trainer hands the players (this package's
player and the browser page). Torch-free, so every side imports it from here.

- input ``frames``: uint8, (N, H, W, 3), BGR (OpenCV's frame layout), any H and W;
- input ``style`` (multi-style models): float32, (S,), one weight per style, for every frame
  (one-hot picks a style, a convex mix blends them); a model from before multi-style has none;
- output ``stylized``: uint8, (N, H, W, 3), BGR, the same size;
- metadata: the ``META_*`` keys below; ``fastnst.io`` is ``IO_CONTRACT``.
"""

from __future__ import annotations

import numpy as np

IO_CONTRACT = "uint8-bgr-nhwc"
INPUT_NAME, STYLE_INPUT_NAME, OUTPUT_NAME = "frames", "style", "stylized"
# The bare net without the frame conversions: float RGB NCHW in [0, 1], for exact parity tests.
FLOAT_IO_CONTRACT, FLOAT_INPUT_NAME = "float-rgb-nchw", "image"

META_NAME = "fastnst.style"  # the model's name
META_STYLES = "fastnst.styles"  # a JSON list, one style name per style weight
META_VERSION = "fastnst.version"
META_CONFIG = "fastnst.config"  # the TrainConfig as JSON
META_VGG = "fastnst.vgg"  # the VGG weight source the losses used
META_IO = "fastnst.io"


def feeds(frames: np.ndarray, style_weights: np.ndarray | None = None,
          input_name: str = INPUT_NAME) -> dict[str, np.ndarray]:
    """The onnxruntime inputs for (N, H, W, 3) uint8 BGR ``frames`` and, for a multi-style model,
    its (S,) float32 ``style_weights``."""
    if style_weights is None:
        return {input_name: frames}
    return {input_name: frames, STYLE_INPUT_NAME: style_weights}
