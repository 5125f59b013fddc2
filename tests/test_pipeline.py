"""pipeline.py: the per-frame path (resize, mirror, strength, colour, smoothing) and the processing sizes."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import synthetic_frames

from fastnst.play.model import StyleModel
from fastnst.play.pipeline import FramePipeline, processing_size


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

