"""``customs-node testnet``: every member's node directory and one genesis, in one step.

Everything is decided and validated in memory first (members, keys, ports, genesis,
settings); then the network is written to a hidden sibling of ``--dir`` and renamed into
place, so a failure at any point leaves nothing behind, and an existing network, with
its keys, is never touched. Each directory is written by the same ``init_node_dir`` and
``build_genesis`` that ``init`` and ``genesis`` use, and loaded back through
``load_node``, the check ``run`` does at start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycountry

from ledger.genesis import MAX_MEMBERS, Genesis
from ledger.keys import SigningKey
from node.admin.provision import (
    CONFIG_NAME,
    GENESIS_NAME,
    TOKEN_NAME,
    CliError,
    build_genesis,
    init_node_dir,
    load_node,
    read_members,
    write_genesis,
)
from node.daemon.config import Tuning, parse_settings

__all__ = [
    "DEFAULT_CHAIN_ID",
    "NetworkPlan",
    "cmd_testnet",
    "plan_testnet",
    "summary",
    "write_testnet",
]

DEFAULT_CHAIN_ID = "customs-testnet-1"
ROLE_ORDER = ("validator", "issuer", "customs")
# `--members N` names members after the country they act for: trading administrations
# first, so a small network reads like the demo, then every other ISO 3166 code.
_FIRST_CODES = ("CN", "NL", "DE", "SG", "US", "JP", "KR", "FR", "GB", "IN", "BR", "ZA")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# Fields the command generates; a members file that sets them has been misunderstood.
_GENERATED = ("public_key", "endpoints")


@dataclass(frozen=True)
class NetworkPlan:
    """A network decided and validated, not yet written."""

    root: Path
    host: str
    genesis: Genesis
    keys: Mapping[str, SigningKey]
    ports: Mapping[str, int]
    tuning: Tuning

    def node_dir(self, member_id: str) -> Path:
        return self.root / member_id


def cmd_testnet(args: argparse.Namespace) -> int:
    net = plan_testnet(
        args.dir,
        args.members,
        chain_id=args.chain_id,
        host=args.host,
        base_port=args.base_port,
        tls=args.tls,
        params=_pairs(args.param, "--param"),
        settings=_pairs(args.set, "--set"),
    )
    write_testnet(net)
    print(summary(net), end="")
    return 0


# -- deciding -----------------------------------------------------------------------


def plan_testnet(
    root: Path,
    members: str,
    *,
    chain_id: str = DEFAULT_CHAIN_ID,
    host: str = "127.0.0.1",
    base_port: int | None = None,
    tls: bool = False,
    params: Mapping[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
) -> NetworkPlan:
    """Decide the whole network; raise CliError, GenesisError or ConfigError on bad input."""
    root = root.absolute()
    _check_target(root)
    _check_host(host)
    docs, file_params = _member_docs(members)
    tuning = parse_settings(settings or {})
    ports = _ports(host, base_port, len(docs))
    keys = [SigningKey.generate() for _ in docs]
    with_keys = [
        {**doc, "public_key": key.public_key.hex, "endpoints": [_url(host, port, tls)]}
        for doc, key, port in zip(docs, keys, ports, strict=True)
    ]
    merged = {**file_params, **(params or {})} if file_params or params else None
    genesis = build_genesis(chain_id, time.time_ns() // 10**6, with_keys, merged)
    ids = [m.id for m in genesis.members]
    return NetworkPlan(
        root=root,
        host=host,
        genesis=genesis,
        keys=dict(zip(ids, keys, strict=True)),
        ports=dict(zip(ids, ports, strict=True)),
        tuning=tuning,
    )


def _check_target(root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise CliError(
            f"--dir {root} exists and is not an empty directory; testnet never replaces "
            "a network's keys (remove it, or choose another directory)"
        )


def _check_host(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.fullmatch(host):
            raise CliError(f"--host {host!r} is not an IP address or host name") from None
        return
    if address.is_unspecified:
        raise CliError(
            f"--host {host}: a wildcard address is not one peers can dial; "
            "give the address they should use"
        )


def _member_docs(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Members without keys or endpoints, and params from a members file, if any."""
    if _INTEGER.fullmatch(text):
        return _generated_members(int(text)), {}
    path = Path(text)
    members, params = read_members(path)
    if len(members) > MAX_MEMBERS:
        raise CliError(f"--members {path}: at most {MAX_MEMBERS} members")
    for i, member in enumerate(members):
        if not isinstance(member, dict):
            raise CliError(f"--members {path}: members[{i}] must be an object")
        for name in _GENERATED:
            if name in member:
                raise CliError(
                    f"--members {path}: members[{i}].{name}: testnet generates keys and "
                    "endpoints; leave it out"
                )
    if params is not None and not isinstance(params, dict):
        raise CliError(f"--members {path}: 'params' must be an object")
    return members, params or {}


