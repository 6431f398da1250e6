"""Block production, validation and application: the node's one path from entries to disk.

The proposer, the validators re-executing a proposal, and a syncing node all run the
same steps: execute the entries with the contracts executor over one store snapshot,
stage the roots (``ledger.chain.stage``), and compare or build the header. Consensus only
ever sees the header hash and this module's verdict.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, replace

from contracts import BlockResult, LedgerState, execute_block
from ledger.block import ZERO_HASH, Block, Commit, Header, verify_commit
from ledger.chain import StagedBlock, build_header, commit_staged, stage
from ledger.entry import SignedEntry
from ledger.errors import CommitError
from ledger.genesis import Genesis
from ledger.store import Store, StoreView
from node.daemon.indexes import index_writes

__all__ = ["BlockMaker", "InvalidBlock", "Proposed"]

# A proposer's clock may run ahead of a validator's by at most this much.
MAX_CLOCK_DRIFT_MS = 10_000


class InvalidBlock(Exception):
    """A proposed or synced block that an honest node must not vote for or store."""


@dataclass(frozen=True)
class Proposed:
    block: Block
    staged: StagedBlock
    result: BlockResult


class BlockMaker:
    def __init__(self, store: Store, genesis: Genesis) -> None:
        self.store = store
        self.genesis = genesis
        self._validators_hash = genesis.validators.hash()

    def propose(
        self,
        *,
        height: int,
        time_ms: int,
        proposer: str,
        candidates: Sequence[SignedEntry],
        verified: Container[bytes],
        last_commit: Commit | None,
    ) -> Proposed:
        """Build the block this node proposes; rejected candidates are left out."""
        limit = self.genesis.params.max_block_entries
        with self.store.snapshot() as view:
            prev = self._prev_header(view, height)
            time_ms = max(time_ms, prev.time + 1 if prev else self.genesis.genesis_time)
            result = execute_block(
                LedgerState(view),
                self.genesis,
                time_ms,
                list(candidates[:limit]),
                verified=verified,
                checked=verified,  # mempool entries passed every stateless rule
            )
            accepted = [(a.entry, a.subjects) for a in result.accepted]
            staged = stage(view, height, accepted, result.writes)
            header = build_header(
                staged,
                chain=self.genesis.chain_id,
                time=time_ms,
                prev=prev.hash() if prev else ZERO_HASH,
                proposer=proposer,
                validators=self._validators_hash,
                last_commit=last_commit.hash() if last_commit else ZERO_HASH,
            )
        block = Block(header, tuple(a.entry for a in result.accepted))
        return Proposed(block, staged, result)

    def check(
        self,
        block: Block,
        last_commit: Commit | None,
        *,
        verified: Container[bytes],
        now_ms: int | None,
    ) -> StagedBlock:
        """Re-execute ``block`` on the current head; raise InvalidBlock on any difference.

        ``now_ms`` bounds the proposer's clock; a syncing node passes None because old
        blocks are judged by their commits, not by the local clock.
        """
        header = block.header
        with self.store.snapshot() as view:
            expected_height = view.height + 1
            if header.height != expected_height:
                raise InvalidBlock(f"height {header.height}, expected {expected_height}")
            prev = self._prev_header(view, header.height)
            self._check_header_frame(header, prev, last_commit, now_ms)
            result = execute_block(
                LedgerState(view),
                self.genesis,
                header.time,
                list(block.entries),
                verified=verified,
                checked=verified,  # mempool entries passed every stateless rule
            )
            if result.rejected:
                first = result.rejected[0]
                raise InvalidBlock(
                    f"entry {first.index} is rejected: {first.code}: {first.message}"
                )
            accepted = [(a.entry, a.subjects) for a in result.accepted]
            staged = stage(view, header.height, accepted, result.writes)
        for name in ("log_size", "log_root", "state_root"):
            if getattr(staged, name) != getattr(header, name):
                raise InvalidBlock(f"header.{name} does not match re-execution")
        return staged

    def apply(
        self,
        block: Block,
        commit: Commit,
        staged: StagedBlock,
        last_commit: Commit | None,
        extra: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Store a decided block with its commit (one synced batch)."""
        height = block.header.height
        if last_commit is not None and height > 1:
            # The next header fixes which quorum of signatures is the canonical commit.
            stored = self.store.get_commit(height - 1)
            if stored is None or stored.hash() != last_commit.hash():
                self.store.replace_commit(height - 1, last_commit)
        # The search indexes follow the records in the same batch (node.daemon.indexes);
        # the store still holds the state before the block, which says what to delete.
        index = index_writes(self.store, staged.writes)
        if extra or index:
            staged = replace(staged, writes={**staged.writes, **index, **(extra or {})})
        commit_staged(self.store, staged, block, commit)

    def _prev_header(self, view: StoreView, height: int) -> Header | None:
        if height == 1:
            return None
        prev = view.get_header(height - 1)
        if prev is None:
            raise InvalidBlock(f"no header at height {height - 1}")
        return prev

    def _check_header_frame(
        self, header: Header, prev: Header | None, last_commit: Commit | None, now_ms: int | None
    ) -> None:
        g = self.genesis
        if header.chain != g.chain_id:
            raise InvalidBlock(f"chain {header.chain!r} is not {g.chain_id!r}")
        if header.validators != self._validators_hash:
            raise InvalidBlock("header.validators is not this network's validator set")
        if g.validators.index_of(header.proposer) is None:
            raise InvalidBlock(f"proposer {header.proposer} is not a validator")
        if header.prev != (prev.hash() if prev else ZERO_HASH):
            raise InvalidBlock("header.prev does not link to the head")
        lower = prev.time + 1 if prev else g.genesis_time
        if header.time < lower:
            raise InvalidBlock(f"block time {header.time} is before {lower}")
        if now_ms is not None and header.time > now_ms + MAX_CLOCK_DRIFT_MS:
            raise InvalidBlock(f"block time {header.time} is ahead of the local clock")
        if prev is None:
            if header.last_commit != ZERO_HASH or last_commit is not None:
                raise InvalidBlock("height 1 carries no last commit")
            return
        if last_commit is None or last_commit.hash() != header.last_commit:
            raise InvalidBlock("header.last_commit does not match the commit sent with it")
        try:
            verify_commit(
                last_commit, g.validators, g.chain_id, height=prev.height, block=prev.hash()
            )
        except CommitError as exc:
            raise InvalidBlock(f"last commit: {exc}") from exc
