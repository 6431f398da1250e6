"""Ed25519 keys and domain-separated signatures (DESIGN §3)."""

from __future__ import annotations

import stat

import pytest

from ledger.codec import encode
from ledger.errors import KeyFileError, SignatureError
from ledger.keys import Domain, SigningKey, VerifyKey, signing_message
from node.daemon.key_files import load_key, save_key


def test_signing_message_is_the_canonical_triple() -> None:
    for size in (0, 1, 255, 256, 65535, 65536):
        payload = b"p" * size
        assert signing_message(Domain.VOTE, "chain-1", payload) == encode(
            ["customs-ledger/vote/v1", "chain-1", payload]
        )


def test_sign_and_verify() -> None:
    key = SigningKey.generate()
    sig = key.sign(Domain.ENTRY, "c1", b"payload")
    key.public_key.verify(Domain.ENTRY, "c1", b"payload", sig)


@pytest.mark.parametrize(
    ("domain", "chain", "payload"),
    [
        (Domain.VOTE, "c1", b"payload"),
        (Domain.PROPOSAL, "c1", b"payload"),
        (Domain.PEER, "c1", b"payload"),
        (Domain.ENTRY, "c2", b"payload"),
        (Domain.ENTRY, "c1", b"payloae"),
    ],
)
def test_signature_never_verifies_for_another_purpose_chain_or_payload(
    domain: Domain, chain: str, payload: bytes
) -> None:
    key = SigningKey.generate()
    sig = key.sign(Domain.ENTRY, "c1", b"payload")
    with pytest.raises(SignatureError):
        key.public_key.verify(domain, chain, payload, sig)
    assert not key.public_key.is_valid(domain, chain, payload, sig)


def test_wrong_key_and_mangled_signature() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    sig = key.sign(Domain.ENTRY, "c1", b"x")
    with pytest.raises(SignatureError):
        other.public_key.verify(Domain.ENTRY, "c1", b"x", sig)
    with pytest.raises(SignatureError):
        key.public_key.verify(Domain.ENTRY, "c1", b"x", sig[:-1])
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(SignatureError):
        key.public_key.verify(Domain.ENTRY, "c1", b"x", flipped)


def test_seeded_key_is_deterministic() -> None:
    seed = bytes(range(32))
    assert SigningKey.from_seed(seed).public_key == SigningKey.from_seed(seed).public_key
    with pytest.raises(KeyFileError):
        SigningKey.from_seed(b"short")


def test_pem_save_load_mode_0600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = SigningKey.generate()
    path = tmp_path / "node.key"
    save_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    assert load_key(path).public_key == key.public_key
    with pytest.raises(KeyFileError, match="already exists"):
        save_key(SigningKey.generate(), path)


def test_pem_with_passphrase(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = SigningKey.generate()
    path = tmp_path / "node.key"
    save_key(key, path, passphrase=b"correct horse")
    assert b"ENCRYPTED" in path.read_bytes()
    assert load_key(path, b"correct horse").public_key == key.public_key
    with pytest.raises(KeyFileError):
        load_key(path, b"wrong")
    with pytest.raises(KeyFileError):
        load_key(path)


def test_load_rejects_missing_garbage_and_other_key_types(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(KeyFileError, match="cannot read"):
        load_key(tmp_path / "missing.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError):
        load_key(garbage)
    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="Ed25519"):
        load_key(ec_key)


def test_verify_key_hex() -> None:
    key = SigningKey.generate().public_key
    assert VerifyKey.from_hex(key.hex) == key
    for bad in (key.hex.upper(), key.hex[:-2], "zz" * 32, ""):
        with pytest.raises(SignatureError):
            VerifyKey.from_hex(bad)
