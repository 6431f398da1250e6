"""The demo's network: five administrations written by ``customs-node testnet --tls`` and
run as five ``customs-node run`` processes on 127.0.0.1.

The links and the API are TLS 1.3 as in production (``https://`` endpoints, certificates
pinned to the genesis keys), so every ``customs`` call the demo shows pins its node too;
the handshakes cost well under a second over the whole run.

Each node runs in its own session, so a SIGKILL hits exactly that node's process group
and nothing the demo started can outlive ``close``. Their process ids are written to
``demo-pids.json`` so that ``demo.py --stop DIR`` can end a network left by ``--keep``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from node.daemon.tls import client_context

__all__ = [
    "MEMBERS",
    "DemoNetwork",
    "HttpAnswer",
    "NetworkError",
    "http_json",
    "stop_saved",
]

MEMBERS: list[dict[str, Any]] = [
    {"id": "CN", "name": "China Customs", "jurisdictions": ["CN"],
     "roles": ["validator", "issuer", "customs"]},
    {"id": "NL", "name": "Dutch Customs", "jurisdictions": ["NL"],
     "roles": ["validator", "issuer", "customs"]},
    {"id": "DE", "name": "German Customs", "jurisdictions": ["DE"],
     "roles": ["validator", "issuer", "customs"]},
    {"id": "SG", "name": "Singapore Customs", "jurisdictions": ["SG"],
     "roles": ["validator", "issuer", "customs"]},
    {"id": "US", "name": "U.S. Customs and Border Protection", "jurisdictions": ["US"],
     "roles": ["issuer", "customs"]},
]  # fmt: skip
# Quick but realistic: a block at most every 200 ms, and consensus timeouts short enough
# that a round whose proposer is dead (step 6) costs well under a second.
PARAMS = {"block_interval_ms": 200}
SETTINGS = {
    "timeouts.propose_ms": 600,
    "timeouts.propose_delta_ms": 200,
    "timeouts.prevote_ms": 300,
    "timeouts.prevote_delta_ms": 200,
    "timeouts.precommit_ms": 300,
    "timeouts.precommit_delta_ms": 200,
    "timeouts.reconnect_min_ms": 50,
    "timeouts.reconnect_max_ms": 500,
}
PIDS_FILE = "demo-pids.json"


class NetworkError(Exception):
    """The network could not be written, started or stopped as asked."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    document: Any


