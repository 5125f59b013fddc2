"""The signals (SIGINT, SIGTERM) that asked the running command to stop: whoever catches one
records it here, and the command line exits with 128 + the last one."""

from __future__ import annotations

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
