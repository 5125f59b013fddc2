"""player.py and `fastnst webcam`: keys, the capture thread, the headless loop and its error paths."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from conftest import read_video, synthetic_frames, write_video

from fastnst import UserError
from fastnst.cli import main
from fastnst.play.player import (KEYS, CaptureThread, PlayerState, PlayerSummary, StopReason, check_display,
                                 draw_overlay, handle_key, run_player, style_fields, style_names, window_picture)
from fastnst.play.model import StyleModel


# ---------------------------------------------------------------- keys
def test_handle_key_switches_models_with_wraparound():
    s = PlayerState(style_counts=(1, 1, 1))
    assert handle_key(s, ord("n")).model == 1
    assert handle_key(s, ord("p")).model == 2
    assert handle_key(handle_key(handle_key(s, ord("n")), ord("n")), ord("n")).model == 0
    assert handle_key(s, ord("3")).model == 2
    assert handle_key(s, ord("4")) == s  # no 4th model: ignored
    assert handle_key(s, -1) == s


def _keys(state, keys):
    for k in keys:
        state = handle_key(state, ord(k))
    return state


def test_n_p_and_digits_step_through_every_style_of_every_model():
    s = PlayerState(style_counts=(1, 3, 2))  # an old model, a 3-style and a 2-style one
    walk = [(s := handle_key(s, ord("n"))) and (s.model, s.style_index) for _ in range(6)]
    assert walk == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (0, 0)]
    assert (handle_key(s, ord("p")).model, handle_key(s, ord("p")).style_index) == (2, 1)
    assert (_keys(s, "4").model, _keys(s, "4").style_index) == (1, 2)
    assert _keys(s, "7") == s  # 6 styles: no 7th
    np.testing.assert_array_equal(_keys(s, "5").played_weights(), [1, 0])


def test_blend_key_mixes_with_the_next_style_and_brackets_move_the_mix():
    s = PlayerState(style_counts=(1, 3), model=1, style_index=2)
    blend = _keys(s, "b")
    assert blend.blend_index == 0  # the model's next style, wrapping
    np.testing.assert_allclose(blend.played_weights(), [0.5, 0, 0.5])
    np.testing.assert_allclose(_keys(blend, "]]").played_weights(), [0.7, 0, 0.3])
    np.testing.assert_allclose(_keys(blend, "[" * 9).played_weights(), [0, 0, 1])  # clamped: the style itself
    assert _keys(blend, "b").blend_index is None and _keys(blend, "n").blend_index is None  # b again or a style key: no blend
    assert _keys(s, "]") == s  # no blend: brackets do nothing
    assert _keys(PlayerState(style_counts=(1, 3)), "b") == PlayerState(style_counts=(1, 3))  # one style: nothing to blend


def test_start_state_plays_a_style_a_blend_or_any_weights():
    assert style_fields(np.array([0, 1, 0], np.float32)) == {"style_index": 1, "blend_index": None, "style_weights": None}
    two = PlayerState(style_counts=(3,), **style_fields(np.array([0.3, 0, 0.7], np.float32)))
    assert (two.style_index, two.blend_index) == (2, 0)
    np.testing.assert_allclose(two.played_weights(), [0.3, 0, 0.7])
    np.testing.assert_allclose(_keys(two, "]").played_weights(), [0.4, 0, 0.6], atol=1e-6)
    three = PlayerState(style_counts=(3,), **style_fields(np.array([0.2, 0.5, 0.3], np.float32)))
    np.testing.assert_allclose(three.played_weights(), [0.2, 0.5, 0.3])
    assert _keys(three, "n").style_weights is None and _keys(three, "n").style_index == 2  # from the heaviest style


def test_every_style_is_reachable_with_one_or_two_digits():
    s = PlayerState(style_counts=(12, 1, 10))  # 23 styles
    for number in range(1, 24):
        typed = _keys(s, str(number))
        assert typed.entries.index((typed.model, typed.style_index)) == number - 1
    assert _keys(s, "2").digits == "2" and _keys(s, "3").digits == ""  # 20-23 may follow a 2; nothing a 3
    assert (_keys(s, "24").model, _keys(s, "24").style_index) == (0, 3)  # no 24th: the 4 starts over
    assert _keys(s, "1n").digits == "" and _keys(s, "0") == s


def test_help_and_style_list_keys():
    s = PlayerState(style_counts=(3,))
    assert _keys(s, "h").help and _keys(s, "?").help and not _keys(s, "hh").help
    assert _keys(s, "l").style_list and not _keys(s, "lh").style_list  # one panel at a time


@pytest.mark.parametrize("key, attr", [(" ", "show_original"), ("s", "split"), ("c", "preserve_color"),
                                       ("m", "mirror"), ("f", "smooth"), ("r", "recording")])
def test_handle_key_toggles(key, attr):
    s = PlayerState()
    on = handle_key(s, ord(key))
    assert getattr(on, attr) is True and getattr(s, attr) is False
    assert getattr(handle_key(on, ord(key)), attr) is False


def test_handle_key_strength_is_clamped():
    s = PlayerState(strength=1.0)
    assert handle_key(s, ord("+")).strength == 1.0
    down = handle_key(handle_key(s, ord("-")), ord("-"))
    assert down.strength == pytest.approx(0.8)
    assert handle_key(down, ord("=")).strength == pytest.approx(0.9)
    zero = PlayerState(strength=0.0)
    assert handle_key(zero, ord("-")).strength == 0.0


def test_handle_key_snapshot_and_quit():
    s = PlayerState()
    assert handle_key(s, 13).snapshot and handle_key(s, 10).snapshot
    assert handle_key(s, ord("q")).quit and handle_key(s, 27).quit
    assert handle_key(s, ord("x")) == s


def test_key_help_and_style_list_are_drawn(trio_onnx):
    names = style_names([StyleModel(trio_onnx)])
    assert names == ["trio/a", "trio/b", "trio/c"]
    blank = np.full((240, 320, 3), 128, np.uint8)
    views = {}
    for panel in ("none", "help", "style_list"):
        views[panel] = blank.copy()
        state = PlayerState(style_counts=(3,), help=panel == "help", style_list=panel == "style_list")
        draw_overlay(views[panel], state, "trio/a", 30.0, 20.0, style_names=names)
    body = slice(60, None)  # below the two status lines
    assert (views["none"][body] == 128).all()
    for panel in ("help", "style_list"):
        assert (views[panel][body] != 128).mean() > 0.02
    help_rows = (views["help"][body] != 128).any(axis=(1, 2)).sum()
    assert help_rows > (views["style_list"][body] != 128).any(axis=(1, 2)).sum()  # 15 keys, 3 styles
    assert len(KEYS) == 15


def test_a_status_line_pushes_the_key_help_down():
    def first_panel_row(status):
        view = np.full((240, 320, 3), 128, np.uint8)
        draw_overlay(view, PlayerState(style_counts=(3,), help=True), "trio/a", 30.0, 20.0, status=status)
        dark = (view[:, 200:] < 100).all(axis=2).any(axis=1)  # the panel's shade, right of the status text
        return int(np.argmax(dark))

    assert first_panel_row("learning: step 12/60") > first_panel_row(None) + 10


def test_the_window_text_is_drawn_at_the_window_size():
    view = np.zeros((480, 640, 3), np.uint8)
    shown, scale = window_picture(view, (320, 300))  # a small window: the picture fits its width
    assert shown.shape == (240, 320, 3) and scale == pytest.approx(0.6) and shown is not view
    shown, scale = window_picture(np.zeros((480, 1280, 3), np.uint8), (640, 480))  # split view
    assert shown.shape == (240, 640, 3)
    shown, scale = window_picture(view, (1440, 1080))  # a big window: bigger text
    assert shown.shape == (1080, 1440, 3) and scale == pytest.approx(1.2)
    assert window_picture(view, (-1, -1))[0].shape == view.shape  # size unknown: the view's own


# ---------------------------------------------------------------- capture thread
class ListCapture:
    """A cv2.VideoCapture stand-in: ``frames``, then failed reads (an unplugged camera / end of file)."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.reads = 0
        self.lock = threading.Lock()

    def read(self):
        with self.lock:
            self.reads += 1
            return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        pass


