"""The authenticated state map (ledger.statemap): roots, batches, proofs, persistence."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import ProofError
from ledger.merkle import EMPTY_ROOT as LOG_EMPTY_ROOT
from ledger.merkle import leaf_hash as log_leaf_hash
from ledger.merkle import node_hash as log_node_hash
from ledger.statemap import (
    EMPTY_ROOT,
    NODE_PREFIX,
    ROOT_SLOT,
    VALUE_PREFIX,
    MapProof,
    NodeCache,
    StateMap,
    StateMapError,
    inner_hash,
    leaf_hash,
    verify_proof,
)
from ledger.store import Store
from tests.factories import make_genesis


def bit(key: bytes, index: int) -> int:
    return (key[index // 8] >> (7 - index % 8)) & 1


def reference_root(items: Mapping[bytes, bytes]) -> bytes:
    """The crit-bit tree hash computed naively, straight from docs/protocol.md."""
    if not items:
        return EMPTY_ROOT

    def subtree(keys: list[bytes]) -> bytes:
        if len(keys) == 1:
            return leaf_hash(keys[0], items[keys[0]])
        split = next(i for i in range(256) if len({bit(k, i) for k in keys}) == 2)
        left = [k for k in keys if not bit(k, split)]
        right = [k for k in keys if bit(k, split)]
        return inner_hash(split, subtree(left), subtree(right))

    return subtree(sorted(items))


class DictKV:
    """The map's raw keys in a dict, for pure-logic tests (the store tests use LevelDB)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def map(self) -> StateMap:
        return StateMap(self.data.get, NodeCache())

    def nodes(self) -> int:
        return sum(1 for key in self.data if key.startswith(NODE_PREFIX))

    def values(self) -> int:
        return sum(1 for key in self.data if key.startswith(VALUE_PREFIX))


def load(
    batches: list[dict[bytes, bytes | None]], cache: NodeCache | None = None
) -> tuple[DictKV, bytes]:
    """Apply ``batches`` in turn; a cold cache each time unless one is given."""
    kv = DictKV()
    root = EMPTY_ROOT
    for batch in batches:
        update = (kv.map() if cache is None else StateMap(kv.data.get, cache)).update(batch)
        kv.apply(update.writes)
        root = update.root
    return kv, root


def final(batches: list[dict[bytes, bytes | None]]) -> dict[bytes, bytes]:
    result: dict[bytes, bytes] = {}
    for batch in batches:
        for key, value in batch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = value
    return result


# Keys drawn from a small pool so batches collide, overwrite and delete; some keys share
# long prefixes so deep splits are exercised, not only the near-root ones random keys give.
_POOL = [hashlib.sha256(b"%d" % i).digest() for i in range(40)] + [
    bytes(31) + bytes([i]) for i in range(8)
]
keys = st.sampled_from(_POOL)
values = st.binary(max_size=8)
batches = st.lists(st.dictionaries(keys, st.none() | values, max_size=12), max_size=8)


def test_empty_map_has_the_fixed_root() -> None:
    assert hashlib.sha256(b"\x04\x01").digest() == EMPTY_ROOT
    assert DictKV().map().root() == EMPTY_ROOT
    assert load([{}])[1] == EMPTY_ROOT


def test_hashes_follow_the_documented_rules() -> None:
    key, value = bytes(range(32)), b"v"
    assert (
        leaf_hash(key, value)
        == hashlib.sha256(b"\x02\x01" + key + hashlib.sha256(value).digest()).digest()
    )
    left, right = bytes(32), b"\xff" * 32
    assert inner_hash(7, left, right) == hashlib.sha256(b"\x03\x01\x07" + left + right).digest()


def test_documented_test_vector() -> None:
    k1, k2, k3 = bytes(32), b"\x80" + bytes(31), b"\x81" + bytes(31)
    _, root = load([{k1: b"a", k2: b"b", k3: b"c"}])
    assert root.hex() == "63856b993736407e0800be3416da0ee78951e86492d9beb99c8455f59ccf02d4"
    assert root == inner_hash(
        0, leaf_hash(k1, b"a"), inner_hash(7, leaf_hash(k2, b"b"), leaf_hash(k3, b"c"))
    )


