"""Unit tests of the consensus core, named after the lines of Algorithm 1 in Buchman,
Kwon and Milosevic, "The latest gossip on BFT consensus" (2018).

Validators CN, DE, NL, US (ordered by id); proposer(h, r) = validators[(h + r) mod 4],
so at height 1: round 0 DE, round 1 NL, round 2 US, round 3 CN. The core under test
is CN unless a test says otherwise.
"""

from __future__ import annotations

import hashlib

import pytest

from ledger.block import PRECOMMIT, PREVOTE, Commit, Proposal, Vote, verify_commit
from ledger.genesis import ValidatorSet
from node.consensus import (
    CommitLearned,
    ConsensusCore,
    Decision,
    InputError,
    Output,
    ProposalReceived,
    ProposeRequest,
    SignedProposal,
    SignedVote,
    StartHeight,
    Timeout,
    TimeoutConfig,
    TimeoutFired,
    TimeoutRequest,
    ValidityRequest,
    ValidityVerdict,
    ValueToPropose,
    VoteReceived,
    Wake,
    drive,
    sign_proposal,
    sign_vote,
)
from node.consensus.core import MAX_ROUNDS_AHEAD
from node.consensus.messages import Message
from node.daemon.config import Timeouts
from tests.factories import CHAIN_ID, member_key

IDS = ("CN", "DE", "NL", "US")
VALS = ValidatorSet.of([(i, member_key(i).public_key) for i in IDS])
A = hashlib.sha256(b"block A").digest()
B = hashlib.sha256(b"block B").digest()


def start(me: str = "CN", height: int = 1) -> tuple[ConsensusCore, Output]:
    core = ConsensusCore(CHAIN_ID, me, member_key(me))
    return core, core.step(StartHeight(height, VALS))


def proposal(round_: int, block: bytes, pol: int = -1, height: int = 1) -> ProposalReceived:
    sender = VALS.proposer(height, round_)
    signed = sign_proposal(
        member_key(sender), CHAIN_ID, sender, Proposal(height, round_, block, pol)
    )
    return ProposalReceived(signed)


def vote(type_: str, round_: int, block: bytes | None, by: str, height: int = 1) -> VoteReceived:
    return VoteReceived(sign_vote(member_key(by), CHAIN_ID, by, Vote(type_, height, round_, block)))


def sent_votes(out: Output, type_: str) -> list[bytes | None]:
    return [m.vote.block for m in out.send if isinstance(m, SignedVote) and m.vote.type == type_]


def feed(core: ConsensusCore, *events: object) -> Output:
    """Step each event; merge what was sent and armed into one Output for asserts."""
    merged = Output()
    for event in events:
        out = core.step(event)  # type: ignore[arg-type]
        merged.send += out.send
        merged.timeouts += out.timeouts
        merged.decided += out.decided
        merged.evidence += out.evidence
        merged.validity_checks += out.validity_checks
        merged.propose_requests += out.propose_requests
        merged.persist = out.persist or merged.persist
        if out.need_blocks_up_to is not None:
            merged.need_blocks_up_to = out.need_blocks_up_to
        for reason, count in out.dropped.items():
            merged.dropped[reason] = merged.dropped.get(reason, 0) + count
    return merged


def lock_on(core: ConsensusCore, round_: int, block: bytes) -> Output:
    """Proposal and a polka for ``block`` in ``round_``: lines 22 and 36."""
    voters = [i for i in IDS if i != core.member_id][:2]
    return feed(
        core,
        proposal(round_, block),
        ValidityVerdict(1, block, True),
        *(vote(PREVOTE, round_, block, v) for v in voters),
    )


def next_round_by_timeout(core: ConsensusCore) -> None:
    """2f+1 precommits of any kind, then timeoutPrecommit (lines 47 and 65)."""
    round_ = core.round
    others = [i for i in IDS if i != core.member_id][:2]
    feed(core, *(vote(PRECOMMIT, round_, None, v) for v in others))
    if core.phase < 2:
        feed(core, TimeoutFired(Timeout("prevote", 1, round_)))
    feed(core, TimeoutFired(Timeout("precommit", 1, round_)))
    assert core.round == round_ + 1


