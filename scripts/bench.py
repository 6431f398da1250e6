"""Benchmarks: ``python scripts/bench.py core [--json]`` (one process: ledger, state map,
contracts), ``python scripts/bench.py network [--validators 4,7,10] ...`` (validators
as real processes; see ``bench_network.py`` for its options) and ``python
scripts/bench.py idle [--seconds 120] ...`` (what a network left idle costs; see
``bench_idle.py``).

A section is a list of figure modules in ``scripts/``. Each module exposes
``measure(results: dict[str, float]) -> None``, may expose ``NOTES`` (lines printed with
the figures, filled by ``measure``) and may expose ``TARGETS``: figure name ->
``(op, value)`` for an absolute target or ``(op, factor, other_figure)`` for one relative
to another figure of the same run, ``op`` being ``">="`` or ``"<="``. A module that is
not there yet is skipped with a note, so sections can grow one module at a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
SECTIONS: dict[str, tuple[str, ...]] = {
    "core": ("bench_ledger", "bench_state", "bench_contracts"),
    "network": ("bench_network",),
    "client": ("bench_client",),
    "idle": ("bench_idle",),
}

Target = tuple[str, float] | tuple[str, float, str]


def run_section(
    section: str, extra: Sequence[str] = ()
) -> tuple[dict[str, float], dict[str, Target], list[str]]:
    """Run every present module of ``section``: (figures, targets, notes).

    ``extra`` options go to each module's ``configure(argv)`` (e.g. ``--validators``).
    """
    for path in (str(REPO), str(SCRIPTS)):
        if path not in sys.path:
            sys.path.insert(0, path)
    results: dict[str, float] = {}
    targets: dict[str, Target] = {}
    notes: list[str] = []
    for name in SECTIONS[section]:
        try:
            module: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            notes.append(f"{name}: not present, skipped")
            continue
        if extra:
            module.configure(extra)
        module.measure(results)
        targets.update(getattr(module, "TARGETS", {}))
        notes.extend(getattr(module, "NOTES", ()))
    from node import native  # after the path set-up above

    # Figures of a compiled hot path and of an interpreted one differ by a seventh.
    notes.append(native.describe())
    return results, targets, notes


def judge(name: str, results: Mapping[str, float], targets: Mapping[str, Target]) -> Any:
    """(target text, ratio of achieved to target, met?) or None when no target."""
    target = targets.get(name)
    if target is None:
        return None
    op, value = target[0], target[1]
    if len(target) == 3:
        other = target[2]
        value = value * results[other]
        text = f"{op} {target[1]} x {other}"
    else:
        text = f"{op} {value:,g}"
    got = results[name]
    ratio = got / value if op == ">=" else value / got if got else float("inf")
    return text, ratio, ratio >= 1.0


def report_json(
    results: Mapping[str, float], targets: Mapping[str, Target], notes: Sequence[str] = ()
) -> str:
    verdicts = {}
    for name in results:
        judged = judge(name, results, targets)
        if judged is not None:
            verdicts[name] = {"target": judged[0], "ratio": round(judged[1], 3), "met": judged[2]}
    return json.dumps(
        {"figures": dict(results), "targets": verdicts, "notes": list(notes)}, sort_keys=True
    )


def report_table(
    section: str, results: Mapping[str, float], targets: Mapping[str, Target], notes: Sequence[str]
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench {section}")
    for column in ("figure", "value", "target", "ratio", ""):
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    for name, value in results.items():
        judged = judge(name, results, targets)
        shown = f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
        if judged is None:
            table.add_row(name, shown, "", "", "")
        else:
            text, ratio, met = judged
            table.add_row(name, shown, text, f"{ratio:.2f}", "ok" if met else "MISSED")
    console = Console()
    console.print(table)
    for note in notes:
        console.print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args, extra = parser.parse_known_args(argv)
    results, targets, notes = run_section(args.section, extra)
    if args.json:
        print(report_json(results, targets, notes))
    else:
        report_table(args.section, results, targets, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
