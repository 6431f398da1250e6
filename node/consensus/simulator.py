"""A deterministic network simulator that runs the real consensus cores.

One seed drives everything (after TigerBeetle's VOPR): the fault plan is drawn from it
first and printed, then a safety phase runs with drops, delays, duplicates, reordering,
partitions, crashes and byzantine validators; at ``heal_at`` the network becomes
reliable, crashed nodes restart from what they persisted, and every honest node must
decide every remaining height within a bound (the liveness phase). Time is virtual;
signatures are real. Checks: agreement, validity, integrity, no honest double-signing,
termination.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ledger.block import PRECOMMIT, PREVOTE, Commit, Proposal, Vote, verify_commit
from ledger.errors import CommitError
from ledger.genesis import ValidatorSet
from ledger.keys import Domain, SigningKey
from node.consensus.core import ConsensusCore
from node.consensus.driver import drive
from node.consensus.events import (
    CommitLearned,
    Decision,
    Input,
    Output,
    ProposalReceived,
    ProposeRequest,
    StartHeight,
    Timeout,
    TimeoutFired,
    TimeoutRequest,
    ValidityRequest,
    VoteReceived,
)
from node.consensus.messages import (
    Message,
    SignedProposal,
    SignedVote,
    VerifyCache,
    sign_proposal,
    sign_vote,
)
from node.consensus.signing_state import SigningState

__all__ = [
    "ALL_FAULTS",
    "CHAIN_ID",
    "STRATEGIES",
    "FaultPlan",
    "RunResult",
    "SimConfig",
    "Simulation",
    "SimulationError",
    "main",
    "run_seed",
]

CHAIN_ID = "customs-sim-1"
ALL_FAULTS = ("drop", "delay", "duplicate", "reorder", "partition", "crash")
GOSSIP_MS = 1000
HEALED_DELAY_MS = 50
CATCH_UP_BATCH = 16
# silent: says nothing; equivocate: two proposals and split votes to random halves;
# conflicting: a different vote to each peer; phantom: proposes and votes for blocks that
# do not exist; split: the coalition attack, one value per fixed half of the honest nodes.
STRATEGIES = ("silent", "equivocate", "conflicting", "phantom", "split")


class SimulationError(Exception):
    """A simulator option is out of range."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    validators: int = 4
    byzantine: int = 0
    heights: int = 20
    faults: frozenset[str] = frozenset(ALL_FAULTS)

    def __post_init__(self) -> None:
        if not 1 <= self.validators <= 64:
            raise SimulationError("--validators must be in 1..64")
        if not 0 <= self.byzantine < self.validators:
            raise SimulationError("--byzantine must be in 0..validators-1")
        if not 1 <= self.heights <= 10_000:
            raise SimulationError("--heights must be in 1..10000")
        unknown = set(self.faults) - set(ALL_FAULTS)
        if unknown:
            raise SimulationError(f"unknown faults {sorted(unknown)}; known: {ALL_FAULTS}")


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


@dataclass
class RunResult:
    seed: int
    plan: FaultPlan
    failure: str | None = None  # the broken check
    detail: str = ""
    virtual_ms: int = 0
    messages: int = 0
    heights: int = 0
    evidence: int = 0
    torn_kills: int = 0

    @property
    def passed(self) -> bool:
        return self.failure is None


def member_ids(n: int) -> list[str]:
    return [f"V{i:02d}" for i in range(n)]


_KEYS: dict[str, SigningKey] = {}


def member_key(member_id: str) -> SigningKey:
    key = _KEYS.get(member_id)
    if key is None:
        key = _KEYS[member_id] = SigningKey.from_seed(
            hashlib.sha256(f"sim/{member_id}".encode()).digest()
        )
    return key


