"""DESIGN §1: imports point down only, and the deterministic cores stay pure.

``ledger/`` and ``contracts/`` never import asyncio, aiohttp or ``node``; ``ledger/`` never
imports ``contracts``; the rules read no clock, draw no randomness and do no I/O. In
``ledger/`` only the store touches disk; in ``contracts/`` only the conformance runner's
command line reads and writes files. ``contracts/`` and ``ledger/`` ship no test support,
and no module of ``node/`` imports one that imports it back.
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


# The simulator (node/consensus/simulator/) is a program around the core: it draws from a
# seeded rng, prints and times its runs. The core's own modules do none of that.
CONSENSUS_CORE = sorted((ROOT / "node" / "consensus").glob("*.py"))


@pytest.mark.parametrize("path", CONSENSUS_CORE, ids=lambda p: p.name)
def test_the_consensus_core_is_pure(path: Path) -> None:
    imports = _imports(path)
    impure = imports & (IMPURE | NEVER_BELOW_NODE - {"node"})
    assert not impure, f"{path.name} imports {impure}"
    assert not _calls(path) & IMPURE_CALLS, f"{path.name} calls {_calls(path) & IMPURE_CALLS}"
    simulator = {m for m in _full_imports(path) if m.startswith("node.consensus.simulator")}
    assert not simulator, f"{path.name} imports its simulator: {simulator}"


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


# ---- test support stays in tests/ --------------------------------------------------

SHIPPED = ("ledger", "contracts", "node")
TEST_SUPPORT_NAMES = {"samples", "sandbox", "factories", "fixtures", "fakes", "mocks", "testing"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, ``from package import module`` included,
    and whether or not under ``if TYPE_CHECKING:`` (a cycle of types is a cycle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found & known


def _graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    paths = {_module_name(p): p for package in packages for p in _modules(package)}
    known = set(paths)
    return {name: _imported_modules(path, known) - {name} for name, path in paths.items()}


@pytest.mark.parametrize("package", ["ledger", "contracts"])
def test_contracts_and_ledger_ship_no_test_support(package: str) -> None:
    """Sample bodies, sandboxes and seeded-key factories live in tests/ (issue 22):
    nothing in a shipped package is there only for tests to import."""
    named = [p.name for p in _modules(package) if p.stem in TEST_SUPPORT_NAMES]
    assert not named, f"{package}/ holds test support: {named}"
    graph = _graph(SHIPPED)
    used = {dep for deps in graph.values() for dep in deps}
    # A package's __init__ is imported with any of its modules; a module with a
    # ``__main__`` block is a command (``python -m contracts.conformance``).
    unused = [
        name
        for name, path in ((_module_name(p), p) for p in _modules(package))
        if name not in used and path.name != "__init__.py" and "__main__" not in path.read_text()
    ]
    assert not unused, f"imported by nothing shipped, only by tests or scripts: {unused}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that returns to its start, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        path.append(name)
        for dep in sorted(graph[name]):
            found = visit(dep)
            if found:
                return found
        path.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        found = visit(name)
        if found:
            return found
    return None


def test_no_import_cycle_among_node_modules() -> None:
    """The daemon wires its parts; the parts take narrow Protocols (node/daemon/parts.py), not
    the Node, so no module of node/ imports one that imports it back."""
    graph = _graph(("node",))
    assert len(graph) > 30  # the scan sees node/ and its subpackages
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
