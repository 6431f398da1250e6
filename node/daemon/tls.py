"""TLS 1.3 for a node's one port: its certificate, its server context, and peer pinning.

A member's certificate is self-signed for the member's own Ed25519 key, the key genesis
lists for it (ledger.x509_keys). Whoever dials a member checks that the key in the
certificate is genesis's key for the member dialled (``pin_peer_certificate``), which is
why ``client_context`` asks OpenSSL for no chain or name verification; the key is
compared after the TLS handshake, before a byte of the peer protocol goes out.

Python 3.11's ``ssl`` offers no keying-material exporter (RFC 9266 ``tls-exporter``)
and ``tls-unique`` is not defined for TLS 1.3, so the peer handshake is bound to the
session by the listener's certificate instead (``binding``): both signatures cover the
SHA-256 of the certificate the dialler received and the listener served. A dialler's
signature thus names the key its TLS session ends at; a relay that terminates the
dialler's TLS with any certificate but the listener's own gets a signature the listener
refuses, and it cannot present the listener's certificate without the listener's key.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import urllib.parse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from ledger.keys import SigningKey, VerifyKey
from ledger.x509_keys import (
    CertificateKeyMismatch,
    certificate_key,
    der_of_pem,
    pin,
)
from node.daemon.key_files import write_private_once

__all__ = [
    "CERT_NAME",
    "CertificateKeyMismatch",
    "ServerTls",
    "TlsError",
    "binding",
    "certificate_key",
    "client_context",
    "is_loopback_host",
    "is_loopback_url",
    "load_certificate",
    "load_server_tls",
    "make_certificate",
    "peer_certificate",
    "pin_peer_certificate",
    "server_context",
    "write_certificate",
]

CERT_NAME = "node.crt"
MAX_CERT_FILE_BYTES = 64 * 1024


# RFC 5280 §4.1.2.5: a certificate with no well-defined expiration. The key in genesis is
# what is trusted, for as long as genesis lists it; a date would only stop a network.
_NO_EXPIRY = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
_NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


class TlsError(Exception):
    """A certificate or TLS setting is unusable; the message says which and why."""


def make_certificate(key: SigningKey, member_id: str) -> bytes:
    """A PEM certificate self-signed by ``key`` for itself, naming ``member_id``.

    Every field is fixed (serial from the key, fixed dates) and Ed25519 signs
    deterministically, so the same key always gives the same certificate.
    """
    private = serialization.load_pem_private_key(key.to_pem(), password=None)
    assert isinstance(private, Ed25519PrivateKey)  # SigningKey holds only Ed25519 keys
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)])
    serial = int.from_bytes(hashlib.sha256(key.public_key.raw).digest()[:16], "big") >> 1
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(serial or 1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NO_EXPIRY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, None)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def write_certificate(key: SigningKey, member_id: str, path: Path) -> None:
    """Write ``key``'s certificate with the key file's mode (0600); never overwrite."""
    try:
        write_private_once(path, make_certificate(key, member_id))
    except FileExistsError as exc:
        raise TlsError(f"{path}: a certificate already exists") from exc
    except OSError as exc:
        raise TlsError(f"{path}: cannot create certificate: {exc.strerror}") from exc


def load_certificate(path: Path, key: SigningKey) -> bytes:
    """The DER certificate in ``path``, checked to carry ``key``; TlsError otherwise."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CERT_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TlsError(
            f"tls certificate {path} does not exist; create it from the node's key with "
            f"`customs-node cert --config <node.toml>`"
        ) from None
    except OSError as exc:
        raise TlsError(f"tls certificate {path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_CERT_FILE_BYTES:
        raise TlsError(f"tls certificate {path}: larger than {MAX_CERT_FILE_BYTES} bytes")
    try:
        der = der_of_pem(data)
    except ValueError as exc:
        raise TlsError(f"tls certificate {path}: not a PEM certificate: {exc}") from exc
    if certificate_key(der) != key.public_key.raw:
        raise TlsError(
            f"tls certificate {path} is not for this node's key {key.public_key.hex[:16]}…; "
            "peers would refuse it (remove it and run `customs-node cert`)"
        )
    return der


def binding(der: bytes | None) -> bytes:
    """What the peer handshake binds to: SHA-256 of the listener's certificate, or
    nothing on a plaintext (loopback) link."""
    return b"" if der is None else hashlib.sha256(der).digest()


def server_context(cert_file: Path, key_file: Path, passphrase: bytes | None) -> ssl.SSLContext:
    """TLS 1.3 only, serving the member's certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        context.load_cert_chain(cert_file, key_file, password=passphrase or None)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot load tls certificate {cert_file} with {key_file}: {exc}") from exc
    return context


def client_context() -> ssl.SSLContext:
    """TLS 1.3 only, no chain or name check: the caller pins the key (module doc)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The DER certificate the other end presented on this TLS connection, if any."""
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)


def pin_peer_certificate(der: bytes | None, member_id: str, expected: VerifyKey) -> None:
    """Refuse (CertificateKeyMismatch) unless ``der`` carries genesis's key for it."""
    pin(der, member_id, expected)


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is a loopback address or ``localhost``."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    return is_loopback_url(f"http://[{host}]/" if ":" in host else f"http://{host}/")


class ServerTls:
    """A node's TLS: the context its port serves with and the DER certificate in it."""

    __slots__ = ("certificate", "context")

    def __init__(self, context: ssl.SSLContext, certificate: bytes) -> None:
        self.context = context
        self.certificate = certificate


def load_server_tls(
    cert_file: Path, key_file: Path, key: SigningKey, passphrase: bytes | None
) -> ServerTls:
    """The certificate, checked to carry ``key``, and a server context serving it."""
    der = load_certificate(cert_file, key)
    return ServerTls(server_context(cert_file, key_file, passphrase), der)
