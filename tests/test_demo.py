"""``python scripts/demo.py`` end to end, as the real subprocess ``make demo`` runs: it
passes, says what happened, and leaves no process behind, whether it passes, fails at
start-up, or is kept running and then stopped with ``--stop``."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "scripts" / "demo.py"

pytestmark = pytest.mark.slow


def run_demo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def processes_under(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (the demo's nodes do)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


def wait_gone(path: Path, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_under(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_the_demo_passes_end_to_end_and_leaves_nothing_running(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    done = run_demo("--plain", "--data-dir", str(data))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for line in (
        "5 nodes reachable, 4 validators (CN, DE, NL, SG)",
        "IN FORCE — certificate of origin",
        "recognised by Dutch Customs (NL) and German Customs (DE)",
        "customs history: 6CN-SHA-",
        "REVOKED on ",
        "by China Customs: origin verification found",
        "refused: not_in_force:",
        "refused: HTTP 400 bad_signature:",
        "refused: not_permitted:",
        "refused: invalid_identifier:",
        "all 20 committed without SG",
        "SG caught up to height",
        "customs verify --bundle: IN FORCE",
        "exit 3, VERIFICATION FAILED, check",
        "refused: 4 (bad_signature 1, invalid_identifier 1, not_in_force 1, not_permitted 1)",
        "ok: demo passed in",
    ):
        assert line in out, f"{line!r} not in the output:\n{out}"
    assert "\x1b[" not in out  # --plain: no terminal escapes
    assert not wait_gone(data)
    # The official's checkpoints went to the demo's own state directory.
    assert any((data / "state" / "customs").iterdir())
    for token in data.glob("network/*/api.token"):
        leaked = token.read_text().strip() in out  # a boolean: a failure prints no token
        assert not leaked, f"{token} appears in the demo's output"


def test_a_taken_port_fails_step_1_by_name_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_demo("--plain", "--data-dir", str(data), "--base-port", str(port), timeout=60)
    assert done.returncode == 1
    assert "DEMO FAILED at step 1 (Five administrations start a network)" in done.stderr
    assert "address already in use" in done.stderr
    assert not wait_gone(data)


def test_keep_leaves_a_network_to_explore_and_stop_ends_it(tmp_path: Path) -> None:
    data = tmp_path / "kept"
    done = run_demo("--plain", "--keep", "--data-dir", str(data))
    try:
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(processes_under(data)) == 5
        # The printed command works as printed.
        command = next(
            line.strip() for line in done.stdout.splitlines() if "customs status --genesis" in line
        )
        explored = subprocess.run(
            shlex.split(command.split(" ", 1)[1]),
            env={**os.environ, "PYTHONPATH": str(REPO), **_assignments(command)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert explored.returncode == 0, explored.stderr
        assert "4 validators (CN, DE, NL, SG)" in explored.stdout
        assert f"demo.py --stop {data}" in done.stdout
    finally:
        stopped = run_demo("--stop", str(data), timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert not wait_gone(data)


def _assignments(command: str) -> dict[str, str]:
    name, _, value = command.split(" ", 1)[0].partition("=")
    return {name: value}
