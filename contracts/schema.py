"""Body shapes (common rule 7): exact field sets, types, lengths; ``invalid_body`` otherwise.

A body is checked against a ``Shape`` (its ``Field``s): every key must be a declared field, every
required field must be present, and each value must pass its field's check. Checks here
look at shape only; identifier syntax is rule 8 (``contracts.identifiers``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.errors import Rejection

__all__ = [
    "CERT_ID",
    "MAX_TS",
    "Check",
    "Field",
    "Shape",
    "invalid",
    "list_of",
    "map_of",
    "one_of",
    "pattern",
    "sha256_hex",
    "string",
    "text",
    "timestamp",
]

Check = Callable[[str, object], None]

MAX_TS = 2**63 - 1
CERT_ID = re.compile(r"[A-Z0-9][A-Z0-9./-]{2,63}")
# C0, DEL and C1: Unicode's control characters (general category Cc).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Stands for a field a body lacks; no decoded value is this object.
_ABSENT: Any = object()


def invalid(field: str, message: str) -> Rejection:
    return Rejection("invalid_body", f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    check: Check
    required: bool = True


class Shape:
    """A map's exact field set, in the order its fields are checked."""

    __slots__ = ("_top", "fields", "names")

    def __init__(self, *fields: Field) -> None:
        self.fields = fields
        self.names = frozenset(f.name for f in fields)
        # Every entry's body is checked at "body": its fields' paths are built once here
        # rather than one f-string per field per entry.
        self._top = self._specs("body")

    def _specs(self, where: str) -> tuple[tuple[str, Check, bool, str], ...]:
        return tuple((f.name, f.check, f.required, f"{where}.{f.name}") for f in self.fields)

    def check(self, body: Mapping[str, Any], where: str = "body") -> None:
        """Exactly the declared fields, each passing its check."""
        if not self.names.issuperset(body):
            unknown = sorted(k for k in body if k not in self.names)
            raise invalid(f"{where}.{unknown[0]}", "unknown field")
        for name, check, required, path in self._top if where == "body" else self._specs(where):
            value = body.get(name, _ABSENT)
            if value is not _ABSENT:
                check(path, value)
            elif required:
                raise invalid(path, "missing")


def text(max_len: int) -> Check:
    """1..max_len characters, no control characters."""

    def check(field: str, value: object) -> None:
        if not isinstance(value, str):
            raise invalid(field, f"must be a string, not {type(value).__name__}")
        if not 1 <= len(value) <= max_len:
            raise invalid(field, f"must be 1..{max_len} characters, got {len(value)}")
        if _CONTROL.search(value):
            raise invalid(field, "must not contain control characters")

    return check


def string(field: str, value: object) -> None:
    """A string whose content rule 8 judges (an identifier)."""
    if not isinstance(value, str):
        raise invalid(field, f"must be a string, not {type(value).__name__}")


def pattern(regex: re.Pattern[str], what: str) -> Check:
    def check(field: str, value: object) -> None:
        string(field, value)
        assert isinstance(value, str)
        if regex.fullmatch(value) is None:
            raise invalid(field, f"{value!r:.80} is not {what} ({regex.pattern})")

    return check


def one_of(*values: str) -> Check:
    allowed = frozenset(values)

    def check(field: str, value: object) -> None:
        if value not in allowed:
            raise invalid(field, f"{value!r:.80} is not one of {', '.join(values)}")

    return check


def timestamp(field: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_TS:
        raise invalid(field, "must be an integer number of ms in 0..2**63-1")


def sha256_hex(field: str, value: object) -> None:
    if not isinstance(value, str) or _SHA256_HEX.fullmatch(value) is None:
        raise invalid(field, "must be 64 lowercase hex characters (a SHA-256 digest)")


def list_of(item: Check, low: int, high: int) -> Check:
    """A list of ``low``..``high`` distinct items, each passing ``item``."""

    def check(field: str, value: object) -> None:
        if not isinstance(value, list):
            raise invalid(field, f"must be a list, not {type(value).__name__}")
        if not low <= len(value) <= high:
            raise invalid(field, f"must hold {low}..{high} items, got {len(value)}")
        for i, x in enumerate(value):
            item(f"{field}[{i}]", x)
        # Items are checked as strings first, so they are hashable here.
        if len(set(value)) != len(value):
            raise invalid(field, "items must be distinct")

    return check


def map_of(shape: Shape, min_fields: int = 0) -> Check:
    def check(field: str, value: object) -> None:
        if not isinstance(value, dict):
            raise invalid(field, f"must be a map, not {type(value).__name__}")
        if len(value) < min_fields:
            raise invalid(field, f"must hold at least {min_fields} field(s)")
        shape.check(value, field)

    return check
