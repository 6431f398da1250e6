"""``customs-node``: set up a member's node (init, genesis), a local network (testnet),
and run the daemon.

Every failure is a typed error; ``_EXIT`` is the one place that maps them to an exit
code, and ``main`` the one place that prints them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ledger.errors import GenesisError, KeyFileError, StoreError
from ledger.genesis import MEMBER_ID
from ledger.keys import SigningKey
from node import native
from node.admin.provision import (
    CliError,
    build_genesis,
    init_node_dir,
    load_node,
    node_tls,
    read_members,
    read_passphrase,
    write_genesis,
)
from node.admin.status import cmd_status
from node.admin.testnet import DEFAULT_CHAIN_ID, cmd_testnet
from node.daemon.config import ConfigError, load_config
from node.daemon.key_files import load_key
from node.daemon.tls import TlsError, write_certificate

__all__ = ["CliError", "entrypoint", "load_node", "main"]


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
    (TlsError, 2),
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
    parser.add_argument("--version", action="version", version=f"customs-node {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", help="create a node directory: key, API token, node.toml")
    init.add_argument("--data-dir", required=True, type=Path, help="the node's directory")
    init.add_argument("--id", required=True, help="this administration's member id, e.g. CN")
    init.add_argument("--listen", default="127.0.0.1:7101", help="HOST:PORT to serve on")
    init.add_argument("--passphrase-file", type=Path, help="encrypt the key with this passphrase")
    init.set_defaults(handler=cmd_init)
    cert = sub.add_parser(
        "cert", help="write the node's TLS certificate (cert_file), self-signed for node.key"
    )
    cert.add_argument("--config", required=True, type=Path, help="path to node.toml")
    cert.set_defaults(handler=cmd_cert)
    gen = sub.add_parser("genesis", help="build and validate genesis.json from a members file")
    gen.add_argument("--chain-id", required=True)
    gen.add_argument("--members", required=True, type=Path, help="JSON list of members")
    gen.add_argument("-o", "--output", required=True, type=Path)
    gen.add_argument("--genesis-time", type=int, help="ms since the epoch (default: now)")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    gen.set_defaults(handler=cmd_genesis)
    _add_testnet_parser(sub)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", required=True, type=Path, help="path to node.toml")
    run.add_argument(
        "--allow-insecure-files",
        action="store_true",
        help="start even if the key, token or data directory is open to other users",
    )
    run.set_defaults(handler=cmd_run)
    status = sub.add_parser(
        "status",
        help="ask the local node (found from its node.toml) whether it is ready",
        description="Read the node's /v1/status and /readyz at the address its node.toml "
        "names. Exit 0 ready, 3 running but not ready, 4 not answering, 2 bad node.toml.",
    )
    _add_node_location(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=cmd_status)
    top = sub.add_parser(
        "top", help="a live dashboard of the local node: height, rates, peers, mempool"
    )
    _add_node_location(top)
    top.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.set_defaults(handler=cmd_top)
    _add_backup_parsers(sub)
    return parser


def _add_node_location(command: argparse.ArgumentParser) -> None:
    """``--config`` or ``--data-dir``: where the local node's node.toml is."""
    where = command.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help="path to node.toml")
    where.add_argument("--data-dir", type=Path, help="the node's directory holding node.toml")


def cmd_top(args: argparse.Namespace) -> int:
    from node.admin import top

    if not 0.1 <= args.interval <= 3600:
        raise CliError("--interval must be 0.1..3600 seconds")
    return top.cmd_top(args)


def _add_backup_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = sub.add_parser(
        "export",
        help="write a stopped node's chain (blocks and commits) to a file, for backups",
    )
    _add_node_location(export)
    export.add_argument("--out", required=True, type=Path, help="the file to write")
    export.add_argument("--force", action="store_true", help="overwrite an existing --out")
    export.set_defaults(handler=cmd_export)
    imp = sub.add_parser(
        "import",
        help="load an export into a node without a chain, verifying every block and commit",
        description="Every commit's quorum signatures are checked against genesis and every "
        "block re-executed before the chain is put in place; a refused file changes nothing.",
    )
    _add_node_location(imp)
    imp.add_argument("--in", dest="input", required=True, type=Path, help="an export file")
    imp.set_defaults(handler=cmd_import)


def cmd_export(args: argparse.Namespace) -> int:
    # Imported here, like the daemon in `run`: `init` and `status` need none of it.
    from node.admin import backup

    return backup.cmd_export(args)


