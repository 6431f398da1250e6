"""Checkpoint memory: the newest head this client verified, one file per chain.

This is what catches a node that serves an old view (hiding a later revocation) or a
forked one: every later answer must be the remembered head or a proven extension of it
(``heads.check_extends``), as rekor-cli does with its last seen checkpoint. Files live
under ``$XDG_STATE_HOME/customs/checkpoints/`` (default ``~/.local/state/customs/``),
named by the genesis hash, and are replaced atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ledger.genesis import Genesis
from node.client.errors import UsageError
from node.client.files import read_limited, save_atomically
from node.client.heads import Head

__all__ = ["CheckpointStore", "default_state_dir"]

_MAX_FILE_BYTES = 16 * 1024


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "customs"


class CheckpointStore:
    def __init__(self, state_dir: Path, genesis: Genesis) -> None:
        self.genesis = genesis
        self.path = state_dir / "checkpoints" / f"{genesis.hash_hex}.json"

    def load(self) -> Head | None:
        data = read_limited(self.path, _MAX_FILE_BYTES, "checkpoint", missing_ok=True)
        if data is None:
            return None
        try:
            obj = json.loads(data)
            if obj["genesis_hash"] != self.genesis.hash_hex:
                raise ValueError("it belongs to another genesis")
            return Head(
                height=_int(obj["height"]),
                hash=bytes.fromhex(obj["hash"]),
                time=_int(obj["time"]),
                log_size=_int(obj["log_size"]),
                log_root=bytes.fromhex(obj["log_root"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"{self.path}: not a checkpoint this client wrote ({exc}); move it away to "
                "start trusting on first use again"
            ) from exc

    def save(self, head: Head, node: str) -> None:
        record = {
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash_hex,
            **head.to_json(),
            "node": node,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        save_atomically(self.path, json.dumps(record, indent=1, sort_keys=True).encode())


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return value
