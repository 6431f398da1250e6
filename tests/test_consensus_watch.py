"""node.daemon.consensus_watch with made-up clocks: the rejection log's budget and summary,
the quorum watch's grace, repeat and regain, the round watch's once-per-height warning,
and their wording (plurals)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from node.daemon.consensus_watch import (
    LOST_AFTER_S,
    LOST_REPEAT_S,
    START_GRACE_S,
    LineBudget,
    QuorumWatch,
    RejectionLog,
    RoundWatch,
    dir_bytes,
    more_rejected,
    round_wording,
)
from node.daemon.metrics import NodeMetrics


def sample(metrics: NodeMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def test_wording_has_correct_plurals() -> None:
    assert more_rejected(1) == "… and 1 more rejected entry"
    assert more_rejected(7) == "… and 7 more rejected entries"
    assert round_wording(1) == "1 round without a decision"
    assert round_wording(3) == "3 rounds without a decision"


def test_line_budget_allows_n_per_window_then_counts_the_rest() -> None:
    budget = LineBudget(3, 10.0)
    assert [budget.take(0.0 + i) for i in range(5)] == [True, True, True, False, False]
    assert budget.due(9.9) == 0  # the window is not over yet
    assert budget.due(10.0) == 2
    assert budget.due(11.0) == 0  # summarized once
    assert budget.take(10.5)  # a new window began at the first take past the old one
    assert budget.take(10.6) and budget.take(10.7) and not budget.take(10.8)
    assert budget.due(20.5) == 1


def test_rejection_log_one_line_per_entry_then_one_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "customs.entries")
    rejections = RejectionLog(lines=2, window_s=10.0)
    for i in range(5):
        rejections.rejected(1.0 + i / 10, "bad_signature", "relay", f"{i:064x}")
    rejections.flush(5.0)  # within the window: nothing yet
    lines = messages(caplog, "customs.entries")
    assert len(lines) == 2
    first = lines[0]
    assert first.levelno == logging.INFO
    assert first.__dict__["code"] == "bad_signature" and first.__dict__["where"] == "relay"
    assert first.__dict__["entry"] == f"{0:064x}"
    assert first.getMessage() == f"entry {0:064x} rejected (relay): bad_signature"

    rejections.flush(11.0)
    summary = messages(caplog, "customs.entries")[-1]
    assert summary.getMessage() == "… and 3 more rejected entries in 10 s"
    assert summary.__dict__["count"] == 3
    rejections.flush(30.0)
    assert len(messages(caplog, "customs.entries")) == 3

    # A summary of one, written before the next window's first line.
    for i in range(3):
        rejections.rejected(40.0 + i, "stale", "expired", f"{i:064x}")
    rejections.rejected(51.0, "malformed", "api")
    tail = [r.getMessage() for r in messages(caplog, "customs.entries")[-4:]]
    assert tail[2] == "… and 1 more rejected entry in 10 s"
    assert tail[3] == "entry rejected (api): malformed"


def test_quorum_watch_grace_lost_repeat_and_regained(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "customs.consensus")
    metrics = NodeMetrics()
    watch = QuorumWatch(metrics, quorum=3, validators=4)
    assert sample(metrics, "customs_validators_quorum") == 3

    # Starting up, links are still being dialled: no warning within the grace.
    watch.heard(1, 100.0)
    watch.heard(2, 100.0 + START_GRACE_S - 0.1)
    assert not watch.lost and not messages(caplog, "customs.consensus")
    assert sample(metrics, "customs_validators_heard") == 2
    watch.heard(3, 100.0 + START_GRACE_S)
    assert not watch.lost and sample(metrics, "customs_validators_heard") == 3

    # Once a quorum was heard, a short gap (a link replaced) is not a loss.
    t = 200.0
    watch.heard(2, t)
    watch.heard(2, t + LOST_AFTER_S - 0.1)
    assert not watch.lost
    watch.heard(3, t + 1.95)
    watch.heard(2, t + 10.0)
    watch.heard(2, t + 10.0 + LOST_AFTER_S)
    assert watch.lost
    assert sample(metrics, "customs_quorum_lost_total") == 1
    (lost,) = messages(caplog, "customs.consensus")
    assert lost.levelno == logging.WARNING
    assert lost.getMessage() == (
        "no quorum: hears 2 of 4 validators, a quorum is 3; no block can be decided"
    )
    assert (lost.__dict__["heard"], lost.__dict__["quorum"]) == (2, 3)

    # Repeated while it lasts, at most every LOST_REPEAT_S; counted once.
    lost_at = t + 10.0 + LOST_AFTER_S
    watch.heard(1, lost_at + LOST_REPEAT_S - 1)
    assert len(messages(caplog, "customs.consensus")) == 1
    watch.heard(1, lost_at + LOST_REPEAT_S)
    again = messages(caplog, "customs.consensus")[-1]
    assert again.getMessage().startswith("still no quorum: hears 1 of 4 validators")
    assert sample(metrics, "customs_quorum_lost_total") == 1

    watch.heard(4, lost_at + LOST_REPEAT_S + 1)
    back = messages(caplog, "customs.consensus")[-1]
    assert back.levelno == logging.INFO
    assert back.getMessage() == "quorum regained: hears 4 of 4 validators, a quorum is 3"
    assert sample(metrics, "customs_quorum_regained_total") == 1
    assert not watch.lost


def test_quorum_watch_of_one_validator_says_validator() -> None:
    metrics = NodeMetrics()
    watch = QuorumWatch(metrics, quorum=1, validators=1)
    watch.heard(0, 0.0)
    watch.heard(0, START_GRACE_S)
    assert watch.lost  # a member that is not the validator and hears none


def test_round_watch_counts_rounds_and_warns_once_per_height(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "customs.consensus")
    metrics = NodeMetrics()
    rounds = RoundWatch(metrics)
    for height, round_ in [(5, 0), (5, 0), (6, 0), (6, 1), (6, 1), (6, 3), (7, 0), (8, 1)]:
        rounds.at(height, round_)
    # Rounds 1 and 3 of height 6 (2 was skipped), round 1 of height 8.
    assert sample(metrics, "customs_consensus_rounds_past_zero_total") == 3
    warnings = messages(caplog, "customs.consensus")
    assert [w.getMessage() for w in warnings] == [
        "consensus at height 6 went to round 1: 1 round without a decision",
        "consensus at height 8 went to round 1: 1 round without a decision",
    ]
    assert all(w.levelno == logging.WARNING for w in warnings)
    assert (warnings[0].__dict__["height"], warnings[0].__dict__["round"]) == (6, 1)


def test_dir_bytes_sums_the_files(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 23)
    assert dir_bytes(tmp_path) == 123
    assert dir_bytes(tmp_path / "absent") == 0
