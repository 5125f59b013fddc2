"""Shared fixtures: a tiny ONNX style model and small synthetic videos, all built by the tests."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAINTING_COLOURS = {"red": (250, 30, 10), "blue": (10, 30, 250), "green": (20, 240, 30)}


def photos_and_paintings(folder: Path, n_photos: int) -> tuple[Path, list[str]]:
    """``n_photos`` noise photos in ``folder/data`` and three striped paintings (red, blue, green)
    in ``folder``: the training data of the tiny multi-style runs."""
    from PIL import Image

    photos = folder / "data"
    photos.mkdir()
    for i in range(n_photos):
        Image.effect_noise((48, 40), 20 + 8 * i).convert("RGB").save(photos / f"p{i}.png")
    paintings = []
    for name, colour in PAINTING_COLOURS.items():
        img = np.zeros((40, 40, 3), np.uint8)
        img[::4] = colour
        Image.fromarray(img).save(folder / f"{name}.png")
        paintings.append(str(folder / f"{name}.png"))
    return photos, paintings


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A tiny TransformNet (channels (4, 8, 8), one residual block) exported with the fastnst contract.

    Needs torch to build; without it, only the tests that use this fixture skip.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fastnst.config import NetConfig
    from fastnst.learn.export import export_onnx
    from fastnst.learn.nets import TransformNet

    torch.manual_seed(0)
    net = TransformNet(NetConfig(channels=(4, 8, 8), res_blocks=1))
    return export_onnx(net, tmp_path_factory.mktemp("models") / "tiny.onnx", {"fastnst.style": "tiny"})


@pytest.fixture(scope="session")
def trio_onnx(tmp_path_factory) -> Path:
    """A tiny three-style model ``trio`` (styles a, b, c), each style's norm parameters perturbed so the styles differ."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fastnst.config import NetConfig
    from fastnst.learn.export import export_onnx
    from fastnst.learn.nets import TransformNet

    torch.manual_seed(0)
    net = TransformNet(dataclasses.replace(NetConfig(channels=(4, 8, 8), res_blocks=1), n_styles=3)).eval()
    with torch.no_grad():
        for norm in net.norms():
            norm.weight.add_(torch.randn_like(norm.weight))
            norm.bias.add_(torch.randn_like(norm.bias))
    return export_onnx(net, tmp_path_factory.mktemp("models") / "trio.onnx",
                       {"fastnst.style": "trio", "fastnst.styles": json.dumps(["a", "b", "c"])})


def synthetic_frames(n: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """``n`` (h, w, 3) uint8 BGR frames: a colour gradient with a square moving across."""
    w, h = size
    xs, ys = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    base = np.dstack([xs, ys, 255 - xs]).astype(np.uint8)  # (h, w, 3)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (i * 4) % max(1, w - 12)
        f[h // 3: h // 3 + 12, x: x + 12] = (255, 255, 255)
        frames.append(f)
    return frames


def write_video(path: Path, n: int, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for f in synthetic_frames(n, size):
        writer.write(f)
    writer.release()
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    """All frames of a video, and its fps."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames, fps


@pytest.fixture
def synthetic_video(tmp_path) -> Path:
    """A 12-frame 64x48 mp4 at 10 fps."""
    return write_video(tmp_path / "clip.mp4", 12)


def wait_for(predicate, seconds: float = 120.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``seconds`` pass (False)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False
