"""The mypyc-compiled hot path: all or nothing, current with its sources, same behaviour.

The rest of the suite runs against whichever build is installed (``make`` builds the
compiled one); these tests pin down the build itself and the places where compiled code
would behave differently from the interpreter if the sources did not guard them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import json
from pathlib import Path

import pytest

from node import native
from node.daemon.gossip_payloads import entry_id_of_wire
from node.daemon.mempool import DuplicateEntry, MempoolError, MempoolFull, StaleEntry


def test_the_build_is_all_or_nothing() -> None:
    # setup.py removes every extension when any fails: a half-compiled package would
    # import shims whose shared library is missing.
    assert native.compiled() in ([], list(native.NATIVE_MODULES))


def test_every_compiled_module_is_a_source_file_of_the_project() -> None:
    for module in native.NATIVE_MODULES:
        path = native.source_path(module)
        assert path.is_file(), module
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        assert Path(spec.origin).parent == path.parent


def test_source_digests_are_sha256_of_the_sources() -> None:
    digests = native.source_digests()
    assert set(digests) == set(native.NATIVE_MODULES)
    path = native.source_path("ledger.codec")
    assert digests["ledger.codec"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_changed_source_makes_its_extension_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native.compiled():
        pytest.skip("the hot path runs interpreted here: there is no extension to go stale")
    record = native.source_digests()
    record["ledger.codec"] = "0" * 64  # as if codec.py had been edited since the build
    sources = tmp_path / "native-sources.json"
    sources.write_text(json.dumps(record))
    monkeypatch.setattr(native, "SOURCES_FILE", sources)
    assert native.stale() == ["ledger.codec"]
    assert native.needs_build()
    assert native.describe().endswith("STALE against their sources: ledger.codec")
    sources.write_text(json.dumps(native.source_digests()))
    assert native.stale() == [] and not native.needs_build()
    sources.unlink()  # extensions without a record of what they were built from
    assert native.stale() == list(native.NATIVE_MODULES)


def test_the_build_is_described_for_logs() -> None:
    described = native.describe()
    if native.compiled():
        assert described == f"hot path compiled with mypyc ({len(native.NATIVE_MODULES)} modules)"
    else:
        assert described == "hot path interpreted"


def test_missing_extensions_are_built_unless_declined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "compiled", lambda: [])
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    assert native.needs_build()
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert not native.needs_build()


@pytest.mark.parametrize("size", [0, 1, 7, 8, 70, 77])
def test_entry_id_of_a_short_wire_is_the_hash_of_nothing(size: int) -> None:
    # Compiled, a bytes slice ending before its start raised SystemError instead of
    # giving b"" (fixed in node.daemon.gossip_payloads by clamping the end).
    assert entry_id_of_wire(b"\x82\xa5entry"[:size] + bytes(max(0, size - 7))) == (
        hashlib.sha256(b"").digest()
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [(DuplicateEntry, "duplicate"), (StaleEntry, "stale"), (MempoolError, "mempool")],
)
def test_mempool_errors_carry_their_class_code(error: type[MempoolError], code: str) -> None:
    # A class attribute without ClassVar compiles to an instance attribute that the
    # constructor reads before anything set it.
    exc = error(bytes(32), "why")
    assert exc.code == code and str(exc).startswith(f"{code}: entry 0000")
    full = MempoolFull(bytes(32), "entries", "pool holds 1 entries")
    assert full.code == "mempool_full" and full.limit == "entries"


def _except_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, set[str]]:
    """Each ``except T as name`` name in ``function`` (not in nested scopes) -> its Ts."""
    names: dict[str, set[str]] = {}
    todo: list[ast.AST] = list(ast.iter_child_nodes(function))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
            names.setdefault(node.name, set()).add(ast.unparse(node.type))
        todo.extend(ast.iter_child_nodes(node))
    return names


def test_compiled_functions_give_each_exception_name_one_type() -> None:
    # mypyc gives a local one type per function: after ``except WireError as exc``, a
    # later ``except Rejection as exc`` raised TypeError instead of handling the error.
    clashes = []
    for module in native.NATIVE_MODULES:
        path = native.source_path(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for name, types in _except_names(node).items():
                    if len(types) > 1:
                        clashes.append(f"{module}.{node.name}: {name} as {sorted(types)}")
    assert clashes == []


def test_an_extension_left_beside_a_module_no_longer_compiled_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module dropped from NATIVE_MODULES keeps its old extension in a checkout built
    # before: Python would import it instead of the source, so it counts as stale.
    package = tmp_path / "node" / "daemon"
    package.mkdir(parents=True)
    (package / "api.py").write_text("")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (package / f"api{suffix}").write_bytes(b"")
    (package / f"orphan_without_source{suffix}").write_bytes(b"")  # not a module's twin
    monkeypatch.setattr(native, "ROOT", tmp_path)
    monkeypatch.setattr(native, "compiled", lambda: [])
    assert native.orphans() == ["node.daemon.api"]
    assert native.orphan_paths() == [package / f"api{suffix}"]
    assert native.stale() == ["node.daemon.api"] and native.needs_build()


def test_a_node_refuses_to_run_a_stale_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from node.admin.cli import main
    from tests.cluster import Cluster

    cluster = Cluster(tmp_path, ["CN"], validators=["CN"])
    try:
        monkeypatch.setattr(native, "stale", lambda: ["ledger.codec"])
        assert main(["run", "--config", str(cluster["CN"].config)]) == 2
        err = capsys.readouterr().err
        assert "older than their sources: ledger.codec; run `make native`" in err
    finally:
        cluster.close()
