"""Vote bookkeeping for one height: who voted what, per (round, type), and the tallies
Algorithm 1's upon-rules ask about ("2f+1 PREVOTE for id(v)", "f+1 messages of round r").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ledger.block import PRECOMMIT
from ledger.genesis import ValidatorSet
from node.consensus.messages import SignedVote

__all__ = ["AddResult", "HeightVotes", "VoteSet"]


class AddResult(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


# An equivocator's extra votes still count for the values they name (the paper counts
# distinct signers per value); a bound keeps one from filling memory with values.
MAX_VOTES_PER_SENDER = 4


@dataclass(slots=True)
class VoteSet:
    """The votes of one (round, type): the first vote of each validator, and for each
    value the distinct validators that signed it."""

    votes: dict[str, SignedVote] = field(default_factory=dict)
    by_block: dict[bytes | None, dict[str, SignedVote]] = field(default_factory=dict)
    _extra: dict[str, int] = field(default_factory=dict)

    def add(self, vote: SignedVote) -> tuple[AddResult, SignedVote | None]:
        sender, block = vote.sender, vote.vote.block
        signers = self.by_block.get(block)
        if signers is not None and sender in signers:
            return AddResult.DUPLICATE, None
        seen = self.votes.get(sender)
        if seen is None:
            self.votes[sender] = vote
            self.by_block.setdefault(block, {})[sender] = vote
            return AddResult.ADDED, None
        extra = self._extra.get(sender, 0)
        if extra + 1 < MAX_VOTES_PER_SENDER:
            self._extra[sender] = extra + 1
            self.by_block.setdefault(block, {})[sender] = vote
        return AddResult.CONFLICT, seen

    def count(self, block: bytes | None) -> int:
        return len(self.by_block.get(block, ()))

    @property
    def total(self) -> int:
        return len(self.votes)

    def majority(self, quorum: int) -> bytes | bool | None:
        """The value (a block or None for nil) with a quorum, or False if there is none."""
        for block, signers in self.by_block.items():
            if len(signers) >= quorum:
                return block
        return False

    def all_votes(self) -> list[SignedVote]:
        return [v for signers in self.by_block.values() for v in signers.values()]


class HeightVotes:
    """All votes of one height, by (round, type), plus who spoke in each round."""

    def __init__(self, validators: ValidatorSet) -> None:
        self.validators = validators
        self._sets: dict[tuple[int, str], VoteSet] = {}
        self._speakers: dict[int, set[str]] = {}

    def get(self, round_: int, type_: str) -> VoteSet:
        found = self._sets.get((round_, type_))
        if found is None:
            found = self._sets[(round_, type_)] = VoteSet()
        return found

    def add(self, vote: SignedVote) -> tuple[AddResult, SignedVote | None]:
        result = self.get(vote.round, vote.vote.type).add(vote)
        if result[0] is not AddResult.DUPLICATE:
            self.note_speaker(vote.round, vote.sender)
        return result

    def note_speaker(self, round_: int, sender: str) -> None:
        self._speakers.setdefault(round_, set()).add(sender)

    def speakers(self, round_: int) -> int:
        return len(self._speakers.get(round_, ()))

    def rounds_above(self, round_: int) -> list[int]:
        return sorted((r for r in self._speakers if r > round_), reverse=True)

    def precommit_signatures(self, round_: int, block: bytes) -> dict[str, bytes]:
        found = self._sets.get((round_, PRECOMMIT))
        if found is None:
            return {}
        return {m: v.sig for m, v in found.by_block.get(block, {}).items()}
