"""`fastnst webcam --virtual-camera`: frames sent to a pyvirtualcam backend that records them, and the errors.

The backend below is a real pyvirtualcam backend (``pyvirtualcam.register_backend``): it keeps
the frames it is sent, decoded by the pixel format pyvirtualcam hands it, instead of writing them
to a device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import read_video, synthetic_frames, write_video

from fastnst.cli import main
from fastnst.play.player import WINDOW, PlayerState, run_player
from fastnst.play.model import StyleModel
from fastnst.play.pipeline import FramePipeline
from fastnst.play.vcam import fit_frame, open_virtual_camera

pyvirtualcam = pytest.importorskip("pyvirtualcam")
from pyvirtualcam.util import decode_fourcc  # noqa: E402

BLUE = (255, 0, 0)  # BGR: a camera that swapped the channels would see red


class RecordingBackend:
    """Keeps every frame sent, as an (h, w, 3) RGB image, and when it came."""

    made: list[RecordingBackend] = []
    fail_after: int | None = None  # raise on the send after this many frames: a device that went away

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        fmt = decode_fourcc(fourcc)
        if fmt not in ("24BG", "raw "):
            raise RuntimeError(f"pixel format {fmt} not supported")
        self.width, self.height, self.fps, self.bgr = width, height, fps, fmt == "24BG"
        self.name = device or "recorder"
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = False
        RecordingBackend.made.append(self)

    def send(self, frame):
        if self.fail_after is not None and len(self.frames) >= self.fail_after:
            raise RuntimeError("device removed")
        img = frame.reshape(self.height, self.width, 3)
        self.frames.append((img[..., ::-1] if self.bgr else img).copy())
        self.times.append(time.perf_counter())

    def close(self):
        self.closed = True

    def device(self):
        return self.name

    def native_fourcc(self):
        return None


class FailingBackend(RecordingBackend):
    fail_after = 3


@pytest.fixture
def backends(monkeypatch):
    """Only the recording backends: the machine's own (v4l2loopback, OBS) are out of reach."""
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {})
    pyvirtualcam.register_backend("recorder", RecordingBackend)
    pyvirtualcam.register_backend("failing", FailingBackend)
    RecordingBackend.made = []
    return RecordingBackend.made


def _key_script(keys: dict[int, str]):
    """A ``read_key`` that presses ``keys[n]`` on the n-th frame (from 0), else nothing."""
    calls = [0]

    def read_key():
        n, calls[0] = calls[0], calls[0] + 1
        return ord(keys[n]) if n in keys else -1

    return read_key


class ListCapture:
    """A cv2.VideoCapture stand-in: ``frames`` then the end, one every ``period`` seconds."""

    def __init__(self, frames, period=0.0):
        self.frames, self.period = list(frames), period

    def read(self):
        time.sleep(self.period)
        return (True, self.frames.pop(0)) if self.frames else (False, None)


def _blue(n, size=(64, 48)):
    return [np.full((size[1], size[0], 3), BLUE, np.uint8) for _ in range(n)]


def test_frames_reach_the_camera_at_its_size_in_rgb(tiny_onnx, backends):
    vcam = open_virtual_camera(64, 48, 30, backend="recorder")
    summary = run_player([StyleModel(tiny_onnx)], ListCapture(_blue(6)), keep_latest=False, width=32,
                         display=False, state=PlayerState(show_original=True), vcam=vcam)
    cam = backends[0]
    assert cam.bgr and cam.closed and len(cam.frames) >= 1
    assert all(f.shape == (48, 64, 3) for f in cam.frames)  # processed at 32 px wide, sent at the camera's size
    assert all((f == (0, 0, 255)).all() for f in cam.frames)  # RGB blue: the channels are in the right order
    assert summary.virtual_camera.frames == len(cam.frames)
    assert "virtual camera recorder (64x48)" in summary.format()


def test_fit_frame_letterboxes_the_split_view():
    split = np.full((48, 128, 3), 200, np.uint8)
    out = fit_frame(split, (64, 48))
    assert out.shape == (48, 64, 3)
    assert (out[:12] == 0).all() and (out[-12:] == 0).all() and (out[12:36] == 200).all()
    same = np.zeros((48, 64, 3), np.uint8)
    assert fit_frame(same, (64, 48)) is not same  # a copy: the player reuses its buffers


@pytest.fixture
def x_display(monkeypatch, tmp_path):
    """A private Xvfb display, so that the player opens a real window."""
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed: no display for a real window")
    number = 200 + os.getpid() % 300
    proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{number}")
    for _ in range(100):
        if socket.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("Xvfb did not start")
    monkeypatch.setenv("DISPLAY", f":{number}")
    yield
    proc.terminate()
    proc.wait(5)


