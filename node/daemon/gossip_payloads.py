"""Payloads of the gossip kinds the daemon sends over ``node.peers`` (canonical msgpack).

    entry           [wire entry bytes, ...]                      relayed, batched
    proposal        {proposal: signed proposal, block, last_commit: commit | nil}
    vote            a signed vote (node.consensus.messages)
    commit          a commit (ledger.block)
    block_request   {from, to}
    block_response  {items: [{block, commit, last_commit: commit | nil}, ...]}

A proposal carries its block and the commit the block's header names as
``last_commit``, so a validator can re-execute it without another round trip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from ledger.block import Block, Commit
from ledger.codec import decode, encode
from ledger.entry import SignedEntry
from ledger.errors import BlockFormatError, CodecError, LedgerError

__all__ = [
    "MAX_ENTRIES_PER_GOSSIP",
    "MAX_SYNC_BLOCKS",
    "BlockRequest",
    "ProposalOutline",
    "ProposalPackage",
    "SyncItem",
    "WireError",
    "decode_block_request",
    "decode_block_response",
    "decode_entries",
    "decode_proposal_package",
    "encode_block_request",
    "encode_block_response",
    "encode_entries",
    "encode_proposal_package",
    "entry_id_of_wire",
]

MAX_ENTRIES_PER_GOSSIP = 1000
MAX_SYNC_BLOCKS = 64
_HEADER_KEY = encode("header")
_WIRE_HEAD = b"\x82" + encode("entry")
_WIRE_TAIL = len(encode("sig")) + 2 + 64


class WireError(LedgerError):
    """A peer's payload does not have the shape its kind requires."""


@dataclass(frozen=True, slots=True)
class ProposalPackage:
    proposal: bytes
    block: Block
    last_commit: Commit | None


@dataclass(frozen=True, slots=True)
class BlockRequest:
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class SyncItem:
    block: Block
    commit: Commit
    last_commit: Commit | None


@dataclass(frozen=True, slots=True)
class Limits:
    max_entry_bytes: int
    max_block_entries: int
    max_payload_bytes: int


def _decode(data: bytes, limit: int, what: str) -> object:
    try:
        return decode(data, max_bytes=limit)
    except CodecError as exc:
        raise WireError(f"{what}: {exc}") from exc


def encode_entries(wires: list[bytes]) -> bytes:
    return encode(wires)


def decode_entries(data: bytes, limits: Limits) -> list[bytes]:
    obj = _decode(data, limits.max_payload_bytes, "entry batch")
    if not isinstance(obj, list) or not 1 <= len(obj) <= MAX_ENTRIES_PER_GOSSIP:
        raise WireError(f"entry batch must be a list of 1..{MAX_ENTRIES_PER_GOSSIP}")
    if not all(isinstance(w, bytes) and len(w) <= limits.max_entry_bytes for w in obj):
        raise WireError("entry batch items must be wire bytes within max_entry_bytes")
    return obj


def encode_proposal_package(proposal: bytes, block: Block, last_commit: Commit | None) -> bytes:
    return encode(
        {
            "block": block.encode(),
            "last_commit": last_commit.encode() if last_commit else None,
            "proposal": proposal,
        }
    )


def decode_proposal_package(
    data: bytes,
    limits: Limits,
    known: Callable[[bytes], Block | None] | None = None,
    pending: Callable[[bytes], SignedEntry | None] | None = None,
) -> ProposalPackage:
    """Decode a proposal package (``ProposalOutline.decode`` then ``block``)."""
    return ProposalOutline.decode(data, limits).package(limits, known, pending)


@dataclass(frozen=True, slots=True)
class ProposalOutline:
    """A proposal package decoded except for its block's entries: enough to judge the
    signed proposal and to tell whether the package carries the block it names."""

    proposal: bytes
    block_hash: bytes  # of the carried block's header; b"" if it is no canonical block
    block: bytes
    last_commit: Commit | None

    @classmethod
    def decode(cls, data: bytes, limits: Limits) -> ProposalOutline:
        obj = _decode(data, limits.max_payload_bytes, "proposal")
        if not isinstance(obj, dict) or set(obj) != {"block", "last_commit", "proposal"}:
            raise WireError("proposal must have exactly block, last_commit, proposal")
        if not isinstance(obj["proposal"], bytes) or not isinstance(obj["block"], bytes):
            raise WireError("proposal.proposal and proposal.block must be bytes")
        block = obj["block"]
        return cls(
            obj["proposal"], _header_hash(block), block, _optional_commit(obj["last_commit"])
        )

    def package(
        self,
        limits: Limits,
        known: Callable[[bytes], Block | None] | None = None,
        pending: Callable[[bytes], SignedEntry | None] | None = None,
    ) -> ProposalPackage:
        """Decode the block: ``known(header_hash)`` may supply a block already held and
        ``pending(wire)`` entries already decoded (see ``Block.decode``).

        Decoding a block means strictly decoding every entry in it, the most expensive
        part of a proposal; a resent proposal whose block we hold costs only its header's
        hash, and entries gossiped to us before the proposal are not decoded twice.
        """
        held = known(self.block_hash) if known is not None else None
        block = held if held is not None else _block(self.block, limits, pending)
        return ProposalPackage(self.proposal, block, self.last_commit)


