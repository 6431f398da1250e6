"""Blocks, votes, proposals and commits (DESIGN §6).

    header = {chain, height, time, prev, proposer, entries, log_size, log_root,
              state_root, validators, last_commit}
    block  = {header, entries: [wire, ...]}
    vote   = {type, height, round, block: header hash | nil}
    commit = {height, round, block, votes: [[member id, sig], ...]}

A commit's votes are sorted by member id so that a commit has one encoding; which
quorum of signatures it carries is the proposer's choice, fixed by the next header's
``last_commit``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.codec import decode, encode
from ledger.entry import SignedEntry, decode_wire
from ledger.errors import BlockFormatError, CodecError, CommitError, EntryError, SignatureError
from ledger.genesis import ValidatorSet
from ledger.keys import SIGNATURE_BYTES, Domain, SigningKey

__all__ = [
    "PRECOMMIT",
    "PREVOTE",
    "ZERO_HASH",
    "Block",
    "Commit",
    "Header",
    "Proposal",
    "Vote",
    "sign_commit",
    "verify_commit",
]

ZERO_HASH = bytes(32)
PREVOTE = "prevote"
PRECOMMIT = "precommit"
_HEADER_KEYS = (
    "chain",
    "height",
    "time",
    "prev",
    "proposer",
    "entries",
    "log_size",
    "log_root",
    "state_root",
    "validators",
    "last_commit",
)
_HASH_FIELDS = ("prev", "log_root", "state_root", "validators", "last_commit")
_INT_FIELDS = ("height", "time", "entries", "log_size")


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class Header:
    chain: str
    height: int
    time: int
    prev: bytes
    proposer: str
    entries: int
    log_size: int
    log_root: bytes
    state_root: bytes
    validators: bytes
    last_commit: bytes

    def to_obj(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _HEADER_KEYS}

    def encode(self) -> bytes:
        return encode(self.to_obj())

    def hash(self) -> bytes:
        return _sha256(self.encode())

    @classmethod
    def from_obj(cls, obj: object) -> Header:
        if not isinstance(obj, dict) or set(obj) != set(_HEADER_KEYS):
            raise BlockFormatError(f"header must have exactly the fields {sorted(_HEADER_KEYS)}")
        for name in _HASH_FIELDS:
            value = obj[name]
            if not isinstance(value, bytes) or len(value) != 32:
                raise BlockFormatError(f"header.{name} must be 32 bytes")
        for name in _INT_FIELDS:
            value = obj[name]
            if type(value) is not int or value < 0:
                raise BlockFormatError(f"header.{name} must be a non-negative integer")
        if obj["height"] < 1:
            raise BlockFormatError("header.height must be at least 1")
        for name in ("chain", "proposer"):
            if not isinstance(obj[name], str) or not obj[name]:
                raise BlockFormatError(f"header.{name} must be a non-empty string")
        return cls(**{name: obj[name] for name in _HEADER_KEYS})

    @classmethod
    def decode(cls, data: bytes) -> Header:
        try:
            return cls.from_obj(decode(data, max_bytes=4096))
        except CodecError as exc:
            raise BlockFormatError(f"header: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    entries: tuple[SignedEntry, ...]

    def encode(self) -> bytes:
        return encode(
            {"entries": [e.wire_bytes for e in self.entries], "header": self.header.to_obj()}
        )

    @classmethod
    def decode(
        cls,
        data: bytes,
        *,
        max_entry_bytes: int,
        max_entries: int,
        known: Callable[[bytes], SignedEntry | None] | None = None,
    ) -> Block:
        """Strictly decode a block; entries are carried as their wire bytes (bin).

        ``known(wire)`` may return an already decoded entry whose ``wire_bytes`` equal
        ``wire`` (a node's pending entries), sparing a second strict decode.
        """
        limit = 4096 + max_entries * (max_entry_bytes + 8)
        try:
            obj = decode(data, max_bytes=limit)
        except CodecError as exc:
            raise BlockFormatError(f"block: {exc}") from exc
        if not isinstance(obj, dict) or list(obj) != ["entries", "header"]:
            raise BlockFormatError("block must be a map with exactly 'entries' and 'header'")
        header = Header.from_obj(obj["header"])
        raw = obj["entries"]
        if not isinstance(raw, list) or len(raw) > max_entries:
            raise BlockFormatError(f"block.entries must be a list of at most {max_entries}")
        if len(raw) != header.entries:
            raise BlockFormatError(
                f"block has {len(raw)} entries but its header says {header.entries}"
            )
        entries = []
        for i, wire in enumerate(raw):
            if not isinstance(wire, bytes):
                raise BlockFormatError(f"block.entries[{i}] must be wire bytes")
            held = known(wire) if known is not None else None
            if held is not None and held.wire_bytes == wire and len(wire) <= max_entry_bytes:
                entries.append(held)
                continue
            try:
                entries.append(decode_wire(wire, max_entry_bytes))
            except EntryError as bad_entry:
                raise BlockFormatError(f"block.entries[{i}]: {bad_entry}") from bad_entry
        return cls(header, tuple(entries))


@dataclass(frozen=True, slots=True)
class Vote:
    type: str
    height: int
    round: int
    block: bytes | None

    def __post_init__(self) -> None:
        if self.type not in (PREVOTE, PRECOMMIT):
            raise BlockFormatError(f"vote.type must be prevote or precommit, not {self.type!r}")
        if type(self.height) is not int or self.height < 1:
            raise BlockFormatError("vote.height must be a positive integer")
        if type(self.round) is not int or self.round < 0:
            raise BlockFormatError("vote.round must be a non-negative integer")
        if self.block is not None and (not isinstance(self.block, bytes) or len(self.block) != 32):
            raise BlockFormatError("vote.block must be a 32-byte hash or nil")

    def to_obj(self) -> dict[str, Any]:
        return {"block": self.block, "height": self.height, "round": self.round, "type": self.type}

    def encode(self) -> bytes:
        return encode(self.to_obj())

    @classmethod
    def from_obj(cls, obj: object) -> Vote:
        if not isinstance(obj, dict) or set(obj) != {"type", "height", "round", "block"}:
            raise BlockFormatError("vote must have exactly type, height, round, block")
        kind, height, round_, block = obj["type"], obj["height"], obj["round"], obj["block"]
        # Checked before construction: compiled, the constructor itself refuses a wrong
        # type with a TypeError, which would escape the decoder's typed error.
        if not isinstance(kind, str):
            raise BlockFormatError("vote.type must be prevote or precommit")
        _check_int("vote.height", height)
        _check_int("vote.round", round_)
        if block is not None and not isinstance(block, bytes):
            raise BlockFormatError("vote.block must be a 32-byte hash or nil")
        return cls(kind, height, round_, block)

    def sign(self, key: SigningKey, chain_id: str) -> bytes:
        return key.sign(Domain.VOTE, chain_id, self.encode())


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's signed claim: block ``block`` at (height, round); ``pol_round`` is
    Tendermint's validRound, -1 when none."""

    height: int
    round: int
    block: bytes
    pol_round: int

    def __post_init__(self) -> None:
        if type(self.height) is not int or self.height < 1:
            raise BlockFormatError("proposal.height must be a positive integer")
        if type(self.round) is not int or self.round < 0:
            raise BlockFormatError("proposal.round must be a non-negative integer")
        if type(self.pol_round) is not int or not -1 <= self.pol_round < self.round:
            raise BlockFormatError("proposal.pol_round must be in -1 .. round-1")
        if not isinstance(self.block, bytes) or len(self.block) != 32:
            raise BlockFormatError("proposal.block must be a 32-byte hash")

    def to_obj(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "height": self.height,
            "pol_round": self.pol_round,
            "round": self.round,
        }

    def encode(self) -> bytes:
        return encode(self.to_obj())

    @classmethod
    def from_obj(cls, obj: object) -> Proposal:
        if not isinstance(obj, dict) or set(obj) != {"height", "round", "block", "pol_round"}:
            raise BlockFormatError("proposal must have exactly height, round, block, pol_round")
        height, round_, block, pol_round = (
            obj["height"],
            obj["round"],
            obj["block"],
            obj["pol_round"],
        )
        _check_int("proposal.height", height)
        _check_int("proposal.round", round_)
        _check_int("proposal.pol_round", pol_round)
        if not isinstance(block, bytes):
            raise BlockFormatError("proposal.block must be a 32-byte hash")
        return cls(height, round_, block, pol_round)

    def sign(self, key: SigningKey, chain_id: str) -> bytes:
        return key.sign(Domain.PROPOSAL, chain_id, self.encode())


@dataclass(frozen=True, slots=True)
class Commit:
    height: int
    round: int
    block: bytes
    votes: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_precommits(
        cls, height: int, round_: int, block: bytes, signatures: Mapping[str, bytes]
    ) -> Commit:
        return cls(height, round_, block, tuple(sorted(signatures.items())))

    def to_obj(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "height": self.height,
            "round": self.round,
            "votes": [[member, sig] for member, sig in self.votes],
        }

    def encode(self) -> bytes:
        return encode(self.to_obj())

    def hash(self) -> bytes:
        return _sha256(self.encode())

    def precommit(self) -> Vote:
        return Vote(PRECOMMIT, self.height, self.round, self.block)

    @classmethod
    def from_obj(cls, obj: object) -> Commit:
        if not isinstance(obj, dict) or set(obj) != {"height", "round", "block", "votes"}:
            raise BlockFormatError("commit must have exactly height, round, block, votes")
        height, round_, block, votes = obj["height"], obj["round"], obj["block"], obj["votes"]
        if type(height) is not int or height < 1 or type(round_) is not int or round_ < 0:
            raise BlockFormatError("commit height must be >= 1 and round >= 0")
        if not isinstance(block, bytes) or len(block) != 32:
            raise BlockFormatError("commit.block must be a 32-byte hash")
        if not isinstance(votes, list) or len(votes) > 1024:
            raise BlockFormatError("commit.votes must be a list of at most 1024")
        pairs: list[tuple[str, bytes]] = []
        for i, pair in enumerate(votes):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not isinstance(pair[0], str)
                or not isinstance(pair[1], bytes)
                or len(pair[1]) != SIGNATURE_BYTES
            ):
                raise BlockFormatError(f"commit.votes[{i}] must be [member id, 64-byte sig]")
            pairs.append((pair[0], pair[1]))
        return cls(height, round_, block, tuple(pairs))

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        try:
            return cls.from_obj(decode(data, max_bytes=256 * 1024))
        except CodecError as exc:
            raise BlockFormatError(f"commit: {exc}") from exc


