"""The persistent, incremental RFC 9162 Merkle log.

Storage model. Every *perfect* subtree — ``2**level`` leaves starting at a multiple of
``2**level`` — is immutable once its last leaf is appended, so it is stored once under
``node_key(level, index)`` and never rewritten (single leaves excepted: their hash is
recomputed from the stored leaf). The Merkle Tree Hash of any range that
RFC 9162 §2.1 asks for is then either one stored node or, on the tree's right edge, a
fold of O(log n) stored nodes. That makes the root and every inclusion or consistency
proof for *any* past size cost O(log n) reads, with byte-identical output to the pure
functions of ``ledger.merkle`` (the proof builders are shared, see ``LogReader``).

Appending. The in-memory frontier holds the right-edge perfect subtrees of the current
size (one per set bit of the size, largest first). Appending a leaf pushes its hash and
merges equal-sized neighbours, exactly like binary addition with carries; each merge
completes one perfect node, which becomes one write. A block of k leaves therefore costs
O(k + log n) hashing and writes. This module writes nothing itself: ``MerkleLog.stage``
returns the key/value pairs for the caller's WriteBatch, and ``MerkleLog.adopt`` moves
the frontier forward only once that batch is durable.

Key layout (all under the caller's database; ``ledger.store`` documents the whole map):

    l:<index u64be>               raw leaf data (in the ledger: an entry's wire bytes)
    n:<level u8><index u64be>     msgpack bin of a perfect subtree's 32-byte hash, for
                                  level >= 1 (level 0 is the leaf hash, computed from l:)
    m:log                         msgpack uint: the log's size
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.codec import decode, encode
from ledger.errors import CodecError, StoreError
from ledger.merkle import (
    EMPTY_ROOT,
    consistency_path,
    inclusion_path,
    leaf_hash,
    node_hash,
    split_point,
)

__all__ = [
    "LEAF_PREFIX",
    "LOG_SIZE_KEY",
    "Getter",
    "LogAppend",
    "LogReader",
    "MerkleLog",
    "leaf_key",
    "node_key",
]

Getter = Callable[[bytes], "bytes | None"]

LEAF_PREFIX = b"l:"
NODE_PREFIX = b"n:"
LOG_SIZE_KEY = b"m:log"
MAX_LOG_SIZE = 2**63
_BIN32 = b"\xc4\x20"  # canonical msgpack header of a 32-byte bin
_NODE_LEVEL_PREFIX = [NODE_PREFIX + bytes((level,)) for level in range(64)]


def leaf_key(index: int) -> bytes:
    return LEAF_PREFIX + index.to_bytes(8, "big")


def node_key(level: int, index: int) -> bytes:
    return _NODE_LEVEL_PREFIX[level] + index.to_bytes(8, "big")


def encode_size(size: int) -> bytes:
    return encode(size)


def decode_size(raw: bytes | None) -> int:
    """The stored log size; absent means an empty log."""
    if raw is None:
        return 0
    try:
        size = decode(raw, max_bytes=16)
    except CodecError as exc:
        raise StoreError(f"corrupt log size record {raw.hex()}: {exc}") from exc
    if type(size) is not int or not 0 <= size < MAX_LOG_SIZE:
        raise StoreError(f"corrupt log size record {raw.hex()}")
    return size


def _decode_node(key: bytes, raw: bytes | None) -> bytes:
    if raw is None:
        raise StoreError(f"log node {key.hex()} is missing")
    if len(raw) != 34 or not raw.startswith(_BIN32):
        raise StoreError(f"log node {key.hex()} is corrupt ({len(raw)} bytes)")
    return raw[2:]


def _stored_node(get: Getter, level: int, index: int) -> bytes:
    """A perfect subtree's hash. Level 0 is hashed from the leaf: storing leaf hashes
    too would add a third of the log's writes to every block for one hash per proof."""
    if level == 0:
        data = get(leaf_key(index))
        if data is None:
            raise StoreError(f"log leaf {index} is missing")
        return leaf_hash(data)
    key = node_key(level, index)
    return _decode_node(key, get(key))


def _fold(frontier: Sequence[bytes]) -> bytes:
    """MTH of a tree whose right-edge perfect subtrees are ``frontier`` (largest first)."""
    if not frontier:
        return EMPTY_ROOT
    acc = frontier[-1]
    for h in reversed(frontier[:-1]):
        acc = node_hash(h, acc)
    return acc


@dataclass(frozen=True, slots=True)
class LogAppend:
    """A staged append: the writes to make durable, and the log it yields."""

    base_size: int
    size: int
    root: bytes
    frontier: tuple[bytes, ...]
    writes: tuple[tuple[bytes, bytes], ...]
    # What it was staged on and from: a store can then accept an append staged once
    # elsewhere (block staging) only for the very log state and leaves it was made for.
    base_frontier: tuple[bytes, ...]
    leaves: tuple[bytes, ...]


