"""The node's own files besides LevelDB: its key (PKCS#8 PEM, mode 0600) and genesis.json.

``ledger`` keeps only the pure conversions (``SigningKey.to_pem``/``from_pem``,
``Genesis.from_json_bytes``); reading and writing files is the shell's job.
"""

from __future__ import annotations

import os
from pathlib import Path

from ledger.errors import GenesisError, KeyFileError
from ledger.genesis import MAX_GENESIS_BYTES, Genesis
from ledger.keys import SigningKey

__all__ = ["MAX_KEY_FILE_BYTES", "load_genesis", "load_key", "read_bounded", "save_key"]

MAX_KEY_FILE_BYTES = 64 * 1024


def save_key(key: SigningKey, path: str | Path, passphrase: bytes | None = None) -> None:
    """Write ``key`` as PKCS#8 PEM with mode 0600; never overwrite an existing key."""
    path = Path(path)
    try:
        write_private_once(path, key.to_pem(passphrase))
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: a key file already exists") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc.strerror}") from exc


def write_private_once(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``, synced; FileExistsError if it
    exists (O_EXCL: a second `init` must never silently replace a member's identity)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def load_key(path: str | Path, passphrase: bytes | None = None) -> SigningKey:
    path = Path(path)
    data = read_bounded(path, MAX_KEY_FILE_BYTES, KeyFileError, "key file")
    try:
        return SigningKey.from_pem(data, passphrase)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def load_genesis(path: str | Path) -> Genesis:
    path = Path(path)
    try:
        data = read_bounded(path, MAX_GENESIS_BYTES, OSError, "genesis file")
    except OSError as exc:
        raise GenesisError("file", str(exc)) from exc
    return Genesis.from_json_bytes(data)


def read_bounded(path: Path, limit: int, error: type[Exception], what: str) -> bytes:
    """Read at most ``limit`` bytes of ``path``; anything larger or unreadable -> ``error``."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from exc
    if len(data) > limit:
        raise error(f"{path}: {what} larger than {limit} bytes")
    return data
