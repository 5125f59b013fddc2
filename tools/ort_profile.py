"""Where the time goes: onnxruntime's kernel times of a TransformNet shape, summed by op type.

Random weights (speed does not depend on them), exported with ``export_onnx``, one 640x480
uint8 frame, 2 intra-op threads, ORT_ENABLE_ALL. Prints ms/frame (profiling on) and the
per-frame kernel time of the top op types.

    python tools/ort_profile.py                         # the fast preset
    python tools/ort_profile.py '{"padding": "zeros"}'  # with NetConfig changes
    python tools/ort_profile.py models/twelve_styles.onnx  # an exported model
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

from fastnst.config import NET_PRESETS
from fastnst.learn.export import export_onnx
from fastnst.learn.nets import TransformNet
from fastnst.play import contract


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    model = argv[0] if argv and argv[0].endswith(".onnx") else None
    changes = json.loads(argv[0]) if argv and not model else {}
    with tempfile.TemporaryDirectory() as tmp:
        if not model:
            torch.manual_seed(0)
            net = TransformNet(dataclasses.replace(NET_PRESETS["fast"], **changes)).eval()
            model = str(export_onnx(net, f"{tmp}/m.onnx"))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = 2
        opts.enable_profiling = True
        opts.profile_file_prefix = f"{tmp}/prof"
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        inputs = sess.get_inputs()  # a multi-style model plays its first style
        feeds = contract.feeds(np.random.default_rng(0).integers(0, 256, (1, 480, 640, 3), dtype=np.uint8),
                               np.eye(inputs[1].shape[0], dtype=np.float32)[0] if len(inputs) == 2 else None)
        warm, n = 10, 40
        for _ in range(warm):
            sess.run(None, feeds)
        t0 = time.perf_counter()
        for _ in range(n):
            sess.run(None, feeds)
        ms = (time.perf_counter() - t0) / n * 1e3
        per_op: collections.Counter = collections.Counter()
        for event in json.load(open(sess.end_profiling())):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                per_op[event["args"]["op_name"]] += event["dur"]
    print(f"{argv[0] if argv else 'fast preset'}: {ms:.1f} ms/frame (profiling on)")
    for op, us in per_op.most_common(12):
        print(f"  {op:<24} {us / (warm + n) / 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
