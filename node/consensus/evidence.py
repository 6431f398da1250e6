"""Evidence of equivocation: two conflicting votes signed by one validator.

The record is self-contained (both votes with their signatures), so anyone holding the
validator set can check it; a later issue commits it to the ledger.

    evidence = {"validator": id, "votes": [[vote, sig], [vote, sig]]}   # sorted by encode(vote)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.codec import encode
from ledger.genesis import ValidatorSet
from ledger.keys import Domain
from node.consensus.errors import ConsensusError
from node.consensus.messages import SignedVote

__all__ = ["Equivocation", "EvidenceError"]


class EvidenceError(ConsensusError):
    """Two votes do not prove an equivocation."""


@dataclass(frozen=True, slots=True)
class Equivocation:
    validator: str
    first: SignedVote
    second: SignedVote

    @classmethod
    def of(cls, a: SignedVote, b: SignedVote) -> Equivocation:
        """Build the canonical record (votes ordered by their encoding)."""
        first, second = sorted((a, b), key=lambda v: v.payload)
        evidence = cls(a.sender, first, second)
        evidence.check_shape()
        return evidence

    def check_shape(self) -> None:
        a, b = self.first.vote, self.second.vote
        if self.first.sender != self.validator or self.second.sender != self.validator:
            raise EvidenceError("both votes must be signed by the accused validator")
        if (a.type, a.height, a.round) != (b.type, b.height, b.round):
            raise EvidenceError("votes are for different (type, height, round)")
        if a.block == b.block:
            raise EvidenceError("votes agree; there is no equivocation")

    def verify(self, validators: ValidatorSet, chain_id: str) -> None:
        """Raise EvidenceError unless both signatures verify under the validator's key."""
        self.check_shape()
        key = validators.key_of(self.validator)
        if key is None:
            raise EvidenceError(f"{self.validator} is not a validator")
        for vote in (self.first, self.second):
            if not key.is_valid(Domain.VOTE, chain_id, vote.payload, vote.sig):
                raise EvidenceError(f"a vote's signature does not verify under {self.validator}")

    def to_obj(self) -> dict[str, Any]:
        return {
            "validator": self.validator,
            "votes": [[v.vote.to_obj(), v.sig] for v in (self.first, self.second)],
        }

    def encode(self) -> bytes:
        return encode(self.to_obj())
