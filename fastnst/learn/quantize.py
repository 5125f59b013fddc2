"""int8 static quantization of an exported model (onnxruntime's quantizer), calibrated on photos.

Only the convolutions are quantized: per-channel int8 weights and uint8 activations, in the QDQ
format that onnxruntime fuses into integer convolution kernels. Instance norm, resize, the
residual adds and the uint8 I/O stay in float. Activation ranges are averaged over the
calibration frames (one frame's extremes would stretch a range and cost precision). It runs
faster on a CPU for about the same held-out perceptual loss, but its noise defeats the stability
training (more flicker on video), so it is an option, not the default (docs/results/lessons.md,
"int8")."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from fastnst import UserError
from fastnst.play.contract import STYLE_INPUT_NAME, feeds
from fastnst.play.files import atomic_path

log = logging.getLogger(__name__)

CALIBRATION_SIZE = (640, 480)  # (W, H): the webcam size
MAX_MEAN_DIFF = 4.0  # levels of 255: the int8 model's mean distance from the float one, on photos


def model_feeds(model_path: str | os.PathLike, frames: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One onnxruntime feed per (1, H, W, 3) uint8 BGR frame; a model with a ``style`` input
    gets each style in turn (one-hot), so every style's activations are calibrated and checked."""
    import onnx

    inputs = {i.name: i for i in onnx.load(str(model_path), load_external_data=False).graph.input}
    if STYLE_INPUT_NAME not in inputs:
        return [feeds(f) for f in frames]
    n = inputs[STYLE_INPUT_NAME].type.tensor_type.shape.dim[0].dim_value
    eye = np.eye(n, dtype=np.float32)
    return [feeds(f, eye[i % n]) for i, f in enumerate(frames)]


class FrameReader(CalibrationDataReader):
    """Feeds onnxruntime's calibrator, one feed (``model_feeds``) at a time."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


@contextlib.contextmanager
def quiet_quantizer():
    """onnxruntime's quantizer logs every tensor it cannot type through the root logger."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def photo_frames(items: Iterable, n: int, size: tuple[int, int] = CALIBRATION_SIZE) -> list[np.ndarray]:
    """The first ``n`` readable images of ``items`` (paths or {"bytes", "path"}) as (1, H, W, 3)
    uint8 BGR frames of ``size`` (W, H), the layout the model takes."""
    import cv2

    from fastnst.learn.data import decode_image

    frames = []
    for item in items:
        img = decode_image(item, 8)
        if img is not None:
            rgb = cv2.resize(np.asarray(img), size, interpolation=cv2.INTER_AREA)
            frames.append(np.ascontiguousarray(rgb[None, :, :, ::-1]))
        if len(frames) == n:
            break
    return frames


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, calibration: list[np.ndarray],
                  check: list[np.ndarray], max_diff: float = MAX_MEAN_DIFF) -> float:
    """Quantize the uint8-contract model ``src`` to ``dst`` (atomically; metadata kept, plus
    ``fastnst.int8``), calibrated on ``calibration`` frames. Returns the mean absolute difference
    from ``src`` in levels of 255 on the ``check`` frames; above ``max_diff`` it raises
    UserError and writes nothing."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if not calibration or not check:
        raise UserError("int8 quantization needs calibration photos: none could be read")

    dst = Path(dst)
    with atomic_path(dst) as tmp:
        with quiet_quantizer():
            quantize_static(str(src), str(tmp), FrameReader(model_feeds(src, calibration)), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv"], extra_options={"CalibMovingAverage": True})
        model = onnx.load(str(tmp))
        model.metadata_props.add(key="fastnst.int8", value=f"{len(calibration)} calibration frames")
        onnx.save(model, str(tmp))
        fp32, int8 = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (src, tmp))
        diff = float(np.mean([np.abs(fp32.run(None, feed)[0].astype(np.int16) - int8.run(None, feed)[0]).mean()
                              for feed in model_feeds(src, check)]))
        if diff > max_diff:
            raise UserError(f"int8 quantization moved the output by {diff:.1f} levels of 255 on average "
                            f"(limit {max_diff}); export the float model instead (int8 off)")
    log.info("int8 model %s: mean difference from the float model %.2f levels of 255 on %d photos",
             dst, diff, len(check))
    return diff
