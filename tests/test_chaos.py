"""scripts/chaos.py: a short seeded fault campaign on real nodes, its checks, and the
regression it found (a validator rebuilt from its peers signed old heights again)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from chaos import CODES, double_signs, plan  # noqa: E402


def test_the_schedule_is_decided_by_the_seed_alone() -> None:
    members, validators = list(CODES[:5]), list(CODES[:4])
    first = plan(11, 120, members, validators)
    assert first == plan(11, 120, members, validators)
    assert first != plan(12, 120, members, validators)
    assert all(f.targets and set(f.targets) <= set(members) for f in first)
    # kill and kill_f take validators only; kill_f takes f = 1 of 4 here.
    assert all(set(f.targets) <= set(validators) for f in first if f.kind.startswith("kill_f"))
    only = plan(11, 120, members, validators, kinds=["partition"])
    assert {f.kind for f in only} == {"partition"}
    assert all(1 <= len(f.targets) <= 2 for f in only)


LINE = "2026-12-02 15:44:56,651 DEBUG   customs.consensus: at h9/r0/p0 <- recv {}"


def test_the_double_sign_check_finds_two_blocks_for_one_vote() -> None:
    same = [LINE.format("prevote CN h4/r0 c976e8c3"), LINE.format("prevote CN h4/r0 c976e8c3")]
    assert double_signs(same).ok
    other_round = [*same, LINE.format("prevote CN h4/r1 df99b215")]
    assert double_signs(other_round).ok
    twice = [*same, LINE.format("prevote CN h4/r0 df99b215")]
    check = double_signs(twice)
    assert not check.ok and "('CN', 'prevote', 4, 0)" in check.detail
    nil = [*same, LINE.format("prevote CN h4/r0 nil")]
    assert not double_signs(nil).ok
    from_record = double_signs(same, [("CN", "prevote", 4, 0, "00000000")])
    assert not from_record.ok
    # A message signed and never received (a "-> send" line) incriminates nobody.
    held = "at h4/r0/p1 -> send ['prevote CN h4/r0 df99b215'] decided [] dropped {}"
    assert double_signs([*same, held]).ok
    assert not double_signs([*same, "WARNING equivocation evidence: x"]).ok
