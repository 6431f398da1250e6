"""A node's configuration: ``node.toml`` parsed into a frozen, fully validated NodeConfig.

Every limit the daemon enforces is named here, so an operator finds each one in the file
and a test can exercise it at and past its value. Unknown keys are refused: a misspelt
limit silently falling back to its default is worse than a refusal to start.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ledger.genesis import MEMBER_ID, Genesis
from node.consensus.events import TimeoutConfig
from node.daemon.tls import is_loopback_host, is_loopback_url

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "ConfigError",
    "Limits",
    "NodeConfig",
    "Timeouts",
    "Tuning",
    "check_against_genesis",
    "load_config",
    "parse_config",
    "parse_settings",
    "peer_urls",
    "render_default_config",
    "serves_tls",
]

MAX_CONFIG_BYTES = 256 * 1024
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
_MIB = 1024 * 1024


class ConfigError(Exception):
    """node.toml is unusable; ``key`` names the offending setting (dotted), ``problem`` why."""

    def __init__(self, key: str, problem: str, *, path: Path | None = None) -> None:
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}{key}: {problem}")
        self.key = key
        self.problem = problem
        self.path = path


@dataclass(frozen=True, slots=True)
class Limits:
    """Size and count limits; each is enforced by the component that names it."""

    max_request_bytes: int = 4 * _MIB
    max_entries_per_request: int = 1000
    max_frame_bytes: int = 16 * _MIB
    mempool_max_entries: int = 50_000
    mempool_max_bytes: int = 64 * _MIB
    max_peer_connections: int = 64
    max_unauthenticated_peers: int = 16
    max_unauthenticated_per_address: int = 4
    max_api_connections: int = 256
    max_api_writes: int = 64
    peer_send_queue: int = 16_384
    gossip_seen_cache: int = 100_000
    sync_requests_per_s: int = 10
    sync_answer_bytes: int = 16 * _MIB
    max_event_streams: int = 64
    event_buffer: int = 4096


# The consensus timeouts' defaults live with the core that schedules them.
_CONSENSUS = TimeoutConfig()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Consensus timeouts (Tendermint: base + round * delta) and peer-link timings, in ms."""

    propose_ms: int = _CONSENSUS.propose_ms
    propose_delta_ms: int = _CONSENSUS.propose_delta_ms
    prevote_ms: int = _CONSENSUS.prevote_ms
    prevote_delta_ms: int = _CONSENSUS.prevote_delta_ms
    precommit_ms: int = _CONSENSUS.precommit_ms
    precommit_delta_ms: int = _CONSENSUS.precommit_delta_ms
    handshake_ms: int = 5000
    peer_auth_ms: int = 2000
    heartbeat_ms: int = 10_000
    reconnect_min_ms: int = 200
    reconnect_max_ms: int = 10_000
    request_head_ms: int = 10_000
    request_body_ms: int = 30_000

    def consensus(self) -> TimeoutConfig:
        """The consensus core's schedule: every step's base and per-round delta."""
        return TimeoutConfig(
            propose_ms=self.propose_ms,
            propose_delta_ms=self.propose_delta_ms,
            prevote_ms=self.prevote_ms,
            prevote_delta_ms=self.prevote_delta_ms,
            precommit_ms=self.precommit_ms,
            precommit_delta_ms=self.precommit_delta_ms,
        )


