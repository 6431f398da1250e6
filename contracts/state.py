"""The contracts' slice of the state: keys under ``x:contract/``, records, overlays.

    x:contract/cert/<cert_id>     -> encode(certificate record)
    x:contract/shipment/<ucr>     -> encode(shipment record)

Records are canonical MessagePack maps (``ledger.codec``) so every node writes the same
bytes. A record is a small head (status, version and what the rules read on every
event) plus ``body``: the rarely changing fields as their own canonical bytes, so a
status change decodes and re-encodes only the head. Rules read the state only through
``StateReader``; the executor stacks an ``Overlay`` on it so later entries of a block see
the writes of earlier ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgpack

from ledger.codec import encode

__all__ = [
    "CERT_PREFIX",
    "PREFIX",
    "SHIPMENT_PREFIX",
    "LedgerReader",
    "LedgerState",
    "MemoryState",
    "Overlay",
    "Record",
    "StateReader",
    "Writes",
    "cert_key",
    "certificate",
    "load",
    "shipment",
    "shipment_key",
]

PREFIX = b"x:contract/"
CERT_PREFIX = PREFIX + b"cert/"
SHIPMENT_PREFIX = PREFIX + b"shipment/"

Writes = dict[bytes, bytes | None]


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def entry_committed(self, entry_id: bytes) -> bool: ...


class LedgerReader(Protocol):
    """What a ledger store and each of its snapshots answer (``Store``, ``StoreView``)."""

    def get_raw(self, key: bytes) -> bytes | None: ...

    def has_entry(self, entry_id: bytes) -> bool: ...


class LedgerState:
    """The contracts' state reader over a ledger store or one snapshot of it: the one
    adapter the block maker, the conformance runner, tests and benchmarks share."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: LedgerReader) -> None:
        self._ledger = ledger

    def get(self, key: bytes) -> bytes | None:
        return self._ledger.get_raw(key)

    def entry_committed(self, entry_id: bytes) -> bool:
        return self._ledger.has_entry(entry_id)


def cert_key(cert_id: str) -> bytes:
    return CERT_PREFIX + cert_id.encode()


def shipment_key(ucr: str) -> bytes:
    return SHIPMENT_PREFIX + ucr.encode()


class Record:
    """A head map plus a lazily decoded body map; reads look in the head, then the body."""

    __slots__ = ("_body", "_raw", "head")

    def __init__(
        self,
        head: dict[str, Any],
        body: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> None:
        assert (body is None) != (raw is None)
        self.head = head
        self._body = body
        self._raw = raw

    @classmethod
    def decode(cls, data: bytes) -> Record:
        # Records are trusted bytes, so a plain unpack replaces the strict canonical
        # decode: only ``Record.encode`` (through the canonical ``ledger.codec.encode``)
        # writes under x:contract/, and the state is never copied from a peer (a syncing
        # node re-executes blocks), so the strict decode could only re-prove what that
        # encode guaranteed. The structural asserts stay: a bad record is corruption.
        head = msgpack.unpackb(data, raw=False)
        assert type(head) is dict and type(head.get("body")) is bytes, "bad record"
        raw = head.pop("body")
        return cls(head, raw=raw)

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            assert self._raw is not None
            # Written by ``encode`` below, like the head: trusted (see ``decode``).
            body = msgpack.unpackb(self._raw, raw=False)
            assert isinstance(body, dict), "bad record body"
            self._body = body
        return self._body

    def __getitem__(self, name: str) -> Any:
        if name in self.head:
            return self.head[name]
        return self.body[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.head[name] = value

    def pop(self, name: str, default: Any = None) -> Any:
        return self.head.pop(name, default)

    def update_body(self, changes: Mapping[str, Any]) -> None:
        self._body = {**self.body, **changes}
        self._raw = None

    def encode(self) -> bytes:
        # Top-level keys in canonical order (nested values come from canonical entries
        # already), so ``encode`` takes its quick path instead of rebuilding the record.
        if self._raw is None:
            assert self._body is not None
            self._raw = encode(dict(sorted(self._body.items())))
        return encode(dict(sorted({**self.head, "body": self._raw}.items())))

    def to_json(self) -> dict[str, Any]:
        return {**self.body, **self.head}


def load(state: StateReader, key: bytes) -> Record | None:
    raw = state.get(key)
    return None if raw is None else Record.decode(raw)


def certificate(state: StateReader, cert_id: str) -> dict[str, Any] | None:
    """The certificate's current record as a JSON-safe dict, or None when unknown."""
    record = load(state, cert_key(cert_id))
    return None if record is None else {"cert_id": cert_id, **record.to_json()}


def shipment(state: StateReader, ucr: str) -> dict[str, Any] | None:
    """The shipment's current record as a JSON-safe dict, or None when unknown."""
    record = load(state, shipment_key(ucr))
    return None if record is None else {"ucr": ucr, **record.to_json()}


class Overlay:
    """A block's pending writes over a base state (None in ``writes`` = deleted)."""

    __slots__ = ("_base", "_entries", "writes")

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self.writes: Writes = {}
        self._entries: set[bytes] = set()

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._base.get(key)

    def entry_committed(self, entry_id: bytes) -> bool:
        return entry_id in self._entries or self._base.entry_committed(entry_id)

    def apply(self, entry_id: bytes, writes: Mapping[bytes, bytes | None]) -> None:
        self._entries.add(entry_id)
        self.writes.update(writes)


class MemoryState:
    """A dict-backed state: the conformance runner's ledger and the tests' fixture."""

    __slots__ = ("data", "entries")

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.entries: set[bytes] = set()

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def entry_committed(self, entry_id: bytes) -> bool:
        return entry_id in self.entries

    def commit(self, entry_ids: Iterable[bytes], writes: Mapping[bytes, bytes | None]) -> None:
        self.entries.update(entry_ids)
        for key, value in writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
