"""runtime.py: model loading and checks, providers, the per-frame pipeline (the no-torch checks: test_torch_free.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import synthetic_frames

from fastnst import UserError
from fastnst.play.runtime import FramePipeline, StyleModel, choose_providers, processing_size, resolve_model


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


def test_processing_size_is_even_and_keeps_aspect():
    assert processing_size(768, 576, 640) == (640, 480)
    assert processing_size(720, 528, 640) == (640, 470)
    assert processing_size(65, 47, None) == (65, 47)
    w, h = processing_size(1001, 333, 501)
    assert w % 2 == 0 and h % 2 == 0


def test_preprocess_resizes_mirrors_and_leaves_input_alone():
    frame = synthetic_frames(1, (64, 48))[0]
    before = frame.copy()
    pipe = FramePipeline()
    small = pipe.preprocess(frame, (32, 24))
    assert small.shape == (24, 32, 3)
    mirrored = pipe.preprocess(frame, (64, 48), mirror=True)
    np.testing.assert_array_equal(mirrored, frame[:, ::-1])
    np.testing.assert_array_equal(frame, before)
    assert pipe.preprocess(frame, (64, 48)) is frame  # no copy when nothing to do


def test_strength_zero_returns_input_and_half_blends(tiny_onnx):
    model = StyleModel(tiny_onnx)
    frame = synthetic_frames(1, (64, 48))[0]
    pipe = FramePipeline()
    np.testing.assert_array_equal(pipe.stylize(model, frame, strength=0.0), frame)
    full = pipe.stylize(model, frame, strength=1.0).copy()
    half = pipe.stylize(model, frame, strength=0.5)
    expected = (full.astype(np.float32) + frame) / 2
    assert np.abs(half - expected).max() <= 1.0
    assert not np.array_equal(full, frame)


def test_preserve_color_keeps_chroma(tiny_onnx):
    model = StyleModel(tiny_onnx)
    frame = synthetic_frames(1, (64, 48))[0] // 2 + 64  # muted colours: no gamut clipping when Y changes
    pipe = FramePipeline()
    styled = pipe.stylize(model, frame).copy()
    kept = pipe.stylize(model, frame, preserve_color=True)
    ycc_in, ycc_styled, ycc_kept = (cv2.cvtColor(x, cv2.COLOR_BGR2YCrCb).astype(int) for x in (frame, styled, kept))
    assert np.abs(ycc_kept[..., 1:] - ycc_in[..., 1:]).mean() < 2.0  # chroma: the input's
    assert np.abs(ycc_kept[..., 0] - ycc_styled[..., 0]).mean() < 2.0  # luminance: the stylized
    assert np.abs(ycc_styled[..., 1:] - ycc_in[..., 1:]).mean() > 5.0  # (the test can fail)


def test_stylize_at_smaller_size_returns_frame_size(tiny_onnx):
    model = StyleModel(tiny_onnx)
    frame = synthetic_frames(1, (64, 48))[0]
    assert FramePipeline().stylize(model, frame, size=(32, 24)).shape == (48, 64, 3)


def test_smoothing_history_survives_the_strength_blend(tiny_onnx):
    """On a still frame the smoothed output is the plain one: the in-place strength blend and colour
    transfer after smoothing must not leak into the smoother's history."""
    model = StyleModel(tiny_onnx)
    frame = synthetic_frames(1, (64, 48))[0]
    plain = FramePipeline().stylize(model, frame, strength=0.5, preserve_color=True).copy()
    pipe = FramePipeline()
    for _ in range(5):
        out = pipe.stylize(model, frame, strength=0.5, preserve_color=True, smooth=True)
        assert np.abs(out.astype(int) - plain).max() <= 1


def test_smoothing_lowers_warping_error_and_reset_forgets(tiny_onnx):
    from fastnst.play.temporal import video_warping_error

    model = StyleModel(tiny_onnx)
    rng = np.random.default_rng(0)

    def noisy(frame):  # the tiny model's output with fresh noise per frame: flicker
        out = model.run(frame).astype(np.int16) + rng.integers(-40, 41, frame.shape)
        return np.clip(out, 0, 255).astype(np.uint8)

    frames = synthetic_frames(10, (64, 48))
    pipe = FramePipeline()
    plain, _ = video_warping_error(frames, noisy)
    smoothed, _ = video_warping_error(frames, lambda f: pipe.smooth(f, noisy(f)))
    assert smoothed < 0.8 * plain
    pipe.reset_smoothing()
    first = noisy(frames[0])
    np.testing.assert_array_equal(pipe.smooth(frames[0], first.copy()), first)  # nothing to blend with


class Varying(StyleModel):
    """The real tiny model with its output divided by 2, 3, 1, 2, 3, ... call after call (by 2 with
    ``cycle=1``): a stand-in for a model whose output moves between frames."""

    def __init__(self, path, cycle=3):
        super().__init__(path)
        self.cycle, self.calls = cycle, 0

    def run(self, frame):
        self.calls += 1
        return super().run(frame) // (1 + self.calls % self.cycle if self.cycle > 1 else 2)


def test_smoothing_history_is_forgotten_on_a_model_switch_and_a_gap(tiny_onnx):
    """The pipeline itself forgets the smoothing history when the model changes or a frame was not
    smoothed: the first smoothed frame after either is that frame's plain output."""
    frame = synthetic_frames(1, (64, 48))[0]  # a still video: the history blends in fully
    a, b = StyleModel(tiny_onnx), Varying(tiny_onnx, cycle=1)  # b: a's output halved
    pipe = FramePipeline()
    for _ in range(3):
        pipe.stylize(a, frame, smooth=True)
    np.testing.assert_array_equal(pipe.stylize(b, frame, smooth=True), a.run(frame) // 2)  # a switch

    c = Varying(tiny_onnx)
    pipe = FramePipeline()
    pipe.stylize(c, frame, smooth=True)  # output / 2
    blended = pipe.stylize(c, frame, smooth=True)  # output / 3, blended with the / 2 before it
    assert np.abs(blended.astype(int) - a.run(frame) // 3).mean() > 5  # (the test can fail)
    pipe.stylize(c, frame, smooth=False)  # output / 1, not smoothed: a gap
    np.testing.assert_array_equal(pipe.stylize(c, frame, smooth=True), a.run(frame) // 2)