# (lowest, highest) for every integer setting: keeps a typo from making a node that
# cannot work (a 0-byte frame limit) or that one peer could exhaust.
_LIMIT_BOUNDS: dict[str, tuple[int, int]] = {
    "max_request_bytes": (1024, 1024 * _MIB),
    "max_entries_per_request": (1, 100_000),
    "max_frame_bytes": (1024, 1024 * _MIB),
    "mempool_max_entries": (1, 10_000_000),
    "mempool_max_bytes": (1024, 16 * 1024 * _MIB),
    "max_peer_connections": (1, 4096),
    "max_unauthenticated_peers": (1, 4096),
    "max_unauthenticated_per_address": (1, 4096),
    "max_api_connections": (1, 65_536),
    "max_api_writes": (1, 65_536),
    "peer_send_queue": (1, 1_000_000),
    "gossip_seen_cache": (16, 10_000_000),
    "sync_requests_per_s": (1, 100_000),
    "sync_answer_bytes": (64 * 1024, 16 * 1024 * _MIB),
    "max_event_streams": (1, 4096),
    "event_buffer": (16, 1_000_000),
}
_TIMEOUT_BOUNDS: dict[str, tuple[int, int]] = {
    name: (1, 3_600_000) for name in (f.name for f in fields(Timeouts))
}


@dataclass(frozen=True, slots=True)
class Tuning:
    """The settings a node can take without naming its own files or addresses."""

    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    log_format: str = "text"
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A validated node.toml; every path is absolute."""

    member_id: str
    config_path: Path
    data_dir: Path
    genesis_file: Path
    key_file: Path
    api_token_file: Path
    cert_file: Path = Path("node.crt")
    passphrase_file: Path | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 7101
    # None: TLS when this member's genesis endpoint is https:// (``serves_tls``).
    listen_tls: bool | None = None
    # None means "every other member's genesis endpoints".
    peers: Mapping[str, str] | None = None
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    log_format: str = "text"
    log_level: str = "info"


_TOP_KEYS = {
    "id",
    "data_dir",
    "genesis_file",
    "key_file",
    "api_token_file",
    "cert_file",
    "passphrase_file",
    "listen",
    "peers",
    "limits",
    "timeouts",
    "log",
}


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate ``path``; raise ConfigError naming the key and the problem."""
    path = Path(path).absolute()
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError("file", f"cannot read: {exc.strerror}", path=path) from exc
    return parse_config(data, path)


