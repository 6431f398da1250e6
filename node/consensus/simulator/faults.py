"""What goes wrong in a run: the fault plan drawn from the seed, and the byzantine
validators (``Adversary``) with their strategies."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ledger.block import PRECOMMIT, PREVOTE, Proposal, Vote
from ledger.genesis import ValidatorSet
from ledger.keys import SigningKey
from node.consensus.messages import Message, SignedProposal, SignedVote, sign_proposal, sign_vote
from node.consensus.simulator.events import Delivery
from node.consensus.simulator.world import CHAIN_ID, Blocks

__all__ = ["ALL_FAULTS", "STRATEGIES", "Adversary", "Coalition", "FaultPlan", "draw_plan"]

ALL_FAULTS = ("drop", "delay", "duplicate", "reorder", "partition", "crash")
# silent: says nothing; equivocate: two proposals and split votes to random halves;
# conflicting: a different vote to each peer; phantom: proposes and votes for blocks that
# do not exist; split: the coalition attack, one value per fixed half of the honest nodes.
STRATEGIES = ("silent", "equivocate", "conflicting", "phantom", "split")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    drop: float
    delay_max_ms: int
    duplicate: float
    reorder: float
    partitions: tuple[tuple[int, int, frozenset[str]], ...]  # (start, end, one side)
    # (crash at, restart at, node, torn): a torn crash kills the node inside its next
    # output, after the persist and before the send (kill -9 at the worst moment).
    crashes: tuple[tuple[int, int, str, bool], ...]
    heal_at_ms: int
    byzantine: tuple[str, ...]
    strategy: str

    def describe(self) -> str:
        parts = [
            f"drop={self.drop:.2f}",
            f"delay<={self.delay_max_ms}ms",
            f"duplicate={self.duplicate:.2f}",
            f"reorder={self.reorder:.2f}",
            f"partitions={[(s, e, sorted(g)) for s, e, g in self.partitions]}",
            f"crashes={list(self.crashes)}",
            f"heal_at={self.heal_at_ms}ms",
            f"byzantine={list(self.byzantine)}",
            f"strategy={self.strategy}",
        ]
        return " ".join(parts)


def draw_plan(
    rng: random.Random, ids: list[str], byzantine: int, faults: frozenset[str]
) -> FaultPlan:
    """Every fault option of a run, drawn from its seed before anything else happens."""
    heal_at = rng.randint(1_000, 20_000)
    chosen = tuple(sorted(rng.sample(ids, byzantine)))
    honest = [i for i in ids if i not in chosen]
    partitions = []
    if "partition" in faults and len(ids) > 1:
        for _ in range(rng.randint(0, 3)):
            start = rng.randint(0, heal_at - 1)
            side = frozenset(rng.sample(ids, rng.randint(1, len(ids) - 1)))
            partitions.append((start, rng.randint(start + 1, heal_at), side))
    crashes = []
    if "crash" in faults:
        for _ in range(rng.randint(0, 3)):
            at = rng.randint(0, heal_at - 1)
            back = rng.randint(at + 1, heal_at)
            crashes.append((at, back, rng.choice(honest), (at + back) % 2 == 1))
    return FaultPlan(
        drop=rng.uniform(0.0, 0.3) if "drop" in faults else 0.0,
        delay_max_ms=rng.randint(5, 800) if "delay" in faults else 5,
        duplicate=rng.uniform(0.0, 0.2) if "duplicate" in faults else 0.0,
        reorder=rng.uniform(0.0, 0.3) if "reorder" in faults else 0.0,
        partitions=tuple(partitions),
        crashes=tuple(sorted(crashes)),
        heal_at_ms=heal_at,
        byzantine=chosen,
        strategy=rng.choice(STRATEGIES) if chosen else "none",
    )


class Coalition:
    """What the byzantine validators share: who they are, the honest nodes (in member
    order, which fixes the order of the rng draws made for them), how they split the
    honest nodes in two, and the run's rng."""

    def __init__(self, members: Iterable[str], honest: Iterable[str], rng: random.Random) -> None:
        self.members = frozenset(members)
        self.honest = tuple(honest)
        self.rng = rng
        # Drawn even without a coalition: the draw is part of every seed's sequence.
        order = sorted(self.honest)
        rng.shuffle(order)
        half = len(order) // 2
        self.sides = (frozenset(order[:half]), frozenset(order[half:]))
        self._halves: dict[tuple[int, int], tuple[frozenset[str], frozenset[str]]] = {}

    def halves(self, height: int, round_: int) -> tuple[frozenset[str], frozenset[str]]:
        """A random split of the honest nodes for (height, round), the same for every
        member of the coalition."""
        found = self._halves.get((height, round_))
        if found is None:
            side = frozenset(i for i in self.honest if self.rng.random() < 0.5)
            found = self._halves[(height, round_)] = (side, frozenset(self.honest) - side)
        return found


