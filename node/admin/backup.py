"""``customs-node export`` and ``customs-node import``: a node's chain as one file, for
backups and for seeding a new node without syncing it from peers.

The file is the chain's blocks with their commits, nothing derived: an import re-checks
every commit's quorum signatures against the genesis validators and re-executes every
block (entry signatures and rules included), exactly as sync does, so a file from
anywhere can be imported without trusting it. The state, the search indexes and the
Merkle log are rebuilt by that re-execution.

Format (docs/operations.md): the line ``customs-ledger export 1``, then frames of a
u32 big-endian length and canonical msgpack:

    {"chain", "genesis" (hash hex), "height", "version"}    once
    {"block": <Block.encode()>, "commit": <Commit.encode()>}   heights 1..height
    {"end": height, "head": <header hash>}                     once

The trailer makes a truncated file detectable. An import is built in a directory beside
the store and renamed into place only once every block has passed, so a refused file
changes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ledger.block import Block, Commit, verify_commit
from ledger.codec import decode, encode
from ledger.errors import BlockFormatError, CodecError, CommitError, StoreError
from ledger.genesis import Genesis
from ledger.store import Store
from node.admin.provision import CliError
from node.admin.status import config_path
from node.daemon.block_maker import InvalidBlock
from node.daemon.chain import Chain
from node.daemon.config import NodeConfig, load_config
from node.daemon.indexes import ensure_indexes
from node.daemon.key_files import load_genesis
from node.daemon.mempool import Mempool

__all__ = ["MAGIC", "BadExport", "cmd_export", "cmd_import", "read_frames", "write_frame"]

MAGIC = b"customs-ledger export 1\n"
VERSION = 1
_LENGTH = struct.Struct(">I")


class BadExport(CliError):
    """The file is not an export this network's node may take; nothing was written."""


def write_frame(out: BinaryIO, obj: object) -> None:
    data = encode(obj)
    out.write(_LENGTH.pack(len(data)))
    out.write(data)


def read_frames(source: BinaryIO, max_frame: int) -> Iterator[Any]:
    """The frames after the magic line, decoded; BadExport on anything malformed."""
    if source.read(len(MAGIC)) != MAGIC:
        raise BadExport("not a customs-ledger export (the first line is not the format's)")
    while True:
        prefix = source.read(_LENGTH.size)
        if not prefix:
            return
        if len(prefix) < _LENGTH.size:
            raise BadExport("the file ends inside a frame length")
        (length,) = _LENGTH.unpack(prefix)
        if length > max_frame:
            raise BadExport(f"a frame of {length} bytes is larger than any block can be")
        data = source.read(length)
        if len(data) != length:
            raise BadExport("the file ends inside a frame: it was cut short")
        try:
            yield decode(data, max_bytes=max_frame)
        except CodecError as exc:
            raise BadExport(f"a frame is not canonical msgpack: {exc}") from exc


def _max_frame(genesis: Genesis) -> int:
    params = genesis.params
    return 64 * 1024 + params.max_block_entries * (params.max_entry_bytes + 8)


def _node(args: argparse.Namespace) -> tuple[NodeConfig, Genesis]:
    config = load_config(config_path(args))
    return config, load_genesis(config.genesis_file)


# ---- export ---------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    config, genesis = _node(args)
    out: Path = args.out
    if out.exists() and not args.force:
        raise CliError(f"--out {out} exists; choose another name or pass --force")
    store_path = config.data_dir / "ledger"
    if not store_path.exists():
        raise CliError(f"{store_path} holds no chain to export")
    partial = out.with_name(out.name + ".partial")
    with Store.open(store_path, genesis) as store:
        height = store.height
        try:
            with partial.open("wb") as handle:
                handle.write(MAGIC)
                write_frame(
                    handle,
                    {
                        "chain": genesis.chain_id,
                        "genesis": genesis.hash_hex,
                        "height": height,
                        "version": VERSION,
                    },
                )
                for h in range(1, height + 1):
                    block, commit = store.get_block(h), store.get_commit(h)
                    if block is None or commit is None:
                        raise StoreError(f"the store lacks block or commit {h}")
                    write_frame(handle, {"block": block.encode(), "commit": commit.encode()})
                head = store.head_hash()
                write_frame(handle, {"end": height, "head": head or b""})
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    print(f"exported {height} blocks of {genesis.chain_id} to {out}", file=sys.stderr)
    return 0


