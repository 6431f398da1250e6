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
its only record, so walking the trie never reads a leaf. Parsed inner nodes are cached
by position, and a cached node is used only if it has the hash its parent names, so it
can never be stale for any view of any store.

An update writes each node it creates as it creates it, at its position, so what is
written depends on the old and new tries alone, never on what was cached.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
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


def _shared_bits(a: int, b: int) -> int:
    """How many leading bits two 256-bit keys (as integers) share."""
    return 256 - (a ^ b).bit_length()


def _prefix(key: int, bits: int) -> int:
    """``key`` with every bit from ``bits`` on cleared (the shared prefix of a subtree)."""
    shift = 256 - bits
    return (key >> shift) << shift


# A subtree as its parent sees it: (hash, leaf key) for a leaf, (hash, None) for an inner
# node. Parents keep their leaf children's keys, so a walk never reads a leaf: a leaf's
# only record is its value under ``x:state/v/<key>``.
_Ref = tuple[bytes, "bytes | None"]

# An inner node, parsed: (bit, left hash, left leaf key, right hash, right leaf key,
# prefix, tail, hash). ``prefix`` is the keys' shared first ``bit`` bits as an integer
# (the rest zero); ``tail`` is the end of its record (below), kept so that rehashing a
# path rebuilds a record with one join. Plain tuples: an update makes ~7 per changed key.
_Node = tuple[int, bytes, "bytes | None", bytes, "bytes | None", int, bytes, bytes]

