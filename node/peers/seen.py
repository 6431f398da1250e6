"""Gossip de-duplication: a message's id and a bounded memory of ids already seen.

A node relays a relayable message, the first time it sees it, to its links outside the
message's reached set (the members its senders sent it to; see ``frames``), adding them
to the set. Remembering ids in a bounded LRU stops the flood from circling: in any
topology each node delivers and forwards a message once while the id is remembered.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["SeenCache", "message_id"]


def message_id(kind: str, payload: bytes) -> bytes:
    """SHA-256 over kind and payload, so equal payloads of different kinds stay distinct."""
    # Hashed in two parts: a proposal's payload is megabytes, not worth a copy.
    digest = hashlib.sha256(kind.encode() + b"\x00")
    digest.update(payload)
    return digest.digest()


class SeenCache:
    """The most recently seen ``capacity`` message ids."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._ids: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, message: object) -> bool:
        return message in self._ids

    def add(self, message: bytes) -> bool:
        """Remember ``message``; True if it is new, False if it was already remembered."""
        if message in self._ids:
            self._ids.move_to_end(message)
            return False
        self._ids[message] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True