def _numbered(n):
    return [np.full((8, 8, 3), i, np.uint8) for i in range(n)]


def test_capture_in_order_delivers_every_frame():
    cap = CaptureThread(ListCapture(_numbered(10)), keep_latest=False).start()
    got = []
    while (item := cap.get()) is not None:
        got.append(int(item[0][0, 0, 0]))
    cap.stop()
    assert got == list(range(10))


def test_capture_keep_latest_drops_stale_frames():
    cap = CaptureThread(ListCapture(_numbered(10)), keep_latest=True, max_failures=1).start()
    cap._thread.join(5)  # the source is exhausted while nobody reads
    assert cap.ended
    item = cap.get()
    assert int(item[0][0, 0, 0]) == 9  # only the newest frame was kept
    assert cap.get() is None
    assert cap.failed  # a live source that stops is a failure, not an end of file


def test_a_slow_machine_is_told_the_width_that_plays_at_30_fps():
    def summary(inference_ms):  # 10 frames: 1 ms pre-processing and post-processing each
        s = PlayerSummary()
        for name, ms in (("pre-process", 1.0), ("inference", inference_ms), ("post-process", 1.0)):
            s.stages[name] = [ms] * 10
        return s

    assert summary(55.0).stylize_fps == pytest.approx(1000 / 57)
    assert summary(55.0).width_for(640) == 448  # 17.5 fps: 448 px has 0.49x the pixels, for 33 fps
    assert summary(110.0).width_for(640) == 320
    assert summary(30.0).width_for(640) is None  # 31 fps already
    assert summary(1000.0).width_for(640) == 160  # never below 160 px
    assert summary(1000.0).width_for(160) is None  # nothing smaller to suggest
    assert PlayerSummary().width_for(640) is None  # no frame stylized


