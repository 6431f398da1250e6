"""Peer frames: one canonical msgpack map per binary WebSocket message.

Each frame is ``{"t": type, ...}`` with exactly the fields its type lists below; anything
else (unknown type, missing or extra field, wrong type, over-long string) is a
FrameError, so a peer can never smuggle unexpected shapes past the transport.

    hello      dialer -> listener   {v, chain, genesis, id, nonce}
    challenge  listener -> dialer   {id, nonce, sig}
    auth       dialer -> listener   {sig}
    ok         listener -> dialer   {}
    msg        either way           {k: kind, p: payload bytes, r: relay?, s: [member ids]}
    height     either way           {h: committed height}
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.codec import decode, encode
from ledger.errors import CodecError
from ledger.genesis import MEMBER_ID
from ledger.keys import SIGNATURE_BYTES
from node.peers.errors import FrameError

__all__ = [
    "HANDSHAKE_FRAME_BYTES",
    "MAX_REACHED",
    "MESSAGE_KINDS",
    "NONCE_BYTES",
    "PROTOCOL_VERSION",
    "RELAYED_KINDS",
    "Auth",
    "Challenge",
    "Frame",
    "Height",
    "Hello",
    "Message",
    "Ok",
    "decode_frame",
    "encode_frame",
]

# 2: a relayed message carries ``s``, the members that already have it or are being sent
# it (sorted, the sender included), so a relay forwards it only to links outside ``s``:
# in a full mesh nothing is relayed at all, yet a line or ring still floods (issue 6).
PROTOCOL_VERSION = 2
MAX_REACHED = 1024
NONCE_BYTES = 32
HASH_BYTES = 32
MAX_CHAIN_ID = 64
# The largest handshake frame (a hello with a 64-character chain id and a 16-character
# member id) is under 200 bytes: until a peer has authenticated, no frame may be larger,
# so a stranger cannot make a node buffer megabytes (issue 18).
HANDSHAKE_FRAME_BYTES = 512
# Kinds relayed hop by hop so members without a direct link still converge.
RELAYED_KINDS = frozenset({"entry", "proposal", "vote", "commit"})
# Point-to-point kinds: a request, its answer, and a peer's own status.
MESSAGE_KINDS = RELAYED_KINDS | {"block_request", "block_response", "status"}


@dataclass(frozen=True, slots=True)
class Hello:
    chain: str
    genesis: bytes
    id: str
    nonce: bytes
    v: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    nonce: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    sig: bytes


@dataclass(frozen=True, slots=True)
class Ok:
    pass


@dataclass(frozen=True, slots=True)
class Message:
    k: str
    p: bytes
    r: bool
    s: tuple[str, ...] = ()  # with ``r``: who already has it or is being sent it


@dataclass(frozen=True, slots=True)
class Height:
    h: int


Frame = Hello | Challenge | Auth | Ok | Message | Height


def _member_id(value: object) -> bool:
    return isinstance(value, str) and MEMBER_ID.match(value) is not None


def _exact_bytes(n: int) -> Callable[[object], bool]:
    return lambda value: isinstance(value, bytes) and len(value) == n


def _chain(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_CHAIN_ID


def _kind(value: object) -> bool:
    return value in MESSAGE_KINDS


def _reached(value: object) -> bool:
    """Member ids in strictly increasing order (a set with one encoding), bounded."""
    if not isinstance(value, list) or len(value) > MAX_REACHED:
        return False
    return all(map(_member_id, value)) and all(a < b for a, b in itertools.pairwise(value))


def _height(value: object) -> bool:
    return type(value) is int and 0 <= value < 2**63


_Check = Callable[[object], bool]
_SCHEMAS: dict[str, tuple[type[Any], Mapping[str, _Check]]] = {
    "hello": (
        Hello,
        {
            "chain": _chain,
            "genesis": _exact_bytes(HASH_BYTES),
            "id": _member_id,
            "nonce": _exact_bytes(NONCE_BYTES),
            "v": lambda value: value == PROTOCOL_VERSION,
        },
    ),
    "challenge": (
        Challenge,
        {
            "id": _member_id,
            "nonce": _exact_bytes(NONCE_BYTES),
            "sig": _exact_bytes(SIGNATURE_BYTES),
        },
    ),
    "auth": (Auth, {"sig": _exact_bytes(SIGNATURE_BYTES)}),
    "ok": (Ok, {}),
    "msg": (
        Message,
        {
            "k": _kind,
            "p": lambda value: isinstance(value, bytes),
            "r": lambda v: type(v) is bool,
            "s": _reached,
        },
    ),
    "height": (Height, {"h": _height}),
}
_TYPE_OF = {cls: name for name, (cls, _) in _SCHEMAS.items()}


def encode_frame(frame: Frame) -> bytes:
    """Canonical bytes of ``frame``; encoding our own frame cannot fail on valid fields."""
    name = _TYPE_OF[type(frame)]
    obj: dict[str, object] = {"t": name}
    for field_name in _SCHEMAS[name][1]:
        obj[field_name] = getattr(frame, field_name)
    return encode(obj)


def decode_frame(data: bytes, max_bytes: int) -> Frame:
    """Strictly decode one frame; raise FrameError naming what is wrong."""
    if len(data) > max_bytes:
        raise FrameError("frame too large", f"{len(data)} bytes > max_frame_bytes {max_bytes}")
    try:
        obj = decode(data, max_bytes=max_bytes)
    except CodecError as exc:
        raise FrameError("malformed frame", str(exc)) from exc
    if not isinstance(obj, dict) or "t" not in obj:
        raise FrameError("malformed frame", "a frame is a map with a 't' type field")
    name = obj.pop("t")
    schema = _SCHEMAS.get(name) if isinstance(name, str) else None
    if schema is None:
        raise FrameError("malformed frame", f"unknown frame type {name!r}")
    cls, checks = schema
    if set(obj) != set(checks):
        raise FrameError("malformed frame", f"{name} needs exactly fields {sorted(checks)}")
    for field_name, check in checks.items():
        if not check(obj[field_name]):
            raise FrameError("malformed frame", f"{name}.{field_name} has a wrong value")
    if name == "msg":
        if obj["s"] and not obj["r"]:
            raise FrameError("malformed frame", "msg.s is for relayed messages only")
        obj["s"] = tuple(obj["s"])
    frame: Frame = cls(**obj)
    return frame
