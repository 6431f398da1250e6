"""ledger.store over a real LevelDB database in a temp dir."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import plyvel
import pytest

from ledger import merkle
from ledger.block import Block, Commit
from ledger.errors import StoreError, StoreGenesisMismatch, StoreInUseError
from ledger.genesis import Params
from ledger.history import HistoryError, subject_key
from ledger.merkle_log import MerkleLog
from ledger.store import EntryLocation, Store, SubjectRef
from tests.factories import dump_db, make_genesis
from tests.store_crash_child import make_commit, make_entries, next_block, subjects_of

GENESIS = make_genesis()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    with Store.open(path, GENESIS) as opened:
        yield opened


def _commit_next(store: Store, first: int, count: int) -> tuple[Block, Commit]:
    entries = make_entries(first, count)
    block, commit = next_block(store, GENESIS, entries)
    store.commit_block(block, commit, subjects_of(entries))
    return block, commit


# -- round trips -----------------------------------------------------------------------


def test_empty_store(store: Store) -> None:
    assert (store.height, store.head_header(), store.head_hash()) == (0, None, None)
    assert store.get_header(1) is None and store.get_block(1) is None
    assert store.get_commit(0) is None
    assert (store.log_size(), store.log_root()) == (0, merkle.EMPTY_ROOT)
    assert store.log_after([b"a", b"b"]) == (2, merkle.root([b"a", b"b"]))
    assert store.subject_entries("cert/X") == [] and store.subject_count("cert/X") == 0


def test_blocks_commits_and_heads_round_trip(path: Path, store: Store) -> None:
    built = [_commit_next(store, 0, 3), _commit_next(store, 3, 0), _commit_next(store, 3, 5)]
    store.close()
    with Store.open(path, GENESIS) as reopened:
        assert reopened.height == 3
        for height, (block, commit) in enumerate(built, start=1):
            assert reopened.get_header(height) == block.header
            assert reopened.get_block(height) == block
            assert reopened.get_commit(height) == commit
        assert reopened.head_header() == built[-1][0].header
        assert reopened.head_hash() == built[-1][0].header.hash()
        assert reopened.get_header(4) is None


def test_entry_locations_and_committed_ids(store: Store) -> None:
    first, _ = _commit_next(store, 0, 4)
    second, _ = _commit_next(store, 4, 3)
    for height, block in ((1, first), (2, second)):
        offset = block.header.log_size - block.header.entries
        for position, entry in enumerate(block.entries):
            location = EntryLocation(height, position, offset + position)
            assert store.entry_location(entry.id) == location
            assert store.has_entry(entry.id)
    missing = make_entries(99, 1)[0].id
    assert store.entry_location(missing) is None and not store.has_entry(missing)
    with pytest.raises(StoreError, match="32 bytes"):
        store.has_entry(b"short")


def test_subject_index_is_ordered_by_commit(store: Store) -> None:
    # Entries n and n+7 share a shipment (ucr = n % 7).
    first, _ = _commit_next(store, 0, 10)
    second, _ = _commit_next(store, 10, 10)
    shipment = "shipment/6CN000000002"
    expected = [
        SubjectRef(e.id, height, block.header.log_size - block.header.entries + i)
        for height, block in ((1, first), (2, second))
        for i, e in enumerate(block.entries)
        if e.entry.body["ucr"] == "6CN000000002"
    ]
    assert [ref.log_index for ref in expected] == [2, 9, 16]
    assert store.subject_entries(shipment) == expected
    assert store.subject_count(shipment) == 3
    assert store.subject_entries(shipment, start=1) == expected[1:]
    assert store.subject_entries(shipment, start=1, limit=1) == expected[1:2]
    assert store.subject_entries(shipment, limit=0) == []
    assert store.subject_entries("cert/CERT-00000013") == [SubjectRef(second.entries[3].id, 2, 13)]
    with pytest.raises(StoreError, match="start"):
        store.subject_entries(shipment, start=-1)


def test_log_matches_pure_functions_for_past_sizes(store: Store) -> None:
    for first, count in ((0, 5), (5, 1), (6, 11), (17, 4)):
        _commit_next(store, first, count)
    leaves = [store.leaf(i) for i in range(store.log_size())]
    assert len(leaves) == 21
    assert store.get_block(3) is not None
    assert leaves[6:17] == [e.wire_bytes for e in store.get_block(3).entries]  # type: ignore[union-attr]
    for size in range(0, 22):
        assert store.log_root(size) == merkle.root(leaves[:size])
        for index in range(size):
            assert store.inclusion_proof(index, size) == merkle.inclusion_proof(
                leaves[:size], index
            )
        for old in range(size + 1):
            assert store.consistency_proof(old, size) == merkle.consistency_proof(
                leaves[:size], old
            )
    header = store.head_header()
    assert header is not None and header.log_root == store.log_root() == merkle.root(leaves)


def test_extra_namespace_round_trips(store: Store) -> None:
    entries = make_entries(0, 2)
    block, commit = next_block(store, GENESIS, entries)
    store.write_extra({b"x:state/a": b"1", b"x:state/b": b"2", b"x:consensus/h": b"7"})
    store.commit_block(
        block, commit, subjects_of(entries), {b"x:state/a": None, b"x:state/c": b"3"}
    )
    assert store.get_raw(b"x:state/a") is None
    assert list(store.iter_raw(b"x:state/")) == [(b"x:state/b", b"2"), (b"x:state/c", b"3")]
    assert store.get_raw(b"x:consensus/h") == b"7"
    with pytest.raises(StoreError, match="x:"):
        store.write_extra({b"h:\x00": b"overwrite a header"})
    with pytest.raises(StoreError, match="x:"):
        store.get_raw(b"m:head")


def test_replace_commit_keeps_another_valid_quorum(store: Store) -> None:
    block, commit = _commit_next(store, 0, 1)
    smaller = make_commit(GENESIS, block.header, signers=GENESIS.validators.quorum)
    assert smaller != commit
    store.replace_commit(1, smaller)
    assert store.get_commit(1) == smaller
    wrong = dataclasses.replace(smaller, block=bytes(32))
    with pytest.raises(StoreError, match="not for block"):
        store.replace_commit(1, wrong)
    with pytest.raises(StoreError, match="no block at height 2"):
        store.replace_commit(2, smaller)
    assert store.get_commit(1) == smaller


# -- refusals --------------------------------------------------------------------------


def test_different_genesis_is_refused_with_both_hashes(path: Path) -> None:
    Store.open(path, GENESIS).close()
    other = make_genesis(chain_id="customs-other-1")
    with pytest.raises(StoreGenesisMismatch) as caught:
        Store.open(path, other)
    assert GENESIS.hash_hex in str(caught.value) and other.hash_hex in str(caught.value)


def test_second_handle_in_this_process_is_refused(path: Path, store: Store) -> None:
    with pytest.raises(StoreInUseError, match="in use"):
        Store.open(path, GENESIS)
    assert store.height == 0  # the first handle still works


def test_second_process_is_refused(path: Path, store: Store) -> None:
    script = (
        "import sys\n"
        "from ledger.store import Store\n"
        "from tests.factories import make_genesis\n"
        "try:\n"
        "    Store.open(sys.argv[1], make_genesis())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.startswith("StoreInUseError"), result.stdout + result.stderr
    assert str(path) in result.stdout


def test_a_foreign_leveldb_is_not_adopted(path: Path) -> None:
    db = plyvel.DB(str(path), create_if_missing=True)
    db.put(b"something", b"else")
    db.close()
    with pytest.raises(StoreError, match="not a ledger store"):
        Store.open(path, GENESIS)


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    # An operator resyncing a node from scratch deletes its whole data dir.
    nested = tmp_path / "data" / "deleted" / "ledger"
    with Store.open(nested, GENESIS) as store:
        assert store.height == 0
    with Store.open(nested, GENESIS) as store:  # and it is the same store next time
        assert store.height == 0


def test_a_path_that_cannot_be_a_store_gets_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create"):
        Store.open(blocker / "sub" / "ledger", GENESIS)
    with pytest.raises(StoreError, match="cannot open store") as caught:
        Store.open(blocker, GENESIS)  # LevelDB's own refusal, as readable text
    assert "b'" not in str(caught.value)


def test_bad_blocks_are_refused_and_write_nothing(path: Path) -> None:
    with Store.open(path, GENESIS) as store:
        _commit_next(store, 0, 3)
    before = dump_db(path)
    with Store.open(path, GENESIS) as store:
        _assert_refusals(store)
    assert dump_db(path) == before


def _refuse(store: Store, block: Block, commit: Commit, match: str, **kw: object) -> None:
    subjects = kw.pop("subjects", subjects_of(block.entries))
    with pytest.raises(StoreError, match=match):
        store.commit_block(block, commit, subjects, **kw)  # type: ignore[arg-type]


def _reheader(block: Block, **changes: object) -> tuple[Block, Commit]:
    header = dataclasses.replace(block.header, **changes)  # type: ignore[arg-type]
    return Block(header, block.entries), make_commit(GENESIS, header)


def _assert_refusals(store: Store) -> None:
    entries = make_entries(3, 4)
    good, commit = next_block(store, GENESIS, entries)
    h = good.header
    _refuse(store, *_reheader(good, height=3), match="expects 2")
    _refuse(store, *_reheader(good, prev=bytes(32)), match="links to")
    _refuse(store, *_reheader(good, log_root=bytes(32)), match="appending the entries gives")
    _refuse(store, *_reheader(good, log_size=h.log_size + 1), match="appending")
    _refuse(store, *_reheader(good, entries=3), match="header counts 3")
    _refuse(store, *_reheader(good, chain="customs-other-1"), match="chain")
    _refuse(store, good, dataclasses.replace(commit, block=bytes(32)), match="commit is for")
    _refuse(store, good, dataclasses.replace(commit, height=3), match="commit is for")
    stale = make_entries(1, 1) + entries[1:]  # entry 1 is already committed at height 1
    _refuse(store, *next_block(store, GENESIS, stale), match="already committed")
    twice = [entries[0], *entries[:3]]
    _refuse(store, *next_block(store, GENESIS, twice), match="already committed")
    _refuse(store, good, commit, subjects=[["cert/A"]], match="subject lists")
    _refuse(store, good, commit, subjects=["cert/A"] * 4, match="not a string")
    _refuse(store, good, commit, subjects=[[""]] * 4, match="non-empty")
    _refuse(store, good, commit, extra={b"h:": b"x"}, match="x:")
    _refuse(store, good, commit, extra={b"x:a": "text"}, match="bytes or None")
    _refuse(store, good, commit, subjects=[["cert/\udc80"]] * 4, match="UTF-8")
    assert store.height == 1 and not store.has_entry(entries[0].id)


def test_a_staged_log_append_is_refused_unless_it_fits(path: Path) -> None:
    with Store.open(path, GENESIS) as store:
        _commit_next(store, 0, 3)
    before = dump_db(path)
    with Store.open(path, GENESIS) as store:
        entries = make_entries(3, 4)
        good, commit = next_block(store, GENESIS, entries)
        wires = [e.wire_bytes for e in entries]
        at_zero = MerkleLog().stage(wires)
        _refuse(store, good, commit, log=at_zero, match="starts at size 0, the log is at 3")
        elsewhere = MerkleLog(3, [bytes([1]) * 32, bytes([2]) * 32]).stage(wires)
        _refuse(store, good, commit, log=elsewhere, match="frontier differs")
        for leaves in (wires[::-1], wires[:3], [*wires, b"extra"]):
            _refuse(store, good, commit, log=store.log_append(leaves), match="does not hold")
        forged, forged_commit = _reheader(good, log_root=bytes(32))
        _refuse(store, forged, forged_commit, log=store.log_append(wires), match="entries gives")
        _refuse(store, good, commit, digests=[[bytes(32)]] * 3, match="3 subject digest lists")
        assert store.height == 1
    assert dump_db(path) == before


def test_a_fitting_staged_append_and_digests_are_committed(store: Store) -> None:
    _commit_next(store, 0, 3)
    entries = make_entries(3, 4)
    block, commit = next_block(store, GENESIS, entries)
    subjects = subjects_of(entries)
    digests = [[subject_key(s) for s in touched] for touched in subjects]
    log = store.log_append([e.wire_bytes for e in entries])
    store.commit_block(block, commit, subjects, log=log, digests=digests)
    assert (store.log_size(), store.log_root()) == (7, block.header.log_root)
    assert store.subject_count(subjects[3][0]) == 1
    assert store.entry_location(entries[3].id) == EntryLocation(2, 3, 6)


@pytest.mark.parametrize("subject", ["cert/A", "shipment/é-日本", "x" * 1024])
def test_the_subject_index_is_keyed_like_the_state_map(path: Path, subject: str) -> None:
    # Block staging hands the store its subject_key digests, so both must be one function.
    with Store.open(path, GENESIS) as store:
        entries = make_entries(0, 1)
        block, commit = next_block(store, GENESIS, entries)
        store.commit_block(block, commit, [[subject]])
    dump = dump_db(path)
    key = subject_key(subject)
    assert dump[b"k:" + key] == b"\x01"
    assert dump[b"s:" + key + bytes(8)] == msgpack.packb([entries[0].id, 1, 0])


@pytest.mark.parametrize("subject", ["", "x" * 1025, "cert/\udc80", b"cert/A", None])
def test_store_and_state_map_refuse_the_same_subject_names(store: Store, subject: object) -> None:
    with pytest.raises(StoreError):
        store.subject_count(subject)  # type: ignore[arg-type]
    with pytest.raises(HistoryError):
        subject_key(subject)  # type: ignore[arg-type]


# -- snapshots, corruption, closing ----------------------------------------------------


def test_snapshot_does_not_see_later_commits(store: Store) -> None:
    first, _ = _commit_next(store, 0, 6)
    with store.snapshot() as view:
        later, _ = _commit_next(store, 6, 5)
        assert store.height == 2 and view.height == 1
        assert view.head_header() == first.header and view.get_header(2) is None
        assert view.log_size() == 6 and view.log_root() == first.header.log_root
        assert not view.has_entry(later.entries[0].id)
        assert view.subject_count("shipment/6CN000000000") == 1
        assert store.subject_count("shipment/6CN000000000") == 2
        leaves = [view.leaf(i) for i in range(6)]
        assert view.inclusion_proof(5, 6) == merkle.inclusion_proof(leaves, 5)
        with pytest.raises(StoreError, match="outside"):
            view.inclusion_proof(6, 7)
        assert view.log_after([b"z"]) == (7, merkle.root([*leaves, b"z"]))
        assert view.get_block(1) == first
    with pytest.raises(StoreError, match="closed"):
        view.get_header(1)


def test_corrupt_records_are_store_errors(path: Path) -> None:
    with Store.open(path, GENESIS) as store:
        block, _ = _commit_next(store, 0, 2)
    db = plyvel.DB(str(path))
    db.put(b"c:" + (1).to_bytes(8, "big"), b"\x81\xa1a\x01")
    db.put(b"e:" + block.entries[0].id, b"\x93\x01\x00")
    db.close()
    with Store.open(path, GENESIS) as store:
        with pytest.raises(StoreError, match="corrupt commit 1"):
            store.get_commit(1)
        with pytest.raises(StoreError, match="corrupt location"):
            store.entry_location(block.entries[0].id)
    db = plyvel.DB(str(path))
    db.delete(b"l:" + (1).to_bytes(8, "big"))
    db.close()
    with Store.open(path, GENESIS) as store, pytest.raises(StoreError, match="leaf 1 of block 1"):
        store.get_block(1)
    db = plyvel.DB(str(path))
    db.put(b"m:head", b"\x92\x01\xc4\x01x")
    db.close()
    with pytest.raises(StoreError, match="head record"):
        Store.open(path, GENESIS)


def test_closed_store_refuses_reads_and_writes(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_raw(b"x:a")
    with pytest.raises(StoreError, match="closed"):
        store.subject_count("cert/A")
    with pytest.raises(StoreError, match="closed"):
        store.write_extra({b"x:a": b"1"})
    with pytest.raises(StoreError, match="closed"), store.snapshot():
        pass
    store.close()  # closing twice is harmless


def test_entries_over_the_genesis_size_limit_are_refused(tmp_path: Path) -> None:
    small = make_genesis(params=Params(max_entry_bytes=256))
    entries = make_entries(0, 2)
    assert len(entries[0].wire_bytes) > 256
    with Store.open(tmp_path / "small", small) as store:
        block, commit = next_block(store, small, entries)
        with pytest.raises(StoreError, match="max_entry_bytes 256"):
            store.commit_block(block, commit, subjects_of(entries))
        assert store.height == 0 and store.log_size() == 0
