"""What an operator is told about consensus, quorum and rejected entries: metrics and log
lines, from observations the node feeds in.

Pure logic: nothing here reads a clock or a socket. The consensus host reports each
(height, round) it is at, housekeeping reports how many validators the node hears and
the time (``now``, monotonic seconds), and the chain reports each entry it refuses. The
watchers decide what is worth a line and count it, so their timing is tested with
made-up clocks (tests/test_consensus_watch.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from node.daemon.metrics import NodeMetrics
from node.text import plural

__all__ = [
    "LineBudget",
    "QuorumWatch",
    "RejectionLog",
    "RoundWatch",
    "dir_bytes",
    "more_rejected",
    "round_wording",
]

log = logging.getLogger("customs.consensus")
rejections_log = logging.getLogger("customs.entries")

# Until the node has heard a quorum once, links are still being dialled: a node that
# starts is not "without a quorum" for this long.
START_GRACE_S = 10.0
# Short of a quorum for less than this is a link being replaced, not a lost quorum.
LOST_AFTER_S = 2.0
# While the quorum stays lost, the warning is repeated this often (and no more).
LOST_REPEAT_S = 300.0
# Rejected entries: at most this many lines per window, then one summary line.
REJECTION_LINES = 20
REJECTION_WINDOW_S = 10.0


def round_wording(round_: int) -> str:
    """Why a round past 0 started: ``1 round`` / ``2 rounds`` ended without a decision."""
    return f"{plural(round_, 'round')} without a decision"


def more_rejected(count: int) -> str:
    return f"… and {plural(count, 'more rejected entry', 'more rejected entries')}"


class RoundWatch:
    """Counts each round started past round 0, and warns once per height that went there."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics
        self._height = 0
        self._round = 0
        self._warned_height = 0

    def at(self, height: int, round_: int) -> None:
        if height != self._height:
            self._height, self._round = height, 0
        if round_ <= self._round:
            return
        # A round skipped on the way (a quorum already in a later one) is not started.
        self._round = round_
        self.metrics.rounds_past_zero.inc()
        if self._warned_height != height:
            self._warned_height = height
            log.warning(
                "consensus at height %d went to round %d: %s",
                height,
                round_,
                round_wording(round_),
                extra={"height": height, "round": round_},
            )


class QuorumWatch:
    """Whether the node hears a quorum of validators (itself included, if one).

    ``heard`` each housekeeping tick: the gauge follows it; a quorum missing for
    ``LOST_AFTER_S`` (``START_GRACE_S`` before the first quorum) is lost — one warning,
    repeated every ``LOST_REPEAT_S`` while it lasts — and an info line when it is back.
    """

    def __init__(self, metrics: NodeMetrics, *, quorum: int, validators: int) -> None:
        self.metrics = metrics
        self.quorum = quorum
        self.validators = validators
        self.lost = False
        self._ever = False
        self._started: float | None = None
        self._short_since: float | None = None
        self._warned_at = 0.0
        metrics.validators_quorum.set(quorum)

    def heard(self, count: int, now: float) -> None:
        self.metrics.validators_heard.set(count)
        if self._started is None:
            self._started = now
        if count >= self.quorum:
            self._short_since = None
            self._ever = True
            if self.lost:
                self.lost = False
                self.metrics.quorum_regained.inc()
                log.info(
                    "quorum regained: hears %d of %s, a quorum is %d",
                    count,
                    plural(self.validators, "validator"),
                    self.quorum,
                    extra={"heard": count, "quorum": self.quorum},
                )
            return
        if self._short_since is None:
            self._short_since = now
        if self.lost:
            if now - self._warned_at >= LOST_REPEAT_S:
                self._warn(count, now, "still no quorum")
            return
        wait = LOST_AFTER_S if self._ever else START_GRACE_S
        since = self._short_since if self._ever else self._started
        if now - since >= wait:
            self.lost = True
            self.metrics.quorum_lost.inc()
            self._warn(count, now, "no quorum")

    def _warn(self, count: int, now: float, what: str) -> None:
        self._warned_at = now
        log.warning(
            "%s: hears %d of %s, a quorum is %d; no block can be decided",
            what,
            count,
            plural(self.validators, "validator"),
            self.quorum,
            extra={"heard": count, "quorum": self.quorum},
        )


class LineBudget:
    """At most ``lines`` per window of ``window_s``; what is over is counted for a summary."""

    def __init__(self, lines: int, window_s: float) -> None:
        self.lines = lines
        self.window_s = window_s
        self._start: float | None = None
        self._used = 0
        self.suppressed = 0

    def take(self, now: float) -> bool:
        if self._start is None or now - self._start >= self.window_s:
            self._start, self._used = now, 0
        if self._used < self.lines:
            self._used += 1
            return True
        self.suppressed += 1
        return False

    def due(self, now: float) -> int:
        """The count to summarize once the window it was suppressed in is over; 0 if none."""
        if not self.suppressed or self._start is None or now - self._start < self.window_s:
            return 0
        count, self.suppressed = self.suppressed, 0
        return count


class RejectionLog:
    """One info line per rejected entry, within a ``LineBudget``; a summary for the rest.

    The summary is written by ``flush`` (housekeeping) once the window is over, so it
    comes even when no further entry is refused, and always before the next window's
    lines.
    """

    def __init__(self, lines: int = REJECTION_LINES, window_s: float = REJECTION_WINDOW_S) -> None:
        self.budget = LineBudget(lines, window_s)

    def rejected(self, now: float, code: str, where: str, entry_id: str | None = None) -> None:
        self.flush(now)
        if not self.budget.take(now):
            return
        fields: dict[str, object] = {"code": code, "where": where}
        if entry_id is not None:
            fields["entry"] = entry_id
        which = "entry" if entry_id is None else f"entry {entry_id}"
        rejections_log.info("%s rejected (%s): %s", which, where, code, extra=fields)

    def flush(self, now: float) -> None:
        count = self.budget.due(now)
        if count:
            rejections_log.info(
                "%s in %.0f s",
                more_rejected(count),
                self.budget.window_s,
                extra={"count": count},
            )


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (LevelDB's directory is flat; a subdirectory is
    followed anyway): a few hundred ``stat`` calls, cheap enough every few seconds."""
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += dir_bytes(Path(entry.path))
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # a compaction removed it between listing and stat
    except FileNotFoundError:
        return total
    return total