# ---- StartRound ---------------------------------------------------------------------


def test_line_21_non_proposer_schedules_timeout_propose() -> None:
    _, out = start("CN")
    assert out.timeouts == [TimeoutRequest(Timeout("propose", 1, 0), 3000)]
    assert out.propose_requests == [] and out.send == []


def test_line_16_proposer_asks_host_for_value_then_proposes_and_prevotes() -> None:
    core, out = start("DE")
    assert out.propose_requests == [ProposeRequest(1, 0)]
    out = core.step(ValueToPropose(1, 0, A))
    proposals = [m for m in out.send if isinstance(m, SignedProposal)]
    assert [p.proposal for p in proposals] == [Proposal(1, 0, A, -1)]
    assert sent_votes(out, PREVOTE) == [A]  # its own proposal, line 22
    assert out.persist is not None  # durable before anything is sent


def test_line_14_proposer_reproposes_valid_value_with_valid_round() -> None:
    core, _ = start("CN")
    feed(core, TimeoutFired(Timeout("propose", 1, 0)))  # prevote nil
    feed(core, vote(PREVOTE, 0, A, "DE"), vote(PREVOTE, 0, A, "NL"))
    feed(core, TimeoutFired(Timeout("prevote", 1, 0)))  # precommit nil
    feed(core, proposal(0, A), ValidityVerdict(1, A, True), vote(PREVOTE, 0, A, "US"))
    assert (core.valid_value, core.valid_round) == (A, 0)
    # Line 55 takes CN to round 3, where it proposes: validValue, not a new value.
    out = feed(core, vote(PREVOTE, 3, None, "DE"), vote(PREVOTE, 3, None, "NL"))
    assert core.round == 3
    assert out.propose_requests == []
    assert [m.proposal for m in out.send if isinstance(m, SignedProposal)] == [Proposal(1, 3, A, 0)]


# ---- prevote --------------------------------------------------------------------------


def test_line_22_prevote_proposal_when_unlocked() -> None:
    core, _ = start()
    out = core.step(proposal(0, A))
    assert out.validity_checks == [ValidityRequest(1, A)]
    assert out.send == []  # waits for valid(v)
    out = core.step(ValidityVerdict(1, A, True))
    assert sent_votes(out, PREVOTE) == [A]


def test_line_25_prevote_nil_for_invalid_proposal() -> None:
    core, _ = start()
    out = feed(core, proposal(0, A), ValidityVerdict(1, A, False))
    assert sent_votes(out, PREVOTE) == [None]


def test_line_25_locked_node_prevotes_nil_for_another_value() -> None:
    core, _ = start()
    lock_on(core, 0, A)
    assert (core.locked_value, core.locked_round) == (A, 0)
    next_round_by_timeout(core)
    out = feed(core, proposal(1, B), ValidityVerdict(1, B, True))
    assert sent_votes(out, PREVOTE) == [None]


def test_line_23_locked_node_prevotes_its_locked_value_again() -> None:
    core, _ = start()
    lock_on(core, 0, A)
    next_round_by_timeout(core)
    out = feed(core, proposal(1, A))
    assert sent_votes(out, PREVOTE) == [A]


def test_line_28_unlock_on_later_polka_via_valid_round() -> None:
    core, _ = start()
    lock_on(core, 0, A)
    next_round_by_timeout(core)  # round 1
    feed(core, TimeoutFired(Timeout("propose", 1, 1)))  # prevote nil in round 1
    # A polka for B in round 1 that CN saw without B's proposal, so it did not lock.
    feed(core, *(vote(PREVOTE, 1, B, v) for v in ("DE", "NL", "US")))
    assert core.locked_round == 0
    next_round_by_timeout(core)  # round 2, proposer US
    out = feed(core, proposal(2, B, pol=1), ValidityVerdict(1, B, True))
    assert sent_votes(out, PREVOTE) == [B]  # lockedRound 0 <= vr 1


