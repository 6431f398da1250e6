"""The demo's voice: one heading per step, a few indented lines under it, and on
``--verbose`` every ``customs`` command and HTTP call made. rich on a terminal, plain
text otherwise (or with ``--plain``), so the output reads the same in a log or a test.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

__all__ = ["Narrator", "StepFailed"]


class StepFailed(Exception):
    """An expected outcome did not happen; the message says what was seen instead."""


class Narrator:
    def __init__(self, *, plain: bool, verbose: bool, total_steps: int) -> None:
        self.plain = plain or not sys.stdout.isatty()
        self.verbose = verbose
        self.total = total_steps
        self.current = "start-up"
        self._console = None if self.plain else Console(highlight=False)

    def _print(self, plain: str, rich: str | None = None) -> None:
        if self._console is None:
            print(plain, flush=True)
        else:
            self._console.print(plain if rich is None else rich)

    def title(self, text: str) -> None:
        self._print(text, f"[bold]{escape(text)}[/]")

    def step(self, number: int, title: str) -> None:
        self.current = f"step {number} ({title})"
        self._print("")
        heading = f"[{number}/{self.total}] {title}"
        self._print(heading, f"[bold cyan]{escape(heading)}[/]")

    def blank(self) -> None:
        self._print("")

    def say(self, text: str) -> None:
        """Who acts and what they send."""
        self._print(f"  {text}", f"  {escape(text)}")

    def answer(self, text: str) -> None:
        """What the ledger (or the CLI) answered."""
        self._print(f"    -> {text}", f"    [dim]→[/] {escape(text)}")

    def ok(self, text: str) -> None:
        self._print(f"  ok: {text}", f"  [bold green]✓[/] {escape(text)}")

    def refused(self, text: str) -> None:
        self._print(f"    -> refused: {text}", f"    [dim]→[/] [bold red]refused[/] {escape(text)}")

    def command(self, argv: Sequence[str]) -> None:
        if self.verbose:
            line = "$ " + shlex.join(argv)
            self._print(f"      {line}", f"      [dim]{escape(line)}[/]")

    def http(self, method: str, url: str, note: str = "") -> None:
        if self.verbose:
            line = f"{method} {url}" + (f"  ({note})" if note else "")
            self._print(f"      {line}", f"      [dim]{escape(line)}[/]")

    def failure(self, message: str) -> None:
        text = f"DEMO FAILED at {self.current}: {message}"
        if self._console is None:
            print(text, file=sys.stderr, flush=True)
        else:
            Console(stderr=True, highlight=False).print(f"[bold red]{escape(text)}[/]")
