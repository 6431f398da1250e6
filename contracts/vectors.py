"""Conformance vector files (issue 4): strict loading, the vector's genesis, step wires.

A member's private key is the Ed25519 key whose 32 private bytes are SHA-256(UTF-8
``key_seed``). A name that is not a member (an ``author`` or ``sign_with`` used to test
``unknown_author``) signs with the key seeded by the name itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.errors import CODES
from ledger.codec import encode
from ledger.errors import CodecError, GenesisError, LedgerError
from ledger.genesis import Genesis, Member, Params
from ledger.keys import Domain, SigningKey

__all__ = [
    "MAX_VECTOR_BYTES",
    "Step",
    "Vector",
    "VectorError",
    "parse_vector",
    "seed_key",
    "step_wire",
]

MAX_VECTOR_BYTES = 16 * 1024 * 1024
ACCEPT = "accept"
_VECTOR_KEYS = {"description", "chain_id", "params", "members", "steps"}
_MEMBER_KEYS = {"id", "jurisdictions", "roles", "key_seed"}
_ENTRY_KEYS = {"author", "kind", "ts", "body"}
_STEP_OPTIONAL = {"block_time", "chain", "sign_with", "note"}
_REPLAY_KEYS = {"replay", "block_time", "expect", "note"}


class VectorError(LedgerError):
    """A vector file cannot be read or does not follow the vector format."""


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    expect: str  # "accept" or a rejection code
    block_time: int
    entry: Mapping[str, Any] | None  # the unsigned entry; None for a replay
    sign_with: str
    replay: int | None


@dataclass(frozen=True, slots=True)
class Vector:
    path: str
    description: str
    genesis: Genesis
    seeds: Mapping[str, str]  # member id -> key_seed
    steps: tuple[Step, ...]


def _no_float(text: str) -> object:
    raise VectorError(f"number {text} is not an integer")


def parse_vector(name: str, data: bytes) -> Vector:
    """Parse a vector file's bytes; ``name`` labels it in messages and mismatches."""
    if len(data) > MAX_VECTOR_BYTES:
        raise VectorError(f"{name}: larger than {MAX_VECTOR_BYTES} bytes")
    try:
        doc = json.loads(data, parse_float=_no_float, parse_constant=_no_float)
        return _parse(name, doc)
    except VectorError as exc:
        raise VectorError(f"{name}: {exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise VectorError(f"{name}: not valid JSON: {exc}") from exc
    except RecursionError as exc:  # CPython's parser recurses once per nesting level
        raise VectorError(f"{name}: not valid JSON: nested too deeply") from exc


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise VectorError(message)


def _parse(path: str, doc: object) -> Vector:
    _require(isinstance(doc, dict), "a vector must be a JSON object")
    assert isinstance(doc, dict)
    unknown = set(doc) - _VECTOR_KEYS
    _require(not unknown, f"unknown field(s) {sorted(unknown)}")
    missing = _VECTOR_KEYS - {"params"} - set(doc)
    _require(not missing, f"missing field(s) {sorted(missing)}")
    _require(isinstance(doc["description"], str), "description must be a string")
    _require(isinstance(doc["chain_id"], str), "chain_id must be a string")
    raw_steps = doc["steps"]
    _require(isinstance(raw_steps, list) and bool(raw_steps), "steps must be a non-empty list")
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        try:
            steps.append(_parse_step(i, raw, doc["chain_id"], steps))
        except VectorError as exc:
            raise VectorError(f"steps[{i}]: {exc}") from exc
    members, seeds = _parse_members(doc["members"])
    first_ts = next((s.entry["ts"] for s in steps if s.entry and type(s.entry["ts"]) is int), 0)
    try:
        params = Params.from_json(doc.get("params"))
        genesis = Genesis.build(doc["chain_id"], max(0, first_ts), members, params)
    except GenesisError as exc:
        raise VectorError(str(exc)) from exc
    return Vector(path, doc["description"], genesis, seeds, tuple(steps))


def _parse_members(raw: object) -> tuple[list[Member], dict[str, str]]:
    _require(isinstance(raw, list) and bool(raw), "members must be a non-empty list")
    assert isinstance(raw, list)
    members, seeds = [], {}
    for i, m in enumerate(raw):
        _require(
            isinstance(m, dict) and set(m) == _MEMBER_KEYS,
            f"members[{i}] must have exactly {sorted(_MEMBER_KEYS)}",
        )
        _require(isinstance(m["id"], str), f"members[{i}].id must be a string")
        _require(isinstance(m["key_seed"], str), f"members[{i}].key_seed must be a string")
        for name in ("jurisdictions", "roles"):
            value = m[name]
            _require(
                isinstance(value, list) and all(isinstance(x, str) for x in value),
                f"members[{i}].{name} must be a list of strings",
            )
        seeds[m["id"]] = m["key_seed"]
        members.append(
            Member(
                id=m["id"],
                name=m["id"],
                jurisdictions=tuple(m["jurisdictions"]),
                roles=frozenset(m["roles"]),
                public_key=seed_key(m["key_seed"]).public_key,
            )
        )
    return members, seeds


def seed_key(seed: str) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(seed.encode()).digest())