def test_line_29_lock_newer_than_pol_round_keeps_nil() -> None:
    core, _ = start()
    feed(core, TimeoutFired(Timeout("propose", 1, 0)))
    feed(core, *(vote(PREVOTE, 0, B, v) for v in ("DE", "NL", "US")))  # old polka for B
    next_round_by_timeout(core)  # round 1
    lock_on(core, 1, A)
    assert core.locked_round == 1
    next_round_by_timeout(core)  # round 2
    out = feed(core, proposal(2, B, pol=0), ValidityVerdict(1, B, True))
    assert sent_votes(out, PREVOTE) == [None]


def test_line_28_needs_the_pol_quorum_before_prevoting() -> None:
    core, _ = start()
    out = feed(core, proposal(0, A), ValidityVerdict(1, A, True))
    next_round_by_timeout(core)
    out = feed(core, proposal(1, B, pol=0), ValidityVerdict(1, B, True))
    assert sent_votes(out, PREVOTE) == []  # no 2f+1 prevotes for B in round 0 yet
    out = feed(
        core, vote(PREVOTE, 0, B, "DE"), vote(PREVOTE, 0, B, "NL"), vote(PREVOTE, 0, B, "US")
    )
    assert sent_votes(out, PREVOTE) == [B]


# ---- precommit ------------------------------------------------------------------------


def test_line_36_lock_on_polka() -> None:
    core, _ = start()
    out = lock_on(core, 0, A)
    assert sent_votes(out, PRECOMMIT) == [A]
    assert (core.locked_value, core.locked_round) == (A, 0)
    assert (core.valid_value, core.valid_round) == (A, 0)
    assert core.signing_state is not None and core.signing_state.locked_value == A


def test_line_42_valid_value_updates_after_precommit_without_locking() -> None:
    core, _ = start()
    feed(core, TimeoutFired(Timeout("propose", 1, 0)))
    feed(core, vote(PREVOTE, 0, A, "DE"), vote(PREVOTE, 0, A, "NL"))
    feed(core, TimeoutFired(Timeout("prevote", 1, 0)))
    out = feed(core, proposal(0, A), ValidityVerdict(1, A, True), vote(PREVOTE, 0, A, "US"))
    assert (core.valid_value, core.valid_round) == (A, 0)
    assert core.locked_round == -1
    assert sent_votes(out, PRECOMMIT) == []
    assert out.persist is not None  # validValue is part of the durable record


def test_line_44_precommit_nil_on_nil_polka() -> None:
    core, _ = start()
    feed(core, TimeoutFired(Timeout("propose", 1, 0)))
    out = feed(core, vote(PREVOTE, 0, None, "DE"), vote(PREVOTE, 0, None, "NL"))
    assert sent_votes(out, PRECOMMIT) == [None]


# ---- timeouts -------------------------------------------------------------------------


def test_line_34_schedules_timeout_prevote_on_any_2f1_prevotes() -> None:
    core, _ = start()
    feed(core, TimeoutFired(Timeout("propose", 1, 0)))
    out = feed(core, vote(PREVOTE, 0, A, "DE"), vote(PREVOTE, 0, B, "NL"))
    assert out.timeouts == [TimeoutRequest(Timeout("prevote", 1, 0), 1000)]
    out = feed(core, vote(PREVOTE, 0, A, "US"))
    assert out.timeouts == []  # for the first time only


def test_line_47_schedules_timeout_precommit_on_any_2f1_precommits() -> None:
    core, _ = start()
    out = feed(
        core,
        vote(PRECOMMIT, 0, A, "DE"),
        vote(PRECOMMIT, 0, None, "NL"),
        vote(PRECOMMIT, 0, B, "US"),
    )
    assert TimeoutRequest(Timeout("precommit", 1, 0), 1000) in out.timeouts


def test_line_57_timeout_propose_prevotes_nil() -> None:
    core, _ = start()
    out = core.step(TimeoutFired(Timeout("propose", 1, 0)))
    assert sent_votes(out, PREVOTE) == [None]
    out = core.step(TimeoutFired(Timeout("propose", 1, 0)))
    assert out.send == []  # no longer in step propose


def test_line_61_timeout_prevote_precommits_nil() -> None:
    core, _ = start()
    feed(core, proposal(0, A), ValidityVerdict(1, A, True))
    out = core.step(TimeoutFired(Timeout("prevote", 1, 0)))
    assert sent_votes(out, PRECOMMIT) == [None]


