"""A member's TLS certificate, read and pinned to its genesis key.

The certificate carries the member's Ed25519 key, the one genesis lists for it, into the
TLS handshake, whose CertificateVerify proves the server holds that key. There is no
certificate authority: whoever connects to a member checks only that the certificate's
key is genesis's key for that member (``pin``); names, dates and issuers are not
consulted. The node (node.daemon.tls, which also makes the certificates) and the
officials' client (node.client.transport) both pin with this module.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.keys import VerifyKey

__all__ = ["CertificateKeyMismatch", "certificate_key", "der_of_pem", "pin"]


class CertificateKeyMismatch(Exception):
    """A node presented a certificate for a key other than genesis's key for it."""

    def __init__(self, member_id: str, expected: VerifyKey, got: str) -> None:
        super().__init__(
            f"{member_id}'s certificate carries {got}, genesis lists {expected.hex[:16]}… "
            "for it: not that member's node"
        )
        self.member_id = member_id


def der_of_pem(pem: bytes) -> bytes:
    """The DER form of a PEM certificate; ValueError if it is not one."""
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def certificate_key(der: bytes) -> bytes | None:
    """The raw Ed25519 public key in a DER certificate; None for any other key or junk."""
    try:
        public = x509.load_der_x509_certificate(der).public_key()
    except ValueError:
        return None
    if not isinstance(public, Ed25519PublicKey):
        return None
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pin(der: bytes | None, member_id: str, expected: VerifyKey) -> None:
    """Refuse unless ``der`` carries ``expected``, genesis's key for ``member_id``."""
    if der is None:
        raise CertificateKeyMismatch(member_id, expected, "no certificate")
    got = certificate_key(der)
    if got != expected.raw:
        shown = "a key that is not Ed25519" if got is None else f"key {got.hex()[:16]}…"
        raise CertificateKeyMismatch(member_id, expected, shown)
