"""The genesis document (DESIGN §4): members, roles, validator set and parameters.

The genesis hash is SHA-256 of the canonical encoding of the document as parsed, so any
edit to the file, even to a member's display name, makes a different network.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycountry

from ledger.codec import encode
from ledger.errors import CodecError, GenesisError, SignatureError
from ledger.keys import VerifyKey

__all__ = ["ROLES", "Genesis", "Member", "Params", "ValidatorSet", "is_country"]

ROLES = frozenset({"validator", "issuer", "customs"})
MEMBER_ID = re.compile(r"^[A-Z0-9-]{2,16}$")
CHAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_GENESIS_BYTES = 1024 * 1024
MAX_MEMBERS = 256
MAX_NAME = 128
MAX_ENDPOINTS = 8
MAX_ENDPOINT = 256


def is_country(code: object) -> bool:
    """True for an assigned ISO 3166-1 alpha-2 code."""
    return (
        isinstance(code, str)
        and len(code) == 2
        and code.isascii()
        and code.isupper()
        and pycountry.countries.get(alpha_2=code) is not None
    )


# (lowest, highest) accepted for each parameter: bounds keep a typo from making a
# network that cannot make progress or that any single entry could exhaust.
PARAM_LIMITS: dict[str, tuple[int, int]] = {
    "block_interval_ms": (1, 3_600_000),
    "max_block_entries": (1, 100_000),
    "max_entry_bytes": (256, 1_048_576),
    "entry_window_ms": (1_000, 86_400_000),
    # At most an hour: the heartbeat is what keeps a verifier's --max-age check passable.
    "empty_block_interval_ms": (1, 3_600_000),
}
# The parameters DESIGN §4 lists, which every genesis document states; the others are
# written only when they differ from their defaults, so a document that leaves them out
# stays what DESIGN describes (docs/protocol.md).
CORE_PARAMS = ("block_interval_ms", "max_block_entries", "max_entry_bytes", "entry_window_ms")


@dataclass(frozen=True, slots=True)
class Params:
    block_interval_ms: int = 500
    max_block_entries: int = 5000
    max_entry_bytes: int = 16384
    entry_window_ms: int = 600_000
    # With nothing pending, validators hold a height's round 0 this long after the last
    # block's time: an idle network makes one heartbeat block a minute, not two a second.
    empty_block_interval_ms: int = 60_000

    @classmethod
    def from_json(cls, obj: object) -> Params:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise GenesisError("params", "must be an object")
        values: dict[str, int] = {}
        for name, value in obj.items():
            if name not in PARAM_LIMITS:
                raise GenesisError(f"params.{name}", "unknown parameter")
            low, high = PARAM_LIMITS[name]
            if type(value) is not int or not low <= value <= high:
                raise GenesisError(f"params.{name}", f"must be an integer in {low}..{high}")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    name: str
    jurisdictions: tuple[str, ...]
    roles: frozenset[str]
    public_key: VerifyKey
    endpoints: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "jurisdictions": list(self.jurisdictions),
            "roles": sorted(self.roles),
            "public_key": self.public_key.hex,
            "endpoints": list(self.endpoints),
        }


@dataclass(frozen=True)
class ValidatorSet:
    """Validators ordered by id; tolerates f = (n-1)//3 faults; quorum > 2n/3."""

    members: tuple[Member, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.members, key=lambda m: m.id))
        if not ordered:
            raise GenesisError("members", "at least one member must have role 'validator'")
        if len({m.id for m in ordered}) != len(ordered):
            raise GenesisError("members", "validator ids repeat")
        object.__setattr__(self, "members", ordered)
        object.__setattr__(self, "_index", {m.id: i for i, m in enumerate(ordered)})

    @classmethod
    def of(cls, keys: Iterable[tuple[str, VerifyKey]]) -> ValidatorSet:
        """A validator set from bare (id, key) pairs, for tests and the simulator."""
        return cls(
            tuple(
                Member(id=i, name=i, jurisdictions=(), roles=frozenset({"validator"}), public_key=k)
                for i, k in keys
            )
        )

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        return 2 * self.n // 3 + 1

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.members)

    def index_of(self, member_id: str) -> int | None:
        return self._index.get(member_id)

    def key_of(self, member_id: str) -> VerifyKey | None:
        i = self._index.get(member_id)
        return None if i is None else self.members[i].public_key

    def proposer(self, height: int, round_: int) -> str:
        return self.members[(height + round_) % self.n].id

    def to_obj(self) -> list[dict[str, object]]:
        return [{"id": m.id, "public_key": m.public_key.raw} for m in self.members]

    def hash(self) -> bytes:
        return hashlib.sha256(encode(self.to_obj())).digest()


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time: int
    params: Params
    members: tuple[Member, ...]
    hash: bytes
    document: Mapping[str, Any] = field(repr=False, compare=False)
    validators: ValidatorSet = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {m.id: m for m in self.members})
        object.__setattr__(
            self,
            "validators",
            ValidatorSet(tuple(m for m in self.members if "validator" in m.roles)),
        )

    def member(self, member_id: str) -> Member | None:
        return self._by_id.get(member_id)

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()

    @classmethod
    def from_json_bytes(cls, data: bytes) -> Genesis:
        try:
            doc = json.loads(data, parse_float=_no_float, parse_constant=_no_float)
        except GenesisError:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            raise GenesisError("file", f"not valid JSON: {exc}") from exc
        except RecursionError as too_deep:  # CPython's parser recurses once per nesting level
            raise GenesisError("file", "not valid JSON: nested too deeply") from too_deep
        return cls.from_document(doc)

    @classmethod
    def from_document(cls, doc: object) -> Genesis:
        if not isinstance(doc, dict):
            raise GenesisError("document", "must be a JSON object")
        unknown = set(doc) - {"chain_id", "genesis_time", "params", "members"}
        if unknown:
            raise GenesisError(sorted(unknown)[0], "unknown field")
        chain_id = doc.get("chain_id")
        if not isinstance(chain_id, str) or not CHAIN_ID.match(chain_id):
            raise GenesisError("chain_id", f"must match {CHAIN_ID.pattern}")
        genesis_time = doc.get("genesis_time")
        if type(genesis_time) is not int or not 0 <= genesis_time < 2**63:
            raise GenesisError("genesis_time", "must be a non-negative integer (ms)")
        params = Params.from_json(doc.get("params"))
        members = _parse_members(doc.get("members"))
        try:
            digest = hashlib.sha256(encode(doc)).digest()
        except CodecError as exc:
            raise GenesisError("document", f"cannot be encoded canonically: {exc}") from exc
        return cls(chain_id, genesis_time, params, members, digest, doc)

    @classmethod
    def build(
        cls,
        chain_id: str,
        genesis_time: int,
        members: Sequence[Member],
        params: Params | None = None,
    ) -> Genesis:
        """A validated genesis from parts (used by `customs-node genesis` and tests)."""
        doc: dict[str, Any] = {
            "chain_id": chain_id,
            "genesis_time": genesis_time,
            "params": _params_json(params or Params()),
            "members": [m.to_json() for m in members],
        }
        return cls.from_document(doc)

    def to_json_bytes(self) -> bytes:
        return (json.dumps(self.document, indent=2, ensure_ascii=False) + "\n").encode()