def test_line_65_timeout_precommit_starts_next_round() -> None:
    core, _ = start()
    out = core.step(TimeoutFired(Timeout("precommit", 1, 0)))
    assert core.round == 1 and core.phase == 0
    assert out.timeouts == [TimeoutRequest(Timeout("propose", 1, 1), 3500)]


def test_timeouts_of_another_round_or_height_are_ignored() -> None:
    core, _ = start()
    for stale in (Timeout("propose", 1, 1), Timeout("propose", 2, 0), Timeout("precommit", 1, 3)):
        assert core.step(TimeoutFired(stale)).send == []
    assert core.round == 0


def test_timeouts_grow_linearly_with_round_each_step_by_its_own_delta() -> None:
    config = TimeoutConfig(
        propose_ms=100,
        propose_delta_ms=10,
        prevote_ms=50,
        prevote_delta_ms=20,
        precommit_ms=70,
        precommit_delta_ms=30,
    )
    assert [config.duration("propose", r) for r in range(3)] == [100, 110, 120]
    assert config.duration("prevote", 4) == 130
    assert config.duration("precommit", 2) == 130


def test_a_round_1_timeout_includes_node_tomls_delta_for_its_step() -> None:
    # node.toml's prevote_delta_ms and precommit_delta_ms were once never read: every
    # step grew by propose_delta_ms.
    timeouts = Timeouts(
        propose_ms=400,
        propose_delta_ms=1,
        prevote_ms=300,
        prevote_delta_ms=20,
        precommit_ms=300,
        precommit_delta_ms=70,
    )
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"), timeouts=timeouts.consensus())
    core.step(StartHeight(1, VALS))
    next_round_by_timeout(core)
    assert core.round == 1
    others = ("DE", "NL", "US")
    out = feed(
        core,
        TimeoutFired(Timeout("propose", 1, 1)),  # line 57: prevote nil, on to prevote
        vote(PREVOTE, 1, A, "DE"),  # line 34: 2f+1 prevotes, no polka for any one value
        vote(PREVOTE, 1, B, "NL"),
        *(vote(PRECOMMIT, 1, None, v) for v in others),  # line 47
    )
    armed = {r.timeout.kind: r.after_ms for r in out.timeouts if r.timeout.round == 1}
    assert armed == {"prevote": 320, "precommit": 370}


# ---- deciding and skipping ------------------------------------------------------------


def test_line_49_decide_on_2f1_precommits_with_a_commit_that_verifies() -> None:
    core, _ = start()
    lock_on(core, 0, A)
    out = feed(core, vote(PRECOMMIT, 0, A, "DE"), vote(PRECOMMIT, 0, A, "NL"))
    [decision] = out.decided
    assert (decision.height, decision.round, decision.block, decision.proposal_seen) == (
        1,
        0,
        A,
        True,
    )
    verify_commit(decision.commit, VALS, CHAIN_ID, height=1, block=A)
    assert core.decided
    assert core.step(vote(PRECOMMIT, 0, A, "US")).dropped == {"decided": 1}


def test_line_49_decides_in_an_earlier_round_too() -> None:
    core, _ = start()
    next_round_by_timeout(core)
    out = feed(core, *(vote(PRECOMMIT, 0, B, v) for v in ("DE", "NL", "US")))
    assert [d.block for d in out.decided] == [B]
    assert out.decided[0].proposal_seen is False  # the host must fetch B


def test_line_55_round_skip_on_f_plus_1_messages_of_a_higher_round() -> None:
    core, _ = start()
    feed(core, vote(PREVOTE, 5, None, "DE"))
    assert core.round == 0  # f = 1 message is not enough
    out = feed(core, vote(PRECOMMIT, 5, A, "NL"))
    assert core.round == 5
    assert TimeoutRequest(Timeout("propose", 1, 5), 5500) in out.timeouts


def test_line_55_a_proposal_counts_as_a_message_of_its_round() -> None:
    core, _ = start()
    feed(core, proposal(2, A), vote(PREVOTE, 2, None, "NL"))
    assert core.round == 2


