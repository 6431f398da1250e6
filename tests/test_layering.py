"""DESIGN §1: imports point down only, and the deterministic cores stay pure.

``ledger/`` and ``contracts/`` never import asyncio, aiohttp or ``node``; ``ledger/`` never
imports ``contracts``; the rules read no clock, draw no randomness and do no I/O. In
``ledger/`` only the store touches disk; in ``contracts/`` only the conformance runner's
command line reads and writes files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

NEVER_BELOW_NODE = {"asyncio", "aiohttp", "node", "socket", "threading", "subprocess"}
IMPURE = {"time", "random", "secrets", "os", "datetime", "plyvel", "pathlib", "shutil", "tempfile"}
IMPURE_CALLS = {"open", "input", "print"}

# Modules allowed to touch the outside world, and why.
LEDGER_IO = {"store.py"}  # the LevelDB store
CONTRACTS_IO = {"conformance.py", "__main__.py"}  # the vector runner's command line


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("ledger"), ids=lambda p: p.name)
def test_ledger_imports_point_down(path: Path) -> None:
    imports = _imports(path)
    assert not imports & (NEVER_BELOW_NODE | {"contracts"}), f"{path.name} imports {imports}"
    if path.name not in LEDGER_IO:
        assert not imports & IMPURE, f"{path.name} imports {imports & IMPURE}"
        assert not _calls(path) & IMPURE_CALLS, f"{path.name} calls {_calls(path) & IMPURE_CALLS}"


@pytest.mark.parametrize("path", _modules("contracts"), ids=lambda p: p.name)
def test_contracts_are_pure(path: Path) -> None:
    imports = _imports(path)
    assert not imports & NEVER_BELOW_NODE, f"{path.name} imports {imports}"
    if path.name not in CONTRACTS_IO:
        assert not imports & IMPURE, f"{path.name} imports {imports & IMPURE}"
        assert not _calls(path) & IMPURE_CALLS, f"{path.name} calls {_calls(path) & IMPURE_CALLS}"
        assert "ledger.store" not in path.read_text(), f"{path.name} reaches for the store"


def _full_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules("node/client"), ids=lambda p: p.name)
def test_the_officials_client_imports_nothing_of_the_daemon(path: Path) -> None:
    """The client trusts genesis, not the node's code: it shares the ledger formats and
    the contracts' rules, and nothing of the daemon or of the aiohttp server."""
    imports = _full_imports(path)
    daemon = {m for m in imports if m.split(".")[0] == "node" and not m.startswith("node.client")}
    assert not daemon, f"{path.name} imports {daemon}"
    assert not {m for m in imports if m.split(".")[0] in ("aiohttp", "asyncio", "plyvel")}
