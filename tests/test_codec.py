"""Canonical MessagePack (DESIGN §2): round trips and every rejection class."""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.codec import MAX_DEPTH, CodecError, decode, encode

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip(value: object) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


@given(st.dictionaries(st.text(max_size=8), st.integers(0, 5), min_size=2, max_size=8))
def test_map_keys_sorted_by_utf8_bytes(mapping: dict[str, int]) -> None:
    decoded = decode(encode(mapping))
    keys = [k.encode() for k in decoded]
    assert keys == sorted(keys)


def test_insertion_order_does_not_matter() -> None:
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})


def test_tuples_and_lists_encode_the_same() -> None:
    assert encode((1, 2)) == encode([1, 2])


@given(values, st.data())
def test_random_mutations_fail_or_reencode_exactly(value: object, data: st.DataObject) -> None:
    original = bytearray(encode(value))
    position = data.draw(st.integers(0, len(original) - 1))
    original[position] = data.draw(st.integers(0, 255))
    mutated = bytes(original)
    try:
        decoded = decode(mutated)
    except CodecError:
        return
    assert encode(decoded) == mutated


def test_seeded_byte_mutations_of_a_realistic_entry() -> None:
    rng = random.Random(9162)
    base = encode(
        {
            "entry": {"author": "CN", "body": {"cert_id": "CN-1", "n": [1, 300, -5]}, "ts": 2**40},
            "sig": bytes(64),
        }
    )
    for _ in range(3000):
        mutated = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            decoded = decode(bytes(mutated))
        except CodecError:
            continue
        assert encode(decoded) == bytes(mutated)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("unsorted keys", b"\x82\xa1b\x01\xa1a\x02"),
        ("duplicate keys", b"\x82\xa1a\x01\xa1a\x02"),
        ("non-str key", b"\x81\x01\x01"),
        ("bin key", b"\x81\xc4\x01a\x01"),
        ("uint8 for a fixint", b"\xcc\x01"),
        ("uint16 for a uint8", b"\xcd\x00\xff"),
        ("int8 for a negative fixint", b"\xd0\xff"),
        ("str8 for a fixstr", b"\xd9\x01a"),
        ("array16 for a fixarray", b"\xdc\x00\x01\x01"),
        ("map16 for a fixmap", b"\xde\x00\x01\xa1a\x01"),
        ("bin16 for a bin8", b"\xc5\x00\x01a"),
        ("float64", b"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
        ("float32", b"\xca\x3f\x80\x00\x00"),
        ("ext type", b"\xd4\x01\x01"),
        ("timestamp ext", b"\xd6\xff\x00\x00\x00\x00"),
        ("invalid utf-8", b"\xa2\xc3\x28"),
        ("trailing bytes", b"\x01\x02"),
        ("truncated array", b"\x92\x01"),
        ("truncated str", b"\xa5abc"),
        ("empty input", b""),
        ("reserved byte 0xc1", b"\xc1"),
    ],
)
def test_rejects(name: str, data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_float_nested_in_map_rejected() -> None:
    data = msgpack.packb({"a": [1, 2.5]}, use_bin_type=True)
    with pytest.raises(CodecError, match="float"):
        decode(data)


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit_exactly() -> None:
    at_limit = encode(_nested(MAX_DEPTH))
    assert decode(at_limit) == _nested(MAX_DEPTH)
    over = b"\x91" * (MAX_DEPTH + 1) + b"\x00"
    with pytest.raises(CodecError, match="deeper"):
        decode(over)
    with pytest.raises(CodecError, match="deeper"):
        encode(_nested(MAX_DEPTH + 1))


def test_hostile_depth_does_not_crash() -> None:
    with pytest.raises(CodecError):
        decode(b"\x91" * 100_000 + b"\x00")


def test_size_limit_at_and_past() -> None:
    data = encode("x" * 100)
    assert decode(data, max_bytes=len(data)) == "x" * 100
    with pytest.raises(CodecError, match="exceeds"):
        decode(data, max_bytes=len(data) - 1)


def test_huge_declared_length_is_truncation_not_allocation() -> None:
    with pytest.raises(CodecError):
        decode(b"\xdd\xff\xff\xff\xff")  # array32 claiming 4 billion items


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 1.5, {1: 2}, object(), {"a": {3}}])
def test_encode_rejects_values_outside_the_model(value: object) -> None:
    with pytest.raises(CodecError):
        encode(value)


def test_int_range_edges() -> None:
    for value in (2**64 - 1, -(2**63), 0, -1, 127, 128, -32, -33):
        assert decode(encode(value)) == value


def test_str_and_bytes_stay_distinct() -> None:
    assert decode(encode(["a", b"a"])) == ["a", b"a"]


def test_rejects_non_bytes_input() -> None:
    with pytest.raises(CodecError):
        decode("not bytes")  # type: ignore[arg-type]


hostile = st.recursive(
    scalars | st.floats(allow_nan=False) | st.just(msgpack.Timestamp(0, 0)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), children, max_size=4)
    ),
    max_leaves=40,
)


@given(hostile)
def test_fast_path_agrees_with_the_precise_check(value: object) -> None:
    from ledger.codec import _check, plain_sorted

    try:
        _check(value, 0)
        precise = True
    except CodecError:
        precise = False
    fast = isinstance(value, (dict, list)) and plain_sorted(value, 0)
    assert not fast or precise  # the fast path never accepts what the check refuses
    if isinstance(value, (dict, list)):
        assert fast == precise


encodable = st.recursive(
    scalars
    | st.integers(min_value=2**64, max_value=2**70)
    | st.text(alphabet="\ud800", max_size=2),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)


@given(encodable)
def test_encode_quick_path_packs_what_the_long_way_packs(value: object) -> None:
    """encode's shortcut for already-canonical values never changes bytes or errors."""
    from ledger.codec import _canonical

    try:
        expected: bytes | str = msgpack.packb(_canonical(value, 0), use_bin_type=True)
    except (CodecError, OverflowError, UnicodeEncodeError, ValueError, TypeError):
        expected = "error"
    try:
        got: bytes | str = encode(value)
    except CodecError:
        got = "error"
    assert got == expected


def test_a_failed_encode_leaves_nothing_behind_for_the_next() -> None:
    # The module's one Packer is reused: a value it refuses midway must not leak bytes.
    for bad in ({"a": ["x", 2**70]}, {"a": ["x", "\ud800"]}):
        with pytest.raises(CodecError):
            encode(bad)
        assert encode({"b": [1, "y"]}) == msgpack.packb({"b": [1, "y"]}, use_bin_type=True)