def test_n1_decides_alone() -> None:
    solo = ValidatorSet.of([("CN", member_key("CN").public_key)])
    core = ConsensusCore(CHAIN_ID, "CN", member_key("CN"))
    host = _RecordingHost(solo, heights=3)
    drive(core, host, StartHeight(1, solo))
    assert [d.height for d in host.decided] == [1, 2, 3]
    for d in host.decided:
        verify_commit(d.commit, solo, CHAIN_ID, height=d.height, block=d.block)
    # Every send of a newly signed message follows the persist of the same output.
    sends = [i for i, what in enumerate(host.order) if what == "send"]
    assert sends and all(host.order[i - 1] == "persist" for i in sends)
    assert host.order.index("apply") > sends[0]


def test_a_step_that_decides_asks_nothing_more_of_the_decided_height() -> None:
    # Issue 22: starting height 2 replays buffered messages that decide it in round 1,
    # in the same step that made NL, proposer of round 0, ask for a block. The host has
    # just stored height 2 when it would answer: nothing may be asked of that height.
    core, _ = start("NL")
    buffered = [proposal(1, B, height=2), *(vote(PRECOMMIT, 1, B, v, 2) for v in ("CN", "DE"))]
    feed(core, *buffered, vote(PRECOMMIT, 1, B, "US", 2), CommitLearned(_commit(1, A)))
    assert core.decided and core.height == 1
    host = _RecordingHost(VALS, heights=2)
    drive(core, host, StartHeight(2, VALS, _commit(1, A)))
    assert [d.height for d in host.decided] == [2]
    assert host.order == ["apply"]  # no timer, check or proposal for height 2


class _RecordingHost:
    """A real host in memory: answers at once and records the order it was driven."""

    def __init__(self, validators: ValidatorSet, heights: int) -> None:
        self.validators, self.heights = validators, heights
        self.decided: list[Decision] = []
        self.order: list[str] = []

    def persist(self, record: bytes) -> None:
        self.order.append("persist")

    def send(self, messages: object) -> None:
        self.order.append("send")

    def apply(self, decision: Decision) -> StartHeight | None:
        self.order.append("apply")
        self.decided.append(decision)
        if decision.height >= self.heights:
            return None
        return StartHeight(decision.height + 1, self.validators, decision.commit)

    def arm(self, request: TimeoutRequest) -> None:
        self.order.append("arm")

    def check_validity(self, request: ValidityRequest) -> bool | None:
        return True

    def value_to_propose(self, request: ProposeRequest) -> bytes | None:
        self.order.append("propose")
        return hashlib.sha256(f"{request.height}/{request.round}".encode()).digest()

    def need_blocks(self, up_to: int) -> None:
        self.order.append("need")

    def report(self, output: Output) -> None:
        pass


# ---- commits from peers, heights --------------------------------------------------------


def _commit(height: int, block: bytes, signers: tuple[str, ...] = ("DE", "NL", "US")) -> Commit:
    sigs = {i: Vote(PRECOMMIT, height, 0, block).sign(member_key(i), CHAIN_ID) for i in signers}
    return Commit.from_precommits(height, 0, block, sigs)


def test_commit_learned_for_current_height_decides() -> None:
    core, _ = start()
    out = core.step(CommitLearned(_commit(1, A)))
    assert [d.block for d in out.decided] == [A]


def test_commit_learned_for_later_height_asks_for_blocks() -> None:
    core, _ = start()
    out = core.step(CommitLearned(_commit(4, A)))
    assert out.need_blocks_up_to == 4 and out.decided == []


def test_commit_without_quorum_is_dropped() -> None:
    core, _ = start()
    out = core.step(CommitLearned(_commit(1, A, ("DE", "NL"))))
    assert out.dropped == {"bad_commit": 1} and not core.decided


def test_next_height_messages_are_buffered_until_start_height() -> None:
    core, _ = start()
    early = proposal(0, B, height=2)
    assert core.step(early).dropped == {}
    core.step(CommitLearned(_commit(1, A)))
    out = feed(core, StartHeight(2, VALS, _commit(1, A)), ValidityVerdict(2, B, True))
    assert sent_votes(out, PREVOTE) == [B]


def test_start_height_must_move_forward() -> None:
    core, _ = start()
    with pytest.raises(InputError):
        core.step(StartHeight(1, VALS))


# ---- what is dropped and counted --------------------------------------------------------


