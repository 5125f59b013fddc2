"""Video sources and atomic video files, on OpenCV (no torch)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from fastnst import UserError
from fastnst.play.files import atomic_path, check_output_path

log = logging.getLogger(__name__)

# FFmpeg's own messages ("moov atom not found", "Connection refused") off stderr: we say what failed.
# Read when OpenCV first opens a video, so setting it here, before any capture, is in time.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
OUTPUT_VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")  # the containers that take mp4v
FOURCC = "mp4v"  # MPEG-4 part 2: every opencv-python wheel can write it, every player can read it


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def camera_index(source: str) -> int | None:
    """The camera index a ``--source`` names ("0", "1", ...), or None for a file, URL or device path."""
    return int(source) if source.isdigit() else None


@contextlib.contextmanager
def quiet_opencv():
    """OpenCV's own log lines off stderr (each capture backend warns on a miss, a failed write
    warns per frame): the caller checks the result and says what failed."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_capture(source: str) -> cv2.VideoCapture:
    """A camera index, video file, URL or device path -> an opened ``cv2.VideoCapture``."""
    index = camera_index(source)
    if index is not None:
        with quiet_opencv():
            cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            raise UserError(f"no camera at index {index}: give a video file instead, or try another "
                            f"camera index ({index + 1})")
        return cap
    if "://" not in source and not Path(source).exists():
        raise UserError(f"video source not found: {source}")
    if Path(source).is_dir():
        raise UserError(f"video source {source} is a folder")
    with quiet_opencv():
        cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise UserError(f"cannot open video source {source}: not a video OpenCV can read")
    return cap


def source_fps(cap: cv2.VideoCapture, default: float = 30.0) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return fps if 0 < fps < 1000 else default


def source_size(cap: cv2.VideoCapture, default: tuple[int, int] = (640, 480)) -> tuple[int, int]:
    """The (width, height) of ``cap``'s frames, as it reports them (``default`` where it does not)."""
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    return (w, h) if w > 0 and h > 0 else default


class VideoSink:
    """An mp4v video file written atomically: it appears at ``path`` only when ``close()`` is called,
    and only once it reads back with every frame written (a full disk leaves an unplayable file).

    The size is fixed by the first frame unless given; frames of another size are resized to it.
    ``abort()`` deletes the partial file. ``inputs``: files that ``path`` must not be.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int] | None = None,
                 inputs: tuple[str | os.PathLike, ...] = ()):
        self.path = check_output_path(path, OUTPUT_VIDEO_SUFFIXES, inputs, "video")
        self.fps, self.size = fps, size
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))  # checks the folder now
        self._writer: cv2.VideoWriter | None = None
        self._aborted = False
        self._t0: float | None = None

    def write(self, frame: np.ndarray, at: float | None = None) -> None:
        """Append one (H, W, 3) uint8 BGR frame. With ``at`` (its ``perf_counter()`` capture time;
        for a camera, whose frames the player takes at its own pace), as many copies of it, or
        none, as keep the file's clock on the wall clock: a recording plays at the speed it was seen."""
        copies = 1
        if at is not None:  # it fills the file up to the slot of its own time
            self._t0 = at if self._t0 is None else self._t0
            copies = int((at - self._t0) * self.fps) + 1 - self.frames
        for _ in range(copies):
            self._write(frame)

    def _write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.size = self.size or (frame.shape[1], frame.shape[0])
            with quiet_opencv():
                self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*FOURCC), self.fps, self.size)
            if not self._writer.isOpened():
                self.abort()
                raise UserError(f"cannot write video {self.path}: {_why_not_written(self.path)}")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        with quiet_opencv():  # a failed write only logs a warning: close() reads the file back
            self._writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place (None, and no file, if no frame was written)."""
        if self._aborted:
            return None
        if self.frames == 0:
            self.abort()
            log.debug("no frames to write; %s not written", self.path)  # the caller decides if that is an error
            return None
        if self._writer is not None:
            with quiet_opencv():
                self._writer.release()
            self._writer = None
        readable = frame_count(self._tmp)
        if readable < max(1, self.frames - 1):  # some containers round the count from the duration
            self.abort()
            raise UserError(f"writing video {self.path} failed: {_why_not_written(self.path)} "
                            f"({readable} of {self.frames} frames read back; nothing written)")
        self._stack.close()
        log.debug("wrote %s (%d frames)", self.path, self.frames)
        return self.path

    def abort(self) -> None:
        """Delete the partial file."""
        self._aborted = True
        if self._writer is not None:
            with quiet_opencv():
                self._writer.release()
            self._writer = None
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


def frame_count(path: str | os.PathLike) -> int:
    """The frame count a video file's header gives (0: unreadable)."""
    with quiet_opencv():
        cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return max(n, 0)


def _why_not_written(path: Path) -> str:
    free = shutil.disk_usage(path.parent if str(path.parent) else ".").free
    return "no space left on device" if free < 1 << 20 else f"OpenCV could not write {FOURCC} into {path.suffix}"


def read_frames(source: str | os.PathLike, n: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The first ``n`` frames of a video as (h, w, 3) uint8 BGR, resized to ``size`` = (w, h)."""
    if not Path(source).is_file():
        raise UserError(f"video not found: {source}")
    with quiet_opencv():
        cap = cv2.VideoCapture(str(source))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    cap.release()
    if len(frames) < 2:
        raise UserError(f"cannot read two frames from {source}: not a video, or corrupt")
    return frames