def verify_commit(
    commit: Commit,
    validators: ValidatorSet,
    chain_id: str,
    *,
    height: int | None = None,
    block: bytes | None = None,
) -> None:
    """Raise CommitError unless more than 2/3 of ``validators`` precommitted the block.

    Cheap structural checks run before any signature is verified, so a hostile commit
    costs at most one verification per validator.
    """
    if height is not None and commit.height != height:
        raise CommitError(f"commit is for height {commit.height}, expected {height}")
    if block is not None and commit.block != block:
        raise CommitError(
            f"commit is for block {commit.block.hex()[:16]}…, expected {block.hex()[:16]}…"
        )
    ids = [member for member, _ in commit.votes]
    if len(set(ids)) != len(ids):
        raise CommitError("commit counts a validator twice")
    unknown = [member for member in ids if validators.key_of(member) is None]
    if unknown:
        raise CommitError(f"commit has votes from non-validators: {unknown}")
    if len(ids) < validators.quorum:
        raise CommitError(
            f"commit has {len(ids)} votes, a quorum of {validators.n} validators needs "
            f"{validators.quorum}"
        )
    payload = commit.precommit().encode()
    for member, sig in commit.votes:
        key = validators.key_of(member)
        assert key is not None
        try:
            key.verify(Domain.VOTE, chain_id, payload, sig)
        except SignatureError as exc:
            raise CommitError(f"precommit signature of {member} does not verify") from exc


def commit_signatures(
    keys: Iterable[tuple[str, SigningKey]], vote: Vote, chain_id: str
) -> dict[str, bytes]:
    """Sign one precommit with several keys (tests, conformance runner, dev tools)."""
    return {member: vote.sign(key, chain_id) for member, key in keys}


def sign_commit(
    keys: Iterable[tuple[str, SigningKey]],
    height: int,
    block_hash: bytes,
    chain_id: str,
    round_: int = 0,
) -> Commit:
    """A commit whose precommits for ``block_hash`` are signed by each of ``keys``: how a
    chain is grown without consensus (conformance runner, tests, benchmarks)."""
    vote = Vote(PRECOMMIT, height, round_, block_hash)
    return Commit.from_precommits(
        height, round_, block_hash, commit_signatures(keys, vote, chain_id)
    )


def _check_int(field: str, value: object) -> None:
    if type(value) is not int:
        raise BlockFormatError(f"{field} must be an integer")