def test_drops_are_counted_by_reason() -> None:
    core, _ = start()
    forged = sign_vote(member_key("XX"), CHAIN_ID, "DE", Vote(PREVOTE, 1, 0, A))
    outsider = sign_vote(member_key("XX"), CHAIN_ID, "XX", Vote(PREVOTE, 1, 0, A))
    wrong_chain = sign_vote(member_key("DE"), "other-chain", "DE", Vote(PREVOTE, 1, 0, A))
    not_proposer = sign_proposal(member_key("NL"), CHAIN_ID, "NL", Proposal(1, 0, A, -1))
    out = feed(
        core,
        VoteReceived(forged),
        VoteReceived(outsider),
        VoteReceived(wrong_chain),
        ProposalReceived(not_proposer),
        vote(PREVOTE, 0, A, "DE", height=3),
        vote(PREVOTE, 0, A, "DE"),
        vote(PREVOTE, 0, A, "DE"),
    )
    assert out.dropped == {
        "bad_signature": 2,
        "non_validator": 1,
        "not_proposer": 1,
        "future_height": 1,
        "duplicate": 1,
    }
    assert core.step(vote(PREVOTE, 0, A, "NL")).dropped == {}


def test_conflicting_votes_become_evidence() -> None:
    core, _ = start()
    out = feed(
        core, vote(PREVOTE, 0, A, "DE"), vote(PREVOTE, 0, B, "DE"), vote(PREVOTE, 0, None, "DE")
    )
    [evidence] = out.evidence  # one record per (validator, round, type)
    assert evidence.validator == "DE"
    assert {evidence.first.vote.block, evidence.second.vote.block} == {A, B}
    evidence.verify(VALS, CHAIN_ID)


def test_own_messages_returned_for_gossip() -> None:
    core, _ = start()
    feed(core, proposal(0, A), ValidityVerdict(1, A, True))
    gossip: list[Message] = core.gossip_messages()
    assert any(isinstance(m, SignedVote) and m.sender == "CN" for m in gossip)
    assert any(isinstance(m, SignedProposal) for m in gossip)


def test_next_height_buffer_is_bounded_per_validator() -> None:
    core, _ = start()
    out = feed(core, *(vote(PREVOTE, r, A, "DE", height=2) for r in range(12)))
    assert out.dropped == {"future_buffer_full": 4}
    assert feed(core, vote(PREVOTE, 0, A, "NL", height=2)).dropped == {}


def test_line_19_a_second_value_from_the_host_is_never_proposed() -> None:
    core, _ = start("DE")
    first = core.step(ValueToPropose(1, 0, A))
    second = core.step(ValueToPropose(1, 0, B))
    assert [type(m) for m in first.send] == [SignedProposal, SignedVote]
    assert second.send == []


# ---- what a host may skip before decoding a block ------------------------------------------


def _signed(
    height: int, round_: int, *, by: str | None = None, key_of: str | None = None
) -> SignedProposal:
    sender = by or VALS.proposer(height, round_)
    proposal = Proposal(height, round_, A, -1)
    return sign_proposal(member_key(key_of or sender), CHAIN_ID, sender, proposal)


def test_proposal_unusable_names_the_drop_reason_before_any_block_is_decoded() -> None:
    core, _ = start("CN", height=2)
    assert core.proposal_unusable(_signed(2, 0)) is None
    assert core.proposal_unusable(_signed(2, 5)) is None
    assert core.proposal_unusable(_signed(3, 0)) is None  # next height: buffered for later
    assert core.proposal_unusable(_signed(1, 0)) == "old_height"
    assert core.proposal_unusable(_signed(4, 0)) == "future_height"
    assert core.proposal_unusable(_signed(2, MAX_ROUNDS_AHEAD + 1)) == "round_too_far"
    assert core.proposal_unusable(_signed(3, MAX_ROUNDS_AHEAD + 1)) == "round_too_far"
    not_its_turn = next(i for i in IDS if i != VALS.proposer(2, 0))
    assert core.proposal_unusable(_signed(2, 0, by=not_its_turn)) == "not_proposer"
    assert core.proposal_unusable(_signed(2, 0, key_of=not_its_turn)) == "bad_signature"
    # The intake that follows agrees: the forgery is dropped for its signature there too.
    out = core.step(ProposalReceived(_signed(2, 0, key_of=not_its_turn)))
    assert out.dropped == {"bad_signature": 1}
    assert ConsensusCore(CHAIN_ID, "CN", member_key("CN")).proposal_unusable(_signed(1, 0)) == (
        "not_started"
    )


