"""The node's chain and its one writer: every block reaches the store through ``commit``.

Two paths decide blocks — consensus (a quorum precommitted, the proposal at hand) and
sync (a fetched block with a verified commit) — and both call ``Chain.commit``. Right
after a block is written, before ``commit`` returns, every subscriber is told, in the
order it subscribed: the daemon's bookkeeping (mempool, metrics, peers) and last the
consensus host, which moves the core to the next height. Nothing else runs in between
(this is all synchronous), so no part of the node can act on a height the chain has
passed, whichever path advanced it.

Building on the chain checks the height asked for against the head: a proposal for a
height already stored is refused with ``StaleHeight``, which its caller drops; a commit
of a block already stored is a no-op. ``ledger.chain`` computes what a block stages; this
module decides when and by whom it is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

from ledger.block import Block, Commit, Header
from ledger.chain import StagedBlock
from ledger.entry import SignedEntry
from ledger.store import Store
from node.daemon.block_maker import BlockMaker, Proposed

__all__ = ["Chain", "ChainStateError", "Committed", "ConflictingBlock", "StaleHeight"]


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
    """What subscribers learn of one written block."""

    block: Block
    commit: Commit
    seconds: float  # time spent writing it (metrics)


Subscriber = Callable[[Committed], None]


class Chain:
    """Store, block maker and the subscribers to commits: the chain's only writer."""

    def __init__(self, store: Store, maker: BlockMaker) -> None:
        self.store = store
        self._maker = maker
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` after every commit, after those that subscribed before it.

        A subscriber may commit again (consensus deciding the next height from votes it
        had buffered): the ones after it then see the later block first, so the
        consensus host subscribes last.
        """
        self._subscribers.append(subscriber)

    @property
    def height(self) -> int:
        return self.store.height

    def head_header(self) -> Header | None:
        return self.store.head_header()

    def head_commit(self) -> Commit | None:
        height = self.store.height
        return self.store.get_commit(height) if height else None

    def propose(
        self,
        height: int,
        *,
        time_ms: int,
        proposer: str,
        candidates: Sequence[SignedEntry],
        verified: Container[bytes],
        last_commit: Commit | None,
    ) -> Proposed:
        """The block this node proposes at ``height``; StaleHeight unless it is next."""
        self._expect_next(height)
        return self._maker.propose(
            height=height,
            time_ms=time_ms,
            proposer=proposer,
            candidates=candidates,
            verified=verified,
            last_commit=last_commit,
        )

    def check(
        self,
        block: Block,
        last_commit: Commit | None,
        *,
        verified: Container[bytes],
        now_ms: int | None,
    ) -> StagedBlock:
        """Re-execute ``block`` on the head (``BlockMaker.check``); InvalidBlock if wrong."""
        return self._maker.check(block, last_commit, verified=verified, now_ms=now_ms)

    def commit(
        self,
        block: Block,
        commit: Commit,
        staged: StagedBlock,
        last_commit: Commit | None,
        extra: Mapping[bytes, bytes | None] | None = None,
    ) -> bool:
        """Write a decided block and tell the subscribers; False if it was already stored.

        ``staged`` must come from ``check`` or ``propose`` on the current head.
        """
        if self.holds(block):
            return False
        self._expect_next(block.header.height)
        started = time.perf_counter()
        self._maker.apply(block, commit, staged, last_commit, extra)
        done = Committed(block, commit, time.perf_counter() - started)
        for subscriber in self._subscribers:
            subscriber(done)
        return True

    def holds(self, block: Block) -> bool:
        """Whether ``block`` is stored; ConflictingBlock if another is at its height."""
        height = block.header.height
        if height > self.store.height:
            return False
        stored, offered = self.store.get_header(height), block.header.hash()
        if stored is None or stored.hash() != offered:
            raise ConflictingBlock(height, stored.hash() if stored else b"", offered)
        return True

    def _expect_next(self, height: int) -> None:
        if height != self.store.height + 1:
            raise StaleHeight(height, self.store.height)