def test_hashes_are_domain_separated_from_the_log() -> None:
    # Same 64 bytes of input, every kind of hash gives a different digest.
    a, b = b"a" * 32, b"b" * 32
    digests = {
        log_leaf_hash(a + b),
        log_node_hash(a, b),
        LOG_EMPTY_ROOT,
        EMPTY_ROOT,
        inner_hash(0, a, b),
        leaf_hash(a, b),
    }
    assert len(digests) == 6


@given(batches)
def test_root_matches_the_reference_and_the_store_holds_no_garbage(
    batch_list: list[dict[bytes, bytes | None]],
) -> None:
    kv, root = load(batch_list)
    items = final(batch_list)
    assert root == reference_root(items)
    assert kv.map().root() == root
    # A crit-bit trie of n keys has n - 1 inner nodes (leaves live in the value records).
    assert kv.nodes() == max(0, len(items) - 1)
    assert kv.values() == len(items)
    for key in _POOL:
        assert kv.map().get(key) == items.get(key)


@given(batches)
def test_a_warm_cache_gives_the_same_trie_and_records(
    batch_list: list[dict[bytes, bytes | None]],
) -> None:
    cold, cold_root = load(batch_list)
    warm, warm_root = load(batch_list, NodeCache())
    assert warm_root == cold_root
    assert warm.data == cold.data


@given(batches, st.randoms(use_true_random=False))
def test_root_is_independent_of_order_and_batch_split(
    batch_list: list[dict[bytes, bytes | None]], rng: random.Random
) -> None:
    items: dict[bytes, bytes | None] = dict(final(batch_list))
    shuffled = list(items.items())
    rng.shuffle(shuffled)
    cuts = sorted(rng.sample(range(len(shuffled) + 1), min(3, len(shuffled) + 1)))
    resplit: list[dict[bytes, bytes | None]] = [
        dict(shuffled[a:b]) for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)
    ]
    one_by_one: list[dict[bytes, bytes | None]] = [{k: v} for k, v in reversed(shuffled)]
    assert load(batch_list)[1] == load(resplit)[1] == load(one_by_one)[1] == load([items])[1]
    # The stored records too depend on the final set only, not on the path to it.
    fresh = load([{k: v for k, v in items.items() if v is not None}])[0].data
    assert load(batch_list)[0].data == load(one_by_one)[0].data == fresh


@given(batches)
def test_every_key_has_a_proof_that_verifies(batch_list: list[dict[bytes, bytes | None]]) -> None:
    kv, root = load(batch_list)
    items = final(batch_list)
    state_map = kv.map()
    for key in _POOL:
        proof = state_map.prove(key)
        assert verify_proof(root, key, proof) == items.get(key)
        assert MapProof.from_obj(proof.to_obj()) == proof


@given(batches)
def test_absence_cannot_be_forged_for_a_present_key(
    batch_list: list[dict[bytes, bytes | None]],
) -> None:
    kv, root = load(batch_list)
    items = final(batch_list)
    state_map = kv.map()
    proofs = [state_map.prove(k) for k in _POOL]
    for key in items:
        for proof in proofs:
            # Every leaf and path in the map, offered as "the leaf on the key's path".
            leaf = (
                (proof.key, hashlib.sha256(proof.value).digest())
                if proof.value is not None
                else proof.other
            )
            for steps in {proof.steps, proof.steps[:-1], proof.steps[1:], ()}:
                forged = MapProof(key, None, leaf, steps)
                with pytest.raises(ProofError):
                    verify_proof(root, key, forged)


def test_proofs_reject_wrong_values_roots_and_paths() -> None:
    items = {hashlib.sha256(b"%d" % i).digest(): b"v%d" % i for i in range(50)}
    kv, root = load([dict[bytes, bytes | None](items)])
    key = next(iter(items))
    proof = kv.map().prove(key)
    assert verify_proof(root, key, proof) == items[key]
    bad = [
        MapProof(key, b"other", None, proof.steps),
        MapProof(key, None, None, proof.steps),
        MapProof(key, proof.value, None, proof.steps[:-1]),
        MapProof(key, proof.value, None, (*proof.steps, (255, bytes(32)))),
        MapProof(key, proof.value, None, tuple(reversed(proof.steps))),
        MapProof(
            key, proof.value, None, ((proof.steps[0][0] + 1, proof.steps[0][1]), *proof.steps[1:])
        ),
        MapProof(key, proof.value, (key, bytes(32)), proof.steps),
        MapProof(key, None, (key, hashlib.sha256(items[key]).digest()), proof.steps),
    ]
    for forged in bad:
        with pytest.raises(ProofError):
            verify_proof(root, key, forged)
    with pytest.raises(ProofError):
        verify_proof(EMPTY_ROOT, key, proof)
    with pytest.raises(ProofError, match="another key"):
        verify_proof(root, bytes(32), proof)