def http_json(
    method: str, url: str, body: Any = None, *, token: str | None = None, timeout: float = 5.0
) -> HttpAnswer:
    """One JSON request; every HTTP status is an answer, only no connection raises OSError."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    # The demo's own checks on its own nodes: TLS without pinning (the officials' customs
    # calls pin each node to its genesis key).
    context = client_context() if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return HttpAnswer(response.status, json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return HttpAnswer(exc.code, json.loads(raw))
        except ValueError:
            return HttpAnswer(
                exc.code, {"code": "http", "message": raw[:200].decode(errors="replace")}
            )


@dataclass
class Node:
    member_id: str
    name: str
    root: Path
    url: str
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def token_file(self) -> Path:
        return self.root / "api.token"

    @property
    def log_path(self) -> Path:
        return self.root / "node.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any] | None:
        """``/v1/status``, or None while the node does not answer."""
        try:
            answer = http_json("GET", self.url + "/v1/status", timeout=2.0)
        except (OSError, ValueError):
            return None
        return answer.document if answer.status == 200 else None

    def height(self) -> int:
        status = self.status()
        return -1 if status is None else int(status["height"])

    def log_tail(self, lines: int = 3) -> str:
        if not self.log_path.exists():
            return ""
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])


class DemoNetwork:
    def __init__(self, root: Path, bin_dir: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.env = dict(env)
        self.nodes: dict[str, Node] = {}
        self.genesis_hash = ""

    @property
    def genesis(self) -> Path:
        return self.root / "genesis.json"

    def __getitem__(self, member_id: str) -> Node:
        return self.nodes[member_id]

    # -- set-up ----------------------------------------------------------------------

    def create(self, base_port: int | None) -> list[str]:
        """Run ``customs-node testnet``; return the command line used."""
        members = self.root.parent / "members.json"
        members.write_text(json.dumps(MEMBERS, indent=1))
        argv = [
            str(self.bin_dir / "customs-node"), "testnet",
            "--dir", str(self.root), "--members", str(members),
            "--chain-id", "customs-demo-1", "--tls",
            *(f"--param={k}={v}" for k, v in PARAMS.items()),
            *(f"--set={k}={v}" for k, v in SETTINGS.items()),
            *(["--base-port", str(base_port)] if base_port is not None else []),
        ]  # fmt: skip
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise NetworkError(f"customs-node testnet failed: {done.stderr.strip()}")
        genesis = json.loads(self.genesis.read_text())
        self.genesis_hash = next(
            line.split("hash ")[1].rstrip(")")
            for line in done.stdout.splitlines()
            if line.startswith("genesis ")
        )
        for member in genesis["members"]:
            member_id = member["id"]
            self.nodes[member_id] = Node(
                member_id, member["name"], self.root / member_id, member["endpoints"][0]
            )
        return argv

    # -- processes -------------------------------------------------------------------

    def start(self, ids: Iterable[str] | None = None, timeout: float = 20.0) -> None:
        chosen = list(ids or self.nodes)
        for member_id in chosen:
            self._spawn(self.nodes[member_id])
        self._write_pids()
        self.wait_until(
            lambda: all(self.nodes[i].status() is not None for i in chosen),
            f"{', '.join(chosen)} to answer on their API",
            timeout,
        )

    def _spawn(self, node: Node) -> None:
        if node.running:
            raise NetworkError(f"{node.member_id} is already running")
        node._log = node.log_path.open("ab")
        node.proc = subprocess.Popen(
            [str(self.bin_dir / "customs-node"), "run", "--config", str(node.root / "node.toml")],
            stdin=subprocess.DEVNULL,
            stdout=node._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as one, spared Ctrl-C
            env=self.env,
        )

    def _write_pids(self) -> None:
        pids = {m: n.proc.pid for m, n in self.nodes.items() if n.proc and n.running}
        (self.root.parent / PIDS_FILE).write_text(json.dumps(pids))

    def kill(self, member_id: str) -> None:
        """SIGKILL: a crash, with no chance to flush or say goodbye."""
        node = self.nodes[member_id]
        assert node.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)
        self._close_log(node)

    def stop(self, member_id: str, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the clean exit operators get; SIGKILL if it hangs."""
        node = self.nodes[member_id]
        assert node.proc is not None
        with contextlib.suppress(ProcessLookupError):
            node.proc.send_signal(signal.SIGTERM)
        try:
            return node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(member_id)
            raise NetworkError(f"{member_id} did not stop within {timeout} s of SIGTERM") from None
        finally:
            self._close_log(node)

    def close(self) -> None:
        """Kill whatever still runs; safe to call any number of times."""
        for node in self.nodes.values():
            if node.proc is None:
                continue
            if node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait()
            self._close_log(node)
        with contextlib.suppress(FileNotFoundError):
            (self.root.parent / PIDS_FILE).unlink()

    def detach(self) -> None:
        """Leave the nodes running (``--keep``); only our log handles are closed."""
        for node in self.nodes.values():
            self._close_log(node)

    @staticmethod
    def _close_log(node: Node) -> None:
        if node._log is not None:
            node._log.close()
            node._log = None

    # -- observing -------------------------------------------------------------------

    def wait_until(self, condition: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for node in self.nodes.values():
                if node.proc is not None and node.proc.poll() not in (None, 0, -9, -15):
                    raise NetworkError(
                        f"{node.member_id}'s customs-node exited with status "
                        f"{node.proc.returncode} while waiting for {what}: {node.log_tail()}"
                    )
            if time.monotonic() > deadline:
                raise NetworkError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.05)

    def heights(self, ids: Iterable[str] | None = None) -> dict[str, int]:
        return {m: self.nodes[m].height() for m in (ids or self.nodes)}


def stop_saved(root: Path) -> list[str]:
    """End the nodes a ``--keep`` run left under ``root``; return what was done."""
    pids_file = root / PIDS_FILE
    try:
        pids: dict[str, int] = json.loads(pids_file.read_text())
    except (OSError, ValueError) as exc:
        raise NetworkError(f"{pids_file}: no demo network recorded there ({exc})") from exc
    report = []
    for member_id, pid in pids.items():
        # A recorded pid may since belong to another program: only ours is signalled.
        if str(root) not in _cmdline(pid):
            report.append(f"{member_id}: not running")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        report.append(f"{member_id}: stopped (pid {pid})")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(str(root) in _cmdline(p) for p in pids.values()):
        time.sleep(0.1)
    for pid in pids.values():
        if str(root) in _cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    pids_file.unlink()
    return report


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
