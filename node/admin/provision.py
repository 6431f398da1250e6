"""A member's node directory: writing it, with a network's genesis, and loading it.

These are the steps behind ``customs-node init``, ``genesis``, ``testnet`` and ``run``;
the commands parse arguments and print, this module reads and creates files. Nothing
here ever replaces an existing key, token or config: every file is created with O_EXCL.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from ledger.genesis import Genesis
from ledger.keys import SigningKey
from node.daemon.config import (
    NodeConfig,
    Tuning,
    check_against_genesis,
    load_config,
    render_default_config,
    serves_tls,
)
from node.daemon.key_files import load_genesis, load_key, read_bounded, save_key
from node.daemon.tls import (
    CERT_NAME,
    ServerTls,
    load_certificate,
    load_server_tls,
    write_certificate,
)

__all__ = [
    "CONFIG_NAME",
    "GENESIS_NAME",
    "KEY_NAME",
    "MAX_INPUT_FILE_BYTES",
    "TOKEN_NAME",
    "CliError",
    "build_genesis",
    "init_node_dir",
    "load_node",
    "node_tls",
    "read_limited",
    "read_members",
    "read_passphrase",
    "write_genesis",
    "write_new",
]

MAX_INPUT_FILE_BYTES = 1024 * 1024
CONFIG_NAME = "node.toml"
KEY_NAME = "node.key"
TOKEN_NAME = "api.token"
GENESIS_NAME = "genesis.json"
DATA_NAME = "data"


class CliError(Exception):
    """A command cannot do what was asked; the message says why."""


def init_node_dir(
    node_dir: Path,
    member_id: str,
    key: SigningKey,
    *,
    listen_host: str,
    listen_port: int,
    passphrase: bytes | None = None,
    passphrase_file: Path | None = None,
    tuning: Tuning | None = None,
) -> Path:
    """Create ``node_dir`` (mode 0700) with key, its TLS certificate, API token, node.toml
    and data/; return the config's path. The directory must be absent or empty."""
    if node_dir.exists() and (not node_dir.is_dir() or any(node_dir.iterdir())):
        raise CliError(f"{node_dir} exists and is not an empty directory; refusing to touch it")
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    node_dir.chmod(0o700)  # an existing empty directory keeps its mode otherwise
    save_key(key, node_dir / KEY_NAME, passphrase)
    write_certificate(key, member_id, node_dir / CERT_NAME)
    write_new(node_dir / TOKEN_NAME, secrets.token_hex(32) + "\n", 0o600)
    text = render_default_config(
        member_id,
        listen_host=listen_host,
        listen_port=listen_port,
        passphrase_file=None if passphrase_file is None else str(passphrase_file),
        tuning=tuning,
    )
    config = node_dir / CONFIG_NAME
    write_new(config, text, 0o644)
    (node_dir / DATA_NAME).mkdir(mode=0o700)
    return config


def build_genesis(
    chain_id: str, genesis_time: int, members: object, params: object | None
) -> Genesis:
    """Validate members and params as genesis.json would be; return the normalised
    genesis, with every parameter spelled out so operators see each value."""
    doc: dict[str, Any] = {"chain_id": chain_id, "genesis_time": genesis_time, "members": members}
    if params is not None:
        doc["params"] = params
    genesis = Genesis.from_document(doc)
    return Genesis.build(
        genesis.chain_id, genesis.genesis_time, list(genesis.members), genesis.params
    )


def write_genesis(genesis: Genesis, output: Path, *, force: bool = False) -> None:
    if output.exists() and not force:
        raise CliError(f"{output} already exists (use --force to overwrite)")
    # Through a temporary name, so a node never reads half a genesis.
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(genesis.to_json_bytes())
    tmp.replace(output)


def read_members(path: Path) -> tuple[list[Any], object | None]:
    """A members file: a JSON list, or ``{"members": [...], "params": {...}}``."""
    data = read_limited(path, "--members")
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
        members = doc["members"]
        if not isinstance(members, list):
            raise CliError(f"--members {path}: 'members' must be a list")
        return members, doc.get("params")
    raise CliError(f"--members {path}: expected a JSON list or an object with 'members'")


def _no_float(text: str) -> object:
    raise CliError(f"number {text} is not an integer")


def read_limited(path: Path, what: str) -> bytes:
    return read_bounded(path, MAX_INPUT_FILE_BYTES, CliError, what)


def write_new(path: Path, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise CliError(f"{path} already exists") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def load_node(
    config_path: Path, *, check_modes: bool = True
) -> tuple[NodeConfig, Genesis, SigningKey]:
    """Config, genesis and key, each validated, and checked against one another; with
    ``check_modes``, the secrets and the data directory closed to other users."""
    config = load_config(config_path)
    if check_modes:
        check_file_modes(config)
    genesis = load_genesis(config.genesis_file)
    check_against_genesis(config, genesis)
    passphrase = (
        read_passphrase(config.passphrase_file) if config.passphrase_file is not None else None
    )
    key = load_key(config.key_file, passphrase)
    member = genesis.member(config.member_id)
    assert member is not None  # check_against_genesis guarantees it
    if member.public_key != key.public_key:
        raise CliError(
            f"{config.key_file} holds key {key.public_key.hex[:16]}…, but genesis lists "
            f"{member.public_key.hex[:16]}… for {config.member_id}"
        )
    token = read_limited(config.api_token_file, "api_token_file").strip()
    if len(token) < 16:
        raise CliError(f"api_token_file {config.api_token_file}: token shorter than 16 bytes")
    if serves_tls(config, genesis):
        load_certificate(config.cert_file, key)
    return config, genesis, key


def node_tls(config: NodeConfig, genesis: Genesis, key: SigningKey) -> ServerTls | None:
    """The TLS the node's port serves, or None for a plaintext loopback node."""
    if not serves_tls(config, genesis):
        return None
    passphrase = (
        read_passphrase(config.passphrase_file) if config.passphrase_file is not None else None
    )
    return load_server_tls(config.cert_file, config.key_file, key, passphrase)


# Like ssh with its keys: a secret another user can read, or a file another user can
# replace, is refused rather than used (``run --allow-insecure-files`` overrides).
_SECRET_BITS = 0o077  # group or others may read, write or execute
_SHARED_WRITE_BITS = 0o022  # group or others may write


def check_file_modes(config: NodeConfig) -> None:
    secrets_ = [("key_file", config.key_file), ("api_token_file", config.api_token_file)]
    if config.passphrase_file is not None:
        secrets_.append(("passphrase_file", config.passphrase_file))
    for name, path in secrets_:
        mode = _mode(path, name)
        if mode & _SECRET_BITS:
            raise CliError(
                f"{name} {path} has mode {mode:04o}: other users can reach it; "
                f"run `chmod 600 {path}` (or start with --allow-insecure-files)"
            )
    if not config.data_dir.exists():
        return  # the store creates it on first start
    mode = _mode(config.data_dir, "data_dir")
    if mode & _SHARED_WRITE_BITS:
        raise CliError(
            f"data_dir {config.data_dir} has mode {mode:04o}: other users can write to it; "
            f"run `chmod 700 {config.data_dir}` (or start with --allow-insecure-files)"
        )


def _mode(path: Path, name: str) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise CliError(f"{name} {path} does not exist") from None
    except OSError as exc:
        raise CliError(f"{name} {path}: {exc.strerror}") from exc


def read_passphrase(path: Path) -> bytes:
    data = read_limited(path, "--passphrase-file").rstrip(b"\r\n")
    if not data:
        raise CliError(f"--passphrase-file {path} is empty")
    return data
