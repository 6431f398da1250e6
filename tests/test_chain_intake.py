"""The node's chain on its own: entry intake, proposing, checking and committing.

``node.daemon.chain.Chain`` is synchronous and reads no clock, so intake and the block
rules are tested here on a real store with real signatures, without HTTP, peers or an
event loop (issue 22).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from contracts import Rejection
from ledger.entry import SignedEntry
from ledger.genesis import Genesis
from ledger.store import Store
from node.daemon.block_maker import InvalidBlock
from node.daemon.chain import Chain, Committed, EntryState, StaleHeight
from node.daemon.gossip_payloads import entry_id_of_wire
from node.daemon.mempool import Mempool, MempoolFull
from tests import samples
from tests.factories import GENESIS_TIME, make_genesis, sign_entry
from tests.test_chain import make_commit

NOW = GENESIS_TIME + 3_600_000
WINDOW_MS = 600_000


@pytest.fixture
def genesis() -> Genesis:
    return make_genesis()


@pytest.fixture
def chain(tmp_path: Path, genesis: Genesis) -> Iterator[Chain]:
    store = Store.open(tmp_path / "db", genesis)
    pool = Mempool(max_entries=8, max_bytes=1 << 20, entry_window_ms=WINDOW_MS)
    try:
        yield Chain(store, genesis, pool, max_rejections=3)
    finally:
        store.close()


def _cert(n: int, *, author: str = "DE", ts: int = NOW) -> SignedEntry:
    return sign_entry(author, "cert.issue", samples.cert_issue(f"{author}-C{n:04d}", author), ts=ts)


def _forged(entry: SignedEntry) -> SignedEntry:
    return replace(entry, sig=bytes(64))


def _commit_next(chain: Chain, genesis: Genesis, now: int = NOW) -> Committed:
    """Propose from the pool and commit it, as a one-validator network would."""
    height = chain.height + 1
    last = chain.head_commit()
    proposed = chain.propose(height, time_ms=now, proposer="CN", last_commit=last)
    done = chain.commit(
        proposed.block, make_commit(genesis, proposed.block.header), proposed.staged, last
    )
    assert done is not None
    return done


def test_a_batch_is_admitted_whole_and_returns_what_is_new(chain: Chain) -> None:
    first = [_cert(1), _cert(2)]
    assert chain.admit(first, now_ms=NOW) == first
    again = chain.admit([first[1], _cert(3)], now_ms=NOW)  # a pending entry resubmitted
    assert [e.id for e in again] == [_cert(3).id]
    assert [e.id for e in chain.mempool.reap(10)] == [e.id for e in [*first, _cert(3)]]
    assert chain.entry_state(first[0].id) == EntryState("pending")


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (lambda: _forged(_cert(9)), "bad_signature"),
        (lambda: _cert(9, ts=NOW - WINDOW_MS - 1), "stale"),
        (lambda: _cert(9, ts=NOW + WINDOW_MS + 1), "stale"),
        (lambda: _cert(9, author="XX"), "unknown_author"),
    ],
)
def test_one_bad_entry_refuses_the_whole_batch_and_pools_nothing(
    chain: Chain, bad: object, code: str
) -> None:
    assert callable(bad)
    batch = [_cert(1), bad(), _cert(2)]
    with pytest.raises(Rejection) as refused:
        chain.admit(batch, now_ms=NOW)
    assert refused.value.code == code
    assert refused.value.message.startswith("entry 1: ")
    assert len(chain.mempool) == 0


def test_a_committed_entry_is_a_duplicate(chain: Chain, genesis: Genesis) -> None:
    entry = _cert(1)
    chain.admit([entry], now_ms=NOW)
    _commit_next(chain, genesis)
    with pytest.raises(Rejection, match="already committed") as refused:
        chain.admit([entry], now_ms=NOW)
    assert refused.value.code == "duplicate"
    assert chain.entry_state(entry.id) is None  # the store answers for committed ones


def test_a_batch_past_the_pools_room_is_refused_whole(chain: Chain) -> None:
    chain.admit([_cert(n) for n in range(6)], now_ms=NOW)
    with pytest.raises(MempoolFull) as full:
        chain.admit([_cert(n) for n in range(6, 9)], now_ms=NOW)  # 9 > 8
    assert full.value.limit == "entries"
    assert len(chain.mempool) == 6


def test_relayed_copies_cost_nothing_and_forgeries_are_counted(
    chain: Chain, entry_verifications: list[bytes]
) -> None:
    entries = [_cert(1), _cert(2)]
    wires = [e.wire_bytes for e in entries]
    assert chain.admit_relayed(wires, now_ms=NOW) == []
    assert chain.admit_relayed(wires, now_ms=NOW) == []  # a relayed copy: no check again
    assert len(entry_verifications) == 2
    # A pooled entry under another signature is checked, not taken for the pooled one.
    flipped = bytearray(entries[0].wire_bytes)
    flipped[-1] ^= 1  # a bit of the signature
    forged = bytes(flipped)
    assert entry_id_of_wire(forged) == entries[0].id
    assert chain.admit_relayed([forged, b"\x93junk"], now_ms=NOW) == ["bad_signature", "malformed"]
    assert chain.mempool.get(entries[0].id) == entries[0]


def test_a_checked_proposals_entries_become_pending_unless_the_pool_is_full(chain: Chain) -> None:
    gossiped, proposed = [_cert(1)], [_cert(20), _cert(21), _cert(22)]
    chain.admit_relayed([e.wire_bytes for e in gossiped], now_ms=NOW)
    chain.admit_proposed([*gossiped, *proposed], now_ms=NOW)
    assert [e.id for e in chain.mempool.reap(10)] == [e.id for e in [*gossiped, *proposed]]
    assert chain.admit_relayed([e.wire_bytes for e in proposed], now_ms=NOW) == []
    chain.mempool.max_entries = 4
    chain.admit_proposed([_cert(40)], now_ms=NOW)  # quietly not pooled
    assert len(chain.mempool) == 4


def test_propose_leaves_out_and_remembers_what_the_block_rules_refuse(
    chain: Chain, genesis: Genesis
) -> None:
    issued = _cert(1)
    chain.admit([issued], now_ms=NOW)
    _commit_next(chain, genesis)
    # A second issue of the same certificate id passes intake (stateless) and fails
    # in the block (the id exists): it leaves the pool as rejected with its code.
    reissue = sign_entry("DE", "cert.issue", samples.cert_issue("DE-C0001", "DE"), ts=NOW + 1)
    fresh = _cert(2)
    chain.admit([reissue, fresh], now_ms=NOW)
    done = _commit_next(chain, genesis)
    assert [e.id for e in done.block.entries] == [fresh.id]
    state = chain.entry_state(reissue.id)
    assert state is not None and state.status == "rejected" and state.code is not None
    assert len(chain.mempool) == 0


def test_entries_that_age_out_of_the_window_are_dropped_as_stale(
    chain: Chain, genesis: Genesis
) -> None:
    old = _cert(1)
    chain.admit([old], now_ms=NOW)
    done = _commit_next(chain, genesis, now=NOW + WINDOW_MS + 1)
    assert done.block.entries == ()
    assert chain.entry_state(old.id) == EntryState(
        "rejected", "stale", "entry expired in the mempool"
    )


def test_rejections_remembered_are_bounded_oldest_first(chain: Chain, genesis: Genesis) -> None:
    olds = [_cert(n) for n in range(5)]
    chain.admit(olds, now_ms=NOW)
    _commit_next(chain, genesis, now=NOW + WINDOW_MS + 1)
    assert [chain.entry_state(e.id) is not None for e in olds] == [False, False, True, True, True]


def test_only_the_next_height_can_be_proposed(chain: Chain, genesis: Genesis) -> None:
    _commit_next(chain, genesis)
    for height in (1, 3):
        with pytest.raises(StaleHeight, match=f"height {height} cannot be built"):
            chain.propose(height, time_ms=NOW, proposer="CN", last_commit=None)


def test_check_reuses_intake_verdicts_and_refuses_a_forged_copy(
    tmp_path: Path, chain: Chain, genesis: Genesis, entry_verifications: list[bytes]
) -> None:
    entries = [_cert(1), _cert(2)]
    chain.admit(entries, now_ms=NOW)
    verified_on_intake = len(entry_verifications)
    proposed = chain.propose(1, time_ms=NOW, proposer="CN", last_commit=None)
    chain.check(proposed.block, None, now_ms=NOW)
    assert len(entry_verifications) == verified_on_intake
    forged = replace(proposed.block, entries=tuple(_forged(e) for e in proposed.block.entries))
    with pytest.raises(InvalidBlock):
        chain.check(forged, None, now_ms=NOW)
    assert chain.height == 0


def test_commit_empties_the_pool_tells_subscribers_in_order_and_happens_once(
    chain: Chain, genesis: Genesis
) -> None:
    heard: list[tuple[str, int]] = []
    chain.subscribe(lambda done: heard.append(("first", done.block.header.height)))
    chain.subscribe(lambda done: heard.append(("second", done.block.header.height)))
    chain.admit([_cert(1)], now_ms=NOW)
    proposed = chain.propose(1, time_ms=NOW, proposer="CN", last_commit=None)
    commit = make_commit(genesis, proposed.block.header)
    done = chain.commit(proposed.block, commit, proposed.staged, None)
    assert done is not None and done.block == proposed.block and done.commit == commit
    assert heard == [("first", 1), ("second", 1)] and len(chain.mempool) == 0
    assert chain.commit(proposed.block, commit, proposed.staged, None) is None  # stored
    assert heard == [("first", 1), ("second", 1)]
    assert chain.head_commit() == commit and chain.store.has_entry(_cert(1).id)
