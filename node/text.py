"""Wording shared by the node's log lines and messages."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 block``, ``2 blocks``; ``many`` for a noun that is not made with an s."""
    return f"{count} {one if count == 1 else (many if many is not None else one + 's')}"
