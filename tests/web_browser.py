"""Headless Chromium for the page's tests and benchmark: the system browser (Debian's ``chromium``),
a fake camera fed from a .y4m clip, no network but the page's server."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """(h, w, 3) uint8 BGR frames -> a YUV 4:2:0 .y4m, the format Chromium's fake camera reads."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def chromium_args(camera: Path | None = None, allow_camera: bool = True) -> list[str]:
    """Flags for a headless run as root, offline (Playwright gives each launch a fresh profile); ``camera``: a .y4m that plays as
    the camera; ``allow_camera`` False: the camera permission is refused."""
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    if camera is not None:
        args += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}"]
    args.append("--use-fake-ui-for-media-stream" if allow_camera else "--deny-permission-prompts")
    return args