# ---------------------------------------------------------------- the loop
def test_headless_webcam_writes_n_frames(tiny_onnx, synthetic_video, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    rc = main(["webcam", "-m", str(tiny_onnx), "--source", str(synthetic_video), "--width", "32",
               "--no-display", "--frames", "7", "--output", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "7 frames" in text
    for stage in ("capture", "pre-process", "inference", "post-process", "display/write", "end-to-end"):
        assert stage in text
    frames, fps = read_video(out)
    assert len(frames) == 7 and frames[0].shape == (24, 32, 3)
    assert fps == pytest.approx(10.0)


def test_a_15_fps_clip_plays_at_15_fps_when_paced(tiny_onnx, tmp_path):
    clip = write_video(tmp_path / "clip15.mp4", 30, fps=15.0)
    for pace in (True, False):
        cap = cv2.VideoCapture(str(clip))
        summary = run_player([StyleModel(tiny_onnx)], cap, keep_latest=False, width=None, display=False,
                             fps=15.0, pace=pace)
        cap.release()
        assert summary.stop_reason is StopReason.END_OF_VIDEO
        if pace:
            assert summary.fps == pytest.approx(15.0, abs=1.0)
        else:
            assert summary.frames == 30 and summary.fps > 20  # a fast model, unpaced: faster than the clip


def test_loop_plays_a_file_again(tiny_onnx, synthetic_video, tmp_path, capsys):
    out = tmp_path / "twice.mp4"
    assert main(["webcam", "-m", str(tiny_onnx), "--source", str(synthetic_video), "--no-display", "--loop",
                 "--frames", "24", "--output", str(out)]) == 0
    assert "24 frames" in capsys.readouterr().out
    frames, _ = read_video(out)
    assert len(frames) == 24  # the 12-frame clip, twice
    for first, again in zip(frames[:12], frames[12:]):
        assert np.abs(first.astype(int) - again.astype(int)).mean() < 3  # the same frames (mp4v is lossy)
    assert np.abs(frames[0].astype(int) - frames[11].astype(int)).mean() > 3  # and they do differ along the clip
    assert main(["webcam", "-m", str(tiny_onnx), "--source", "0", "--loop", "--no-display"]) == 2
    assert "loop repeats a video file" in capsys.readouterr().err


def test_frames_shown_unstylized_stay_out_of_the_stylizing_figures(tiny_onnx):
    pressed = iter([-1, -1, ord(" ")])
    summary = run_player([StyleModel(tiny_onnx)], ListCapture(synthetic_frames(10)), keep_latest=False, width=None,
                         display=False, read_key=lambda: next(pressed, -1))
    assert summary.frames == 10 and summary.stylized == 3  # space after the third frame
    assert [len(summary.stages[s]) for s in ("pre-process", "inference", "post-process")] == [3, 3, 3]
    assert len(summary.stages["capture"]) == 10 and min(summary.stages["inference"]) > 0
    assert "3 of the 10 frames stylized" in summary.format()


def test_headless_webcam_end_of_video_is_clean(tiny_onnx, synthetic_video, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["webcam", "-m", str(tiny_onnx), "--source", str(synthetic_video), "--width", "0",
                 "--no-display", "--frames", "100", "--output", str(out)]) == 0
    assert "end of video" in capsys.readouterr().out
    frames, _ = read_video(out)
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3)


def test_recording_snapshot_and_split_from_state(tiny_onnx, tmp_path):
    model = StyleModel(tiny_onnx)
    out = tmp_path / "split.mp4"
    summary = run_player([model], ListCapture(synthetic_frames(5)), keep_latest=False, width=None, display=False,
                         output=out, record_dir=tmp_path,
                         state=PlayerState(split=True, recording=True, snapshot=True))
    assert summary.frames == 5 and summary.stop_reason is StopReason.END_OF_VIDEO
    recordings = sorted(tmp_path.glob("fastnst-*.mp4"))
    snapshots = sorted(tmp_path.glob("fastnst-*.png"))
    assert len(recordings) == 1 and len(snapshots) == 1
    frames, _ = read_video(recordings[0])
    assert len(frames) == 5 and frames[0].shape == (48, 128, 3)  # split: original | stylized
    assert read_video(out)[0][0].shape == (48, 128, 3)
    assert not list(tmp_path.glob(".*tmp*"))  # no temp files left behind


class SlowCamera(ListCapture):
    """A camera that delivers a frame every 0.1 s (10 fps)."""

    def read(self):
        time.sleep(0.1)
        return super().read()


@pytest.mark.slow
def test_unplugged_camera_stops_with_summary_and_a_recording_at_the_speed_seen(tiny_onnx, tmp_path):
    model = StyleModel(tiny_onnx)
    out = tmp_path / "rec.mp4"
    summary = run_player([model], SlowCamera(synthetic_frames(5)), keep_latest=True, width=None,
                         display=False, output=out, fps=30.0)
    assert summary.frames >= 2 and summary.stop_reason is StopReason.SOURCE_LOST
    frames, fps = read_video(out)
    # 10 frames a second into a 30 fps file: each shown frame fills the time until the next one
    assert fps == pytest.approx(30.0) and len(frames) >= 3 * (summary.frames - 1) + 1


class RaiseAt(StyleModel):
    """The real tiny model, with ``error`` (a Ctrl-C, a model failure) raised during the ``n``-th inference."""

    def __init__(self, path, n, error: BaseException):
        super().__init__(path)
        self.n, self.calls, self.error = n, 0, error

    def run(self, frame):
        self.calls += 1
        if self.calls == self.n:
            raise self.error
        return super().run(frame)


def test_ctrl_c_prints_summary_and_finalizes_output(tiny_onnx, tmp_path):
    out = tmp_path / "out.mp4"
    summary = run_player([RaiseAt(tiny_onnx, 4, KeyboardInterrupt())], ListCapture(synthetic_frames(10)), keep_latest=False,
                         width=None, display=False, output=out)
    assert summary.interrupted and summary.frames == 3
    assert len(read_video(out)[0]) == 3
    assert "3 frames" in summary.format()


class BrokenCapture(ListCapture):
    """A source whose driver raises once its frames are read."""

    def read(self):
        if not self.frames:
            raise RuntimeError("driver error")
        return super().read()


def test_an_error_mid_run_leaves_no_output_and_a_source_error_is_one_user_error(tiny_onnx, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(UserError, match="the model failed"):
        run_player([RaiseAt(tiny_onnx, 4, UserError("the model failed"))], ListCapture(synthetic_frames(10)), keep_latest=False,
                   width=None, display=False, output=out)
    assert list(tmp_path.iterdir()) == []  # neither the video nor its temp file
    with pytest.raises(UserError, match="reading the source failed: driver error"):
        run_player([StyleModel(tiny_onnx)], BrokenCapture(synthetic_frames(3)), keep_latest=False,
                   width=None, display=False, output=out)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- error paths
def test_no_camera_suggests_source(tiny_onnx, capsys):
    assert main(["webcam", "-m", str(tiny_onnx), "--source", "97", "--no-display", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert "no camera at index 97: give a video file instead, or try another camera index (98)" in err


def test_unreadable_and_missing_video(tiny_onnx, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert main(["webcam", "-m", str(tiny_onnx), "--source", str(bad), "--no-display"]) == 2
    assert "cannot open video source" in capsys.readouterr().err
    assert main(["webcam", "-m", str(tiny_onnx), "--source", str(tmp_path / "gone.mp4"), "--no-display"]) == 2
    assert "not found" in capsys.readouterr().err


def test_model_errors_exit_cleanly(tmp_path, synthetic_video, capsys):
    assert main(["webcam", "-m", str(tmp_path / "missing.onnx"), "--source", str(synthetic_video), "--no-display"]) == 2
    assert "model not found" in capsys.readouterr().err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01junk")
    assert main(["webcam", "-m", str(junk), "--source", str(synthetic_video), "--no-display"]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err


def test_no_display_without_flag_is_a_user_error(tiny_onnx, synthetic_video, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(UserError, match="play with the display off$"):  # the library names the setting, not a flag
        check_display()
    assert main(["webcam", "-m", str(tiny_onnx), "--source", str(synthetic_video)]) == 2
    assert "display off (--no-display, with --frames N" in capsys.readouterr().err  # the command line adds its flag


def test_bad_output_suffix(tiny_onnx, tmp_path):
    with pytest.raises(UserError, match="unknown video format"):
        run_player([StyleModel(tiny_onnx)], ListCapture([]), keep_latest=False, display=False,
                   output=tmp_path / "out.gif")


class NoisyModel(StyleModel):
    """The real tiny model plus fresh noise on every frame: an output that flickers."""

    def __init__(self, path, seed=0):
        super().__init__(path)
        self.rng = np.random.default_rng(seed)

    def run(self, frame):
        out = super().run(frame).astype(np.int16)
        return np.clip(out + self.rng.integers(-40, 41, out.shape), 0, 255).astype(np.uint8)


def test_headless_smoothing_lowers_flicker_and_keeps_frames(tiny_onnx, tmp_path, capsys):
    from fastnst.play.temporal import video_warping_error

    frames = synthetic_frames(10)
    errors = {}
    for smooth in (False, True):
        out = tmp_path / f"smooth-{smooth}.mp4"
        summary = run_player([NoisyModel(tiny_onnx)], ListCapture(frames), keep_latest=False, width=None,
                             display=False, output=out, state=PlayerState(smooth=smooth, strength=0.9))
        assert summary.frames == 10
        written, _ = read_video(out)
        assert len(written) == 10 and written[0].shape == (48, 64, 3)
        errors[smooth] = video_warping_error(iter(written), lambda f: f)[0]
    assert errors[True] < 0.8 * errors[False]


def test_webcam_smooth_flag(tiny_onnx, synthetic_video, tmp_path, capsys):
    argv = ["webcam", "-m", str(tiny_onnx), "--source", str(synthetic_video), "--no-display", "--frames", "5"]
    assert main([*argv, "--smooth", "--output", str(tmp_path / "smooth.mp4")]) == 0
    assert "5 frames" in capsys.readouterr().out
    assert main([*argv, "--output", str(tmp_path / "plain.mp4")]) == 0
    smooth, plain = (read_video(tmp_path / f"{name}.mp4")[0] for name in ("smooth", "plain"))
    assert len(smooth) == 5 and np.array_equal(smooth[0], plain[0])  # the first frame has no history
    assert any(not np.array_equal(a, b) for a, b in zip(smooth[1:], plain[1:]))  # then smoothing starts
