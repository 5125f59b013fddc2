"""TransformNet -> ONNX with the fastnst I/O contract and metadata.

ONNX I/O contract (every shipped model, ``fastnst.io = "uint8-bgr-nhwc"``):
- input  ``frames``:    uint8, (N, H, W, 3), BGR (OpenCV's native frame layout), any H, W;
- output ``stylized``:  uint8, (N, H, W, 3), BGR, same size.
The uint8/BGR/HWC conversions live in the graph, so the player hands OpenCV frames to
onnxruntime as they are.

metadata_props: fastnst.style, fastnst.version, fastnst.config (JSON), fastnst.vgg, fastnst.io.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

import fastnst
from fastnst.files import atomic_path

log = logging.getLogger(__name__)

IO_CONTRACT = "uint8-bgr-nhwc"
INPUT_NAME, OUTPUT_NAME = "frames", "stylized"


class FrameIO(nn.Module):
    """Wraps a TransformNet: (N, H, W, 3) uint8 BGR -> (N, H, W, 3) uint8 BGR."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).flip(1).float() / 255.0  # (N, 3, H, W) RGB [0, 1]
        y = self.net(x)  # (N, 3, H, W) RGB [0, 1]
        y = (y.flip(1) * 255.0).round().clamp(0, 255)
        return y.permute(0, 2, 3, 1).to(torch.uint8)  # (N, H, W, 3) BGR


def export_onnx(net: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None,
                sample_size: tuple[int, int] = (64, 64)) -> Path:
    """Export ``net`` (a TransformNet, in eval mode, on the CPU) to ``path`` atomically."""
    import onnx

    path = Path(path)
    net = net.cpu().eval()
    sample = torch.zeros(1, *sample_size, 3, dtype=torch.uint8)
    with atomic_path(path) as tmp:
        torch.onnx.export(
            FrameIO(net), (sample,), str(tmp), dynamo=False, opset_version=17,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N", 1: "H", 2: "W"}, OUTPUT_NAME: {0: "N", 1: "H", 2: "W"}},
        )
        model = onnx.load(str(tmp))
        meta = {"fastnst.version": fastnst.__version__, "fastnst.io": IO_CONTRACT, **(metadata or {})}
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=str(v))
        onnx.save(model, str(tmp))
    log.info("exported %s", path)
    return path