# ---- import ---------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    config, genesis = _node(args)
    target = config.data_dir / "ledger"
    if target.exists():
        # Opening it also refuses a store that a running node holds.
        with Store.open(target, genesis) as existing:
            if existing.height > 0:
                raise CliError(
                    f"{target} already holds a chain (height {existing.height}); import "
                    "only into a node without one (stop it and move its data_dir/ledger away)"
                )
    work = config.data_dir / "ledger.importing"
    if work.exists():
        shutil.rmtree(work)  # what a cut-short import left: never a store in use
    try:
        with args.input.open("rb") as source:
            height = _import_into(work, genesis, source)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)  # an empty store: checked above
    work.rename(target)
    with contextlib.suppress(OSError):
        fd = os.open(config.data_dir, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename survives a power loss
        finally:
            os.close(fd)
    print(
        f"imported {height} blocks of {genesis.chain_id} into {target}, every commit and "
        "block verified",
        file=sys.stderr,
    )
    return 0


def _import_into(work: Path, genesis: Genesis, source: BinaryIO) -> int:
    params = genesis.params
    frames = read_frames(source, _max_frame(genesis))
    first = next(frames, None)
    if not isinstance(first, dict) or set(first) != {"chain", "genesis", "height", "version"}:
        raise BadExport("the file does not start with an export's description")
    if first["version"] != VERSION:
        raise BadExport(f"export format version {first['version']!r}; this node reads {VERSION}")
    if first["chain"] != genesis.chain_id or first["genesis"] != genesis.hash_hex:
        raise BadExport(
            f"the export is of chain {first['chain']!r} (genesis {str(first['genesis'])[:16]}…), "
            f"not this node's {genesis.chain_id!r} ({genesis.hash_hex[:16]}…)"
        )
    declared = first["height"]
    if type(declared) is not int or declared < 0:
        raise BadExport("the export's height is not a non-negative integer")
    with Store.open(work, genesis) as store:
        ensure_indexes(store)
        # An empty pool: no entry counts as verified on intake, so every signature is
        # checked again.
        pool = Mempool(max_entries=1, max_bytes=1, entry_window_ms=params.entry_window_ms)
        chain = Chain(store, genesis, pool)
        last_commit: Commit | None = None
        for frame in frames:
            if isinstance(frame, dict) and set(frame) == {"end", "head"}:
                if frame["end"] != store.height or store.height != declared:
                    raise BadExport(
                        f"the export says {declared} blocks and ends after {store.height}"
                    )
                if frame["head"] != (store.head_hash() or b""):
                    raise BadExport("the export's last header hash is not its last block's")
                return store.height
            height = store.height + 1
            try:
                if not isinstance(frame, dict) or set(frame) != {"block", "commit"}:
                    raise BlockFormatError("not a block frame")
                block = Block.decode(
                    frame["block"],
                    max_entry_bytes=params.max_entry_bytes,
                    max_entries=params.max_block_entries,
                )
                commit = Commit.decode(frame["commit"])
                if block.header.height != height:
                    raise BlockFormatError(f"the block is for height {block.header.height}")
                verify_commit(
                    commit,
                    genesis.validators,
                    genesis.chain_id,
                    height=height,
                    block=block.header.hash(),
                )
                staged = chain.check(block, last_commit, now_ms=None)
            except (BlockFormatError, CommitError, InvalidBlock, TypeError) as exc:
                raise BadExport(f"block {height} is refused: {exc}") from exc
            chain.commit(block, commit, staged, last_commit)
            last_commit = commit
    raise BadExport(f"the file ends after block {store.height} without its trailer: cut short")