class Adversary:
    """A byzantine validator: holds a real key, follows the honest nodes' messages to
    know which (height, round) is live, and signs whatever its strategy says."""

    def __init__(
        self,
        member_id: str,
        key: SigningKey,
        strategy: str,
        *,
        validators: ValidatorSet,
        heights: int,
        coalition: Coalition,
        blocks: Blocks,
        send: Callable[[str, Delivery], None],
    ) -> None:
        self.id = member_id
        self.key = key
        self.strategy = strategy
        self.validators = validators
        self.heights = heights
        self.coalition = coalition
        self.blocks = blocks
        self._send = send
        self._acted: set[tuple[int, int]] = set()
        self._followed: set[tuple[int, int]] = set()

    def observe(self, message: Message) -> None:
        height, round_ = message.height, message.round
        self.act(height, round_)
        if isinstance(message, SignedVote) and message.vote.type == PRECOMMIT:
            # Be ready before the honest nodes get there: next round, next height.
            self.act(height, round_ + 1)
            self.act(height + 1, 0)
        if isinstance(message, SignedProposal) and self.strategy in ("split", "equivocate"):
            self._follow(height, round_, message.proposal.block)

    def act(self, height: int, round_: int) -> None:
        if (height, round_) in self._acted or height > self.heights:
            return
        self._acted.add((height, round_))
        strategy, honest, rng = self.strategy, self.coalition.honest, self.coalition.rng
        if strategy == "silent":
            return
        leader = self.validators.proposer(height, round_)
        proposer = leader == self.id
        if strategy == "phantom":
            ghost = hashlib.sha256(f"ghost/{rng.random()}".encode()).digest()
            if proposer:
                self._propose(height, round_, ghost, honest)
            self._vote_both(height, round_, ghost, honest)
        elif strategy == "conflicting":
            if proposer:
                block = self.blocks.new(self.id, height, round_)
                self._propose(height, round_, block, honest)
            for dst in honest:
                choice = rng.choice((None, bytes(32), self.blocks.new(dst, height, round_, "x")))
                self._vote_both(height, round_, choice, (dst,))
        elif leader in self.coalition.members:
            # The coalition's proposer equivocates; every member backs each half's value.
            for tag, side in zip("ab", self._halves(height, round_), strict=True):
                block = self.blocks.new(leader, height, round_, tag)
                if proposer:
                    self._propose(height, round_, block, side)
                self._vote_both(height, round_, block, side)

    def _halves(self, height: int, round_: int) -> tuple[frozenset[str], frozenset[str]]:
        if self.strategy == "split":
            return self.coalition.sides
        return self.coalition.halves(height, round_)

    def _follow(self, height: int, round_: int, block: bytes) -> None:
        """With an honest proposer there is nothing to split: vote with it."""
        if (height, round_) in self._followed or height > self.heights:
            return
        if self.validators.proposer(height, round_) == self.id:
            return
        self._followed.add((height, round_))
        self._vote_both(height, round_, block, self.coalition.honest)

    def _propose(self, height: int, round_: int, block: bytes, to: Iterable[str]) -> None:
        message = sign_proposal(self.key, CHAIN_ID, self.id, Proposal(height, round_, block, -1))
        # Sorted: set order varies with PYTHONHASHSEED, and each send draws from the rng.
        for dst in sorted(to):
            self._send(self.id, Delivery(dst, message))

    def _vote_both(self, height: int, round_: int, block: bytes | None, to: Iterable[str]) -> None:
        for type_ in (PREVOTE, PRECOMMIT):
            message = sign_vote(self.key, CHAIN_ID, self.id, Vote(type_, height, round_, block))
            for dst in sorted(to):
                self._send(self.id, Delivery(dst, message))
