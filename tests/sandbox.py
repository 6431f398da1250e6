"""A one-process ledger over ``MemoryState``: real signatures, the real executor.

For tests, examples and benchmarks: entries are signed with seeded member keys (the
conformance rule: the key of member X is seeded by SHA-256(UTF-8 "X")) and each
``submit`` runs one block through ``execute_block`` and commits what it accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contracts.executor import BlockResult, execute_block
from contracts.state import MemoryState
from ledger.entry import Entry, SignedEntry
from ledger.genesis import Genesis
from tests.factories import GENESIS_TIME, make_member, member_key

__all__ = ["GENESIS_TIME", "Sandbox", "sandbox_genesis"]


def sandbox_genesis(chain_id: str = "sandbox-1") -> Genesis:
    """CN (CN, HK), DE, US with every role; NL customs only; FR-CHAMBER issuer only."""
    return Genesis.build(
        chain_id,
        GENESIS_TIME,
        [
            make_member("CN", ("CN", "HK")),
            make_member("DE", ("DE",)),
            make_member("NL", ("NL",), ("validator", "customs")),
            make_member("US", ("US",)),
            make_member("FR-CHAMBER", ("FR",), ("issuer",)),
        ],
    )


class Sandbox:
    def __init__(self, genesis: Genesis | None = None) -> None:
        self.genesis = genesis or sandbox_genesis()
        self.state = MemoryState()
        self.now = self.genesis.genesis_time

    def sign(
        self, author: str, kind: str, body: Mapping[str, Any], *, ts: int | None = None
    ) -> SignedEntry:
        entry = Entry(self.genesis.chain_id, kind, author, self.now if ts is None else ts, body)
        return entry.sign(member_key(author))

    def run(
        self, entries: Sequence[bytes | SignedEntry], *, block_time: int | None = None
    ) -> BlockResult:
        """Execute one block and commit what it accepted."""
        result = execute_block(
            self.state, self.genesis, self.now if block_time is None else block_time, entries
        )
        self.state.commit((a.entry.id for a in result.accepted), result.writes)
        return result

    def submit(
        self,
        author: str,
        kind: str,
        body: Mapping[str, Any],
        *,
        ts: int | None = None,
        block_time: int | None = None,
    ) -> str:
        """Sign, run as its own block, advance the clock 1 s; return "accept" or the code."""
        result = self.run([self.sign(author, kind, body, ts=ts)], block_time=block_time)
        self.now += 1000
        return "accept" if result.accepted else result.rejected[0].code
