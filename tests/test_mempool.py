"""The mempool at and past each of its limits; time is always passed in."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entry import SignedEntry
from node.daemon.mempool import DuplicateEntry, Mempool, MempoolFull, StaleEntry
from tests.factories import GENESIS_TIME, sign_entry

NOW = GENESIS_TIME + 1_000_000
WINDOW = 600_000


def entry(n: int, *, ts: int = NOW, author: str = "CN") -> SignedEntry:
    return sign_entry(author, "test.note", {"n": n}, ts=ts)


def pool(max_entries: int = 100, max_bytes: int = 1_000_000) -> Mempool:
    return Mempool(max_entries=max_entries, max_bytes=max_bytes, entry_window_ms=WINDOW)


def test_add_returns_id_and_entry_is_pending() -> None:
    p = pool()
    e = entry(1)
    assert p.add(e, now_ms=NOW) == e.id
    assert e.id in p and len(p) == 1
    assert p.get(e.id) is e
    assert p.status(e.id) == "pending"
    assert p.status(entry(2).id) is None
    assert p.size_bytes == len(e.wire_bytes)


def test_duplicate_id_is_refused_and_changes_nothing() -> None:
    p = pool()
    e = entry(1)
    p.add(e, now_ms=NOW)
    with pytest.raises(DuplicateEntry) as info:
        p.add(e, now_ms=NOW)
    assert info.value.code == "duplicate" and info.value.entry_id == e.id
    assert len(p) == 1 and p.size_bytes == len(e.wire_bytes)


def test_entry_count_limit_at_and_past() -> None:
    p = pool(max_entries=3)
    for n in range(3):
        p.add(entry(n), now_ms=NOW)
    assert len(p) == 3
    with pytest.raises(MempoolFull) as info:
        p.add(entry(3), now_ms=NOW)
    assert info.value.limit == "entries" and info.value.code == "mempool_full"
    assert len(p) == 3 and entry(3).id not in p


def test_byte_limit_at_and_past() -> None:
    entries = [entry(n) for n in range(3)]
    exact = sum(len(e.wire_bytes) for e in entries[:2])
    p = pool(max_bytes=exact)
    p.add(entries[0], now_ms=NOW)
    p.add(entries[1], now_ms=NOW)
    assert p.size_bytes == exact  # exactly at the limit is allowed
    with pytest.raises(MempoolFull) as info:
        p.add(entries[2], now_ms=NOW)
    assert info.value.limit == "bytes"
    assert len(p) == 2 and p.size_bytes == exact


@pytest.mark.parametrize("offset", [-WINDOW, WINDOW])
def test_ts_at_window_edge_is_accepted(offset: int) -> None:
    p = pool()
    p.add(entry(1, ts=NOW + offset), now_ms=NOW)
    assert len(p) == 1


@pytest.mark.parametrize("offset", [-WINDOW - 1, WINDOW + 1])
def test_ts_past_window_is_stale(offset: int) -> None:
    p = pool()
    with pytest.raises(StaleEntry) as info:
        p.add(entry(1, ts=NOW + offset), now_ms=NOW)
    assert info.value.code == "stale"
    assert len(p) == 0 and p.size_bytes == 0


def test_reap_is_fifo_bounded_and_does_not_remove() -> None:
    p = pool()
    entries = [entry(n) for n in range(5)]
    for e in entries:
        p.add(e, now_ms=NOW)
    assert p.reap(3) == entries[:3]
    assert p.reap(10) == entries
    assert p.reap(0) == []
    two = sum(len(e.wire_bytes) for e in entries[:2])
    assert p.reap(10, max_bytes=two) == entries[:2]
    assert p.reap(10, max_bytes=two - 1) == entries[:1]
    assert len(p) == 5


def test_remove_committed_ids_frees_space() -> None:
    p = pool(max_entries=2)
    a, b, c = entry(1), entry(2), entry(3)
    p.add(a, now_ms=NOW)
    p.add(b, now_ms=NOW)
    assert p.remove([a.id, c.id]) == 1  # c was never pooled
    assert p.reap(10) == [b]
    assert p.size_bytes == len(b.wire_bytes)
    p.add(c, now_ms=NOW)
    assert p.reap(10) == [b, c]
    # A removed id can be re-added: de-duplication against committed ids is the chain's job.
    p.remove([b.id])
    p.add(a, now_ms=NOW)
    assert p.reap(10) == [c, a]


def test_drop_stale_removes_entries_that_left_the_window() -> None:
    p = pool()
    old, edge, new = entry(1, ts=NOW - 100), entry(2, ts=NOW), entry(3, ts=NOW + 100)
    for e in (old, edge, new):
        p.add(e, now_ms=NOW)
    later = NOW + WINDOW  # `edge` is exactly at the window, `old` 100 ms past it
    assert p.drop_stale(later) == [old.id]
    assert p.reap(10) == [edge, new]
    assert p.drop_stale(later + 1) == [edge.id]
    assert p.size_bytes == len(new.wire_bytes)


_POOLED = [entry(n, ts=NOW + n * (WINDOW // 4)) for n in range(8)]


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "remove", "drop"]),
            st.integers(0, len(_POOLED) - 1),
            st.integers(0, WINDOW // 3),
        ),
        max_size=40,
    )
)
def test_drop_stale_matches_a_full_scan_whatever_came_before(
    steps: list[tuple[str, int, int]],
) -> None:
    # The clock only moves forward here; each step may advance it.
    p, now = pool(), NOW
    for action, n, advance in steps:
        now += advance
        e = _POOLED[n]
        if action == "add":
            with contextlib.suppress(DuplicateEntry, StaleEntry):
                p.add(e, now_ms=now)
        elif action == "remove":
            p.remove([e.id])
        else:
            expected = [i for i in list(p.reap(100)) if not p.is_fresh(i.entry.ts, now)]
            assert p.drop_stale(now) == [i.id for i in expected]
            assert all(p.is_fresh(i.entry.ts, now) for i in p.reap(100))


def test_signature_verified_only_for_the_same_signature() -> None:
    p = pool()
    e = entry(1)
    p.add(e, now_ms=NOW)
    assert p.signature_verified(e)
    forged = SignedEntry(e.entry, bytes(64), e.entry_bytes, e.wire_bytes)
    assert forged.id == e.id
    assert not p.signature_verified(forged)
    assert not p.signature_verified(entry(2))
    p.remove([e.id])
    assert not p.signature_verified(e)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Mempool(max_entries=0, max_bytes=1, entry_window_ms=1)