def draw_plan(rng: random.Random, config: SimConfig, ids: list[str]) -> FaultPlan:
    """Every fault option of a run, drawn from its seed before anything else happens."""
    on = config.faults
    heal_at = rng.randint(1_000, 20_000)
    byzantine = tuple(sorted(rng.sample(ids, config.byzantine)))
    honest = [i for i in ids if i not in byzantine]
    partitions = []
    if "partition" in on and len(ids) > 1:
        for _ in range(rng.randint(0, 3)):
            start = rng.randint(0, heal_at - 1)
            side = frozenset(rng.sample(ids, rng.randint(1, len(ids) - 1)))
            partitions.append((start, rng.randint(start + 1, heal_at), side))
    crashes = []
    if "crash" in on:
        for _ in range(rng.randint(0, 3)):
            at = rng.randint(0, heal_at - 1)
            back = rng.randint(at + 1, heal_at)
            crashes.append((at, back, rng.choice(honest), (at + back) % 2 == 1))
    return FaultPlan(
        drop=rng.uniform(0.0, 0.3) if "drop" in on else 0.0,
        delay_max_ms=rng.randint(5, 800) if "delay" in on else 5,
        duplicate=rng.uniform(0.0, 0.2) if "duplicate" in on else 0.0,
        reorder=rng.uniform(0.0, 0.3) if "reorder" in on else 0.0,
        partitions=tuple(partitions),
        crashes=tuple(sorted(crashes)),
        heal_at_ms=heal_at,
        byzantine=byzantine,
        strategy=rng.choice(STRATEGIES) if byzantine else "none",
    )


@dataclass
class _Ledger:
    """What the checkers know: the first decision per height, what honest nodes signed
    and judged valid."""

    decided: dict[int, bytes] = field(default_factory=dict)
    signed: dict[tuple[str, int, int, str], bytes] = field(default_factory=dict)
    judged_valid: set[bytes] = field(default_factory=set)
    commit_heights: set[int] = field(default_factory=set)
    verified_sigs: set[tuple[str, Vote, bytes]] = field(default_factory=set)


class _Killed(Exception):
    """Unwinds a node's drive loop when a torn crash strikes mid-output."""


class SimNode:
    """An honest node's host: the daemon's role, with memory for a disk."""

    def __init__(self, sim: Simulation, member_id: str) -> None:
        self.sim = sim
        self.id = member_id
        self.key = member_key(member_id)
        self.persisted: bytes | None = None  # survives crashes, like an fsynced file
        self.chain: list[Decision] = []  # the block store, also durable
        self.core: ConsensusCore | None = None
        self.epoch = 0
        self.last_position: tuple[int, int, int] = (0, 0, 0)
        self.torn = False  # die at the next send, after that output's persist

    @property
    def done(self) -> bool:
        return len(self.chain) >= self.sim.config.heights

    def boot(self) -> None:
        restored = SigningState.decode(self.persisted) if self.persisted else None
        self.epoch += 1
        self.core = ConsensusCore(
            CHAIN_ID, self.id, self.key, cache=self.sim.cache, restored=restored
        )
        last = self.chain[-1].commit if self.chain else None
        self.feed(StartHeight(len(self.chain) + 1, self.sim.validators, last))
        self.sim.schedule(GOSSIP_MS, ("gossip", self.id, self.epoch))

    def crash(self) -> None:
        self.torn = False
        self.core = None
        self.epoch += 1  # timers armed before the crash die with the process

    def feed(self, event: Input) -> None:
        if self.core is not None:
            try:
                drive(self.core, self, event)
            except _Killed:
                self.sim.result.torn_kills += 1
                self.crash()

    # ---- Host ------------------------------------------------------------------------

    def persist(self, record: bytes) -> None:
        self.persisted = record

    def send(self, messages: Iterable[Message]) -> None:
        if self.torn:
            raise _Killed  # the record is durable; these messages never leave
        for message in messages:
            self.sim.note_signed(self.id, message)
            self.sim.broadcast(self.id, message)

    def apply(self, decision: Decision) -> StartHeight | None:
        if decision.height != len(self.chain) + 1:
            return None
        self.chain.append(decision)
        self.sim.note_decision(self.id, decision)
        if self.done:
            return None
        return StartHeight(decision.height + 1, self.sim.validators, decision.commit)

    def arm(self, request: TimeoutRequest) -> None:
        self.sim.schedule(request.after_ms, ("timer", self.id, self.epoch, request.timeout))

    def check_validity(self, request: ValidityRequest) -> bool | None:
        valid = self.sim.blocks.get(request.block, False)
        if valid:
            self.sim.ledger.judged_valid.add(request.block)
        return valid

    def value_to_propose(self, request: ProposeRequest) -> bytes | None:
        block = self.sim.new_block(self.id, request.height, request.round)
        self.sim.ledger.judged_valid.add(block)  # an honest host builds only valid blocks
        return block

    def need_blocks(self, up_to: int) -> None:
        self.sim.status(self.id)

    def report(self, output: Output) -> None:
        for evidence in output.evidence:
            self.sim.note_evidence(self.id, evidence.validator)

    # ---- gossip ----------------------------------------------------------------------

    def gossip(self) -> None:
        """Without progress since the last tick, say where we are and send again what we
        signed (Tendermint's gossip does this continuously)."""
        core = self.core
        if core is None or self.done:
            return
        position = (core.height, core.round, core.phase)
        if position == self.last_position:
            self.sim.status(self.id)
            for message in core.gossip_messages():
                self.sim.broadcast(self.id, message)
        self.last_position = position
        self.sim.schedule(GOSSIP_MS, ("gossip", self.id, self.epoch))


