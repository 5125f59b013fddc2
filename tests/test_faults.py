"""Fault injection: bad paths, odd sizes, odd models, full disks, signals, bad recipes.

Every failure must be one line on stderr, a non-zero exit, no traceback and nothing half-written.
Tests are grouped by the kind of fault.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import read_video, synthetic_frames, wait_for, write_video

from fastnst.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _image(path: Path, size=(48, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), synthetic_frames(1, size)[0])
    return path


def _fails(capsys, argv, message, code=2) -> str:
    """Run the CLI; it must exit ``code`` with one line on stderr that contains ``message``."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err
    assert rc == code, err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


def _export(module, path: Path, dynamic: bool = True) -> Path:
    """A torch module on uint8 (N, H, W, 3) frames -> an ONNX model (fixed 1x64x64x3 input if not ``dynamic``)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fastnst.learn.export import torchscript_export

    axes = {"frames": {0: "N", 1: "H", 2: "W"}} if dynamic else None
    torchscript_export(module, (torch.zeros(1, 64, 64, 3, dtype=torch.uint8),), path, ["frames"], dynamic_axes=axes)
    return path


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory):
    """Models that break the contract: a fixed input size, a one-channel output, an output without N."""
    torch = pytest.importorskip("torch")

    class Lambda(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    folder = tmp_path_factory.mktemp("odd")
    return {
        "fixed": _export(Lambda(lambda x: 255 - x), folder / "fixed.onnx", dynamic=False),
        "one-channel": _export(Lambda(lambda x: 255 - x[..., :1]), folder / "one.onnx"),
        "no-batch": _export(Lambda(lambda x: 255 - x[0]), folder / "nobatch.onnx"),
    }


# ---------------------------------------------------------------- output paths
def test_output_that_is_a_folder(tiny_onnx, tmp_path, capsys):
    src = _image(tmp_path / "c.png")
    folder = tmp_path / "o.png"
    folder.mkdir()
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(folder)]) == 0  # stylize: -o is a folder
    assert (folder / "c_tiny.png").is_file()
    clip = write_video(tmp_path / "clip.mp4", 3)
    (tmp_path / "o.mp4").mkdir()
    _fails(capsys, ["webcam", "-m", str(tiny_onnx), "--source", str(clip), "--no-display", "--output",
                    str(tmp_path / "o.mp4")], "is a folder")
    _fails(capsys, ["optimize", "--content", str(src), "--style", str(src), "-o", str(folder)], "is a folder")


def test_output_equal_to_an_input_is_refused(tmp_path, capsys):
    photo = _image(tmp_path / "p.png")
    before = photo.read_bytes()
    _fails(capsys, ["optimize", "--content", str(photo), "--style", str(photo), "-o", str(photo)], "is also an input")
    assert photo.read_bytes() == before


def test_export_refuses_the_checkpoint_and_keeps_no_failed_model(tmp_path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from dataclasses import replace

    import fastnst.learn.export as export
    from fastnst.config import NetConfig, TrainConfig, to_dict
    from fastnst.learn.nets import TransformNet
    from fastnst.learn.checkpoint import CHECKPOINT_FORMAT, save_checkpoint

    cfg = replace(TrainConfig(), style_paths=("painting.jpg",), net=NetConfig(channels=(4, 8, 8), res_blocks=1))
    (tmp_path / "run").mkdir()
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoint.pt", {
        "format": CHECKPOINT_FORMAT, "config": to_dict(cfg), "model": TransformNet(cfg.net).state_dict(), "step": 3})
    before = ckpt.read_bytes()
    _fails(capsys, ["export", str(tmp_path / "run"), "-o", str(ckpt)], "unknown model format")
    assert ckpt.read_bytes() == before

    def failed_parity(net, path, *a, **k):  # what NaN weights do
        raise export.ParityError(f"{path}: onnxruntime differs from torch; do not ship this model")

    monkeypatch.setattr(export, "check_parity", failed_parity)
    out = tmp_path / "m.onnx"
    _fails(capsys, ["export", str(tmp_path / "run"), "-o", str(out)], "do not ship this model")
    assert not out.exists() and not _temps(tmp_path)
    assert torch.load(ckpt, weights_only=True)["step"] == 3


def test_tif_output_is_a_file_and_unknown_suffixes_are_refused(tiny_onnx, tmp_path, capsys):
    src = _image(tmp_path / "c.png")
    out = tmp_path / "out.tif"
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(out)]) == 0
    assert out.is_file() and cv2.imread(str(out)).shape == (40, 48, 3)
    for name in ("out.gif", "out.txt"):
        _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path / name)], "unknown output format")
        assert not (tmp_path / name).exists()
    clip = write_video(tmp_path / "clip.mp4", 3)
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(clip), "-o", str(tmp_path / "x.webm")], "unknown output format")


# ---------------------------------------------------------------- sizes below the model's minimum
def test_tiny_frames_are_raised_to_the_model_minimum(tiny_onnx, tmp_path):
    src = _image(tmp_path / "tiny.png", (8, 8))
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path / "o.png")]) == 0
    assert cv2.imread(str(tmp_path / "o.png")).shape == (8, 8, 3)
    clip = write_video(tmp_path / "thin.avi", 4, (64, 4))
    out = tmp_path / "w.mp4"
    assert main(["webcam", "-m", str(tiny_onnx), "--source", str(clip), "--no-display", "--width", "16",
                 "--output", str(out)]) == 0
    assert len(read_video(out)[0]) == 4


def test_train_and_optimize_refuse_sizes_vgg_cannot_take(tmp_path, capsys):
    thin = _image(tmp_path / "thin.png", (64, 3))
    _fails(capsys, ["optimize", "--content", str(thin), "--style", str(thin), "--size", "64", "--iterations", "1",
                    "-o", str(tmp_path / "o.png")], "too thin")
    _fails(capsys, ["train", "--style", str(thin), "--data", str(tmp_path), "--image-size", "8",
                    "--run-dir", str(tmp_path / "run")], "image_size must be at least 16")
    assert not (tmp_path / "run").exists() and not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------- the model contract, on one probe frame
@pytest.mark.parametrize("kind, message", [("fixed", "takes only 64x64 frames"),
                                           ("one-channel", "returns uint8 (1, 16, 24, 1)"),
                                           ("no-batch", "returns uint8 (16, 24, 3)")])
def test_models_that_break_the_contract_are_refused_on_load(odd_models, tmp_path, capsys, kind, message):
    src = _image(tmp_path / "c.png")
    for extra in ([], ["--strength", "0.5", "--size", "128"]):
        _fails(capsys, ["stylize", "-m", str(odd_models[kind]), str(src), "-o", str(tmp_path / "o.png"), *extra], message)
    assert not (tmp_path / "o.png").exists()


def test_inference_errors_become_one_line(tiny_onnx, odd_models, capsys, monkeypatch):
    import onnxruntime as ort

    from fastnst.play.model import StyleModel

    model = StyleModel(tiny_onnx)
    real = ort.InferenceSession(str(odd_models["one-channel"]), providers=["CPUExecutionProvider"])

    class Session:  # onnxruntime's own error type, from a real failed run (a frame of the wrong rank)
        def run(self, *a):
            return real.run(["stylized"], {"frames": np.zeros((1, 8, 8), np.uint8)})

    model.session = Session()
    with pytest.raises(Exception, match="failed on a 32x24 frame") as info:
        model.run(np.zeros((24, 32, 3), np.uint8))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- a full disk
def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_image(tiny_onnx, tmp_path, capsys, monkeypatch):
    from PIL import Image

    src = _image(tmp_path / "c.png")
    monkeypatch.setattr(Image.Image, "save", _enospc)
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path / "out")], "No space left on device")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


_VideoWriter = cv2.VideoWriter


class _FullDiskWriter:
    """cv2.VideoWriter on a disk that fills up: the writes "succeed", the file ends up cut short."""

    def __init__(self, path, *args):
        self.path, self.writer = path, _VideoWriter(path, *args)

    def isOpened(self):
        return self.writer.isOpened()

    def write(self, frame):
        self.writer.write(frame)

    def release(self):
        self.writer.release()
        with open(self.path, "r+b") as f:
            f.truncate(os.path.getsize(self.path) // 2)


def test_full_disk_video_is_an_error_and_leaves_nothing(tiny_onnx, tmp_path, capsys, monkeypatch):
    import fastnst.play.video as video

    clip = write_video(tmp_path / "clip.mp4", 6)
    monkeypatch.setattr(video.cv2, "VideoWriter", _FullDiskWriter)
    out = tmp_path / "out"
    out.mkdir()
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(clip), "-o", str(out)], "writing video")
    _fails(capsys, ["webcam", "-m", str(tiny_onnx), "--source", str(clip), "--no-display",
                    "--output", str(out / "w.mp4")], "writing video")
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_real_full_disk(tiny_onnx, tmp_path, capsys):
    """A 32 KB tmpfs (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "full"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        rng = np.random.default_rng(0)
        clip = tmp_path / "noise.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
        for _ in range(30):
            writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
        writer.release()
        _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(clip), "-o", str(disk / "o.mp4")], "writing video")
        big = tmp_path / "big.png"
        cv2.imwrite(str(big), rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
        _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(big), "-o", str(disk / "o.png")], "No space left")
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---------------------------------------------------------------- the base install
_NO_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision", "onnx", "datasets"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, BlockTorch())
from fastnst.cli import main
img, out = sys.argv[1], sys.argv[2]
for argv in (["optimize", "--content", img, "--style", img, "-o", out],
             ["train", "--style", img, "--data", img, "--run-dir", out + ".run"],
             ["export", img]):
    assert main(argv) == 2