def _parse_expect(raw: object) -> str:
    if raw == ACCEPT:
        return ACCEPT
    _require(
        isinstance(raw, dict) and set(raw) == {"reject"} and raw["reject"] in CODES,
        f'expect must be "accept" or {{"reject": <one of {", ".join(CODES)}>}}',
    )
    assert isinstance(raw, dict)
    return str(raw["reject"])


def _block_time(raw: dict[str, Any], default: object) -> int:
    value = raw.get("block_time", default)
    _require(
        type(value) is int and 0 <= value < 2**63,
        "block_time must be a non-negative integer (needed when ts is not one)",
    )
    assert isinstance(value, int)
    return value


def _parse_step(i: int, raw: object, chain_id: str, earlier: list[Step]) -> Step:
    _require(isinstance(raw, dict), "a step must be a JSON object")
    assert isinstance(raw, dict)
    _require("expect" in raw, "missing expect")
    expect = _parse_expect(raw["expect"])
    if "replay" in raw:
        unknown = set(raw) - _REPLAY_KEYS
        _require(
            not unknown, f"a replay step takes only {sorted(_REPLAY_KEYS)}, not {sorted(unknown)}"
        )
        ref = raw["replay"]
        _require(type(ref) is int and 0 <= ref < i, "replay must be the index of an earlier step")
        target = earlier[ref]
        original_ts = target.entry["ts"] if target.entry else target.block_time
        return Step(i, expect, _block_time(raw, original_ts), None, "", ref)
    unknown = set(raw) - _ENTRY_KEYS - _STEP_OPTIONAL - {"expect"}
    _require(not unknown, f"unknown field(s) {sorted(unknown)}")
    missing = _ENTRY_KEYS - set(raw)
    _require(not missing, f"missing field(s) {sorted(missing)}")
    entry = {k: raw[k] for k in _ENTRY_KEYS}
    entry["chain"] = raw.get("chain", chain_id)
    author = raw["author"]
    signer = raw.get("sign_with", author if isinstance(author, str) else "")
    _require(isinstance(signer, str), "sign_with (or author) must be a string")
    try:
        encode(entry)
    except CodecError as exc:
        raise VectorError(f"entry cannot be encoded: {exc}") from exc
    return Step(i, expect, _block_time(raw, raw["ts"]), entry, signer, None)


def step_wire(vector: Vector, step: Step, wires: list[bytes]) -> bytes:
    """The wire bytes a step submits: its entry signed by ``sign_with``, or a replay.

    The wire is built from the raw entry map, not through ``ledger.entry``, so a vector
    can submit a malformed entry and the executor's decoding is what judges it.
    """
    if step.replay is not None:
        return wires[step.replay]
    assert step.entry is not None
    data = encode(step.entry)
    chain = step.entry["chain"] if isinstance(step.entry["chain"], str) else ""
    key = seed_key(vector.seeds.get(step.sign_with, step.sign_with))
    return encode({"entry": step.entry, "sig": key.sign(Domain.ENTRY, chain, data)})
