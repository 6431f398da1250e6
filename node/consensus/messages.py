"""Signed proposals and votes as they travel between validators, and their wire form.

    wire = {"type": "proposal" | "vote", "body": proposal | vote, "from": member id,
            "sig": 64 bytes}

``sig`` is the sender's Ed25519 signature over ``encode(body)`` in the proposal or vote
domain (DESIGN §3), so the body is exactly ``ledger.block.Proposal`` / ``Vote``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.block import Proposal, Vote
from ledger.codec import decode, encode
from ledger.errors import BlockFormatError, CodecError
from ledger.genesis import ValidatorSet
from ledger.keys import SIGNATURE_BYTES, Domain, SigningKey
from node.consensus.errors import MessageFormatError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "Message",
    "SignedProposal",
    "SignedVote",
    "VerifyCache",
    "decode_message",
    "sign_proposal",
    "sign_vote",
]

MAX_MESSAGE_BYTES = 512
_MAX_SENDER = 16


@dataclass(frozen=True, slots=True)
class SignedProposal:
    proposal: Proposal
    sender: str
    sig: bytes
    payload: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", self.proposal.encode())

    @property
    def height(self) -> int:
        return self.proposal.height

    @property
    def round(self) -> int:
        return self.proposal.round

    def encode(self) -> bytes:
        return encode(
            {
                "body": self.proposal.to_obj(),
                "from": self.sender,
                "sig": self.sig,
                "type": "proposal",
            }
        )


@dataclass(frozen=True, slots=True)
class SignedVote:
    vote: Vote
    sender: str
    sig: bytes
    payload: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", self.vote.encode())

    @property
    def height(self) -> int:
        return self.vote.height

    @property
    def round(self) -> int:
        return self.vote.round

    def encode(self) -> bytes:
        return encode(
            {"body": self.vote.to_obj(), "from": self.sender, "sig": self.sig, "type": "vote"}
        )


Message = SignedProposal | SignedVote


def sign_proposal(
    key: SigningKey, chain_id: str, sender: str, proposal: Proposal
) -> SignedProposal:
    return SignedProposal(proposal, sender, proposal.sign(key, chain_id))


def sign_vote(key: SigningKey, chain_id: str, sender: str, vote: Vote) -> SignedVote:
    return SignedVote(vote, sender, vote.sign(key, chain_id))


def decode_message(data: bytes) -> Message:
    """Strictly decode a wire message; raise MessageFormatError naming what is wrong."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageFormatError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = decode(data, max_bytes=MAX_MESSAGE_BYTES)
    except CodecError as exc:
        raise MessageFormatError(f"message: {exc}") from exc
    if not isinstance(obj, dict) or set(obj) != {"type", "body", "from", "sig"}:
        raise MessageFormatError("message must have exactly type, body, from, sig")
    sender, sig, kind = obj["from"], obj["sig"], obj["type"]
    if not isinstance(sender, str) or not 1 <= len(sender) <= _MAX_SENDER:
        raise MessageFormatError(f"message.from must be a member id of 1..{_MAX_SENDER} chars")
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES:
        raise MessageFormatError(f"message.sig must be {SIGNATURE_BYTES} bytes")
    try:
        if kind == "proposal":
            return SignedProposal(Proposal.from_obj(obj["body"]), sender, sig)
        if kind == "vote":
            return SignedVote(Vote.from_obj(obj["body"]), sender, sig)
    except BlockFormatError as exc:
        raise MessageFormatError(f"message.body: {exc}") from exc
    raise MessageFormatError(f"message.type must be proposal or vote, not {kind!r}")


class VerifyCache:
    """Signature verdicts keyed by (public key, payload, sig).

    Ed25519 verification is a pure function of those bytes and the sender's key, so a
    verdict can be reused for every duplicate a gossip network delivers. The simulator
    shares one cache between the nodes of a run; a daemon keeps one per process.
    """

    __slots__ = ("_limit", "_verdicts")

    def __init__(self, limit: int = 200_000) -> None:
        self._limit = limit
        self._verdicts: dict[tuple[bytes, bytes, bytes], bool] = {}

    def verify(self, validators: ValidatorSet, chain_id: str, message: Message) -> bool:
        key = validators.key_of(message.sender)
        if key is None:
            return False
        cache_key = (key.raw, message.payload, message.sig)
        verdict = self._verdicts.get(cache_key)
        if verdict is not None:
            return verdict
        domain = Domain.PROPOSAL if isinstance(message, SignedProposal) else Domain.VOTE
        verdict = key.is_valid(domain, chain_id, message.payload, message.sig)
        if len(self._verdicts) >= self._limit:
            # Dropping everything is crude but bounded; verdicts are cheap to recompute.
            self._verdicts.clear()
        self._verdicts[cache_key] = verdict
        return verdict
