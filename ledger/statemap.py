"""The authenticated state map: a compressed sparse Merkle tree over 256-bit keys.

The tree is the crit-bit (PATRICIA, Morrison 1968) trie of the key set: a leaf per key,
and an inner node wherever the keys below it first differ, labelled with that bit index.
A set of n keys has exactly n - 1 inner nodes whatever order they arrived in, so the root
depends only on the key/value set, and an update or proof touches O(log2 n) nodes for
keys that are hashes (as ours are: SHA-256 of a subject).

Hashes (docs/protocol.md gives the same rules for other implementations; the first byte
keeps them apart from each other and from RFC 9162's 0x00 leaf / 0x01 node hashes, the
second is the version of these rules):

    empty      = SHA-256(0x04 || 0x01)
    leaf(k, v) = SHA-256(0x02 || 0x01 || k || SHA-256(v))
    inner(b, L, R) = SHA-256(0x03 || 0x01 || b || L || R)      b: one byte, 0..255

Persistence: the map reads through a ``get(raw key) -> bytes | None`` function (a store
or a snapshot view) and an update *returns* its raw writes; it never writes itself.
Inner nodes are stored at their position in the trie, so rewriting a path overwrites it
in place with no deletes; a parent names its leaf children's keys, and a leaf's value is
its only record, so walking the trie never reads a leaf. Inner-node records are cached
by hash: a parent names its children by hash, so a cached record can never be stale.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ledger.errors import LedgerError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "KEY_BYTES",
    "NODE_PREFIX",
    "PREFIX",
    "ROOT_KEY",
    "ROOT_SLOT",
    "VALUE_PREFIX",
    "MapProof",
    "NodeCache",
    "StateMap",
    "StateMapError",
    "StateUpdate",
    "inner_hash",
    "leaf_hash",
    "verify_proof",
]

KEY_BYTES = 32
PREFIX = b"x:state/"
ROOT_KEY = PREFIX + b"root"
NODE_PREFIX = PREFIX + b"n/"
VALUE_PREFIX = PREFIX + b"v/"
MAX_VALUE_BYTES = 64 * 1024

_VERSION = b"\x01"
_LEAF = b"\x02" + _VERSION
_INNER = b"\x03" + _VERSION
EMPTY_ROOT = hashlib.sha256(b"\x04" + _VERSION).digest()

_REC_INNER = 1
_sha256 = hashlib.sha256

Getter = Callable[[bytes], "bytes | None"]


class StateMapError(LedgerError):
    """The map cannot do what was asked: a bad key or value, or a missing/corrupt node."""


def leaf_hash(key: bytes, value: bytes) -> bytes:
    return _sha256(_LEAF + key + _sha256(value).digest()).digest()


def _leaf_hash_of_digest(key: bytes, value_digest: bytes) -> bytes:
    return _sha256(_LEAF + key + value_digest).digest()


_INNER_PREFIXES = tuple(_INNER + bytes((bit,)) for bit in range(256))


def inner_hash(bit: int, left: bytes, right: bytes) -> bytes:
    return _sha256(_INNER_PREFIXES[bit] + left + right).digest()


def _bit(key: bytes, index: int) -> int:
    return (key[index >> 3] >> (7 - (index & 7))) & 1


def _int(key: bytes) -> int:
    return int.from_bytes(key, "big")


def _shared_bits(a: int, b: int) -> int:
    """How many leading bits two 256-bit keys (as integers) share."""
    return 256 - (a ^ b).bit_length()


def _prefix(key: int, bits: int) -> int:
    """``key`` with every bit from ``bits`` on cleared (the shared prefix of a subtree)."""
    shift = 256 - bits
    return (key >> shift) << shift


def _split_key(key: int, bit: int) -> tuple[bytes]:
    """The smallest key sharing ``key``'s first ``bit`` bits whose bit ``bit`` is 1, as a
    1-tuple: it sorts before every (key, value) item with that key, for bisect."""
    return ((_prefix(key, bit) | (1 << (255 - bit))).to_bytes(KEY_BYTES, "big"),)


# A subtree as its parent sees it: (hash, leaf key) for a leaf, (hash, None) for an inner
# node. Parents keep their leaf children's keys, so a walk never reads a leaf: a leaf's
# only record is its value under ``x:state/v/<key>``.
_Ref = tuple[bytes, "bytes | None"]
_Pos = tuple[int, int]
_Item = tuple[bytes, "bytes | None"]
_INNER_BYTES = 2 + 3 * KEY_BYTES + 1


class _Inner:
    """An inner node as read: where it is stored and its record, for moving it."""

    __slots__ = ("bit", "hash", "left", "pos", "prefix", "record", "right")

    def __init__(self, node_hash: bytes, pos: _Pos, record: bytes) -> None:
        flags = record[_INNER_BYTES - 1] if len(record) >= _INNER_BYTES else 255
        size = _INNER_BYTES + KEY_BYTES * ((flags & 1) + (flags >> 1))
        if record[:1] != b"\x01" or flags > 3 or len(record) != size:
            raise StateMapError(f"state node {node_hash.hex()[:16]}… has a malformed record")
        at = _INNER_BYTES
        left_key = right_key = None
        if flags & 1:
            left_key, at = record[at : at + KEY_BYTES], at + KEY_BYTES
        if flags & 2:
            right_key = record[at : at + KEY_BYTES]
        self.hash = node_hash
        self.pos = pos
        self.record = record
        self.bit = record[1]
        self.prefix = _int(record[2:34])  # the keys' shared first ``bit`` bits, rest zero
        self.left: _Ref = (record[34:66], left_key)
        self.right: _Ref = (record[66:98], right_key)

    def child_pos(self, side: int) -> _Pos:
        return self.bit + 1, (self.prefix >> (255 - self.bit)) | side

    def sub(self) -> _Sub:
        return _Sub(self.hash, None, self.record, self.pos)

    def child(self, side: int) -> _Sub:
        node_hash, key = self.right if side else self.left
        return _Sub(node_hash, key, None, None if key is not None else self.child_pos(side))


class _Sub:
    """A subtree during a batch: its hash; its key if it is a leaf; for an inner node
    its record if known, and the position it is stored at now (None for a new node)."""

    __slots__ = ("hash", "key", "origin", "record")

    def __init__(
        self, node_hash: bytes, key: bytes | None, record: bytes | None, origin: _Pos | None
    ) -> None:
        self.hash = node_hash
        self.key = key
        self.record = record
        self.origin = origin


def _slot(pos: _Pos) -> bytes:
    """The raw key of the inner node at ``pos`` = (length, the keys' first ``length``
    bits as an integer); length is its parent's split + 1, so a rewritten node
    overwrites its old record in place."""
    length, bits = pos
    return NODE_PREFIX + length.to_bytes(2, "big") + bits.to_bytes((length + 7) // 8, "big")


_RECORD_PREFIXES = tuple(bytes((_REC_INNER, bit)) for bit in range(256))


def _inner_record(bit: int, prefix: int, left: _Ref, right: _Ref) -> bytes:
    """bit, prefix, child hashes, a flag byte (1: left is a leaf, 2: right is), then the
    leaf children's keys."""
    left_key, right_key = left[1], right[1]
    flags = (1 if left_key is not None else 0) | (2 if right_key is not None else 0)
    return b"".join(
        (
            _RECORD_PREFIXES[bit],
            prefix.to_bytes(KEY_BYTES, "big"),
            left[0],
            right[0],
            _FLAG_BYTES[flags],
            left_key or b"",
            right_key or b"",
        )
    )