"""


@pytest.mark.slow
def test_torch_commands_on_the_base_install_say_what_to_install(tmp_path):
    img = _image(tmp_path / "c.png")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_NO_TORCH), str(img), str(tmp_path / "o.png")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line.split("`")[1] for line in lines] == ["fastnst optimize", "fastnst train", "fastnst export"], lines
    assert all(line.endswith("needs the train extra: pip install '.[train]' in the fastnst folder") for line in lines)


# ---------------------------------------------------------------- train validates before working
@pytest.fixture
def photos(tmp_path):
    for i in range(3):
        _image(tmp_path / "data" / f"p{i}.png", (48, 40))
    return tmp_path / "data"


@pytest.mark.parametrize("case, message", [
    (["--checkpoint-every", "0"], "checkpoint_every must be at least 1"),
    (["--log-every", "0"], "log_every must be at least 1"),
    (["--workers", "-1"], "workers must be at least 0"),
    ('image_size = "big"\n', "image_size must be an integer"),
    (b"style_size = 64 # \xff\xfe\n", "is not valid TOML"),
    ("[net]\nchannels = [16]\n", "channels must have 2 or 3 items"),
    ('[net]\nupsample = "cubic"\n', "unknown upsample mode 'cubic'"),
    ("[net]\nend_kernel = 3\n", "stride2 stem needs an even end_kernel"),
    (["--style", "nope.jpg"], "style image not found"),
])
def test_bad_train_input_fails_before_the_run_folder_exists(photos, tmp_path, capsys, case, message):
    pytest.importorskip("torch")
    args = ["train", "--style", str(photos / "p0.png"), "--data", str(photos), "--steps", "1",
            "--run-dir", str(tmp_path / "r1")]
    if isinstance(case, list):
        args += case
    else:
        recipe = tmp_path / "r.toml"
        recipe.write_bytes(case if isinstance(case, bytes) else case.encode())
        args += ["--recipe", str(recipe)]
    _fails(capsys, args, message)
    assert not (tmp_path / "r1").exists()


def test_unreadable_data_is_one_line_with_workers(tmp_path, capsys):
    pytest.importorskip("torch")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"x{i}.jpg").write_text("not a photo")
    _fails(capsys, ["train", "--style", str(_image(tmp_path / "s.png")), "--data", str(data), "--steps", "1",
                    "--workers", "1", "--run-dir", str(tmp_path / "run")], "training images can be read")
    assert not (tmp_path / "run").exists()


def test_stylize_makes_no_folder_for_a_failed_run(tiny_onnx, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(bad), "-o", str(tmp_path / "new" / "dir")], "cannot read image")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_stale_checkpoint_temp_is_removed_by_the_next_run(photos, tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".checkpoint.abc123.tmp.pt"
    stale.write_bytes(b"")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('[net]\nchannels = [4, 8, 8]\nres_blocks = 1\n[loss]\nvgg = "random"\n'
                      'content_layers = ["relu2_1"]\nstyle_layers = {relu1_1 = 1.0, relu2_1 = 1.0}\n')
    assert main(["train", "--recipe", str(recipe), "--style", str(photos / "p0.png"), "--data", str(photos),
                 "--image-size", "32", "--style-size", "32", "--batch-size", "1", "--steps", "1", "--workers", "0",
                 "--preview-every", "0", "--run-dir", str(run)]) == 0
    assert not stale.exists() and (run / "checkpoint.pt").is_file()


# ---------------------------------------------------------------- signals
@pytest.mark.slow
@pytest.mark.parametrize("command", ["stylize", "webcam"])
def test_sigterm_finishes_the_video_and_leaves_no_temp(tiny_onnx, tmp_path, command):
    clip = write_video(tmp_path / "long.mp4", 400, (320, 240))  # ~3 s of work
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "o.mp4"
    argv = {"stylize": ["stylize", "-m", str(tiny_onnx), str(clip), "-o", str(out), "--smooth"],
            "webcam": ["webcam", "-m", str(tiny_onnx), "--source", str(clip), "--no-display", "--smooth",
                       "--width", "0", "--output", str(out)]}[command]
    proc = subprocess.Popen([sys.executable, "-m", "fastnst", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:  # the muxer holds the frames until the end: give it time to stylize some once the file is open
        assert wait_for(lambda: _temps(out_dir) or proc.poll() is not None)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err  # 128 + SIGTERM
    assert err.count("\n") <= 1 and "Traceback" not in err, err  # webcam: the summary, on stdout
    assert not _temps(out_dir)
    frames, _ = read_video(out)  # a finished, playable video of the frames so far
    assert 0 < len(frames) < 400


# ---------------------------------------------------------------- foreign messages stay off stderr
_NOISY = """
import sys
from fastnst.cli import main
model, trunc, clip, out = sys.argv[1:]
assert main(["webcam", "-m", model, "--source", "http://127.0.0.1:9/x.mp4", "--no-display"]) == 2
assert main(["stylize", "-m", model, trunc, "-o", out]) == 2
assert main(["stylize", "-m", model, clip, "-o", out + "/x.webm"]) == 2
"""


@pytest.mark.slow
def test_ffmpeg_and_opencv_messages_do_not_leak(tiny_onnx, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 3)
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(clip.read_bytes()[:300])  # no moov atom
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_NOISY), str(tiny_onnx), str(trunc), str(clip),
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr.splitlines()) == 3 and all(line.startswith("fastnst: error:")
                                                      for line in proc.stderr.splitlines()), proc.stderr


# ---------------------------------------------------------------- empty input
def test_empty_input_is_an_error(tiny_onnx, tmp_path, capsys):
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    out = tmp_path / "w.mp4"
    _fails(capsys, ["webcam", "-m", str(tiny_onnx), "--source", str(empty), "--no-display", "--output", str(out)],
           "cannot read any frame from")
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(empty), "-o", str(out)], "cannot read any frame from video")
    assert not out.exists() and not _temps(tmp_path)
    (tmp_path / "nothing").mkdir()
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(tmp_path / "nothing")], "no images")


def test_eval_video_frames_below_two(tiny_onnx, tmp_path, capsys):
    clip = write_video(tmp_path / "clip.mp4", 3)
    _fails(capsys, ["eval", "--model", str(tiny_onnx), "--video", str(clip), "--frames", "0"],
           "--frames: must be at least 2")


# ---------------------------------------------------------------- the error funnel itself
def test_unexpected_errors_are_one_line_without_a_traceback(tiny_onnx, tmp_path, capsys, monkeypatch):
    import fastnst.play.stylize as stylize

    def broken(*a, **k):
        cv2.resize(np.zeros((0, 0, 3), np.uint8), (4, 4))  # a real cv2.error

    monkeypatch.setattr(stylize, "stylize_files", broken)
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(_image(tmp_path / "c.png"))], "OpenCV: (-215:Assertion failed)")


def test_huge_photo_is_processed_at_most_at_the_default_cap(tiny_onnx, tmp_path, monkeypatch):
    from fastnst.play.model import StyleModel
    from fastnst.play.stylize import DEFAULT_MAX_SIZE

    seen = []
    run = StyleModel.run
    monkeypatch.setattr(StyleModel, "run", lambda self, frame: seen.append(frame.shape) or run(self, frame))
    src = _image(tmp_path / "wide.png", (2400, 20))
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path / "o.png")]) == 0
    assert max(seen[0][:2]) == DEFAULT_MAX_SIZE
    assert cv2.imread(str(tmp_path / "o.png")).shape == (20, 2400, 3)


def test_running_out_of_memory_is_one_line_on_the_cpu_and_the_gpu():
    torch = pytest.importorskip("torch")
    from fastnst.cli import _one_line

    with pytest.raises(RuntimeError) as cpu:
        torch.empty(2**60, dtype=torch.uint8)  # 1 EiB, beyond any address space: the CPU allocator refuses
    gpu = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    for e in (cpu.value, gpu, MemoryError()):
        assert _one_line(e, "optimize") == "out of memory (try a smaller --size)"