def parse_config(data: bytes, path: Path) -> NodeConfig:
    """Validate node.toml's bytes; relative paths in it are taken from ``path``'s folder.
    Raise ConfigError naming the key and the problem (scripts/fuzz.py drives this)."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("file", f"larger than {MAX_CONFIG_BYTES} bytes", path=path)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError("file", "not UTF-8 text", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"not valid TOML: {exc}", path=path) from exc
    except RecursionError as exc:  # tomllib recurses once per nesting level
        raise ConfigError("file", "not valid TOML: nested too deeply", path=path) from exc
    try:
        return _parse(doc, path)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, path=path) from None


def _parse(doc: dict[str, Any], path: Path) -> NodeConfig:
    _reject_unknown(doc, _TOP_KEYS, "")
    member_id = doc.get("id")
    if not isinstance(member_id, str) or not MEMBER_ID.match(member_id):
        raise ConfigError("id", f"must be a member id matching {MEMBER_ID.pattern}")
    base = path.parent
    listen = _table(doc, "listen")
    _reject_unknown(listen, {"host", "port", "tls"}, "listen.")
    tls = listen.get("tls")
    if tls is not None and not isinstance(tls, bool):
        raise ConfigError("listen.tls", "must be true or false")
    host = listen.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host or len(host) > 255:
        raise ConfigError("listen.host", "must be a non-empty host name or address")
    passphrase = doc.get("passphrase_file")
    tuning = _tuning(doc)
    return NodeConfig(
        member_id=member_id,
        config_path=path,
        data_dir=_path(doc, "data_dir", "data", base),
        genesis_file=_path(doc, "genesis_file", "genesis.json", base),
        key_file=_path(doc, "key_file", "node.key", base),
        api_token_file=_path(doc, "api_token_file", "api.token", base),
        cert_file=_path(doc, "cert_file", "node.crt", base),
        passphrase_file=None if passphrase is None else _path(doc, "passphrase_file", "", base),
        listen_host=host,
        listen_port=_int(listen, "port", 7101, (0, 65535), "listen."),
        listen_tls=tls,
        peers=_peers(doc),
        limits=tuning.limits,
        timeouts=tuning.timeouts,
        log_format=tuning.log_format,
        log_level=tuning.log_level,
    )


def _tuning(doc: Mapping[str, Any]) -> Tuning:
    log = _table(doc, "log")
    _reject_unknown(log, {"format", "level"}, "log.")
    return Tuning(
        limits=Limits(**_ints(_table(doc, "limits"), _LIMIT_BOUNDS, "limits.")),
        timeouts=_timeouts(_table(doc, "timeouts")),
        log_format=_choice(log, "format", "text", LOG_FORMATS),
        log_level=_choice(log, "level", "info", LOG_LEVELS),
    )


_TUNING_TABLES = ("limits", "timeouts", "log")


def parse_settings(settings: Mapping[str, object]) -> Tuning:
    """``table.key`` -> value pairs (``timeouts.propose_ms``), checked as node.toml is.

    Only the tables a node can share with others are settable this way: a node's id,
    paths, listen address and peers belong to the command that lays out its directory.
    """
    doc: dict[str, dict[str, object]] = {}
    for dotted, value in settings.items():
        table, _, key = dotted.partition(".")
        if table not in _TUNING_TABLES or not key or "." in key:
            wanted = ", ".join(f"{t}.KEY" for t in _TUNING_TABLES)
            raise ConfigError(dotted, f"not a settable key (settable: {wanted})")
        doc.setdefault(table, {})[key] = value
    return _tuning(doc)


def _reject_unknown(table: Mapping[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown setting (known: {sorted(known)})")


def _table(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _path(doc: Mapping[str, Any], key: str, default: str, base: Path) -> Path:
    value = doc.get(key, default)
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigError(key, "must be a non-empty path string")
    # Relative to the config file, not the working directory, so a unit file's cwd
    # cannot change which key or store a node opens.
    try:
        expanded = Path(value).expanduser()
    except RuntimeError:  # "~name/..." for a user this system does not know
        raise ConfigError(key, f"{value!r} starts with '~' but names no home directory") from None
    return (base / expanded).absolute()


def _int(
    table: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int], prefix: str
) -> int:
    value = table.get(key, default)
    low, high = bounds
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(f"{prefix}{key}", f"must be an integer in {low}..{high}, got {value!r}")
    return value


def _ints(
    table: Mapping[str, Any], bounds: Mapping[str, tuple[int, int]], prefix: str
) -> dict[str, int]:
    _reject_unknown(table, set(bounds), prefix)
    return {key: _int(table, key, 0, bounds[key], prefix) for key in table}


def _timeouts(table: Mapping[str, Any]) -> Timeouts:
    timeouts = Timeouts(**_ints(table, _TIMEOUT_BOUNDS, "timeouts."))
    if timeouts.reconnect_min_ms > timeouts.reconnect_max_ms:
        raise ConfigError("timeouts.reconnect_min_ms", "must not exceed reconnect_max_ms")
    return timeouts


def _choice(table: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = table.get(key, default)
    if value not in allowed:
        raise ConfigError(f"log.{key}", f"must be one of {list(allowed)}, got {value!r}")
    return str(value)


def _peers(doc: Mapping[str, Any]) -> Mapping[str, str] | None:
    if "peers" not in doc:
        return None
    table = _table(doc, "peers")
    peers: dict[str, str] = {}
    for member_id, url in table.items():
        if not MEMBER_ID.match(member_id):
            raise ConfigError(f"peers.{member_id}", "key must be a member id")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"peers.{member_id}", "must be an http(s) base URL")
        peers[member_id] = url.rstrip("/")
    return peers


def peer_urls(config: NodeConfig, genesis: Genesis) -> dict[str, str]:
    """Member id -> base URL to dial: the configured table, else genesis endpoints."""
    if config.peers is not None:
        return dict(config.peers)
    return {
        m.id: m.endpoints[0].rstrip("/")
        for m in genesis.members
        if m.id != config.member_id and m.endpoints
    }


def serves_tls(config: NodeConfig, genesis: Genesis) -> bool:
    """Whether the node's port speaks TLS: ``listen.tls`` if set, else what its first
    genesis endpoint says (peers dial that), else TLS."""
    if config.listen_tls is not None:
        return config.listen_tls
    member = genesis.member(config.member_id)
    if member is None or not member.endpoints:
        return True
    return member.endpoints[0].startswith("https://")


def check_against_genesis(config: NodeConfig, genesis: Genesis) -> None:
    """Settings that only make sense for this network: raise ConfigError otherwise."""
    member = genesis.member(config.member_id)
    if member is None:
        raise ConfigError("id", f"{config.member_id!r} is not a member of {genesis.chain_id}")
    for member_id in config.peers or {}:
        if genesis.member(member_id) is None:
            raise ConfigError(f"peers.{member_id}", "is not a genesis member")
        if member_id == config.member_id:
            raise ConfigError(f"peers.{member_id}", "is this node itself")
    _check_plaintext(config, genesis, member.endpoints)
    # A frame must at least carry one entry with its envelope, or gossip cannot work.
    needed = genesis.params.max_entry_bytes + 1024
    if config.limits.max_frame_bytes < needed:
        raise ConfigError("limits.max_frame_bytes", f"must be at least {needed} for this genesis")
    if config.limits.mempool_max_bytes < genesis.params.max_entry_bytes:
        raise ConfigError("limits.mempool_max_bytes", "must hold at least one maximal entry")
    # Sockets still authenticating never take more than their own budget, so every other
    # member always finds a slot: strangers cannot lock a member out.
    members = len(genesis.members) - 1
    needed = config.limits.max_unauthenticated_peers + members
    if config.limits.max_peer_connections < needed:
        raise ConfigError(
            "limits.max_peer_connections",
            f"must be at least max_unauthenticated_peers + {members} other members = {needed}",
        )


def _check_plaintext(config: NodeConfig, genesis: Genesis, own: tuple[str, ...]) -> None:
    """Plaintext only where nothing but this machine can see it: a loopback network."""
    tls = serves_tls(config, genesis)
    if own and own[0].startswith("https://") != tls:
        raise ConfigError(
            "listen.tls",
            f"is {str(tls).lower()}, but genesis lists {own[0]} for {config.member_id} "
            "and peers dial that",
        )
    if not tls and not is_loopback_host(config.listen_host):
        raise ConfigError(
            "listen.host",
            f"{config.listen_host} is not a loopback address: a node serves plaintext only "
            "on loopback (a dev network); give it an https:// endpoint and a certificate",
        )
    for member_id, url in peer_urls(config, genesis).items():
        if url.startswith("http://") and not is_loopback_url(url):
            where = f"peers.{member_id}" if config.peers is not None else "genesis endpoints"
            raise ConfigError(
                where, f"{url} is plaintext to a host that is not loopback; use https://"
            )


def render_default_config(
    member_id: str,
    *,
    listen_host: str = "127.0.0.1",
    listen_port: int = 7101,
    passphrase_file: str | None = None,
    tuning: Tuning | None = None,
) -> str:
    """A commented node.toml with the defaults, or ``tuning``'s values; ``load_config``
    accepts it unchanged."""
    if not MEMBER_ID.match(member_id):
        raise ConfigError("id", f"must be a member id matching {MEMBER_ID.pattern}")
    tuning = tuning or Tuning()
    limits, timeouts = tuning.limits, tuning.timeouts
    passphrase = (
        f"passphrase_file = {_toml_str(passphrase_file)}"
        if passphrase_file
        else '# passphrase_file = "key.pass"   # if the key is encrypted'
    )
    lines = [
        f"# customs-node configuration for member {member_id}.",
        "# Relative paths are resolved against this file's directory.",
        "",
        f"id = {_toml_str(member_id)}",
        'data_dir = "data"              # LevelDB store and consensus signing state',
        'genesis_file = "genesis.json"  # the network\'s genesis (customs-node genesis)',
        'key_file = "node.key"          # Ed25519 PKCS#8 key, mode 0600',
        'api_token_file = "api.token"   # bearer token for POST /v1/entries and /v1/submit',
        'cert_file = "node.crt"         # TLS certificate, self-signed for node.key',
        passphrase,
        "",
        "[listen]",
        "# One server for the HTTP API (/v1/...) and the peer WebSocket (/v1/peer).",
        f"host = {_toml_str(listen_host)}",
        f"port = {listen_port}",
        "# TLS 1.3 with cert_file when this member's genesis endpoint is https:// (the",
        "# default); plaintext http:// is for a loopback dev network only.",
        "# tls = true",
        "",
        "# Peers to dial, member id = base URL. Without this table the node dials every",
        "# other member's first genesis endpoint.",
        "# [peers]",
        '# DE = "https://10.0.0.2:7101"',
        "",
        "[limits]",
        f"max_request_bytes = {limits.max_request_bytes}        # HTTP request body",
        f"max_entries_per_request = {limits.max_entries_per_request}   # entries in one POST",
        f"max_frame_bytes = {limits.max_frame_bytes}         # one peer frame (a block must fit)",
        f"mempool_max_entries = {limits.mempool_max_entries}",
        f"mempool_max_bytes = {limits.mempool_max_bytes}",
        f"max_peer_connections = {limits.max_peer_connections}     # peer sockets, linked or not",
        "# Peer sockets still authenticating (hello and auth not yet in), in all and from",
        "# one address: past either, the oldest such socket is closed to make room, so",
        "# strangers never fill the slots members need. max_peer_connections must be at",
        "# least max_unauthenticated_peers + the number of other members.",
        f"max_unauthenticated_peers = {limits.max_unauthenticated_peers}",
        f"max_unauthenticated_per_address = {limits.max_unauthenticated_per_address}",
        f"max_api_connections = {limits.max_api_connections}     # API reads served at once",
        f"max_api_writes = {limits.max_api_writes}           # API writes (POST) at once",
        f"peer_send_queue = {limits.peer_send_queue}          # frames queued per peer",
        f"gossip_seen_cache = {limits.gossip_seen_cache}      # message hashes remembered",
        "# Serving catch-up to one peer: block requests answered a second, and bytes queued",
        "# to it; a request past either is dropped and counted (dropped_block_request).",
        f"sync_requests_per_s = {limits.sync_requests_per_s}",
        f"sync_answer_bytes = {limits.sync_answer_bytes}",
        "# GET /v1/events: streams open at once, and committed entries queued to one",
        "# stream that is not reading; past it that stream is closed (too_slow).",
        f"max_event_streams = {limits.max_event_streams}",
        f"event_buffer = {limits.event_buffer}",
        "",
        "[timeouts]",
        "# Consensus step timeouts grow with the round: base + round * delta (ms);",
        "# request_head_ms / request_body_ms: the time a client has to finish its TLS",
        "# handshake, then its request's headers / its body, before the connection is",
        "# closed; peer_auth_ms: the time an",
        "# accepted peer socket has to authenticate (hello and auth) before it is closed.",
        *(f"{f.name} = {getattr(timeouts, f.name)}" for f in fields(Timeouts)),
        "",
        "[log]",
        f"format = {_toml_str(tuning.log_format)}   # text | json, to stdout",
        f"level = {_toml_str(tuning.log_level)}    # debug | info | warning | error",
        "",
    ]
    return "\n".join(lines)


def _toml_str(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(c) < 0x20 for c in escaped):
        raise ConfigError("value", f"{text!r} holds control characters")
    return f'"{escaped}"'
