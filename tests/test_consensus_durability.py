"""The durable signing state, restarts that never double-sign, wire formats, evidence,
and the sans-I/O rule for node/consensus."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from ledger.block import PRECOMMIT, PREVOTE, Proposal, Vote
from ledger.genesis import ValidatorSet
from node.consensus import (
    ConsensusCore,
    Equivocation,
    EvidenceError,
    MessageFormatError,
    SignedVote,
    SigningState,
    SigningStateError,
    StartHeight,
    Timeout,
    TimeoutFired,
    ValidityVerdict,
    decode_message,
    sign_proposal,
    sign_vote,
)
from tests.factories import CHAIN_ID, member_key
from tests.test_consensus_core import VALS, A, B, feed, lock_on, proposal, sent_votes, vote

# ---- restarts -----------------------------------------------------------------------


def _restart(record: bytes | None) -> tuple[ConsensusCore, list[SignedVote]]:
    assert record is not None
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"), restored=SigningState.decode(record))
    out = core.step(StartHeight(1, VALS))
    return core, [m for m in out.send if isinstance(m, SignedVote)]


def test_restart_never_signs_a_second_prevote_for_the_same_round() -> None:
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"))
    core.step(StartHeight(1, VALS))
    out = feed(core, proposal(0, A), ValidityVerdict(1, A, True))
    [before] = [m for m in out.send if isinstance(m, SignedVote)]
    # kill -9 after the persist: only the record survives.
    restored, resent = _restart(out.persist)
    assert [m.sig for m in resent] == [before.sig]  # the same bytes again, nothing new
    out = feed(restored, TimeoutFired(Timeout("propose", 1, 0)), proposal(0, B))
    assert sent_votes(out, PREVOTE) == []
    assert (restored.round, restored.phase) == (0, 1)


def test_restart_keeps_the_lock() -> None:
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"))
    core.step(StartHeight(1, VALS))
    out = lock_on(core, 0, A)
    restored, resent = _restart(out.persist)
    assert (restored.locked_value, restored.locked_round) == (A, 0)
    assert {(m.vote.type, m.vote.block) for m in resent} == {(PREVOTE, A), (PRECOMMIT, A)}
    assert sent_votes(feed(restored, TimeoutFired(Timeout("prevote", 1, 0))), PRECOMMIT) == []
    feed(restored, vote(PRECOMMIT, 0, None, "DE"), vote(PRECOMMIT, 0, None, "NL"))
    feed(restored, TimeoutFired(Timeout("precommit", 1, 0)))
    out = feed(restored, proposal(1, B), ValidityVerdict(1, B, True))
    assert sent_votes(out, PREVOTE) == [None]  # still locked on A after the crash


def test_record_ahead_of_the_store_refuses_to_sign_lower_heights() -> None:
    record = SigningState(height=3, round=0, step=1)
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"), restored=record)
    core.step(StartHeight(1, VALS))
    out = feed(core, proposal(0, A), ValidityVerdict(1, A, True))
    assert out.send == [] and out.dropped.get("sign_refused") == 1


def test_signing_state_round_trips_and_orders_positions() -> None:
    wire = sign_vote(member_key("CN"), CHAIN_ID, "CN", Vote(PREVOTE, 2, 1, A)).encode()
    state = SigningState(2, 1, 1, 0, A, 1, B, (wire,))
    assert SigningState.decode(state.encode()) == state
    assert not state.may_sign(2, 1, 1) and not state.may_sign(2, 0, 2)
    assert state.may_sign(2, 1, 2) and state.may_sign(3, 0, 0)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1],
        lambda b: b + b"\x00",
        lambda b: b"\x80",
        lambda b: b.replace(b"\xa6height\x02", b"\xa6height\x00"),
    ],
)
def test_corrupt_signing_state_is_refused(mangle: object) -> None:
    data = SigningState(2, 1, 1).encode()
    with pytest.raises(SigningStateError):
        SigningState.decode(mangle(data))  # type: ignore[operator]


def test_signing_state_rejects_a_lock_without_its_round() -> None:
    with pytest.raises(SigningStateError, match="locked_value"):
        SigningState(1, 0, 1, locked_round=-1, locked_value=A)


# ---- wire messages ---------------------------------------------------------------------


def test_messages_round_trip() -> None:
    v = sign_vote(member_key("DE"), CHAIN_ID, "DE", Vote(PRECOMMIT, 5, 2, None))
    p = sign_proposal(member_key("DE"), CHAIN_ID, "DE", Proposal(5, 2, A, 1))
    assert decode_message(v.encode()) == v
    assert decode_message(p.encode()) == p


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xc1", "message"),
        (b"\x80", "exactly"),
        (b"\x00" * 600, "exceeds"),
    ],
)
def test_malformed_messages_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(MessageFormatError, match=match):
        decode_message(data)


def test_message_with_bad_body_is_refused() -> None:
    good = sign_vote(member_key("DE"), CHAIN_ID, "DE", Vote(PREVOTE, 1, 0, A)).encode()
    with pytest.raises(MessageFormatError, match="prevote or precommit"):
        decode_message(good.replace(b"prevote", b"prevota"))


# ---- evidence --------------------------------------------------------------------------


def test_evidence_needs_two_different_votes_by_the_same_validator() -> None:
    a = sign_vote(member_key("DE"), CHAIN_ID, "DE", Vote(PREVOTE, 1, 0, A))
    b = sign_vote(member_key("DE"), CHAIN_ID, "DE", Vote(PREVOTE, 1, 0, B))
    other = sign_vote(member_key("NL"), CHAIN_ID, "NL", Vote(PREVOTE, 1, 0, B))
    later = sign_vote(member_key("DE"), CHAIN_ID, "DE", Vote(PREVOTE, 1, 1, B))
    evidence = Equivocation.of(b, a)
    assert evidence == Equivocation.of(a, b)  # canonical order
    evidence.verify(VALS, CHAIN_ID)
    for bad in ((a, a), (a, other), (a, later)):
        with pytest.raises(EvidenceError):
            Equivocation.of(*bad)


def test_evidence_with_a_forged_signature_does_not_verify() -> None:
    a = sign_vote(member_key("DE"), CHAIN_ID, "DE", Vote(PREVOTE, 1, 0, A))
    forged = sign_vote(member_key("XX"), CHAIN_ID, "DE", Vote(PREVOTE, 1, 0, B))
    with pytest.raises(EvidenceError, match="does not verify"):
        Equivocation.of(a, forged).verify(VALS, CHAIN_ID)
    outsiders = ValidatorSet.of([("NL", member_key("NL").public_key)])
    with pytest.raises(EvidenceError, match="not a validator"):
        Equivocation.of(a, forged).verify(outsiders, CHAIN_ID)
    assert hashlib.sha256(Equivocation.of(a, forged).encode()).digest()


# ---- sans-I/O --------------------------------------------------------------------------

_FORBIDDEN_MODULES = {
    "asyncio", "socket", "time", "random", "os", "datetime", "threading", "selectors",
    "secrets", "subprocess", "pathlib", "io", "shutil", "tempfile", "aiohttp", "plyvel",
    "multiprocessing", "concurrent", "signal", "uuid", "http", "urllib",
}  # fmt: skip
_FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}


def test_consensus_package_is_sans_io() -> None:
    root = Path(__file__).resolve().parent.parent / "node" / "consensus"
    # The simulator lives beside the core it drives, and draws seeded randomness and
    # parses options by design: it is the harness, not the state machine.
    files = sorted(p for p in root.glob("*.py") if p.stem != "simulator")
    assert len(files) >= 8
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top not in _FORBIDDEN_MODULES, f"{path.name} imports {name}"
                assert top in {"__future__", "ledger", "node", "collections", "dataclasses",
                               "enum", "typing"}, f"{path.name} imports {name}"  # fmt: skip
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in _FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}"


def test_record_holding_a_bad_message_is_refused_on_restore() -> None:
    record = SigningState(1, 0, 1, signed=(b"not a message",))
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"), restored=record)
    with pytest.raises(SigningStateError, match="bad message"):
        core.step(StartHeight(1, VALS))


def test_restart_keeps_the_precommits_that_moved_it_to_its_round() -> None:
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"))
    core.step(StartHeight(1, VALS))
    feed(core, vote(PRECOMMIT, 0, A, "DE"), vote(PRECOMMIT, 0, None, "NL"))
    feed(core, vote(PRECOMMIT, 0, None, "US"), TimeoutFired(Timeout("precommit", 1, 0)))
    out = feed(core, TimeoutFired(Timeout("propose", 1, 1)))  # prevote nil in round 1
    restored, _ = _restart(out.persist)
    assert restored.round == 1
    relayed = {(m.sender, m.round) for m in restored.gossip_messages() if isinstance(m, SignedVote)}
    # Peers still in round 0 get the 2f+1 precommits that justify round 1.
    assert {("DE", 0), ("NL", 0), ("US", 0), ("CN", 1)} <= relayed


def test_restart_keeps_the_polka_behind_its_lock() -> None:
    # Lines 36-43: a validator locks on A on 2f+1 prevotes. If it (and every honest
    # peer) restarts later, those prevotes must survive with the lock: a proposal of A
    # carries pol_round 0, and line 28 accepts it only with that polka in hand.
    # (The simulator's seed 8902 at n=4, B=1 stalled forever without this.)
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"))
    core.step(StartHeight(1, VALS))
    lock_on(core, 0, A)
    feed(core, vote(PRECOMMIT, 0, None, "DE"), vote(PRECOMMIT, 0, None, "NL"))
    feed(core, TimeoutFired(Timeout("precommit", 1, 0)))
    out = feed(core, TimeoutFired(Timeout("propose", 1, 1)))  # prevote in round 1
    restored, _ = _restart(out.persist)
    assert (restored.locked_round, restored.valid_round, restored.valid_value) == (0, 0, A)
    polka = {
        (m.sender, m.vote.block)
        for m in restored.gossip_messages()
        if isinstance(m, SignedVote) and m.vote.type == PREVOTE and m.round == 0
    }
    assert {("DE", A), ("NL", A), ("CN", A)} <= polka