# A record is the node's hash preimage, 0x03 0x01 || bit || L || R, then the tail:
# flags (1: the left child is a leaf, 2: the right one is) || [left leaf key] ||
# [right leaf key] || prefix, its first ``bit`` bits in ceil(bit / 8) bytes.
_PREIMAGE_BYTES = len(_INNER) + 1 + 2 * KEY_BYTES
_FLAG_BYTES = tuple(bytes((flags,)) for flags in range(4))
_PREFIX_BYTES = tuple((bit + 7) // 8 for bit in range(256))
_PREFIX_SHIFTS = tuple(256 - 8 * size for size in _PREFIX_BYTES)


def _tail(bit: int, prefix: int, left_key: bytes | None, right_key: bytes | None) -> bytes:
    flags = (1 if left_key is not None else 0) | (2 if right_key is not None else 0)
    packed = (prefix >> _PREFIX_SHIFTS[bit]).to_bytes(_PREFIX_BYTES[bit], "big")
    return b"".join((_FLAG_BYTES[flags], left_key or b"", right_key or b"", packed))


def _record(node: _Node) -> bytes:
    return b"".join((_INNER_PREFIXES[node[0]], node[1], node[3], node[6]))


def _parse(node_hash: bytes, record: bytes) -> _Node:
    """The node stored as ``record``, checked against the hash its parent gives it."""
    flags = record[_PREIMAGE_BYTES] if len(record) > _PREIMAGE_BYTES else 255
    if record[:2] != _INNER or flags > 3:
        raise StateMapError(f"state node {node_hash.hex()[:16]}… has a malformed record")
    bit, at = record[2], _PREIMAGE_BYTES + 1
    left_key = right_key = None
    if flags & 1:
        left_key, at = record[at : at + KEY_BYTES], at + KEY_BYTES
    if flags & 2:
        right_key, at = record[at : at + KEY_BYTES], at + KEY_BYTES
    if len(record) != at + _PREFIX_BYTES[bit]:
        raise StateMapError(f"state node {node_hash.hex()[:16]}… has a malformed record")
    if _sha256(record[:_PREIMAGE_BYTES]).digest() != node_hash:
        raise StateMapError(f"state node {node_hash.hex()[:16]}… does not match its slot")
    prefix = int.from_bytes(record[at:], "big") << _PREFIX_SHIFTS[bit]
    if prefix != _prefix(prefix, bit):
        raise StateMapError(f"state node {node_hash.hex()[:16]}… has a malformed prefix")
    left, right = record[3:35], record[35:_PREIMAGE_BYTES]
    return (bit, left, left_key, right, right_key, prefix, record[_PREIMAGE_BYTES:], node_hash)


_SLOT_HEADS = tuple(NODE_PREFIX + bytes((length,)) for length in range(256))


def _slot(length: int, region: int) -> bytes:
    """The raw key of the inner node at position ``length`` (its parent's bit + 1, 0 for
    the root) in the region of the keys whose first ``length`` bits are ``region``'s:
    those bits as an integer, in ceil(length / 8) bytes. A node's position changes only
    when a split appears or disappears above it, so a rewritten path overwrites itself."""
    return _SLOT_HEADS[length] + (region >> (256 - length)).to_bytes(_PREFIX_BYTES[length], "big")


def _child_slot(node: _Node, side: int) -> bytes:
    """The slot of ``node``'s child on ``side``: its region is the node's prefix and side."""
    length = node[0] + 1
    region = (node[5] >> (256 - length)) | side
    return _SLOT_HEADS[length] + region.to_bytes(_PREFIX_BYTES[length], "big")


class NodeCache:
    """Parsed inner nodes by slot, so a warm walk reads and parses nothing.

    A walk uses a cached node only if it has the hash the parent names, so an entry is
    never stale for any view of any store; a rewritten path replaces its entries in
    place. The cache is cleared if it outgrows ``max_nodes`` (about 400 bytes each; a
    map of n keys has n - 1 inner nodes)."""

    def __init__(self, max_nodes: int = 1_500_000) -> None:
        self.max_nodes = max_nodes
        self.nodes: dict[bytes, _Node] = {}

    def get(self, slot: bytes, node_hash: bytes) -> _Node | None:
        node = self.nodes.get(slot)
        return node if node is not None and node[7] == node_hash else None

    def put(self, slot: bytes, node: _Node) -> None:
        if len(self.nodes) >= self.max_nodes:
            self.nodes.clear()
        self.nodes[slot] = node

    def trim(self) -> None:
        """Enforce the bound after a batch, whose hot loop adds nodes past ``put``."""
        if len(self.nodes) > self.max_nodes:
            self.nodes.clear()

    def clear(self) -> None:
        self.nodes.clear()

    def __len__(self) -> int:
        return len(self.nodes)


DEFAULT_CACHE = NodeCache()
ROOT_SLOT = _slot(0, 0)


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
        slot = ROOT_SLOT
        while ref[1] is None:
            node = self._node(ref[0], slot)
            bit = node[0]
            side = _bit(key, bit)
            steps.append((bit, node[1] if side else node[3]))
            ref = _child(node, side)
            if ref[1] is None:
                slot = _child_slot(node, side)
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
        # Typed as object: bad keys and values must reach the checks below (compiled with mypyc,
        # a typed loop would raise a bare TypeError first).
        items: Iterable[tuple[object, object]] = changes.items()
        for key, value in items:
            _check_key(key)
            if value is not None and (not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES):
                raise StateMapError(f"state value must be bytes of at most {MAX_VALUE_BYTES}")
        old = self._root_ref()
        if not changes:
            return StateUpdate(EMPTY_ROOT if old is None else old[0], {})
        batch = _Batch(self, changes)
        new = batch.update(old, ROOT_SLOT, 0, len(changes))
        if new is not None:
            batch.place(new, ROOT_SLOT)
        writes = batch.writes()
        self._cache.trim()
        for key, value in changes.items():
            writes[VALUE_PREFIX + key] = value
        if new != old:
            writes[ROOT_KEY] = None if new is None else new[0] + (new[1] or b"")
        return StateUpdate(EMPTY_ROOT if new is None else new[0], writes)

    def _node(self, node_hash: bytes, slot: bytes) -> _Node:
        """The inner node ``node_hash``, stored at ``slot``."""
        node = self._cache.get(slot, node_hash)
        if node is None:
            record = self._get(slot)
            if record is None:
                raise StateMapError(f"state node {node_hash.hex()[:16]}… is missing from the store")
            node = _parse(node_hash, record)
            self._cache.put(slot, node)
        return node


def _check_key(key: object) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise StateMapError(f"state keys are {KEY_BYTES} bytes")


# One step of a walk: the node, the side the walk took, the node's slot.
_Step = tuple[_Node, int, bytes]
# A leaf to build from: (key as an integer, key, leaf hash), sortable by the integer.
_Leaf = tuple[int, bytes, bytes]


class _Batch:
    """One batch update: the recursive merge of the sorted changes into the trie.

    Its methods return the new subtree (None for an empty one) and write every node in
    it at its slot, except its top node, whose slot only the caller knows: the caller
    ``place``s it under the node it builds, or at the root. Until then a node this batch
    created waits in ``pending`` with the slot of the stored node it replaces (None for
    none); a stored node that a split above it or its sibling's removal may move waits
    in ``moved`` with its slot. Slots left empty are deleted at the end, so the writes
    depend on the old and new tries alone, never on what was cached."""

    def __init__(self, owner: StateMap, changes: Mapping[bytes, bytes | None]) -> None:
        self._node = owner._node
        self._cached = owner._cache.nodes
        self.keys = sorted(changes)
        self.ints = [int.from_bytes(key, "big") for key in self.keys]
        self.values = [changes[key] for key in self.keys]
        self.pending: dict[bytes, tuple[_Node, bytes | None]] = {}
        self.moved: dict[bytes, tuple[_Node, bytes | None]] = {}
        self.vacated: list[bytes] = []
        self.out: dict[bytes, bytes | None] = {}

    def writes(self) -> dict[bytes, bytes | None]:
        out = self.out
        for slot in self.vacated:
            out.setdefault(slot, None)
        return out

    def place(self, ref: _Ref, slot: bytes) -> None:
        """Put the subtree ``ref`` at ``slot``: write its top node there if it is new or
        has moved (a leaf has no record; the rest of the subtree is written already)."""
        node_hash, leaf_key = ref
        if leaf_key is not None:
            return
        entry = self.pending.pop(node_hash, None)
        if entry is None:
            entry = self.moved.get(node_hash)
            if entry is None or entry[1] == slot:
                return  # a stored node that stays where it is
        node, stored = entry
        self._cached[slot] = node
        self.out[slot] = _record(node)
        if stored is not None and stored != slot:
            self.vacated.append(stored)

    def update(self, ref: _Ref | None, slot: bytes, lo: int, hi: int) -> _Ref | None:
        """The subtree ``ref``, stored at ``slot``, changed by the batch's items lo..hi - 1
        (at least one), all within that slot's region."""
        if ref is None:
            return self._build(self._leaves(lo, hi))
        if hi - lo == 1:
            return self._update_one(ref, slot, lo)
        if ref[1] is not None:
            return self._merge_leaf(ref, lo, hi)
        return self._merge_inner(self._node(ref[0], slot), slot, lo, hi)

    def _leaves(self, lo: int, hi: int) -> list[_Leaf]:
        keys, ints, values = self.keys, self.ints, self.values
        return [
            (ints[i], keys[i], leaf_hash(keys[i], value))
            for i in range(lo, hi)
            if (value := values[i]) is not None
        ]

    def _update_one(self, ref: _Ref, slot: bytes, index: int) -> _Ref | None:
        """The common case below the shared top of a batch: one key, one path. The walk
        follows the key's bits down to a leaf without checking prefixes (crit-bit
        insertion, as in Bernstein's qhasm crit-bit trees); where the key leaves the trie
        follows from the first bit in which it differs from that leaf."""
        k, cached = self.ints[index], self._cached
        heads, sizes = _SLOT_HEADS, _PREFIX_BYTES
        path: list[_Step] = []
        node_hash, leaf_key = ref
        while leaf_key is None:
            node = cached.get(slot)
            if node is None or node[7] != node_hash:
                node = self._node(node_hash, slot)
            bit = node[0]
            side = (k >> (255 - bit)) & 1
            path.append((node, side, slot))
            node_hash, leaf_key = (node[3], node[4]) if side else (node[1], node[2])
            if leaf_key is None:
                region = (node[5] >> (255 - bit)) | side
                slot = heads[bit + 1] + region.to_bytes(sizes[bit + 1], "big")
        return self._change_leaf(ref, path, (node_hash, leaf_key), index)

    def _change_leaf(self, ref: _Ref, path: list[_Step], leaf: _Ref, index: int) -> _Ref | None:
        """The subtree ``ref`` with item ``index`` applied at the end of ``path`` (the walk
        down from ``ref``), which ends at ``leaf``."""
        k, key, value = self.ints[index], self.keys[index], self.values[index]
        depth = len(path)
        new: _Ref | None
        if leaf[1] == key:
            new = None if value is None else (leaf_hash(key, value), key)
            if new == leaf:
                return ref  # the same value again
        elif value is None:
            return ref  # deleting an absent key
        else:
            split = _shared_bits(k, int.from_bytes(leaf[1] or b"", "big"))
            while depth and path[depth - 1][0][0] > split:
                depth -= 1
            below = leaf
            if depth < len(path):
                node, _, slot = path[depth]
                below = (node[7], None)
                self.moved[node[7]] = (node, slot)  # one split down
            ours = (leaf_hash(key, value), key)
            pair = (below, ours) if (k >> (255 - split)) & 1 else (ours, below)
            new = self._new_node(split, _prefix(k, split), *pair)
        if depth and new is not None and new[1] is None:
            self.place(new, _child_slot(path[depth - 1][0], path[depth - 1][1]))
        return self._rebuild(path, depth, new)

    def _rebuild(self, path: list[_Step], depth: int, new: _Ref | None) -> _Ref | None:
        """Rehash path[:depth] bottom-up around its new bottom subtree ``new``. The hot
        loop of an update: each node keeps its split, prefix, slot and untouched sibling,
        and its record's tail unless a child turned from leaf to node or back; its parent
        is rebuilt in place too, so it is written and cached where it was at once."""
        cached, out = self._cached, self.out
        for i in range(depth - 1, -1, -1):
            node, side, slot = path[i]
            if new is None:  # its other child takes its place
                new = self._lift(node, slot, 1 - side, _child(node, 1 - side))
                if i and new is not None:
                    self.place(new, slot)
                continue
            bit, left, left_key, right, right_key, prefix, tail, _ = node
            if side:
                if new[1] != right_key:
                    tail = _tail(bit, prefix, left_key, new[1])
                right, right_key = new
            else:
                if new[1] != left_key:
                    tail = _tail(bit, prefix, new[1], right_key)
                left, left_key = new
            preimage = _INNER_PREFIXES[bit] + left + right
            new_hash = _sha256(preimage).digest()
            node = (bit, left, left_key, right, right_key, prefix, tail, new_hash)
            if i:
                cached[slot] = node
                out[slot] = preimage + tail
            else:
                self.pending[new_hash] = (node, slot)
            new = (new_hash, None)
        return new

    def _lift(self, node: _Node, slot: bytes, side: int, child: _Ref | None) -> _Ref | None:
        """``node``, stored at ``slot``, is left with one child, ``child`` on ``side``
        (or none), which takes its place: a stored child moves up."""
        self.vacated.append(slot)
        if child is not None and child[1] is None and child == _child(node, side):
            child_slot = _child_slot(node, side)
            self.moved[child[0]] = (self._node(child[0], child_slot), child_slot)
        return child

    def _new_node(self, bit: int, prefix: int, left: _Ref, right: _Ref) -> _Ref:
        tail = _tail(bit, prefix, left[1], right[1])
        new_hash = _sha256(_INNER_PREFIXES[bit] + left[0] + right[0]).digest()
        node = (bit, *left, *right, prefix, tail, new_hash)
        if left[1] is None:
            self.place(left, _child_slot(node, 0))
        if right[1] is None:
            self.place(right, _child_slot(node, 1))
        self.pending[new_hash] = (node, None)
        return new_hash, None

    def _merge_inner(self, node: _Node, slot: bytes, lo: int, hi: int) -> _Ref | None:
        bit, prefix, ints = node[0], node[5], self.ints
        # Sorted, so the first and last items leave the prefix first, if any does.
        differ = max((prefix ^ ints[lo]).bit_length(), (prefix ^ ints[hi - 1]).bit_length())
        if differ > 256 - bit:
            return self._split_above(node, slot, 256 - differ, lo, hi)
        mid = bisect_left(ints, prefix | (1 << (255 - bit)), lo, hi)
        left, right = _child(node, 0), _child(node, 1)
        # A child of the last bit is a leaf, whose slot is never used: b"" stands in.
        left_slot = right_slot = b""
        if bit < 255:
            left_slot, right_slot = _child_slot(node, 0), _child_slot(node, 1)
        new_left = self.update(left, left_slot, lo, mid) if lo < mid else left
        new_right = self.update(right, right_slot, mid, hi) if mid < hi else right
        if new_left == left and new_right == right:
            return node[7], None
        if new_left is None:
            return self._lift(node, slot, 1, new_right)
        if new_right is None:
            return self._lift(node, slot, 0, new_left)
        self.place(new_left, left_slot)
        self.place(new_right, right_slot)
        tail = node[6]
        if new_left[1] != left[1] or new_right[1] != right[1]:
            tail = _tail(bit, prefix, new_left[1], new_right[1])
        new_hash = _sha256(_INNER_PREFIXES[bit] + new_left[0] + new_right[0]).digest()
        self.pending[new_hash] = ((bit, *new_left, *new_right, prefix, tail, new_hash), slot)
        return new_hash, None

    def _split_above(self, node: _Node, slot: bytes, shared: int, lo: int, hi: int) -> _Ref | None:
        """Some changes leave ``node``'s prefix at bit ``shared``: they form a new sibling
        subtree under a new split there, and the node moves one split down (changed only
        by the changes that stay within its prefix)."""
        prefix = node[5]
        top = _prefix(prefix, shared)
        mid = bisect_left(self.ints, top | (1 << (255 - shared)), lo, hi)
        on_right = (prefix >> (255 - shared)) & 1
        same_lo, same_hi = (mid, hi) if on_right else (lo, mid)
        other = self._build(self._leaves(lo, mid) if on_right else self._leaves(mid, hi))
        same: _Ref | None = (node[7], None)
        if same_lo < same_hi:
            same = self._merge_inner(node, slot, same_lo, same_hi)
        if other is None or same is None:
            return same or other
        if same == (node[7], None):
            self.moved[node[7]] = (node, slot)
        return self._new_node(shared, top, *((other, same) if on_right else (same, other)))

    def _merge_leaf(self, ref: _Ref, lo: int, hi: int) -> _Ref | None:
        leaves = self._leaves(lo, hi)
        leaf_int = int.from_bytes(ref[1] or b"", "big")
        at = bisect_left(self.ints, leaf_int, lo, hi)
        if at == hi or self.ints[at] != leaf_int:  # untouched: kept as it is, by its hash
            leaves.insert(bisect_left(leaves, (leaf_int,)), (leaf_int, ref[1] or b"", ref[0]))
        return self._build(leaves)

    def _build(self, leaves: list[_Leaf]) -> _Ref | None:
        """A new subtree of sorted leaves."""
        return self._build_range(leaves, 0, len(leaves)) if leaves else None

    def _build_range(self, leaves: list[_Leaf], lo: int, hi: int) -> _Ref:
        if hi - lo == 1:
            _, key, hash_ = leaves[lo]
            return hash_, key
        first = leaves[lo][0]
        bit = _shared_bits(first, leaves[hi - 1][0])
        prefix = _prefix(first, bit)
        mid = bisect_left(leaves, (prefix | (1 << (255 - bit)),), lo, hi)
        left = self._build_range(leaves, lo, mid)
        return self._new_node(bit, prefix, left, self._build_range(leaves, mid, hi))


def _child(node: _Node, side: int) -> _Ref:
    return (node[3], node[4]) if side else (node[1], node[2])
