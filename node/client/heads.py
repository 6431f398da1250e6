"""Quorum-signed heads and how two of them must relate (one chain, one log).

A ``Head`` is a header whose commit verified against genesis. Two heads of one chain
either are the same header (same height, same hash) or the lower one's log is a prefix
of the higher one's: an RFC 9162 section 2.1.4 consistency proof between their log sizes
shows it. Anything else is evidence that two quorums signed different histories (a
fork), or that someone replays an old view as new (a rollback).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.block import Commit, Header, verify_commit
from ledger.codec import decode
from ledger.errors import BlockFormatError, CodecError, CommitError, ProofError
from ledger.genesis import Genesis
from ledger.merkle import verify_consistency
from node.client.errors import VerificationFailed

__all__ = ["Head", "check_extends", "decode_consistency", "format_time", "verify_signed_header"]

_MAX_SIGNED_HEADER_BYTES = 256 * 1024
_MAX_PROOF_HASHES = 128


@dataclass(frozen=True, slots=True)
class Head:
    height: int
    hash: bytes
    time: int  # ms, the header's (quorum-signed) time
    log_size: int
    log_root: bytes
    signers: tuple[str, ...] = ()

    @classmethod
    def of(cls, header: Header, signers: Sequence[str] = ()) -> Head:
        return cls(
            header.height,
            header.hash(),
            header.time,
            header.log_size,
            header.log_root,
            tuple(signers),
        )

    def describe(self) -> str:
        return f"height {self.height} ({self.hash.hex()[:16]}…, {format_time(self.time)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "hash": self.hash.hex(),
            "time": self.time,
            "time_utc": format_time(self.time),
            "log_size": self.log_size,
            "log_root": self.log_root.hex(),
        }


def format_time(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def verify_signed_header(data: bytes, genesis: Genesis, *, height: int | None = None) -> Head:
    """A node's ``{"commit", "header"}`` answer (GET /v1/headers/…), checked against
    genesis: chain, validator set, and a quorum commit for exactly this header."""
    try:
        obj = decode(data, max_bytes=_MAX_SIGNED_HEADER_BYTES)
        if not isinstance(obj, dict) or list(obj) != ["commit", "header"]:
            raise BlockFormatError("a signed header is a map of exactly commit and header")
        header = Header.from_obj(obj["header"])
        commit = Commit.from_obj(obj["commit"])
    except (CodecError, BlockFormatError) as exc:
        raise VerificationFailed("decode", f"signed header: {exc}") from exc
    if header.chain != genesis.chain_id or header.validators != genesis.validators.hash():
        raise VerificationFailed(
            "chain",
            f"header {header.height} is for chain {header.chain!r} or another validator set",
        )
    if height is not None and header.height != height:
        raise VerificationFailed("structure", f"asked for height {height}, got {header.height}")
    try:
        verify_commit(
            commit, genesis.validators, genesis.chain_id, height=header.height, block=header.hash()
        )
    except CommitError as exc:
        raise VerificationFailed("commit", f"header {header.height}: {exc}") from exc
    return Head.of(header, [member for member, _ in commit.votes])


def decode_consistency(data: bytes, first: int, second: int) -> list[bytes]:
    """The proof of a node's GET /v1/consistency answer, for exactly these sizes."""
    try:
        obj = decode(data, max_bytes=_MAX_SIGNED_HEADER_BYTES)
    except CodecError as exc:
        raise VerificationFailed("consistency", f"undecodable proof: {exc}") from exc
    if (
        not isinstance(obj, dict)
        or list(obj) != ["first", "proof", "second"]
        or obj["first"] != first
        or obj["second"] != second
        or not isinstance(obj["proof"], list)
        or len(obj["proof"]) > _MAX_PROOF_HASHES
        or not all(isinstance(h, bytes) and len(h) == 32 for h in obj["proof"])
    ):
        raise VerificationFailed(
            "consistency", f"not a consistency proof from log size {first} to {second}"
        )
    return list(obj["proof"])


def check_extends(older: Head, newer: Head, proof: Sequence[bytes] | None) -> None:
    """Raise VerificationFailed unless ``newer`` is ``older`` or a proven extension of it.

    ``proof`` is the consistency proof from ``older.log_size`` to ``newer.log_size``
    (None when the heads have the same height, where only identity is acceptable)."""
    if newer.height < older.height:
        raise VerificationFailed(
            "rollback",
            f"{newer.describe()} is older than {older.describe()}, the newest head this "
            "client verified: it may hide later entries such as a revocation (ask a node, "
            "or save a fresh bundle with customs proof; --at a moment up to its time is "
            "still answered)",
        )
    if newer.height == older.height:
        if newer.hash != older.hash:
            raise VerificationFailed(
                "fork",
                f"two quorum-signed headers at height {newer.height}: "
                f"{older.hash.hex()} and {newer.hash.hex()}",
            )
        return
    if newer.time < older.time or newer.log_size < older.log_size:
        raise VerificationFailed(
            "fork", f"{newer.describe()} does not extend {older.describe()} (time or log size)"
        )
    if proof is None:
        raise VerificationFailed(
            "consistency", f"no consistency proof from {older.describe()} to {newer.describe()}"
        )
    try:
        verify_consistency(older.log_size, newer.log_size, older.log_root, newer.log_root, proof)
    except ProofError as exc:
        raise VerificationFailed(
            "fork",
            f"the log at {newer.describe()} is not an extension of the log at "
            f"{older.describe()}: {exc}",
        ) from exc
