"""The persistent Merkle log gives what the pure RFC 9162 functions give, for every size.

The log is exercised over a real LevelDB database in a temp dir, appended in several
block splits, closed and reopened.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import StoreError
from ledger.merkle_log import LOG_SIZE_KEY, LogReader, MerkleLog, leaf_key, node_key

TOTAL = 70
LEAVES = [b"entry-%03d" % i for i in range(TOTAL)]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[plyvel.DB]:
    handle = plyvel.DB(str(tmp_path / "log"), create_if_missing=True)
    yield handle
    handle.close()


def _append(db: plyvel.DB, log: MerkleLog, leaves: list[bytes]) -> None:
    staged = log.stage(leaves)
    with db.write_batch(sync=True) as batch:
        for key, value in staged.writes:
            batch.put(key, value)
    log.adopt(staged)


def _splits(seed: int) -> list[int]:
    """Block sizes summing to TOTAL, with empty blocks and single leaves mixed in."""
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < TOTAL:
        sizes.append(min(rng.choice((0, 1, 1, 2, 3, 5, 8, 13, 32)), TOTAL - sum(sizes)))
    return sizes


SPLITS = {
    "one-by-one": [1] * TOTAL,
    "one-block": [TOTAL],
    **{f"seed{s}": _splits(s) for s in (1, 2, 3)},
}


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_roots_equal_pure_root_after_every_block(db: plyvel.DB, split: list[int]) -> None:
    log = MerkleLog()
    done = 0
    for count in split:
        batch = LEAVES[done : done + count]
        assert log.root_after(batch) == (done + count, merkle.root(LEAVES[: done + count]))
        _append(db, log, batch)
        done += count
        assert log.size == done
        assert log.root() == merkle.root(LEAVES[:done])
        assert MerkleLog.load(db.get).frontier == log.frontier


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_proofs_for_every_past_size_equal_pure_proofs(db: plyvel.DB, split: list[int]) -> None:
    log = MerkleLog()
    done = 0
    for count in split:
        _append(db, log, LEAVES[done : done + count])
        done += count
    reader = LogReader(db.get, TOTAL)
    for size in range(0, TOTAL + 1):
        tree = LEAVES[:size]
        assert reader.root(size) == merkle.root(tree)
        for index in range(size):
            assert reader.inclusion_proof(index, size) == merkle.inclusion_proof(tree, index)
        for old in range(0, size + 1):
            assert reader.consistency_proof(old, size) == merkle.consistency_proof(tree, old)
    assert [reader.leaf(i) for i in range(TOTAL)] == LEAVES


def test_reopen_keeps_the_frontier(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    first = plyvel.DB(path, create_if_missing=True)
    log = MerkleLog()
    _append(first, log, LEAVES[:37])
    first.close()

    second = plyvel.DB(path)
    try:
        reopened = MerkleLog.load(second.get)
        assert (reopened.size, reopened.frontier) == (37, log.frontier)
        _append(second, reopened, LEAVES[37:])
        assert reopened.root() == merkle.root(LEAVES)
        reader = LogReader(second.get, TOTAL)
        assert reader.inclusion_proof(36, TOTAL) == merkle.inclusion_proof(LEAVES, 36)
    finally:
        second.close()


def test_append_writes_one_node_per_completed_subtree(db: plyvel.DB) -> None:
    log = MerkleLog()
    _append(db, log, LEAVES[:7])
    staged = log.stage([LEAVES[7]])
    node_writes = [key for key, _ in staged.writes if key.startswith(b"n:")]
    # Leaf 7 completes the perfect subtrees [6,8), [4,8) and [0,8); leaf hashes are not
    # stored, they are recomputed from the leaves.
    assert node_writes == [node_key(1, 3), node_key(2, 1), node_key(3, 0)]
    assert (leaf_key(7), LEAVES[7]) in staged.writes
    assert (LOG_SIZE_KEY, b"\x08") in staged.writes


def test_stage_changes_nothing_until_adopted(db: plyvel.DB) -> None:
    log = MerkleLog()
    _append(db, log, LEAVES[:5])
    staged = log.stage(LEAVES[5:9])
    assert (log.size, log.root()) == (5, merkle.root(LEAVES[:5]))
    log.adopt(staged)
    assert log.size == 9
    with pytest.raises(StoreError, match="starts at size 5"):
        log.adopt(staged)


def test_an_append_fits_only_the_log_state_it_was_staged_on(db: plyvel.DB) -> None:
    log = MerkleLog()
    _append(db, log, LEAVES[:5])
    staged = log.stage(LEAVES[5:9])
    assert staged.base_frontier == log.frontier and staged.leaves == tuple(LEAVES[5:9])
    # Same size, other leaves: the writes would graft this tree onto a different one.
    twin = MerkleLog(5, [bytes([1]) * 32, bytes([2]) * 32])
    for refuse in (twin.check_base, twin.adopt):
        with pytest.raises(StoreError, match="frontier differs"):
            refuse(staged)
    assert twin.size == 5
    with pytest.raises(StoreError, match="starts at size 5, the log is at 0"):
        MerkleLog().check_base(staged)
    log.check_base(staged)
    log.adopt(staged)
    assert log.root() == merkle.root(LEAVES[:9])


def test_reader_refuses_sizes_beyond_the_log(db: plyvel.DB) -> None:
    log = MerkleLog()
    _append(db, log, LEAVES[:4])
    reader = LogReader(db.get, 4)
    with pytest.raises(StoreError, match=r"outside 0\.\.4"):
        reader.root(5)
    with pytest.raises(StoreError, match="outside a tree of size 3"):
        reader.inclusion_proof(3, 3)
    with pytest.raises(StoreError, match="old size 5"):
        reader.consistency_proof(5, 4)
    with pytest.raises(StoreError, match="leaf index 4"):
        reader.leaf(4)


def test_missing_or_corrupt_node_is_a_store_error(db: plyvel.DB) -> None:
    log = MerkleLog()
    _append(db, log, LEAVES[:4])
    db.delete(leaf_key(3))
    with pytest.raises(StoreError, match="log leaf 3 is missing"):
        LogReader(db.get, 4).inclusion_proof(2, 4)
    db.put(node_key(1, 0), b"\xc4\x20" + bytes(31))
    with pytest.raises(StoreError, match="corrupt"):
        LogReader(db.get, 4).inclusion_proof(3, 4)
    db.delete(node_key(2, 0))
    with pytest.raises(StoreError, match="missing"):
        MerkleLog.load(db.get)
    db.put(LOG_SIZE_KEY, b"\xa1x")
    with pytest.raises(StoreError, match="corrupt log size"):
        MerkleLog.load(db.get)


def test_frontier_must_match_size() -> None:
    with pytest.raises(StoreError):
        MerkleLog(3, [bytes(32)])
    assert MerkleLog().root() == merkle.EMPTY_ROOT


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12), st.data())
def test_any_block_split_gives_pure_roots_and_proofs(split: list[int], data: st.DataObject) -> None:
    # The log is storage-agnostic: a dict stands in for the batch target here, the
    # LevelDB tests above cover the real database.
    stored: dict[bytes, bytes] = {}
    log = MerkleLog()
    leaves: list[bytes] = []
    for count in split:
        batch = [b"%d" % (len(leaves) + i) for i in range(count)]
        staged = log.stage(batch)
        stored.update(staged.writes)
        log.adopt(staged)
        leaves += batch
        assert log.root() == merkle.root(leaves)
    size = data.draw(st.integers(min_value=0, max_value=len(leaves)), label="size")
    reader = LogReader(stored.get, len(leaves))
    assert reader.root(size) == merkle.root(leaves[:size])
    if size:
        index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
        assert reader.inclusion_proof(index, size) == merkle.inclusion_proof(leaves[:size], index)
    old = data.draw(st.integers(min_value=0, max_value=size), label="old")
    assert reader.consistency_proof(old, size) == merkle.consistency_proof(leaves[:size], old)