def test_empty_map_proves_absence_only() -> None:
    state_map = DictKV().map()
    proof = state_map.prove(bytes(32))
    assert verify_proof(EMPTY_ROOT, bytes(32), proof) is None
    with pytest.raises(ProofError):
        verify_proof(EMPTY_ROOT, bytes(32), MapProof(bytes(32), None, None, ((0, bytes(32)),)))


@pytest.mark.parametrize(
    "obj",
    [
        None,
        {},
        {"key": b"k", "other": None, "steps": [], "value": None},
        {"key": bytes(32), "other": [bytes(32)], "steps": [], "value": None},
        {"key": bytes(32), "other": None, "steps": [[256, bytes(32)]], "value": None},
        {"key": bytes(32), "other": None, "steps": [[-1, bytes(32)]], "value": None},
        {"key": bytes(32), "other": None, "steps": [[1, bytes(31)]], "value": None},
        {"key": bytes(32), "other": None, "steps": [[1]], "value": None},
        {"key": bytes(32), "other": None, "steps": [[0, bytes(32)]] * 257, "value": None},
        {"key": bytes(32), "other": None, "steps": [], "value": "text"},
        {"key": bytes(32), "other": None, "steps": [], "value": None, "extra": 1},
    ],
)
def test_malformed_proof_objects_are_refused(obj: object) -> None:
    with pytest.raises(ProofError):
        MapProof.from_obj(obj)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({b"short": b"v"}, "32 bytes"),
        ({bytes(32): "text"}, "bytes"),
        ({bytes(32): b"x" * (64 * 1024 + 1)}, "at most"),
    ],
)
def test_bad_updates_are_refused(changes: dict[bytes, object], words: str) -> None:
    with pytest.raises(StateMapError, match=words):
        DictKV().map().update(changes)  # type: ignore[arg-type]


def test_missing_or_corrupt_records_are_reported() -> None:
    kv, _ = load([{hashlib.sha256(b"%d" % i).digest(): b"v" for i in range(4)}])
    victim = ROOT_SLOT
    original = kv.data[victim]
    kv.data[victim] = b"\x07junk"
    with pytest.raises(StateMapError, match="malformed"):
        kv.map().prove(bytes(32))
    kv.data[victim] = original[:34] + bytes(32) + original[66:]  # well formed, wrong node
    with pytest.raises(StateMapError, match="does not match"):
        kv.map().prove(bytes(32))
    del kv.data[victim]
    with pytest.raises(StateMapError, match="missing"):
        kv.map().update({bytes(32): b"v"})
    kv, _ = load([{hashlib.sha256(b"%d" % i).digest(): b"v" for i in range(4)}])
    key = hashlib.sha256(b"1").digest()
    kv.data[VALUE_PREFIX + key] = b"tampered"
    with pytest.raises(StateMapError, match="stale"):
        kv.map().prove(key)


def test_setting_a_value_to_itself_keeps_every_node() -> None:
    items: dict[bytes, bytes | None] = {hashlib.sha256(b"%d" % i).digest(): b"v" for i in range(20)}
    kv, root = load([items])
    update = kv.map().update(dict(list(items.items())[:5]))
    kv.apply(update.writes)
    assert update.root == root
    assert kv.nodes() == 19
    for key in items:
        assert verify_proof(root, key, kv.map().prove(key)) == b"v"


