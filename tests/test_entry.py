"""Signed entries (DESIGN §5)."""

from __future__ import annotations

import hashlib
import json

import pytest

from ledger.codec import decode, encode
from ledger.entry import Entry, decode_wire, entry_from_json
from ledger.errors import EntryError, SignatureError
from tests.factories import CHAIN_ID, member_key, sign_entry

BODY = {"cert_id": "CN-2026-000123", "hs_codes": ["090111", "090112"], "type": "origin"}


def test_id_is_sha256_of_the_entry_encoding() -> None:
    signed = sign_entry("CN", "cert.issue", BODY)
    assert signed.id == hashlib.sha256(encode(signed.entry.to_obj())).digest()
    assert signed.wire_bytes == encode({"entry": signed.entry.to_obj(), "sig": signed.sig})


def test_decode_wire_round_trip_and_verify() -> None:
    signed = sign_entry("CN", "cert.issue", BODY)
    decoded = decode_wire(signed.wire_bytes, 16384)
    assert decoded == signed
    decoded.verify(member_key("CN").public_key)
    with pytest.raises(SignatureError):
        decoded.verify(member_key("DE").public_key)


def test_signature_is_bound_to_chain() -> None:
    signed = sign_entry("CN", "cert.issue", BODY, chain_id="other-chain")
    obj = decode(signed.wire_bytes)
    obj["entry"]["chain"] = CHAIN_ID
    moved = decode_wire(encode(obj), 16384)
    with pytest.raises(SignatureError):
        moved.verify(member_key("CN").public_key)


def test_size_limit_at_and_past() -> None:
    signed = sign_entry("CN", "cert.issue", BODY)
    size = len(signed.wire_bytes)
    assert decode_wire(signed.wire_bytes, size) == signed
    with pytest.raises(EntryError) as info:
        decode_wire(signed.wire_bytes, size - 1)
    assert info.value.code == "too_large"


@pytest.mark.parametrize(
    "wire",
    [
        {"entry": {}, "sig": bytes(64)},
        {"entry": None, "sig": bytes(64)},
        {"sig": bytes(64)},
        {"entry": {"author": "CN", "body": {}, "chain": "c", "kind": "k", "ts": 1}, "sig": b"x"},
        {
            "entry": {"author": "CN", "body": {}, "chain": "c", "kind": "k", "ts": 1},
            "sig": "00" * 64,
        },
        {
            "entry": {"author": "CN", "body": {}, "chain": "c", "kind": "k", "ts": -1},
            "sig": bytes(64),
        },
        {
            "entry": {"author": "CN", "body": {}, "chain": "c", "kind": "k", "ts": True},
            "sig": bytes(64),
        },
        {"entry": {"author": "", "body": {}, "chain": "c", "kind": "k", "ts": 1}, "sig": bytes(64)},
        {
            "entry": {"author": "CN", "body": [], "chain": "c", "kind": "k", "ts": 1},
            "sig": bytes(64),
        },
        {
            "entry": {"author": "CN", "body": {"x": b"bin"}, "chain": "c", "kind": "k", "ts": 1},
            "sig": bytes(64),
        },
        {
            "entry": {"author": "CN", "body": {"x": None}, "chain": "c", "kind": "k", "ts": 1},
            "sig": bytes(64),
        },
        {
            "entry": {"author": "CN", "body": {}, "chain": "c", "kind": "k", "ts": 1, "x": 1},
            "sig": bytes(64),
        },
        {
            "entry": {"author": "CN", "body": {}, "chain": "c", "kind": "k", "ts": 1},
            "sig": bytes(64),
            "extra": 1,
        },
        [1, 2],
    ],
)
def test_malformed_shapes(wire: object) -> None:
    with pytest.raises(EntryError) as info:
        decode_wire(encode(wire), 16384)
    assert info.value.code == "malformed"


def test_non_canonical_bytes_are_malformed() -> None:
    signed = sign_entry("CN", "cert.issue", BODY)
    longer = b"\xde\x00\x02" + signed.wire_bytes[1:]  # map16 header for a fixmap
    with pytest.raises(EntryError) as info:
        decode_wire(longer, 16384)
    assert info.value.code == "malformed"


def test_json_round_trip() -> None:
    signed = sign_entry("CN", "cert.issue", BODY)
    as_json = json.loads(json.dumps(signed.to_json()))
    assert entry_from_json(as_json, 16384) == signed


@pytest.mark.parametrize(
    "mutate",
    [
        lambda j: j.update(sig=j["sig"].upper()),
        lambda j: j.update(sig=j["sig"][:-2]),
        lambda j: j.update(sig="zz" * 64),
        lambda j: j.update(extra=1),
        lambda j: j["entry"].update(ts=1.5),
        lambda j: j["entry"].update(ts=2**70),
        lambda j: j["entry"]["body"].update(x=None),
    ],
)
def test_bad_json_is_malformed(mutate) -> None:  # type: ignore[no-untyped-def]
    as_json = sign_entry("CN", "cert.issue", BODY).to_json()
    mutate(as_json)
    with pytest.raises(EntryError) as info:
        entry_from_json(as_json, 16384)
    assert info.value.code == "malformed"


def test_sign_refuses_a_body_json_cannot_carry() -> None:
    entry = Entry(CHAIN_ID, "cert.issue", "CN", 1, {"x": b"bytes"})
    with pytest.raises(EntryError):
        entry.sign(member_key("CN"))
