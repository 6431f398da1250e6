"""What the node's asyncio parts are given, as narrow Protocols.

``node.daemon.node.Node`` builds every part and hands each only what it uses: the
consensus host gets the core, the chain, ``PeerLinks`` to send on, ``Timers``, a "want
blocks" callback and where to report faults; the syncer gets the chain, ``PeerView`` and
the same fault reports; the API's queries get the chain and a ``LiveStatus``. No part
holds the ``Node``, so none imports ``node.daemon.node`` and the daemon's modules form no
import cycle (tests/test_layering.py). ``PeerManager`` and the asyncio event loop are
what the running node passes; tests pass their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from node.peers import PeerStatus

__all__ = ["Faults", "LiveStatus", "PeerLinks", "PeerView", "TimerHandle", "Timers"]


class PeerLinks(Protocol):
    """Sending to the member's peers (``node.peers.PeerManager``)."""

    def broadcast(self, kind: str, payload: bytes, *, relay: bool = True) -> int: ...

    def send(self, peer_id: str, kind: str, payload: bytes) -> bool: ...

    def connected(self) -> list[str]: ...


class PeerView(PeerLinks, Protocol):
    """What the syncer reads of the peers besides: heights announced, bytes queued to
    each, and the peer event counters it adds to."""

    @property
    def counters(self) -> Counter[str]: ...

    def peers(self) -> list[PeerStatus]: ...

    def queued_bytes(self, peer_id: str) -> int | None: ...


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """One-shot timers (``asyncio.AbstractEventLoop.call_later``)."""

    def call_later(self, delay: float, callback: Callable[[], object], /) -> TimerHandle: ...


class Faults(Protocol):
    """Where a part reports what went wrong: a peer's bad message is counted against that
    peer; a broken invariant of our own stops the node."""

    def peer_fault(self, peer: str, kind: str, exc: BaseException) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class LiveStatus(Protocol):
    """What the API reports of the running node beyond the chain."""

    @property
    def round(self) -> int: ...

    @property
    def syncing(self) -> bool: ...

    def peers(self) -> list[PeerStatus]: ...

    def connected(self) -> list[str]: ...
