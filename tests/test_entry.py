"""Signed entries (DESIGN §5)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.codec import decode, encode
from ledger.entry import (
    Entry,
    SignedEntry,
    _decode_wire_checked,
    body_is_plain,
    decode_wire,
    entry_from_json,
)
from ledger.errors import CodecError, EntryError, SignatureError
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


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "body",
    [
        {1: "a map key that is not a str"},
        {"x": {2: "deeper"}},
        {"n": 2**64},  # beyond msgpack's integers
        {"n": -(2**63) - 1},
    ],
)
def test_sign_refuses_a_body_the_codec_cannot_encode_with_an_entry_error(
    body: dict[Any, Any],
) -> None:
    with pytest.raises(EntryError) as info:
        Entry(CHAIN_ID, "cert.issue", "CN", 1, body).sign(member_key("CN"))
    assert info.value.code == "malformed"


def test_body_nesting_is_bounded_the_same_way_the_wire_decoder_bounds_it() -> None:
    key = member_key("CN")
    deepest = next(d for d in range(40) if not body_is_plain({"x": _nested(d + 1)}))
    signed = Entry(CHAIN_ID, "cert.issue", "CN", 1, {"x": _nested(deepest)}).sign(key)
    assert decode_wire(signed.wire_bytes, 4096) == signed
    assert _decode_wire_checked(signed.wire_bytes, 4096) == signed
    for depth in (deepest + 1, 900, 5000):  # 5000: far past Python's recursion limit
        with pytest.raises(EntryError) as info:
            Entry(CHAIN_ID, "cert.issue", "CN", 1, {"x": _nested(depth)}).sign(key)
        assert "nested at most" in info.value.reason
        raw = {"entry": {**signed.entry.to_obj(), "body": {"x": _nested(depth)}}, "sig": "0" * 128}
        with pytest.raises(EntryError):
            entry_from_json(raw, 1 << 20)
    # One level deeper than a valid entry, encoded by hand: the decoder refuses it too.
    too_deep = msgpack.packb(
        {"entry": {**signed.entry.to_obj(), "body": {"x": _nested(deepest + 1)}}, "sig": signed.sig}
    )
    with pytest.raises(EntryError):
        decode_wire(too_deep, 4096)


def _outcome(decoder: Any, data: bytes) -> object:
    try:
        signed = decoder(data, 4096)
    except EntryError as exc:
        return ("error", exc.code, exc.reason)
    return (signed.entry, signed.sig, signed.entry_bytes, signed.wire_bytes, signed.id)


def _sorted_sometimes(d: dict[str, Any]) -> dict[str, Any]:
    # Mostly canonical key order, so the shortcut is exercised; sometimes not, so the
    # refusal is too.
    return d if len(d) % 3 == 2 else dict(sorted(d.items()))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=4), children, max_size=3).map(_sorted_sometimes)
    ),
    max_leaves=12,
)
_wire_like = st.fixed_dictionaries(
    {
        "entry": st.fixed_dictionaries(
            {
                "author": st.sampled_from(["DE", "DE", "DE", "", "x" * 257]),
                "body": st.dictionaries(st.text(max_size=4), _json_values, max_size=4).map(
                    _sorted_sometimes
                ),
                "chain": st.just("customs-test-1"),
                "kind": st.sampled_from(["cert.issue", "shipment.event"]),
                "ts": st.integers(0, 2**63 - 1) | st.sampled_from([-1, 2**63, True]),
            }
        ),
        "sig": st.binary(min_size=64, max_size=64) | st.binary(max_size=65),
    }
)


@settings(max_examples=500)
@given(_wire_like, st.data())
def test_fast_decode_agrees_with_the_checked_path(
    wire: dict[str, Any], data: st.DataObject
) -> None:
    """decode_wire's one-walk shortcut gives the checked decoder's verdict, byte for byte,
    on canonical wires and on any single-byte mutation of them."""
    raw = bytearray(msgpack.packb(wire, use_bin_type=True))
    if data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    blob = bytes(raw)
    assert _outcome(decode_wire, blob) == _outcome(_decode_wire_checked, blob)


def test_a_signed_entry_takes_the_one_walk_path() -> None:
    from ledger.codec import decode_vouched
    from ledger.entry import _is_plain_wire

    signed = sign_entry("CN", "cert.issue", {"b": [1, {"a": True}], "a": "x"})
    assert decode_vouched(signed.wire_bytes, _is_plain_wire) is not None
    assert decode_wire(signed.wire_bytes, 16384) == _decode_wire_checked(signed.wire_bytes, 16384)


def _from_json_reference(obj: dict[str, Any], max_entry_bytes: int) -> SignedEntry:
    """entry_from_json as first written: encode the wire, then decode it strictly."""
    try:
        data = encode({"entry": obj["entry"], "sig": bytes.fromhex(obj["sig"])})
    except CodecError as exc:
        raise EntryError("malformed", str(exc)) from exc
    return decode_wire(data, max_entry_bytes)


@settings(max_examples=300)
@given(_wire_like, st.sampled_from([4096, 60]))
def test_entry_from_json_agrees_with_encode_then_decode(wire: dict[str, Any], limit: int) -> None:
    # Other lengths fail the hex check before encoding (test_bad_json_is_malformed).
    assume(len(wire["sig"]) == 64)
    obj = {"entry": wire["entry"], "sig": wire["sig"].hex()}

    def outcome(convert: Any) -> object:
        try:
            signed = convert(obj, limit)
        except EntryError as exc:
            return ("error", exc.code, exc.reason)
        return (signed.entry, signed.sig, signed.entry_bytes, signed.wire_bytes, signed.id)

    assert outcome(entry_from_json) == outcome(_from_json_reference)
