"""scripts/chaos.py: a short seeded fault campaign on real nodes, its checks, and the
regression it found (a validator rebuilt from its peers signed old heights again)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import Cluster

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


@pytest.mark.slow
def test_a_validator_rebuilt_from_its_peers_does_not_sign_old_heights_again(
    tmp_path: Path,
) -> None:
    """docs/operations.md's procedure: stop a validator, delete its data_dir once the
    network is past its height, start it. Climbing from height 1 it used to propose and
    vote at each old height again, for other blocks, and its peers received that."""
    with Cluster(tmp_path / "net", ["CN", "DE", "NL", "SG"], settings={"level": "debug"}) as net:
        net.start()
        net.wait_height(12)
        net.kill("SG")
        last = max(net[m].height() for m in ("CN", "DE", "NL"))
        shutil.rmtree(net["SG"].root / "data")
        (net["SG"].root / "data").mkdir(mode=0o700)
        net.wait_height(last + 2, ids=["CN", "DE", "NL"])
        net.start("SG")
        top = max(net[m].height() for m in ("CN", "DE", "NL"))
        net.wait_height(top + 3)  # SG caught up, and took part again after
        logs = [net[m].log_text() for m in ("CN", "DE", "NL", "SG")]
    check = double_signs(logs)
    assert check.ok, check.detail
    assert "recv prevote SG h" in logs[0]  # the check saw SG's votes at all


@pytest.mark.slow
def test_a_short_seeded_campaign_passes_and_says_how_to_replay_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--seed", "2", "--minutes", "0.42",
         "--dir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert lines[-1].endswith(" passed, 0 failed") and int(lines[-1].split()[0]) >= 8
    schedule = "\n".join(lines[:12])
    # Without a tmpfs to fill (not root) the schedule leaves the full disk out, and says so.
    full_disk = "no tmpfs can be mounted here" not in done.stdout
    for kind in ("wipe", "partition", "kill", *(["disk_full"] if full_disk else [])):
        assert f" {kind} " in schedule, schedule
    assert "replay: python scripts/chaos.py --seed 2 --minutes 0.42" in done.stdout
    assert "PASS nothing left running" in done.stdout
    assert ", 1 full disks (" in done.stdout or not full_disk
