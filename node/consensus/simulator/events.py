"""The events a run schedules, and the queue that orders them in virtual time.

Each event is plain data; ``Simulation`` handles them in one ``match`` over ``Event``.
Three of them travel the simulated network (``Hop``): a consensus message, a node's
height, and the commits that answer it. The rest are a node's own timers and the fault
plan's crashes, restarts and the heal, and the workload: entries reaching nodes, which
end an idle height's hold before its heartbeat does.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ledger.block import Commit
from node.consensus.events import Timeout
from node.consensus.messages import Message

__all__ = [
    "CommitsSent",
    "Crash",
    "Delivery",
    "EntryArrives",
    "Event",
    "GossipDue",
    "Heal",
    "HeartbeatDue",
    "Hop",
    "Restart",
    "Schedule",
    "StatusSent",
    "TimerDue",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A signed proposal or vote arrives at ``dst``."""

    dst: str
    message: Message


@dataclass(frozen=True, slots=True)
class StatusSent:
    """``src`` tells ``dst`` the height it is working on."""

    dst: str
    src: str
    height: int


@dataclass(frozen=True, slots=True)
class CommitsSent:
    """The commits of heights ``dst`` lacks, from a node that decided them."""

    dst: str
    commits: tuple[Commit, ...]


@dataclass(frozen=True, slots=True)
class TimerDue:
    """A consensus timeout armed by ``member`` in its process ``epoch``."""

    member: str
    epoch: int
    timeout: Timeout


@dataclass(frozen=True, slots=True)
class GossipDue:
    """``member``'s periodic gossip tick, in its process ``epoch``."""

    member: str
    epoch: int


@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """The end of ``member``'s hold of an idle ``height`` (armed in process ``epoch``)."""

    member: str
    epoch: int
    height: int


@dataclass(frozen=True, slots=True)
class EntryArrives:
    """An entry reaches ``member``'s pool (from a client, or relayed by a peer)."""

    member: str


@dataclass(frozen=True, slots=True)
class Crash:
    """The fault plan kills ``member``; a torn crash strikes inside its next output."""

    member: str
    torn: bool


@dataclass(frozen=True, slots=True)
class Restart:
    member: str


@dataclass(frozen=True, slots=True)
class Heal:
    """The end of the safety phase: the network turns reliable, every node runs."""


Hop = Delivery | StatusSent | CommitsSent
Event = (
    Delivery
    | StatusSent
    | CommitsSent
    | TimerDue
    | GossipDue
    | HeartbeatDue
    | EntryArrives
    | Crash
    | Restart
    | Heal
)


class Schedule:
    """Events by virtual time; events due at the same millisecond keep the order they
    were scheduled in, so a seed replays exactly."""

    def __init__(self) -> None:
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, Event]] = []

    def after(self, delay_ms: int, event: Event) -> None:
        self.at(self.now + delay_ms, event)

    def at(self, at_ms: int, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, event))

    def next_until(self, deadline_ms: int) -> Event | None:
        """The next event, with the clock moved to it; None when none is due by the
        deadline (the clock then stays where the last event left it)."""
        if not self._queue:
            return None
        at, _, event = heapq.heappop(self._queue)
        if at > deadline_ms:
            return None
        self.now = at
        return event
