"""The virtual camera: the player's frames sent to a video call through ``pyvirtualcam`` (no torch).

``pyvirtualcam`` is an optional extra (``pip install '.[vcam]'``), imported only when a virtual
camera is opened. Frames go to the camera from a thread that holds only the newest one, so a
slow camera driver never holds the player back or builds a queue.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from fastnst import UserError
from fastnst.play.errors import first_line

log = logging.getLogger(__name__)

LINUX_SETUP = ("install v4l2loopback (Debian/Ubuntu: sudo apt install v4l2loopback-dkms) and load it: "
               "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=fastnst")
OBS_SETUP = "install OBS Studio 26 or later (obsproject.com), start its virtual camera once and stop it"


def setup_hint() -> str:
    """What to install on this system for a virtual camera to exist."""
    return LINUX_SETUP if sys.platform.startswith("linux") else OBS_SETUP


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` (h, w, 3) scaled to fit ``size`` = (W, H), centred on black where the aspect
    differs (the split view is twice as wide). Always a new array: the caller's buffers are reused."""
    W, H = size
    h, w = frame.shape[:2]
    if (w, h) == (W, H):
        return frame.copy()
    scale = min(W / w, H / h)
    fw, fh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(frame, (fw, fh), interpolation=interp)
    if (fw, fh) == (W, H):
        return scaled
    out = np.zeros((H, W, 3), np.uint8)
    x, y = (W - fw) // 2, (H - fh) // 2
    out[y:y + fh, x:x + fw] = scaled
    return out


@dataclass
class VirtualCameraStats:
    """What the virtual camera got: for the player's summary."""

    device: str
    size: tuple[int, int]
    frames: int = 0
    seconds: float = 0.0  # from the first frame sent to the last
    stopped: str | None = None  # why and when it stopped early, if it did

    @property
    def fps(self) -> float:
        return (self.frames - 1) / self.seconds if self.frames > 1 and self.seconds > 0 else 0.0

    def format(self) -> str:
        line = f"  virtual camera {self.device} ({self.size[0]}x{self.size[1]}): {self.frames} frames at {self.fps:.1f} fps"
        return line + (f"; {self.stopped}" if self.stopped else "")


class VirtualCamera:
    """A ``pyvirtualcam.Camera`` fed from its own thread: ``send`` hands over the newest frame and
    returns at once; a frame the camera had no time for is replaced by the next one. A camera that
    raises stops taking frames, and ``stats.stopped`` says when; the player goes on."""

    def __init__(self, camera, device: str):
        self._camera = camera
        self.size = (camera.width, camera.height)
        self.stats = VirtualCameraStats(device, self.size)
        self._frame: np.ndarray | None = None
        self._closing = False
        self._cond = threading.Condition()
        self._t_open = time.perf_counter()
        self._t_first: float | None = None
        self._thread = threading.Thread(target=self._run, name="fastnst-vcam", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self.stats.stopped is None and not self._closing

    def send(self, view: np.ndarray) -> None:
        """Queue ``view`` (h, w, 3) uint8 BGR, scaled to the camera's size, replacing any frame not yet sent."""
        if not self.running:
            return
        frame = fit_frame(view, self.size)
        with self._cond:
            self._frame = frame
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._frame is None and not self._closing:
                    self._cond.wait()
                frame, self._frame = self._frame, None
            if frame is None:
                return
            try:
                self._camera.send(frame)
            except Exception as e:  # a driver gone away: the window and the recording carry on
                t = time.perf_counter()
                self.stats.stopped = (f"stopped after {self.stats.frames} frames, {t - self._t_open:.1f} s in: "
                                      f"{first_line(e)}")
                log.warning("virtual camera %s", self.stats.stopped)
                return
            t = time.perf_counter()
            self._t_first = self._t_first or t
            self.stats.frames += 1
            self.stats.seconds = t - self._t_first

    def close(self) -> VirtualCameraStats:
        """Send the frame still queued, stop the thread and release the device."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
        try:
            self._camera.close()
        except Exception as e:  # released anyway by the driver when the process ends
            log.debug("closing the virtual camera: %s", e)
        return self.stats


def _without_backend_prefix(e: Exception) -> str:
    """pyvirtualcam's message, one line, without its "'v4l2loopback' backend: " prefixes."""
    parts = [line.split("backend: ", 1)[-1] for line in str(e).strip().splitlines() if line.strip()]
    return "; ".join(parts) or type(e).__name__


def open_virtual_camera(width: int, height: int, fps: float, device: str | None = None,
                        backend: str | None = None) -> VirtualCamera:
    """A virtual camera of ``width`` x ``height`` at ``fps`` taking BGR frames. ``device``: a
    /dev/videoN or a camera name (None: the first one found); ``backend``: a pyvirtualcam
    backend name (None: any). UserError when pyvirtualcam or a virtual camera is missing, or
    the device is busy or unknown."""
    try:
        import pyvirtualcam
    except ImportError:
        raise UserError("a virtual camera needs the pyvirtualcam package: pip install '.[vcam]' "
                        "(or pip install pyvirtualcam)") from None
    try:
        camera = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR, device=device,
                                     backend=backend)
    except KeyError:
        raise UserError(f"no virtual camera backend {backend!r} in pyvirtualcam") from None
    except Exception as e:  # each backend raises its own RuntimeError text
        why = _without_backend_prefix(e)
        if device:
            raise UserError(f"cannot open virtual camera {device}: {why}") from None
        if "busy" in why.lower():
            raise UserError(f"the virtual camera is busy ({why}): close the other program using it") from None
        raise UserError(f"no virtual camera found ({why}): {setup_hint()}") from None
    name = camera.device
    log.debug("virtual camera %s (%s), %dx%d at %.1f fps", name, camera.backend, width, height, fps)
    return VirtualCamera(camera, name)
