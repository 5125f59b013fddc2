"""The signals (SIGINT, SIGTERM) that asked the running command to stop: whoever catches one
records it here, and the command line exits with 128 + the last one."""

from __future__ import annotations

import contextlib
import signal

_received: list[int] = []  # newest last


def record_stop(signum: int) -> None:
    """Note that ``signum`` asked the running command to stop."""
    _received.append(signum)


def last_stop() -> int | None:
    """The last signal that asked the running command to stop, or None."""
    return _received[-1] if _received else None


def clear_stops() -> None:
    """Forget earlier commands' signals (a new command starts)."""
    _received.clear()


@contextlib.contextmanager
def sigterm_interrupts():
    """Within: SIGTERM is recorded and raised as KeyboardInterrupt, so it ends a command as Ctrl-C does
    (outside the main thread signals are left alone)."""

    def on_sigterm(signum, frame):
        record_stop(signum)
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
        old = None
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
