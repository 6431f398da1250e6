"""A real chain in a temporary LevelDB, grown block by block with the node's own block
maker and the contracts' rules, signed by the seeded test keys: what the officials'
client reads, without starting a network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.bundle import build_bundle
from ledger.entry import SignedEntry
from ledger.genesis import Genesis
from ledger.store import Store
from node.daemon.block_maker import BlockMaker
from tests.factories import GENESIS_TIME, make_genesis, make_member, sign_entry
from tests.test_chain import make_commit

__all__ = ["DAY_MS", "LocalChain", "customs_genesis"]

DAY_MS = 86_400_000
CHAIN_ID = "customs-client-1"


def customs_genesis() -> Genesis:
    """Four validating administrations and one member that only records (US)."""
    members = [make_member(m) for m in ("CN", "DE", "NL", "SG")]
    members.append(make_member("US", roles=("issuer", "customs")))
    return make_genesis(chain_id=CHAIN_ID, members=members)


class LocalChain:
    def __init__(self, path: Path, genesis: Genesis) -> None:
        self.genesis = genesis
        self.store = Store.open(path, genesis)
        self.maker = BlockMaker(self.store, genesis)
        self.time = GENESIS_TIME

    def close(self) -> None:
        self.store.close()

    def sign(self, author: str, kind: str, body: Mapping[str, Any]) -> SignedEntry:
        return sign_entry(author, kind, body, ts=self.time, chain_id=self.genesis.chain_id)

    def block(self, *entries: SignedEntry, step_ms: int = 60_000) -> int:
        """Commit one block of ``entries`` (every one must be accepted) ``step_ms`` after
        the last; returns its time."""
        self.time += step_ms
        height = self.store.height + 1
        last = self.store.get_commit(height - 1) if height > 1 else None
        proposed = self.maker.propose(
            height=height,
            time_ms=self.time,
            proposer=self.genesis.validators.proposer(height, 0),
            candidates=list(entries),
            verified=set(),
            last_commit=last,
        )
        assert not proposed.result.rejected, proposed.result.rejected
        commit = make_commit(self.genesis, proposed.block.header)
        self.maker.apply(proposed.block, commit, proposed.staged, last)
        return self.time

    def write(self, author: str, kind: str, body: Mapping[str, Any]) -> int:
        """Sign and commit one entry in a block of its own; returns the block time."""
        self.time += 60_000
        return self.block(self.sign(author, kind, body), step_ms=0)

    def bundle(self, subjects: Sequence[str], path: Path) -> Path:
        path.write_bytes(build_bundle(self.store, list(subjects)))
        return path
