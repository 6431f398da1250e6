"""The contracts' one error: a typed rejection carrying a DESIGN §9 code."""

from __future__ import annotations

from ledger.errors import LedgerError

__all__ = ["CODES", "Rejection"]

# DESIGN §9, in the order the common rules check them.
CODES = (
    "malformed",
    "too_large",
    "wrong_chain",
    "unknown_author",
    "bad_signature",
    "stale",
    "duplicate",
    "invalid_body",
    "invalid_identifier",
    "not_permitted",
    "not_found",
    "invalid_transition",
    "not_in_force",
    "inconsistent",
)
_KNOWN = frozenset(CODES)


class Rejection(LedgerError):
    """An entry is refused; ``code`` is one of ``CODES`` and ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        # An unknown code is our own bug, never the entry's: fail loudly.
        assert code in _KNOWN, f"unknown rejection code {code!r}"
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
