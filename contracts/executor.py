"""The block executor: applies a block's entries in order, running the common rules
(issue 4, rules 1-13, in that order: the first failing check decides the code).

The node and the conformance runner both call ``execute_block``; the node's HTTP API calls
``check_entry_stateless`` on submission. Nothing here reads a clock, draws randomness or
does I/O: the block time comes in as an argument and the state through ``StateReader``.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from contracts.errors import Rejection
from contracts.kinds import kind_of
from contracts.rules import Context, Kind
from contracts.state import Overlay, StateReader, Writes
from ledger.entry import Entry, SignedEntry, decode_wire
from ledger.errors import EntryError, SignatureError
from ledger.genesis import Genesis, Member

__all__ = [
    "AcceptedEntry",
    "BlockResult",
    "RejectedEntry",
    "check_entry_stateless",
    "execute_block",
    "subjects_of",
]


@dataclass(frozen=True, slots=True)
class AcceptedEntry:
    entry: SignedEntry
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    index: int
    entry_id: bytes | None
    code: str
    message: str


@dataclass(slots=True)
class BlockResult:
    accepted: list[AcceptedEntry] = field(default_factory=list)
    rejected: list[RejectedEntry] = field(default_factory=list)
    writes: Writes = field(default_factory=dict)


def subjects_of(entry: Entry) -> tuple[str, ...]:
    """The subjects an entry touches (DESIGN §8); pure. Rejection(invalid_body) if the
    body does not have its kind's shape."""
    kind = kind_of(entry.kind)
    kind.check_shape(entry.body)
    return kind.subjects(entry.body)


def _decode(wire: bytes | SignedEntry, genesis: Genesis) -> SignedEntry:
    """Rule 1."""
    limit = genesis.params.max_entry_bytes
    if isinstance(wire, SignedEntry):
        if len(wire.wire_bytes) > limit:
            raise Rejection(
                "too_large", f"{len(wire.wire_bytes)} bytes exceeds max_entry_bytes {limit}"
            )
        return wire
    if not isinstance(wire, (bytes, bytearray, memoryview)):
        raise Rejection("malformed", f"expected wire bytes, got {type(wire).__name__}")
    try:
        return decode_wire(bytes(wire), limit)
    except EntryError as exc:
        raise Rejection(exc.code, exc.reason) from exc


def _authenticate(signed: SignedEntry, genesis: Genesis, verify_signature: bool) -> Member:
    """Rules 2-4."""
    entry = signed.entry
    if entry.chain != genesis.chain_id:
        raise Rejection(
            "wrong_chain", f"entry is for chain {entry.chain!r:.80}, not {genesis.chain_id!r}"
        )
    author = genesis.member(entry.author)
    if author is None:
        raise Rejection("unknown_author", f"{entry.author!r:.80} is not a member")
    if verify_signature:
        try:
            signed.verify(author.public_key)
        except SignatureError as exc:
            raise Rejection("bad_signature", f"not signed by {author.id}: {exc}") from exc
    return author


def _check_body(signed: SignedEntry, author: Member) -> Kind:
    """Rules 7, 8 and the stateless part of 9."""
    kind = kind_of(signed.entry.kind)
    kind.check_shape(signed.entry.body)
    kind.check_static(signed.entry.body, author)
    return kind


def check_entry_stateless(
    wire: bytes | SignedEntry, genesis: Genesis, *, verify_signature: bool = True
) -> SignedEntry:
    """Rules 1-4 and 7-9 as far as they need no state; raises Rejection."""
    signed = _decode(wire, genesis)
    author = _authenticate(signed, genesis, verify_signature)
    _check_body(signed, author)
    return signed


def _check_window(signed: SignedEntry, genesis: Genesis, block_time: int) -> None:
    """Rule 5."""
    window = genesis.params.entry_window_ms
    ts = signed.entry.ts
    if abs(ts - block_time) > window:
        raise Rejection(
            "stale",
            f"ts {ts} is {abs(ts - block_time)} ms from block time {block_time} "
            f"(entry_window_ms {window})",
        )


def _execute_one(
    overlay: Overlay,
    genesis: Genesis,
    block_time: int,
    signed: SignedEntry,
    verified: Container[bytes],
    checked: Container[bytes],
    entry_id: bytes,
    seen: set[bytes],
    contexts: dict[str, Context],
) -> tuple[Writes, tuple[str, ...]]:
    prechecked = entry_id in checked
    author = _authenticate(signed, genesis, not prechecked and entry_id not in verified)
    _check_window(signed, genesis, block_time)
    if entry_id in seen:
        raise Rejection("duplicate", f"entry {entry_id.hex()} appears earlier in this block")
    if overlay.entry_committed(entry_id):
        raise Rejection("duplicate", f"entry {entry_id.hex()} is already committed")
    # Any later copy in this block is a duplicate, whatever becomes of this one.
    seen.add(entry_id)
    # Rules 7-9 (stateless part) depend on the entry alone, so an entry that passed
    # check_entry_stateless on ingest passes them again: only its kind is looked up.
    kind = kind_of(signed.entry.kind) if prechecked else _check_body(signed, author)
    body = signed.entry.body
    # A Context is immutable and differs within a block only by author: one per author
    # saves building a frozen dataclass per entry.
    ctx = contexts.get(author.id)
    if ctx is None:
        ctx = contexts[author.id] = Context(overlay, block_time, author)
    writes = kind.apply(ctx, body)
    return writes, kind.subjects(body)


def execute_block(
    state: StateReader,
    genesis: Genesis,
    block_time: int,
    entries: Sequence[bytes | SignedEntry],
    *,
    verified: Container[bytes] = frozenset(),
    checked: Container[bytes] = frozenset(),
) -> BlockResult:
    """Apply ``entries`` in order; a rejected entry changes nothing.

    Entry ids in ``verified`` skip the signature check (verified once on ingest); ids in
    ``checked`` passed all of ``check_entry_stateless`` on ingest and skip it whole. A
    caller lists an id only for the exact wire entry (same signature) it checked. An
    entry id may appear once per block: a later copy is a ``duplicate``. The result's
    ``writes`` hold every key the accepted entries changed (None = delete).
    """
    overlay = Overlay(state)
    result = BlockResult(writes=overlay.writes)
    seen: set[bytes] = set()
    contexts: dict[str, Context] = {}
    for index, item in enumerate(entries):
        entry_id: bytes | None = None
        try:
            signed = _decode(item, genesis)
            entry_id = signed.id
            writes, subjects = _execute_one(
                overlay, genesis, block_time, signed, verified, checked, entry_id, seen, contexts
            )
        except Rejection as rejection:
            result.rejected.append(
                RejectedEntry(index, entry_id, rejection.code, rejection.message)
            )
            continue
        overlay.apply(entry_id, writes)
        result.accepted.append(AcceptedEntry(signed, subjects))
    return result
