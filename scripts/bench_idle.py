"""Idle cost: ``scripts/bench.py idle [--seconds S] [--validators N] [--param KEY=VALUE ...]``
``[--compare KEY=VALUE ...]`` (S default 120, N default 4).

Starts N validators as real ``customs-node run`` processes (tests/cluster.py) with the
genesis defaults (``--param`` overrides one) and the node.toml default timeouts, waits for
every node's first block, then leaves the network alone for S seconds: no entries, no
polling, only a look at each node before and after. What an idle network costs, per
idle hour (the S seconds extrapolated):

    idle_blocks_per_hour        blocks each node committed (mean over the nodes);
    idle_disk_bytes_per_hour    growth of a node's LevelDB directory (``<data_dir>/ledger``,
                                the sum of its files' sizes), mean over the nodes: with
                                the default 64 MiB write buffer this is mostly LevelDB's
                                write-ahead log, so over a real hour, after compactions,
                                the directory may end up smaller than this;
    idle_write_bytes_per_hour   bytes a node's process caused to be written to storage
                                (``write_bytes`` of /proc/<pid>/io: the store, the
                                consensus signing state, whole pages per fsync);
    idle_cpu_s_per_hour         a node's CPU seconds (user + system, from /proc), mean;
    idle_disk_bytes_per_block   the directory's growth per block (nan with no block).

``--compare KEY=VALUE`` (repeatable) then starts a second network with those genesis
parameters on top of the first one's and reports its figures as ``idle_compare_*`` and
each divided by the first network's as ``idle_compare_*_ratio``: one invocation shows
what a parameter changes (e.g. ``--compare empty_block_interval_ms=1`` against the
default once that parameter exists). The two networks run one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from bench_network import PORTS, cpu_seconds, parse_params

from ledger.genesis import Params
from node.daemon.config import Timeouts, load_config
from tests.cluster import Cluster

CHAIN = "customs-idle-1"
SECONDS = 120.0
# Generous: a network that makes empty blocks only as a heartbeat may take a while to
# make its first.
FIRST_BLOCK_TIMEOUT_S = 300.0
FIGURES = ("blocks", "disk_bytes", "write_bytes", "cpu_s")


@dataclass
class Options:
    seconds: float = SECONDS
    validators: int = 4
    params: dict[str, int] = field(default_factory=dict)
    compare: dict[str, int] = field(default_factory=dict)


OPTIONS = Options()
# What each network ran with: bench.py prints these with the figures.
NOTES: list[str] = []


def configure(argv: Sequence[str]) -> None:
    """Take this section's own options (bench.py passes what it does not know)."""
    parser = argparse.ArgumentParser(prog="bench.py idle")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="idle time measured")
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="genesis parameter"
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="genesis parameter of a second network, compared with the first",
    )
    args = parser.parse_args(list(argv))
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if not 1 <= args.validators <= len(PORTS):
        parser.error(f"--validators must be 1..{len(PORTS)}")
    OPTIONS.seconds = args.seconds
    OPTIONS.validators = args.validators
    try:
        OPTIONS.params = parse_params(args.param)
        OPTIONS.compare = parse_params(args.compare)
    except ValueError as exc:
        parser.error(str(exc))


# ---- looking at a node ---------------------------------------------------------------


