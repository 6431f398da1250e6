"""The modules compiled with mypyc, and whether the running build of them is current.

Every entry a node takes crosses these modules: decoding, the stateless rules, pooling,
executing and staging blocks, the store, the peer wire format and the consensus core.
They are plain, fully typed Python; ``setup.py`` compiles them to C extensions with
mypyc (docs/performance.md gives the gain). The asyncio shell around them (node.daemon's
node, chain, consensus host, sync, queries and API) is not compiled: measured, it gained
nothing, and its sources stay free of mypyc's constraints.
Where no C compiler is available, or ``CUSTOMS_LEDGER_PURE=1`` is set (``PURE_ENV``),
the same sources run interpreted.

A development checkout builds the extensions next to the sources, and Python imports an
extension in preference to the ``.py`` beside it: edit a source and forget to rebuild,
and the old code would run. So the build records each source's SHA-256 in
``SOURCES_FILE`` and ``stale()`` names any compiled module whose source has changed
since, and any extension left beside a module that is no longer compiled; the test
suite refuses to run on a stale build, and so does every node the tests start
(``make`` rebuilds, deleting the left-overs).

This module is also read by ``setup.py`` before anything is installed, so it imports
nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
from pathlib import Path

__all__ = [
    "NATIVE_MODULES",
    "PURE_ENV",
    "SOURCES_FILE",
    "compiled",
    "describe",
    "needs_build",
    "orphans",
    "source_digests",
    "stale",
]

PURE_ENV = "CUSTOMS_LEDGER_PURE"

NATIVE_MODULES: tuple[str, ...] = (
    "ledger.codec",
    "ledger.entry",
    "ledger.statemap",
    "ledger.merkle",
    "ledger.merkle_log",
    "ledger.history",
    "ledger.chain",
    "ledger.block",
    "ledger.store",
    "ledger.genesis",
    "contracts.executor",
    "contracts.state",
    "contracts.schema",
    "contracts.rules",
    "contracts.identifiers",
    "contracts.lifecycle",
    "contracts.certificates",
    "contracts.shipments",
    "contracts.kinds",
    "node.daemon.mempool",
    "node.daemon.gossip_payloads",
    "node.daemon.block_maker",
    "node.peers.frames",
    "node.peers.seen",
    "node.consensus.core",
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "contracts", "node")
# Written by setup.py next to the extensions it builds in place; not under version control.
SOURCES_FILE = ROOT / "node" / "native-sources.json"


def source_path(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def source_digests() -> dict[str, str]:
    """SHA-256 of each compiled module's source as it is now."""
    return {m: hashlib.sha256(source_path(m).read_bytes()).hexdigest() for m in NATIVE_MODULES}


def compiled() -> list[str]:
    """The modules of ``NATIVE_MODULES`` that import as C extensions here."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for module in NATIVE_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin is not None and spec.origin.endswith(suffixes):
            found.append(module)
    return found


def _extension_files() -> list[tuple[str, Path]]:
    """(module, path) of every extension file beside a source in the packages."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            suffix = next((s for s in suffixes if path.name.endswith(s)), None)
            if suffix is None:
                continue
            stem = path.name[: -len(suffix)]
            if path.with_name(stem + ".py").exists():
                parts = path.relative_to(ROOT).parent.parts
                found.append((".".join((*parts, stem)), path))
    return found


def orphan_paths() -> list[Path]:
    """Extension files of modules not (or no longer) in ``NATIVE_MODULES``: one built
    before a module left the list would still be imported in preference to its source.
    ``setup.py`` deletes them before it builds."""
    return [path for module, path in _extension_files() if module not in NATIVE_MODULES]


def orphans() -> list[str]:
    """The modules ``orphan_paths`` would run from a left-over extension."""
    return [module for module, _ in _extension_files() if module not in NATIVE_MODULES]


def stale() -> list[str]:
    """Compiled modules whose source differs from the one they were built from, and
    extensions left from modules no longer compiled (``orphans``)."""
    left = orphans()
    modules = compiled()
    if not modules:
        return left
    try:
        built = json.loads(SOURCES_FILE.read_text())
    except (OSError, ValueError):
        return modules + left  # extensions without a record of their sources: trust none
    now = source_digests()
    return [m for m in modules if built.get(m) != now[m]] + left


def needs_build() -> bool:
    """Whether ``make`` should (re)build the extensions: they are stale, or missing and
    not declined with ``CUSTOMS_LEDGER_PURE=1``."""
    return bool(stale()) or (not compiled() and not os.environ.get(PURE_ENV))


def describe() -> str:
    """One line for logs and reports: which build of the hot path runs here."""
    modules = compiled()
    if not modules:
        return "hot path interpreted"
    text = f"hot path compiled with mypyc ({len(modules)} modules)"
    if old := stale():
        text += f", STALE against their sources: {', '.join(old)}"
    return text
