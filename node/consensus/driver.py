"""The one step every host repeats: feed an input, then apply the output in the
documented order (persist, send, apply decisions, arm timers), turning the host's
immediate answers (validity verdicts, values to propose, next heights) into inputs.

The simulator and the node daemon both drive the core through ``drive``, so the order
the simulator proves safe is the order the daemon runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

from node.consensus.core import ConsensusCore
from node.consensus.errors import InputError
from node.consensus.events import (
    Decision,
    Input,
    Output,
    ProposeRequest,
    StartHeight,
    TimeoutRequest,
    ValidityRequest,
    ValidityVerdict,
    ValueToPropose,
)
from node.consensus.messages import Message

__all__ = ["MAX_STEPS_PER_DRIVE", "Host", "drive"]

# Each step can only queue answers to its own requests; a runaway loop is our bug.
MAX_STEPS_PER_DRIVE = 10_000


class Host(Protocol):
    def persist(self, record: bytes) -> None:
        """Make ``record`` durable (fsync) before returning."""

    def send(self, messages: Sequence[Message]) -> None: ...

    def apply(self, decision: Decision) -> StartHeight | None:
        """Store the decided block and its commit; return the next height to start."""

    def arm(self, request: TimeoutRequest) -> None: ...

    def check_validity(self, request: ValidityRequest) -> bool | None:
        """The verdict now, or None to answer later with a ``ValidityVerdict`` input."""

    def value_to_propose(self, request: ProposeRequest) -> bytes | None:
        """A block hash now, or None to answer later with a ``ValueToPropose`` input."""

    def need_blocks(self, up_to: int) -> None: ...

    def report(self, output: Output) -> None:
        """Evidence and dropped-message counters, for metrics and the ledger."""


def drive(core: ConsensusCore, host: Host, event: Input) -> int:
    """Step ``core`` with ``event`` and every input its output leads to; return steps."""
    pending: deque[Input] = deque([event])
    steps = 0
    while pending:
        steps += 1
        if steps > MAX_STEPS_PER_DRIVE:
            raise InputError(f"more than {MAX_STEPS_PER_DRIVE} steps for one input")
        out = core.step(pending.popleft())
        if out.persist is not None:
            host.persist(out.persist)
        if out.send:
            host.send(out.send)
        next_heights = [h for h in map(host.apply, out.decided) if h is not None]
        if not core.decided:
            # A step that decides can also have started a round at that height (a new
            # height replaying buffered votes, a timeout racing a quorum): its timers,
            # checks and proposals are moot once decided, and the host that has just
            # stored the block has no view to build them on.
            _answer_requests(host, out, pending)
        if out.need_blocks_up_to is not None:
            host.need_blocks(out.need_blocks_up_to)
        host.report(out)
        pending.extend(next_heights)
    return steps


def _answer_requests(host: Host, out: Output, pending: deque[Input]) -> None:
    for request in out.timeouts:
        host.arm(request)
    for check in out.validity_checks:
        verdict = host.check_validity(check)
        if verdict is not None:
            pending.append(ValidityVerdict(check.height, check.block, verdict))
    for ask in out.propose_requests:
        block = host.value_to_propose(ask)
        if block is not None:
            pending.append(ValueToPropose(ask.height, ask.round, block))
