"""``customs-node``: set up a member's node (init, genesis) and run the daemon.

Every failure is a typed error; ``_EXIT`` is the one place that maps them to an exit
code, and ``main`` the one place that prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger.errors import GenesisError, KeyFileError, StoreError
from ledger.genesis import MEMBER_ID, Genesis
from ledger.keys import SigningKey
from node.config import ConfigError, NodeConfig, check_against_genesis, load_config
from node.config import render_default_config as render_config
from node.files import load_genesis, load_key, read_bounded, save_key

__all__ = ["CliError", "entrypoint", "load_node", "main"]

MAX_INPUT_FILE_BYTES = 1024 * 1024
CONFIG_NAME = "node.toml"
KEY_NAME = "node.key"
TOKEN_NAME = "api.token"


class CliError(Exception):
    """A command cannot do what was asked; the message says why."""


# Exit codes: 2 for anything the operator must fix in arguments or files, 1 for the
# environment (I/O failures), following sysexits' spirit without its many codes.
_EXIT: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, 2),
    (GenesisError, 2),
    (KeyFileError, 2),
    # Store.open at start-up: a store in use by another process, one made for another
    # genesis, or one that is not a ledger store at all.
    (StoreError, 2),
    (CliError, 2),
    (OSError, 1),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's usage errors and --help
        return int(exc.code or 0)
    try:
        result: int = args.handler(args)
        return result
    except tuple(t for t, _ in _EXIT) as exc:
        print(f"customs-node {args.command}: error: {exc}", file=sys.stderr)
        return next(code for kind, code in _EXIT if isinstance(exc, kind))


def entrypoint() -> None:
    sys.exit(main())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="customs-node", description="Customs Ledger node: set-up and daemon."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", help="create a node directory: key, API token, node.toml")
    init.add_argument("--data-dir", required=True, type=Path, help="the node's directory")
    init.add_argument("--id", required=True, help="this administration's member id, e.g. CN")
    init.add_argument("--listen", default="127.0.0.1:7101", help="HOST:PORT to serve on")
    init.add_argument("--passphrase-file", type=Path, help="encrypt the key with this passphrase")
    init.set_defaults(handler=cmd_init)
    gen = sub.add_parser("genesis", help="build and validate genesis.json from a members file")
    gen.add_argument("--chain-id", required=True)
    gen.add_argument("--members", required=True, type=Path, help="JSON list of members")
    gen.add_argument("-o", "--output", required=True, type=Path)
    gen.add_argument("--genesis-time", type=int, help="ms since the epoch (default: now)")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.set_defaults(handler=cmd_genesis)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", required=True, type=Path, help="path to node.toml")
    run.set_defaults(handler=cmd_run)
    return parser


# -- init ---------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    if not MEMBER_ID.match(args.id):
        raise CliError(f"--id {args.id!r} must match {MEMBER_ID.pattern}")
    host, port = _parse_listen(args.listen)
    passphrase = _read_passphrase(args.passphrase_file) if args.passphrase_file else None
    node_dir: Path = args.data_dir.absolute()
    if node_dir.exists() and (not node_dir.is_dir() or any(node_dir.iterdir())):
        raise CliError(f"{node_dir} exists and is not an empty directory; refusing to touch it")
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = SigningKey.generate()
    save_key(key, node_dir / KEY_NAME, passphrase)
    _write_new(node_dir / TOKEN_NAME, secrets.token_hex(32) + "\n", 0o600)
    passphrase_path = str(args.passphrase_file.absolute()) if args.passphrase_file else None
    text = render_config(
        args.id, listen_host=host, listen_port=port, passphrase_file=passphrase_path
    )
    _write_new(node_dir / CONFIG_NAME, text, 0o644)
    (node_dir / "data").mkdir(mode=0o700)
    print(key.public_key.hex)
    print(
        f"initialised {args.id} in {node_dir}; put genesis.json there, then run:\n"
        f"  customs-node run --config {node_dir / CONFIG_NAME}",
        file=sys.stderr,
    )
    return 0


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--listen {text!r} must be HOST:PORT with a port in 1..65535")
    return host.strip("[]"), int(port)


def _read_passphrase(path: Path) -> bytes:
    data = _read_limited(path, "--passphrase-file").rstrip(b"\r\n")
    if not data:
        raise CliError(f"--passphrase-file {path} is empty")
    return data


def _write_new(path: Path, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise CliError(f"{path} already exists") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _read_limited(path: Path, what: str) -> bytes:
    return read_bounded(path, MAX_INPUT_FILE_BYTES, CliError, what)


# -- genesis ------------------------------------------------------------------------


def cmd_genesis(args: argparse.Namespace) -> int:
    members, params = _read_members(args.members)
    genesis_time = args.genesis_time if args.genesis_time is not None else time.time_ns() // 10**6
    doc: dict[str, Any] = {
        "chain_id": args.chain_id,
        "genesis_time": genesis_time,
        "members": members,
    }
    if params is not None:
        doc["params"] = params
    genesis = Genesis.from_document(doc)
    # Write the normalised document (params spelled out) so operators see every value.
    full = Genesis.build(
        genesis.chain_id, genesis.genesis_time, list(genesis.members), genesis.params
    )
    output: Path = args.output
    if output.exists() and not args.force:
        raise CliError(f"{output} already exists (use --force to overwrite)")
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(full.to_json_bytes())
    tmp.replace(output)
    validators = ", ".join(full.validators.ids)
    print(full.hash_hex)
    print(f"wrote {output}: chain {full.chain_id}, validators {validators}", file=sys.stderr)
    return 0


def _read_members(path: Path) -> tuple[object, object | None]:
    data = _read_limited(path, "--members")
    try:
        doc = json.loads(data, parse_float=_no_float, parse_constant=_no_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(f"--members {path}: not valid JSON: {exc}") from exc
    except RecursionError as exc:  # CPython's parser recurses once per nesting level
        raise CliError(f"--members {path}: not valid JSON: nested too deeply") from exc
    if isinstance(doc, list):
        return doc, None
    if isinstance(doc, dict) and "members" in doc:
        unknown = sorted(set(doc) - {"members", "params"})
        if unknown:
            raise CliError(f"--members {path}: unknown top-level field {unknown[0]!r}")
        return doc["members"], doc.get("params")
    raise CliError(f"--members {path}: expected a JSON list or an object with 'members'")


def _no_float(text: str) -> object:
    raise CliError(f"number {text} is not an integer")


# -- run ----------------------------------------------------------------------------


def load_node(config_path: Path) -> tuple[NodeConfig, Genesis, SigningKey]:
    """Config, genesis and key, each validated, and checked against one another."""
    config = load_config(config_path)
    genesis = load_genesis(config.genesis_file)
    check_against_genesis(config, genesis)
    passphrase = (
        _read_passphrase(config.passphrase_file) if config.passphrase_file is not None else None
    )
    key = load_key(config.key_file, passphrase)
    member = genesis.member(config.member_id)
    assert member is not None  # check_against_genesis guarantees it
    if member.public_key != key.public_key:
        raise CliError(
            f"{config.key_file} holds key {key.public_key.hex[:16]}…, but genesis lists "
            f"{member.public_key.hex[:16]}… for {config.member_id}"
        )
    token = _read_limited(config.api_token_file, "api_token_file").strip()
    if len(token) < 16:
        raise CliError(f"api_token_file {config.api_token_file}: token shorter than 16 bytes")
    return config, genesis, key


def cmd_run(args: argparse.Namespace) -> int:
    config, genesis, key = load_node(args.config)
    # Imported here so that `init` and `genesis` start without loading the daemon.
    from node.daemon import run
    from node.logging_setup import setup_logging

    setup_logging(config.log_format, config.log_level)
    return run(config, genesis, key)
