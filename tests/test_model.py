"""model.py: model loading and checks, providers (the no-torch checks: test_torch_free.py; style specs: test_styles.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import synthetic_frames

from fastnst import UserError
from fastnst.play.model import StyleModel, choose_providers, resolve_model


def _onnx_model(path, elem_type: str, shape: list):
    """An Identity model with one input of ``elem_type`` and ``shape``, built without torch."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    t = getattr(TensorProto, elem_type)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", t, shape)],
                              [helper.make_tensor_value_info("y", t, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))  # opset 17's IR
    return path


def test_model_loads_with_name_and_keeps_size(tiny_onnx):
    model = StyleModel(tiny_onnx, provider="cpu", threads=1)
    assert model.name == "tiny"
    assert model.metadata["fastnst.io"] == "uint8-bgr-nhwc"
    for h, w in ((48, 64), (37, 51)):  # two sizes, one odd
        frame = synthetic_frames(1, (w, h))[0]
        out = model.run(frame)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="model not found"):
        resolve_model(tmp_path / "nope.onnx")
    with pytest.raises(UserError, match="model not found"):
        StyleModel("no-such-shipped-style")


def test_not_onnx_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a protobuf")
    with pytest.raises(UserError, match="not a valid ONNX model"):
        StyleModel(bad)


@pytest.mark.parametrize("elem_type, shape", [
    ("UINT8", [1, 48, 3]),  # wrong rank
    ("FLOAT", [1, 48, 64, 3]),  # wrong dtype
    ("UINT8", [1, 3, 48, 64]),  # NCHW, not NHWC
])
def test_wrong_input_is_a_user_error(tmp_path, elem_type, shape):
    path = _onnx_model(tmp_path / "wrong.onnx", elem_type, shape)
    with pytest.raises(UserError, match=r"expected a uint8 \(N, H, W, 3\)"):
        StyleModel(path)


def test_providers():
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    assert choose_providers()[-1] == "CPUExecutionProvider"
    with pytest.raises(UserError, match="not available"):
        choose_providers("no-such-provider")
