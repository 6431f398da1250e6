"""The mempool: signed entries waiting for a block, bounded in count and bytes.

Pure: no clock (every call that depends on time takes ``now_ms``), no I/O. The caller
verifies an entry's signature once before ``add``; the pool keeps the verified wire
bytes, so the block path asks ``signature_verified`` instead of verifying again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import ClassVar

from ledger.entry import SignedEntry

__all__ = [
    "DuplicateEntry",
    "Mempool",
    "MempoolError",
    "MempoolFull",
    "StaleEntry",
]


class MempoolError(Exception):
    """An entry cannot enter the pool; ``code`` is the DESIGN §9 / HTTP code to report."""

    code: ClassVar[str] = "mempool"

    def __init__(self, entry_id: bytes, message: str) -> None:
        super().__init__(f"{self.code}: entry {entry_id.hex()[:16]}…: {message}")
        self.entry_id = entry_id
        self.reason = message


class DuplicateEntry(MempoolError):
    code: ClassVar[str] = "duplicate"


class StaleEntry(MempoolError):
    code: ClassVar[str] = "stale"


class MempoolFull(MempoolError):
    """The pool is at ``limit`` (``"entries"`` or ``"bytes"``); the client may retry later."""

    code: ClassVar[str] = "mempool_full"

    def __init__(self, entry_id: bytes, limit: str, message: str) -> None:
        super().__init__(entry_id, message)
        self.limit = limit


class Mempool:
    """Pending entries in arrival order (FIFO), de-duplicated by entry id."""

    def __init__(self, *, max_entries: int, max_bytes: int, entry_window_ms: int) -> None:
        if max_entries < 1 or max_bytes < 1 or entry_window_ms < 0:
            raise ValueError("mempool limits must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entry_window_ms = entry_window_ms
        self._entries: OrderedDict[bytes, SignedEntry] = OrderedDict()
        self._bytes = 0
        # No pooled entry has a ts below this (None: nothing pooled since the last scan).
        # ``add`` refuses entries outside the window, so one leaves it only by growing
        # old: while the bound is inside the window, ``drop_stale`` has nothing to scan.
        self._oldest_ts: int | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    @property
    def size_bytes(self) -> int:
        """Sum of the pooled entries' wire sizes, the quantity ``max_bytes`` bounds."""
        return self._bytes

    def is_fresh(self, ts: int, now_ms: int) -> bool:
        return abs(ts - now_ms) <= self.entry_window_ms

    def add(self, entry: SignedEntry, *, now_ms: int) -> bytes:
        """Pool an entry whose signature the caller has verified; return its id.

        Raises DuplicateEntry, StaleEntry or MempoolFull and leaves the pool unchanged.
        """
        entry_id = entry.id
        if entry_id in self._entries:
            raise DuplicateEntry(entry_id, "already pending")
        if not self.is_fresh(entry.entry.ts, now_ms):
            raise StaleEntry(
                entry_id,
                f"ts {entry.entry.ts} is more than {self.entry_window_ms} ms from {now_ms}",
            )
        if len(self._entries) >= self.max_entries:
            raise MempoolFull(entry_id, "entries", f"pool holds {self.max_entries} entries")
        size = len(entry.wire_bytes)
        if self._bytes + size > self.max_bytes:
            raise MempoolFull(entry_id, "bytes", f"{size} more bytes would exceed {self.max_bytes}")
        self._entries[entry_id] = entry
        self._bytes += size
        ts = entry.entry.ts
        if self._oldest_ts is None or ts < self._oldest_ts:
            self._oldest_ts = ts
        return entry_id

    def get(self, entry_id: bytes) -> SignedEntry | None:
        return self._entries.get(entry_id)

    def status(self, entry_id: bytes) -> str | None:
        """``"pending"`` while pooled, else None (committed/rejected live elsewhere)."""
        return "pending" if entry_id in self._entries else None

    def signature_verified(self, entry: SignedEntry) -> bool:
        """True when this exact wire entry (same id and signature) was verified on entry.

        Comparing the signature bytes matters: the id covers only the entry, so a block
        could carry the same entry with a forged signature.
        """
        pooled = self._entries.get(entry.id)
        return pooled is not None and pooled.sig == entry.sig

    def reap(self, max_entries: int, max_bytes: int | None = None) -> list[SignedEntry]:
        """The oldest pending entries, up to ``max_entries`` (and ``max_bytes``); not removed.

        Entries stay pooled until ``remove`` is called for the committed block, so a
        proposal that fails to commit loses nothing.
        """
        taken: list[SignedEntry] = []
        used = 0
        for entry in self._entries.values():
            if len(taken) >= max_entries:
                break
            size = len(entry.wire_bytes)
            if max_bytes is not None and used + size > max_bytes:
                break
            taken.append(entry)
            used += size
        return taken

    def remove(self, entry_ids: Iterable[bytes]) -> int:
        """Drop committed (or rejected) entries; ids not pooled are ignored. Returns count."""
        removed = 0
        for entry_id in entry_ids:
            entry = self._entries.pop(entry_id, None)
            if entry is not None:
                self._bytes -= len(entry.wire_bytes)
                removed += 1
        return removed

    def drop_stale(self, now_ms: int) -> list[bytes]:
        """Remove and return the ids of entries whose ts left the window around ``now_ms``.

        Called before every proposal: it scans the pool only when its oldest entry may
        have left the window (a clock set back makes entries too new instead; the block
        rules refuse those, and the proposer then drops them)."""
        oldest = self._oldest_ts
        if oldest is None or oldest >= now_ms - self.entry_window_ms:
            return []
        stale = [i for i, e in self._entries.items() if not self.is_fresh(e.entry.ts, now_ms)]
        self.remove(stale)
        self._oldest_ts = min((e.entry.ts for e in self._entries.values()), default=None)
        return stale
