"""The node's chain: its one owner and writer, synchronous, with no asyncio inside.

``Chain`` holds the store, the block maker, the mempool and the rejections it
remembers, and everything a node does to them goes through four verbs:

- ``admit`` takes entries (a client's batch whole or not at all, or a peer's relayed
  copies one by one) after the stateless rules and a signature check, into the pool;
- ``propose`` builds this node's block for the next height from the pool;
- ``check`` re-executes a block someone else proposed, or sync fetched, on the head;
- ``commit`` writes a decided block and returns the committed-block record.

Two paths decide blocks — consensus (a quorum precommitted, the proposal at hand) and
sync (a fetched block with a verified commit) — and both call ``commit``. Right after a
block is written, before ``commit`` returns, every subscriber is told, in the order it
subscribed: the daemon's bookkeeping (metrics, peers) and last the consensus host, which
moves the core to the next height. Nothing else runs in between, so no part of the node
can act on a height the chain has passed, whichever path advanced it.

Building on the chain checks the height asked for against the head: a proposal for a
height already stored is refused with ``StaleHeight``, which its caller drops; a commit
of a block already stored is a no-op. The chain reads no clock: callers pass ``now_ms``.
``ledger.chain`` computes what a block stages; this module decides when it is written.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from contracts import Rejection, check_entry_stateless
from ledger.block import Block, Commit, Header
from ledger.chain import StagedBlock
from ledger.entry import SignedEntry, decode_wire
from ledger.errors import EntryError
from ledger.genesis import Genesis
from ledger.store import Store
from node.daemon.block_maker import BlockMaker, Proposed
from node.daemon.gossip_payloads import entry_id_of_wire
from node.daemon.mempool import DuplicateEntry, Mempool, MempoolError, MempoolFull

__all__ = [
    "Chain",
    "ChainStateError",
    "Committed",
    "ConflictingBlock",
    "EntryState",
    "StaleHeight",
]

MAX_REMEMBERED_REJECTIONS = 100_000


class ChainStateError(Exception):
    """The chain is not at the height a caller built on; nothing was written."""


class StaleHeight(ChainStateError):
    """``height`` is not the chain's next one, ``head + 1``: usually the chain has passed
    it while the caller's request was on its way."""

    def __init__(self, height: int, head: int) -> None:
        super().__init__(f"height {height} cannot be built on a chain at height {head}")
        self.height = height
        self.head = head


class ConflictingBlock(ChainStateError):
    """A decided block differs from the one already stored at its height: our state and
    the quorum's diverged, which no caller can repair."""

    def __init__(self, height: int, stored: bytes, offered: bytes) -> None:
        super().__init__(
            f"height {height} holds block {stored.hex()[:16]}, not {offered.hex()[:16]}"
        )
        self.height = height
        self.stored = stored
        self.offered = offered


@dataclass(frozen=True, slots=True)
class Committed:
    """The record of one written block, returned by ``commit`` and given to subscribers."""

    block: Block
    commit: Commit
    seconds: float  # time spent writing it (metrics)


@dataclass(frozen=True, slots=True)
class EntryState:
    """Where an entry not (yet) committed stands: pending, or rejected with a code."""

    status: str  # "pending" or "rejected"
    code: str | None = None
    message: str | None = None


Subscriber = Callable[[Committed], None]
# Told of each entry the chain refuses or drops: (entry id, rule code, where: "relay",
# "block" for the block rules at our proposal, "expired" for the mempool's time window).
RejectionHook = Callable[[bytes, str, str], None]