def dir_bytes(path: Path) -> int:
    """The sum of the sizes of the files under ``path`` (0 if it is not there)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            # LevelDB may delete a file (a compaction) between the listing and the stat.
            with contextlib.suppress(FileNotFoundError):
                total += (Path(root) / name).stat().st_size
    return total


def write_bytes(pid: int) -> float:
    """Bytes the process caused to be written to storage (Linux /proc; nan elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return float(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return float("nan")


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic
    per_node: dict[str, dict[str, float]]  # member id -> figure name -> reading


def sample(cluster: Cluster, stores: Mapping[str, Path]) -> Sample:
    per_node: dict[str, dict[str, float]] = {}
    for member_id, node in cluster.nodes.items():
        assert node.proc is not None
        per_node[member_id] = {
            "blocks": float(node.height()),
            "disk_bytes": float(dir_bytes(stores[member_id])),
            "write_bytes": write_bytes(node.proc.pid),
            "cpu_s": cpu_seconds(node.proc.pid),
        }
    return Sample(time.monotonic(), per_node)


# ---- one idle network ----------------------------------------------------------------


def genesis_params(overrides: Mapping[str, int]) -> dict[str, int]:
    """Every genesis default written out (the test cluster's own short block interval
    must not apply), then ``overrides``. A parameter genesis gains later is included."""
    return {**{f.name: getattr(Params(), f.name) for f in fields(Params)}, **overrides}


def idle_network(params: Mapping[str, int], seconds: float) -> dict[str, float]:
    """Figures per idle hour of one fresh network with genesis ``params``."""
    # The node.toml defaults, over the test cluster's short timeouts.
    settings: dict[str, int | str] = {f.name: getattr(Timeouts(), f.name) for f in fields(Timeouts)}
    ids = list(PORTS)[: OPTIONS.validators]
    with (
        tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp,
        Cluster(Path(tmp), ids, params=params, settings=settings, chain_id=CHAIN) as cluster,
    ):
        stores = {
            m: load_config(node.config).data_dir / "ledger" for m, node in cluster.nodes.items()
        }
        cluster.start()
        cluster.wait_height(1, timeout=FIRST_BLOCK_TIMEOUT_S)
        first = sample(cluster, stores)
        time.sleep(seconds)
        last = sample(cluster, stores)
        for node in cluster.nodes.values():
            if not node.running:
                raise RuntimeError(
                    f"{node.member_id} stopped while idle:\n{node.log_text()[-2000:]}"
                )
    hours = (last.at - first.at) / 3600
    figures: dict[str, float] = {}
    for name in FIGURES:
        deltas = [last.per_node[m][name] - first.per_node[m][name] for m in ids]
        figures[name] = sum(deltas) / len(deltas) / hours
    blocks = figures["blocks"]
    figures["disk_bytes_per_block"] = figures["disk_bytes"] / blocks if blocks else float("nan")
    return figures


def record(prefix: str, figures: Mapping[str, float], results: dict[str, float]) -> None:
    for name in FIGURES:
        results[f"{prefix}{name}_per_hour"] = figures[name]
    results[f"{prefix}disk_bytes_per_block"] = figures["disk_bytes_per_block"]


def describe(params: Mapping[str, int]) -> str:
    defaults = genesis_params({})
    changed = {k: v for k, v in params.items() if defaults.get(k) != v}
    shown = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the genesis defaults"
    return f"{OPTIONS.validators} validators, {shown}, {OPTIONS.seconds:g} s idle"


def measure(results: dict[str, float]) -> None:
    NOTES.clear()
    base = genesis_params(OPTIONS.params)
    runs = [("idle_", base)]
    if OPTIONS.compare:
        runs.append(("idle_compare_", {**base, **OPTIONS.compare}))
    measured: dict[str, dict[str, float]] = {}
    for prefix, params in runs:
        NOTES.append(f"{prefix}*: {describe(params)}")
        print(f"  {describe(params)} ...", file=sys.stderr, flush=True)
        measured[prefix] = idle_network(params, OPTIONS.seconds)
        record(prefix, measured[prefix], results)
    results["idle_seconds"] = OPTIONS.seconds
    if OPTIONS.compare:
        for name in (*(f"{n}_per_hour" for n in FIGURES), "disk_bytes_per_block"):
            plain = results["idle_" + name]
            other = results["idle_compare_" + name]
            results[f"idle_compare_{name}_ratio"] = other / plain if plain else float("nan")


if __name__ == "__main__":
    configure(sys.argv[1:])
    figures: dict[str, float] = {}
    measure(figures)
    for key, value in figures.items():
        print(f"{key:36} {value:16,.1f}")
