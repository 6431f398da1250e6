"""Blocks, votes, proposals and commits (DESIGN §6)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from ledger.block import (
    PREVOTE,
    ZERO_HASH,
    Block,
    Commit,
    Header,
    Proposal,
    Vote,
    commit_signatures,
    sign_commit,
    verify_commit,
)
from ledger.codec import encode
from ledger.errors import BlockFormatError, CommitError
from ledger.merkle import EMPTY_ROOT
from tests.factories import CHAIN_ID, make_genesis, member_key, sign_entry

GENESIS = make_genesis()
VALIDATORS = GENESIS.validators


def _header(entries: int = 0) -> Header:
    return Header(
        chain=CHAIN_ID,
        height=1,
        time=1_767_225_600_500,
        prev=ZERO_HASH,
        proposer="DE",
        entries=entries,
        log_size=entries,
        log_root=EMPTY_ROOT,
        state_root=bytes(32),
        validators=VALIDATORS.hash(),
        last_commit=ZERO_HASH,
    )


def _commit(block_hash: bytes, signers: tuple[str, ...] = ("CN", "DE", "NL")) -> Commit:
    return sign_commit([(m, member_key(m)) for m in signers], 1, block_hash, CHAIN_ID)


def test_header_hash_and_round_trip() -> None:
    header = _header()
    assert header.hash() == hashlib.sha256(encode(header.to_obj())).digest()
    assert Header.decode(header.encode()) == header


def test_block_round_trip() -> None:
    entries = tuple(sign_entry("CN", "cert.issue", {"n": i}) for i in range(3))
    block = Block(_header(3), entries)
    assert Block.decode(block.encode(), max_entry_bytes=16384, max_entries=10) == block


def test_block_limits_and_count_mismatch() -> None:
    entries = tuple(sign_entry("CN", "cert.issue", {"n": i}) for i in range(3))
    data = Block(_header(3), entries).encode()
    assert Block.decode(data, max_entry_bytes=16384, max_entries=3).header.entries == 3
    with pytest.raises(BlockFormatError):
        Block.decode(data, max_entry_bytes=16384, max_entries=2)
    with pytest.raises(BlockFormatError, match="header says"):
        Block.decode(Block(_header(2), entries).encode(), max_entry_bytes=16384, max_entries=10)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.update(prev=b"short"),
        lambda h: h.update(height=0),
        lambda h: h.update(time=-1),
        lambda h: h.update(proposer=""),
        lambda h: h.update(extra=1),
        lambda h: h.pop("log_root"),
    ],
)
def test_header_shape_errors(mutate) -> None:  # type: ignore[no-untyped-def]
    obj = _header().to_obj()
    mutate(obj)
    with pytest.raises(BlockFormatError):
        Header.from_obj(obj)


def test_vote_and_proposal_validation() -> None:
    assert Vote.from_obj(Vote(PREVOTE, 1, 0, None).to_obj()) == Vote(PREVOTE, 1, 0, None)
    with pytest.raises(BlockFormatError):
        Vote("maybe", 1, 0, None)
    with pytest.raises(BlockFormatError):
        Vote(PREVOTE, 0, 0, None)
    with pytest.raises(BlockFormatError):
        Vote(PREVOTE, 1, 0, b"short")
    proposal = Proposal(2, 3, bytes(32), 1)
    assert Proposal.from_obj(proposal.to_obj()) == proposal
    with pytest.raises(BlockFormatError):
        Proposal(2, 3, bytes(32), 3)  # pol_round must be below round


def test_commit_verifies_with_a_quorum() -> None:
    block_hash = _header().hash()
    commit = _commit(block_hash)
    verify_commit(commit, VALIDATORS, CHAIN_ID, height=1, block=block_hash)
    assert Commit.decode(commit.encode()) == commit
    assert [m for m, _ in commit.votes] == sorted(m for m, _ in commit.votes)


def test_commit_below_quorum_fails() -> None:
    commit = _commit(_header().hash(), ("CN", "DE"))
    with pytest.raises(CommitError, match="quorum"):
        verify_commit(commit, VALIDATORS, CHAIN_ID)


def test_commit_counting_one_validator_twice_fails() -> None:
    good = _commit(_header().hash())
    doubled = Commit(good.height, good.round, good.block, (*good.votes[:2], good.votes[0]))
    with pytest.raises(CommitError, match="twice"):
        verify_commit(doubled, VALIDATORS, CHAIN_ID)


def test_commit_from_non_validator_fails() -> None:
    commit = _commit(_header().hash(), ("CN", "DE", "XX"))
    with pytest.raises(CommitError, match="non-validators"):
        verify_commit(commit, VALIDATORS, CHAIN_ID)


def test_commit_with_a_bad_signature_fails() -> None:
    good = _commit(_header().hash())
    member, sig = good.votes[1]
    bad = Commit(
        good.height,
        good.round,
        good.block,
        (good.votes[0], (member, bytes([sig[0] ^ 1]) + sig[1:]), good.votes[2]),
    )
    with pytest.raises(CommitError, match=member):
        verify_commit(bad, VALIDATORS, CHAIN_ID)


def test_commit_for_other_height_round_block_or_chain_fails() -> None:
    block_hash = _header().hash()
    good = _commit(block_hash)
    with pytest.raises(CommitError, match="height"):
        verify_commit(good, VALIDATORS, CHAIN_ID, height=2)
    with pytest.raises(CommitError, match="block"):
        verify_commit(good, VALIDATORS, CHAIN_ID, block=bytes(32))
    moved = Commit(good.height, good.round + 1, good.block, good.votes)
    with pytest.raises(CommitError):
        verify_commit(moved, VALIDATORS, CHAIN_ID)
    with pytest.raises(CommitError):
        verify_commit(good, VALIDATORS, "another-chain")


def test_prevotes_do_not_make_a_commit() -> None:
    block_hash = _header().hash()
    vote = Vote(PREVOTE, 1, 0, block_hash)
    sigs = commit_signatures([(m, member_key(m)) for m in ("CN", "DE", "NL")], vote, CHAIN_ID)
    with pytest.raises(CommitError):
        verify_commit(Commit.from_precommits(1, 0, block_hash, sigs), VALIDATORS, CHAIN_ID)


@pytest.mark.parametrize(
    ("make", "body"),
    [
        (Vote.from_obj, {"type": "prevote", "height": 5, "round": {}, "block": None}),
        (Vote.from_obj, {"type": 1, "height": 5, "round": 0, "block": None}),
        (Vote.from_obj, {"type": "prevote", "height": "5", "round": 0, "block": None}),
        (Vote.from_obj, {"type": "prevote", "height": 5, "round": 0, "block": 7}),
        (Proposal.from_obj, {"height": 5, "round": 0, "block": b"\x01" * 32, "pol_round": []}),
        (Proposal.from_obj, {"height": None, "round": 0, "block": b"\x01" * 32, "pol_round": -1}),
        (Proposal.from_obj, {"height": 5, "round": 0, "block": "hash", "pol_round": -1}),
    ],
)
def test_a_vote_or_proposal_of_wrong_field_types_is_a_format_error(
    make: Callable[[object], object], body: dict[str, object]
) -> None:
    # Found by fuzzing the compiled build: there the constructor refused a dict where
    # an int belongs with a TypeError, which escaped decode_message's typed error.
    with pytest.raises(BlockFormatError):
        make(body)
