"""Atomic file writes: a temp file in the destination folder, then ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fastnst import UserError


def check_output_path(path: str | os.PathLike, suffixes: tuple[str, ...] = (),
                      inputs: tuple[str | os.PathLike, ...] = (), what: str = "file") -> Path:
    """Return ``path`` (a file to be written) after checking that it is not a folder, that its
    folder exists and is writable, that its suffix is one of ``suffixes`` (if given; ``what``
    names the format) and that it is none of ``inputs`` (files the command reads)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"output {path} is a folder; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserError(f"unknown {what} format for output {path} (use {', '.join(suffixes)})")
    if not folder.is_dir():
        raise UserError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder is not writable: {folder}")
    for src in inputs:
        if src and Path(src).exists() and path.exists() and path.samefile(src):
            raise UserError(f"output {path} is also an input; writing it would destroy the input")
    return path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True where that cannot be told: never delete in doubt)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


# atomic_path's temp names: ".<dest stem>.<pid>.<random>.tmp<dest suffix>", nested once for a
# temp of a temp (an export that writes a model, then checks it before the rename).
_TEMP = re.compile(r"\.+(?P<stem>.*?)(?P<tags>(\.\d+\.[a-z0-9_]+\.tmp)+)(\.[^.]*)?")


_swept: set[str] = set()


def remove_stale_temps(folder: str | os.PathLike) -> None:
    """Delete the temp files that ``atomic_path`` left in ``folder`` when its process was killed
    (``kill -9``, power loss): those whose writers' PIDs no longer run."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        m = _TEMP.fullmatch(entry.name)
        if m and entry.is_file(follow_symlinks=False) \
                and not any(pid_alive(int(pid)) for pid in re.findall(r"\.(\d+)\.[a-z0-9_]+\.tmp", m["tags"])):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``dest``; on success rename it onto ``dest``, else delete it.

    The temp name keeps ``dest``'s suffix, so writers that pick a format by extension
    (Pillow, OpenCV, torch.save) behave the same. A crash or ``kill -9`` at any moment leaves
    either the old ``dest`` or the new one, never a half-written file.
    """
    dest = check_output_path(dest)
    folder = dest.parent or Path(".")
    if (key := os.path.abspath(folder)) not in _swept:  # once per folder and process: a folder may hold many outputs
        _swept.add(key)
        remove_stale_temps(folder)  # a killed earlier write's; nothing else removes them
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.{os.getpid()}.", suffix=f".tmp{dest.suffix}", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # make the bytes durable before the rename
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
