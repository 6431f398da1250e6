"""``customs-node status``: ask the local node how it is, through its own API.

The node is found from its node.toml (``--config``, or ``--data-dir`` holding one): the
listen address there is where the API is, so an operator types no URL. Two requests are
made, ``GET /v1/status`` and ``GET /readyz``; nothing is written anywhere.

Exit codes (docs/operations.md): 0 ready, 3 running but not ready (catching up, or not
hearing a quorum), 4 not answering at its address, 2 a node.toml that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from node.admin.provision import CliError
from node.daemon.config import NodeConfig, load_config

__all__ = [
    "EXIT_DOWN",
    "EXIT_NOT_READY",
    "NodeDown",
    "api_url",
    "cmd_status",
    "config_path",
    "fetch_json",
]

EXIT_NOT_READY = 3
EXIT_DOWN = 4
TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class NodeDown(Exception):
    """The node's API did not answer at the address its node.toml names."""


@dataclass(frozen=True)
class Report:
    status: dict[str, Any]
    ready: bool
    not_ready_reason: str | None


def config_path(args: argparse.Namespace) -> Path:
    """node.toml from ``--config``, else ``--data-dir``/node.toml."""
    if args.config is not None:
        path: Path = args.config
        return path
    if args.data_dir is not None:
        return Path(args.data_dir) / "node.toml"
    raise CliError("give --config NODE_TOML or --data-dir DIR (the directory holding node.toml)")


def api_url(config: NodeConfig) -> str:
    """Where this node's API answers a client on the same machine."""
    host = config.listen_host
    # A node listening on every address is reached on loopback.
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.listen_port}"


def fetch_json(url: str, *, timeout: float = TIMEOUT_S) -> tuple[int, Any]:
    """GET ``url``: its status code and decoded JSON body; NodeDown if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(MAX_ANSWER_BYTES)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NodeDown(f"no answer from {url}: {reason}") from exc
    try:
        return status, json.loads(body)
    except ValueError as exc:
        raise NodeDown(f"{url} answered {status} with a body that is not JSON") from exc


def read_report(base: str) -> Report:
    code, status = fetch_json(base + "/v1/status")
    if code != 200 or not isinstance(status, dict):
        raise NodeDown(f"{base}/v1/status answered {code}")
    code, ready = fetch_json(base + "/readyz")
    reason = None if code == 200 else str(ready.get("message", code))
    return Report(status, code == 200, reason)


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
    base = api_url(config)
    try:
        report = read_report(base)
    except NodeDown as exc:
        print(f"{config.member_id}: DOWN — {exc}", file=sys.stderr)
        return EXIT_DOWN
    if args.json:
        doc = {**report.status, "ready": report.ready, "not_ready_reason": report.not_ready_reason}
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        render(report, base, sys.stdout, now_ms=time.time_ns() // 10**6)
    return 0 if report.ready else EXIT_NOT_READY


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def render(report: Report, base: str, out: TextIO, *, now_ms: int) -> None:
    s = report.status
    verdict = "READY" if report.ready else f"NOT READY — {report.not_ready_reason}"
    out.write(f"{s['member']} at {base}: {verdict}\n")
    out.write(f"  chain     {s['chain_id']}, genesis {str(s['genesis_hash'])[:16]}…\n")
    head_time = s.get("head_time")
    if s["height"] and isinstance(head_time, int):
        age = max(0, now_ms - head_time) / 1000
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(head_time / 1000))
        head = f"height {s['height']}, {when} ({age:.1f} s ago), round {s['round']}"
    else:
        head = "height 0 (no block yet)"
    out.write(f"  head      {head}{', catching up' if s.get('syncing') else ''}\n")
    peers = s.get("peers", [])
    up = [p for p in peers if p.get("connected")]
    names = ", ".join(f"{p['id']}" + ("" if p.get("connected") else " (down)") for p in peers)
    out.write(f"  peers     {len(up)} of {_plural(len(peers), 'peer')} connected: {names}\n")
    out.write(f"  mempool   {_plural(int(s.get('mempool', 0)), 'entry', 'entries')} pending\n")
