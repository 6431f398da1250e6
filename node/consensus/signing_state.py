"""The durable record of what a validator has signed, and its encoding.

The host writes this record (fsync) before any message of the same output leaves the
node. After a crash the core is rebuilt from it, so it:

- never signs at or below the last signed (height, round, step): one signature per
  (height, round, kind), hence no double-sign across restarts;
- keeps its lock (lockedValue / lockedRound): a restarted node that forgot a lock could
  prevote against a value it precommitted (the "amnesia" attack on BFT locking);
- keeps the messages it signed at this height, to send them again;
- keeps the 2f+1 prevotes behind its validValue (its polka), so that a proposal of a
  locked value can still pass line 28 after every honest validator restarted;
- keeps the peers' messages that moved it into its current round (2f+1 precommits of
  the round before, or f+1 messages of this round), so that after a restart it can
  still hand peers the evidence they need to follow it there (liveness).

    record = {"v": 1, "height", "round", "step" (0 proposal, 1 prevote, 2 precommit),
              "locked_round", "locked_value" (hash|nil), "valid_round", "valid_value",
              "signed": [wire message, ...], "proof": [wire message, ...]}
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.codec import decode, encode
from ledger.errors import CodecError
from node.consensus.errors import SigningStateError

__all__ = [
    "MAX_PROOF_KEPT",
    "MAX_RECORD_BYTES",
    "MAX_SIGNED_KEPT",
    "STEP_PRECOMMIT",
    "STEP_PREVOTE",
    "STEP_PROPOSAL",
    "SigningState",
]

STEP_PROPOSAL = 0
STEP_PREVOTE = 1
STEP_PRECOMMIT = 2
MAX_SIGNED_KEPT = 24
MAX_PROOF_KEPT = 192
MAX_RECORD_BYTES = 96 * 1024
_KEYS = frozenset(
    {
        "v",
        "height",
        "round",
        "step",
        "locked_round",
        "locked_value",
        "valid_round",
        "valid_value",
        "signed",
        "proof",
    }
)


@dataclass(frozen=True, slots=True)
class SigningState:
    height: int
    round: int
    step: int
    locked_round: int = -1
    locked_value: bytes | None = None
    valid_round: int = -1
    valid_value: bytes | None = None
    signed: tuple[bytes, ...] = ()
    proof: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if type(self.height) is not int or self.height < 1:
            raise SigningStateError("height must be a positive integer")
        if type(self.round) is not int or self.round < 0:
            raise SigningStateError("round must be a non-negative integer")
        if self.step not in (STEP_PROPOSAL, STEP_PREVOTE, STEP_PRECOMMIT):
            raise SigningStateError(f"step must be 0, 1 or 2, not {self.step!r}")
        for name in ("locked", "valid"):
            round_, value = getattr(self, f"{name}_round"), getattr(self, f"{name}_value")
            if type(round_) is not int or not -1 <= round_ <= self.round:
                raise SigningStateError(f"{name}_round must be in -1 .. round")
            if (round_ == -1) != (value is None):
                raise SigningStateError(f"{name}_value must be set exactly when {name}_round is")
            if value is not None and (not isinstance(value, bytes) or len(value) != 32):
                raise SigningStateError(f"{name}_value must be a 32-byte hash")
        if len(self.signed) > MAX_SIGNED_KEPT or not all(isinstance(m, bytes) for m in self.signed):
            raise SigningStateError(f"signed must be at most {MAX_SIGNED_KEPT} byte strings")
        if len(self.proof) > MAX_PROOF_KEPT or not all(isinstance(m, bytes) for m in self.proof):
            raise SigningStateError(f"proof must be at most {MAX_PROOF_KEPT} byte strings")

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.height, self.round, self.step)

    def may_sign(self, height: int, round_: int, step: int) -> bool:
        """True only strictly after the last signed position."""
        return (height, round_, step) > self.position

    def encode(self) -> bytes:
        return encode(
            {
                "v": 1,
                "height": self.height,
                "round": self.round,
                "step": self.step,
                "locked_round": self.locked_round,
                "locked_value": self.locked_value,
                "valid_round": self.valid_round,
                "valid_value": self.valid_value,
                "signed": list(self.signed),
                "proof": list(self.proof),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> SigningState:
        try:
            obj = decode(data, max_bytes=MAX_RECORD_BYTES)
        except CodecError as exc:
            raise SigningStateError(f"signing state: {exc}") from exc
        if not isinstance(obj, dict) or set(obj) != _KEYS:
            raise SigningStateError(f"signing state must have exactly the fields {sorted(_KEYS)}")
        if obj.pop("v") != 1:
            raise SigningStateError("signing state version must be 1")
        signed, proof = obj.pop("signed"), obj.pop("proof")
        if not isinstance(signed, list) or not isinstance(proof, list):
            raise SigningStateError("signed and proof must be lists")
        return cls(**obj, signed=tuple(signed), proof=tuple(proof))