class Chain:
    """Store, block maker, mempool and rejections: the chain's only owner and writer."""

    def __init__(
        self,
        store: Store,
        genesis: Genesis,
        mempool: Mempool,
        *,
        max_rejections: int = MAX_REMEMBERED_REJECTIONS,
        on_rejected: RejectionHook | None = None,
    ) -> None:
        self.store = store  # read freely (snapshots); written only here
        self.genesis = genesis
        self.mempool = mempool
        self._maker = BlockMaker(store, genesis)
        self._rejected: OrderedDict[bytes, tuple[str, str]] = OrderedDict()
        self._max_rejections = max_rejections
        self._subscribers: list[Subscriber] = []
        self._on_rejected = on_rejected

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` after every commit, after those that subscribed before it.

        A subscriber may commit again (consensus deciding the next height from votes it
        had buffered): the ones after it then see the later block first, so the
        consensus host subscribes last.
        """
        self._subscribers.append(subscriber)

    # ---- reading ----------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.store.height

    def head_header(self) -> Header | None:
        return self.store.head_header()

    def head_commit(self) -> Commit | None:
        height = self.store.height
        return self.store.get_commit(height) if height else None

    def entry_state(self, entry_id: bytes) -> EntryState | None:
        """An uncommitted entry's state; None if the chain never saw it or it committed
        (the store answers for committed ones)."""
        if entry_id in self.mempool:
            return EntryState("pending")
        rejected = self._rejected.get(entry_id)
        if rejected is not None:
            return EntryState("rejected", *rejected)
        return None

    def pending_entry(self, wire: bytes) -> SignedEntry | None:
        """The pooled entry with these exact wire bytes' id, if pooled (a proposal's
        outline names entries the receiver should already hold)."""
        return self.mempool.get(entry_id_of_wire(wire))

    # ---- admit ------------------------------------------------------------------------

    def admit(self, entries: Sequence[SignedEntry], *, now_ms: int) -> list[SignedEntry]:
        """Admit a client's batch whole or not at all; return the entries newly pooled
        (to gossip), in order.

        Every rule pooling could fail on — the stateless rules and the signature,
        committed already, outside the time window, room in the pool — runs for the whole
        batch first, so a refused batch leaves the pool unchanged and the client can
        resubmit all of it (docs/protocol.md). Raises Rejection or MempoolFull.
        """
        pool = self.mempool
        new: dict[bytes, SignedEntry] = {}
        for i, entry in enumerate(entries):
            prefix = f"entry {i}: " if len(entries) > 1 else ""
            try:
                check_entry_stateless(entry, self.genesis)
            except Rejection as exc:
                raise Rejection(exc.code, prefix + exc.message) from exc
            if self.store.has_entry(entry.id):
                raise Rejection("duplicate", f"{prefix}entry {entry.id_hex} is already committed")
            if not pool.is_fresh(entry.entry.ts, now_ms):
                window = pool.entry_window_ms
                raise Rejection(
                    "stale", f"{prefix}ts {entry.entry.ts} is over {window} ms from now"
                )
            if entry.id not in pool:
                new[entry.id] = entry
        if not new:
            return []  # resubmitting pending entries is harmless
        size = sum(len(e.wire_bytes) for e in new.values())
        if len(pool) + len(new) > pool.max_entries:
            raise MempoolFull(
                next(iter(new)), "entries", f"{len(new)} more entries exceed {pool.max_entries}"
            )
        if pool.size_bytes + size > pool.max_bytes:
            raise MempoolFull(
                next(iter(new)), "bytes", f"{size} more bytes exceed {pool.max_bytes}"
            )
        for entry in new.values():
            pool.add(entry, now_ms=now_ms)
            self._rejected.pop(entry.id, None)
        return list(new.values())

    def admit_relayed(self, wires: Iterable[bytes], *, now_ms: int) -> list[str]:
        """Pool a peer's relayed wire entries one by one; return the codes of those refused.

        Relays and proposals deliver an entry more than once: one already pooled (these
        exact bytes) or committed costs a hash, not a decode and a check.
        """
        limit = self.genesis.params.max_entry_bytes
        refused: list[str] = []
        for wire in wires:
            pooled = self.mempool.get(entry_id := entry_id_of_wire(wire))
            if (pooled is not None and pooled.wire_bytes == wire) or self.store.has_entry(entry_id):
                continue
            try:
                entry = check_entry_stateless(decode_wire(wire, limit), self.genesis)
                self.mempool.add(entry, now_ms=now_ms)
            except (EntryError, Rejection, MempoolError) as refusal:
                if not isinstance(refusal, DuplicateEntry):
                    refused.append(refusal.code)
                    if self._on_rejected is not None:
                        self._on_rejected(entry_id, refusal.code, "relay")
        return refused

    def admit_proposed(self, entries: Iterable[SignedEntry], *, now_ms: int) -> None:
        """Pool the entries of a proposal that passed ``check``, unless pending.

        Re-execution ran every rule on them, signatures included: pooled, their gossip
        copies that arrive later cost a hash instead of a second decode and verification,
        and they stay pending should that proposal not be the one committed. A full pool
        refuses quietly: the proposal's fate does not depend on our pool.
        """
        for entry in entries:
            if entry.id not in self.mempool:
                try:
                    self.mempool.add(entry, now_ms=now_ms)
                except MempoolError:
                    continue

    # ---- propose, check, commit -------------------------------------------------------

    def propose(
        self, height: int, *, time_ms: int, proposer: str, last_commit: Commit | None
    ) -> Proposed:
        """This node's block at ``height`` from the pool's oldest entries; StaleHeight
        unless it is the next height.

        Entries that left the time window, and those the block rules refused, leave the
        pool and are remembered as rejected (``entry_state``); ``Proposed.result``
        names the refused ones.
        """
        self._expect_next(height)
        for entry_id in self.mempool.drop_stale(time_ms):
            self._remember(entry_id, "stale", "entry expired in the mempool", "expired")
        candidates = self.mempool.reap(self.genesis.params.max_block_entries)
        proposed = self._maker.propose(
            height=height,
            time_ms=time_ms,
            proposer=proposer,
            candidates=candidates,
            verified=frozenset(e.id for e in candidates),
            last_commit=last_commit,
        )
        for rejected in proposed.result.rejected:
            if rejected.entry_id is not None:
                self._remember(rejected.entry_id, rejected.code, rejected.message, "block")
                self.mempool.remove([rejected.entry_id])
        return proposed

    def check(self, block: Block, last_commit: Commit | None, *, now_ms: int | None) -> StagedBlock:
        """Re-execute ``block`` on the head (``BlockMaker.check``); InvalidBlock if wrong.

        Entries verified on intake (this exact wire entry: id and signature) keep that
        verdict instead of being verified again.
        """
        pool = self.mempool
        verified = frozenset(e.id for e in block.entries if pool.signature_verified(e))
        return self._maker.check(block, last_commit, verified=verified, now_ms=now_ms)

    def commit(
        self,
        block: Block,
        commit: Commit,
        staged: StagedBlock,
        last_commit: Commit | None,
        extra: Mapping[bytes, bytes | None] | None = None,
    ) -> Committed | None:
        """Write a decided block, tell the subscribers and return its record; None if it
        was already stored.

        ``staged`` must come from ``check`` or ``propose`` on the current head; ``extra``
        keys are written in the same atomic batch (the signing state).
        """
        if self.holds(block):
            return None
        self._expect_next(block.header.height)
        started = time.perf_counter()
        self._maker.apply(block, commit, staged, last_commit, extra)
        self.mempool.remove(e.id for e in block.entries)
        done = Committed(block, commit, time.perf_counter() - started)
        for subscriber in self._subscribers:
            subscriber(done)
        return done

    def holds(self, block: Block) -> bool:
        """Whether ``block`` is stored; ConflictingBlock if another is at its height."""
        height = block.header.height
        if height > self.store.height:
            return False
        stored, offered = self.store.get_header(height), block.header.hash()
        if stored is None or stored.hash() != offered:
            raise ConflictingBlock(height, stored.hash() if stored else b"", offered)
        return True

    def write_extra(self, values: Mapping[bytes, bytes | None]) -> None:
        """Write keys beside the chain (the consensus signing state) in one synced batch."""
        self.store.write_extra(values)

    def _expect_next(self, height: int) -> None:
        if height != self.store.height + 1:
            raise StaleHeight(height, self.store.height)

    def _remember(self, entry_id: bytes, code: str, message: str, where: str) -> None:
        if self._on_rejected is not None:
            self._on_rejected(entry_id, code, where)
        self._rejected[entry_id] = (code, message)
        self._rejected.move_to_end(entry_id)
        while len(self._rejected) > self._max_rejections:
            self._rejected.popitem(last=False)
