"""int8 static quantization of a trained model: speed against fp32, side by side, and how far
the output moves.

Calibrates onnxruntime's static quantizer (QDQ, per-channel int8 weights, uint8 activations)
on training photos (not the last 50, which eval holds out), writes the int8 model with the fp32
model's metadata (so `fastnst eval --model OUT` scores it with the same loss), then times both
on one 640x480 frame, interleaved round by round, 2 intra-op threads, ORT_ENABLE_ALL.

    python tests/benchmarks/quant_speed.py models/scream.onnx /tmp/scream_int8.onnx
    fastnst eval --model /tmp/scream_int8.onnx --style ../shared/data/styles/scream.jpg \\
        --content ../shared/data/content --holdout 50
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

SRC, DST = Path(sys.argv[1]), Path(sys.argv[2])
PHOTOS = sorted(Path("../shared/data/content").glob("*.jpg"))[:-50][:32]
SIZE = (640, 480)


def frames(paths):
    for p in paths:
        yield cv2.resize(cv2.imread(str(p)), SIZE, interpolation=cv2.INTER_AREA)[None]  # (1, H, W, 3) BGR


class Photos(CalibrationDataReader):
    def __init__(self):
        self.it = iter(frames(PHOTOS))

    def get_next(self):
        frame = next(self.it, None)
        return None if frame is None else {"frames": frame}


quantize_static(str(SRC), str(DST), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
src, dst = onnx.load(str(SRC)), onnx.load(str(DST))
dst.ClearField("metadata_props")
dst.metadata_props.extend(src.metadata_props)
onnx.save(dst, str(DST))

opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
opts.intra_op_num_threads = 2
sessions = {name: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
            for name, p in (("fp32", SRC), ("int8", DST))}
test = list(frames(sorted(Path("../shared/data/content").glob("*.jpg"))[-50:][:8]))
outs = {name: [s.run(None, {"frames": f})[0] for f in test] for name, s in sessions.items()}
diff = np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(outs["fp32"], outs["int8"])])
print(f"mean |int8 - fp32| on 8 held-out photos: {diff:.2f} levels of 255")

times: dict[str, list[float]] = {name: [] for name in sessions}
for _ in range(7):
    for name, s in sessions.items():
        for _ in range(5):
            s.run(None, {"frames": test[0]})
        t0 = time.perf_counter()
        for _ in range(20):
            s.run(None, {"frames": test[0]})
        times[name].append((time.perf_counter() - t0) / 20 * 1e3)
med = {name: statistics.median(t) for name, t in times.items()}
for name, ms in med.items():
    print(f"{name}: {ms:.1f} ms/frame ({1e3 / ms:.1f} fps), {med['fp32'] / ms:.2f}x fp32")
