"""Running a conformance vector: each step as its own block through ``execute_block``.

Pure: the state lives in a ``Sink`` (memory here; the command line's ``--store`` gives a
LevelDB ledger), and each step's block is committed to it before the next step runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts.executor import BlockResult, execute_block
from contracts.state import MemoryState, StateReader
from contracts.vectors import ACCEPT, Vector, step_wire

__all__ = ["MemorySink", "Mismatch", "Sink", "run_vector"]


@dataclass(frozen=True, slots=True)
class Mismatch:
    path: str
    step: int
    expected: str
    got: str
    message: str

    def line(self) -> str:
        return (
            f"{self.path}: step {self.step}: expected {self.expected}, got {self.got}: "
            f"{self.message}"
        )


class Sink(Protocol):
    """Where executed blocks go: the state they read and their commit."""

    @property
    def state(self) -> StateReader: ...

    def commit(self, block_time: int, wires: Sequence[bytes], result: BlockResult) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    def __init__(self) -> None:
        self.memory = MemoryState()

    @property
    def state(self) -> StateReader:
        return self.memory

    def commit(self, block_time: int, wires: Sequence[bytes], result: BlockResult) -> None:
        self.memory.commit((a.entry.id for a in result.accepted), result.writes)

    def close(self) -> None:
        return None


def _describe(outcome: str) -> str:
    return outcome if outcome == ACCEPT else f"reject {outcome}"


def run_vector(vector: Vector, sink: Sink | None = None) -> tuple[int, list[Mismatch]]:
    """Run every step; return (steps whose expectation was met, mismatches)."""
    sink = sink or MemorySink()
    wires: list[bytes] = []
    passed, mismatches = 0, []
    for step in vector.steps:
        wire = step_wire(vector, step, wires)
        wires.append(wire)
        result = execute_block(sink.state, vector.genesis, step.block_time, [wire])
        if result.accepted:
            got, message = ACCEPT, "accepted"
        else:
            got, message = result.rejected[0].code, result.rejected[0].message
        sink.commit(step.block_time, [wire], result)
        if got == step.expect:
            passed += 1
        else:
            mismatches.append(
                Mismatch(vector.path, step.index, _describe(step.expect), _describe(got), message)
            )
    return passed, mismatches