def _params_json(params: Params) -> dict[str, int]:
    default = Params()
    return {
        name: getattr(params, name)
        for name in PARAM_LIMITS
        if name in CORE_PARAMS or getattr(params, name) != getattr(default, name)
    }


def _no_float(text: str) -> object:
    raise GenesisError("document", f"number {text} is not an integer")


def _parse_members(raw: object) -> tuple[Member, ...]:
    if not isinstance(raw, list) or not raw:
        raise GenesisError("members", "must be a non-empty list")
    if len(raw) > MAX_MEMBERS:
        raise GenesisError("members", f"at most {MAX_MEMBERS} members")
    members = tuple(_parse_member(i, item) for i, item in enumerate(raw))
    seen: set[str] = set()
    keys: set[bytes] = set()
    for i, m in enumerate(members):
        if m.id in seen:
            raise GenesisError(f"members[{i}].id", f"{m.id!r} appears twice")
        if m.public_key.raw in keys:
            raise GenesisError(f"members[{i}].public_key", "key is shared with another member")
        seen.add(m.id)
        keys.add(m.public_key.raw)
    if not any("validator" in m.roles for m in members):
        raise GenesisError("members", "at least one member must have role 'validator'")
    return members


def _parse_member(i: int, raw: object) -> Member:
    where = f"members[{i}]"
    if not isinstance(raw, dict):
        raise GenesisError(where, "must be an object")
    required = {"id", "name", "jurisdictions", "roles", "public_key"}
    missing = required - set(raw)
    if missing:
        raise GenesisError(f"{where}.{sorted(missing)[0]}", "missing")
    unknown = set(raw) - required - {"endpoints"}
    if unknown:
        raise GenesisError(f"{where}.{sorted(unknown)[0]}", "unknown field")
    member_id = raw["id"]
    if not isinstance(member_id, str) or not MEMBER_ID.match(member_id):
        raise GenesisError(f"{where}.id", f"must match {MEMBER_ID.pattern}")
    name = raw["name"]
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise GenesisError(f"{where}.name", f"must be 1..{MAX_NAME} printable characters")
    jurisdictions = _string_list(raw["jurisdictions"], f"{where}.jurisdictions", 1, 64)
    for j, code in enumerate(jurisdictions):
        if not is_country(code):
            raise GenesisError(f"{where}.jurisdictions[{j}]", f"{code!r} is not ISO 3166-1 alpha-2")
    roles = _string_list(raw["roles"], f"{where}.roles", 1, len(ROLES))
    for j, role in enumerate(roles):
        if role not in ROLES:
            raise GenesisError(f"{where}.roles[{j}]", f"{role!r} is not one of {sorted(ROLES)}")
    key_hex = raw["public_key"]
    if not isinstance(key_hex, str):
        raise GenesisError(f"{where}.public_key", "must be 64 lowercase hex characters")
    try:
        key = VerifyKey.from_hex(key_hex)
    except SignatureError as exc:
        raise GenesisError(f"{where}.public_key", str(exc)) from exc
    endpoints = _string_list(raw.get("endpoints", []), f"{where}.endpoints", 0, MAX_ENDPOINTS)
    for j, url in enumerate(endpoints):
        if not url.startswith(("http://", "https://")) or len(url) > MAX_ENDPOINT:
            raise GenesisError(f"{where}.endpoints[{j}]", "must be an http(s) URL")
    return Member(member_id, name, tuple(jurisdictions), frozenset(roles), key, tuple(endpoints))


def _string_list(raw: object, where: str, low: int, high: int) -> list[str]:
    if not isinstance(raw, list) or not low <= len(raw) <= high:
        raise GenesisError(where, f"must be a list of {low}..{high} strings")
    if not all(isinstance(x, str) for x in raw):
        raise GenesisError(where, "must hold strings only")
    if len(set(raw)) != len(raw):
        raise GenesisError(where, "holds a repeated value")
    return list(raw)
