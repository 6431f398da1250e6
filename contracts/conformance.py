"""Run conformance vectors: ``python -m contracts.conformance [--store DIR] PATH...``.

Each step is signed, encoded to wire bytes and executed as its own block at its
``block_time`` through ``contracts.execute_block`` — the node's own path. Prints one line
per unmet expectation, then ``N passed, M failed``. Exit 0 when every expectation is
met, 1 when any is not, 2 when a vector file is unreadable or invalid (or the --store
ledger cannot be written).

With ``--store DIR`` (one vector): DIR/genesis.json is the vector's genesis and
DIR/ledger a LevelDB store. A step whose entry is accepted becomes one block at its
``block_time``, staged by ``ledger.chain`` (the node's own staging) and committed with
precommits signed by every validator of the vector, so other tools can read it like any
node's ledger. A rejected step changes nothing and commits no block.

This module is the only one in ``contracts/`` that touches files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.executor import BlockResult
from contracts.runner import Sink, run_vector
from contracts.state import LedgerState
from contracts.vectors import MAX_VECTOR_BYTES, Vector, VectorError, parse_vector, seed_key
from ledger.chain import append_signed
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.store import Store

__all__ = ["StoreSink", "collect", "load_vector", "main"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def load_vector(path: Path) -> Vector:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_VECTOR_BYTES + 1)
    except OSError as exc:
        raise VectorError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_vector(str(path), data)


def collect(paths: Sequence[str]) -> list[Path]:
    """Files as given; folders expand to their ``*.json`` files in name order."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                raise VectorError(f"{path}: folder holds no *.json vector files")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise VectorError(f"{path}: no such file or folder")
    return files


GENESIS_FILE = "genesis.json"
LEDGER_DIR = "ledger"


class StoreSink:
    def __init__(self, store: Store, genesis: Genesis, keys: Sequence[tuple[str, SigningKey]]):
        self._store = store
        self._genesis = genesis
        self._keys = keys
        self._state = LedgerState(store)

    @classmethod
    def create(cls, directory: Path, vector: Vector) -> StoreSink:
        """A new ledger in ``directory``; refuses a directory that already holds one."""
        genesis = vector.genesis
        genesis_path, ledger_path = directory / GENESIS_FILE, directory / LEDGER_DIR
        if genesis_path.exists() or ledger_path.exists():
            raise VectorError(f"{directory}: already holds {GENESIS_FILE} or {LEDGER_DIR}/")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            genesis_path.write_bytes(genesis.to_json_bytes())
            store = Store.open(ledger_path, genesis)
        except (OSError, LedgerError) as exc:
            raise VectorError(f"{directory}: cannot create the ledger: {exc}") from exc
        keys = [(m.id, seed_key(vector.seeds[m.id])) for m in genesis.validators.members]
        return cls(store, genesis, keys)

    @property
    def state(self) -> LedgerState:
        return self._state

    def commit(self, block_time: int, wires: Sequence[bytes], result: BlockResult) -> None:
        if not result.accepted:
            return
        accepted = [(a.entry, a.subjects) for a in result.accepted]
        append_signed(
            self._store, self._genesis, accepted, result.writes, time=block_time, signers=self._keys
        )

    def close(self) -> None:
        self._store.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.conformance", description="Run conformance vectors."
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="vector files or folders")
    parser.add_argument(
        "--store", metavar="DIR", help="keep a LevelDB ledger of the run in DIR (one vector)"
    )
    return parser


def _open(args: argparse.Namespace) -> tuple[list[Vector], Sink | None]:
    vectors = [load_vector(p) for p in collect(args.paths)]
    if args.store is None:
        return vectors, None
    if len(vectors) != 1:
        raise VectorError(f"--store takes exactly one vector file, got {len(vectors)}")
    return vectors, StoreSink.create(Path(args.store), vectors[0])


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        vectors, sink = _open(args)
    except VectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    passed = failed = 0
    try:
        for vector in vectors:
            ok, mismatches = run_vector(vector, sink)
            passed += ok
            failed += len(mismatches)
            for mismatch in mismatches:
                print(mismatch.line())
    except LedgerError as exc:
        # Only --store writes; the executor itself answers every entry with a verdict.
        print(f"error: --store {args.store}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        if sink is not None:
            sink.close()
    print(f"{passed} passed, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
