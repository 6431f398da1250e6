"""``scripts/bench.py network`` and ``idle`` end to end, at a size that only checks they
still work.

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
            "--single",
            "6",
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
    # One entry at a time: each seen committed on its node's event stream.
    assert figures["net_2v_single_rejected"] == 0
    assert 0 < figures["net_2v_single_p50_ms"] <= figures["net_2v_single_p99_ms"]
    assert figures["net_2v_single_mean_ms"] > 0


def test_idle_run_reports_every_figure_and_the_compared_ratios() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "idle",
            "--json",
            *("--validators", "1", "--seconds", "2"),
            "--compare",
            "empty_block_interval_ms=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    figures = report["figures"]
    assert native.describe() in report["notes"]
    assert any("empty_block_interval_ms=1" in note for note in report["notes"])
    # The genesis default heartbeat is a minute: two idle seconds make no block. A 1 ms
    # heartbeat is always due, so that network makes a block every block interval.
    assert figures["idle_blocks_per_hour"] == 0
    assert figures["idle_compare_blocks_per_hour"] > 0
    assert math.isnan(figures["idle_compare_blocks_per_hour_ratio"])
    for prefix in ("idle_", "idle_compare_"):
        assert figures[prefix + "cpu_s_per_hour"] > 0
        # Finite, not necessarily positive: a LevelDB compaction may shrink the directory.
        assert math.isfinite(figures[prefix + "disk_bytes_per_hour"])
    ratio = figures["idle_compare_cpu_s_per_hour"] / figures["idle_cpu_s_per_hour"]
    assert math.isclose(figures["idle_compare_cpu_s_per_hour_ratio"], ratio)
