"""Ed25519 keys and domain-separated signatures (DESIGN §3).

Every signature covers ``encode([domain, chain_id, payload])``, so a signature made for
one purpose or one chain never verifies for another.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.codec import encode
from ledger.errors import KeyFileError, SignatureError

__all__ = ["SIGNATURE_BYTES", "Domain", "SigningKey", "VerifyKey", "signing_message"]

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


class Domain(StrEnum):
    ENTRY = "customs-ledger/entry/v1"
    VOTE = "customs-ledger/vote/v1"
    PROPOSAL = "customs-ledger/proposal/v1"
    PEER = "customs-ledger/peer/v1"


def signing_message(domain: Domain, chain_id: str, payload: bytes) -> bytes:
    """The exact bytes an Ed25519 signature covers."""
    return _prefix(domain, chain_id) + _bin_header(len(payload)) + payload


# encode([domain, chain_id, payload]) is a fixed prefix followed by a bin header and the
# payload; building it by concatenation keeps the hot verification path allocation-light.
_PREFIXES: dict[tuple[str, str], bytes] = {}


def _prefix(domain: Domain, chain_id: str) -> bytes:
    key = (str(domain), chain_id)
    cached = _PREFIXES.get(key)
    if cached is None:
        whole = encode([str(domain), chain_id, b""])
        cached = whole[:-2]  # drop the empty bin (0xc4 0x00)
        if len(_PREFIXES) < 1024:
            _PREFIXES[key] = cached
    return cached


def _bin_header(length: int) -> bytes:
    if length < 0x100:
        return bytes((0xC4, length))
    if length < 0x10000:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key", "raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != PUBLIC_KEY_BYTES:
            raise SignatureError(f"public key must be {PUBLIC_KEY_BYTES} bytes, got {len(raw)}")
        try:
            self._key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise SignatureError(f"invalid Ed25519 public key: {exc}") from exc
        self.raw = bytes(raw)

    @classmethod
    def from_hex(cls, text: str) -> VerifyKey:
        if len(text) != 2 * PUBLIC_KEY_BYTES or text != text.lower():
            raise SignatureError("public key must be 64 lowercase hex characters")
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise SignatureError(f"public key is not hex: {exc}") from exc

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def verify(self, domain: Domain, chain_id: str, payload: bytes, signature: bytes) -> None:
        """Raise SignatureError unless ``signature`` signs ``payload`` for domain and chain."""
        if len(signature) != SIGNATURE_BYTES:
            raise SignatureError(f"signature must be {SIGNATURE_BYTES} bytes")
        try:
            self._key.verify(signature, signing_message(domain, chain_id, payload))
        except InvalidSignature as exc:
            raise SignatureError(f"signature does not verify under key {self.hex[:16]}…") from exc

    def is_valid(self, domain: Domain, chain_id: str, payload: bytes, signature: bytes) -> bool:
        try:
            self.verify(domain, chain_id, payload, signature)
        except SignatureError:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self.hex})"


class SigningKey:
    """An Ed25519 private key; only ``generate`` draws randomness."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = VerifyKey(
            key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key whose 32 private bytes are ``seed`` (RFC 8032 §5.1.5)."""
        if len(seed) != 32:
            raise KeyFileError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, domain: Domain, chain_id: str, payload: bytes) -> bytes:
        return self._key.sign(signing_message(domain, chain_id, payload))

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"cannot load PKCS#8 PEM key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"expected an Ed25519 key, found {type(key).__name__}")
        return cls(key)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_key.hex})"
