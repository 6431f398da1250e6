"""Where the client's settings come from: a flag, else an environment variable, else
``$XDG_CONFIG_HOME/customs/config.toml`` (default ``~/.config/customs/config.toml``)::

    genesis = "/etc/customs/genesis.json"
    nodes = ["https://customs-node.example.nl", "https://ledger.example.de"]
    timeout = 5
    trust = "genesis"   # or "system": https nodes outside genesis, by the system store
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import GenesisError
from ledger.genesis import MAX_GENESIS_BYTES, Genesis
from node.client.errors import UsageError
from node.client.files import read_file, read_limited

__all__ = ["DEFAULT_TIMEOUT", "Settings", "config_path", "load_settings"]

DEFAULT_TIMEOUT = 5.0
_KEYS = {"genesis", "nodes", "timeout", "trust"}
TRUST_CHOICES = ("genesis", "system")
_MAX_CONFIG_BYTES = 64 * 1024


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "customs" / "config.toml"


@dataclass(frozen=True)
class Settings:
    genesis_path: Path | None
    nodes: tuple[str, ...]
    timeout: float
    trust: str = "genesis"

    def genesis(self) -> Genesis:
        if self.genesis_path is None:
            raise UsageError(
                "no genesis: give --genesis FILE, set CUSTOMS_GENESIS, or set genesis in "
                f"{config_path()}"
            )
        return read_genesis(self.genesis_path)


def read_genesis(path: Path) -> Genesis:
    data = read_file(path, MAX_GENESIS_BYTES, "genesis file")
    try:
        return Genesis.from_json_bytes(data)
    except GenesisError as exc:
        raise UsageError(f"{path}: not a valid genesis file: {exc}") from exc


def _config() -> dict[str, Any]:
    path = config_path()
    data = read_limited(path, _MAX_CONFIG_BYTES, "config file", missing_ok=True)
    if data is None:
        return {}
    try:
        config = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(config) - _KEYS
    if unknown:
        raise UsageError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    return config


def load_settings(
    genesis: str | None,
    nodes: list[str] | None,
    timeout: float | None,
    trust: str | None = None,
) -> Settings:
    """Resolve the settings; a malformed value anywhere is a UsageError naming it."""
    config = _config()
    genesis = genesis or os.environ.get("CUSTOMS_GENESIS") or config.get("genesis")
    if genesis is not None and not isinstance(genesis, str):
        raise UsageError(f"{config_path()}: genesis must be a path string")
    if not nodes:
        env = os.environ.get("CUSTOMS_NODES")
        raw = env.replace(",", " ").split() if env else config.get("nodes", [])
        if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
            raise UsageError(f"{config_path()}: nodes must be a list of URLs")
        nodes = raw
    for url in nodes:
        check_url(url)
    if timeout is None:
        value = config.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{config_path()}: timeout must be a number of seconds")
        timeout = float(value)
    if not 0 < timeout <= 300:
        raise UsageError(f"timeout must be between 0 and 300 seconds, not {timeout}")
    trust = trust or os.environ.get("CUSTOMS_TRUST") or config.get("trust", "genesis")
    if trust not in TRUST_CHOICES:
        raise UsageError(f"trust must be one of {list(TRUST_CHOICES)}, not {trust!r}")
    return Settings(
        Path(genesis) if genesis else None, tuple(dict.fromkeys(nodes)), timeout, str(trust)
    )


def check_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or any(c.isspace() for c in url):
        raise UsageError(f"node URL {url!r} must look like http://host:port")
    return url
