"""Typed errors of the peer layer; each carries a short ``reason`` used as a close reason."""

from __future__ import annotations

__all__ = ["FrameError", "HandshakeError", "PeerError"]


class PeerError(Exception):
    """Base of the peer layer's errors; ``reason`` is short enough for a WebSocket close."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class FrameError(PeerError):
    """A frame from a peer is oversize, not canonical msgpack, or breaks its schema."""


class HandshakeError(PeerError):
    """A peer failed mutual authentication (wrong network, not a member, bad signature)."""
