"""Deterministic validation rules per entry kind: pure functions over state (DESIGN §9).

Public API:
    subjects_of(entry) -> tuple[str, ...]
    check_entry_stateless(wire, genesis, *, verify_signature=True) -> SignedEntry
    execute_block(state, genesis, block_time, entries, *, verified=frozenset()) -> BlockResult
    certificate(state, cert_id) -> dict | None;  shipment(state, ucr) -> dict | None
    LedgerState(store or snapshot) -> the StateReader over a ledger store
    Rejection(code, message)
"""

from contracts.errors import CODES, Rejection
from contracts.executor import (
    AcceptedEntry,
    BlockResult,
    RejectedEntry,
    check_entry_stateless,
    execute_block,
    subjects_of,
)
from contracts.state import (
    PREFIX,
    LedgerState,
    MemoryState,
    StateReader,
    certificate,
    shipment,
)

__all__ = [
    "CODES",
    "PREFIX",
    "AcceptedEntry",
    "BlockResult",
    "LedgerState",
    "MemoryState",
    "RejectedEntry",
    "Rejection",
    "StateReader",
    "certificate",
    "check_entry_stateless",
    "execute_block",
    "shipment",
    "subjects_of",
]