class Simulation:
    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.rng = random.Random(seed)
        ids = member_ids(config.validators)
        self.plan = draw_plan(self.rng, config, ids)
        self.validators = ValidatorSet.of((i, member_key(i).public_key) for i in ids)
        self.cache = VerifyCache()
        self.ledger = _Ledger()
        self.blocks: dict[bytes, bool] = {}
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, tuple[object, ...]]] = []
        self.result = RunResult(seed, self.plan)
        self.nodes = {i: SimNode(self, i) for i in ids if i not in self.plan.byzantine}
        honest = sorted(self.nodes)
        self.rng.shuffle(honest)
        self.halves: dict[tuple[int, int], tuple[frozenset[str], frozenset[str]]] = {}
        self.sides = (frozenset(honest[: len(honest) // 2]), frozenset(honest[len(honest) // 2 :]))
        self.adversaries = {
            i: Adversary(self, i, member_key(i), self.plan.strategy) for i in self.plan.byzantine
        }

    # ---- services for hosts and adversaries -----------------------------------------

    def schedule(self, after_ms: int, event: tuple[object, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + after_ms, self._seq, event))

    def new_block(self, proposer: str, height: int, round_: int, tag: str = "") -> bytes:
        block = hashlib.sha256(f"{self.seed}/{proposer}/{height}/{round_}/{tag}".encode()).digest()
        self.blocks[block] = True
        return block

    def healed(self) -> bool:
        return self.now >= self.plan.heal_at_ms

    def broadcast(self, src: str, message: Message) -> None:
        for dst in self.validators.ids:
            if dst != src:
                self.send_to(src, dst, ("msg", dst, message))

    def status(self, src: str) -> None:
        node = self.nodes[src]
        for dst in self.validators.ids:
            if dst != src:
                self.send_to(src, dst, ("status", dst, src, len(node.chain) + 1))

    def send_to(self, src: str, dst: str, event: tuple[object, ...]) -> None:
        """One hop through the faulty (before heal_at) or reliable network."""
        self.result.messages += 1
        rng, plan = self.rng, self.plan
        if self.healed():
            self.schedule(rng.randint(1, HEALED_DELAY_MS), event)
            return
        if self._partitioned(src, dst) or rng.random() < plan.drop:
            return
        copies = 2 if rng.random() < plan.duplicate else 1
        for _ in range(copies):
            delay = rng.randint(1, plan.delay_max_ms)
            if rng.random() < plan.reorder:
                delay += rng.randint(0, 4 * plan.delay_max_ms)
            self.schedule(delay, event)

    def _partitioned(self, a: str, b: str) -> bool:
        return any(
            start <= self.now < end and ((a in side) != (b in side))
            for start, end, side in self.plan.partitions
        )

    # ---- checkers --------------------------------------------------------------------

    def fail(self, check: str, detail: str) -> None:
        if self.result.failure is None:
            self.result.failure, self.result.detail = check, detail

    def note_signed(self, member: str, message: Message) -> None:
        kind = "proposal" if isinstance(message, SignedProposal) else message.vote.type
        key = (member, message.height, message.round, kind)
        earlier = self.ledger.signed.setdefault(key, message.payload)
        if earlier != message.payload:
            self.fail("double-sign", f"{member} signed two {kind}s at {key[1:3]}")

    def note_evidence(self, reporter: str, accused: str) -> None:
        self.result.evidence += 1
        if accused in self.nodes:
            self.fail("double-sign", f"{reporter} holds equivocation evidence against {accused}")

    def note_decision(self, member: str, decision: Decision) -> None:
        height, block = decision.height, decision.block
        first = self.ledger.decided.setdefault(height, block)
        if first != block:
            self.fail(
                "agreement",
                f"{member} decided {block.hex()[:12]} at height {height}, "
                f"another honest node decided {first.hex()[:12]}",
            )
        if block not in self.ledger.judged_valid:
            self.fail(
                "validity",
                f"{member} decided {block.hex()[:12]} at {height}, "
                "which no honest node judged valid",
            )
        self._check_commit(member, decision)

    def _check_commit(self, member: str, decision: Decision) -> None:
        """Integrity: the commit proves a quorum precommitted this block at this height.

        ``ledger.block.verify_commit`` judges the first commit of each height; later ones
        (other nodes gather other quorums) get the same checks with each signature
        verified once per run, which keeps long runs affordable.
        """
        commit = decision.commit
        try:
            if decision.height not in self.ledger.commit_heights:
                verify_commit(
                    commit, self.validators, CHAIN_ID, height=decision.height, block=decision.block
                )
                self.ledger.commit_heights.add(decision.height)
                self.ledger.verified_sigs.update(
                    (m, commit.precommit(), s) for m, s in commit.votes
                )
            else:
                self._check_commit_cached(decision)
        except CommitError as exc:
            self.fail("integrity", f"{member}'s commit at {decision.height}: {exc}")

    def _check_commit_cached(self, decision: Decision) -> None:
        commit, vset = decision.commit, self.validators
        if (commit.height, commit.block) != (decision.height, decision.block):
            raise CommitError("commit is for another height or block")
        members = [m for m, _ in commit.votes]
        if len(set(members)) != len(members) or len(members) < vset.quorum:
            raise CommitError(f"commit needs {vset.quorum} distinct validators")
        precommit = commit.precommit()
        for m, sig in commit.votes:
            if (m, precommit, sig) in self.ledger.verified_sigs:
                continue
            key = vset.key_of(m)
            if key is None or not key.is_valid(Domain.VOTE, CHAIN_ID, precommit.encode(), sig):
                raise CommitError(f"precommit signature of {m} does not verify")
            self.ledger.verified_sigs.add((m, precommit, sig))

    # ---- the run ---------------------------------------------------------------------

    def deadline_ms(self) -> int:
        return self.plan.heal_at_ms + 60_000 + 15_000 * self.config.heights

    def run(self) -> RunResult:
        for at, back, member, torn in self.plan.crashes:
            self._at(at, ("crash", member, torn))
            self._at(back, ("restart", member))
        self._at(self.plan.heal_at_ms, ("heal",))
        for node in self.nodes.values():
            node.boot()
        for adversary in self.adversaries.values():
            adversary.act(1, 0)
        deadline = self.deadline_ms()
        handlers = self._handlers()
        while self._queue and not self._all_done():
            at, _, event = heapq.heappop(self._queue)
            if at > deadline:
                break
            self.now = at
            handlers[str(event[0])](event)
        self._finish()
        return self.result

    def _at(self, at: int, event: tuple[object, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, event))

    def _all_done(self) -> bool:
        return all(node.done for node in self.nodes.values())

    def _handlers(self) -> dict[str, Callable[[tuple[object, ...]], None]]:
        return {
            "msg": self._on_msg,
            "timer": self._on_timer,
            "gossip": self._on_gossip,
            "status": self._on_status,
            "commits": self._on_commits,
            "crash": self._on_crash,
            "restart": self._on_restart,
            "heal": self._on_heal,
        }

    def _on_msg(self, event: tuple[object, ...]) -> None:
        _, dst, message = event
        assert isinstance(dst, str)
        adversary = self.adversaries.get(dst)
        if adversary is not None:
            adversary.observe(message)  # type: ignore[arg-type]
            return
        node = self.nodes[dst]
        if isinstance(message, SignedProposal):
            node.feed(ProposalReceived(message))
        else:
            node.feed(VoteReceived(message))  # type: ignore[arg-type]

    def _on_timer(self, event: tuple[object, ...]) -> None:
        _, member, epoch, timeout = event
        node = self.nodes[str(member)]
        if node.epoch == epoch and isinstance(timeout, Timeout):
            node.feed(TimeoutFired(timeout))

    def _on_gossip(self, event: tuple[object, ...]) -> None:
        _, member, epoch = event
        node = self.nodes[str(member)]
        if node.epoch == epoch:
            node.gossip()

    def _on_status(self, event: tuple[object, ...]) -> None:
        """A peer says which height it is at; if we have decided it, send the commits."""
        _, dst, src, height = event
        node = self.nodes.get(str(dst))
        if node is None or node.core is None or not isinstance(height, int):
            return
        commits = [d.commit for d in node.chain[height - 1 : height - 1 + CATCH_UP_BATCH]]
        if commits:
            self.send_to(str(dst), str(src), ("commits", src, commits))

    def _on_commits(self, event: tuple[object, ...]) -> None:
        _, dst, commits = event
        node = self.nodes.get(str(dst))
        if node is None or not isinstance(commits, list):
            return
        for commit in commits:
            if isinstance(commit, Commit) and node.core is not None:
                node.feed(CommitLearned(commit))

    def _on_crash(self, event: tuple[object, ...]) -> None:
        node = self.nodes[str(event[1])]
        if node.core is None:
            return
        if event[2]:
            node.torn = True
        else:
            node.crash()

    def _on_restart(self, event: tuple[object, ...]) -> None:
        node = self.nodes[str(event[1])]
        if node.torn:  # it sent nothing since the torn crash was due: crash it now
            node.crash()
        if node.core is None:
            node.boot()

    def _on_heal(self, event: tuple[object, ...]) -> None:
        for node in self.nodes.values():
            if node.torn:
                node.crash()
            if node.core is None:
                node.boot()

    def _finish(self) -> None:
        self.result.virtual_ms = self.now
        self.result.heights = min((len(n.chain) for n in self.nodes.values()), default=0)
        lagging = {i: len(n.chain) for i, n in self.nodes.items() if not n.done}
        if lagging:
            self.fail(
                "termination",
                f"after healing at {self.plan.heal_at_ms}ms, by {self.deadline_ms()}ms "
                f"honest nodes still lack heights: decided {lagging} of {self.config.heights}",
            )


def run_seed(config: SimConfig, seed: int) -> RunResult:
    return Simulation(config, seed).run()


class Adversary:
    """A byzantine validator: holds a real key, follows the honest nodes' messages to
    know which (height, round) is live, and signs whatever its strategy says."""

    def __init__(self, sim: Simulation, member_id: str, key: SigningKey, strategy: str) -> None:
        self.sim = sim
        self.id = member_id
        self.key = key
        self.strategy = strategy
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
        if (height, round_) in self._acted or height > self.sim.config.heights:
            return
        self._acted.add((height, round_))
        strategy = self.strategy
        if strategy == "silent":
            return
        proposer = self.sim.validators.proposer(height, round_) == self.id
        if strategy == "phantom":
            ghost = hashlib.sha256(f"ghost/{self.sim.rng.random()}".encode()).digest()
            if proposer:
                self._propose(height, round_, ghost, self.sim.nodes)
            self._vote_both(height, round_, ghost, self.sim.nodes)
        elif strategy == "conflicting":
            if proposer:
                block = self.sim.new_block(self.id, height, round_)
                self._propose(height, round_, block, self.sim.nodes)
            for dst in self.sim.nodes:
                choice = self.sim.rng.choice(
                    (None, bytes(32), self.sim.new_block(dst, height, round_, "x"))
                )
                self._vote_both(height, round_, choice, (dst,))
        elif self.sim.validators.proposer(height, round_) in self.sim.adversaries:
            # The coalition's proposer equivocates; every member backs each half's value.
            leader = self.sim.validators.proposer(height, round_)
            for tag, side in zip("ab", self._halves(height, round_), strict=True):
                block = self.sim.new_block(leader, height, round_, tag)
                if proposer:
                    self._propose(height, round_, block, side)
                self._vote_both(height, round_, block, side)

    def _halves(self, height: int, round_: int) -> tuple[frozenset[str], frozenset[str]]:
        if self.strategy == "split":
            return self.sim.sides
        found = self.sim.halves.get((height, round_))
        if found is None:
            side = frozenset(i for i in self.sim.nodes if self.sim.rng.random() < 0.5)
            found = self.sim.halves[(height, round_)] = (side, frozenset(self.sim.nodes) - side)
        return found

    def _follow(self, height: int, round_: int, block: bytes) -> None:
        """With an honest proposer there is nothing to split: vote with it."""
        if (height, round_) in self._followed or height > self.sim.config.heights:
            return
        if self.sim.validators.proposer(height, round_) == self.id:
            return
        self._followed.add((height, round_))
        self._vote_both(height, round_, block, self.sim.nodes)

    def _propose(self, height: int, round_: int, block: bytes, to: Iterable[str]) -> None:
        message = sign_proposal(self.key, CHAIN_ID, self.id, Proposal(height, round_, block, -1))
        # Sorted: set order varies with PYTHONHASHSEED, and each send draws from the rng.
        for dst in sorted(to):
            self.sim.send_to(self.id, dst, ("msg", dst, message))

    def _vote_both(self, height: int, round_: int, block: bytes | None, to: Iterable[str]) -> None:
        for type_ in (PREVOTE, PRECOMMIT):
            message = sign_vote(self.key, CHAIN_ID, self.id, Vote(type_, height, round_, block))
            for dst in sorted(to):
                self.sim.send_to(self.id, dst, ("msg", dst, message))


# ---- command line (scripts/simulate.py) ----------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulate.py", description="Run the consensus cores in a simulated network."
    )
    parser.add_argument("--validators", type=int, default=4, metavar="N")
    parser.add_argument("--byzantine", type=int, default=0, metavar="B")
    parser.add_argument("--seeds", type=int, default=100, metavar="K")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="replay one run")
    parser.add_argument("--heights", type=int, default=20, metavar="H")
    parser.add_argument(
        "--faults", default=",".join(ALL_FAULTS), help=f"comma list from {','.join(ALL_FAULTS)}"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per seed")
    return parser


def _replay(args: argparse.Namespace, seed: int) -> str:
    return (
        f"python scripts/simulate.py --validators {args.validators} --byzantine "
        f"{args.byzantine} --heights {args.heights} --faults {args.faults or 'none'} --seed {seed}"
    )


def _report(args: argparse.Namespace, result: RunResult, verbose: bool) -> None:
    if verbose:
        print(f"seed {result.seed}: {result.plan.describe()}")
    if result.passed:
        if verbose:
            print(f"  ok: {result.heights} heights in {result.virtual_ms} ms virtual")
        return
    print(f"FAILED seed {result.seed}: check {result.failure}: {result.detail}")
    print(f"  plan: {result.plan.describe()}")
    print(f"  replay: {_replay(args, result.seed)}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    faults = frozenset(f for f in args.faults.split(",") if f and f != "none")
    try:
        config = SimConfig(args.validators, args.byzantine, args.heights, faults)
        if args.seeds < 1:
            raise SimulationError("--seeds must be at least 1")
    except SimulationError as exc:
        print(f"simulate.py: error: {exc}", file=sys.stderr)
        return 2
    seeds = [args.seed] if args.seed is not None else list(range(args.seeds))
    passed = failed = heights = messages = 0
    started = time.perf_counter()
    for seed in seeds:
        result = run_seed(config, seed)
        _report(args, result, args.verbose or args.seed is not None)
        heights += result.heights
        messages += result.messages
        passed, failed = passed + result.passed, failed + (not result.passed)
        if len(seeds) >= 1000 and (passed + failed) % 1000 == 0:
            print(f"... {passed + failed} seeds: {passed} passed, {failed} failed", flush=True)
    elapsed = time.perf_counter() - started
    print(
        f"n={config.validators} B={config.byzantine}: {heights} heights in {elapsed:.1f} s "
        f"({heights / elapsed:.1f} heights/s), {messages / max(heights, 1):.0f} messages/height"
    )
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
