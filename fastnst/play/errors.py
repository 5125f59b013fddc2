"""Error text for one-line messages (no torch)."""

from __future__ import annotations


def first_line(e: BaseException) -> str:
    """An exception's first non-blank line, stripped (its type's name when it has none)."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