def test_blocks_in_play_are_this_and_earlier_rounds_proposals_and_the_lock() -> None:
    core, _ = start("CN")
    assert core.blocks_in_play() == frozenset()
    feed(core, proposal(0, A))
    # A proposal for a later round (its proposer's turn, correctly signed) is not kept.
    feed(core, proposal(2, B))
    assert core.blocks_in_play() == {A}
    lock_on(core, 0, A)
    assert core.locked_value == A and core.blocks_in_play() == {A}


# ---- held heights (StartHeight.hold, genesis empty_block_interval_ms) ---------------


def held(me: str = "CN", height: int = 1) -> tuple[ConsensusCore, Output]:
    core = ConsensusCore(CHAIN_ID, me, member_key(me))
    return core, core.step(StartHeight(height, VALS, hold=True))


def test_a_held_height_asks_for_nothing_and_arms_nothing() -> None:
    for me in ("CN", "DE"):  # a follower, and the round-0 proposer
        core, out = held(me)
        assert core.waiting and (core.height, core.round) == (1, 0)
        assert out.timeouts == [] and out.propose_requests == [] and out.send == []
        assert core.gossip_messages() == []


def test_wake_starts_round_0_as_an_unheld_start_would() -> None:
    follower, _ = held("CN")
    out = follower.step(Wake(1))
    assert not follower.waiting
    assert [t.timeout for t in out.timeouts] == [Timeout("propose", 1, 0)]
    proposer, _ = held("DE")
    assert proposer.step(Wake(1)).propose_requests == [ProposeRequest(1, 0)]


def test_wake_for_another_height_or_a_second_wake_changes_nothing() -> None:
    core, _ = held("CN", height=2)
    assert core.step(Wake(1)).timeouts == [] and core.waiting
    core.step(Wake(2))
    assert core.step(Wake(2)).timeouts == []


def test_a_validators_signed_message_wakes_a_held_height_and_counts() -> None:
    core, _ = held("CN")
    out = feed(core, proposal(0, A))
    assert not core.waiting
    assert Timeout("propose", 1, 0) in [t.timeout for t in out.timeouts]
    assert out.validity_checks == [ValidityRequest(1, A)]
    core2, _ = held("CN")
    out2 = feed(core2, vote(PREVOTE, 0, None, "NL"))
    assert not core2.waiting and [t.timeout for t in out2.timeouts] == [Timeout("propose", 1, 0)]


def test_a_forged_or_outsiders_message_does_not_wake_a_held_height() -> None:
    core, _ = held("CN")
    forged = sign_vote(member_key("XX"), CHAIN_ID, "NL", Vote(PREVOTE, 1, 0, None))
    out = feed(core, VoteReceived(forged), vote(PREVOTE, 0, None, "XX"))
    assert core.waiting and out.timeouts == []
    assert out.dropped == {"bad_signature": 1, "non_validator": 1}


def test_a_held_height_still_decides_on_a_peers_commit() -> None:
    core, _ = held("CN")
    signatures = [
        (by, sign_vote(member_key(by), CHAIN_ID, by, Vote(PRECOMMIT, 1, 0, A)).sig)
        for by in ("DE", "NL", "US")
    ]
    out = feed(core, CommitLearned(Commit(1, 0, A, tuple(signatures))))
    assert [d.block for d in out.decided] == [A]


def test_a_restored_signing_record_overrides_the_hold() -> None:
    core, _ = start("CN")
    feed(core, proposal(0, A), ValidityVerdict(1, A, True))
    record = core.signing_state
    assert record is not None and record.height == 1
    again = ConsensusCore(CHAIN_ID, "CN", member_key("CN"), restored=record)
    out = again.step(StartHeight(1, VALS, hold=True))
    assert not again.waiting and sent_votes(out, PREVOTE) == [A]