def test_the_window_opens_at_the_frame_size_and_its_text_stays_off_the_camera(tiny_onnx, backends, x_display):
    vcam = open_virtual_camera(320, 240, 30, backend="recorder")
    rects = []

    def read_key():  # called once a frame while the window is open
        rects.append(cv2.getWindowImageRect(WINDOW)[2:])
        return -1

    summary = run_player([StyleModel(tiny_onnx)], ListCapture(_blue(8, (320, 240)), 0.02), keep_latest=False,
                         width=160, display=True, state=PlayerState(show_original=True), vcam=vcam, read_key=read_key)
    assert summary.frames == 8 and summary.window  # shown with its text and key help
    assert rects[-1] == (320, 240)  # the frame's size, not the 160 px processing width
    assert len(backends[0].frames) >= 1
    assert all((f == (0, 0, 255)).all() for f in backends[0].frames)  # not one pixel of text


def test_a_style_key_and_space_change_what_the_camera_gets(trio_onnx, backends):
    frame = synthetic_frames(1)[0]
    model = StyleModel(trio_onnx)
    expected = []
    for style in range(3):
        model.set_style(np.eye(3, dtype=np.float32)[style])
        expected.append(FramePipeline().stylize(model, frame)[..., ::-1].copy())
    vcam = open_virtual_camera(64, 48, 30, backend="recorder")
    run_player([model], ListCapture([frame] * 18, 0.01), keep_latest=False, width=None, display=False,
               vcam=vcam, read_key=_key_script({5: "3", 11: " "}))
    got = backends[0].frames
    runs = [got[0]] + [b for a, b in zip(got, got[1:]) if not np.array_equal(a, b)]  # what it showed, in turn
    assert len(runs) == 3
    np.testing.assert_array_equal(runs[0], expected[0])
    np.testing.assert_array_equal(runs[1], expected[2])  # key 3: the third style
    np.testing.assert_array_equal(runs[2], frame[..., ::-1])  # space: the picture itself


def test_a_camera_that_fails_mid_run_leaves_the_recording_whole(tiny_onnx, backends, tmp_path):
    out = tmp_path / "out.mp4"
    vcam = open_virtual_camera(64, 48, 30, backend="failing")
    summary = run_player([StyleModel(tiny_onnx)], ListCapture(synthetic_frames(10), 0.01), keep_latest=False,
                         width=None, display=False, output=out, vcam=vcam)
    assert summary.frames == 10 and len(read_video(out)[0]) == 10
    assert len(backends[0].frames) == 3
    assert summary.virtual_camera.stopped.startswith("stopped after 3 frames")
    assert "device removed" in summary.format()


def test_a_15_fps_clip_reaches_the_camera_at_15_fps(tiny_onnx, backends, tmp_path):
    clip = write_video(tmp_path / "clip15.mp4", 30, fps=15.0)
    cap = cv2.VideoCapture(str(clip))
    vcam = open_virtual_camera(64, 48, 15, backend="recorder")
    summary = run_player([StyleModel(tiny_onnx)], cap, keep_latest=False, width=None, display=False,
                         fps=15.0, pace=True, vcam=vcam)
    cap.release()
    times = backends[0].times
    assert len(times) >= 20  # a fast model: a few frames dropped at most, even on a busy machine
    assert (len(times) - 1) / (times[-1] - times[0]) < 16.0  # not faster than the clip
    assert 12.0 <= summary.virtual_camera.fps <= 16.0


def test_webcam_virtual_camera_flag(tiny_onnx, synthetic_video, backends, capsys):
    assert main(["webcam", "-m", str(tiny_onnx), "--source", str(synthetic_video), "--no-display",
                 "--virtual-camera", "--width", "32"]) == 0
    out = capsys.readouterr().out
    assert "virtual camera: recorder (64x48)" in out
    assert "virtual camera recorder (64x48):" in out and " frames at " in out
    assert backends[0].fps == pytest.approx(10.0) and backends[0].frames[0].shape == (48, 64, 3)


def test_virtual_camera_errors_are_one_line(tiny_onnx, synthetic_video, monkeypatch, capsys):
    argv = ["webcam", "-m", str(tiny_onnx), "--source", str(synthetic_video), "--no-display", "--frames", "2"]

    class NoDevice(RecordingBackend):
        def __init__(self, *, device, **kw):
            raise RuntimeError(f"Device {device} does not exist." if device else
                               "No v4l2 loopback device found at /dev/video[0-99]. Did you run 'modprobe v4l2loopback'?")

    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {"v4l2loopback": NoDevice})
    monkeypatch.setattr("sys.platform", "linux")
    assert main([*argv, "--virtual-camera"]) == 2
    err = capsys.readouterr().err
    assert "no virtual camera found" in err and "modprobe v4l2loopback" in err and err.count("\n") == 1
    monkeypatch.setattr("sys.platform", "darwin")
    assert main([*argv, "--virtual-camera"]) == 2
    assert "OBS Studio 26" in capsys.readouterr().err
    assert main([*argv, "--virtual-camera", "/dev/video42"]) == 2
    assert "cannot open virtual camera /dev/video42: Device /dev/video42 does not exist." in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "pyvirtualcam", None)  # not installed
    assert main([*argv, "--virtual-camera"]) == 2
    err = capsys.readouterr().err
    assert "pip install '.[vcam]'" in err and err.count("\n") == 1