def _header_hash(block: bytes) -> bytes:
    """The hash of a canonical block's header, without decoding its entries.

    A canonical block is fixmap(2) "entries" [...] "header" {...}: the header is the
    encoded tail after the entries array. Anything else yields a hash nobody holds.
    """
    marker = block.rfind(_HEADER_KEY)
    if marker < 0:
        return b""
    return hashlib.sha256(block[marker + len(_HEADER_KEY) :]).digest()


def encode_block_request(first: int, last: int) -> bytes:
    return encode({"from": first, "to": last})


def decode_block_request(data: bytes) -> BlockRequest:
    obj = _decode(data, 256, "block request")
    if not isinstance(obj, dict) or set(obj) != {"from", "to"}:
        raise WireError("block request must have exactly from, to")
    first, last = obj["from"], obj["to"]
    if type(first) is not int or type(last) is not int or not 1 <= first <= last:
        raise WireError("block request needs 1 <= from <= to")
    return BlockRequest(first, min(last, first + MAX_SYNC_BLOCKS - 1))


def encode_block_response(items: list[SyncItem]) -> bytes:
    return encode(
        {
            "items": [
                {
                    "block": item.block.encode(),
                    "commit": item.commit.encode(),
                    "last_commit": item.last_commit.encode() if item.last_commit else None,
                }
                for item in items
            ]
        }
    )


def decode_block_response(data: bytes, limits: Limits) -> list[SyncItem]:
    obj = _decode(data, limits.max_payload_bytes, "block response")
    if not isinstance(obj, dict) or set(obj) != {"items"}:
        raise WireError("block response must have exactly items")
    raw = obj["items"]
    if not isinstance(raw, list) or len(raw) > MAX_SYNC_BLOCKS:
        raise WireError(f"block response holds at most {MAX_SYNC_BLOCKS} items")
    items = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"block", "commit", "last_commit"}:
            raise WireError("block response items have exactly block, commit, last_commit")
        if not isinstance(item["block"], bytes) or not isinstance(item["commit"], bytes):
            raise WireError("block response block and commit must be bytes")
        commit = _optional_commit(item["commit"])
        assert commit is not None
        items.append(
            SyncItem(_block(item["block"], limits), commit, _optional_commit(item["last_commit"]))
        )
    return items


def _block(
    data: bytes, limits: Limits, known: Callable[[bytes], SignedEntry | None] | None = None
) -> Block:
    try:
        return Block.decode(
            data,
            max_entry_bytes=limits.max_entry_bytes,
            max_entries=limits.max_block_entries,
            known=known,
        )
    except BlockFormatError as exc:
        raise WireError(str(exc)) from exc


def entry_id_of_wire(wire: bytes) -> bytes:
    """The id a canonical wire entry would have, without decoding it.

    Canonical wire = fixmap(2) "entry" <entry> "sig" bin8(64) <sig> (DESIGN §2, §5), so
    the entry's bytes are a fixed slice. For any other input the id is simply one that
    no pending entry has; callers compare the full wire bytes before trusting a match.
    """
    # The end is clamped to the start by hand: compiled (mypyc), a bytes slice whose end
    # falls before its start raises SystemError where Python gives b"".
    start = len(_WIRE_HEAD)
    return hashlib.sha256(wire[start : max(start, len(wire) - _WIRE_TAIL)]).digest()


def _optional_commit(raw: object) -> Commit | None:
    if raw is None:
        return None
    if not isinstance(raw, bytes):
        raise WireError("commit must be bytes or nil")
    try:
        return Commit.decode(raw)
    except BlockFormatError as exc:
        raise WireError(str(exc)) from exc
