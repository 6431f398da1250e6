"""Lifecycles as tables: (status, event) -> next status, one table per subject type.

Anything not in the table is ``invalid_transition``, with an error naming the actor, the
status and the event, and the record is left as it was (the caller writes nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.errors import Rejection

__all__ = ["PREVIOUS", "SAME", "Lifecycle"]

SAME = "=same"  # the event leaves the status unchanged
PREVIOUS = "=previous"  # the status returns to what it was before the current one


@dataclass(frozen=True, slots=True)
class Lifecycle:
    subject: str
    table: Mapping[tuple[str, str], str]

    def next(self, status: str, event: str, actor: str, name: str) -> str:
        """The raw table target for ``event`` in ``status`` (may be SAME or PREVIOUS)."""
        target = self.table.get((status, event))
        if target is None:
            allowed = sorted(s for s, e in self.table if e == event)
            raise Rejection(
                "invalid_transition",
                f"{actor}: {event} is not allowed on {self.subject} {name} in status "
                f"{status!r} (allowed from: {', '.join(allowed)})",
            )
        return target
