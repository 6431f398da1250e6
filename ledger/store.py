"""The LevelDB store (plyvel): blocks, commits, entry index, subject index, Merkle log.

Durability. ``Store.commit_block`` validates first and then writes the whole block —
header, commit, entry locations, subject index, log leaves and nodes, head record and
the caller's ``extra`` state — as ONE LevelDB WriteBatch with ``sync=True``. LevelDB
applies a batch atomically from its write-ahead log, so after kill -9 a block is there
whole or not at all, and once ``commit_block`` returns it survives power loss.

Key layout (heights and indexes are unsigned 64-bit big-endian so keys sort; values are
canonical msgpack, except log leaves, which are the leaf data itself — in the ledger an
entry's canonical wire bytes):

    m:genesis                      {"chain", "genesis", "version"}: which network this is
    m:head                         [height, header hash]; absent while empty
    m:log                          log size (see ``ledger.merkle_log``)
    h:<height>                     header (canonical encoding)
    c:<height>                     commit (canonical encoding)
    e:<entry id>                   [height, position in block, log index]; its presence
                                   is the committed-id set used for duplicate detection
    s:<sha256(subject)><seq>       [entry id, height, log index]; seq = 0, 1, ... in
                                   commit order, so a prefix scan lists a history in order
    k:<sha256(subject)>            number of entries that touched the subject
    l:<log index>                  log leaf data
    n:<level u8><index>            perfect-subtree hash of the log (levels >= 1)
    x:...                          other components' state (``extra``), opaque here:
                                   the state map (x:state/, x:contract/), the consensus
                                   signing record, the search indexes (x:index/,
                                   node/daemon/indexes.py)

A block is not stored twice: its entries are exactly the log leaves
[log_size - entries, log_size) of its header, so ``get_block`` reassembles it from the
header and those leaves.

Every read that must be coherent across keys (a proof, a history) can be answered from
one LevelDB snapshot through ``Store.snapshot()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import msgpack
import plyvel

from ledger.block import ZERO_HASH, Block, Commit, Header
from ledger.codec import decode, encode
from ledger.entry import SignedEntry, decode_wire
from ledger.errors import (
    BlockFormatError,
    CodecError,
    EntryError,
    StoreError,
    StoreGenesisMismatch,
    StoreInUseError,
)
from ledger.genesis import Genesis
from ledger.history import HistoryError, subject_key
from ledger.merkle_log import LEAF_PREFIX, LogAppend, LogReader, MerkleLog, leaf_key

__all__ = ["EXTRA_PREFIX", "EntryLocation", "Store", "StoreView", "SubjectRef"]

STORE_VERSION = 1
EXTRA_PREFIX = b"x:"
GENESIS_KEY = b"m:genesis"
HEAD_KEY = b"m:head"
HEADER_PREFIX = b"h:"
COMMIT_PREFIX = b"c:"
ENTRY_PREFIX = b"e:"
SUBJECT_PREFIX = b"s:"
SUBJECT_COUNT_PREFIX = b"k:"
_MAX_RECORD = 256 * 1024
_EXTRA_VALUE_TYPES = {bytes, type(None)}
_LOCK_ERROR = re.compile(rb"IO error: lock ")

Getter = Callable[[bytes], "bytes | None"]
Scanner = Callable[[bytes, bytes], Iterator[tuple[bytes, bytes]]]


class EntryLocation(NamedTuple):
    height: int
    position: int
    log_index: int


class SubjectRef(NamedTuple):
    entry_id: bytes
    height: int
    log_index: int


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _subject_digest(subject: object) -> bytes:
    # The index keys a subject by its state-map key, so one function names both.
    try:
        return subject_key(subject)
    except HistoryError as exc:
        raise StoreError(str(exc)) from exc


def _decode(raw: bytes, what: str) -> Any:
    try:
        return decode(raw, max_bytes=_MAX_RECORD)
    except CodecError as exc:
        raise StoreError(f"corrupt {what}: {exc}") from exc


def _decode_uints(raw: bytes, count: int, what: str) -> list[int]:
    obj = _decode(raw, what)
    if (
        not isinstance(obj, list)
        or len(obj) != count
        or not all(type(v) is int and v >= 0 for v in obj)
    ):
        raise StoreError(f"corrupt {what}: expected {count} non-negative integers")
    return obj


def _decode_count(raw: bytes | None, subject: str) -> int:
    if raw is None:
        return 0
    count = _decode(raw, f"count of subject {subject}")
    if type(count) is not int or count < 1:
        raise StoreError(f"corrupt count of subject {subject}: {count!r}")
    return count


def _subject_digests(subjects: Sequence[Sequence[str]]) -> list[list[bytes]]:
    """Each entry's distinct subjects, hashed for the index keys; refuses bad names."""
    digests = []
    for position, touched in enumerate(subjects):
        # A bare str is a Sequence[str] too; indexing it by character is never meant.
        if isinstance(touched, str | bytes):
            raise StoreError(f"subjects[{position}] must be a list of subjects, not a string")
        digests.append(list(dict.fromkeys(_subject_digest(subject) for subject in touched)))
    return digests


