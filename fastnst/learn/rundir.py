"""Run folders: which hold a run, and the lock a training holds on its folder while it runs.

The lock is ``RUN_DIR/.lock``, an ``flock`` on that file (released by the kernel when its process
dies, however it dies) holding the owner's PID for the message a second process prints. A
``.lock`` left by a killed run is taken over; the owner deletes it when the run ends.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

from fastnst import UserError
from fastnst.play.files import pid_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked there
    fcntl = None

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
RUN_FILES = ("checkpoint.pt", "metrics.jsonl")  # what a run writes first: a folder with one holds a run


def holds_run(folder: str | os.PathLike) -> str | None:
    """The file that shows ``folder`` holds a run (a checkpoint, metrics), or None."""
    return next((name for name in RUN_FILES if (Path(folder) / name).is_file()), None)


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


class RunLock:
    """Hold ``folder``'s lock (a context manager); a UserError naming the holder's PID if another
    process holds it."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        if fcntl is None:
            log.debug("no fcntl here: %s is not locked", self.folder)
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UserError(f"cannot lock run folder {self.folder}: {e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):  # a file system without locks
                    log.warning("cannot lock run folder %s (%s); make sure no other run uses it", self.folder, e.strerror)
                    return self
                who = f"process {holder}" if holder else "another process"
                raise UserError(f"run folder {self.folder} is in use by {who} (a training running there); "
                                "wait for it to end or choose another run folder") from None
            try:  # the file we locked is still the lock (its owner may have deleted it meanwhile)
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        old = _read_pid(fd)
        if old is not None and old != os.getpid() and not pid_alive(old):
            log.info("%s: taking over the lock of process %d, which no longer runs", self.folder, old)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):  # deleted while locked, so the next owner locks a fresh file
                self.path.unlink()
            os.close(self.fd)
            self.fd = None
