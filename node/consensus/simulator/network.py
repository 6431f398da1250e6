"""The simulated network: before the fault plan's ``heal_at`` a hop may be dropped,
delayed, duplicated, reordered or cut by a partition; after it, every hop arrives within
``HEALED_DELAY_MS``."""

from __future__ import annotations

import random
from collections.abc import Sequence

from node.consensus.messages import Message
from node.consensus.simulator.events import Delivery, Hop, Schedule, StatusSent
from node.consensus.simulator.faults import FaultPlan

__all__ = ["HEALED_DELAY_MS", "Network"]

HEALED_DELAY_MS = 50


class Network:
    def __init__(
        self, schedule: Schedule, rng: random.Random, plan: FaultPlan, members: Sequence[str]
    ) -> None:
        self.schedule = schedule
        self.rng = rng
        self.plan = plan
        self.members = tuple(members)
        self.hops = 0  # sent, whether or not they arrive

    def healed(self) -> bool:
        return self.schedule.now >= self.plan.heal_at_ms

    def broadcast(self, src: str, message: Message) -> None:
        for dst in self.members:
            if dst != src:
                self.send(src, Delivery(dst, message))

    def announce(self, src: str, height: int) -> None:
        """Tell every peer the height ``src`` is working on."""
        for dst in self.members:
            if dst != src:
                self.send(src, StatusSent(dst, src, height))

    def send(self, src: str, hop: Hop) -> None:
        """One hop through the faulty (before heal_at) or reliable network."""
        self.hops += 1
        rng, plan = self.rng, self.plan
        if self.healed():
            self.schedule.after(rng.randint(1, HEALED_DELAY_MS), hop)
            return
        if self.partitioned(src, hop.dst) or rng.random() < plan.drop:
            return
        copies = 2 if rng.random() < plan.duplicate else 1
        for _ in range(copies):
            delay = rng.randint(1, plan.delay_max_ms)
            if rng.random() < plan.reorder:
                delay += rng.randint(0, 4 * plan.delay_max_ms)
            self.schedule.after(delay, hop)

    def partitioned(self, a: str, b: str) -> bool:
        now = self.schedule.now
        return any(
            start <= now < end and ((a in side) != (b in side))
            for start, end, side in self.plan.partitions
        )