def _check_extra(items: Mapping[bytes, bytes | None]) -> None:
    # A block's state-map writes run to tens of thousands of keys: check them in bulk and
    # only walk the items one by one to name the offender.
    keys_ok = set(map(type, items)) <= {bytes} and all(
        map(bytes.startswith, items, repeat(EXTRA_PREFIX))
    )
    if keys_ok and set(map(type, items.values())) <= _EXTRA_VALUE_TYPES:
        return
    # Typed as object: bad keys and values must reach the checks below (compiled with mypyc,
    # a typed loop would raise a bare TypeError first).
    pairs: Iterable[tuple[object, object]] = items.items()
    for key, value in pairs:
        if not isinstance(key, bytes) or not key.startswith(EXTRA_PREFIX):
            raise StoreError(f"extra key {key!r} must be bytes starting with {EXTRA_PREFIX!r}")
        if value is not None and not isinstance(value, bytes):
            raise StoreError(f"extra value for {key!r} must be bytes or None")


class _Head(NamedTuple):
    header: Header | None
    hash: bytes | None

    @property
    def height(self) -> int:
        return 0 if self.header is None else self.header.height


class _Reader:
    """Every read, answered through ``_get``/``_scan`` from one consistent source."""

    _get: Getter
    _scan: Scanner
    _genesis: Genesis
    _head: _Head

    def _log(self) -> LogReader:
        size = 0 if self._head.header is None else self._head.header.log_size
        return LogReader(self._get, size)

    def _frontier(self) -> MerkleLog:
        return MerkleLog.load(self._get)

    # -- head and blocks -------------------------------------------------------------

    @property
    def height(self) -> int:
        return self._head.height

    def head_header(self) -> Header | None:
        return self._head.header

    def head_hash(self) -> bytes | None:
        return self._head.hash

    def get_header(self, height: int) -> Header | None:
        if type(height) is not int or not 1 <= height <= self.height:
            return None
        raw = self._get(HEADER_PREFIX + _u64(height))
        if raw is None:
            raise StoreError(f"header {height} is missing below the head")
        try:
            header = Header.decode(raw)
        except BlockFormatError as exc:
            raise StoreError(f"corrupt header {height}: {exc}") from exc
        if header.height != height:
            raise StoreError(f"header stored at {height} says height {header.height}")
        return header

    def get_commit(self, height: int) -> Commit | None:
        if type(height) is not int or not 1 <= height <= self.height:
            return None
        raw = self._get(COMMIT_PREFIX + _u64(height))
        if raw is None:
            raise StoreError(f"commit {height} is missing below the head")
        try:
            return Commit.decode(raw)
        except BlockFormatError as exc:
            raise StoreError(f"corrupt commit {height}: {exc}") from exc

    def get_block(self, height: int) -> Block | None:
        header = self.get_header(height)
        if header is None:
            return None
        first = header.log_size - header.entries
        limit = self._genesis.params.max_entry_bytes
        entries: list[SignedEntry] = []
        # One range scan instead of a read per leaf: a block may hold thousands.
        for key, raw in self._scan(LEAF_PREFIX, leaf_key(first)):
            if len(entries) == header.entries:
                break
            index = first + len(entries)
            if key != leaf_key(index):
                raise StoreError(f"log leaf {index} of block {height} is missing")
            try:
                entries.append(decode_wire(raw, limit))
            except EntryError as exc:
                raise StoreError(f"corrupt entry at log index {index}: {exc}") from exc
        if len(entries) != header.entries:
            raise StoreError(f"log leaf {first + len(entries)} of block {height} is missing")
        return Block(header, tuple(entries))

    # -- entries and subjects --------------------------------------------------------

    def entry_location(self, entry_id: bytes) -> EntryLocation | None:
        if not isinstance(entry_id, bytes) or len(entry_id) != 32:
            raise StoreError("an entry id is 32 bytes")
        raw = self._get(ENTRY_PREFIX + entry_id)
        if raw is None:
            return None
        return EntryLocation(*_decode_uints(raw, 3, f"location of entry {entry_id.hex()}"))

    def has_entry(self, entry_id: bytes) -> bool:
        if not isinstance(entry_id, bytes) or len(entry_id) != 32:
            raise StoreError("an entry id is 32 bytes")
        return self._get(ENTRY_PREFIX + entry_id) is not None

    def subject_count(self, subject: object) -> int:
        raw = self._get(SUBJECT_COUNT_PREFIX + _subject_digest(subject))
        return _decode_count(raw, repr(subject))

    def subject_entries(
        self, subject: object, start: object = 0, limit: object = None
    ) -> list[SubjectRef]:
        """The entries that touched ``subject``, in commit order, from ``start``."""
        if type(start) is not int or start < 0:
            raise StoreError(f"start must be a non-negative integer, got {start!r}")
        if limit is not None and (type(limit) is not int or limit < 0):
            raise StoreError(f"limit must be a non-negative integer, got {limit!r}")
        prefix = SUBJECT_PREFIX + _subject_digest(subject)
        refs: list[SubjectRef] = []
        for _, raw in self._scan(prefix, prefix + _u64(start)):
            if limit is not None and len(refs) >= limit:
                break
            refs.append(_decode_ref(raw, subject))
        return refs

    # -- the Merkle log --------------------------------------------------------------

    def log_size(self) -> int:
        return self._log().size

    def log_root(self, size: int | None = None) -> bytes:
        return self._log().root(size)

    def leaf(self, index: int) -> bytes:
        return self._log().leaf(index)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self._log().inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self._log().consistency_proof(old, new)

    def log_after(self, leaf_datas: Sequence[bytes]) -> tuple[int, bytes]:
        """(size, root) of the log if ``leaf_datas`` were appended; writes nothing."""
        return self._frontier().root_after(leaf_datas)

    def log_append(self, leaf_datas: Sequence[bytes]) -> LogAppend:
        """The staged append of ``leaf_datas``, writes included, for ``commit_block``."""
        return self._frontier().stage(leaf_datas)

    # -- other components' namespaces ------------------------------------------------

    def get_raw(self, key: bytes) -> bytes | None:
        # The state map reads through here once per trie node: keep the check inline.
        if type(key) is not bytes or not key.startswith(EXTRA_PREFIX):
            raise StoreError(f"extra key {key!r} must be bytes starting with {EXTRA_PREFIX!r}")
        return self._get(key)

    def iter_raw(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        _check_extra({prefix: None})
        return self._scan(prefix, prefix)

    def scan_raw(self, prefix: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """``iter_raw(prefix)`` from the first key at or after ``start``: a page of an
        index that goes on where the last one stopped."""
        _check_extra({prefix: None})
        if not start.startswith(prefix):
            raise StoreError(f"scan start {start!r} is outside prefix {prefix!r}")
        return self._scan(prefix, start)


def _decode_ref(raw: bytes, subject: object) -> SubjectRef:
    obj = _decode(raw, f"history of subject {subject!r}")
    if (
        not isinstance(obj, list)
        or len(obj) != 3
        or not isinstance(obj[0], bytes)
        or len(obj[0]) != 32
        or not all(type(v) is int and v >= 0 for v in obj[1:])
    ):
        raise StoreError(f"corrupt history record of subject {subject!r}")
    return SubjectRef(obj[0], obj[1], obj[2])


def _read_head(get: Getter) -> _Head:
    raw = get(HEAD_KEY)
    if raw is None:
        return _Head(None, None)
    obj = _decode(raw, "head record")
    if (
        not isinstance(obj, list)
        or len(obj) != 2
        or type(obj[0]) is not int
        or obj[0] < 1
        or not isinstance(obj[1], bytes)
    ):
        raise StoreError("corrupt head record")
    height, head_hash = obj
    header_raw = get(HEADER_PREFIX + _u64(height))
    if header_raw is None:
        raise StoreError(f"head header {height} is missing")
    try:
        header = Header.decode(header_raw)
    except BlockFormatError as exc:
        raise StoreError(f"corrupt head header {height}: {exc}") from exc
    if header.hash() != head_hash or header.height != height:
        raise StoreError(f"head record does not match header {height}")
    return _Head(header, head_hash)


def _scanner(source: Any) -> Scanner:
    def scan(prefix: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        with source.iterator(prefix=prefix) as it:
            it.seek(start)
            yield from it

    return scan


class StoreView(_Reader):
    """The store as of one LevelDB snapshot; see ``Store.snapshot``."""

    def __init__(self, snapshot: Any, genesis: Genesis) -> None:
        self._get = snapshot.get
        self._scan = _scanner(snapshot)
        self._genesis = genesis
        self._head = _read_head(self._get)


def _closed_get(key: bytes) -> bytes | None:
    raise StoreError("the store is closed")


def _closed_scan(prefix: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
    raise StoreError("the store is closed")


class Store(_Reader):
    """A ledger's LevelDB database. One process, one handle: LevelDB's lock enforces it."""

    def __init__(self, db: Any, genesis: Genesis, path: Path) -> None:
        self._db = db
        self._path = path
        self._genesis = genesis
        self._get = db.get
        self._scan = _scanner(db)
        self._head = _read_head(self._get)
        self._merkle = MerkleLog.load(self._get)
        expected = 0 if self._head.header is None else self._head.header.log_size
        if self._merkle.size != expected:
            raise StoreError(
                f"log holds {self._merkle.size} leaves, the head header says {expected}"
            )

    @classmethod
    def open(cls, path: str | Path, genesis: Genesis) -> Store:
        """Open or create the store at ``path`` for the network ``genesis``; missing parent
        directories are created (an operator resyncing a node deletes its data dir)."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc.strerror or exc}") from exc
        db = _open_db(path)
        try:
            _claim_for_genesis(db, genesis, path)
            return cls(db, genesis, path)
        except BaseException:
            db.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
        self._get = _closed_get
        self._scan = _closed_scan

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _frontier(self) -> MerkleLog:
        return self._merkle

    def log_root(self, size: int | None = None) -> bytes:
        if size is None or size == self._merkle.size:
            return self._merkle.root()
        return super().log_root(size)

    @contextmanager
    def snapshot(self) -> Iterator[StoreView]:
        """A read-only view of the store as it is now; later commits stay invisible."""
        self._get(HEAD_KEY)  # raises if closed
        snap = self._db.snapshot()
        view: StoreView | None = None
        try:
            view = StoreView(snap, self._genesis)
            yield view
        finally:
            snap.close()
            if view is not None:
                # A view kept past its block must not read a released snapshot.
                view._get = _closed_get
                view._scan = _closed_scan

    # -- writes ----------------------------------------------------------------------

    def commit_block(
        self,
        block: Block,
        commit: Commit,
        subjects: Sequence[Sequence[str]],
        extra: Mapping[bytes, bytes | None] | None = None,
        *,
        log: LogAppend | None = None,
        digests: Sequence[Sequence[bytes]] | None = None,
    ) -> None:
        """Append ``block`` with its ``commit`` in one synced batch, or raise StoreError
        and write nothing. ``subjects[i]`` are the subjects ``block.entries[i]`` touched.

        ``log`` and ``digests`` are what block staging (``ledger.chain.stage``) already
        computed: the block's Merkle append (``log_append``) and each entry's distinct
        subjects' SHA-256 digests (``ledger.history.subject_key``, which enforces the same
        name rules as this store). Passing them spares hashing every leaf and subject a
        second time; the append is still refused unless it was staged on this log's
        current state, from exactly the block's entries, and gives the header's log.
        """
        extra = {} if extra is None else extra
        header_hash = self._check_block(block, commit, subjects)
        ids = self._check_entries(block)
        if digests is None:
            digests = _subject_digests(subjects)
        elif len(digests) != len(subjects):
            raise StoreError(f"{len(digests)} subject digest lists for {len(subjects)} entries")
        _check_extra(extra)
        staged = self._log_append_for(block, log)
        header = block.header
        height = header.height
        with self._write_batch() as batch:
            batch.put(HEADER_PREFIX + _u64(height), header.encode())
            batch.put(COMMIT_PREFIX + _u64(height), commit.encode())
            self._put_entries(batch, block, ids, digests)
            for key, value in staged.writes:
                batch.put(key, value)
            for key, extra_value in extra.items():
                if extra_value is None:
                    batch.delete(key)
                else:
                    batch.put(key, extra_value)
            batch.put(HEAD_KEY, encode([height, header_hash]))
        self._merkle.adopt(staged)
        self._head = _Head(header, header_hash)

    def _log_append_for(self, block: Block, log: LogAppend | None) -> LogAppend:
        """The append of ``block``'s entries to this log, checked against its header."""
        wires = tuple(e.wire_bytes for e in block.entries)
        if log is None:
            log = self._merkle.stage(wires)
        else:
            self._merkle.check_base(log)
            # Equal tuples of the same objects compare by identity: this costs no hashing.
            if log.leaves != wires:
                raise StoreError("the staged log append does not hold the block's entries")
        header = block.header
        if (log.size, log.root) != (header.log_size, header.log_root):
            raise StoreError(
                f"header says log ({header.log_size}, {header.log_root.hex()}), appending "
                f"the entries gives ({log.size}, {log.root.hex()})"
            )
        return log

    def _check_block(
        self, block: Block, commit: Commit, subjects: Sequence[Sequence[str]]
    ) -> bytes:
        header = block.header
        expected_prev = self._head.hash or ZERO_HASH
        if header.height != self.height + 1:
            raise StoreError(f"block height {header.height}, the store expects {self.height + 1}")
        if header.chain != self._genesis.chain_id:
            raise StoreError(f"block is for chain {header.chain!r}, not {self._genesis.chain_id!r}")
        if header.prev != expected_prev:
            raise StoreError(
                f"block {header.height} links to {header.prev.hex()}, head is {expected_prev.hex()}"
            )
        header_hash = header.hash()
        if commit.height != header.height or commit.block != header_hash:
            raise StoreError(
                f"commit is for height {commit.height} block {commit.block.hex()}, not "
                f"height {header.height} block {header_hash.hex()}"
            )
        if header.entries != len(block.entries):
            raise StoreError(
                f"header counts {header.entries} entries, block has {len(block.entries)}"
            )
        if len(subjects) != len(block.entries):
            raise StoreError(f"{len(subjects)} subject lists for {len(block.entries)} entries")
        return header_hash

    def _check_entries(self, block: Block) -> list[bytes]:
        """The entries' ids, once each is known to be new and within the size limit."""
        limit = self._genesis.params.max_entry_bytes
        ids: dict[bytes, None] = {}
        get = self._get
        for position, entry in enumerate(block.entries):
            if len(entry.wire_bytes) > limit:
                raise StoreError(f"entry {position} exceeds max_entry_bytes {limit}")
            entry_id = entry.id
            if entry_id in ids or get(ENTRY_PREFIX + entry_id) is not None:
                raise StoreError(f"entry {position} ({entry_id.hex()}) is already committed")
            ids[entry_id] = None
        return list(ids)

    def _put_entries(
        self, batch: Any, block: Block, ids: list[bytes], digests: Sequence[Sequence[bytes]]
    ) -> None:
        height = block.header.height
        first = block.header.log_size - block.header.entries
        counts: dict[bytes, int] = {}
        put = batch.put
        # Fixed shapes of non-negative ints and bytes: msgpack's output is canonical. One
        # Packer per block, not msgpack.packb's new Packer per record (most of its cost).
        pack = msgpack.Packer(use_bin_type=True).pack
        for position, (entry_id, entry_digests) in enumerate(zip(ids, digests, strict=True)):
            log_index = first + position
            put(ENTRY_PREFIX + entry_id, pack([height, position, log_index]))
            ref = pack([entry_id, height, log_index])
            for digest in entry_digests:
                seq = counts.get(digest)
                if seq is None:
                    raw = self._get(SUBJECT_COUNT_PREFIX + digest)
                    seq = 0 if raw is None else _decode_count(raw, digest.hex())
                put(SUBJECT_PREFIX + digest + seq.to_bytes(8, "big"), ref)
                counts[digest] = seq + 1
        for digest, count in counts.items():
            put(SUBJECT_COUNT_PREFIX + digest, pack(count))

    @contextmanager
    def _write_batch(self) -> Iterator[Any]:
        """A synced batch; on any failure before the write, nothing reaches the disk."""
        self._get(HEAD_KEY)  # raises if closed
        batch = self._db.write_batch(sync=True)
        try:
            yield batch
        except BaseException:
            batch.clear()
            raise
        try:
            batch.write()
        except plyvel.Error as exc:
            raise StoreError(f"write to {self._path} failed: {exc}") from exc

    def replace_commit(self, height: int, commit: Commit) -> None:
        """Store a different valid quorum for ``height`` (the one the next header fixes)."""
        header = self.get_header(height)
        if header is None:
            raise StoreError(f"no block at height {height!r} (height is {self.height})")
        if commit.height != height or commit.block != header.hash():
            raise StoreError(f"commit is not for block {header.hash().hex()} at height {height}")
        with self._write_batch() as batch:
            batch.put(COMMIT_PREFIX + _u64(height), commit.encode())

    def write_extra(self, items: Mapping[bytes, bytes | None]) -> None:
        """Durably write other components' keys (``x:`` only) outside a block commit."""
        _check_extra(items)
        with self._write_batch() as batch:
            for key, value in items.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)


_BLOCK_CACHE_BYTES = 128 * 1024 * 1024
_WRITE_BUFFER_BYTES = 64 * 1024 * 1024


def _open_db(path: Path) -> Any:
    try:
        # Bloom filters spare a disk read for most absent keys (entry-id duplicate checks,
        # state-map misses); the block cache keeps the upper trie levels in memory.
        return plyvel.DB(
            str(path),
            create_if_missing=True,
            bloom_filter_bits=10,
            lru_cache_size=_BLOCK_CACHE_BYTES,
            # A block rewrites many state-map nodes; a larger memtable lets LevelDB absorb
            # several blocks' overwrites before compacting them.
            write_buffer_size=_WRITE_BUFFER_BYTES,
        )
    except plyvel.IOError as exc:
        message = exc.args[0] if exc.args else b""
        if isinstance(message, bytes) and _LOCK_ERROR.match(message):
            raise StoreInUseError(
                f"store {path} is in use by another process or handle (LevelDB lock held)"
            ) from exc
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(exc)
        raise StoreError(f"cannot open store {path}: {text}") from exc
    except plyvel.Error as failure:
        raise StoreError(f"cannot open store {path}: {failure}") from failure


def _claim_for_genesis(db: Any, genesis: Genesis, path: Path) -> None:
    """Bind a new store to ``genesis``, or check that an existing one was made for it."""
    raw = db.get(GENESIS_KEY)
    if raw is None:
        with db.iterator(include_value=False) as it:
            if next(it, None) is not None:
                raise StoreError(f"{path} holds a LevelDB database that is not a ledger store")
        record = {"chain": genesis.chain_id, "genesis": genesis.hash, "version": STORE_VERSION}
        db.put(GENESIS_KEY, encode(record), sync=True)
        return
    obj = _decode(raw, "genesis record")
    if not isinstance(obj, dict) or set(obj) != {"chain", "genesis", "version"}:
        raise StoreError(f"{path}: corrupt genesis record")
    if obj["version"] != STORE_VERSION:
        raise StoreError(
            f"{path}: store format version {obj['version']!r}, expected {STORE_VERSION}"
        )
    if obj["genesis"] != genesis.hash:
        stored = obj["genesis"].hex() if isinstance(obj["genesis"], bytes) else repr(obj["genesis"])
        raise StoreGenesisMismatch(
            f"store {path} was made for genesis {stored} (chain {obj['chain']!r}), "
            f"not for genesis {genesis.hash_hex} (chain {genesis.chain_id!r})"
        )
