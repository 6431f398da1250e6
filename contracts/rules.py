"""What every entry kind declares, and the stateless half of the common rules (7-9).

A ``Kind`` bundles one entry kind's body shape (rule 7), identifier checks (rule 8), the
roles and jurisdictions its author needs (rule 9), the subjects it touches, and ``apply``
which runs the stateful rules 10-13 and returns the state writes. ``apply`` raises before
it builds any write, so a rejected entry changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.errors import Rejection
from contracts.schema import Shape
from contracts.state import StateReader, Writes
from ledger.genesis import Member

__all__ = ["Body", "Context", "Kind", "require_jurisdiction"]

Body = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Context:
    """What ``apply`` may look at: the state, the block's time and the author."""

    state: StateReader
    block_time: int
    author: Member


def _nothing(body: Body) -> None:
    return None


def _anyone(body: Body, author: Member) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    roles: frozenset[str]  # the author needs at least one of these
    fields: Shape
    subjects: Callable[[Body], tuple[str, ...]]
    apply: Callable[[Context, Body], Writes]
    shape: Callable[[Body], None] = _nothing  # rule 7 across fields
    identifiers: Callable[[Body], None] = _nothing  # rule 8
    jurisdiction: Callable[[Body, Member], None] = _anyone  # rule 9, places named

    def check_shape(self, body: Body) -> None:
        """Rule 7."""
        self.fields.check(body)
        self.shape(body)

    def check_static(self, body: Body, author: Member) -> None:
        """Rules 8 and 9 (the part of 9 that needs no state); rule 7 has passed."""
        self.identifiers(body)
        if self.roles.isdisjoint(author.roles):
            raise Rejection(
                "not_permitted",
                f"{self.name} needs role {' or '.join(sorted(self.roles))}; "
                f"{author.id} has {', '.join(sorted(author.roles))}",
            )
        self.jurisdiction(body, author)


def require_jurisdiction(author: Member, country: str, what: str) -> None:
    if country not in author.jurisdictions:
        raise Rejection(
            "not_permitted",
            f"{what} is in {country}, outside {author.id}'s jurisdictions "
            f"({', '.join(author.jurisdictions)})",
        )
