"""The registry of entry kinds: name -> Kind."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from contracts import certificates, shipments
from contracts.errors import Rejection
from contracts.rules import Kind

__all__ = ["KINDS", "kind_of"]

KINDS: Mapping[str, Kind] = MappingProxyType(
    {k.name: k for k in (*certificates.KINDS, *shipments.KINDS)}
)


def kind_of(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        raise Rejection("invalid_body", f"unknown kind {name!r:.80}; known: {', '.join(KINDS)}")
    return kind
