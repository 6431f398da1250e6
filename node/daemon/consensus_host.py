"""The consensus host: one asyncio loop feeding the sans-I/O core (node.consensus).

Every input — a peer's proposal or vote, a fired timer, a verdict, a block to propose —
goes through ``feed``, which runs ``node.consensus.drive``: persist, send, apply, arm.
Because the loop is single-threaded and ``drive`` is synchronous, the core never sees
two inputs at once.

The host subscribes to the node's ``Chain``: whichever path stored a block (a decision
applied here, or sync), the core starts the next height before anything else runs, so
it is never asked to act on a height the chain has passed. It is given only what it
uses (node.daemon.parts): the core, the chain, peer links to send on, timers, a "want
blocks" callback for the syncer and where to report faults.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ledger.block import Block, Commit
from ledger.chain import StagedBlock
from ledger.errors import LedgerError
from node.consensus import (
    CommitLearned,
    ConsensusCore,
    Decision,
    Input,
    InputError,
    Message,
    MessageFormatError,
    Output,
    ProposalReceived,
    ProposeRequest,
    SignedProposal,
    SignedVote,
    StartHeight,
    Timeout,
    TimeoutFired,
    TimeoutRequest,
    ValidityRequest,
    ValidityVerdict,
    ValueToPropose,
    VoteReceived,
    Wake,
    decode_message,
    drive,
)
from node.daemon.block_maker import InvalidBlock
from node.daemon.chain import Chain, Committed
from node.daemon.clock import now_ms
from node.daemon.gossip_payloads import (
    Limits,
    ProposalOutline,
    WireError,
    encode_proposal_package,
)
from node.daemon.metrics import NodeMetrics

if TYPE_CHECKING:
    from ledger.genesis import Genesis
    from node.daemon.parts import Faults, PeerLinks, TimerHandle, Timers

__all__ = ["SIGNING_STATE_KEY", "ConsensusHost"]

log = logging.getLogger("customs.consensus")

SIGNING_STATE_KEY = b"x:consensus/signing"
# Blocks kept per node while their height is open: a few rounds' proposals; a byzantine
# proposer flooding blocks only evicts its own.
MAX_CACHED_BLOCKS = 32
# A proposal that cannot be checked yet (we are behind) is retried at most this often.
GOSSIP_INTERVAL_S = 1.0


class ConsensusHost:
    """Implements ``node.consensus.Host`` for the daemon."""

    def __init__(
        self,
        core: ConsensusCore,
        chain: Chain,
        *,
        genesis: Genesis,
        links: PeerLinks,
        timers: Timers,
        want_blocks: Callable[[int], None],
        decided_elsewhere: Callable[[int], bool],
        faults: Faults,
        metrics: NodeMetrics,
        limits: Limits,
    ) -> None:
        self.core = core
        self.chain = chain
        self.genesis = genesis
        self.links = links
        self.clock = timers
        self.want_blocks = want_blocks
        # Whether a peer already stores a block at a height (Syncer.decided_elsewhere).
        self.decided_elsewhere = decided_elsewhere
        self.faults = faults
        self.metrics = metrics
        self.limits = limits
        self.blocks: OrderedDict[bytes, tuple[Block, Commit | None]] = OrderedDict()
        self.staged: dict[bytes, StagedBlock] = {}
        self.awaiting_block: set[bytes] = set()
        self.timers: dict[Timeout, TimerHandle] = {}
        self.propose_timer: TimerHandle | None = None
        self.heartbeat_timer: TimerHandle | None = None
        # The last height that started held (idle): its proposer does not wait out
        # block_interval_ms, which batches entries only while they keep arriving.
        self.idle_height = 0
        self.last_progress = time.monotonic()
        # True while ``apply`` commits a decision: the driver then starts the next height
        # from apply's answer, so the commit notice must not start it a second time.
        self._applying = False
        # Told the (height, round) after every step (node.daemon.consensus_watch.RoundWatch).
        self.on_round: Callable[[int, int], None] | None = None
        chain.subscribe(self.on_chain_commit)

    # ---- feeding --------------------------------------------------------------------

    def feed(self, event: Input) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("at %s <- %s", self._where(), _describe(event))
        try:
            drive(self.core, self, event)
        except InputError as exc:
            log.warning("consensus input refused: %s", exc, extra=self._fields())
        except Exception as failure:
            # Our own invariant broke (e.g. a decided block we cannot apply): stop loudly.
            self.faults.fail(failure)
            raise

    def shutdown(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        if self.propose_timer is not None:
            self.propose_timer.cancel()
        if self.heartbeat_timer is not None:
            self.heartbeat_timer.cancel()

    def start(self) -> None:
        chain = self.chain
        self.feed(self._next_height(chain.height + 1, chain.head_commit()))

    def entries_pending(self) -> None:
        """The pool took entries (API or relay): a held height starts now."""
        if self.core.waiting and len(self.chain.mempool):
            self.feed(Wake(self.core.height))

    def on_chain_commit(self, done: Committed) -> None:
        """A block was stored (Chain.subscribe): drop what its height held, move on."""
        height = done.block.header.height
        self._new_height_cleanup()
        if self._applying or self.core.height > height:
            return
        self.feed(self._next_height(height + 1, done.commit))

    # ---- Host protocol ---------------------------------------------------------------

    def persist(self, record: bytes) -> None:
        self.chain.write_extra({SIGNING_STATE_KEY: record})

    def send(self, messages: Sequence[Message]) -> None:
        if self._held(messages):
            return
        for message in messages:
            self._broadcast(message)

    def _held(self, messages: Sequence[Message]) -> bool:
        """Keep our signatures in while a peer already holds a block at our height.

        Signing at a decided height helps nobody, and a validator whose store was
        rebuilt from its peers has lost its signing record: climbing from height 1 it
        would sign every old height again, each time for another block — equivocation
        its peers receive (docs/reliability.md, issue 20's campaign).
        """
        if not messages or not self.decided_elsewhere(self.core.height):
            return False
        self.metrics.dropped.labels("held_behind").inc(len(messages))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("held, a peer is past height %d: %s", self.core.height,
                      [_describe(m) for m in messages])  # fmt: skip
        return True

    def apply(self, decision: Decision) -> StartHeight | None:
        chain = self.chain
        entry = self.blocks.get(decision.block)
        if entry is None:
            # Decided on precommits without the proposal: fetch the block from peers.
            fields = {"height": decision.height, "round": decision.round}
            log.info("decided height %d without its block; fetching", decision.height, extra=fields)
            self.want_blocks(decision.height)
            return None
        block, last_commit = entry
        if chain.holds(block):
            # Not reachable while every commit's notice moves the core on; should it be,
            # the block is ours already (holds raised if not) and the core follows the head.
            return self._next_height(chain.height + 1, chain.head_commit())
        signing = self._signing()
        extra = {SIGNING_STATE_KEY: signing} if signing is not None else None
        staged = self.staged.get(decision.block)
        self._applying = True
        try:
            if staged is None:
                staged = chain.check(block, last_commit, now_ms=None)
            chain.commit(block, decision.commit, staged, last_commit, extra)
        except (InvalidBlock, LedgerError) as exc:
            # A quorum decided a block we cannot apply: our state diverged. Stop loudly.
            raise RuntimeError(f"cannot apply decided block {decision.height}: {exc}") from exc
        finally:
            self._applying = False
        return self._next_height(decision.height + 1, decision.commit)

    def arm(self, request: TimeoutRequest) -> None:
        old = self.timers.pop(request.timeout, None)
        if old is not None:
            old.cancel()
        timeout = request.timeout
        self.timers[timeout] = self.clock.call_later(
            request.after_ms / 1000, lambda: self._fire(timeout)
        )

    def check_validity(self, request: ValidityRequest) -> bool | None:
        entry = self.blocks.get(request.block)
        if entry is None:
            self.awaiting_block.add(request.block)
            return None
        return self._judge(request.block, *entry)

    def value_to_propose(self, request: ProposeRequest) -> bytes | None:
        chain = self.chain
        if request.height != chain.height + 1:
            # Asked for a height the chain has passed: the core has moved on or is about
            # to, and nothing built on the old head could ever be decided.
            log.debug("not proposing at height %d: chain is at %d", request.height, chain.height)
            return None
        head = chain.head_header()
        interval = self.genesis.params.block_interval_ms
        due = (head.time + interval) if head else self.genesis.genesis_time
        wait_ms = 0 if request.height == self.idle_height else due - now_ms()
        if wait_ms > 0:
            self._schedule_propose(request, wait_ms)
            return None
        last_commit = chain.head_commit()
        proposed = chain.propose(
            request.height,
            time_ms=now_ms(),
            proposer=self.core.member_id,
            last_commit=last_commit,
        )
        for rejected in proposed.result.rejected:
            if rejected.entry_id is not None:  # the chain dropped it from the pool
                self.metrics.entries_rejected.labels(rejected.code).inc()
        block_hash = proposed.block.header.hash()
        self._cache(block_hash, proposed.block, last_commit)
        self.staged[block_hash] = proposed.staged
        return block_hash

    def need_blocks(self, up_to: int) -> None:
        self.want_blocks(up_to)

    def report(self, output: Output) -> None:
        metrics = self.metrics
        for reason, count in output.dropped.items():
            metrics.dropped.labels(reason).inc(count)
        for evidence in output.evidence:
            log.warning("equivocation evidence: %s", evidence, extra=self._fields())
        metrics.round.set(self.core.round)
        if self.on_round is not None:
            self.on_round(self.core.height, self.core.round)
        if log.isEnabledFor(logging.DEBUG) and (output.send or output.decided or output.dropped):
            log.debug(
                "at %s -> send %s decided %s dropped %s",
                self._where(),
                [_describe(m) for m in output.send],
                [d.height for d in output.decided],
                dict(output.dropped),
            )

    # ---- peer input -----------------------------------------------------------------

    def on_proposal(self, peer: str, payload: bytes) -> None:
        limits = self.limits
        try:
            outline = ProposalOutline.decode(payload, limits)
            message = decode_message(outline.proposal)
        except (WireError, MessageFormatError) as exc:
            self.faults.peer_fault(peer, "proposal", exc)
            return
        if not isinstance(message, SignedProposal):
            self.faults.peer_fault(peer, "proposal", WireError("not a signed proposal"))
            return
        if outline.block_hash != message.proposal.block:
            self.faults.peer_fault(peer, "proposal", WireError("block does not match proposal"))
            return
        # Judge the signed proposal before decoding its block (every entry in it): a
        # block for a past height, out of turn or under a forged signature is dropped
        # for a hash and at most one signature check, and never displaces a cached one.
        reason = self.core.proposal_unusable(message)
        if reason is not None:
            self.metrics.dropped.labels(reason).inc()
            return
        try:
            package = outline.package(limits, self._held_block, self.chain.pending_entry)
        except WireError as bad_block:
            self.faults.peer_fault(peer, "proposal", bad_block)
            return
        block_hash = package.block.header.hash()
        if block_hash != message.proposal.block:
            self.faults.peer_fault(peer, "proposal", WireError("block does not match proposal"))
            return
        self._cache(block_hash, package.block, package.last_commit)
        self.feed(ProposalReceived(message))
        if block_hash in self.awaiting_block:
            self.awaiting_block.discard(block_hash)
            verdict = self._judge(block_hash, package.block, package.last_commit)
            self.feed(ValidityVerdict(message.height, block_hash, verdict))

    def on_vote(self, peer: str, payload: bytes) -> None:
        try:
            message = decode_message(payload)
        except MessageFormatError as exc:
            self.faults.peer_fault(peer, "vote", exc)
            return
        if not isinstance(message, SignedVote):
            self.faults.peer_fault(peer, "vote", WireError("not a signed vote"))
            return
        self.feed(VoteReceived(message))

    def on_commit(self, commit: Commit) -> None:
        self.feed(CommitLearned(commit))

    def regossip(self) -> None:
        """Send our own and the round's messages again when progress stalls.

        Point to point, not relayed: every peer already saw a relayed copy's id, so its
        seen-cache would drop the resend unread — yet a peer that was behind then (and
        dropped the message as a future height) needs exactly that resend to decide.
        """
        if time.monotonic() - self.last_progress < GOSSIP_INTERVAL_S:
            return
        links = self.links
        messages = self.core.gossip_messages()
        if self._held(messages):
            self.last_progress = time.monotonic()
            return
        for message in messages:
            framed = self._payload(message)
            if framed is not None:
                for peer in links.connected():
                    links.send(peer, *framed)
        self.last_progress = time.monotonic()

    # ---- internals ------------------------------------------------------------------

    def _fields(self) -> dict[str, object]:
        """The structured fields of a consensus log line: where the core is."""
        return {"height": self.core.height, "round": self.core.round}

    def _where(self) -> str:
        core = self.core
        state = "/decided" if core.decided else "/held" if core.waiting else ""
        return f"h{core.height}/r{core.round}/p{core.phase}{state}"

    def _broadcast(self, message: Message) -> None:
        framed = self._payload(message)
        if framed is not None:
            self.links.broadcast(*framed)

    def _payload(self, message: Message) -> tuple[str, bytes] | None:
        """(gossip kind, payload) of a consensus message; a proposal carries its block."""
        if not isinstance(message, SignedProposal):
            return "vote", message.encode()
        cached = self.blocks.get(message.proposal.block)
        if cached is None:
            log.warning(
                "no block cached for the proposal at %d",
                message.height,
                extra={"height": message.height, "round": message.proposal.round},
            )
            return None
        block, last_commit = cached
        return "proposal", encode_proposal_package(message.encode(), block, last_commit)

    def _fire(self, timeout: Timeout) -> None:
        self.timers.pop(timeout, None)
        self.metrics.timeouts.labels(timeout.kind).inc()
        self.feed(TimeoutFired(timeout))

    def _next_height(self, height: int, last_commit: Commit | None) -> StartHeight:
        """The next height to start, held while the chain is idle: nothing pending and
        the heartbeat (genesis ``empty_block_interval_ms`` after the head's time) not yet
        due. Every validator computes the same due time from the same head."""
        head = self.chain.head_header()
        hold = False
        if head is not None and not len(self.chain.mempool):
            wait_ms = head.time + self.genesis.params.empty_block_interval_ms - now_ms()
            if wait_ms > 0:
                hold = True
                self.idle_height = height
                self._arm_heartbeat(height, wait_ms)
        return StartHeight(height, self.genesis.validators, last_commit, hold)

    def _arm_heartbeat(self, height: int, wait_ms: int) -> None:
        if self.heartbeat_timer is not None:
            self.heartbeat_timer.cancel()

        def due() -> None:
            self.heartbeat_timer = None
            if self.core.height == height and self.core.waiting:
                log.debug("heartbeat due at height %d", height, extra={"height": height})
                self.feed(Wake(height))

        self.heartbeat_timer = self.clock.call_later(wait_ms / 1000, due)

    def _schedule_propose(self, request: ProposeRequest, wait_ms: int) -> None:
        if self.propose_timer is not None:
            self.propose_timer.cancel()

        def retry() -> None:
            self.propose_timer = None
            if (self.core.height, self.core.round) != (request.height, request.round):
                return
            block = self.value_to_propose(request)
            if block is not None:
                self.feed(ValueToPropose(request.height, request.round, block))

        self.propose_timer = self.clock.call_later(wait_ms / 1000, retry)

    def _held_block(self, block_hash: bytes) -> Block | None:
        cached = self.blocks.get(block_hash)
        return cached[0] if cached is not None else None

    def _cache(self, block_hash: bytes, block: Block, last_commit: Commit | None) -> None:
        self.blocks[block_hash] = (block, last_commit)
        self.blocks.move_to_end(block_hash)
        excess = len(self.blocks) - MAX_CACHED_BLOCKS
        if excess > 0:
            # Oldest first, but never a block this height may still decide: a byzantine
            # proposer signing block after block for its turns must not push it out.
            kept = self.core.blocks_in_play()
            for evicted in [h for h in self.blocks if h not in kept][:excess]:
                del self.blocks[evicted]
                self.staged.pop(evicted, None)

    def _judge(self, block_hash: bytes, block: Block, last_commit: Commit | None) -> bool:
        if block_hash in self.staged:
            return True
        try:
            staged = self.chain.check(block, last_commit, now_ms=now_ms())
        except (InvalidBlock, LedgerError) as exc:
            log.warning(
                "proposal %s at height %d is invalid: %s",
                block_hash.hex()[:12],
                block.header.height,
                exc,
                extra={**self._fields(), "height": block.header.height},
            )
            return False
        self.staged[block_hash] = staged
        self.chain.admit_proposed(block.entries, now_ms=now_ms())
        return True

    def _signing(self) -> bytes | None:
        state = self.core.signing_state
        return state.encode() if state is not None else None

    def _new_height_cleanup(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        if self.propose_timer is not None:
            self.propose_timer.cancel()
            self.propose_timer = None
        if self.heartbeat_timer is not None:
            self.heartbeat_timer.cancel()
            self.heartbeat_timer = None
        height = self.chain.height
        for block_hash in [h for h, (b, _) in self.blocks.items() if b.header.height <= height]:
            del self.blocks[block_hash]
            self.staged.pop(block_hash, None)
        self.awaiting_block.clear()
        self.last_progress = time.monotonic()


def _describe(item: object) -> str:
    """A one-line summary of a consensus input or message for the debug log."""
    if isinstance(item, SignedProposal):
        p = item.proposal
        return (
            f"proposal {item.sender} h{p.height}/r{p.round} {p.block.hex()[:8]} pol={p.pol_round}"
        )
    if isinstance(item, SignedVote):
        v = item.vote
        block = v.block.hex()[:8] if v.block else "nil"
        return f"{v.type} {item.sender} h{v.height}/r{v.round} {block}"
    if isinstance(item, VoteReceived | ProposalReceived):
        return "recv " + _describe(item.message)
    if isinstance(item, CommitLearned):
        return f"commit h{item.commit.height}/r{item.commit.round}"
    return repr(item)[:120]
