"""int8 export: the quantized model keeps the uint8 contract and metadata, plays in the player's
runtime, stays close to the float model, and is refused (nothing written) when it does not."""

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from fastnst import UserError
from fastnst.config import NET_PRESETS, NetConfig
from fastnst.learn.export import export_onnx
from fastnst.learn.nets import TransformNet
from fastnst.learn.quantize import quantize_int8
from fastnst.play.model import StyleModel

TINY_FAST = NetConfig(**{**NET_PRESETS["fast"].__dict__, "channels": (4, 8, 8), "res_blocks": 1})


def photos(n, seed=0):
    """Smooth colour gradients plus noise: (1, 48, 64, 3) uint8 BGR frames."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:64]
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(1, 4, 3)
        img = np.stack([x * a, y * b, (x + y) * c], -1) + rng.normal(0, 10, (48, 64, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8)[None])
    return out


@pytest.fixture
def float_model(tmp_path):
    torch.manual_seed(0)
    return export_onnx(TransformNet(TINY_FAST).eval(), tmp_path / "float.onnx", {"fastnst.style": "wave"})


def test_int8_model_keeps_the_contract_and_plays(float_model, tmp_path):
    out = tmp_path / "int8.onnx"
    # An untrained tiny net quantizes less cleanly than a trained one (1.2-3.8 levels): allow 8.
    diff = quantize_int8(float_model, out, photos(6), photos(2, seed=1), max_diff=8.0)
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["fastnst.style"] == "wave" and meta["fastnst.int8"] == "6 calibration frames" and "fastnst.io" in meta
    assert 0 < diff <= 8.0
    frame = photos(1, seed=2)[0][0]  # (48, 64, 3)
    got = StyleModel(out).run(frame)
    assert got.shape == (48, 64, 3) and got.dtype == np.uint8
    want = StyleModel(float_model).run(frame)
    assert 0 < np.abs(got.astype(int) - want).mean() <= 8.0  # close, but not the float model


def test_int8_is_refused_when_it_moves_the_output_too_far(float_model, tmp_path):
    out = tmp_path / "int8.onnx"
    with pytest.raises(UserError, match="levels of 255"):
        quantize_int8(float_model, out, photos(4), photos(2, seed=1), max_diff=0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.onnx"]  # nothing written, no temp file
    with pytest.raises(UserError, match="calibration photos"):
        quantize_int8(float_model, out, [], photos(2))
