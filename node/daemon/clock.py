"""The wall clock, read in one place by the daemon's shell (the chain and the consensus
core take the time as an argument and never read it)."""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Milliseconds since the Unix epoch, the unit of entry and block times."""
    return time.time_ns() // 1_000_000
