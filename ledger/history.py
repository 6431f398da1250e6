"""Subject histories (DESIGN §8): a hash chain per subject, kept in the state map.

    key   = SHA-256(UTF-8 subject)
    head' = SHA-256(head || entry id), from 32 zero bytes; count = number of links
    value = encode({"count", "head", "height"})   height: block of the latest link

The chain is what makes an omitted entry detectable: a verifier recomputes the head from
the entry ids it was given and compares it with the head proven under ``state_root``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.codec import decode, encode
from ledger.errors import CodecError, LedgerError

__all__ = [
    "EMPTY_HEAD",
    "MAX_SUBJECT_BYTES",
    "HistoryError",
    "SubjectState",
    "chain_head",
    "next_head",
    "subject_key",
]

EMPTY_HEAD = bytes(32)
# Equal to the store's subject-index limit, so anything staged can also be indexed.
MAX_SUBJECT_BYTES = 1024
_MAX_VALUE_BYTES = 128


class HistoryError(LedgerError):
    """A subject name or a stored subject state is unusable."""


def subject_key(subject: object) -> bytes:
    """The state-map key of ``subject``: SHA-256 of its UTF-8 bytes; HistoryError unless
    it is a non-empty str within MAX_SUBJECT_BYTES."""
    if not isinstance(subject, str) or not subject:
        raise HistoryError(f"a subject is a non-empty string, got {subject!r}")
    try:
        raw = subject.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HistoryError(f"subject {subject!r} is not valid UTF-8 text") from exc
    if len(raw) > MAX_SUBJECT_BYTES:
        raise HistoryError(f"subject of {len(raw)} bytes exceeds {MAX_SUBJECT_BYTES}")
    return hashlib.sha256(raw).digest()


def next_head(head: bytes, entry_id: bytes) -> bytes:
    return hashlib.sha256(head + entry_id).digest()


def chain_head(entry_ids: Iterable[bytes]) -> tuple[bytes, int]:
    """(head, count) of a history holding ``entry_ids`` in order."""
    head, count = EMPTY_HEAD, 0
    for entry_id in entry_ids:
        head = next_head(head, entry_id)
        count += 1
    return head, count


@dataclass(frozen=True, slots=True)
class SubjectState:
    """A subject's hash-chain head, its length, and the height of its latest entry."""

    head: bytes
    count: int
    height: int

    def advance(self, entry_id: bytes, height: int) -> SubjectState:
        if height < self.height:
            raise HistoryError(f"height {height} is before the subject's last {self.height}")
        return SubjectState(next_head(self.head, entry_id), self.count + 1, height)

    def encode(self) -> bytes:
        return encode({"count": self.count, "head": self.head, "height": self.height})

    @classmethod
    def decode(cls, data: bytes) -> SubjectState:
        """Strictly decode a state-map value; the inverse of ``encode``."""
        try:
            obj = decode(data, max_bytes=_MAX_VALUE_BYTES)
        except CodecError as exc:
            raise HistoryError(f"subject state: {exc}") from exc
        if not isinstance(obj, dict) or list(obj) != ["count", "head", "height"]:
            raise HistoryError("subject state must be exactly {count, head, height}")
        head, count, height = obj["head"], obj["count"], obj["height"]
        if not isinstance(head, bytes) or len(head) != 32:
            raise HistoryError("subject state head must be 32 bytes")
        if type(count) is not int or count < 1 or type(height) is not int or height < 1:
            raise HistoryError("subject state count and height must be positive integers")
        return cls(head, count, height)


EMPTY_STATE = SubjectState(EMPTY_HEAD, 0, 0)
