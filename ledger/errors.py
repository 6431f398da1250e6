"""The ledger package's typed errors: one base, one subclass per kind of failure."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error raised by ``ledger``."""


class CodecError(LedgerError):
    """Bytes are not canonical MessagePack, or a value cannot be encoded canonically."""


class KeyFileError(LedgerError):
    """A key file cannot be read, written or decrypted, or holds the wrong kind of key."""


class SignatureError(LedgerError):
    """A signature does not verify (wrong key, purpose, chain, payload or bytes)."""


class GenesisError(LedgerError):
    """A genesis document is invalid; ``field`` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"genesis: {field}: {message}")
        self.field = field
        self.reason = message


class EntryError(LedgerError):
    """A wire or JSON entry is unusable; ``code`` is ``malformed`` or ``too_large``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class BlockFormatError(LedgerError):
    """A header, block, vote, proposal or commit has the wrong shape."""


class CommitError(LedgerError):
    """A commit does not prove that a quorum of validators precommitted a block."""


class ProofError(LedgerError):
    """A Merkle or state-map proof does not verify; says what was expected and found."""


class StoreError(LedgerError):
    """The LevelDB store cannot be used as asked."""


class StoreInUseError(StoreError):
    """Another process (or another handle in this one) holds the store's lock."""


class StoreGenesisMismatch(StoreError):
    """The store was created for a different genesis document."""