def cmd_import(args: argparse.Namespace) -> int:
    from node.admin import backup

    return backup.cmd_import(args)


def version() -> str:
    """The installed distribution's version (pyproject.toml's), or "unknown" when run
    from a source tree that was never installed."""
    try:
        return importlib.metadata.version("customs-ledger")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# -- init ---------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    if not MEMBER_ID.match(args.id):
        raise CliError(f"--id {args.id!r} must match {MEMBER_ID.pattern}")
    host, port = _parse_listen(args.listen)
    passphrase = read_passphrase(args.passphrase_file) if args.passphrase_file else None
    node_dir: Path = args.data_dir.absolute()
    key = SigningKey.generate()
    config = init_node_dir(
        node_dir,
        args.id,
        key,
        listen_host=host,
        listen_port=port,
        passphrase=passphrase,
        passphrase_file=args.passphrase_file.absolute() if args.passphrase_file else None,
    )
    print(key.public_key.hex)
    print(
        f"initialised {args.id} in {node_dir}; put genesis.json there, then run:\n"
        f"  customs-node run --config {config}",
        file=sys.stderr,
    )
    return 0


def cmd_cert(args: argparse.Namespace) -> int:
    """For a node directory made before ``init`` wrote certificates, or a removed one."""
    config = load_config(args.config)
    passphrase = (
        read_passphrase(config.passphrase_file) if config.passphrase_file is not None else None
    )
    key = load_key(config.key_file, passphrase)
    write_certificate(key, config.member_id, config.cert_file)
    print(f"wrote {config.cert_file} for key {key.public_key.hex}", file=sys.stderr)
    return 0


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--listen {text!r} must be HOST:PORT with a port in 1..65535")
    return host.strip("[]"), int(port)


# -- genesis ------------------------------------------------------------------------


def cmd_genesis(args: argparse.Namespace) -> int:
    members, params = read_members(args.members)
    genesis_time = args.genesis_time if args.genesis_time is not None else time.time_ns() // 10**6
    genesis = build_genesis(args.chain_id, genesis_time, members, params)
    write_genesis(genesis, args.output, force=args.force)
    validators = ", ".join(genesis.validators.ids)
    print(genesis.hash_hex)
    print(
        f"wrote {args.output}: chain {genesis.chain_id}, validators {validators}", file=sys.stderr
    )
    return 0


# -- testnet ------------------------------------------------------------------------


def _add_testnet_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    net = sub.add_parser(
        "testnet",
        help="write a whole local network: every member's node directory and one genesis",
        description="Write DIR/<ID>/ (key, API token, node.toml, genesis.json, data/) for "
        "every member and DIR/genesis.json, all on HOST. Nothing is written unless all of "
        "it can be.",
    )
    net.add_argument("--dir", required=True, type=Path, help="absent or empty directory")
    net.add_argument(
        "--members",
        required=True,
        metavar="FILE|N",
        help="N members that all validate, or a JSON list of members as in genesis "
        "without public_key and endpoints (id, name, jurisdictions, roles)",
    )
    net.add_argument("--chain-id", default=DEFAULT_CHAIN_ID)
    net.add_argument("--host", default="127.0.0.1", help="address every node listens on")
    net.add_argument(
        "--tls",
        action="store_true",
        help="https:// endpoints: every node serves TLS 1.3 with its certificate "
        "(required for a --host that is not loopback)",
    )
    net.add_argument(
        "--base-port", type=int, metavar="P", help="ports P, P+1, ... (default: free ports)"
    )
    net.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="genesis parameter, e.g. block_interval_ms=200 (repeatable)",
    )
    net.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="node.toml setting for every node, e.g. timeouts.propose_ms=400 (repeatable)",
    )
    net.set_defaults(handler=cmd_testnet)


# -- run ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config, genesis, key = load_node(args.config, check_modes=not args.allow_insecure_files)
    if stale := native.stale():
        # Python would import the old extension instead of the edited source.
        raise CliError(
            f"compiled modules are older than their sources: {', '.join(stale)}; "
            "run `make native` (or reinstall the package)"
        )
    # Imported here so that `init` and `genesis` start without loading the daemon.
    from node.daemon.logs import setup_logging
    from node.daemon.node import run

    tls = node_tls(config, genesis, key)
    setup_logging(config.log_format, config.log_level)
    return run(config, genesis, key, tls)
