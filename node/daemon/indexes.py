"""Indexes for search (``node.daemon.search``): certificates and shipments by issuer,
holder, status, port and date.

The indexes are derived data: every key is a function of the certificate and shipment
records in the state map (``x:contract/cert/…``, ``x:contract/shipment/…``), nothing
else. ``index_writes`` turns a block's state writes into index writes, and the block
maker adds them to the block's own batch, so an index is never ahead of or behind the
chain, kill -9 included. They are not part of the state root: a node may drop and
rebuild them (``ensure_indexes`` does at start-up, from the records, when the version
key is missing or older, which is what a store written before this module sees).

Key layout (under ``x:index/``; values are empty)::

    x:index/version                                  INDEX_VERSION (u8)
    x:index/<set>/<facet>/<len u16><value utf-8><time u64><id>

``set`` is ``cert`` or ``ship``; ``time`` is the record's ``issued_at`` or
``declared_at`` (ms, never changes), so every facet lists in time order and a page
starts with a seek. Facets: ``all`` (value empty) and, for certificates, ``issuer``,
``holder``, ``status``, ``type``; for shipments ``declared_by``, ``status``,
``origin_port``, ``destination_port`` (the port of arrival), ``consignee_country``. A
record's change of status (or of holder, by amendment) deletes its old key and puts the
new one in the same batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from contracts.state import CERT_PREFIX, SHIPMENT_PREFIX, Record
from ledger.store import Store

__all__ = [
    "CERTS",
    "INDEX_PREFIX",
    "SHIPMENTS",
    "IndexedSet",
    "ensure_indexes",
    "facet_prefix",
    "index_writes",
]

INDEX_PREFIX = b"x:index/"
VERSION_KEY = INDEX_PREFIX + b"version"
INDEX_VERSION = 1
REBUILD_BATCH = 10_000


@dataclass(frozen=True)
class IndexedSet:
    name: bytes  # in the key
    state_prefix: bytes
    time_field: str
    id_name: str
    facets: tuple[str, ...]


CERTS = IndexedSet(
    b"cert", CERT_PREFIX, "issued_at", "cert_id", ("issuer", "holder", "status", "type")
)
SHIPMENTS = IndexedSet(
    b"ship",
    SHIPMENT_PREFIX,
    "declared_at",
    "ucr",
    ("declared_by", "status", "origin_port", "destination_port", "consignee_country"),
)
_SETS = (CERTS, SHIPMENTS)


_PREFIXES: dict[tuple[bytes, str, str], bytes] = {}
_MAX_CACHED = 100_000


def facet_prefix(kind: IndexedSet, facet: str, value: str) -> bytes:
    # Statuses, members, ports and holders repeat across records: built once each.
    cached = _PREFIXES.get((kind.name, facet, value))
    if cached is None:
        raw = value.encode()
        cached = INDEX_PREFIX + kind.name + b"/" + facet.encode() + b"/"
        cached += len(raw).to_bytes(2, "big") + raw
        if len(_PREFIXES) >= _MAX_CACHED:
            _PREFIXES.clear()
        _PREFIXES[(kind.name, facet, value)] = cached
    return cached


def _keys(kind: IndexedSet, item_id: bytes, record: Record) -> set[bytes]:
    fields = record.to_json()
    tail = int(fields[kind.time_field]).to_bytes(8, "big") + item_id
    keys = {facet_prefix(kind, "all", "") + tail}
    for facet in kind.facets:
        value = fields.get(facet)
        if isinstance(value, str):
            keys.add(facet_prefix(kind, facet, value) + tail)
    return keys


def _set_of(key: bytes) -> IndexedSet | None:
    for kind in _SETS:
        if key.startswith(kind.state_prefix):
            return kind
    return None


class _Reader(Protocol):
    def get_raw(self, key: bytes) -> bytes | None: ...


def index_writes(old: _Reader, writes: Mapping[bytes, bytes | None]) -> dict[bytes, bytes | None]:
    """The index keys a block's state ``writes`` put and delete; ``old`` is the store
    before the block (anything with ``get_raw``)."""
    out: dict[bytes, bytes | None] = {}
    for key, value in writes.items():
        kind = _set_of(key)
        if kind is None:
            continue
        item_id = key[len(kind.state_prefix) :]
        before = old.get_raw(key)
        if before == value:
            continue
        gone = _keys(kind, item_id, Record.decode(before)) if before is not None else set()
        now = _keys(kind, item_id, Record.decode(value)) if value is not None else set()
        for stale in gone - now:
            out[stale] = None
        for fresh in now - gone:
            out[fresh] = b""
    return out


def ensure_indexes(store: Store) -> int:
    """Build the indexes from the state map unless they are current; the number of
    records indexed (0 when nothing had to be done)."""
    raw = store.get_raw(VERSION_KEY)
    if raw is not None and raw == bytes([INDEX_VERSION]):
        return 0
    stale = [key for key, _ in store.iter_raw(INDEX_PREFIX)]
    for start in range(0, len(stale), REBUILD_BATCH):
        store.write_extra(dict.fromkeys(stale[start : start + REBUILD_BATCH]))
    count = 0
    batch: dict[bytes, bytes | None] = {}
    for kind in _SETS:
        for key, value in store.iter_raw(kind.state_prefix):
            for index_key in _keys(kind, key[len(kind.state_prefix) :], Record.decode(value)):
                batch[index_key] = b""
            count += 1
            if len(batch) >= REBUILD_BATCH:
                store.write_extra(batch)
                batch = {}
    # The version goes last: a rebuild cut short is redone at the next start.
    batch[VERSION_KEY] = bytes([INDEX_VERSION])
    store.write_extra(batch)
    return count
