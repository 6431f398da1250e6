"""Tendermint consensus as a sans-I/O state machine.

Follows Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT
consensus" (2018); comments cite its line numbers. The host steps the core with one
input at a time (``node.consensus.events``) and applies the returned ``Output`` in the
documented order: persist, send, apply decisions, arm timers.

Departures from the paper, each for a reason:
- blocks are opaque: ``valid(v)`` is the host's verdict, asked for with a
  ``ValidityRequest`` and answered with a ``ValidityVerdict``; ``getValue()`` is a
  ``ProposeRequest`` answered with ``ValueToPropose``;
- the proposer arms timeoutPropose too (as Tendermint-go does), so a host that never
  answers a ``ProposeRequest`` cannot stall the round;
- line 49 decides on 2f+1 precommits for v alone: they form a commit, which is
  self-certifying (at least f+1 correct validators judged v valid). The ``Decision``
  says whether the proposal was seen, so the host knows whether to fetch the block;
- a verified commit from a peer (``CommitLearned``) decides the same way;
- after deciding, the core waits for the host's ``StartHeight`` (it needs the next
  validator set) and buffers a bounded number of next-height messages meanwhile;
- a height can start held (``StartHeight.hold``): round 0 begins only on the host's
  ``Wake`` or on the first validly signed proposal or vote for the height from a
  validator. Starting a round late is a delay the paper's model already allows (the
  process is merely slow), so safety is untouched; liveness holds because any correct
  validator that wakes sends a signed message within its propose timeout, which wakes the
  rest. It lets an idle network make no blocks between heartbeats.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.block import PRECOMMIT, PREVOTE, Commit, Proposal, Vote, verify_commit
from ledger.errors import CommitError
from ledger.genesis import ValidatorSet
from ledger.keys import SigningKey
from node.consensus.errors import InputError, MessageFormatError, SigningStateError
from node.consensus.events import (
    PRECOMMIT_TIMEOUT,
    PREVOTE_TIMEOUT,
    PROPOSE_TIMEOUT,
    CommitLearned,
    Decision,
    Input,
    Output,
    ProposalReceived,
    ProposeRequest,
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
)
from node.consensus.evidence import Equivocation
from node.consensus.messages import (
    Message,
    SignedProposal,
    SignedVote,
    VerifyCache,
    decode_message,
    sign_proposal,
    sign_vote,
)
from node.consensus.signing_state import (
    MAX_PROOF_KEPT,
    MAX_SIGNED_KEPT,
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    STEP_PROPOSAL,
    SigningState,
)
from node.consensus.votes import AddResult, HeightVotes

__all__ = ["MAX_ROUNDS_AHEAD", "ConsensusCore"]

# step_p of the paper; the values match the signing-state steps so that "the step I am
# in" and "the last kind I signed" compare directly.
PROPOSE, PREVOTE_STEP, PRECOMMIT_STEP = STEP_PROPOSAL, STEP_PREVOTE, STEP_PRECOMMIT
# A byzantine validator could otherwise make us store one vote per round forever.
MAX_ROUNDS_AHEAD = 1000
MAX_PROPOSALS_PER_ROUND = 2
_FUTURE_BUFFER_PER_VALIDATOR = 8


class ConsensusCore:
    """One validator's (or observer's, with ``key=None``) view of consensus."""

    def __init__(
        self,
        chain_id: str,
        member_id: str,
        key: SigningKey | None,
        *,
        timeouts: TimeoutConfig | None = None,
        cache: VerifyCache | None = None,
        restored: SigningState | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.member_id = member_id
        self._key = key
        self._timeouts = timeouts or TimeoutConfig()
        self._cache = cache or VerifyCache()
        self._signing = restored
        self.validators: ValidatorSet | None = None
        self.last_commit: Commit | None = None
        self.height = 0
        self.round = 0
        self.phase = PROPOSE
        self.decided = False
        # Held before round 0 of this height (StartHeight.hold): nothing armed, nothing asked.
        self.waiting = False
        self._future: list[Message] = []
        self._out = Output()
        self._reset_height_state()

    def _reset_height_state(self) -> None:
        self.locked_round: int = -1
        self.locked_value: bytes | None = None
        self.valid_round: int = -1
        self.valid_value: bytes | None = None
        self._locks_persisted: tuple[int, bytes | None, int, bytes | None] = (-1, None, -1, None)
        self._proposals: dict[int, dict[bytes, SignedProposal]] = {}
        self._votes = HeightVotes(self.validators) if self.validators else None
        self._verdicts: dict[bytes, bool] = {}
        self._requested: set[bytes] = set()
        self._fired: set[tuple[str, int]] = set()
        self._precommit_quorums: list[tuple[int, bytes]] = []
        self._accused: set[tuple[str, int, str]] = set()
        self._own: list[Message] = []
        self._proof: tuple[bytes, ...] = ()

    # ---- public -----------------------------------------------------------------------

    @property
    def signing_state(self) -> SigningState | None:
        return self._signing

    def own_messages(self) -> list[Message]:
        """What this node signed at the current height, for the host to send again when
        the network may have lost it (gossip); re-sending is never a double-sign."""
        return list(self._own[-MAX_SIGNED_KEPT:])

    def gossip_messages(self) -> list[Message]:
        """What the host sends again when progress stalls: our own messages, the current
        round's proposal, the votes of this round and the one before (what moved us
        here), and the prevotes behind our validValue (the POL a
        proposal's pol_round points to). The paper's liveness argument assumes this
        relaying: what one correct process receives, every correct one eventually does.
        """
        if self._votes is None or self.decided or self.waiting:
            return []
        relay: list[Message] = list(self._proposals.get(self.round, {}).values())
        for round_ in range(max(0, self.round - 1), self.round + 1):
            for type_ in (PREVOTE, PRECOMMIT):
                relay.extend(self._votes.get(round_, type_).all_votes())
        if self.valid_round >= 0:
            relay.extend(self._votes.get(self.valid_round, PREVOTE).all_votes())
        mine = set(map(id, relay))
        return [m for m in self.own_messages() if id(m) not in mine] + relay

    def proposal_unusable(self, message: SignedProposal) -> str | None:
        """Why ``message`` could not be used at all (a drop reason), or None.

        The checks of proposal intake that need no block: the height and round window,
        whose turn it is to propose, the signature (remembered, so the intake that
        follows does not verify it again). A host runs them before decoding the block
        that a proposal carries: a block nobody will use costs no decode and takes no
        room in the host's cache. A next-height proposal passes as far as can be told
        before that height starts.
        """
        if self.validators is None:
            return "not_started"
        proposal = message.proposal
        if proposal.height == self.height:
            if self.decided:
                return "decided"
            if proposal.round > self.round + MAX_ROUNDS_AHEAD:
                return "round_too_far"
        elif proposal.height == self.height + 1:
            if proposal.round > MAX_ROUNDS_AHEAD:
                return "round_too_far"
        else:
            return "old_height" if proposal.height < self.height else "future_height"
        if message.sender != self.validators.proposer(proposal.height, proposal.round):
            return "not_proposer"
        if not self._cache.verify(self.validators, self.chain_id, message):
            return "bad_signature"
        return None

    def blocks_in_play(self) -> frozenset[bytes]:
        """Blocks this height can still decide that the host should keep at hand: those
        proposed in this round or an earlier one, and the locked and valid values.
        Proposals for later rounds are left out: a byzantine proposer can sign some for
        each of its turns in the round window."""
        kept = {
            block
            for round_, proposals in self._proposals.items()
            if round_ <= self.round
            for block in proposals
        }
        kept.update(v for v in (self.locked_value, self.valid_value) if v is not None)
        return frozenset(kept)

    def step(self, event: Input) -> Output:
        """Apply one input; return what the host must persist, send, apply and arm."""
        self._out = out = Output()
        self._dispatch(event)
        if self.validators is not None and not self.decided and not self.waiting:
            self._run_rules()
        self._persist_locks()
        self._out = Output()
        return out

    def _dispatch(self, event: Input) -> None:
        if isinstance(event, VoteReceived):
            self._on_vote(event.message)
        elif isinstance(event, ProposalReceived):
            self._on_proposal(event.message)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event.timeout)
        elif isinstance(event, ValidityVerdict):
            if event.height == self.height:
                self._verdicts[event.block] = event.valid
        elif isinstance(event, ValueToPropose):
            self._on_value(event)
        elif isinstance(event, CommitLearned):
            self._on_commit(event.commit)
        elif isinstance(event, StartHeight):
            self._on_start_height(event)
        elif isinstance(event, Wake):
            if event.height == self.height:
                self._wake()
        else:  # pragma: no cover - the Input union is closed
            raise InputError(f"unknown input {type(event).__name__}")

    # ---- heights and rounds -----------------------------------------------------------

    def _on_start_height(self, event: StartHeight) -> None:
        if event.height <= self.height:
            raise InputError(f"start of height {event.height} at height {self.height}")
        self.validators, self.last_commit = event.validators, event.last_commit
        self.height, self.decided, self.waiting = event.height, False, False
        self._reset_height_state()
        record = self._signing
        if record is not None and record.height == self.height:
            self._restore(record)  # signed here already: acting, whatever the host's hold
        elif event.hold:
            self.waiting, self.round, self.phase = True, 0, PROPOSE
        else:
            self._start_round(0)
        buffered, self._future = self._future, []
        for message in buffered:
            self._dispatch(
                VoteReceived(message)
                if isinstance(message, SignedVote)
                else ProposalReceived(message)
            )

    def _restore(self, record: SigningState) -> None:
        """Resume where the persisted record says; re-send what was signed there."""
        self.round, self.phase = record.round, record.step
        self.locked_round, self.locked_value = record.locked_round, record.locked_value
        self.valid_round, self.valid_value = record.valid_round, record.valid_value
        self._locks_persisted = self._locks()
        for message in _decode_all(record.signed):
            if message.height != self.height:
                continue
            self._own.append(message)
            self._out.send.append(message)
            if isinstance(message, SignedProposal):
                self._verdicts[message.proposal.block] = True
                self._store_proposal(message)
            else:
                self._store_vote(message)
        # Peers' messages go through the usual checks, as if they had just arrived.
        self._proof = record.proof
        for message in _decode_all(record.proof):
            if isinstance(message, SignedVote):
                self._on_vote(message)
            else:
                self._on_proposal(message)
        if self.phase == PROPOSE:
            self._arm(PROPOSE_TIMEOUT)

    def _wake(self) -> None:
        """End the hold: round 0 starts as it would have at StartHeight."""
        if self.waiting and not self.decided:
            self.waiting = False
            self._start_round(0)

    def _start_round(self, round_: int) -> None:
        """StartRound (lines 10-21)."""
        assert self.validators is not None
        self.round, self.phase = round_, PROPOSE
        if self.validators.proposer(self.height, round_) == self.member_id:
            if self.valid_value is not None:
                self._propose(self.valid_value, self.valid_round)  # lines 14-15
            else:
                self._out.propose_requests.append(ProposeRequest(self.height, round_))
        self._arm(PROPOSE_TIMEOUT)  # line 21 (the proposer too, see module doc)

    def _arm(self, kind: str) -> None:
        duration = self._timeouts.duration(kind, self.round)
        self._out.timeouts.append(TimeoutRequest(Timeout(kind, self.height, self.round), duration))

    def _on_timeout(self, timeout: Timeout) -> None:
        if timeout.height != self.height or timeout.round != self.round or self.decided:
            return
        if timeout.kind == PROPOSE_TIMEOUT and self.phase == PROPOSE:  # lines 57-60
            self._prevote(None)
        elif timeout.kind == PREVOTE_TIMEOUT and self.phase == PREVOTE_STEP:  # lines 61-64
            self._precommit(None)
        elif timeout.kind == PRECOMMIT_TIMEOUT:  # lines 65-67
            assert self._votes is not None
            self._set_proof(self._votes.get(self.round, PRECOMMIT).all_votes())
            self._start_round(self.round + 1)

    def _on_value(self, event: ValueToPropose) -> None:
        if (event.height, event.round) != (self.height, self.round) or self.decided:
            return
        if self.phase != PROPOSE or self._proposals.get(self.round, {}).get(event.block):
            return
        if self.validators and self.validators.proposer(self.height, self.round) == self.member_id:
            self._propose(event.block, self.valid_round)

    def _on_commit(self, commit: Commit) -> None:
        if self.validators is None:
            self._out.drop("not_started")
            return
        if commit.height < self.height or (commit.height == self.height and self.decided):
            self._out.drop("old_commit")
            return
        try:
            verify_commit(commit, self.validators, self.chain_id)
        except CommitError:
            self._out.drop("bad_commit")
            return
        if commit.height > self.height:
            # Assumes the validator set does not change on the way; the host re-checks
            # each fetched block's commit against the set it actually has.
            current = self._out.need_blocks_up_to or 0
            self._out.need_blocks_up_to = max(current, commit.height)
            return
        self._decide(commit.round, commit.block, commit)

    def _decide(self, round_: int, block: bytes, commit: Commit) -> None:
        seen = any(block in props for props in self._proposals.values())
        self.decided = True
        self._out.decided.append(Decision(self.height, round_, block, commit, seen))

    # ---- receiving --------------------------------------------------------------------

    def _admit(self, message: Message) -> bool:
        """Height, membership and round-window checks shared by proposals and votes."""
        if self.validators is None:
            self._out.drop("not_started")
            return False
        if message.height == self.height + 1:
            # Peers that decided first are already there; keep a bounded few for later.
            self._buffer_future(message)
            return False
        if message.height != self.height:
            self._out.drop("old_height" if message.height < self.height else "future_height")
            return False
        if self.decided:
            self._out.drop("decided")
            return False
        if self.validators.key_of(message.sender) is None:
            self._out.drop("non_validator")
            return False
        if message.round > self.round + MAX_ROUNDS_AHEAD:
            self._out.drop("round_too_far")
            return False
        return True

    def _buffer_future(self, message: Message) -> None:
        """Keep a few next-height messages per validator; a byzantine one cannot crowd
        out the others'. They are verified when that height starts."""
        assert self.validators is not None
        if self.validators.key_of(message.sender) is None:
            self._out.drop("non_validator")
            return
        mine = sum(1 for m in self._future if m.sender == message.sender)
        if mine >= _FUTURE_BUFFER_PER_VALIDATOR:
            self._out.drop("future_buffer_full")
            return
        self._future.append(message)

    def _on_proposal(self, message: SignedProposal) -> None:
        if not self._admit(message):
            return
        assert self.validators is not None
        proposal = message.proposal
        if message.sender != self.validators.proposer(proposal.height, proposal.round):
            self._out.drop("not_proposer")
            return
        known = self._proposals.get(proposal.round, {})
        if proposal.block in known:
            self._out.drop("duplicate")
            return
        if len(known) >= MAX_PROPOSALS_PER_ROUND:
            self._out.drop("too_many_proposals")
            return
        if not self._cache.verify(self.validators, self.chain_id, message):
            self._out.drop("bad_signature")
            return
        self._wake()
        self._store_proposal(message)

    def _store_proposal(self, message: SignedProposal) -> None:
        assert self._votes is not None
        proposal = message.proposal
        self._proposals.setdefault(proposal.round, {})[proposal.block] = message
        self._votes.note_speaker(proposal.round, message.sender)
        block = proposal.block
        if block not in self._verdicts and block not in self._requested:
            self._requested.add(block)
            self._out.validity_checks.append(ValidityRequest(self.height, block))

    def _on_vote(self, message: SignedVote) -> None:
        if not self._admit(message):
            return
        assert self.validators is not None and self._votes is not None
        vote = message.vote
        seen = self._votes.get(vote.round, vote.type).votes.get(message.sender)
        if seen is not None and seen.sig == message.sig:
            self._out.drop("duplicate")
            return
        if not self._cache.verify(self.validators, self.chain_id, message):
            self._out.drop("bad_signature")
            return
        self._wake()
        self._store_vote(message)

    def _store_vote(self, message: SignedVote) -> None:
        assert self._votes is not None and self.validators is not None
        result, earlier = self._votes.add(message)
        if result is AddResult.DUPLICATE:
            self._out.drop("duplicate")
            return
        if result is AddResult.CONFLICT:
            assert earlier is not None
            accused = (message.sender, message.round, message.vote.type)
            if accused not in self._accused:
                self._accused.add(accused)
                self._out.evidence.append(Equivocation.of(earlier, message))
        block = message.vote.block
        if message.vote.type == PRECOMMIT and block is not None:
            count = self._votes.get(message.round, PRECOMMIT).count(block)
            if count == self.validators.quorum:
                self._precommit_quorums.append((message.round, block))

    # ---- the upon-rules ---------------------------------------------------------------

    def _run_rules(self) -> None:
        """Fire upon-rules until none applies; each firing changes state, so this ends."""
        rules = (
            self._rule_decide,
            self._rule_round_skip,
            self._rule_proposal,
            self._rule_polka,
            self._rule_nil_polka,
            self._rule_timeouts,
        )
        while not self.decided and any(rule() for rule in rules):
            pass

    def _rule_decide(self) -> bool:
        """Line 49: 2f+1 PRECOMMIT for id(v) in some round decides v."""
        if not self._precommit_quorums:
            return False
        assert self._votes is not None
        round_, block = self._precommit_quorums[0]
        signatures = self._votes.precommit_signatures(round_, block)
        self._decide(round_, block, Commit.from_precommits(self.height, round_, block, signatures))
        return True

    def _rule_round_skip(self) -> bool:
        """Line 55: f+1 messages of a higher round move us to that round."""
        assert self.validators is not None and self._votes is not None
        for round_ in self._votes.rounds_above(self.round):
            if self._votes.speakers(round_) >= self.validators.f + 1:
                proof: list[Message] = list(self._proposals.get(round_, {}).values())
                for type_ in (PREVOTE, PRECOMMIT):
                    proof.extend(self._votes.get(round_, type_).all_votes())
                self._set_proof(proof)
                self._start_round(round_)
                return True
        return False

    def _rule_proposal(self) -> bool:
        """Lines 22-33: prevote on the round's proposal, fresh (vr = -1) or with a POL."""
        if self.phase != PROPOSE:
            return False
        assert self.validators is not None and self._votes is not None
        for block, message in self._proposals.get(self.round, {}).items():
            verdict = self._verdicts.get(block)
            vr = message.proposal.pol_round
            if verdict is None:
                continue
            if vr == -1:  # line 22
                ok = verdict and (self.locked_round == -1 or self.locked_value == block)
            elif self._votes.get(vr, PREVOTE).count(block) >= self.validators.quorum:  # line 28
                ok = verdict and (self.locked_round <= vr or self.locked_value == block)
            else:
                continue
            self._prevote(block if ok else None)
            return True
        return False

    def _rule_polka(self) -> bool:
        """Lines 36-43: a polka for a valid proposed v locks (if still prevoting) and
        always updates validValue / validRound."""
        if self.phase < PREVOTE_STEP or ("polka", self.round) in self._fired:
            return False
        assert self.validators is not None and self._votes is not None
        block = self._votes.get(self.round, PREVOTE).majority(self.validators.quorum)
        if not isinstance(block, bytes) or block not in self._proposals.get(self.round, {}):
            return False
        if not self._verdicts.get(block):
            return False
        self._fired.add(("polka", self.round))
        self.valid_value, self.valid_round = block, self.round  # lines 42-43
        if self.phase == PREVOTE_STEP:  # lines 37-41
            self.locked_value, self.locked_round = block, self.round
            self._precommit(block)
        return True

    def _rule_nil_polka(self) -> bool:
        """Lines 44-46: 2f+1 PREVOTE for nil -> precommit nil."""
        if self.phase != PREVOTE_STEP:
            return False
        assert self.validators is not None and self._votes is not None
        if self._votes.get(self.round, PREVOTE).count(None) < self.validators.quorum:
            return False
        self._precommit(None)
        return True

    def _rule_timeouts(self) -> bool:
        """Lines 34-35 and 47-48: arm timeoutPrevote / timeoutPrecommit once per round
        when 2f+1 votes of any value arrived."""
        assert self.validators is not None and self._votes is not None
        quorum = self.validators.quorum
        fired = False
        if (
            self.phase == PREVOTE_STEP
            and ("prevote_timeout", self.round) not in self._fired
            and self._votes.get(self.round, PREVOTE).total >= quorum
        ):
            self._fired.add(("prevote_timeout", self.round))
            self._arm(PREVOTE_TIMEOUT)
            fired = True
        if ("precommit_timeout", self.round) not in self._fired and self._votes.get(
            self.round, PRECOMMIT
        ).total >= quorum:
            self._fired.add(("precommit_timeout", self.round))
            self._arm(PRECOMMIT_TIMEOUT)
            fired = True
        return fired

    # ---- signing ----------------------------------------------------------------------

    def _set_proof(self, messages: Sequence[Message]) -> None:
        """Remember what justifies the round we are entering; it is persisted with the
        next signature so a restarted node can still show peers why it is there."""
        self._proof = tuple(m.encode() for m in messages[:MAX_PROOF_KEPT])

    def _durable_proof(self) -> tuple[bytes, ...]:
        """The polka behind validValue (the 2f+1 prevotes of line 36), then the round-entry
        proof. Without the polka, a validator that locked and then restarted — as every
        honest one may — can never show peers why it is locked: a proposal of the locked
        value with its pol_round then never passes line 28 anywhere, and the locked
        validators prevote nil on every other value, forever (found by the simulator,
        seed 8902 at n=4 with one byzantine validator)."""
        polka: list[bytes] = []
        if self.valid_round >= 0 and self._votes is not None:
            polka = [
                m.encode()
                for m in self._votes.get(self.valid_round, PREVOTE).all_votes()
                if m.vote.block == self.valid_value
            ]
        return tuple(dict.fromkeys((*polka, *self._proof)))[:MAX_PROOF_KEPT]

    def _locks(self) -> tuple[int, bytes | None, int, bytes | None]:
        return (self.locked_round, self.locked_value, self.valid_round, self.valid_value)

    def _may_sign(self, step: int) -> bool:
        if self._key is None or self.validators is None:
            return False
        if self.validators.key_of(self.member_id) is None:
            return False
        if self._signing is not None and not self._signing.may_sign(self.height, self.round, step):
            # Only reachable when a restored record is ahead of the host's store: the
            # record, not the in-memory state, is the authority on what was signed.
            self._out.drop("sign_refused")
            return False
        return True

    def _record(self, message: Message, step: int) -> None:
        """Make the new signing state the record this output must persist first."""
        self._own.append(message)
        previous = self._signing
        kept = previous.signed if previous and previous.height == self.height else ()
        signed = (*kept, message.encode())[-MAX_SIGNED_KEPT:]
        self._signing = SigningState(
            self.height, self.round, step, *self._locks(), signed, self._durable_proof()
        )
        self._locks_persisted = self._locks()
        self._out.persist = self._signing.encode()
        self._out.send.append(message)

    def _persist_locks(self) -> None:
        """validValue can change without a signature (line 42); keep the record current."""
        record = self._signing
        if record is None or record.height != self.height or self._locks() == self._locks_persisted:
            return
        self._signing = SigningState(
            record.height,
            record.round,
            record.step,
            *self._locks(),
            record.signed,
            self._durable_proof(),
        )
        self._locks_persisted = self._locks()
        self._out.persist = self._signing.encode()

    def _propose(self, block: bytes, pol_round: int) -> None:
        """Line 19: broadcast PROPOSAL (and handle it as received)."""
        if not self._may_sign(STEP_PROPOSAL):
            return
        assert self._key is not None
        self._verdicts[block] = True  # the host's own value, or validValue judged before
        proposal = Proposal(self.height, self.round, block, pol_round)
        message = sign_proposal(self._key, self.chain_id, self.member_id, proposal)
        self._record(message, STEP_PROPOSAL)
        self._store_proposal(message)

    def _prevote(self, block: bytes | None) -> None:
        self.phase = PREVOTE_STEP
        self._cast(PREVOTE, block, STEP_PREVOTE)

    def _precommit(self, block: bytes | None) -> None:
        self.phase = PRECOMMIT_STEP
        self._cast(PRECOMMIT, block, STEP_PRECOMMIT)

    def _cast(self, type_: str, block: bytes | None, step: int) -> None:
        if not self._may_sign(step):
            return
        assert self._key is not None
        vote = Vote(type_, self.height, self.round, block)
        message = sign_vote(self._key, self.chain_id, self.member_id, vote)
        self._record(message, step)
        self._store_vote(message)


def _decode_all(wires: tuple[bytes, ...]) -> list[Message]:
    try:
        return [decode_message(wire) for wire in wires]
    except MessageFormatError as exc:
        raise SigningStateError(f"signing state holds a bad message: {exc}") from exc
