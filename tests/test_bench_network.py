"""``scripts/bench.py network`` end to end, at a size that only checks it still works.

The figures themselves are not judged here (speed is for the benchmark to report, not for
tests to assert): only that a small run commits everything, reports every figure, and
that the reported ratio is the formula docs/performance.md states, computed from the same run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from node import native

REPO = Path(__file__).resolve().parent.parent


def test_small_network_run_reports_consistent_figures() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "network",
            "--json",
            "--validators",
            "2",
            "--entries",
            "48",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    figures = report["figures"]
    # The report says which build of the hot path the figures come from.
    assert native.describe() in report["notes"]

    assert figures["net_2v_rejected"] == 0
    rate, ceiling = figures["net_2v_entries_per_s"], figures["net_2v_ceiling_per_s"]
    assert rate > 0 and ceiling > 0
    cores = os.cpu_count() or 1
    assert math.isclose(figures["net_2v_ratio"], rate / (cores * ceiling / 2))
    assert figures["net_2v_ratio_min"] <= figures["net_2v_ratio"] <= figures["net_2v_ratio_max"]
    assert figures["ed25519_verify_per_s"] >= ceiling
    assert 0 < figures["net_2v_p50_ms"] <= figures["net_2v_p99_ms"]
    assert 0 < figures["net_2v_half_p50_ms"] <= figures["net_2v_half_p99_ms"]
    # Counted from /proc up to the drained pool: present, and finite on Linux.
    assert figures["net_2v_node_cpu_us"] > 0
