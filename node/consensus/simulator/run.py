"""One run: the honest nodes' hosts (``SimNode``) around the real cores, the adversaries,
the network and the checks, stepped through the scheduled events until every honest node
has decided every height or the deadline passes.

Like the daemon, a host starts a height held when its pool is empty (``StartHeight.hold``)
and wakes it when an entry arrives or its heartbeat is due; the run's workload sends
entries to random subsets of the honest nodes at random times, so some heights start on
an entry at one node only, some on the heartbeat, some on a peer's message."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

from ledger.block import Commit
from ledger.genesis import ValidatorSet
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
    TimeoutFired,
    TimeoutRequest,
    ValidityRequest,
    VoteReceived,
    Wake,
)
from node.consensus.messages import Message, SignedProposal, VerifyCache
from node.consensus.signing_state import SigningState
from node.consensus.simulator.checks import Checks
from node.consensus.simulator.events import (
    CommitsSent,
    Crash,
    Delivery,
    EntryArrives,
    Event,
    GossipDue,
    Heal,
    HeartbeatDue,
    Restart,
    Schedule,
    StatusSent,
    TimerDue,
)
from node.consensus.simulator.faults import ALL_FAULTS, Adversary, Coalition, FaultPlan, draw_plan
from node.consensus.simulator.network import Network
from node.consensus.simulator.world import CHAIN_ID, Blocks, member_ids, member_key

__all__ = ["RunResult", "SimConfig", "SimNode", "Simulation", "SimulationError", "run_seed"]

GOSSIP_MS = 1000
# The simulated empty_block_interval_ms: an idle height's hold, timed from its start.
HEARTBEAT_MS = 5000
CATCH_UP_BATCH = 16


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
    # Every honest node's chain (rounds, blocks, commits), hashed: equal digests, equal runs.
    digest: str = ""

    @property
    def passed(self) -> bool:
        return self.failure is None


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
        self.pending = False  # entries in the pool (lost with the process)

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
        self.feed(self.next_height(len(self.chain) + 1, last))
        self.sim.schedule.after(GOSSIP_MS, GossipDue(self.id, self.epoch))

    def next_height(self, height: int, last: Commit | None) -> StartHeight:
        """Held while the pool is empty, until an entry or the heartbeat wakes it."""
        hold = not self.pending
        if hold:
            self.sim.schedule.after(HEARTBEAT_MS, HeartbeatDue(self.id, self.epoch, height))
        return StartHeight(height, self.sim.validators, last, hold)

    def wake(self, height: int) -> None:
        if self.core is not None and self.core.waiting and self.core.height == height:
            self.feed(Wake(height))

    def entry_arrives(self) -> None:
        if self.core is None:
            return
        self.pending = True
        self.wake(self.core.height)

    def crash(self) -> None:
        self.torn = False
        self.pending = False
        self.core = None
        self.epoch += 1  # timers armed before the crash die with the process

    def feed(self, event: Input) -> None:
        if self.core is not None:
            try:
                drive(self.core, self, event)
            except _Killed:
                self.sim.result.torn_kills += 1
                self.crash()

    def announce(self) -> None:
        self.sim.network.announce(self.id, len(self.chain) + 1)

    # ---- Host ------------------------------------------------------------------------

    def persist(self, record: bytes) -> None:
        self.persisted = record

    def send(self, messages: Iterable[Message]) -> None:
        if self.torn:
            raise _Killed  # the record is durable; these messages never leave
        for message in messages:
            self.sim.checks.check_no_double_sign(self.id, message)
            self.sim.network.broadcast(self.id, message)

    def apply(self, decision: Decision) -> StartHeight | None:
        if decision.height != len(self.chain) + 1:
            return None
        self.chain.append(decision)
        self.sim.checks.decided(self.id, decision)
        self.pending = False  # the block took what the pool held
        if self.done:
            return None
        return self.next_height(decision.height + 1, decision.commit)

    def arm(self, request: TimeoutRequest) -> None:
        self.sim.schedule.after(request.after_ms, TimerDue(self.id, self.epoch, request.timeout))

    def check_validity(self, request: ValidityRequest) -> bool | None:
        valid = self.sim.blocks.exists(request.block)
        if valid:
            self.sim.checks.judged_valid(request.block)
        return valid

    def value_to_propose(self, request: ProposeRequest) -> bytes | None:
        block = self.sim.blocks.new(self.id, request.height, request.round)
        self.sim.checks.judged_valid(block)  # an honest host builds only valid blocks
        return block

    def need_blocks(self, up_to: int) -> None:
        self.announce()

    def report(self, output: Output) -> None:
        for evidence in output.evidence:
            self.sim.result.evidence += 1
            self.sim.checks.check_no_evidence_against_honest(self.id, evidence.validator)

    # ---- gossip ----------------------------------------------------------------------

    def gossip(self) -> None:
        """Without progress since the last tick, say where we are and send again what we
        signed (Tendermint's gossip does this continuously)."""
        core = self.core
        if core is None or self.done:
            return
        position = (core.height, core.round, core.phase)
        if position == self.last_position:
            self.announce()
            for message in core.gossip_messages():
                self.sim.network.broadcast(self.id, message)
        self.last_position = position
        self.sim.schedule.after(GOSSIP_MS, GossipDue(self.id, self.epoch))


class Simulation:
    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        # One rng, drawn from in a fixed order (plan, coalition, then the run), is what
        # makes a seed replay exactly.
        self.rng = random.Random(seed)
        ids = member_ids(config.validators)
        self.plan = draw_plan(self.rng, ids, config.byzantine, config.faults)
        self.validators = ValidatorSet.of((i, member_key(i).public_key) for i in ids)
        self.cache = VerifyCache()
        self.blocks = Blocks(seed)
        self.schedule = Schedule()
        self.network = Network(self.schedule, self.rng, self.plan, self.validators.ids)
        self.result = RunResult(seed, self.plan)
        self.nodes = {i: SimNode(self, i) for i in ids if i not in self.plan.byzantine}
        self.checks = Checks(self.validators, frozenset(self.nodes), self.fail)
        coalition = Coalition(self.plan.byzantine, self.nodes, self.rng)
        self.adversaries = {
            i: Adversary(
                i,
                member_key(i),
                self.plan.strategy,
                validators=self.validators,
                heights=config.heights,
                coalition=coalition,
                blocks=self.blocks,
                send=self.network.send,
            )
            for i in self.plan.byzantine
        }

    def fail(self, check: str, detail: str) -> None:
        if self.result.failure is None:
            self.result.failure, self.result.detail = check, detail

    def deadline_ms(self) -> int:
        # Every height may wait out a heartbeat on top of its consensus time.
        return self.plan.heal_at_ms + 60_000 + (15_000 + HEARTBEAT_MS) * self.config.heights

    def _schedule_workload(self) -> None:
        """One entry per height on average, at random times over the heartbeats the run
        would take if idle, each reaching a random subset of the honest nodes."""
        honest = sorted(self.nodes)
        if not honest:
            return
        span = HEARTBEAT_MS * self.config.heights
        for _ in range(self.config.heights):
            at = self.rng.randrange(span)
            reached = [m for m in honest if self.rng.random() < 0.5] or [self.rng.choice(honest)]
            for member in reached:
                self.schedule.at(at + self.rng.randrange(50), EntryArrives(member))

    def run(self) -> RunResult:
        for at, back, member, torn in self.plan.crashes:
            self.schedule.at(at, Crash(member, torn))
            self.schedule.at(back, Restart(member))
        self.schedule.at(self.plan.heal_at_ms, Heal())
        self._schedule_workload()
        for node in self.nodes.values():
            node.boot()
        for adversary in self.adversaries.values():
            adversary.act(1, 0)
        deadline = self.deadline_ms()
        while not all(node.done for node in self.nodes.values()):
            event = self.schedule.next_until(deadline)
            if event is None:
                break
            self._handle(event)
        self._finish()
        return self.result

    def _handle(self, event: Event) -> None:
        # One arm per event type; mypy's assert_never fails the build if one is missing.
        match event:
            case Delivery():
                self._deliver(event)
            case TimerDue():
                node = self.nodes[event.member]
                if node.epoch == event.epoch:
                    node.feed(TimeoutFired(event.timeout))
            case GossipDue():
                node = self.nodes[event.member]
                if node.epoch == event.epoch:
                    node.gossip()
            case HeartbeatDue():
                node = self.nodes[event.member]
                if node.epoch == event.epoch:
                    node.wake(event.height)
            case EntryArrives():
                self.nodes[event.member].entry_arrives()
            case StatusSent():
                self._answer_status(event)
            case CommitsSent():
                self._learn_commits(event)
            case Crash():
                self._crash(event)
            case Restart():
                self._restart(event)
            case Heal():
                self._heal()
            case _:
                assert_never(event)

    def _deliver(self, event: Delivery) -> None:
        adversary = self.adversaries.get(event.dst)
        if adversary is not None:
            adversary.observe(event.message)
            return
        node, message = self.nodes[event.dst], event.message
        if isinstance(message, SignedProposal):
            node.feed(ProposalReceived(message))
        else:
            node.feed(VoteReceived(message))

    def _answer_status(self, event: StatusSent) -> None:
        """A peer says which height it is at; if we have decided it, send the commits."""
        node = self.nodes.get(event.dst)
        if node is None or node.core is None:
            return
        start = event.height - 1
        commits = tuple(d.commit for d in node.chain[start : start + CATCH_UP_BATCH])
        if commits:
            self.network.send(event.dst, CommitsSent(event.src, commits))

    def _learn_commits(self, event: CommitsSent) -> None:
        node = self.nodes.get(event.dst)
        if node is None:
            return
        for commit in event.commits:
            if node.core is not None:  # a torn crash can strike between two commits
                node.feed(CommitLearned(commit))

    def _crash(self, event: Crash) -> None:
        node = self.nodes[event.member]
        if node.core is None:
            return
        if event.torn:
            node.torn = True
        else:
            node.crash()

    def _restart(self, event: Restart) -> None:
        node = self.nodes[event.member]
        if node.torn:  # it sent nothing since the torn crash was due: crash it now
            node.crash()
        if node.core is None:
            node.boot()

    def _heal(self) -> None:
        for node in self.nodes.values():
            if node.torn:
                node.crash()
            if node.core is None:
                node.boot()

    def _finish(self) -> None:
        result = self.result
        result.virtual_ms = self.schedule.now
        result.messages = self.network.hops
        result.heights = min((len(n.chain) for n in self.nodes.values()), default=0)
        result.digest = self._digest()
        lagging = {i: len(n.chain) for i, n in self.nodes.items() if not n.done}
        self.checks.check_termination(
            lagging, self.plan.heal_at_ms, self.deadline_ms(), self.config.heights
        )

    def _digest(self) -> str:
        digest = hashlib.sha256()
        for member, node in sorted(self.nodes.items()):
            digest.update(member.encode())
            for d in node.chain:
                digest.update(d.height.to_bytes(8, "big") + d.round.to_bytes(8, "big"))
                digest.update(d.block + d.commit.encode())
        return digest.hexdigest()[:16]


def run_seed(config: SimConfig, seed: int) -> RunResult:
    return Simulation(config, seed).run()
