"""The dynamo ONNX exporter against fastnst's TorchScript one (docs/training.md, "ONNX export"):
export seconds, whether the outputs match bit for bit, and which FrameIO weights the file lacks.

    python tools/dynamo_export.py
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from fastnst.config import NET_PRESETS
from fastnst.learn.export import FrameIO, export_onnx, read_onnx
from fastnst.learn.nets import TransformNet
from fastnst.play.contract import INPUT_NAME, OUTPUT_NAME, STYLE_INPUT_NAME
from fastnst.play.model import resolve_model


def dynamo_export(net: TransformNet, path: Path) -> None:
    n, h, w = torch.export.Dim("N"), torch.export.Dim("H", min=16), torch.export.Dim("W", min=16)
    s = net.cfg.n_styles
    torch.onnx.export(FrameIO(net), (torch.zeros(1, 64, 64, 3, dtype=torch.uint8), torch.full((s,), 1.0 / s)),
                      str(path), dynamo=True, opset_version=18, input_names=[INPUT_NAME, STYLE_INPUT_NAME],
                      output_names=[OUTPUT_NAME], dynamic_shapes=({0: n, 1: h, 2: w}, None))


def main() -> None:
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    nets = {"twelve_styles": read_onnx(resolve_model("twelve_styles"))[0]}
    for name in ("fast", "johnson"):
        nets[f"tiny {name}"] = TransformNet(dataclasses.replace(NET_PRESETS[name], channels=(4, 8, 8), res_blocks=1)).eval()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, net in nets.items():
            a, b = Path(tmp) / "torchscript.onnx", Path(tmp) / "dynamo.onnx"
            t0 = time.perf_counter()
            export_onnx(net, a)
            t1 = time.perf_counter()
            dynamo_export(net, b)
            t2 = time.perf_counter()
            runs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (a, b)]
            style = np.eye(net.cfg.n_styles, dtype=np.float32)[0]
            same = all(np.array_equal(*(r.run(None, {INPUT_NAME: x, STYLE_INPUT_NAME: style})[0] for r in runs))
                       for x in (rng.integers(0, 256, (2, hh, ww, 3), dtype=np.uint8) for hh, ww in ((67, 91), (480, 640))))
            names = {t.name for t in onnx.load(str(b)).graph.initializer}
            lacks = sorted(k for k in FrameIO(net).state_dict() if k not in names and not k.startswith("net."))
            print(f"{name}: torchscript {t1 - t0:.1f} s, dynamo {t2 - t1:.1f} s, identical outputs {same}, "
                  f"dynamo file lacks {lacks or 'nothing'}")


if __name__ == "__main__":
    main()
