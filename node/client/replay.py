"""Recompute records from verified histories with the network's own rules.

The client never takes a status from a node's JSON: it runs the verified entries,
in log order and each at its authenticated block time, through ``contracts.execute_block``
on an empty ``MemoryState``, as every node did when it committed them. A certificate's
kinds (``cert.*``) read and write only that certificate's record, so its own entries
rebuild it exactly; a shipment needs its entries and those of the certificates it cites.

A committed entry that the rules refuse on replay means the network committed something
its rules forbid (or this client runs other rules): a verification failure, not a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from contracts import MemoryState, execute_block
from ledger.bundle import VerifiedEntry
from ledger.genesis import Genesis
from node.client.errors import VerificationFailed

__all__ = ["certificate_entries", "merge", "replay"]

Observer = Callable[[VerifiedEntry, MemoryState], None]


def certificate_entries(entries: Iterable[VerifiedEntry]) -> list[VerifiedEntry]:
    """The entries of a certificate's history that change it (a declaration citing a
    certificate is in its history but only reads it)."""
    return [e for e in entries if e.entry.entry.kind.startswith("cert.")]


def merge(*histories: Iterable[VerifiedEntry]) -> list[VerifiedEntry]:
    """Several subjects' entries as one list in log order, each entry once."""
    by_index = {e.log_index: e for history in histories for e in history}
    return [by_index[i] for i in sorted(by_index)]


def replay(
    genesis: Genesis,
    entries: Sequence[VerifiedEntry],
    *,
    until: int | None = None,
    observe: Observer | None = None,
) -> MemoryState:
    """The state after ``entries`` (in log order) whose block time is not after ``until``;
    ``observe`` sees the state after each entry."""
    state = MemoryState()
    for item in entries:
        if until is not None and item.time > until:
            continue
        _apply(genesis, state, item)
        if observe is not None:
            observe(item, state)
    return state


def _apply(genesis: Genesis, state: MemoryState, item: VerifiedEntry) -> None:
    # One entry per call: the entries of one block that touch other subjects are not
    # here, and none of them reads or writes a record these entries do.
    signed = item.entry
    result = execute_block(state, genesis, item.time, [signed], verified={signed.id})
    if result.rejected:
        rejected = result.rejected[0]
        raise VerificationFailed(
            "replay",
            f"entry {signed.id_hex} was committed at height {item.height}, but the rules "
            f"refuse it: {rejected.code}: {rejected.message}",
        )
    state.commit([signed.id], result.writes)
