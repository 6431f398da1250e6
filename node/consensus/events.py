"""What the host feeds the core (inputs) and what one step hands back (``Output``).

The host applies an ``Output`` in this order, and the daemon and the simulator share the
code that does it (``node.consensus.driver``):

1. persist: write ``persist`` durably (fsync) if it is set;
2. send: broadcast ``send``;
3. apply: store each of ``decided`` (block and commit), then start the next height;
4. arm: schedule each of ``timeouts``; answer ``validity_checks`` and
   ``propose_requests`` with later inputs (none of these if the step decided: they
   belong to the decided height); fetch blocks up to ``need_blocks_up_to``.

Persist comes first because a vote that leaves before it is durable can become a
double-sign after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.block import Commit
from ledger.genesis import ValidatorSet
from node.consensus.evidence import Equivocation
from node.consensus.messages import Message, SignedProposal, SignedVote

__all__ = [
    "CommitLearned",
    "Decision",
    "Input",
    "Output",
    "ProposalReceived",
    "ProposeRequest",
    "StartHeight",
    "Timeout",
    "TimeoutConfig",
    "TimeoutFired",
    "TimeoutRequest",
    "ValidityRequest",
    "ValidityVerdict",
    "ValueToPropose",
    "VoteReceived",
    "Wake",
]

PROPOSE_TIMEOUT = "propose"
PREVOTE_TIMEOUT = "prevote"
PRECOMMIT_TIMEOUT = "precommit"


@dataclass(frozen=True, slots=True)
class Timeout:
    kind: str  # propose | prevote | precommit
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Timeouts grow linearly with the round, so that after GST some round is long
    enough for every correct process to hear from every other (the paper's liveness
    argument): step ``s`` of round ``r`` waits ``s_ms + r * s_delta_ms``.

    These defaults are node.toml's (``node.daemon.config.Timeouts`` takes them from here)."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500

    def duration(self, kind: str, round_: int) -> int:
        base, delta = {
            PROPOSE_TIMEOUT: (self.propose_ms, self.propose_delta_ms),
            PREVOTE_TIMEOUT: (self.prevote_ms, self.prevote_delta_ms),
            PRECOMMIT_TIMEOUT: (self.precommit_ms, self.precommit_delta_ms),
        }[kind]
        return base + delta * round_


# ---- inputs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartHeight:
    """Start ``height``. With ``hold`` the core waits before round 0 (no proposal asked
    for, no timer armed) until a ``Wake`` or a validator's signed message for the height:
    the host holds an idle height, one with nothing to record before the heartbeat is due
    (the genesis ``empty_block_interval_ms``, docs/protocol.md)."""

    height: int
    validators: ValidatorSet
    last_commit: Commit | None = None
    hold: bool = False


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    message: SignedProposal


@dataclass(frozen=True, slots=True)
class VoteReceived:
    message: SignedVote


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    timeout: Timeout


@dataclass(frozen=True, slots=True)
class ValidityVerdict:
    height: int
    block: bytes
    valid: bool


@dataclass(frozen=True, slots=True)
class ValueToPropose:
    height: int
    round: int
    block: bytes


@dataclass(frozen=True, slots=True)
class CommitLearned:
    commit: Commit


@dataclass(frozen=True, slots=True)
class Wake:
    """Begin the held round 0 of ``height``: entries are pending, or the heartbeat is due."""

    height: int


Input = (
    StartHeight
    | Wake
    | ProposalReceived
    | VoteReceived
    | TimeoutFired
    | ValidityVerdict
    | ValueToPropose
    | CommitLearned
)


# ---- outputs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeoutRequest:
    timeout: Timeout
    after_ms: int


@dataclass(frozen=True, slots=True)
class ValidityRequest:
    height: int
    block: bytes


@dataclass(frozen=True, slots=True)
class ProposeRequest:
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class Decision:
    height: int
    round: int
    block: bytes
    commit: Commit
    # False when the core decided on a quorum of precommits (or a peer's commit) without
    # having seen the proposal: the host must fetch the block before applying it.
    proposal_seen: bool


@dataclass(slots=True)
class Output:
    persist: bytes | None = None
    send: list[Message] = field(default_factory=list)
    decided: list[Decision] = field(default_factory=list)
    timeouts: list[TimeoutRequest] = field(default_factory=list)
    validity_checks: list[ValidityRequest] = field(default_factory=list)
    propose_requests: list[ProposeRequest] = field(default_factory=list)
    need_blocks_up_to: int | None = None
    evidence: list[Equivocation] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
