"""Signed entries (DESIGN §5): build, sign, identify, strictly decode, JSON conversion.

entry = {"chain", "kind", "author", "ts", "body"}
wire  = {"entry": entry, "sig": 64 bytes}      sig over encode(entry), domain entry
id    = SHA-256(encode(entry))
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.codec import (
    MAX_DEPTH,
    decode,
    decode_vouched,
    encode,
    encode_canonical,
    plain_sorted,
)
from ledger.errors import CodecError, EntryError
from ledger.keys import SIGNATURE_BYTES, Domain, SigningKey, VerifyKey

__all__ = ["Entry", "SignedEntry", "body_is_plain", "decode_wire", "entry_from_json"]

_ENTRY_KEYS = ("author", "body", "chain", "kind", "ts")
_ENTRY_KEY_LIST = list(_ENTRY_KEYS)
_WIRE_KEYS = ["entry", "sig"]
_BODY_SCALARS: frozenset[type] = frozenset({str, int, bool})  # what body_is_plain allows
_MAX_FIELD = 256
_BODY_DEPTH = 2  # wire -> entry -> body: the codec counts depth from the wire's root
# Canonical wire = fixmap(2) "entry" <entry> "sig" bin8(64) <sig>; the entry's own bytes
# are therefore a slice of the wire, which spares a re-encoding on the ingest path.
_WIRE_HEAD = b"\x82\xa5entry"
_WIRE_TAIL_LEN = 4 + 2 + SIGNATURE_BYTES


@dataclass(frozen=True, slots=True)
class Entry:
    chain: str
    kind: str
    author: str
    ts: int
    body: Mapping[str, Any]

    def to_obj(self) -> dict[str, Any]:
        return {
            "author": self.author,
            "body": self.body,
            "chain": self.chain,
            "kind": self.kind,
            "ts": self.ts,
        }

    def encode(self) -> bytes:
        return encode(self.to_obj())

    def sign(self, key: SigningKey) -> SignedEntry:
        _check_entry_fields(self.to_obj())
        try:
            data = self.encode()
            sig = key.sign(Domain.ENTRY, self.chain, data)
            wire = encode({"entry": self.to_obj(), "sig": sig})
        except CodecError as exc:  # e.g. a map key that is not a str, an integer too large
            raise EntryError("malformed", f"entry.body: {exc}") from exc
        return SignedEntry(self, sig, data, wire)


@dataclass(frozen=True, slots=True)
class SignedEntry:
    """A wire entry; ``entry_bytes`` and ``wire_bytes`` are its canonical encodings."""

    entry: Entry
    sig: bytes
    entry_bytes: bytes
    wire_bytes: bytes
    # Computed once: the id is looked up many times per entry on a node's hot path.
    id: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", hashlib.sha256(self.entry_bytes).digest())

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    def verify(self, key: VerifyKey) -> None:
        """Raise SignatureError unless ``key`` signed this entry for its chain."""
        key.verify(Domain.ENTRY, self.entry.chain, self.entry_bytes, self.sig)

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry.to_obj(), "sig": self.sig.hex()}


def decode_wire(data: bytes, max_entry_bytes: int) -> SignedEntry:
    """Strictly decode wire bytes; raise EntryError(`too_large` | `malformed`)."""
    if len(data) > max_entry_bytes:
        raise EntryError(
            "too_large", f"{len(data)} bytes exceeds max_entry_bytes {max_entry_bytes}"
        )
    if type(data) is bytes and data.startswith(_WIRE_HEAD):
        # The ingest hot path: one walk checks the shape, the types and the key order;
        # anything it does not vouch for takes the checks below for the precise error.
        wire = decode_vouched(data, _is_plain_wire)
        if wire is not None:
            raw = wire["entry"]
            entry = Entry(raw["chain"], raw["kind"], raw["author"], raw["ts"], raw["body"])
            entry_bytes = data[len(_WIRE_HEAD) : len(data) - _WIRE_TAIL_LEN]
            return SignedEntry(entry, wire["sig"], entry_bytes, data)
    return _decode_wire_checked(data, max_entry_bytes)


def _decode_wire_checked(data: bytes, max_entry_bytes: int) -> SignedEntry:
    try:
        obj = decode(data, max_bytes=max_entry_bytes)
    except CodecError as exc:
        raise EntryError("malformed", str(exc)) from exc
    entry, sig = _check_wire(obj)
    if not data.startswith(_WIRE_HEAD):  # unreachable for canonical input; guards the slice
        raise EntryError("malformed", "wire entry is not {entry, sig}")
    entry_bytes = bytes(data[len(_WIRE_HEAD) : len(data) - _WIRE_TAIL_LEN])
    return SignedEntry(entry, sig, entry_bytes, bytes(data))


def entry_from_json(obj: object, max_entry_bytes: int) -> SignedEntry:
    """Convert the JSON form ``{"entry": {...}, "sig": "<hex>"}`` to a wire entry."""
    if not isinstance(obj, dict) or set(obj) != {"entry", "sig"}:
        raise EntryError("malformed", "expected an object with exactly 'entry' and 'sig'")
    sig_hex = obj["sig"]
    if (
        not isinstance(sig_hex, str)
        or len(sig_hex) != 2 * SIGNATURE_BYTES
        or sig_hex != sig_hex.lower()
    ):
        raise EntryError("malformed", "sig must be 128 lowercase hex characters")
    try:
        sig = bytes.fromhex(sig_hex)
    except ValueError as exc:
        raise EntryError("malformed", "sig is not hex") from exc
    try:
        wire, data = encode_canonical({"entry": obj["entry"], "sig": sig})
    except CodecError as unencodable:
        raise EntryError("malformed", str(unencodable)) from unencodable
    # ``wire`` is what decoding ``data`` would give back: when it passes the one-walk
    # check, decode_wire would accept it unchanged, so the entry is built from it.
    if len(data) <= max_entry_bytes and data.startswith(_WIRE_HEAD) and _is_plain_wire(wire):
        raw = wire["entry"]
        entry = Entry(raw["chain"], raw["kind"], raw["author"], raw["ts"], raw["body"])
        entry_bytes = data[len(_WIRE_HEAD) : len(data) - _WIRE_TAIL_LEN]
        return SignedEntry(entry, wire["sig"], entry_bytes, data)
    return decode_wire(data, max_entry_bytes)


def _check_wire(obj: object) -> tuple[Entry, bytes]:
    if not isinstance(obj, dict) or list(obj) != ["entry", "sig"]:
        raise EntryError("malformed", "wire entry must be a map with exactly 'entry' and 'sig'")
    sig = obj["sig"]
    if not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES:
        raise EntryError("malformed", f"sig must be {SIGNATURE_BYTES} bytes")
    return _check_entry_fields(obj["entry"]), sig


def _check_entry_fields(raw: object) -> Entry:
    if not isinstance(raw, dict) or sorted(raw) != list(_ENTRY_KEYS):
        raise EntryError("malformed", f"entry must be a map with exactly {list(_ENTRY_KEYS)}")
    for name in ("chain", "kind", "author"):
        value = raw[name]
        if not isinstance(value, str) or not 1 <= len(value) <= _MAX_FIELD:
            raise EntryError("malformed", f"entry.{name} must be a string of 1..{_MAX_FIELD}")
    ts = raw["ts"]
    if type(ts) is not int or not 0 <= ts < 2**63:
        raise EntryError("malformed", "entry.ts must be a non-negative integer (ms)")
    body = raw["body"]
    if not isinstance(body, dict):
        raise EntryError("malformed", "entry.body must be a map")
    if not body_is_plain(body):
        raise EntryError(
            "malformed",
            "entry.body may hold only str, int, bool, list and map, "
            f"nested at most {MAX_DEPTH - _BODY_DEPTH} deep",
        )
    return Entry(raw["chain"], raw["kind"], raw["author"], ts, body)


def body_is_plain(value: object, depth: int = 0) -> bool:
    """True when ``value`` holds only str, int, bool, list and map (JSON-safe), nested
    no deeper than a body may be in a wire entry (``depth`` counts from the body)."""
    kind = type(value)
    if kind is dict:
        children = value.values()  # type: ignore[attr-defined]
    elif kind is list:
        children = value
    else:
        return kind is str or kind is int or kind is bool
    # The codec's depth rule (plain_sorted's): past MAX_DEPTH only an empty container.
    # Checked here too, so that a deep body from JSON cannot exhaust the Python stack.
    if depth + _BODY_DEPTH >= MAX_DEPTH:
        return not value
    # Scalars are judged inline, one call per container.
    for child in children:
        kind = type(child)
        if kind is str or kind is int or kind is bool:
            continue
        if (kind is dict or kind is list) and body_is_plain(child, depth + 1):
            continue
        return False
    return True


def _is_plain_wire(obj: Any) -> bool:
    """True only for a wire entry that every check of ``_decode_wire_checked`` accepts:
    keys exactly and in canonical order, field types and bounds, a plain sorted body."""
    if type(obj) is not dict or list(obj) != _WIRE_KEYS:
        return False
    sig, raw = obj["sig"], obj["entry"]
    if type(sig) is not bytes or len(sig) != SIGNATURE_BYTES:
        return False
    if type(raw) is not dict or list(raw) != _ENTRY_KEY_LIST:
        return False
    for name in ("chain", "kind", "author"):
        value = raw[name]
        if type(value) is not str or not 1 <= len(value) <= _MAX_FIELD:
            return False
    ts, body = raw["ts"], raw["body"]
    return (
        type(ts) is int
        and 0 <= ts < 2**63
        and type(body) is dict
        and plain_sorted(body, 2, _BODY_SCALARS)
    )