def test_persistent_map_in_leveldb_survives_reopen(tmp_path: Path) -> None:
    genesis = make_genesis()
    rng = random.Random(5)
    truth: dict[bytes, bytes] = {}
    with Store.open(tmp_path / "db", genesis) as store:
        for _ in range(20):
            changes: dict[bytes, bytes | None] = {}
            for _ in range(50):
                key = hashlib.sha256(b"%d" % rng.randrange(400)).digest()
                changes[key] = None if rng.random() < 0.2 else b"%d" % rng.randrange(10**6)
            update = StateMap(store.get_raw).update(changes)
            store.write_extra(update.writes)
            truth = final([truth, changes])  # type: ignore[list-item]
        root = StateMap(store.get_raw).root()
        assert root == reference_root(truth)
    with Store.open(tmp_path / "db", genesis) as store:
        state_map = StateMap(store.get_raw, NodeCache())  # a cold cache: everything from disk
        assert state_map.root() == root
        for key in list(truth)[:50]:
            assert verify_proof(root, key, state_map.prove(key)) == truth[key]
        nodes = sum(1 for _ in store.iter_raw(NODE_PREFIX))
        assert nodes == len(truth) - 1


def test_stale_cache_entries_cannot_mislead_a_view() -> None:
    # Two maps share one cache; the cache is keyed by content, so each sees its own tree.
    cache = NodeCache(max_nodes=10)
    a, b = DictKV(), DictKV()
    for i in range(30):
        a.apply(
            StateMap(a.data.get, cache).update({hashlib.sha256(b"a%d" % i).digest(): b"1"}).writes
        )
        b.apply(
            StateMap(b.data.get, cache).update({hashlib.sha256(b"b%d" % i).digest(): b"2"}).writes
        )
    ka = hashlib.sha256(b"a3").digest()
    assert StateMap(a.data.get, cache).get(ka) == b"1"
    assert StateMap(b.data.get, cache).get(ka) is None
    root_b = StateMap(b.data.get, cache).root()
    assert verify_proof(root_b, ka, StateMap(b.data.get, cache).prove(ka)) is None
    assert len(cache) <= 10


def test_node_records_open_with_their_hash_preimage() -> None:
    # docs/protocol.md §2.4: a record starts with the 67 bytes its hash is taken over.
    keys = [bytes([0xA0 | n]) + hashlib.sha256(b"%d" % n).digest()[1:] for n in range(16)]
    kv, root = load([{key: b"v" for key in keys}])
    assert ROOT_SLOT == NODE_PREFIX + b"\x00"
    record = kv.data[ROOT_SLOT]
    assert hashlib.sha256(record[:67]).digest() == root
    assert record[:3] == b"\x03\x01\x04"  # the keys share their first four bits
    assert record[-1:] == b"\xa0"  # ... which end the record, in one byte


def test_a_record_with_a_bad_prefix_is_refused() -> None:
    keys = [bytes([0xA0 | n]) + hashlib.sha256(b"%d" % n).digest()[1:] for n in range(16)]
    kv, _ = load([{key: b"v" for key in keys}])
    kv.data[ROOT_SLOT] = kv.data[ROOT_SLOT][:-1] + b"\xa1"  # a bit past the split
    with pytest.raises(StateMapError, match="malformed prefix"):
        kv.map().prove(keys[0])
    kv.data[ROOT_SLOT] = kv.data[ROOT_SLOT][:-1]  # the prefix byte missing
    with pytest.raises(StateMapError, match="malformed"):
        kv.map().prove(keys[0])


@pytest.mark.parametrize("seed", range(4))
def test_large_mixed_batches_write_what_a_fresh_build_writes(seed: int) -> None:
    # Hundreds of keys per batch, so a batch shares the top of the trie, splits above
    # stored nodes and collapses them; a warm cache and a cold one must agree.
    rng = random.Random(seed)
    pool = [hashlib.sha256(b"%d/%d" % (seed, n)).digest() for n in range(600)]
    batch_list: list[dict[bytes, bytes | None]] = [
        {
            rng.choice(pool): None if rng.random() < 0.3 else b"%d" % rng.randrange(4)
            for _ in range(rng.choice([1, 50, 400]))
        }
        for _ in range(6)
    ]
    warm, warm_root = load(batch_list, NodeCache())
    cold, cold_root = load(batch_list)
    items = final(batch_list)
    assert warm_root == cold_root == reference_root(items)
    assert warm.data == cold.data == load([dict[bytes, bytes | None](items)])[0].data
    state_map = warm.map()
    for key in pool[:100]:
        assert verify_proof(warm_root, key, state_map.prove(key)) == items.get(key)
