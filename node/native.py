"""The modules compiled with mypyc, and whether the running build of them is current.

Every entry a node takes crosses these modules: decoding, the stateless rules, pooling,
executing and staging blocks, the store, the peer wire format and the consensus core.
They are plain, fully typed Python; ``setup.py`` compiles them to C extensions with
mypyc, which takes about a seventh off a node's CPU per entry (docs/performance.md).
Where no C compiler is available, or ``CUSTOMS_LEDGER_PURE=1`` is set (``PURE_ENV``),
the same sources run interpreted.

A development checkout builds the extensions next to the sources, and Python imports an
extension in preference to the ``.py`` beside it: edit a source and forget to rebuild,
and the old code would run. So the build records each source's SHA-256 in
``SOURCES_FILE`` and ``stale()`` names any compiled module whose source has changed
since; the test suite refuses to run on a stale build (``make`` rebuilds).

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
    "node.daemon.node",
    "node.daemon.queries",
    "node.daemon.consensus_host",
    "node.daemon.block_sync",
    "node.peers.frames",
    "node.peers.seen",
    "node.consensus.core",
)

ROOT = Path(__file__).resolve().parent.parent
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


def stale() -> list[str]:
    """Compiled modules whose source differs from the one they were built from."""
    modules = compiled()
    if not modules:
        return []
    try:
        built = json.loads(SOURCES_FILE.read_text())
    except (OSError, ValueError):
        return modules  # extensions without a record of their sources: trust none
    now = source_digests()
    return [m for m in modules if built.get(m) != now[m]]


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
