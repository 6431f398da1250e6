"""The command line of ``scripts/simulate.py``: runs seeds, prints each failure with its
plan and the command that replays it, and the totals."""

from __future__ import annotations

import argparse
import sys
import time

from node.consensus.simulator.faults import ALL_FAULTS
from node.consensus.simulator.run import RunResult, SimConfig, SimulationError, run_seed

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulate.py", description="Run the consensus cores in a simulated network."
    )
    parser.add_argument("--validators", type=int, default=4, metavar="N")
    parser.add_argument("--byzantine", type=int, default=0, metavar="B")
    parser.add_argument("--seeds", type=int, default=100, metavar="K")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="replay one run")
    parser.add_argument("--heights", type=int, default=20, metavar="H")
    parser.add_argument(
        "--faults", default=",".join(ALL_FAULTS), help=f"comma list from {','.join(ALL_FAULTS)}"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per seed")
    return parser


def _replay(args: argparse.Namespace, seed: int) -> str:
    return (
        f"python scripts/simulate.py --validators {args.validators} --byzantine "
        f"{args.byzantine} --heights {args.heights} --faults {args.faults or 'none'} --seed {seed}"
    )


def _report(args: argparse.Namespace, result: RunResult, verbose: bool) -> None:
    if verbose:
        print(f"seed {result.seed}: {result.plan.describe()}")
    if result.passed:
        if verbose:
            print(
                f"  ok: {result.heights} heights in {result.virtual_ms} ms virtual, "
                f"digest {result.digest}"
            )
        return
    print(f"FAILED seed {result.seed}: check {result.failure}: {result.detail}")
    print(f"  plan: {result.plan.describe()}")
    print(f"  replay: {_replay(args, result.seed)}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    faults = frozenset(f for f in args.faults.split(",") if f and f != "none")
    try:
        config = SimConfig(args.validators, args.byzantine, args.heights, faults)
        if args.seeds < 1:
            raise SimulationError("--seeds must be at least 1")
    except SimulationError as exc:
        print(f"simulate.py: error: {exc}", file=sys.stderr)
        return 2
    seeds = [args.seed] if args.seed is not None else list(range(args.seeds))
    passed = failed = heights = messages = 0
    started = time.perf_counter()
    for seed in seeds:
        result = run_seed(config, seed)
        _report(args, result, args.verbose or args.seed is not None)
        heights += result.heights
        messages += result.messages
        passed, failed = passed + result.passed, failed + (not result.passed)
        if len(seeds) >= 1000 and (passed + failed) % 1000 == 0:
            print(f"... {passed + failed} seeds: {passed} passed, {failed} failed", flush=True)
    elapsed = time.perf_counter() - started
    print(
        f"n={config.validators} B={config.byzantine}: {heights} heights in {elapsed:.1f} s "
        f"({heights / elapsed:.1f} heights/s), {messages / max(heights, 1):.0f} messages/height"
    )
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1