def _generated_members(n: int) -> list[dict[str, Any]]:
    codes = [*_FIRST_CODES, *sorted({c.alpha_2 for c in pycountry.countries} - set(_FIRST_CODES))]
    limit = min(MAX_MEMBERS, len(codes))
    if not 1 <= n <= limit:
        raise CliError(f"--members {n}: the number of members must be in 1..{limit}")
    return [
        {
            "id": code,
            "name": f"{_country_name(code)} Customs",
            "jurisdictions": [code],
            "roles": list(ROLE_ORDER),
        }
        for code in codes[:n]
    ]


def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    assert country is not None  # codes come from pycountry itself
    # common_name where ISO's is formal ("Korea, Republic of" -> "South Korea").
    return str(getattr(country, "common_name", None) or country.name)


def _ports(host: str, base_port: int | None, count: int) -> list[int]:
    if base_port is None:
        return _free_ports(host, count)
    if not 1 <= base_port <= 65536 - count:
        raise CliError(
            f"--base-port {base_port}: ports {base_port}..{base_port + count - 1} "
            "must lie in 1..65535"
        )
    return list(range(base_port, base_port + count))


def _free_ports(host: str, count: int) -> list[int]:
    # Every socket stays bound until all are chosen, so the kernel cannot hand out one
    # port twice; another process may still take one before the nodes start.
    with contextlib.ExitStack() as stack:
        try:
            sockets = [stack.enter_context(_bound(host)) for _ in range(count)]
        except OSError as exc:
            raise CliError(f"--host {host}: cannot listen there: {exc.strerror or exc}") from exc
        return [int(s.getsockname()[1]) for s in sockets]


@contextlib.contextmanager
def _bound(host: str) -> Iterator[socket.socket]:
    info = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    with socket.socket(info[0], info[1]) as sock:
        sock.bind((host, 0))
        yield sock


def _url(host: str, port: int, tls: bool) -> str:
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _pairs(items: Sequence[str], flag: str) -> dict[str, object]:
    """``KEY=VALUE`` arguments; a decimal VALUE becomes an int, anything else stays text
    for the setting's own check to judge."""
    pairs: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{flag} {item!r} must be KEY=VALUE")
        if key in pairs:
            raise CliError(f"{flag} {key} is given twice")
        pairs[key] = int(value) if _INTEGER.fullmatch(value) else value
    return pairs


# -- writing ------------------------------------------------------------------------


def write_testnet(net: NetworkPlan) -> None:
    """Write the network under a temporary name, check it, then rename it into place."""
    net.root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{net.root.name}.", dir=net.root.parent))
    try:
        _write_all(net, staging)
        # rename(2) replaces an empty directory and refuses a non-empty one, so a
        # network created at --dir meanwhile is not overwritten either.
        os.rename(staging, net.root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_all(net: NetworkPlan, staging: Path) -> None:
    write_genesis(net.genesis, staging / GENESIS_NAME)
    for member in net.genesis.members:
        node_dir = staging / member.id
        config = init_node_dir(
            node_dir,
            member.id,
            net.keys[member.id],
            listen_host=net.host,
            listen_port=net.ports[member.id],
            tuning=net.tuning,
        )
        write_genesis(net.genesis, node_dir / GENESIS_NAME)
        load_node(config)


# -- reporting ----------------------------------------------------------------------


def summary(net: NetworkPlan) -> str:
    """What was written and how to start it; names the token files, never their contents."""
    rows = [("member", "roles", "URL", "config")]
    for member in net.genesis.members:
        roles = ",".join(r for r in ROLE_ORDER if r in member.roles)
        config = net.node_dir(member.id) / CONFIG_NAME
        rows.append((member.id, roles, member.endpoints[0], str(config)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    table = [
        "  " + "".join(cell.ljust(w + 2) for cell, w in zip(row, widths, strict=False)) + row[3]
        for row in rows
    ]
    starts = [
        f"  customs-node run --config {net.node_dir(m.id) / CONFIG_NAME}"
        for m in net.genesis.members
    ]
    return "\n".join(
        [
            f"wrote {len(rows) - 1} members of chain {net.genesis.chain_id} to {net.root}",
            f"genesis {net.root / GENESIS_NAME} (hash {net.genesis.hash_hex})",
            *table,
            "start each node, each in its own terminal (or end each line with &):",
            *starts,
            f"write tokens for POST /v1/submit: {net.root}/<member>/{TOKEN_NAME} (mode 0600)",
            "",
        ]
    )
