"""Which int8 quantization to ship: onnxruntime static quantization variants of one model,
timed side by side (interleaved rounds, one 640x480 frame, 2 intra-op threads), with their
mean distance from the float model on 8 held-out photos.

    python tools/int8_variants.py models/shipwreck.onnx --photos ../shared/data/content

fastnst.learn.quantize ships "QDQ, Conv only, moving-average ranges".
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from fastnst.learn.quantize import FrameReader, model_feeds, photo_frames, quiet_quantizer

VARIANTS = {
    "QDQ, Conv only, moving-average ranges": dict(quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                                                  extra_options={"CalibMovingAverage": True}),
    "QDQ, Conv only": dict(quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"]),
    "QDQ, all ops": dict(quant_format=QuantFormat.QDQ),
    "QOperator, all ops": dict(quant_format=QuantFormat.QOperator),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a float ONNX model, e.g. models/shipwreck.onnx")
    p.add_argument("--photos", default="../shared/data/content",
                   help="folder of .jpg photos: the first 32 calibrate, the last 8 are held out (default: %(default)s)")
    a = p.parse_args(argv)
    src = a.model
    photos = sorted(Path(a.photos).glob("*.jpg"))
    calibration, held = photo_frames(photos[:32], 32), photo_frames(photos[-8:], 8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sessions = {"float": ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kw) in enumerate(VARIANTS.items()):
            with quiet_quantizer():
                quantize_static(src, f"{tmp}/{i}.onnx", FrameReader(model_feeds(src, calibration)), per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, **kw)
            sessions[name] = ort.InferenceSession(f"{tmp}/{i}.onnx", opts, providers=["CPUExecutionProvider"])
    ref = [sessions["float"].run(None, {"frames": f})[0].astype(np.int16) for f in held]
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(7):
        for name, s in sessions.items():
            for _ in range(3):
                s.run(None, {"frames": held[0]})
            t0 = time.perf_counter()
            for _ in range(15):
                s.run(None, {"frames": held[0]})
            times[name].append((time.perf_counter() - t0) / 15 * 1e3)
    base = statistics.median(times["float"])
    print("| variant | ms/frame | x float | mean abs diff (levels of 255) |\n|---|---|---|---|")
    for name, s in sessions.items():
        ms = statistics.median(times[name])
        diff = np.mean([np.abs(s.run(None, {"frames": f})[0] - r).mean() for f, r in zip(held, ref)])
        print(f"| {name} | {ms:.1f} | {base / ms:.2f} | {diff:.2f} |")


if __name__ == "__main__":
    main()
