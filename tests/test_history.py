"""Subject hash chains and their state-map values (DESIGN §8)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.codec import encode
from ledger.history import (
    EMPTY_HEAD,
    MAX_SUBJECT_BYTES,
    HistoryError,
    SubjectState,
    chain_head,
    next_head,
    subject_key,
)

ids = st.lists(st.binary(min_size=32, max_size=32), max_size=20)


def test_subject_key_is_sha256_of_utf8() -> None:
    assert subject_key("cert/CN-CO-1") == hashlib.sha256(b"cert/CN-CO-1").digest()
    assert subject_key("shipment/é") == hashlib.sha256("shipment/é".encode()).digest()


@pytest.mark.parametrize(
    "subject", ["", b"cert/A", None, "x" * (MAX_SUBJECT_BYTES + 1), "cert/\ud800"]
)
def test_bad_subjects_are_refused(subject: object) -> None:
    with pytest.raises(HistoryError):
        subject_key(subject)  # type: ignore[arg-type]


def test_subject_at_the_size_limit_is_accepted() -> None:
    assert len(subject_key("x" * MAX_SUBJECT_BYTES)) == 32


def test_head_chain_starts_from_zero_and_links_each_id() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    assert chain_head([]) == (EMPTY_HEAD, 0) == (bytes(32), 0)
    expected = hashlib.sha256(hashlib.sha256(bytes(32) + a).digest() + b).digest()
    assert chain_head([a, b]) == (expected, 2)
    assert next_head(next_head(EMPTY_HEAD, a), b) == expected


@given(ids, ids)
def test_any_change_to_the_list_changes_the_head(first: list[bytes], second: list[bytes]) -> None:
    # An omission, addition or reordering is a different list, hence a different head.
    if first != second:
        assert chain_head(first) != chain_head(second)


@given(ids)
def test_advancing_state_matches_chain_head(entry_ids: list[bytes]) -> None:
    state = SubjectState(EMPTY_HEAD, 0, 0)
    for height, entry_id in enumerate(entry_ids, start=1):
        state = state.advance(entry_id, height)
    assert (state.head, state.count) == chain_head(entry_ids)
    if entry_ids:
        assert SubjectState.decode(state.encode()) == state


def test_state_value_is_the_canonical_map() -> None:
    state = SubjectState(b"\x05" * 32, 3, 9)
    assert state.encode() == encode({"head": b"\x05" * 32, "count": 3, "height": 9})


def test_advance_refuses_to_go_back_in_height() -> None:
    with pytest.raises(HistoryError, match="before"):
        SubjectState(b"\x05" * 32, 3, 9).advance(bytes(32), 8)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc0",
        encode({"head": bytes(32), "count": 1}),
        encode({"head": bytes(31), "count": 1, "height": 1}),
        encode({"head": bytes(32), "count": 0, "height": 1}),
        encode({"head": bytes(32), "count": 1, "height": 0}),
        encode({"head": bytes(32), "count": True, "height": 1}),
        encode({"head": bytes(32), "count": 1, "height": 1, "x": 1}),
        encode({"head": bytes(32), "count": 1, "height": 1}) + b"\x00",
        encode([bytes(32), 1, 1]),
        b"\x83" + b"\xa5count\xcc\x01" + b"\xa4head\xc4\x20" + bytes(32) + b"\xa6height\x01",
    ],
)
def test_bad_state_values_are_refused(data: bytes) -> None:
    with pytest.raises(HistoryError):
        SubjectState.decode(data)