_FLAG_BYTES = tuple(bytes((flags,)) for flags in range(4))


class NodeCache:
    """Inner-node records by hash, so a warm walk reads nothing from LevelDB.

    Keyed by content, hence never stale for any view of any store; nodes a batch
    replaces are discarded, and the cache is cleared if it outgrows ``max_nodes``
    (about 250 bytes each; a map of n keys has n - 1 inner nodes)."""

    def __init__(self, max_nodes: int = 1_500_000) -> None:
        self.max_nodes = max_nodes
        self._records: dict[bytes, bytes] = {}

    def get(self, node_hash: bytes) -> bytes | None:
        return self._records.get(node_hash)

    def put(self, node_hash: bytes, record: bytes) -> None:
        if len(self._records) >= self.max_nodes:
            self._records.clear()
        self._records[node_hash] = record

    def trim(self) -> None:
        """Enforce the bound after a batch, whose hot loop writes past ``put``."""
        if len(self._records) > self.max_nodes:
            self._records.clear()

    def discard(self, node_hash: bytes) -> None:
        self._records.pop(node_hash, None)

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)


DEFAULT_CACHE = NodeCache()
ROOT_POS: _Pos = (0, 0)
ROOT_SLOT = _slot(ROOT_POS)


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """The outcome of a batch: the new root and the raw writes that make it durable."""

    root: bytes
    writes: dict[bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class MapProof:
    """Presence (``value`` set) or absence of ``key`` under a state root.

    ``steps`` go root first: (bit, sibling hash). For absence, ``other`` is the leaf
    (key, SHA-256(value)) that occupies the key's path, or None when the map is empty.
    """

    key: bytes
    value: bytes | None
    other: tuple[bytes, bytes] | None
    steps: tuple[tuple[int, bytes], ...]

    def to_obj(self) -> dict[str, object]:
        return {
            "key": self.key,
            "other": None if self.other is None else list(self.other),
            "steps": [[bit, sibling] for bit, sibling in self.steps],
            "value": self.value,
        }

    @classmethod
    def from_obj(cls, obj: object) -> MapProof:
        if not isinstance(obj, dict) or list(obj) != ["key", "other", "steps", "value"]:
            raise ProofError("map proof must have exactly key, other, steps, value")
        key, other, steps, value = obj["key"], obj["other"], obj["steps"], obj["value"]
        if not _is_hash(key):
            raise ProofError("map proof key must be 32 bytes")
        if value is not None and (not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES):
            raise ProofError(f"map proof value must be nil or at most {MAX_VALUE_BYTES} bytes")
        if other is not None and (
            not isinstance(other, list) or len(other) != 2 or not all(map(_is_hash, other))
        ):
            raise ProofError("map proof other must be nil or [32-byte key, 32-byte digest]")
        if not isinstance(steps, list) or len(steps) > 256:
            raise ProofError("map proof steps must be a list of at most 256")
        parsed: list[tuple[int, bytes]] = []
        for step in steps:
            if (
                not isinstance(step, list)
                or len(step) != 2
                or type(step[0]) is not int
                or not 0 <= step[0] <= 255
                or not _is_hash(step[1])
            ):
                raise ProofError("map proof step must be [bit 0..255, 32-byte hash]")
            parsed.append((step[0], step[1]))
        pair = None if other is None else (other[0], other[1])
        return cls(key, value, pair, tuple(parsed))


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == KEY_BYTES


def verify_proof(root: bytes, key: bytes, proof: MapProof) -> bytes | None:
    """Check ``proof`` for ``key`` against ``root``; return the value, or None for a
    proven absence. Raises ProofError on any mismatch. Pure: no I/O, no state."""
    if proof.key != key:
        raise ProofError("map proof is for another key")
    leaf = _proof_leaf(key, proof)
    bits = [bit for bit, _ in proof.steps]
    if any(b >= a for a, b in zip(bits[1:], bits, strict=False)):
        raise ProofError("map proof bits must increase from the root down")
    if leaf is None:
        calculated = EMPTY_ROOT
    else:
        leaf_key, calculated = leaf
        for bit, sibling in reversed(proof.steps):
            # In a crit-bit trie the leaf on the key's path agrees with it at every split.
            side = _bit(key, bit)
            if _bit(leaf_key, bit) != side:
                raise ProofError(f"map proof leaf is not on the key's side of bit {bit}")
            calculated = (
                inner_hash(bit, sibling, calculated)
                if side
                else inner_hash(bit, calculated, sibling)
            )
    if calculated != root:
        raise ProofError(f"map proof gives root {calculated.hex()}, expected {root.hex()}")
    return proof.value


def _proof_leaf(key: bytes, proof: MapProof) -> tuple[bytes, bytes] | None:
    """(leaf key, leaf hash) that the proof ends in, None for the empty map."""
    if proof.value is not None:
        if proof.other is not None:
            raise ProofError("a presence proof carries no other leaf")
        return key, leaf_hash(key, proof.value)
    if proof.other is None:
        if proof.steps:
            raise ProofError("an empty-map proof has no steps")
        return None
    other_key, digest = proof.other
    if other_key == key:
        raise ProofError("an absence proof cannot end in the key's own leaf")
    return other_key, _leaf_hash_of_digest(other_key, digest)


class StateMap:
    """The map as stored behind ``get``; reads and staged updates, never writes."""

    def __init__(self, get: Getter, cache: NodeCache | None = None) -> None:
        self._get = get
        self._cache = DEFAULT_CACHE if cache is None else cache

    def root(self) -> bytes:
        ref = self._root_ref()
        return EMPTY_ROOT if ref is None else ref[0]

    def _root_ref(self) -> _Ref | None:
        stored = self._get(ROOT_KEY)
        if stored is None:
            return None
        if len(stored) not in (KEY_BYTES, 2 * KEY_BYTES):
            raise StateMapError("the stored state root is malformed")
        return stored[:KEY_BYTES], stored[KEY_BYTES:] or None

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        return self._get(VALUE_PREFIX + key)

    def prove(self, key: bytes) -> MapProof:
        _check_key(key)
        ref = self._root_ref()
        if ref is None:
            return MapProof(key, None, None, ())
        steps: list[tuple[int, bytes]] = []
        pos = ROOT_POS
        while ref[1] is None:
            node = self._load(ref[0], pos)
            side = _bit(key, node.bit)
            steps.append((node.bit, (node.left if side else node.right)[0]))
            ref, pos = (node.right if side else node.left), node.child_pos(side)
        leaf_key = ref[1]
        value = self._leaf_value(ref[0], leaf_key)
        if leaf_key == key:
            return MapProof(key, value, None, tuple(steps))
        return MapProof(key, None, (leaf_key, _sha256(value).digest()), tuple(steps))

    def _leaf_value(self, node_hash: bytes, key: bytes) -> bytes:
        value = self._get(VALUE_PREFIX + key)
        if value is None or leaf_hash(key, value) != node_hash:
            raise StateMapError(f"the value of state key {key.hex()[:16]}… is missing or stale")
        return value

    def update(self, changes: Mapping[bytes, bytes | None]) -> StateUpdate:
        """Apply a batch (value None deletes); return the new root and raw writes.

        The batch is sorted and walked down the trie once, so nodes shared by several
        changed keys are read and rehashed once."""
        for key, value in changes.items():
            _check_key(key)
            if value is not None and (not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES):
                raise StateMapError(f"state value must be bytes of at most {MAX_VALUE_BYTES}")
        items: list[_Item] = sorted(changes.items(), key=lambda item: item[0])
        old = self._root_ref()
        if not items:
            return StateUpdate(EMPTY_ROOT if old is None else old[0], {})
        batch = _Batch(self)
        start = None
        if old is not None:
            start = _Sub(old[0], old[1], None, None if old[1] is not None else ROOT_POS)
        new = batch.update(start, items, 0, len(items))
        if new is not None:
            batch.place(new, ROOT_POS)
        writes = batch.writes()
        self._cache.trim()
        for key, value in changes.items():
            writes[VALUE_PREFIX + key] = value
        new_ref = None if new is None else (new.hash, new.key)
        if new_ref != old:
            writes[ROOT_KEY] = None if new is None else new.hash + (new.key or b"")
        return StateUpdate(EMPTY_ROOT if new is None else new.hash, writes)

    def _load(self, node_hash: bytes, pos: _Pos) -> _Inner:
        record = self._cache.get(node_hash)
        if record is None:
            record = self._get(_slot(pos))
            if record is None:
                raise StateMapError(f"state node {node_hash.hex()[:16]}… is missing from the store")
            node = _Inner(node_hash, pos, record)
            if inner_hash(node.bit, node.left[0], node.right[0]) != node_hash:
                raise StateMapError(f"state node {node_hash.hex()[:16]}… does not match its slot")
            self._cache.put(node_hash, record)
            return node
        return _Inner(node_hash, pos, record)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise StateMapError(f"state keys are {KEY_BYTES} bytes")


class _Batch:
    """One batch update: the recursive merge of sorted changes into the trie. Its
    methods return the new subtree, None for an empty one. An inner node is written by
    its parent, at the slot the parent gives it, and only if it is new or has moved."""

    def __init__(self, owner: StateMap) -> None:
        self._owner = owner
        self._load = owner._load
        self._cache = owner._cache
        self._puts: dict[_Pos, bytes] = {}
        self._vacated: list[_Pos] = []

    def writes(self) -> dict[bytes, bytes | None]:
        puts = self._puts
        out: dict[bytes, bytes | None] = {_slot(p): None for p in self._vacated if p not in puts}
        for pos, record in puts.items():
            out[_slot(pos)] = record
        return out

    def place(self, sub: _Sub, pos: _Pos) -> None:
        if sub.key is not None or sub.origin == pos:
            return  # a leaf has no node record; an unmoved subtree stays as it is
        record = sub.record
        if record is None:
            assert sub.origin is not None
            record = self._load(sub.hash, sub.origin).record
        self._puts[pos] = record
        if sub.origin is not None:
            self._vacated.append(sub.origin)

    def _drop(self, node: _Inner) -> None:
        self._vacated.append(node.pos)
        self._cache.discard(node.hash)

    def _emit(self, bit: int, prefix: int, left: _Sub, right: _Sub) -> _Sub:
        base = prefix >> (255 - bit)
        if left.key is None:
            self.place(left, (bit + 1, base))
        if right.key is None:
            self.place(right, (bit + 1, base | 1))
        node_hash = _sha256(_INNER_PREFIXES[bit] + left.hash + right.hash).digest()
        record = _inner_record(bit, prefix, (left.hash, left.key), (right.hash, right.key))
        self._cache.put(node_hash, record)
        return _Sub(node_hash, None, record, None)

    def _join(self, bit: int, prefix: int, left: _Sub | None, right: _Sub | None) -> _Sub | None:
        if left is None:
            return right
        if right is None:
            return left
        return self._emit(bit, prefix, left, right)

    def update(self, sub: _Sub | None, items: Sequence[_Item], lo: int, hi: int) -> _Sub | None:
        """The subtree ``sub`` changed by items[lo:hi] (non-empty), all of which share
        the position's prefix."""
        if sub is None:
            return self.build([it for it in items[lo:hi] if it[1] is not None])
        if hi - lo == 1:
            return self._update_one(sub, items[lo][0], items[lo][1])
        if sub.key is not None:
            return self._merge_leaf(sub, sub.key, items, lo, hi)
        assert sub.origin is not None
        return self._merge_inner(self._load(sub.hash, sub.origin), items, lo, hi)

    def _update_one(self, sub: _Sub, key: bytes, value: bytes | None) -> _Sub | None:
        """The common case below the shared top of a batch: one key, one path."""
        k = _int(key)
        path: list[tuple[_Inner, int, _Pos]] = []  # node, side taken, that child's position
        bottom = sub
        other = 0  # the key of the leaf, or the prefix of the subtree, the key stops at
        if sub.key is None:
            assert sub.origin is not None
            node = self._load(sub.hash, sub.origin)
            while True:
                bit = node.bit
                if (k ^ node.prefix) >> (256 - bit):
                    bottom, other = node.sub(), node.prefix  # the key leaves this subtree
                    break
                side = (k >> (255 - bit)) & 1
                child_hash, child_key = node.right if side else node.left
                pos = (bit + 1, (node.prefix >> (255 - bit)) | side)
                path.append((node, side, pos))
                if child_key is not None:
                    bottom = _Sub(child_hash, child_key, None, None)
                    break
                node = self._load(child_hash, pos)
        new: _Sub | None
        if bottom.key == key:
            new = None if value is None else _Sub(leaf_hash(key, value), key, None, None)
        elif value is None:
            return sub  # deleting an absent key changes nothing
        else:
            split = _shared_bits(k, _int(bottom.key) if bottom.key is not None else other)
            leaf = _Sub(leaf_hash(key, value), key, None, None)
            pair = (bottom, leaf) if (k >> (255 - split)) & 1 else (leaf, bottom)
            new = self._emit(split, _prefix(k, split), *pair)
        return self._rebuild(path, new)

    def _rebuild(self, path: list[tuple[_Inner, int, _Pos]], new: _Sub | None) -> _Sub | None:
        """Rehash a path bottom-up around its new bottom subtree. The hot loop of an
        update: each node keeps its split, prefix, position and untouched sibling."""
        vacated, records, puts = self._vacated, self._cache._records, self._puts
        if path:
            # The new top may land elsewhere (the caller may collapse a split above it);
            # every lower node's replacement is written over it, one level up, below.
            vacated.append(path[0][0].pos)
        for node, side, pos in reversed(path):
            records.pop(node.hash, None)
            if new is None:
                vacated.append(node.pos)  # its sibling, or nothing (a leaf), moves up
                new = node.child(1 - side)
                continue
            if new.key is None:
                if new.origin is None and new.record is not None:
                    puts[pos] = new.record  # the usual case: the node rebuilt one level down
                else:
                    self.place(new, pos)
            bit, old = node.bit, node.record
            if side:
                node_hash = _sha256(_INNER_PREFIXES[bit] + node.left[0] + new.hash).digest()
                if node.right[1] == new.key:  # same kind of child: splice in its hash
                    record = old[:66] + new.hash + old[98:]
                else:
                    record = _inner_record(bit, node.prefix, node.left, (new.hash, new.key))
            else:
                node_hash = _sha256(_INNER_PREFIXES[bit] + new.hash + node.right[0]).digest()
                if node.left[1] == new.key:
                    record = old[:34] + new.hash + old[66:]
                else:
                    record = _inner_record(bit, node.prefix, (new.hash, new.key), node.right)
            records[node_hash] = record
            new = _Sub(node_hash, None, record, None)
        return new

    def _merge_leaf(
        self, sub: _Sub, leaf_key: bytes, items: Sequence[_Item], lo: int, hi: int
    ) -> _Sub | None:
        at = bisect_left(items, (leaf_key,), lo, hi)
        merged = [it for it in items[lo:hi] if it[1] is not None]
        if at == hi or items[at][0] != leaf_key:
            value = self._owner._leaf_value(sub.hash, leaf_key)
            merged.insert(bisect_left(merged, (leaf_key,)), (leaf_key, value))
        return self.build(merged)

    def _merge_inner(self, node: _Inner, items: Sequence[_Item], lo: int, hi: int) -> _Sub | None:
        shared = min(
            _shared_bits(node.prefix, _int(items[lo][0])),
            _shared_bits(node.prefix, _int(items[hi - 1][0])),
        )
        if shared >= node.bit:
            mid = bisect_left(items, _split_key(node.prefix, node.bit), lo, hi)
            left, right = node.child(0), node.child(1)
            new_left = self.update(left, items, lo, mid) if lo < mid else left
            new_right = self.update(right, items, mid, hi) if mid < hi else right
            if (new_left, new_right) == (left, right):
                return node.sub()
            self._drop(node)
            return self._join(node.bit, node.prefix, new_left, new_right)
        # Some changes leave this node's prefix at bit ``shared``: they form a new
        # sibling subtree, and this node moves one split down (changed only by the
        # changes that stay within its prefix, which the recursion accounts for).
        mid = bisect_left(items, _split_key(node.prefix, shared), lo, hi)
        prefix = _prefix(node.prefix, shared)
        if (node.prefix >> (255 - shared)) & 1:
            fresh = self.build([it for it in items[lo:mid] if it[1] is not None])
            same = self._merge_inner(node, items, mid, hi) if mid < hi else node.sub()
            return self._join(shared, prefix, fresh, same)
        fresh = self.build([it for it in items[mid:hi] if it[1] is not None])
        same = self._merge_inner(node, items, lo, mid) if lo < mid else node.sub()
        return self._join(shared, prefix, same, fresh)

    def build(self, items: Sequence[_Item]) -> _Sub | None:
        """A fresh subtree of sorted (key, value) items, values all set."""
        return self._build(items, 0, len(items)) if items else None

    def _build(self, items: Sequence[_Item], lo: int, hi: int) -> _Sub:
        if hi - lo == 1:
            key, value = items[lo]
            assert value is not None
            return _Sub(leaf_hash(key, value), key, None, None)
        first = _int(items[lo][0])
        bit = _shared_bits(first, _int(items[hi - 1][0]))
        mid = bisect_left(items, _split_key(first, bit), lo, hi)
        left = self._build(items, lo, mid)
        right = self._build(items, mid, hi)
        return self._emit(bit, _prefix(first, bit), left, right)
