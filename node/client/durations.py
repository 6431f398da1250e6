"""Moments and durations as an official types them: ``--at 2026-03-02T10:14`` or
``--at 1772446440000`` (ms); ``--max-age 90s``, ``15m``, ``2h``, ``7d`` (or seconds)."""

from __future__ import annotations

import datetime as dt
import re

from node.client.errors import UsageError

__all__ = ["parse_duration_ms", "parse_moment_ms"]

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"([0-9]{1,9})(ms|s|min|m|h|d)?")
_MAX_MS = 2**63 - 1


def parse_moment_ms(text: str) -> int:
    """ISO 8601 (a time without an offset is UTC) or integer milliseconds since 1970."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        value = int(text)
        if value > _MAX_MS:
            raise UsageError(f"--at {text}: too large for a time in milliseconds")
        return value
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at {text!r}: give ISO 8601 (2026-03-02T10:14:00Z) or milliseconds since 1970"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def parse_duration_ms(text: str) -> int:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--max-age {text!r}: give a duration such as 90s, 15m, 2h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]
