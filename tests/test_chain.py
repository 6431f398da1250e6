"""Block staging (ledger.chain) against a real LevelDB store with real signatures."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from ledger.block import Block, Commit, Header, sign_commit
from ledger.chain import (
    ChainError,
    StagedBlock,
    append_signed,
    build_header,
    commit_staged,
    links,
    stage,
)
from ledger.entry import SignedEntry
from ledger.errors import StoreError
from ledger.genesis import Genesis
from ledger.history import EMPTY_HEAD, SubjectState, chain_head, subject_key
from ledger.keys import SigningKey
from ledger.merkle import root as merkle_root
from ledger.statemap import EMPTY_ROOT, StateMap, verify_proof
from ledger.store import Store
from tests.factories import GENESIS_TIME, dump_db, make_genesis, member_key, sign_entry

Accepted = Sequence[tuple[SignedEntry, Sequence[str]]]


def make_commit(genesis: Genesis, header: Header, signers: Sequence[str] | None = None) -> Commit:
    """A precommit quorum (or the given signers) for ``header`` at round 0."""
    return sign_commit(_keys(genesis, signers), header.height, header.hash(), genesis.chain_id)


def _keys(genesis: Genesis, signers: Sequence[str] | None = None) -> list[tuple[str, SigningKey]]:
    """The given signers' seeded keys, or a quorum's."""
    ids = signers if signers is not None else genesis.validators.ids[: genesis.validators.quorum]
    return [(m, member_key(m)) for m in ids]


def stage_next(
    store: Store, genesis: Genesis, accepted: Accepted, extra: Mapping[bytes, bytes | None]
) -> tuple[StagedBlock, Header]:
    with store.snapshot() as view:
        staged = stage(view, view.height + 1, accepted, extra)
        prev, last_commit = links(view)
    header = build_header(
        staged,
        chain=genesis.chain_id,
        time=GENESIS_TIME + 500 * staged.height,
        prev=prev,
        proposer=genesis.validators.proposer(staged.height, 0),
        validators=genesis.validators.hash(),
        last_commit=last_commit,
    )
    return staged, header


def append_block(
    store: Store,
    genesis: Genesis,
    accepted: Accepted,
    extra: Mapping[bytes, bytes | None] | None = None,
) -> Block:
    """Stage, sign and commit one block: what the node and the conformance runner do."""
    time = GENESIS_TIME + 500 * (store.height + 1)
    return append_signed(store, genesis, accepted, extra or {}, time=time, signers=_keys(genesis))


def event(author: str, subjects: Sequence[str], n: int) -> tuple[SignedEntry, list[str]]:
    """A signed entry whose body names the subjects it touches (see subjects_of)."""
    entry = sign_entry(author, "test.event", {"subject": list(subjects), "n": n})
    return entry, list(subjects)


@pytest.fixture
def genesis() -> Genesis:
    return make_genesis()


@pytest.fixture
def store(tmp_path: Path, genesis: Genesis) -> Iterator[Store]:
    with Store.open(tmp_path / "db", genesis) as opened:
        yield opened


def test_empty_chain_stages_the_empty_map(store: Store, genesis: Genesis) -> None:
    staged, header = stage_next(store, genesis, [], {})
    assert staged.state_root == EMPTY_ROOT
    assert (staged.log_size, staged.log_root) == (0, merkle_root([]))
    assert header.prev == bytes(32) and header.last_commit == bytes(32)


def test_histories_chain_entry_ids_across_blocks(store: Store, genesis: Genesis) -> None:
    first = [event("CN", ["cert/A"], 1), event("DE", ["cert/A", "shipment/S"], 2)]
    second = [event("NL", ["shipment/S"], 3), event("US", ["cert/A"], 4)]
    append_block(store, genesis, first)
    append_block(store, genesis, second)
    state_map = StateMap(store.get_raw)
    a = SubjectState.decode(state_map.get(subject_key("cert/A")) or b"")
    s = SubjectState.decode(state_map.get(subject_key("shipment/S")) or b"")
    ids_a = [first[0][0].id, first[1][0].id, second[1][0].id]
    ids_s = [first[1][0].id, second[0][0].id]
    assert (a.head, a.count, a.height) == (*chain_head(ids_a), 2)
    assert (s.head, s.count, s.height) == (*chain_head(ids_s), 2)
    # The store's subject index lists the same ids in the same order.
    assert [r.entry_id for r in store.subject_entries("cert/A")] == ids_a
    assert store.head_header() is not None
    head = store.head_header()
    assert head is not None and head.state_root == state_map.root()
    assert head.log_root == merkle_root([e.wire_bytes for e, _ in first + second])


def test_state_root_in_header_proves_each_subject(store: Store, genesis: Genesis) -> None:
    append_block(store, genesis, [event("CN", [f"cert/{i}"], i) for i in range(30)])
    head = store.head_header()
    assert head is not None
    state_map = StateMap(store.get_raw)
    for i in range(30):
        key = subject_key(f"cert/{i}")
        value = verify_proof(head.state_root, key, state_map.prove(key))
        assert value is not None and SubjectState.decode(value).count == 1
    absent = subject_key("cert/none")
    assert verify_proof(head.state_root, absent, state_map.prove(absent)) is None


def test_duplicate_subject_in_one_entry_links_once(store: Store, genesis: Genesis) -> None:
    entry, _ = event("CN", ["cert/A"], 1)
    append_block(store, genesis, [(entry, ["cert/A", "cert/A"])])
    value = StateMap(store.get_raw).get(subject_key("cert/A"))
    assert value is not None
    assert SubjectState.decode(value).head == chain_head([entry.id])[0] != EMPTY_HEAD
    assert store.subject_count("cert/A") == 1


def test_extra_writes_are_committed_with_the_block(store: Store, genesis: Genesis) -> None:
    append_block(store, genesis, [event("CN", ["cert/A"], 1)], {b"x:contracts/a": b"1"})
    assert store.get_raw(b"x:contracts/a") == b"1"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({b"x:state/root": b"x"}, "state map"),
        ({b"h:1": b"x"}, "b'x:'"),
        ({b"x:c/a": "text"}, "bytes or None"),
    ],
)
def test_bad_extra_writes_are_refused(
    store: Store, genesis: Genesis, extra: dict[bytes, object], words: str
) -> None:
    with store.snapshot() as view, pytest.raises(ChainError, match=words):
        stage(view, 1, [], extra)  # type: ignore[arg-type]


def test_wrong_height_is_refused(store: Store) -> None:
    with store.snapshot() as view, pytest.raises(ChainError, match="height 2"):
        stage(view, 2, [], {})


def test_subjects_as_a_bare_string_are_refused(store: Store) -> None:
    entry, _ = event("CN", ["cert/A"], 1)
    with store.snapshot() as view, pytest.raises(ChainError, match="not a string"):
        stage(view, 1, [(entry, "cert/A")], {})


def test_commit_refuses_a_header_that_is_not_the_staged_one(store: Store, genesis: Genesis) -> None:
    staged, header = stage_next(store, genesis, [event("CN", ["cert/A"], 1)], {})
    forged = Header(**{**header.to_obj(), "state_root": EMPTY_ROOT})
    with pytest.raises(ChainError, match="state_root"):
        staged.block(forged)
    block = Block(forged, staged.entries)
    with pytest.raises(ChainError, match="state_root"):
        commit_staged(store, staged, block, make_commit(genesis, forged))
    assert store.height == 0 and StateMap(store.get_raw).root() == EMPTY_ROOT


def test_commit_refuses_other_entries(store: Store, genesis: Genesis) -> None:
    staged, header = stage_next(store, genesis, [event("CN", ["cert/A"], 1)], {})
    other = Block(header, (event("CN", ["cert/A"], 2)[0],))
    with pytest.raises(ChainError, match="entries differ"):
        commit_staged(store, staged, other, make_commit(genesis, header))
    assert store.height == 0


def test_staging_writes_nothing(store: Store, genesis: Genesis) -> None:
    stage_next(store, genesis, [event("CN", ["cert/A"], 1)], {b"x:c/a": b"1"})
    assert store.height == 0
    assert store.get_raw(b"x:c/a") is None
    assert StateMap(store.get_raw).get(subject_key("cert/A")) is None


def test_state_survives_reopen(tmp_path: Path, genesis: Genesis) -> None:
    with Store.open(tmp_path / "db", genesis) as store:
        append_block(store, genesis, [event("CN", ["cert/A"], 1)])
        root = StateMap(store.get_raw).root()
    with Store.open(tmp_path / "db", genesis) as store:
        assert StateMap(store.get_raw).root() == root
        append_block(store, genesis, [event("CN", ["cert/A"], 2)])
        value = StateMap(store.get_raw).get(subject_key("cert/A"))
        assert value is not None and SubjectState.decode(value).count == 2


# Blocks whose log sizes (0, 1, 8, 24, 57, 57, 64) cross several perfect-subtree levels,
# with subjects repeated across entries and blocks, named twice in one entry, multi-byte
# UTF-8 and at the 1024-byte limit.
_BLOCK_SIZES = (0, 1, 7, 16, 33, 0, 7)
_SUBJECTS = ("cert/A", "shipment/S", "cert/Ü-日本", "shipment/" + "x" * 1015)


def _subjects_for(n: int) -> list[str]:
    first, second = _SUBJECTS[n % 4], _SUBJECTS[n * 7 % 3]
    return [first, second, first] if n % 5 == 0 else [first, second]


def test_staged_commit_writes_exactly_what_the_direct_commit_writes(
    tmp_path: Path, genesis: Genesis
) -> None:
    """commit_staged hands the store staging's Merkle append and subject digests; every
    key and value must equal what Store.commit_block computes for itself."""
    n = 0
    with (
        Store.open(tmp_path / "staged", genesis) as staged_store,
        Store.open(tmp_path / "direct", genesis) as direct_store,
    ):
        for size in _BLOCK_SIZES:
            accepted = [event("CN", _subjects_for(n + i), n + i) for i in range(size)]
            n += size
            extra = {b"x:test/blocks": b"%d" % n}
            staged, header = stage_next(staged_store, genesis, accepted, extra)
            block, commit = staged.block(header), make_commit(genesis, header)
            commit_staged(staged_store, staged, block, commit)
            direct_store.commit_block(block, commit, [s for _, s in accepted], staged.writes)
        assert staged_store.log_root() == direct_store.log_root()
    staged_bytes, direct_bytes = dump_db(tmp_path / "staged"), dump_db(tmp_path / "direct")
    assert staged_bytes == direct_bytes
    assert {k[:2] for k in staged_bytes} >= {b"e:", b"s:", b"k:", b"l:", b"n:", b"h:", b"c:"}
    for subject in _SUBJECTS:
        assert b"k:" + subject_key(subject) in staged_bytes


def test_commit_hands_the_staged_append_to_the_store_which_checks_it(
    store: Store, genesis: Genesis
) -> None:
    staged, header = stage_next(store, genesis, [event("CN", ["cert/A"], 1)], {})
    block = staged.block(header)
    # Same leaves, size and root, but claimed to extend another log: the store must see
    # the append commit_staged passes and refuse it rather than write its nodes.
    elsewhere = replace(staged.log, base_frontier=(bytes(32),))
    with pytest.raises(StoreError, match="frontier differs"):
        commit_staged(store, replace(staged, log=elsewhere), block, make_commit(genesis, header))
    assert store.height == 0 and store.log_size() == 0
    commit_staged(store, staged, block, make_commit(genesis, header))
    assert store.log_root() == merkle_root([block.entries[0].wire_bytes]) == header.log_root