class MerkleLog:
    """The right-edge frontier of the log; stages appends, never touches storage."""

    __slots__ = ("_frontier", "_size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if not 0 <= size < MAX_LOG_SIZE or len(frontier) != size.bit_count():
            raise StoreError(f"a log of size {size} has {size.bit_count()} frontier nodes")
        self._size = size
        self._frontier = tuple(frontier)

    @classmethod
    def load(cls, get: Getter) -> MerkleLog:
        """Rebuild the frontier from stored nodes: one read per set bit of the size."""
        size = decode_size(get(LOG_SIZE_KEY))
        frontier: list[bytes] = []
        offset = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                frontier.append(_stored_node(get, level, offset >> level))
                offset += 1 << level
        return cls(size, frontier)

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        return self._frontier

    def root(self) -> bytes:
        return _fold(self._frontier)

    def root_after(self, leaf_datas: Sequence[bytes]) -> tuple[int, bytes]:
        """(size, root) if ``leaf_datas`` were appended; computes, stores nothing."""
        frontier = list(self._frontier)
        size = self._size
        for data in leaf_datas:
            _push(frontier, size, leaf_hash(data))
            size += 1
        return size, _fold(frontier)

    def stage(self, leaf_datas: Sequence[bytes]) -> LogAppend:
        """The writes that append ``leaf_datas``; the log itself is unchanged."""
        frontier = list(self._frontier)
        size = self._size
        if size + len(leaf_datas) >= MAX_LOG_SIZE:
            raise StoreError("the log cannot grow past 2**63 leaves")
        writes: list[tuple[bytes, bytes]] = []
        put = writes.append
        sha256 = hashlib.sha256
        # This is the append hot path, so leaf_hash, node_hash, node_key and _push are
        # inlined here; the tests compare every result with ledger.merkle's definitions.
        for data in leaf_datas:
            if type(data) is not bytes:
                raise StoreError(f"leaf {size} is {type(data).__name__}, not bytes")
            index = size.to_bytes(8, "big")
            h = sha256(b"\x00" + data).digest()
            put((LEAF_PREFIX + index, data))
            n = size
            level = 0
            while n & 1:
                h = sha256(b"\x01" + frontier.pop() + h).digest()
                level += 1
                n >>= 1
                put((_NODE_LEVEL_PREFIX[level] + n.to_bytes(8, "big"), _BIN32 + h))
            frontier.append(h)
            size += 1
        writes.append((LOG_SIZE_KEY, encode_size(size)))
        return LogAppend(
            self._size,
            size,
            _fold(frontier),
            tuple(frontier),
            tuple(writes),
            self._frontier,
            tuple(leaf_datas),
        )

    def check_base(self, staged: LogAppend) -> None:
        """Raise StoreError unless ``staged`` was staged on this log's current state."""
        if staged.base_size != self._size:
            raise StoreError(
                f"staged append starts at size {staged.base_size}, the log is at {self._size}"
            )
        if staged.base_frontier != self._frontier:
            raise StoreError(
                f"staged append was made on another log of size {self._size} (frontier differs)"
            )

    def adopt(self, staged: LogAppend) -> None:
        """Move to the staged state, once its writes are durable."""
        self.check_base(staged)
        self._size = staged.size
        self._frontier = staged.frontier


def _push(frontier: list[bytes], size: int, h: bytes) -> None:
    """Add leaf number ``size`` with hash ``h``: binary addition, each carry a merge."""
    n = size
    while n & 1:
        h = node_hash(frontier.pop(), h)
        n >>= 1
    frontier.append(h)


class LogReader:
    """RFC 9162 answers for every size up to ``size``, from stored perfect nodes.

    ``get`` may read a live database or one snapshot; with a snapshot every answer comes
    from the same log state.
    """

    __slots__ = ("_get", "size")

    def __init__(self, get: Getter, size: int) -> None:
        self._get = get
        self.size = size

    def _node(self, level: int, index: int) -> bytes:
        return _stored_node(self._get, level, index)

    def range_hash(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi): one read for a perfect subtree, else RFC 9162 splits."""
        n = hi - lo
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            return self._node(level, lo >> level)
        k = split_point(n)
        return node_hash(self.range_hash(lo, lo + k), self.range_hash(lo + k, hi))

    def _check_size(self, size: int, what: str) -> None:
        if type(size) is not int or not 0 <= size <= self.size:
            raise StoreError(f"{what} {size!r} is outside 0..{self.size} (the log's size)")

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size, "log size")
        return self.range_hash(0, size)

    def leaf(self, index: int) -> bytes:
        if type(index) is not int or not 0 <= index < self.size:
            raise StoreError(f"leaf index {index!r} is outside 0..{self.size - 1}")
        raw = self._get(leaf_key(index))
        if raw is None:
            raise StoreError(f"leaf {index} is missing")
        return raw

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        self._check_size(size, "tree size")
        if type(index) is not int or not 0 <= index < size:
            raise StoreError(f"leaf index {index!r} is outside a tree of size {size}")
        return inclusion_path(index, size, self.range_hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size, "new size")
        if type(old_size) is not int or not 0 <= old_size <= new_size:
            raise StoreError(f"old size {old_size!r} is outside 0..{new_size}")
        return consistency_path(old_size, new_size, self.range_hash)
