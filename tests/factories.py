"""Shared builders for tests: seeded member keys, genesis documents, signed entries.

Keys follow the conformance-vector rule (``contracts.vectors.seed_key``, the one source
of it): the private key of member X is the Ed25519 key whose 32 private bytes are
SHA-256(UTF-8 "X").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plyvel

from contracts.vectors import seed_key
from ledger.block import ZERO_HASH, Header
from ledger.entry import Entry, SignedEntry
from ledger.genesis import Genesis, Member, Params
from ledger.keys import SigningKey
from ledger.merkle import EMPTY_ROOT

CHAIN_ID = "customs-test-1"
GENESIS_TIME = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ALL_ROLES = ("validator", "issuer", "customs")


def member_key(member_id: str) -> SigningKey:
    return seed_key(member_id)


def make_member(
    member_id: str,
    jurisdictions: Sequence[str] | None = None,
    roles: Iterable[str] = ALL_ROLES,
    endpoints: Sequence[str] = (),
) -> Member:
    return Member(
        id=member_id,
        name=f"{member_id} Customs",
        jurisdictions=tuple(jurisdictions or (member_id[:2],)),
        roles=frozenset(roles),
        public_key=member_key(member_id).public_key,
        endpoints=tuple(endpoints),
    )


def make_genesis(
    member_ids: Sequence[str] = ("CN", "DE", "NL", "US"),
    *,
    chain_id: str = CHAIN_ID,
    params: Params | None = None,
    members: Sequence[Member] | None = None,
) -> Genesis:
    return Genesis.build(
        chain_id,
        GENESIS_TIME,
        list(members) if members is not None else [make_member(m) for m in member_ids],
        params,
    )


def sign_entry(
    author: str,
    kind: str,
    body: Mapping[str, Any],
    *,
    ts: int = GENESIS_TIME,
    chain_id: str = CHAIN_ID,
    key: SigningKey | None = None,
) -> SignedEntry:
    entry = Entry(chain=chain_id, kind=kind, author=author, ts=ts, body=dict(body))
    return entry.sign(key or member_key(author))


def stub_header(
    *, chain: str = CHAIN_ID, height: int = 1, time: int = 1, entries: int = 0
) -> Header:
    """A header with empty roots and zero links: for tests of framing, caching and
    relaying, where no store has to accept the block."""
    return Header(
        chain=chain,
        height=height,
        time=time,
        prev=ZERO_HASH,
        proposer="CN",
        entries=entries,
        log_size=0,
        log_root=EMPTY_ROOT,
        state_root=EMPTY_ROOT,
        validators=ZERO_HASH,
        last_commit=ZERO_HASH,
    )


def dump_db(path: Path) -> dict[bytes, bytes]:
    """Every key and value of the closed LevelDB at ``path`` (to compare whole stores)."""
    db = plyvel.DB(str(path))
    try:
        return dict(db.iterator())
    finally:
        db.close()
